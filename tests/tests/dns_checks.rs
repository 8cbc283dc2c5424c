//! DNS checks and email authentication through the real binary under tcpserver, against a
//! real authoritative DNS server (knot) with the fixture zones. Clients connect from
//! chosen 127.0.0.x addresses; 127.0.0.2 is listed in bl.test.

use qpsmtpd_core::testing::{DnsServer, SilentDns};
use qpsmtpd_tests::{Client, Site, tcprules, tcpserver, workspace};
use std::net::{IpAddr, Ipv4Addr};

/// A site whose resolver is `dns`, with `plugins` before rcpt_ok and the maildir.
fn site(dns_servers: &str, plugins: &str) -> Site {
    let site = Site::new()
        .file("dns_servers", dns_servers)
        .file("dns_timeout", "2");
    let maildir = site.maildir().display().to_string();
    site.file(
        "plugins",
        &format!("{plugins}\nrcpt_ok\nqueue/maildir {maildir}"),
    )
}

fn from(octet: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet))
}

/// Connects from 127.0.0.`octet` and greets.
fn hello(port: u16, octet: u8) -> Client {
    let (mut c, banner) = Client::connect_from(from(octet), ([127, 0, 0, 1], port).into());
    assert!(banner.starts_with("220 "), "{banner:?}");
    assert!(c.cmd("EHLO client.example.test").starts_with("250-"));
    c
}

fn message(from: &str, subject: &str) -> String {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
    format!(
        "From: <{from}>\r\nTo: <joe@example.com>\r\nDate: {date}\r\nMessage-ID: <{subject}@example.test>\r\n\
         Subject: {subject}\r\n\r\nhello\r\n"
    )
}

#[test]
fn dnsbl_refuses_a_listed_client_but_postmaster_stays_reachable() {
    let dns = DnsServer::start();
    let site =
        site(&dns.addr().to_string(), "dnsbl").file("dnsbl_zones", "bl.test\nbl2.test\nbl3.test");
    let (_server, port) = tcpserver(&site, None, &[]);

    let mut listed = hello(port, 2);
    assert!(listed.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    let refused = listed.cmd("RCPT TO:<joe@example.com>");
    assert!(
        refused.starts_with("550 5.7.1 ")
            && refused.contains("127.0.0.2 is the test entry of bl.test"),
        "{refused:?}"
    );
    assert!(
        listed
            .cmd("RCPT TO:<postmaster@example.com>")
            .starts_with("250 ")
    );

    let mut clean = hello(port, 1);
    let reply = clean.send_mail(
        "a@example.test",
        &["joe@example.com"],
        &message("a@example.test", "clean"),
    );
    assert!(reply.starts_with("250 "), "{reply:?}");
    assert_eq!(site.messages().len(), 1);
}

#[test]
fn spf_refuses_a_forgery_and_annotates_a_pass() {
    let dns = DnsServer::start();
    let site = site(&dns.addr().to_string(), "sender_permitted_from reject 3");
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port, 1);
    // fail.spf.test allows only 192.0.2.10.
    let reply = c.cmd("MAIL FROM:<a@fail.spf.test>");
    assert!(reply.starts_with("550 5.7.1 SPF - forgery"), "{reply:?}");
    // example.test allows 127.0.0.0/8.
    let reply = c.send_mail(
        "a@example.test",
        &["joe@example.com"],
        &message("a@example.test", "spf"),
    );
    assert!(reply.starts_with("250 "), "{reply:?}");
    let m = site.messages().remove(0);
    assert!(
        m.contains("\nReceived-SPF: pass ") || m.starts_with("Received-SPF: pass "),
        "{m}"
    );
    assert!(m.contains("spf=pass smtp.mailfrom=example.test"), "{m}");
}

#[test]
fn a_dns_timeout_is_a_temporary_refusal_never_a_250() {
    let silent = SilentDns::start();
    let site = site(&silent.addr(), "sender_permitted_from reject 3").file("dns_timeout", "0.5");
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port, 1);
    let reply = c.cmd("MAIL FROM:<a@fail.spf.test>");
    assert!(reply.starts_with("451 4.4.3 "), "{reply:?}");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert!(site.messages().is_empty());
}

#[test]
fn dkim_signs_for_relay_clients_and_the_signature_verifies_on_the_way_in() {
    let dns = DnsServer::start();
    let key = std::fs::read_to_string(workspace().join("tests/fixtures/dns/keys/rsa2048.pem"))
        .expect("key");
    let site = site(&dns.addr().to_string(), "relay\ndkim")
        .file("dkim/example.test/selector", "rsa")
        .file("dkim/example.test/private", &key);
    let rules = tcprules(&site, "127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n");
    let (_server, port) = tcpserver(&site, Some(&rules), &[]);

    // Out: a relay client's message is signed.
    let mut out = hello(port, 1);
    let reply = out.send_mail(
        "joe@example.test",
        &["friend@elsewhere.test"],
        &message("joe@example.test", "signed"),
    );
    assert!(reply.starts_with("250 "), "{reply:?}");
    let signed = site.messages().remove(0);
    assert!(
        signed.contains("DKIM-Signature: v=1; a=rsa-sha256;")
            || signed.contains("\nDKIM-Signature:"),
        "{signed}"
    );
    assert!(
        signed.contains("d=example.test") && signed.contains("s=rsa"),
        "{signed}"
    );

    // In: the stored message, trace headers and all, sent again by a client that is not a
    // relay client, verifies: the signature does not cover the headers added after it.
    let body: String = signed.replace('\n', "\r\n");
    let mut inbound = hello(port, 3);
    let reply = inbound.send_mail("joe@example.test", &["joe@example.com"], &body);
    assert!(reply.starts_with("250 "), "{reply:?}");
    let verified = site
        .messages()
        .into_iter()
        .find(|m| m.contains("Delivered-To: joe@example.com"))
        .expect("second");
    let ar_end = verified.find("\nReceived:").expect("Received");
    let ar = &verified[..ar_end];
    assert!(
        ar.contains("dkim=pass header.d=example.test header.s=rsa"),
        "{ar}"
    );
}

#[test]
fn the_whole_chain_passes_a_good_message_with_one_authentication_results_header() {
    let dns = DnsServer::start();
    let site = site(
        &dns.addr().to_string(),
        "fcrdns\ndnsbl\nhelo\nrhsbl\nsender_permitted_from reject 3\ndkim reject 0\ndmarc",
    )
    .file("dnsbl_zones", "bl.test\nbl2.test\nbl3.test")
    .file("rhsbl_zones", "rhsbl.test");
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port, 1);
    let reply = c.send_mail(
        "a@example.test",
        &["joe@example.com"],
        &message("a@example.test", "chain"),
    );
    assert!(reply.starts_with("250 "), "{reply:?}");
    let m = site.messages().remove(0);
    let ar: String = m
        .lines()
        .skip_while(|l| !l.starts_with("Authentication-Results: test.example;"))
        .take_while(|l| !l.starts_with("Received:"))
        .collect::<Vec<_>>()
        .join("\n");
    // (A loopback client passes fcrdns without a lookup, so there is no iprev entry.)
    for want in [
        "auth=none",
        "spf=pass smtp.mailfrom=example.test",
        "dkim=none",
        "dmarc=pass (p=reject dis=none) header.from=example.test",
    ] {
        assert!(ar.contains(want), "{want:?} not in:\n{ar}");
    }
    assert_eq!(
        m.matches("Authentication-Results: test.example;").count(),
        1,
        "{m}"
    );
}
