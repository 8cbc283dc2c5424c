//! DKIM against an independent implementation: Debian's python3-dkim (dkimpy), with its
//! keys fetched from the test DNS server (knot on loopback) through dnspython.
//!
//! - What the dkim plugin signs (RSA and Ed25519) verifies in dkimpy;
//! - what dkimpy signs with the fixture keys verifies in the dkim plugin;
//! - a key made by `qpsmtpd dkim-keygen` signs mail that dkimpy verifies with the record the
//!   command printed.

use qpsmtpd_core::testing::{DnsServer, Harness, TestServer};
use qpsmtpd_core::{ConnectionInfo, Context, Hook, Plugin, Registration, Verdict};
use qpsmtpd_tests::{fixture, qpsmtpd_bin};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Debian's interpreter (python3-dkim is installed for it, not for other Pythons).
const PYTHON: &str = "/usr/bin/python3";

/// `verify PORT` reads a message on stdin and prints `pass` or `fail`; `sign rsa|ed25519
/// SELECTOR DOMAIN KEYFILE` prints the message with a DKIM-Signature prepended. Keys are
/// the PKCS#8 PEM fixtures; dkimpy wants RSA as PKCS#1 and Ed25519 as its base64 seed.
const HELPER: &str = r#"
import base64, sys, dkim, dns.resolver

def der(data, i=0):
    tag, n = data[i], data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(data[i:i + k], 'big')
        i += k
    return tag, data[i:i + n], i + n

def pkcs8_private(path):
    pem = open(path, 'rb').read()
    body = b''.join(l for l in pem.splitlines() if not l.startswith(b'-----'))
    _, info, _ = der(base64.b64decode(body))
    _, _, i = der(info)        # version
    _, _, i = der(info, i)     # algorithm
    _, key, _ = der(info, i)   # privateKey
    return key

msg = sys.stdin.buffer.read()
if sys.argv[1] == 'verify':
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ['127.0.0.1']
    r.port = int(sys.argv[2])
    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = r.resolve(name, 'TXT', lifetime=timeout)
        except Exception as e:
            print('lookup of %s failed: %r' % (name, e), file=sys.stderr)
            return None
        return b''.join(answer[0].strings)
    try:
        ok = dkim.DKIM(msg).verify(dnsfunc=txt)
    except dkim.DKIMException as e:
        print(e, file=sys.stderr)
        ok = False
    print('pass' if ok else 'fail')
else:
    kind, selector, domain, path = sys.argv[2:6]
    key = pkcs8_private(path)
    heads = [b'from', b'to', b'subject', b'date', b'message-id']
    if kind == 'ed25519':
        sig = dkim.sign(msg, selector.encode(), domain.encode(), base64.b64encode(key[2:]),
                        signature_algorithm=b'ed25519-sha256',
                        canonicalize=(b'relaxed', b'relaxed'), include_headers=heads)
    else:
        pem = b'-----BEGIN RSA PRIVATE KEY-----\n' + base64.encodebytes(key) + \
              b'-----END RSA PRIVATE KEY-----\n'
        sig = dkim.sign(msg, selector.encode(), domain.encode(), pem,
                        canonicalize=(b'relaxed', b'simple'), include_headers=heads)
    sys.stdout.buffer.write(sig + msg)
"#;

/// Runs the helper; returns its standard output (panics with its stderr on failure).
fn python(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(HELPER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (python3-dkim and python3-dnspython are needed)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin)
        .expect("write to python");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// dkimpy's verdict on a message (LF or CRLF line ends).
fn dkimpy_verifies(dns: &DnsServer, message: &str) -> String {
    let crlf = message.replace("\r\n", "\n").replace('\n', "\r\n");
    let port = dns.addr().port().to_string();
    String::from_utf8(python(&["verify", &port], crlf.as_bytes()))
        .unwrap()
        .trim()
        .to_string()
}

/// A queue plugin that keeps the messages it is given.
#[derive(Clone, Default)]
struct Queued(Arc<Mutex<Vec<String>>>);

impl Queued {
    fn last(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .last()
            .expect("a queued message")
            .clone()
    }
}

impl Plugin for Queued {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Queue.into()]
    }
    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        let mut m = Vec::new();
        cx.transaction_mut()
            .message_reader()
            .unwrap()
            .read_to_end(&mut m)
            .unwrap();
        self.0.lock().unwrap().push(String::from_utf8(m).unwrap());
        Verdict::ok_with("Queued")
    }
}

const QUEUED: &str = "250 2.0.0 Queued\r\n";

/// A message from `from`, CRLF line ends, without the last one (TestSession::data adds it).
fn message(from: &str) -> String {
    format!(
        "From: Joe Sender <{from}>\r\nTo: <someone@example.com>\r\nSubject: interop\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <interop@example.test>\r\n\
         MIME-Version: 1.0\r\n\r\nHello  there,\r\n\r\nthis message is  signed.\r\n\r\n"
    )
}

/// A server that signs for relay clients (127.0.0.1), with its keys already in `h`.
fn signer(h: Harness, dns: &DnsServer) -> (TestServer, Queued) {
    let queued = Queued::default();
    let server = h
        .catalogue(qpsmtpd_plugins::CATALOGUE)
        .file("plugins", "relay\ndkim\nrcpt_ok")
        .file("relayclients", "127.0.0.1")
        .dns(dns)
        .plugin("queue", queued.clone())
        .build()
        .unwrap();
    (server, queued)
}

/// A server that verifies (its clients are not relay clients).
fn verifier(dns: &DnsServer) -> (TestServer, Queued) {
    let queued = Queued::default();
    let server = Harness::new()
        .catalogue(qpsmtpd_plugins::CATALOGUE)
        .file("plugins", "dkim\nrcpt_ok")
        .file("rcpthosts", "example.com")
        .dns(dns)
        .plugin("queue", queued.clone())
        .build()
        .unwrap();
    (server, queued)
}

/// Sends `message` (CRLF, without its last line end) from a client that is not ours.
fn deliver(server: &TestServer, from: &str, message: &str) -> String {
    let mut s = server.session_from(ConnectionInfo::from_ip("192.0.2.25".parse().unwrap()));
    s.connect();
    s.command("EHLO mail.example.test");
    s.mail(from, &["someone@example.com"], message)
}

fn key_files(h: Harness, domain: &str, selector: &str, pem_fixture: &str) -> Harness {
    let pem = std::fs::read_to_string(fixture(&format!("dns/keys/{pem_fixture}"))).unwrap();
    h.file(&format!("dkim/{domain}/selector"), selector)
        .file(&format!("dkim/{domain}/private"), &pem)
}

#[test]
fn what_we_sign_verifies_in_dkimpy() {
    let dns = DnsServer::start();
    for (domain, selector, pem) in [
        ("example.test", "rsa", "rsa2048.pem"),
        ("dkim.test", "ed", "ed25519.pem"),
    ] {
        let (server, queued) = signer(key_files(Harness::new(), domain, selector, pem), &dns);
        let from = format!("joe@{domain}");
        assert_eq!(
            server.send_message(&from, &["someone@elsewhere.example"], &message(&from)),
            QUEUED
        );
        let signed = queued.last();
        assert!(signed.starts_with("DKIM-Signature: "), "{signed}");
        assert_eq!(dkimpy_verifies(&dns, &signed), "pass", "{signed}");
        // The check can fail: a changed body does not verify.
        let altered = signed.replace("this message is", "this message was");
        assert_eq!(dkimpy_verifies(&dns, &altered), "fail");
    }
}

#[test]
fn what_dkimpy_signs_verifies_here() {
    let dns = DnsServer::start();
    let (server, queued) = verifier(&dns);
    for (kind, domain, selector, pem) in [
        ("rsa", "example.test", "rsa", "rsa2048.pem"),
        ("ed25519", "dkim.test", "ed", "ed25519.pem"),
    ] {
        let from = format!("joe@{domain}");
        // dkimpy signs the message with its final line end.
        let original = format!("{}\r\n", message(&from));
        let key = fixture(&format!("dns/keys/{pem}"));
        let signed = python(
            &["sign", kind, selector, domain, &key.to_string_lossy()],
            original.as_bytes(),
        );
        let signed = String::from_utf8(signed).unwrap();
        let b: String = signed[signed.find(" b=").unwrap() + 3..]
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(8)
            .collect();
        let wire = signed.strip_suffix("\r\n").unwrap();
        assert_eq!(deliver(&server, &from, wire), QUEUED, "{signed}");
        let queued_header = queued.last();
        let ar = queued_header
            .split("\n\n")
            .next()
            .unwrap()
            .replace("\n\t", " ");
        assert!(
            ar.contains(&format!(
                "dkim=pass header.d={domain} header.s={selector} header.b={b}"
            )),
            "{ar}"
        );
        let altered = wire.replace("this message is", "this message was");
        assert_eq!(
            deliver(&server, &from, &altered),
            "552 5.7.20 DKIM signature invalid: body hash did not verify\r\n"
        );
    }
}

#[test]
fn keys_from_dkim_keygen_verify_in_dkimpy() {
    let h = Harness::new();
    let config = h.dir().join("config");
    let mut records = String::new();
    for (domain, args) in [
        ("dkim.test", vec!["--selector", "cli", "--bits", "2048"]),
        (
            "ed.dkim.test",
            vec!["--selector", "cli", "--type", "ed25519"],
        ),
    ] {
        let out = Command::new(qpsmtpd_bin())
            .arg("dkim-keygen")
            .arg(domain)
            .args(&args)
            .arg("--config-dir")
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("publish this record in the DNS zone of"),
            "{stderr}"
        );
        let record = String::from_utf8(out.stdout).unwrap();
        let dir = config.join("dkim").join(domain);
        assert_eq!(std::fs::read_to_string(dir.join("dns")).unwrap(), record);
        assert_eq!(
            std::fs::read_to_string(dir.join("selector")).unwrap(),
            "cli\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("private"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            record.starts_with(&format!("cli._domainkey.{domain}. IN TXT (")),
            "{record}"
        );
        records.push_str(&record);

        // A second run does not overwrite the key.
        let again = Command::new(qpsmtpd_bin())
            .args(["dkim-keygen", domain, "--type", "ed25519", "--config-dir"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists; use --force"));
    }

    // A DNS server publishing what the command printed.
    let zones = tempfile::tempdir().unwrap();
    std::fs::copy(
        DnsServer::fixture_zones().join("example.test.zone"),
        zones.path().join("example.test.zone"),
    )
    .unwrap();
    std::fs::write(
        zones.path().join("dkim.test.zone"),
        format!(
            "$ORIGIN dkim.test.\n$TTL 60\n\
             @ IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60\n\
             @ IN NS ns1.example.test.\n{records}"
        ),
    )
    .unwrap();
    let dns = DnsServer::start_with(zones.path());
    let (server, queued) = signer(h, &dns);
    for from in ["joe@dkim.test", "joe@ed.dkim.test"] {
        assert_eq!(
            server.send_message(from, &["someone@elsewhere.example"], &message(from)),
            QUEUED
        );
        assert_eq!(dkimpy_verifies(&dns, &queued.last()), "pass", "{from}");
    }
}

#[test]
fn the_fixture_zone_publishes_the_fixture_keys() {
    // The zone and the key files must not drift apart.
    let zone = std::fs::read_to_string(fixture("dns/zones/dkim.test.zone")).unwrap();
    let joined: String = zone
        .lines()
        .filter(|l| l.starts_with("rsa._domainkey "))
        .flat_map(|l| l.split('"').skip(1).step_by(2))
        .collect();
    let public = std::fs::read_to_string(fixture("dns/keys/rsa2048.pub.b64")).unwrap();
    assert!(
        joined.ends_with(&format!("p={}", public.trim())),
        "{joined}"
    );
    assert!(Path::new(PYTHON).exists(), "{PYTHON} is needed");
}
