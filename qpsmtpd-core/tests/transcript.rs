//! Transcript tests: whole SMTP conversations through the in-memory transport, asserting
//! exactly what the client reads.

use qpsmtpd_core::testing::{Harness, TestServer};
use qpsmtpd_core::{Address, Context, Hook, Params, Plugin, Registration, Reply, Verdict};
use std::sync::{Arc, Mutex};

/// Answers `verdict` on `hook`, declines elsewhere; `rcpt` and `queue` accept unless told
/// otherwise, so messages can flow.
struct Scripted {
    hook: Hook,
    verdict: Verdict,
}

impl Scripted {
    fn on(&self, hook: Hook) -> Verdict {
        if hook == self.hook {
            self.verdict.clone()
        } else {
            Verdict::Declined
        }
    }
}

impl Plugin for Scripted {
    fn hooks(&self) -> Vec<Registration> {
        vec![self.hook.into()]
    }
    fn connect(&self, _: &mut Context<'_>) -> Verdict {
        self.on(Hook::Connect)
    }
    fn helo(&self, _: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
        self.on(Hook::Helo)
    }
    fn ehlo(&self, _: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
        self.on(Hook::Ehlo)
    }
    fn mail(&self, _: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.on(Hook::Mail)
    }
    fn rcpt(&self, _: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.on(Hook::Rcpt)
    }
    fn data(&self, _: &mut Context<'_>) -> Verdict {
        self.on(Hook::Data)
    }
    fn data_headers_end(&self, _: &mut Context<'_>) -> Verdict {
        self.on(Hook::DataHeadersEnd)
    }
    fn data_post(&self, _: &mut Context<'_>) -> Verdict {
        self.on(Hook::DataPost)
    }
    fn queue_pre(&self, _: &mut Context<'_>) -> Verdict {
        self.on(Hook::QueuePre)
    }
    fn queue(&self, _: &mut Context<'_>) -> Verdict {
        self.on(Hook::Queue)
    }
    fn vrfy(&self, _: &mut Context<'_>, _: &str) -> Verdict {
        self.on(Hook::Vrfy)
    }
    fn noop(&self, _: &mut Context<'_>, _: &str) -> Verdict {
        self.on(Hook::Noop)
    }
    fn help(&self, _: &mut Context<'_>, _: &str) -> Verdict {
        self.on(Hook::Help)
    }
    fn quit(&self, _: &mut Context<'_>) -> Verdict {
        self.on(Hook::Quit)
    }
    fn unrecognized_command(&self, _: &mut Context<'_>, _: &str, _: &str) -> Verdict {
        self.on(Hook::UnrecognizedCommand)
    }
}

/// Accepts every recipient and queues into memory (the message text is kept).
#[derive(Default, Clone)]
struct MemoryQueue(Arc<Mutex<Vec<String>>>);

impl Plugin for MemoryQueue {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Rcpt.into(), Hook::Queue.into()]
    }
    fn rcpt(&self, _: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        Verdict::ok()
    }
    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        let mut out = Vec::new();
        cx.transaction_mut().write_message(&mut out).unwrap();
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&out).into_owned());
        Verdict::ok_with("Queued!")
    }
}

/// A server that accepts every recipient and queues into memory.
fn accepting() -> (TestServer, MemoryQueue) {
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .plugin("memory_queue", queue.clone())
        .build()
        .unwrap();
    (server, queue)
}

fn scripted(hook: Hook, verdict: Verdict) -> (TestServer, MemoryQueue) {
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .plugin("scripted", Scripted { hook, verdict })
        .plugin("memory_queue", queue.clone())
        .build()
        .unwrap();
    (server, queue)
}

const MESSAGE: &str = "From: a@example.com\r\nSubject: test\r\n\r\nhello\r\n..dot line";

#[test]
fn a_whole_conversation() {
    let (server, queue) = accepting();
    let mut s = server.session();
    assert_eq!(
        s.connect(),
        format!(
            "220 test.example ESMTP qpsmtpd {} ready; send us your mail, but not your spam.\r\n",
            qpsmtpd_core::VERSION
        )
    );
    assert_eq!(
        s.command("EHLO client.example"),
        "250-test.example Hi [127.0.0.1] [127.0.0.1]\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 0\r\n250 ENHANCEDSTATUSCODES\r\n"
    );
    assert_eq!(
        s.command("MAIL FROM:<a@example.com>"),
        "250 2.1.0 <a@example.com>, sender OK - how exciting to get mail from you!\r\n"
    );
    assert_eq!(
        s.command("RCPT TO:<b@example.com>"),
        "250 2.1.5 <b@example.com>, recipient ok\r\n"
    );
    assert_eq!(s.data(MESSAGE), "250 2.0.0 Queued!\r\n");
    assert_eq!(s.command("NOOP"), "250 2.0.0 OK\r\n");
    assert_eq!(s.command("RSET"), "250 2.0.0 OK\r\n");
    assert_eq!(
        s.command("VRFY postmaster"),
        "252 2.1.5 Just try sending a mail and we'll see how it turns out ...\r\n"
    );
    assert_eq!(
        s.command("QUIT"),
        "221 2.0.0 test.example closing connection. Have a wonderful day.\r\n"
    );
    assert!(s.is_closed());

    let msgs = queue.0.lock().unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    // Our headers on top: Authentication-Results, Received, then the client's.
    let lines: Vec<&str> = m.lines().collect();
    assert_eq!(lines[0], "Authentication-Results: test.example;");
    assert_eq!(lines[1], "\tauth=none");
    assert_eq!(
        lines[2],
        "Received: from [127.0.0.1] (HELO client.example) (127.0.0.1)"
    );
    assert!(
        lines[3].starts_with(&format!(
            "\tby test.example (qpsmtpd/{}) with ESMTP; ",
            qpsmtpd_core::VERSION
        )),
        "{}",
        lines[3]
    );
    // Line ends are LF inside the server and dot-stuffing is undone.
    assert!(
        m.ends_with("From: a@example.com\nSubject: test\n\nhello\n.dot line\n"),
        "{m:?}"
    );
}

#[test]
fn helo_reply_and_repeated_hello() {
    let (server, _) = accepting();
    let mut s = server.session();
    s.connect();
    assert_eq!(
        s.command("HELO client.example"),
        "250 test.example Hi [127.0.0.1] [127.0.0.1]; I am so happy to meet you.\r\n"
    );
    assert!(s.command("MAIL FROM:<a@example.com>").starts_with("250 "));
    // A second greeting is allowed (RFC 5321 4.1.4) and starts over.
    assert!(s.command("EHLO client.example").starts_with("250-"));
    assert_eq!(
        s.command("RCPT TO:<b@example.com>"),
        "503 5.5.1 Use MAIL before RCPT\r\n"
    );
    assert_eq!(
        s.command("HELO"),
        "501 5.5.4 helo requires domain/address - see RFC-2821 4.1.1.1\r\n"
    );
}

#[test]
fn verdicts_become_replies() {
    // (hook, verdict, the command that triggers it, expected reply, session still open)
    let cases: Vec<(Hook, Verdict, &str, &str, bool)> = vec![
        (
            Hook::Helo,
            Verdict::Deny(None),
            "HELO x",
            "550 5.7.1 Your HELO was refused\r\n",
            true,
        ),
        (
            Hook::Helo,
            Verdict::deny_soft("slow down"),
            "HELO x",
            "450 4.7.1 slow down\r\n",
            true,
        ),
        (
            Hook::Ehlo,
            Verdict::deny_disconnect("bye"),
            "EHLO x",
            "550 5.7.1 bye\r\n",
            false,
        ),
        (
            Hook::Mail,
            Verdict::Deny(None),
            "MAIL FROM:<s@x.example>",
            "550 5.7.1 <s@x.example>, denied\r\n",
            true,
        ),
        (
            Hook::Mail,
            Verdict::DenySoft(None),
            "MAIL FROM:<s@x.example>",
            "450 4.7.1 <s@x.example>, temporarily denied\r\n",
            true,
        ),
        (
            Hook::Mail,
            Verdict::DenySoftDisconnect(None),
            "MAIL FROM:<s@x.example>",
            "421 4.7.1 <s@x.example>, temporarily denied\r\n",
            false,
        ),
        (
            Hook::Vrfy,
            Verdict::ok(),
            "VRFY x",
            "250 2.1.5 User OK\r\n",
            true,
        ),
        (
            Hook::Vrfy,
            Verdict::Deny(None),
            "VRFY x",
            "554 5.7.1 Access Denied\r\n",
            true,
        ),
        (
            Hook::Noop,
            Verdict::Deny(None),
            "NOOP",
            "500 5.5.1 Stop wasting my time.\r\n",
            true,
        ),
        (
            Hook::Noop,
            Verdict::DenyDisconnect(None),
            "NOOP",
            "500 5.5.1 Stop wasting my time.\r\n",
            false,
        ),
        (
            Hook::Help,
            Verdict::ok_with("line one\nline two"),
            "HELP",
            "214-2.0.0 line one\r\n214 2.0.0 line two\r\n",
            true,
        ),
        (
            Hook::UnrecognizedCommand,
            Verdict::Declined,
            "FOO bar",
            "500 5.5.1 Unrecognized command\r\n",
            true,
        ),
        (
            Hook::UnrecognizedCommand,
            Verdict::DenyDisconnect(None),
            "FOO bar",
            "521 5.5.1 Unrecognized command\r\n",
            false,
        ),
        (
            Hook::UnrecognizedCommand,
            Verdict::done(Reply::new(220, "2.0.0", "Ready to start TLS")),
            "STARTTLS",
            "220 2.0.0 Ready to start TLS\r\n",
            true,
        ),
        (
            Hook::Quit,
            Verdict::done(Reply::new(221, "2.0.0", "so long\nand thanks")),
            "QUIT",
            "221-2.0.0 so long\r\n221 2.0.0 and thanks\r\n",
            false,
        ),
    ];
    for (hook, verdict, command, want, open) in cases {
        let (server, _) = scripted(hook, verdict.clone());
        let mut s = server.session();
        s.connect();
        if hook != Hook::Helo && hook != Hook::Ehlo {
            s.command("EHLO client.example");
        }
        assert_eq!(s.command(command), want, "{hook} {verdict:?}");
        assert_eq!(!s.is_closed(), open, "{hook} {verdict:?}");
    }
}

#[test]
fn rcpt_is_denied_unless_a_plugin_says_ok() {
    let server = Harness::new().build().unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    s.command("MAIL FROM:<>");
    assert_eq!(
        s.command("RCPT TO:<x@example.com>"),
        "450 4.7.1 No plugin decided if relaying is allowed\r\n"
    );
    assert_eq!(s.command("DATA"), "503 5.5.1 RCPT first\r\n");
}

#[test]
fn message_stage_verdicts() {
    let cases: Vec<(Hook, Verdict, &str)> = vec![
        (
            Hook::Data,
            Verdict::Deny(None),
            "554 5.7.1 Message denied\r\n",
        ),
        (
            Hook::Data,
            Verdict::DenySoft(None),
            "451 4.7.1 Message denied temporarily\r\n",
        ),
        (
            Hook::DataPost,
            Verdict::Deny(None),
            "552 5.7.1 Message denied\r\n",
        ),
        (
            Hook::DataPost,
            Verdict::deny_soft("4.7.0 greylisted"),
            "452 4.7.0 greylisted\r\n",
        ),
        (
            Hook::DataHeadersEnd,
            Verdict::Deny(None),
            "554 5.7.1 Message denied\r\n",
        ),
        (
            Hook::QueuePre,
            Verdict::Done(None),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n",
        ),
        (
            Hook::QueuePre,
            Verdict::DenySoft(None),
            "452 4.3.0 Message denied temporarily\r\n",
        ),
    ];
    for (hook, verdict, want) in cases {
        let (server, queue) = scripted(hook, verdict.clone());
        let mut s = server.session();
        s.connect();
        s.command("EHLO c");
        s.command("MAIL FROM:<a@example.com>");
        s.command("RCPT TO:<b@example.com>");
        // DATA refused: the client must not send the message.
        let reply = if hook == Hook::Data {
            s.command("DATA")
        } else {
            s.data(MESSAGE)
        };
        assert_eq!(reply, want, "{hook} {verdict:?}");
        assert!(queue.0.lock().unwrap().is_empty(), "{hook}: nothing queued");
        // The transaction was reset and the session goes on in step.
        assert_eq!(
            s.command("RCPT TO:<b@example.com>"),
            "503 5.5.1 Use MAIL before RCPT\r\n",
            "{hook}"
        );
    }
}

#[test]
fn queue_failures_are_never_250() {
    let server = Harness::new()
        .plugin(
            "accept",
            Scripted {
                hook: Hook::Rcpt,
                verdict: Verdict::ok(),
            },
        )
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    assert_eq!(
        s.mail("a@example.com", &["b@example.com"], MESSAGE),
        "451 4.3.0 Queuing declined or disabled; try again later\r\n"
    );
    for (verdict, want) in [
        (Verdict::Deny(None), "552 5.3.0 Message denied\r\n"),
        (
            Verdict::DenySoft(None),
            "452 4.3.0 Message denied temporarily\r\n",
        ),
        (
            Verdict::Done(None),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n",
        ),
    ] {
        let server = Harness::new()
            .plugin(
                "accept",
                Scripted {
                    hook: Hook::Rcpt,
                    verdict: Verdict::ok(),
                },
            )
            .plugin(
                "queue",
                Scripted {
                    hook: Hook::Queue,
                    verdict: verdict.clone(),
                },
            )
            .build()
            .unwrap();
        let mut s = server.session();
        s.connect();
        s.command("EHLO c");
        assert_eq!(
            s.mail("a@example.com", &["b@example.com"], MESSAGE),
            want,
            "{verdict:?}"
        );
    }
}

/// Records the hooks it sees, in order.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn note(&self, cx: &Context<'_>) -> Verdict {
        self.0.lock().unwrap().push(cx.hook().to_string());
        Verdict::Declined
    }
}

impl Plugin for Recorder {
    fn hooks(&self) -> Vec<Registration> {
        Hook::ALL
            .iter()
            .filter(|h| {
                !matches!(
                    h,
                    Hook::Logging | Hook::Config | Hook::UserConfig | Hook::Ok | Hook::Deny
                )
            })
            .map(|&h| h.into())
            .collect()
    }
    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn ehlo_parse(&self, cx: &mut Context<'_>, _: &str, _: &mut Vec<String>) -> Verdict {
        self.note(cx)
    }
    fn ehlo(&self, cx: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
        self.note(cx)
    }
    fn mail_parse(
        &self,
        cx: &mut Context<'_>,
        _: &str,
        _: &mut qpsmtpd_core::protocol::PathArgs,
    ) -> Verdict {
        self.note(cx)
    }
    fn mail_pre(&self, cx: &mut Context<'_>, _: &mut String, _: &mut Params) -> Verdict {
        self.note(cx)
    }
    fn mail(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.note(cx)
    }
    fn rcpt_parse(
        &self,
        cx: &mut Context<'_>,
        _: &str,
        _: &mut qpsmtpd_core::protocol::PathArgs,
    ) -> Verdict {
        self.note(cx)
    }
    fn rcpt_pre(&self, cx: &mut Context<'_>, _: &mut String, _: &mut Params) -> Verdict {
        self.note(cx)
    }
    fn rcpt(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.note(cx)
    }
    fn data(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn data_headers_end(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn data_post_headers(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn received_line(&self, cx: &mut Context<'_>, _: &str, _: &str, _: &str) -> Verdict {
        self.note(cx)
    }
    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn queue_pre(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn queue_post(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn quit(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn reset_transaction(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn disconnect(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
    fn post_connection(&self, cx: &mut Context<'_>) -> Verdict {
        self.note(cx)
    }
}

#[test]
fn hooks_fire_in_order() {
    let rec = Recorder::default();
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .plugin("recorder", rec.clone())
        .plugin("queue", queue)
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    s.mail("a@example.com", &["b@example.com"], MESSAGE);
    s.command("QUIT");
    let seen = rec.0.lock().unwrap().join(" ");
    assert_eq!(
        seen,
        "connect ehlo_parse ehlo reset_transaction mail_parse mail_pre mail rcpt_parse rcpt_pre rcpt \
         data data_headers_end data_post_headers received_line data_post queue_pre queue queue_post \
         reset_transaction quit disconnect reset_transaction post-connection"
    );
}

/// Answers with a fixed message on `rcpt`, registered with a priority.
struct Prioritised(&'static str, i32);
impl Plugin for Prioritised {
    fn hooks(&self) -> Vec<Registration> {
        vec![Registration::with_priority(Hook::Rcpt, self.1)]
    }
    fn rcpt(&self, _: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        Verdict::deny(self.0)
    }
}

#[test]
fn priorities_order_plugins() {
    let server = Harness::new()
        .plugin("late", Prioritised("late", 10))
        .plugin("early", Prioritised("early", -10))
        .plugin("default", Prioritised("default", 0))
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    s.command("MAIL FROM:<>");
    assert_eq!(s.command("RCPT TO:<x@y.example>"), "550 5.7.1 early\r\n");
}

struct Panicky;
impl Plugin for Panicky {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Mail.into(), Hook::DataPost.into()]
    }
    fn mail(&self, _: &mut Context<'_>, sender: &Address, _: &Params) -> Verdict {
        if sender.user() == "boom" {
            panic!("plugin bug");
        }
        Verdict::Declined
    }
    fn data_post(&self, _: &mut Context<'_>) -> Verdict {
        panic!("content filter bug");
    }
}

#[test]
fn a_panicking_plugin_fails_closed_and_the_session_goes_on() {
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .file("size_threshold", "10")
        .plugin("panicky", Panicky)
        .plugin("queue", queue.clone())
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    assert_eq!(
        s.command("MAIL FROM:<boom@example.com>"),
        "450 4.3.0 Internal error, please try again later\r\n"
    );
    assert_eq!(
        s.mail(
            "ok@example.com",
            &["b@example.com"],
            &format!("Subject: x\r\n\r\n{}", "body ".repeat(100))
        ),
        "452 4.3.0 Internal error, please try again later\r\n"
    );
    assert!(queue.0.lock().unwrap().is_empty());
    assert_eq!(s.command("NOOP"), "250 2.0.0 OK\r\n");
    // The spooled body went away with the transaction.
    assert_eq!(std::fs::read_dir(server.spool_dir()).unwrap().count(), 0);
}

#[test]
fn bad_input_gets_a_reply_and_the_session_stays_in_sync() {
    let (server, queue) = accepting();
    let mut s = server.session();
    s.connect();
    assert_eq!(
        s.command("MAIL FROM:<a@b.example>"),
        "503 5.5.1 please say hello first ...\r\n"
    );
    s.command("EHLO c");
    assert_eq!(
        s.command(&format!("NOOP {}", "x".repeat(600))),
        "500 5.5.2 Line too long\r\n"
    );
    assert_eq!(
        s.send(b"NO\0OP\r\n"),
        "501 5.5.2 NUL character not allowed in command\r\n"
    );
    assert_eq!(s.command("DATA"), "503 5.5.1 MAIL first\r\n");
    assert_eq!(
        s.command("MAIL FROM:a@b.example"),
        "501 5.1.7 could not parse your mail from command\r\n"
    );
    assert_eq!(
        s.command("MAIL FROM:<a@b.example> BAD=x=y"),
        "501 5.5.4 Syntax error in parameters\r\n"
    );
    assert_eq!(
        s.command("MAIL TO:<a@b.example>"),
        "501 5.5.2 Syntax error in command\r\n"
    );
    s.command("MAIL FROM:<a@b.example>");
    assert_eq!(
        s.command("RCPT TO:<>"),
        "501 5.1.3 could not parse recipient\r\n"
    );
    assert_eq!(
        s.command("RCPT TO:postmaster"),
        "250 2.1.5 <postmaster>, recipient ok\r\n"
    );
    assert_eq!(s.command(""), "500 5.5.1 Unrecognized command\r\n");
    assert_eq!(s.command("NOOP"), "250 2.0.0 OK\r\n");
    assert!(queue.0.lock().unwrap().is_empty());
}

#[test]
fn recipient_limit() {
    let server = Harness::new()
        .file("max_recipients", "3")
        .plugin("queue", MemoryQueue::default())
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    s.command("MAIL FROM:<a@example.com>");
    for i in 0..3 {
        assert!(
            s.command(&format!("RCPT TO:<r{i}@example.com>"))
                .starts_with("250 ")
        );
    }
    assert_eq!(
        s.command("RCPT TO:<r3@example.com>"),
        "452 4.5.3 Too many recipients\r\n"
    );
    assert_eq!(s.data(MESSAGE), "250 2.0.0 Queued!\r\n");
}

#[test]
fn databytes() {
    let server = Harness::new()
        .file("databytes", "100")
        .plugin("queue", MemoryQueue::default())
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    assert!(s.command("EHLO c").contains("250-SIZE 100\r\n"));
    assert_eq!(
        s.command("MAIL FROM:<a@example.com> SIZE=101"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert!(
        s.command("MAIL FROM:<a@example.com> SIZE=99")
            .starts_with("250 ")
    );
    s.command("RCPT TO:<b@example.com>");
    assert_eq!(s.data(&"x".repeat(200)), "552 5.3.4 Message too big!\r\n");
    assert_eq!(s.command("NOOP"), "250 2.0.0 OK\r\n");
}

#[test]
fn smuggled_second_message_is_refused_whole() {
    for smuggle in ["\n.\r\n", "\r\n.\n", "\r.\r\n", "\n.\n"] {
        let (server, queue) = accepting();
        let mut s = server.session();
        s.connect();
        s.command("EHLO c");
        s.command("MAIL FROM:<a@example.com>");
        s.command("RCPT TO:<b@example.com>");
        let body = format!(
            "Subject: one\r\n\r\nfirst{smuggle}MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond"
        );
        assert_eq!(
            s.data(&body),
            "554 5.5.2 Bare CR or LF in message, see RFC 5321 section 2.3.8\r\n",
            "{smuggle:?}"
        );
        assert!(queue.0.lock().unwrap().is_empty(), "{smuggle:?}");
        assert_eq!(s.command("NOOP"), "250 2.0.0 OK\r\n");
    }
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let (server, queue) = accepting();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    let out = s.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
    assert_eq!(codes, ["250", "250", "250", "354", "250", "221"], "{out}");
    assert_eq!(queue.0.lock().unwrap().len(), 1);
}

#[test]
fn client_strings_cannot_break_headers() {
    let (server, queue) = accepting();
    let mut s = server.session();
    s.connect();
    s.command("EHLO evil\u{1}Bcc:x");
    s.mail("a@example.com", &["b@example.com"], MESSAGE);
    let m = queue.0.lock().unwrap()[0].clone();
    assert!(m.contains("(HELO evil?Bcc:x)"), "{m}");
    assert!(!m.contains('\u{1}'));
}

#[test]
fn disconnect_mid_data_leaves_nothing_behind() {
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .file("size_threshold", "16")
        .plugin("q", queue.clone())
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    s.command("MAIL FROM:<a@example.com>");
    s.command("RCPT TO:<b@example.com>");
    let out =
        s.send(format!("DATA\r\nSubject: x\r\n\r\n{}", "partial body ".repeat(50)).as_bytes());
    assert!(out.starts_with("354 "), "{out}");
    s.hang_up();
    assert!(s.is_closed());
    assert!(queue.0.lock().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(server.spool_dir()).unwrap().count(), 0);
}

#[test]
fn plugins_add_ehlo_keywords_and_keep_per_session_state() {
    struct Caps;
    impl Plugin for Caps {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Ehlo.into(), Hook::Noop.into()]
        }
        fn ehlo(&self, cx: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
            cx.advertise("STARTTLS");
            Verdict::Declined
        }
        fn noop(&self, cx: &mut Context<'_>, _: &str) -> Verdict {
            let n: &mut u32 = cx.state::<u32>();
            *n += 1;
            Verdict::ok_with(format!("noop number {n}"))
        }
    }
    let server = Harness::new().plugin("caps", Caps).build().unwrap();
    let mut a = server.session();
    let mut b = server.session();
    a.connect();
    b.connect();
    assert!(
        a.command("EHLO c")
            .ends_with("250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n")
    );
    assert_eq!(a.command("NOOP"), "250 2.0.0 noop number 1\r\n");
    assert_eq!(a.command("NOOP"), "250 2.0.0 noop number 2\r\n");
    assert_eq!(b.command("NOOP"), "250 2.0.0 noop number 1\r\n");
}

/// Per-recipient settings for tests: `big@` may receive 1000 bytes, `small@` 10.
struct SizePerRecipient;
impl Plugin for SizePerRecipient {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::UserConfig.into()]
    }
    fn user_config(&self, _: &mut Context<'_>, rcpt: &Address, name: &str) -> Option<Vec<String>> {
        match (rcpt.user(), name) {
            ("big", "databytes") => Some(vec!["1000".into()]),
            ("small", "databytes") => Some(vec!["10".into()]),
            _ => None,
        }
    }
}

#[test]
fn per_recipient_databytes() {
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .plugin("sizes", SizePerRecipient)
        .plugin("queue", queue.clone())
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    // The announced size is checked against each recipient's limit.
    s.command("MAIL FROM:<a@example.com> SIZE=500");
    assert_eq!(
        s.command("RCPT TO:<big@example.com>"),
        "250 2.1.5 <big@example.com>, recipient ok\r\n"
    );
    assert_eq!(
        s.command("RCPT TO:<small@example.com>"),
        "552 5.3.4 Message size exceeds the recipient's maximum message size\r\n"
    );
    assert_eq!(s.data(&"x".repeat(400)), "250 2.0.0 Queued!\r\n");
    // Without SIZE, the smallest limit of the accepted recipients holds for the message.
    s.command("MAIL FROM:<a@example.com>");
    s.command("RCPT TO:<big@example.com>");
    s.command("RCPT TO:<small@example.com>");
    assert_eq!(s.data(&"x".repeat(400)), "552 5.3.4 Message too big!\r\n");
    s.command("MAIL FROM:<a@example.com>");
    s.command("RCPT TO:<other@example.com>");
    assert_eq!(s.data(&"x".repeat(4000)), "250 2.0.0 Queued!\r\n");
    assert_eq!(queue.0.lock().unwrap().len(), 2);
}

#[test]
fn every_log_line_names_the_session_and_transaction() {
    let logs = qpsmtpd_core::testing::LogCapture::default();
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .plugin("logs", logs.clone())
        .plugin("queue", queue)
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO client.example");
    s.mail("a@example.com", &["b@example.com"], MESSAGE);
    s.command("MAIL FROM:<c@example.com>");
    s.command("QUIT");
    let records = logs.records();
    let session = records[0].session.clone().expect("session id");
    assert!(records.iter().all(|r| r.session.as_ref() == Some(&session)));
    let events: Vec<(u32, &str)> = records
        .iter()
        .filter(|r| {
            r.level <= qpsmtpd_core::Level::Info && !r.message.starts_with(char::is_numeric)
        })
        .map(|r| (r.transaction, r.message.as_str()))
        .collect();
    let events: Vec<String> = events.iter().map(|(t, m)| format!("{t} {m}")).collect();
    let joined = events.join("\n");
    for want in [
        "0 connect from 127.0.0.1 ([127.0.0.1])",
        "0 ehlo client.example",
        "1 mail from <a@example.com>",
        "1 rcpt to <b@example.com>: accepted",
        "1 queued: from <a@example.com> to <b@example.com>: 250 2.0.0 Queued!",
        "3 mail from <c@example.com>",
        "4 disconnect",
    ] {
        assert!(
            events.iter().any(|e| e == want),
            "{want:?} not in:\n{joined}"
        );
    }
    // A second session gets its own id.
    let mut t = server.session();
    t.connect();
    let other = logs.records().last().unwrap().session.clone().unwrap();
    assert_ne!(other, session);
}

/// Adds an SPF result for the message and an iprev result for the connection.
struct Results;
impl Plugin for Results {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Connect.into(), Hook::DataPostHeaders.into()]
    }
    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        cx.add_connection_auth_result("iprev=pass policy.iprev=127.0.0.1");
        Verdict::Declined
    }
    fn data_post_headers(&self, cx: &mut Context<'_>) -> Verdict {
        cx.add_auth_result("spf=pass smtp.mailfrom=example.com");
        Verdict::Declined
    }
}

#[test]
fn authentication_results_are_ours_alone() {
    let queue = MemoryQueue::default();
    let server = Harness::new()
        .plugin("results", Results)
        .plugin("queue", queue.clone())
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    let forged = "Authentication-Results: test.example; spf=pass smtp.mailfrom=bank.example\r\n\
                  Authentication-Results: upstream.example; dkim=pass header.d=example.com\r\n\
                  Subject: x\r\n\r\nbody";
    assert_eq!(
        s.mail("a@example.com", &["b@example.com"], forged),
        "250 2.0.0 Queued!\r\n"
    );
    let m = queue.0.lock().unwrap()[0].clone();
    assert!(
        m.starts_with(
            "Authentication-Results: test.example;\n\tauth=none;\n\tiprev=pass policy.iprev=127.0.0.1;\n\tspf=pass smtp.mailfrom=example.com\nReceived: "
        ),
        "{m}"
    );
    // The forged verdict under our name is renamed; another server's is kept as it was.
    assert!(
        m.contains("\nAuthentication-Results: upstream.example; dkim=pass header.d=example.com\n"),
        "{m}"
    );
    assert!(
        m.contains(
            "\nOriginal-Authentication-Results: test.example; spf=pass smtp.mailfrom=bank.example\n"
        ),
        "{m}"
    );
    assert_eq!(
        m.matches("\nAuthentication-Results: test.example").count(),
        0,
        "{m}"
    );
}
