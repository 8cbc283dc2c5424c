//! What a client gets for bad input, through the real binary under tcpserver: each case
//! checks the reply and that the session is still in step afterwards (the next command
//! gets its own reply, a following good message is delivered).

use qpsmtpd_tests::{Client, Site, fixture, tcpserver};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn message(subject: &str) -> String {
    format!("From: <a@sender.test>\r\nTo: <joe@example.com>\r\nSubject: {subject}\r\n\r\nhello\r\n")
}

/// Connects and says EHLO.
fn hello(port: u16) -> Client {
    hello_as(port, "client.test")
}

/// Connects and says `EHLO <name>` (a name the test can find in the log).
fn hello_as(port: u16, name: &str) -> Client {
    let (mut c, banner) = Client::connect(port);
    assert!(banner.starts_with("220 "), "{banner:?}");
    let ehlo = c.cmd(&format!("EHLO {name}"));
    assert!(ehlo.starts_with("250-"), "{ehlo:?}");
    c
}

/// The session is in step: NOOP gets its own 250, and a good message is delivered.
fn still_in_step(c: &mut Client, site: &Site, subject: &str) {
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    let before = site.messages().len();
    let reply = c.send_mail("a@sender.test", &["joe@example.com"], &message(subject));
    assert!(reply.starts_with("250 2.0.0 "), "{reply:?}");
    let messages = site.messages();
    assert_eq!(messages.len(), before + 1);
    assert!(
        messages
            .iter()
            .any(|m| m.contains(&format!("Subject: {subject}"))),
        "{messages:?}"
    );
}

fn quit(c: &mut Client) {
    assert!(c.cmd("QUIT").starts_with("221 2.0.0 "));
}

#[test]
fn command_line_over_512_octets() {
    let site = Site::new();
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    // 512 octets with the CRLF is the limit (RFC 5321 4.5.3.1.4) ...
    assert_eq!(
        c.cmd(&format!("NOOP {}", "x".repeat(505))),
        "250 2.0.0 OK\r\n"
    );
    // ... one more is too long.
    assert_eq!(
        c.cmd(&format!("NOOP {}", "x".repeat(506))),
        "500 5.5.2 Line too long\r\n"
    );
    // A long MAIL is refused as a whole: no sender was set.
    assert_eq!(
        c.cmd(&format!("MAIL FROM:<{}@example.com>", "a".repeat(5000))),
        "500 5.5.2 Line too long\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "503 5.5.1 Use MAIL before RCPT\r\n"
    );
    // A line longer than any input buffer gets one reply, not one per buffer.
    assert_eq!(
        c.cmd(&format!("NOOP {}", "y".repeat(200_000))),
        "500 5.5.2 Line too long\r\n"
    );
    still_in_step(&mut c, &site, "after long lines");
    quit(&mut c);
}

#[test]
fn nul_in_a_command() {
    let site = Site::new();
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    assert_eq!(
        c.cmd("NOOP a\0b"),
        "501 5.5.2 NUL character not allowed in command\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a\0@sender.test>"),
        "501 5.5.2 NUL character not allowed in command\r\n"
    );
    // The refused MAIL set no sender.
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "503 5.5.1 Use MAIL before RCPT\r\n"
    );
    still_in_step(&mut c, &site, "after a NUL");
    quit(&mut c);
}

#[test]
fn more_than_100_recipients_by_default() {
    let site = Site::new();
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
    for i in 1..=100 {
        let r = c.cmd(&format!("RCPT TO:<user{i}@example.com>"));
        assert_eq!(
            r,
            format!("250 2.1.5 <user{i}@example.com>, recipient ok\r\n")
        );
    }
    assert_eq!(
        c.cmd("RCPT TO:<user101@example.com>"),
        "452 4.5.3 Too many recipients\r\n"
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    // The 100 accepted recipients still make a message.
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(message("to a hundred").as_bytes());
    assert!(c.cmd(".").starts_with("250 2.0.0 "));
    assert_eq!(site.messages().len(), 1);
    still_in_step(&mut c, &site, "after a hundred");
    quit(&mut c);
}

#[test]
fn max_recipients_from_the_config() {
    let site = Site::new().file("max_recipients", "3");
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    for round in 0..2 {
        assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
        for i in 1..=3 {
            assert!(
                c.cmd(&format!("RCPT TO:<user{i}@example.com>"))
                    .starts_with("250 2.1.5 "),
                "round {round}, recipient {i}"
            );
        }
        for i in 4..=5 {
            assert_eq!(
                c.cmd(&format!("RCPT TO:<user{i}@example.com>")),
                "452 4.5.3 Too many recipients\r\n"
            );
        }
        // The limit is per message: a new transaction gets three more.
        assert_eq!(c.cmd("RSET"), "250 2.0.0 OK\r\n");
    }
    still_in_step(&mut c, &site, "after the limit");
    quit(&mut c);
}

#[test]
fn header_block_larger_than_max_header_size() {
    let site = Site::new().file("max_header_size", "200");
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<joe@example.com>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    let mut big = String::from("Subject: big header\r\n");
    for i in 0..20 {
        big.push_str(&format!("X-Filler-{i:02}: {}\r\n", "f".repeat(40)));
    }
    big.push_str("\r\nthe body\r\n");
    c.send(big.as_bytes());
    // Nothing is answered while the client is still sending ...
    c.set_read_timeout(Duration::from_millis(500));
    assert_eq!(c.reply(), "", "a reply came before the end of the data");
    c.set_read_timeout(Duration::from_secs(30));
    // ... the refusal comes once the data has been read to its end.
    assert_eq!(c.cmd("."), "552 5.3.4 Message header too big\r\n");
    assert!(site.messages().is_empty());
    still_in_step(&mut c, &site, "small header");
    assert!(!site.messages().concat().contains("X-Filler"));
    quit(&mut c);
}

#[test]
fn timeoutsmtpd_closes_a_silent_connection() {
    let site = Site::new().file("timeoutsmtpd", "1");
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    // The limit is on silence, not on the session: a client that keeps talking stays.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    }
    let start = Instant::now();
    let reply = c.reply();
    let waited = start.elapsed();
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert!(reply.contains("Connection Timed Out"), "{reply:?}");
    assert!(
        waited >= Duration::from_millis(800),
        "timed out after {waited:?}, before the second was up"
    );
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    assert!(
        c.is_closed(),
        "the connection should be closed after the 421"
    );
}

#[test]
fn commands_out_of_order() {
    let site = Site::new();
    let (_server, port) = tcpserver(&site, None, &[]);
    let (mut c, banner) = Client::connect(port);
    assert!(banner.starts_with("220 "));
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test>"),
        "503 5.5.1 please say hello first ...\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "503 5.5.1 Use MAIL before RCPT\r\n"
    );
    assert_eq!(c.cmd("DATA"), "503 5.5.1 MAIL first\r\n");
    assert!(c.cmd("EHLO client.test").starts_with("250-"));
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "503 5.5.1 Use MAIL before RCPT\r\n"
    );
    assert_eq!(c.cmd("DATA"), "503 5.5.1 MAIL first\r\n");
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
    assert_eq!(c.cmd("DATA"), "503 5.5.1 RCPT first\r\n");
    assert!(c.cmd("RCPT TO:<joe@example.com>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(message("in order at last").as_bytes());
    assert!(c.cmd(".").starts_with("250 2.0.0 "));
    assert_eq!(site.messages().len(), 1);
    still_in_step(&mut c, &site, "after the mix-up");
    quit(&mut c);
}

#[test]
fn smtp_smuggling_is_refused_as_one_message() {
    let site = Site::new();
    let (server, port) = tcpserver(&site, None, &[]);
    let variants = ["\n.\r\n", "\r.\r\n", "\r\n.\n"];
    for (i, fake_end) in variants.iter().enumerate() {
        let mut c = hello_as(port, &format!("smuggler-{i}.test"));
        assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
        assert!(c.cmd("RCPT TO:<joe@example.com>").starts_with("250 "));
        assert!(c.cmd("DATA").starts_with("354 "));
        let data = format!(
            "Subject: smuggler {i}\r\n\r\nhello{fake_end}MAIL FROM:<evil@x>\r\nRCPT TO:<v@example.com>\r\nDATA\r\n\
             Subject: smuggled\r\n\r\nevil body\r\n.\r\n"
        );
        c.send(data.as_bytes());
        let reply = c.reply();
        assert!(
            reply.starts_with("554 5.5.2 "),
            "variant {fake_end:?}: {reply:?}"
        );
        // Exactly one reply: the next one belongs to our NOOP, not to a smuggled command.
        assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n", "variant {fake_end:?}");
        // The smuggled MAIL did not start a transaction.
        assert_eq!(
            c.cmd("RCPT TO:<v@example.com>"),
            "503 5.5.1 Use MAIL before RCPT\r\n",
            "variant {fake_end:?}"
        );
        assert!(
            site.messages().is_empty(),
            "variant {fake_end:?}: {:?}",
            site.messages()
        );
        quit(&mut c);
        server.wait_for_session_end(&format!("dispatching EHLO smuggler-{i}.test"), WAIT);
    }
    let mut c = hello_as(port, "honest.test");
    still_in_step(&mut c, &site, "honest mail");
    quit(&mut c);
    let messages = site.messages();
    assert_eq!(messages.len(), 1);
    assert!(!messages[0].contains("evil"), "{}", messages[0]);
    let log = server.wait_for_session_end("dispatching EHLO honest.test", WAIT);
    assert!(
        !log.contains("evil@x"),
        "a smuggled command was read:\n{log}"
    );
}

#[test]
fn disconnect_in_the_middle_of_data_leaves_nothing_behind() {
    let site = Site::new().file("size_threshold", "10");
    let (server, port) = tcpserver(&site, None, &[]);
    let body = format!("{}\r\n", "b".repeat(78)).repeat(200);

    // The client goes away without a word.
    let mut c = hello_as(port, "vanishing.test");
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<joe@example.com>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(format!("Subject: cut short\r\n\r\n{body}").as_bytes());
    wait_for_spool_file(&site);
    drop(c);
    let log = server.wait_for_session_end("dispatching EHLO vanishing.test", WAIT);
    assert!(
        log.contains("client disconnected during DATA, message discarded"),
        "{log}"
    );
    assert_eq!(site.spool_files(), Vec::<PathBuf>::new());
    assert!(site.messages().is_empty());

    // The client closes its sending side: it hears that the data was incomplete.
    let mut c = hello_as(port, "half-closing.test");
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<joe@example.com>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(format!("Subject: cut short\r\n\r\n{body}").as_bytes());
    wait_for_spool_file(&site);
    c.shutdown_write();
    assert_eq!(c.reply(), "451 4.3.0 Incomplete DATA\r\n");
    assert!(c.is_closed());
    server.wait_for_session_end("dispatching EHLO half-closing.test", WAIT);
    assert_eq!(site.spool_files(), Vec::<PathBuf>::new());
    assert!(site.messages().is_empty());
}

/// Waits until the body has gone to a spool file.
fn wait_for_spool_file(site: &Site) {
    let deadline = Instant::now() + WAIT;
    while site.spool_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no spool file in {}",
            site.spool_dir().display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn databytes_limits_the_message_size() {
    let site = Site::new().file("databytes", "1000");
    let (_server, port) = tcpserver(&site, None, &[]);
    let (mut c, _) = Client::connect(port);
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.contains("\r\n250-SIZE 1000\r\n"), "{ehlo:?}");

    // Declared too big: refused at MAIL.
    assert_eq!(
        c.cmd("MAIL FROM:<a@b> SIZE=5000"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<joe@example.com>"),
        "503 5.5.1 Use MAIL before RCPT\r\n"
    );
    assert!(c.cmd("MAIL FROM:<a@b> SIZE=500").starts_with("250 "));
    assert_eq!(c.cmd("RSET"), "250 2.0.0 OK\r\n");

    // Not declared, and too big: refused once the data has been read.
    assert!(c.cmd("MAIL FROM:<a@b>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<joe@example.com>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    let big = format!(
        "Subject: too big\r\n\r\n{}",
        format!("{}\r\n", "z".repeat(98)).repeat(50)
    );
    assert!(big.len() >= 5000);
    c.send(big.as_bytes());
    assert_eq!(c.cmd("."), "552 5.3.4 Message too big!\r\n");
    assert!(site.messages().is_empty());
    still_in_step(&mut c, &site, "small enough");
    quit(&mut c);
}

/// A copy of the fake qmail-queue in `<site>/qq/`, exiting with `exit`.
fn fake_qmail_queue(site: &Site, exit: &str) -> PathBuf {
    let dir = site.path().join("qq");
    std::fs::create_dir_all(&dir).expect("mkdir qq");
    let path = dir.join("qmail-queue");
    std::fs::copy(fixture("fake-qmail-queue"), &path).expect("copy fake-qmail-queue");
    std::fs::write(dir.join("exit"), format!("{exit}\n")).expect("write exit");
    path
}

fn qmail_queue_site() -> (Site, PathBuf) {
    let site = Site::new();
    let qq = fake_qmail_queue(&site, "0");
    let site = site.file(
        "plugins",
        &format!("rcpt_ok\nqueue/qmail-queue {}", qq.display()),
    );
    (site, qq.parent().expect("qq dir").to_path_buf())
}

#[test]
fn qmail_queue_failure_is_a_temporary_error() {
    let (site, qq) = qmail_queue_site();
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    // Exit 53 (qmail-queue: "write error"), death by a signal, and an exit before
    // reading anything: none of them is a 250.
    for (exit, early) in [("53", false), ("KILL", false), ("53", true)] {
        std::fs::write(qq.join("exit"), format!("{exit}\n")).expect("write exit");
        if early {
            std::fs::write(qq.join("early"), "").expect("write early");
        }
        let reply = c.send_mail(
            "a@sender.test",
            &["joe@example.com"],
            &message(&format!("qmail-queue {exit}")),
        );
        assert!(
            reply.starts_with("451 4.3.0 "),
            "exit {exit}, early {early}: {reply:?}"
        );
        assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    }
    quit(&mut c);
}

#[test]
fn qmail_queue_success_hands_over_message_and_envelope() {
    let (site, qq) = qmail_queue_site();
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    let reply = c.send_mail(
        "a@sender.test",
        &["joe@example.com", "ann@example.com"],
        &message("handed to qmail-queue"),
    );
    assert!(reply.starts_with("250 "), "{reply:?}");
    let envelope = std::fs::read(qq.join("envelope")).expect("envelope recorded");
    assert_eq!(
        String::from_utf8_lossy(&envelope),
        "Fa@sender.test\0Tjoe@example.com\0Tann@example.com\0\0"
    );
    let m =
        String::from_utf8_lossy(&std::fs::read(qq.join("message")).expect("message")).into_owned();
    assert!(m.contains("Subject: handed to qmail-queue\n"), "{m:?}");
    assert!(
        m.contains("Received: from [127.0.0.1] (HELO client.test) (127.0.0.1)\n"),
        "{m:?}"
    );
    assert!(m.ends_with("\n\nhello\n"), "{m:?}");

    // The null sender is an empty F line.
    std::fs::remove_file(qq.join("envelope")).expect("rm envelope");
    let r = c.cmd("MAIL FROM:<>");
    assert!(r.starts_with("250 "), "{r:?}");
    assert!(c.cmd("RCPT TO:<joe@example.com>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(message("a bounce").as_bytes());
    let reply = c.cmd(".");
    assert!(reply.starts_with("250 "), "{reply:?}");
    let envelope = std::fs::read(qq.join("envelope")).expect("envelope recorded");
    assert_eq!(
        String::from_utf8_lossy(&envelope),
        "F\0Tjoe@example.com\0\0"
    );
    quit(&mut c);
}

#[test]
fn no_queue_plugin_means_no_250() {
    let site = Site::new().file("plugins", "rcpt_ok");
    let (_server, port) = tcpserver(&site, None, &[]);
    let mut c = hello(port);
    let reply = c.send_mail("a@sender.test", &["joe@example.com"], &message("nowhere"));
    assert_eq!(
        reply,
        "451 4.3.0 Queuing declined or disabled; try again later\r\n"
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    quit(&mut c);
}
