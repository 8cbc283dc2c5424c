//! The `qpsmtpd` binary in its one-session-on-stdin/stdout mode, under the supervisors that
//! run it that way: tcpserver (with and without tcprules), a private xinetd,
//! systemd-socket-activate, and plain pipes (`swaks --pipe`, scripts). Real clients (swaks,
//! Python's smtplib, a raw socket) deliver into the site's maildir.

use qpsmtpd_tests::{
    Client, Daemon, Site, free_port, python, qpsmtpd_bin, require, swaks, tcprules, tcpserver,
    wait_for_port,
};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A short message with CRLF line ends.
fn message(subject: &str, body: &str) -> String {
    format!(
        "From: <a@sender.test>\r\nTo: <joe@example.com>\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    )
}

/// The message normalised to LF line ends, so assertions do not depend on how the maildir
/// plugin ends its lines.
fn lf(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// A site whose plugins are `relay`, `rcpt_ok` and `queue/maildir`.
fn relay_site() -> Site {
    let site = Site::new();
    let maildir = site.maildir();
    site.file(
        "plugins",
        &format!("relay\nrcpt_ok\nqueue/maildir {}", maildir.display()),
    )
}

#[test]
fn tcpserver_and_swaks_deliver_to_the_maildir() {
    let site = Site::new();
    let (server, port) = tcpserver(&site, None, &[]);
    let (ok, out) = swaks(&[
        "--server",
        &format!("127.0.0.1:{port}"),
        "--helo",
        "client.test",
        "--from",
        "a@sender.test",
        "--to",
        "joe@example.com",
        "--header",
        "Subject: swaks through tcpserver",
        "--body",
        "hello from swaks",
        "--timeout",
        "20",
    ]);
    assert!(ok, "swaks failed:\n{out}");
    assert!(
        out.contains("<-  220 test.example ESMTP"),
        "banner not seen:\n{out}"
    );
    assert!(
        out.contains("<-  250-test.example Hi [127.0.0.1] [127.0.0.1]"),
        "EHLO reply:\n{out}"
    );
    assert!(out.contains("<-  250 2.0.0 "), "no 250 after DATA:\n{out}");

    let messages = site.messages();
    assert_eq!(messages.len(), 1, "maildir/new: {messages:?}");
    let m = lf(&messages[0]);
    assert!(m.contains("Subject: swaks through tcpserver\n"), "{m}");
    assert!(m.contains("\nhello from swaks\n"), "{m}");
    assert!(
        m.contains(
            "Received: from [127.0.0.1] (HELO client.test) (127.0.0.1)\n\tby test.example (qpsmtpd/"
        ),
        "{m}"
    );
    assert!(m.contains("with ESMTP;"), "{m}");

    // The session's log goes to tcpserver's stderr, one line per event.
    let log = server.wait_for_session_end("dispatching EHLO client.test", WAIT);
    for needle in [
        "dispatching EHLO client.test",
        "dispatching MAIL FROM:<a@sender.test>",
        "dispatching RCPT TO:<joe@example.com>",
        "(rcpt) rcpt_ok: pass: example.com in rcpthosts",
        "queued: from <a@sender.test> to <joe@example.com>",
        "dispatching QUIT",
    ] {
        assert!(log.contains(needle), "{needle:?} not in log:\n{log}");
    }
}

const SMTPLIB_CLIENT: &str = r#"
import smtplib, sys
from email.message import EmailMessage
port = int(sys.argv[1])
m = EmailMessage()
m["From"] = "py@sender.test"
m["To"] = "joe@example.com"
m["Subject"] = "smtplib through tcpserver"
m.set_content("first line\n.a line starting with a dot\nlast line\n")
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=20) as s:
    code, text = s.ehlo()
    print("EHLO", code, text.decode())
    print("EXTN", s.has_extn("pipelining"), s.has_extn("enhancedstatuscodes"), s.has_extn("size"))
    print("MAIL", *s.mail("py@sender.test"))
    print("RCPT", *s.rcpt("joe@example.com"))
    # As send_message does it: CRLF line ends (the default policy writes bare LFs).
    code, text = s.data(m.as_bytes(policy=m.policy.clone(linesep="\r\n")))
    print("DATA", code, text.decode())
"#;

#[test]
fn tcpserver_and_python_smtplib_deliver_with_dot_stuffing() {
    let site = Site::new();
    let (_server, port) = tcpserver(&site, None, &[]);
    let (ok, out) = python(SMTPLIB_CLIENT, &[&port.to_string()]);
    assert!(ok, "smtplib client failed:\n{out}");
    assert!(
        out.contains("EHLO 250 test.example Hi [127.0.0.1] [127.0.0.1]"),
        "{out}"
    );
    assert!(out.contains("EXTN True True True"), "{out}");
    assert!(out.contains("DATA 250 2.0.0 "), "{out}");

    let messages = site.messages();
    assert_eq!(messages.len(), 1, "maildir/new: {messages:?}");
    let m = lf(&messages[0]);
    assert!(m.contains("Subject: smtplib through tcpserver\n"), "{m}");
    // smtplib sent `..a line`; the maildir holds the line as the user wrote it.
    assert!(
        m.contains("\nfirst line\n.a line starting with a dot\nlast line\n"),
        "{m}"
    );
    assert!(!m.contains("..a line"), "{m}");
}

#[test]
fn tcprules_relayclient_lets_a_client_relay() {
    let site = relay_site();
    let rules = tcprules(&site, "127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n");
    let (server, port) = tcpserver(&site, Some(&rules), &[]);
    let addr = ([127, 0, 0, 1], port).into();

    // 127.0.0.1 matches the rule that sets RELAYCLIENT: any domain goes.
    let (mut c, banner) = Client::connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), addr);
    assert!(banner.starts_with("220 "), "{banner:?}");
    assert!(c.cmd("EHLO relay.test").starts_with("250-"));
    let reply = c.send_mail(
        "a@sender.test",
        &["friend@elsewhere.test"],
        &message("relayed", "to a foreign domain"),
    );
    assert!(reply.starts_with("250 2.0.0 "), "{reply:?}");
    assert!(c.cmd("QUIT").starts_with("221 "));

    // 127.0.0.3 falls through to `:allow`: no RELAYCLIENT, only our own domains.
    let (mut c, _) = Client::connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), addr);
    assert!(c.cmd("EHLO other.test").starts_with("250-"));
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
    assert_eq!(
        c.cmd("RCPT TO:<friend@elsewhere.test>"),
        "550 5.7.1 Relaying denied\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "250 2.1.5 <joe@example.com>, recipient ok\r\n"
    );
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(message("local only", "for joe").as_bytes());
    assert!(c.cmd(".").starts_with("250 2.0.0 "));
    assert!(c.cmd("QUIT").starts_with("221 "));

    let messages: Vec<String> = site.messages().iter().map(|m| lf(m)).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("Subject: relayed\n")));
    assert!(messages.iter().any(|m| m.contains("Subject: local only\n")));

    server.wait_for_session_end("dispatching EHLO relay.test", WAIT);
    let log = server.wait_for_session_end("dispatching EHLO other.test", WAIT);
    for needle in [
        "(connect) relay: pass: RELAYCLIENT is set",
        "(connect) relay: skip: 127.0.0.3 is not a relay client",
        "(rcpt) rcpt_ok: pass: relay client",
        "(rcpt) rcpt_ok: fail: <friend@elsewhere.test> is not one of our domains",
    ] {
        assert!(log.contains(needle), "{needle:?} not in log:\n{log}");
    }
}

#[test]
fn without_tcprules_loopback_ipv4_may_not_relay() {
    let site = relay_site();
    let (server, port) = tcpserver(&site, None, &[]);
    let (mut c, banner) = Client::connect(port);
    assert!(banner.starts_with("220 "), "{banner:?}");
    assert!(c.cmd("HELO relay.test").starts_with("250 "));
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
    assert_eq!(
        c.cmd("RCPT TO:<friend@elsewhere.test>"),
        "550 5.7.1 Relaying denied\r\n"
    );
    // The refusal leaves the transaction usable.
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "250 2.1.5 <joe@example.com>, recipient ok\r\n"
    );
    assert_eq!(c.cmd("RSET"), "250 2.0.0 OK\r\n");
    assert!(c.cmd("QUIT").starts_with("221 "));
    assert!(site.messages().is_empty());
    let log = server.wait_for_session_end("dispatching HELO relay.test", WAIT);
    assert!(
        log.contains("(connect) relay: skip: 127.0.0.1 is not a relay client"),
        "{log}"
    );
}

/// A private xinetd serving the binary on a free port; only `REMOTE_HOST` tells it who
/// the peer is.
fn xinetd(site: &Site) -> (Daemon, u16) {
    let xinetd = require("xinetd");
    let port = free_port();
    let dir = site.path().join("xinetd");
    std::fs::create_dir_all(&dir).expect("mkdir xinetd");
    let user = if nix::unistd::geteuid().is_root() {
        "    user        = root\n"
    } else {
        ""
    };
    let conf = format!(
        "defaults\n{{\n    log_type = FILE {dir}/xinetd.log\n    log_on_success = PID HOST DURATION EXIT\n    log_on_failure = HOST\n    instances = 20\n}}\n\
         service qpsmtpd-test\n{{\n    type        = UNLISTED\n    port        = {port}\n    bind        = 127.0.0.1\n    socket_type = stream\n    protocol    = tcp\n    wait        = no\n{user}    server      = {bin}\n    server_args = --config-dir {config}\n    disable     = no\n}}\n",
        dir = dir.display(),
        bin = qpsmtpd_bin().display(),
        config = site.config_dir().display(),
    );
    let conf_path = dir.join("xinetd.conf");
    std::fs::write(&conf_path, conf).expect("write xinetd.conf");
    let mut cmd = Command::new(xinetd);
    cmd.arg("-f")
        .arg(&conf_path)
        .arg("-pidfile")
        .arg(dir.join("xinetd.pid"))
        .arg("-dontfork");
    let d = Daemon::start("xinetd", cmd, &dir.join("xinetd.out"));
    wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(10));
    (d, port)
}

#[test]
fn xinetd_peer_address_comes_from_the_socket() {
    // Under xinetd, stderr is the client's socket too: this site logs nothing.
    let site = Site::new().file("loglevel", "0");
    let (_xinetd, port) = xinetd(&site);
    let mut c = greet_from(port, 4, "xinetd.test");
    assert_eq!(
        c.cmd("HELO xinetd.test"),
        "250 test.example Hi [127.0.0.4] [127.0.0.4]; I am so happy to meet you.\r\n"
    );
    deliver_and_check_received(&site, c, 4, "xinetd.test");
}

/// Connects from 127.0.0.`octet` and says EHLO; the server must see that address.
fn greet_from(port: u16, octet: u8, helo: &str) -> Client {
    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet));
    let (mut c, banner) = Client::connect_from(from, ([127, 0, 0, 1], port).into());
    assert!(banner.starts_with("220 test.example ESMTP"), "{banner:?}");
    let ehlo = c.cmd(&format!("EHLO {helo}"));
    let hi = format!("250-test.example Hi [{from}] [{from}]\r\n");
    assert!(ehlo.starts_with(&hi), "{ehlo:?}");
    c
}

/// Sends one message, quits, and checks the maildir holds it with a Received header that
/// names 127.0.0.`octet` and the HELO name.
fn deliver_and_check_received(site: &Site, mut c: Client, octet: u8, helo: &str) {
    let reply = c.send_mail(
        "a@sender.test",
        &["joe@example.com"],
        &message(helo, "hello"),
    );
    assert!(reply.starts_with("250 2.0.0 "), "{reply:?}");
    assert!(c.cmd("QUIT").starts_with("221 "));
    let messages = site.messages();
    assert_eq!(messages.len(), 1);
    let received = format!("Received: from [127.0.0.{octet}] (HELO {helo}) (127.0.0.{octet})\n");
    assert!(lf(&messages[0]).contains(&received), "{}", messages[0]);
}

#[test]
fn xinetd_log_lines_never_reach_the_client() {
    // xinetd hands the server the socket as stdin, stdout *and* stderr. Whatever the
    // loglevel, the client must see SMTP replies and nothing else.
    let site = Site::new();
    let (_xinetd, port) = xinetd(&site);
    let (mut c, banner) = Client::connect(port);
    assert!(
        banner.starts_with("220 test.example ESMTP"),
        "the client's first line is not the banner: {banner:?}"
    );
    let ehlo = c.cmd("EHLO xinetd.test");
    assert!(
        ehlo.starts_with("250-test.example Hi [127.0.0.1] [127.0.0.1]\r\n"),
        "{ehlo:?}"
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    let quit = c.cmd("QUIT");
    assert_eq!(
        quit,
        "221 2.0.0 test.example closing connection. Have a wonderful day.\r\n"
    );
}

#[test]
fn systemd_socket_activate_inetd_mode() {
    let site = Site::new();
    let port = free_port();
    let mut cmd = Command::new(require("systemd-socket-activate"));
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--inetd", "-a"])
        .arg(qpsmtpd_bin())
        .arg("--config-dir")
        .arg(site.config_dir());
    let activator = Daemon::start("systemd-socket-activate", cmd, &site.path().join("ssa.log"));
    wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(10));

    // No environment at all: the peer is what getpeername(0) says.
    let c = greet_from(port, 6, "systemd.test");
    deliver_and_check_received(&site, c, 6, "systemd.test");
    // The activator's stderr is the session's stderr: the log is there, and the session
    // ends cleanly.
    let log = activator.wait_for_log("dispatching EHLO systemd.test", WAIT);
    let pid = log
        .lines()
        .find(|l| l.contains("dispatching EHLO systemd.test"))
        .and_then(|l| l.split_whitespace().next())
        .expect("pid")
        .to_string();
    let log = activator.wait_for_log(&format!("Child {pid} died with code 0"), WAIT);
    // The plugin's line comes from that same process, with the session's id after the pid.
    assert!(
        log.lines().any(|l| l.starts_with(&format!("{pid} "))
            && l.ends_with(" (rcpt) rcpt_ok: pass: example.com in rcpthosts")),
        "{log}"
    );
}

#[test]
fn swaks_pipe_serves_a_session_over_pipes() {
    let site = Site::new();
    let command = format!(
        "{} --config-dir {}",
        qpsmtpd_bin().display(),
        site.config_dir().display()
    );
    let out = Command::new(require("swaks"))
        .args(["--pipe", &command])
        .args(["--helo", "pipe.test", "--from", "a@sender.test"])
        .args(["--to", "joe@example.com", "--header", "Subject: piped"])
        .args(["--body", "over a pipe", "--timeout", "20"])
        .env_remove("TCPREMOTEIP")
        .env_remove("REMOTE_HOST")
        .env_remove("RELAYCLIENT")
        .output()
        .expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "swaks failed:\n{text}");
    // Pipes have no peer and nothing in the environment names one.
    assert!(
        text.contains("<-  250-test.example Hi [0.0.0.0] [0.0.0.0]"),
        "{text}"
    );
    assert!(text.contains("<-  250 2.0.0 "), "{text}");
    let messages = site.messages();
    assert_eq!(messages.len(), 1, "{text}");
    let m = lf(&messages[0]);
    assert!(m.contains("Subject: piped\n"), "{m}");
    assert!(
        m.contains("Received: from [0.0.0.0] (HELO pipe.test) (0.0.0.0)\n"),
        "{m}"
    );
}

/// The reply codes in a transcript, one per (possibly multi-line) reply.
fn reply_codes(transcript: &str) -> Vec<u16> {
    transcript
        .lines()
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .filter_map(|l| l[..3].parse().ok())
        .collect()
}

#[test]
fn pipe_session_takes_the_peer_from_tcpremoteip() {
    let site = Site::new();
    let input = "EHLO pipe.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<joe@example.com>\r\nDATA\r\n\
                 Subject: from a script\r\n\r\nhello\r\n.\r\nQUIT\r\n";
    let (out, err) = site.pipe_session(
        &[("TCPREMOTEIP", "192.0.2.7"), ("TCPREMOTEPORT", "4711")],
        input.as_bytes(),
    );
    assert_eq!(
        reply_codes(&out),
        [220, 250, 250, 250, 354, 250, 221],
        "{out}"
    );
    assert!(
        out.contains("250-test.example Hi [192.0.2.7] [192.0.2.7]\r\n"),
        "{out}"
    );
    assert!(err.contains("dispatching EHLO pipe.test"), "{err}");
    assert!(
        err.contains("(rcpt) rcpt_ok: pass: example.com in rcpthosts"),
        "{err}"
    );
    let messages = site.messages();
    assert_eq!(messages.len(), 1, "{out}\n{err}");
    assert!(
        lf(&messages[0]).contains("Received: from [192.0.2.7] (HELO pipe.test) (192.0.2.7)\n"),
        "{}",
        messages[0]
    );
}

#[test]
fn broken_configuration_gives_the_client_a_421() {
    let site = Site::new();
    let maildir = site.maildir();
    let site = site.file(
        "plugins",
        &format!(
            "rcpt_ok\nno_such_plugin\nqueue/maildir {}",
            maildir.display()
        ),
    );
    let (server, port) = tcpserver(&site, None, &[]);
    let (mut c, banner) = Client::connect(port);
    assert!(banner.starts_with("421 4.3.0 "), "{banner:?}");
    assert!(banner.ends_with("\r\n"), "{banner:?}");
    assert!(
        c.is_closed(),
        "the connection should be closed after the 421"
    );
    let log = server.wait_for_session_end("configuration error", WAIT);
    assert!(
        log.contains("plugins:2"),
        "the log should name plugins:2:\n{log}"
    );
    assert!(log.contains("no_such_plugin"), "{log}");
}
