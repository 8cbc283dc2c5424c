//! `queue/smtp-forward` through the real binary (under tcpserver) to Postfix's smtp-sink
//! as the downstream server: what arrives there, and what our client hears when the
//! downstream server refuses or is not there at all.

use qpsmtpd_tests::{Client, Daemon, Site, free_port, require, set_mode, tcpserver, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// smtp-sink on a free port, dumping each message into `<site>/sink/`. `extra` injects
/// failures (`-f RCPT`, `-B reply`, ...).
fn smtp_sink(site: &Site, extra: &[&str]) -> (Daemon, u16, PathBuf) {
    let dir = site.path().join("sink");
    std::fs::create_dir_all(&dir).expect("mkdir sink");
    set_mode(&dir, 0o1777);
    let port = free_port();
    let mut cmd = Command::new(require("smtp-sink"));
    if nix::unistd::geteuid().is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(extra)
        .arg("-d")
        .arg(format!("{}/", dir.display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("10");
    let d = Daemon::start("smtp-sink", cmd, &site.path().join("sink.log"));
    wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(10));
    (d, port, dir)
}

/// A site that forwards everything to 127.0.0.1:`port`.
fn forwarding_site(port: u16) -> Site {
    Site::new().file(
        "plugins",
        &format!("rcpt_ok\nqueue/smtp-forward 127.0.0.1 {port}"),
    )
}

/// The files smtp-sink has written.
fn dumps(dir: &Path) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned())
        .collect()
}

/// Waits for a dump that contains `needle`.
fn wait_for_dump(dir: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(d) = dumps(dir).into_iter().find(|d| d.contains(needle)) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "no dump containing {needle:?} in {}: {:?}",
            dir.display(),
            dumps(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hello(port: u16) -> Client {
    let (mut c, banner) = Client::connect(port);
    assert!(banner.starts_with("220 "), "{banner:?}");
    assert!(c.cmd("EHLO client.test").starts_with("250-"));
    c
}

#[test]
fn forwards_envelope_and_message_to_the_downstream_server() {
    let probe = Site::new();
    let (_sink, sink_port, sink_dir) = smtp_sink(&probe, &[]);
    let site = forwarding_site(sink_port);
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    // `..` on the wire is a line that starts with one dot; `...` one with two.
    let message = "From: <a@sender.test>\r\nTo: <joe@example.com>\r\nSubject: forwarded\r\n\r\n\
                   first line\r\n..a line starting with a dot\r\n...two dots\r\nlast line\r\n";
    let reply = c.send_mail(
        "a@sender.test",
        &["joe@example.com", "ann@example.com"],
        message,
    );
    assert!(reply.starts_with("250 "), "{reply:?}");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert!(c.cmd("QUIT").starts_with("221 "));

    let dump = wait_for_dump(&sink_dir, "last line");
    assert!(
        dump.contains("X-Mail-Args: <a@sender.test>"),
        "wrong sender:\n{dump}"
    );
    assert!(
        dump.contains("X-Rcpt-Args: <joe@example.com>\nX-Rcpt-Args: <ann@example.com>\n"),
        "wrong recipients:\n{dump}"
    );
    assert!(dump.contains("Subject: forwarded\n"), "{dump}");
    assert!(
        dump.contains("\nfirst line\n.a line starting with a dot\n..two dots\nlast line\n"),
        "dot-stuffed lines were not carried intact:\n{dump}"
    );
    // It went through us: our Received header is on it.
    assert!(
        dump.contains(
            "Received: from [127.0.0.1] (HELO client.test) (127.0.0.1)\n\tby test.example (qpsmtpd/"
        ),
        "{dump}"
    );
    assert_eq!(dumps(&sink_dir).len(), 1, "one message, one dump");
    assert!(site.spool_files().is_empty());
}

/// Sends one message through us to a downstream smtp-sink started with `sink_args` (or to
/// a closed port when `None`), checks that our session is still in step afterwards, and
/// returns our reply to the message.
fn forward_one(sink_args: Option<&[&str]>, to: &str) -> String {
    let probe = Site::new();
    let sink = sink_args.map(|args| smtp_sink(&probe, args));
    let sink_port = sink.as_ref().map_or_else(free_port, |(_, port, _)| *port);
    let site = forwarding_site(sink_port);
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    let reply = c.send_mail(
        "a@sender.test",
        &[to],
        "Subject: forwarded\r\n\r\nhello\r\n",
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert!(c.cmd("QUIT").starts_with("221 "));
    assert!(site.spool_files().is_empty());
    reply
}

#[test]
fn downstream_permanent_rcpt_refusal_reaches_our_client() {
    let reply = forward_one(
        Some(&["-f", "RCPT", "-B", "550 5.1.1 Recipient unknown downstream"]),
        "nobody@example.com",
    );
    assert!(
        reply.starts_with("550 5.1.1 ") && reply.contains("Recipient unknown downstream"),
        "the downstream reply was not passed through: {reply:?}"
    );
}

#[test]
fn downstream_temporary_rcpt_refusal_is_temporary_for_our_client() {
    let reply = forward_one(
        Some(&["-r", "RCPT", "-b", "450 4.2.0 Mailbox busy downstream"]),
        "joe@example.com",
    );
    assert!(reply.starts_with('4'), "not a temporary refusal: {reply:?}");
}

#[test]
fn downstream_hanging_up_after_the_data_is_never_a_250() {
    // smtp-sink reads the final dot and closes the connection without a reply.
    let reply = forward_one(Some(&["-q", "."]), "joe@example.com");
    assert!(reply.starts_with("451 "), "{reply:?}");
}

#[test]
fn downstream_port_closed_gives_451_4_4_1() {
    let reply = forward_one(None, "joe@example.com");
    assert!(reply.starts_with("451 4.4.1 "), "{reply:?}");
}
