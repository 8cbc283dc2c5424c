//! Policy, hygiene and logging plugins through the real binary under tcpserver, as a
//! client and an administrator see them: replies, closed connections, log lines in files
//! and at a syslog listener, and `qpsmtpd summarize`.

use qpsmtpd_tests::{Client, Site, qpsmtpd_bin, run_with_input, tcpserver};
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// A message with the headers a well-behaved client writes.
fn message(subject: &str) -> String {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
    format!("From: <a@sender.test>\r\nDate: {date}\r\nSubject: {subject}\r\n\r\nhello\r\n")
}

#[test]
fn earlytalker_refuses_a_client_that_talks_first() {
    let site = with_plugins(
        Site::new(),
        "earlytalker wait 1\nrcpt_ok\nqueue/maildir MAILDIR",
    );
    let (_server, port) = tcpserver(&site, None, &[]);

    // Talks at once, before the greeting.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"EHLO impatient.test\r\n").expect("write");
    let (mut c, first) = Client::on_stream(s);
    assert_eq!(
        first,
        "550 5.7.1 Connecting host started transmitting before SMTP greeting\r\n"
    );
    assert!(c.is_closed());

    // Waits for the greeting: served.
    let (mut c, banner) = Client::connect(port);
    assert!(banner.starts_with("220 test.example ESMTP"), "{banner:?}");
    assert!(c.cmd("EHLO patient.test").starts_with("250-"));
    let reply = c.send_mail("a@sender.test", &["joe@example.com"], &message("patient"));
    assert!(reply.starts_with("250 "), "{reply:?}");
}

/// Writes `config/plugins` with `MAILDIR` replaced by the site's maildir.
fn with_plugins(site: Site, plugins: &str) -> Site {
    let maildir = site.maildir().display().to_string();
    site.file("plugins", &plugins.replace("MAILDIR", &maildir))
}

#[test]
fn naughty_defers_a_sender_refusal_to_rcpt() {
    let site = with_plugins(
        Site::new(),
        "badmailfrom reject naughty\nnaughty reject rcpt\nrcpt_ok\nqueue/maildir MAILDIR",
    )
    .file(
        "badmailfrom",
        "@spammer.test  We do not take mail from spammer.test",
    );
    let (server, port) = tcpserver(&site, None, &[]);
    let (mut c, _) = Client::connect(port);
    c.cmd("EHLO client.test");
    // The sender is accepted; the refusal waits for the recipient.
    assert!(c.cmd("MAIL FROM:<bulk@spammer.test>").starts_with("250 "));
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "550 5.7.1 (badmailfrom) We do not take mail from spammer.test\r\n"
    );
    assert!(c.cmd("QUIT").starts_with("221 "));
    assert!(site.messages().is_empty());
    let log = server.wait_for_log("(rcpt) naughty: fail:", Duration::from_secs(10));
    assert!(log.contains("(mail) badmailfrom: fail, naughty:"), "{log}");
}

#[test]
fn count_unrecognized_commands_disconnects() {
    let site = with_plugins(
        Site::new(),
        "count_unrecognized_commands 3\nrcpt_ok\nqueue/maildir MAILDIR",
    );
    let (_server, port) = tcpserver(&site, None, &[]);
    let (mut c, _) = Client::connect(port);
    assert_eq!(c.cmd("FOO"), "500 5.5.1 Unrecognized command\r\n");
    assert_eq!(c.cmd("BAR baz"), "500 5.5.1 Unrecognized command\r\n");
    assert_eq!(
        c.cmd("GET / HTTP/1.0"),
        "521 5.5.1 Closing connection, 3 unrecognized commands. Perhaps you should read RFC 2821?\r\n"
    );
    assert!(c.is_closed());
}

#[test]
fn headers_refuses_a_message_without_a_date() {
    let site = with_plugins(
        Site::new(),
        "headers require From,Date\nrcpt_ok\nqueue/maildir MAILDIR",
    );
    let (_server, port) = tcpserver(&site, None, &[]);
    let (mut c, _) = Client::connect(port);
    c.cmd("EHLO client.test");
    let reply = c.send_mail(
        "a@sender.test",
        &["joe@example.com"],
        "From: <a@sender.test>\r\nSubject: no date\r\n\r\nhello\r\n",
    );
    assert!(
        reply.starts_with("552 ") && reply.contains("Date"),
        "{reply:?}"
    );
    // The session goes on, and a message with a Date gets through.
    let reply = c.send_mail("a@sender.test", &["joe@example.com"], &message("dated"));
    assert!(reply.starts_with("250 "), "{reply:?}");
    assert_eq!(site.messages().len(), 1);
}

#[test]
fn logging_file_writes_time_stamped_lines_with_the_session_id() {
    let site = Site::new();
    let logfile = site.path().join("qpsmtpd.log");
    let site = site.file(
        "logging",
        &format!(
            "logging/file loglevel LOGINFO tsformat %s {}",
            logfile.display()
        ),
    );
    let (_server, port) = tcpserver(&site, None, &[]);
    let (mut c, _) = Client::connect(port);
    c.cmd("EHLO logged.test");
    c.cmd("QUIT");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&logfile).unwrap_or_default();
        if text.contains(" disconnect\n") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ehlo = text
        .lines()
        .find(|l| l.ends_with(" ehlo logged.test"))
        .unwrap_or_else(|| panic!("no ehlo line in:\n{text}"));
    // `<epoch seconds> <pid> <session>.<transaction> ehlo logged.test`
    let fields: Vec<&str> = ehlo.split(' ').collect();
    assert!(fields[0].parse::<u64>().is_ok(), "{ehlo}");
    assert!(fields[1].parse::<u32>().is_ok(), "{ehlo}");
    assert_eq!(fields[2].split('.').count(), 4, "{ehlo}");
    // The reply to QUIT, logged in the same session.
    let session = fields[2]
        .rsplit_once('.')
        .map(|(s, _)| s)
        .expect("session id");
    let quit = text
        .lines()
        .find(|l| l.ends_with(" 221 2.0.0 test.example closing connection. Have a wonderful day."))
        .unwrap_or_else(|| panic!("no 221 line in:\n{text}"));
    assert!(quit.contains(&format!(" {session}.")), "{quit}");
}

#[test]
fn logging_syslog_sends_to_a_udp_listener() {
    let listener = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let port = listener.local_addr().expect("addr").port();
    let site = Site::new().file(
        "logging",
        &format!("logging/syslog loglevel LOGINFO ident qpsmtpd-e2e logsock udp:127.0.0.1:{port}"),
    );
    let (_server, smtp_port) = tcpserver(&site, None, &[]);
    let (mut c, _) = Client::connect(smtp_port);
    c.cmd("EHLO syslogged.test");
    c.cmd("QUIT");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = listener.recv(&mut buf) {
        let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = datagram.contains("ehlo syslogged.test");
        seen.push(datagram);
        if done {
            break;
        }
    }
    let line = seen
        .iter()
        .find(|d| d.contains("ehlo syslogged.test"))
        .unwrap_or_else(|| panic!("no ehlo line among {seen:?}"));
    // <facility*8+severity>: mail (2) and info (6) is <22>; then the tag with the pid.
    assert!(line.starts_with("<22>"), "{line}");
    assert!(line.contains("qpsmtpd-e2e["), "{line}");
}

#[test]
fn summarize_makes_one_row_per_connection() {
    let site = with_plugins(
        Site::new().file("loglevel", "6"),
        "relay\nbadmailfrom\nrcpt_ok\nqueue/maildir MAILDIR",
    )
    .file("badmailfrom", "@spammer.test");
    let (server, port) = tcpserver(&site, None, &[]);
    let (mut c, _) = Client::connect(port);
    c.cmd("EHLO good.test");
    assert!(
        c.send_mail("a@sender.test", &["joe@example.com"], &message("good"))
            .starts_with("250 ")
    );
    c.cmd("QUIT");
    let (mut c, _) = Client::connect(port);
    c.cmd("HELO bad.test");
    assert!(c.cmd("MAIL FROM:<x@spammer.test>").starts_with("550 "));
    c.cmd("QUIT");
    server.wait_for_log("bad.test", Duration::from_secs(10));
    // Both sessions have ended once both disconnect lines are there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log_text().matches(" disconnect\n").count() < 2 {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut cmd = Command::new(qpsmtpd_bin());
    cmd.arg("summarize");
    let out = run_with_input(cmd, server.log_text().as_bytes(), Duration::from_secs(20));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    // tcpserver's own lines (`pid 123 from 127.0.0.1`) are not sessions; the readiness probe
    // of the test harness is one, without a HELO.
    assert!(
        rows.iter()
            .all(|r| r.len() == 7 && r[0].split('.').count() == 3),
        "{table}"
    );
    assert_eq!(rows.iter().filter(|r| r[2] != "-").count(), 2, "{table}");
    let good = rows.iter().find(|r| r[2] == "good.test").expect("good row");
    assert_eq!(good[1], "127.0.0.1");
    assert_eq!(good[3], "<a@sender.test>");
    assert_eq!(good[4], "<joe@example.com>");
    assert!(
        good[5].contains("badmailfrom:pass") && good[5].contains("rcpt_ok:pass"),
        "{table}"
    );
    assert_eq!(good[6], "queued");
    let bad = rows.iter().find(|r| r[2] == "bad.test").expect("bad row");
    assert!(bad[5].contains("badmailfrom:fail"), "{table}");
    assert!(
        bad[6].starts_with("no mail") || bad[6].starts_with("closed"),
        "{table}"
    );
}

#[test]
fn a_plugin_line_that_does_not_load_names_file_and_line() {
    let site = with_plugins(
        Site::new(),
        "rcpt_ok\nheaders future soon\nqueue/maildir MAILDIR",
    );
    let out = run_with_input(site.command(), b"QUIT\r\n", Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.starts_with("421 4.3.0 "), "{stdout}");
    assert!(stderr.contains("plugins:2: headers:"), "{stderr}");
}
