//! # NAME
//!
//! queue/qmail-queue - hand accepted mail to qmail-queue
//!
//! # DESCRIPTION
//!
//! Queues every accepted message with `qmail-queue` (or a program that speaks its
//! protocol: a virus-scanning wrapper, `spamc` glue, notqmail's or s/qmail's replacement),
//! the way qmail-smtpd does. The program is started for each message with no arguments;
//! the message (header, blank line, body; LF line ends) goes to its fd 0, then the
//! envelope to its fd 1:
//!
//! ```text
//! F<sender>\0 T<recipient>\0 T<recipient>\0 ... \0
//! ```
//!
//! Addresses are written as `user@domain` without angle brackets; the null sender is
//! empty. The client gets `250 2.0.0 Queued! <time> qp <pid> <Message-Id>` only when the
//! program exits 0 after reading everything. Any other exit status is answered as
//! qmail-smtpd answers it:
//!
//! | exit | reply |
//! |---|---|
//! | 11, 115 | `554 5.1.3 envelope address too long for qq` |
//! | 31 | `554 5.3.0 mail server permanently rejected message` |
//! | 51 | `451 4.3.0 qq out of memory` |
//! | 52 | `451 4.3.0 qq timeout` |
//! | 53 | `451 4.3.0 qq write error or disk full` |
//! | 54 | `451 4.3.0 qq read error` |
//! | 55 | `451 4.3.0 qq unable to read configuration` |
//! | 56 | `451 4.3.0 qq trouble making network connection` |
//! | 61 | `451 4.3.0 qq trouble in home directory` |
//! | 62-66 | `451 4.3.0 qq trouble creating files in queue` |
//! | 71 | `451 4.3.0 mail server temporarily rejected message` |
//! | 72 | `451 4.4.1 connection to mail server timed out` |
//! | 73 | `451 4.4.1 connection to mail server rejected` |
//! | 74 | `451 4.4.2 communication with mail server failed` |
//! | 81, 91 | `451 4.3.0 qq internal bug` |
//! | 120 | `451 4.3.0 unable to exec qq` |
//! | other 11-40 | `554 5.3.0 qq permanent problem` |
//! | anything else | `451 4.3.0 qq temporary problem` |
//!
//! A program that dies by a signal gives `451 4.3.0 qq crashed`; one that cannot be
//! started gives `451 4.3.0 unable to exec qq`. If the message or the envelope could not be
//! written in full (the program exited early, or the spooled message could not be read),
//! the envelope is withheld so that a real qmail-queue gives up without queuing, and an
//! exit status of 0 is answered `451 4.3.0 qq read error`. Every failure is logged as an
//! `error:` line with the program's name and status.
//!
//! # CONFIGURATION
//!
//! ```text
//! queue/qmail-queue
//! queue/qmail-queue /var/qmail/bin/simscan
//! ```
//!
//! The program is, in order of precedence:
//!
//! 1. `QMAILQUEUE` set for this connection by the supervisor (a tcprules line such as
//!    `192.0.2.:allow,QMAILQUEUE="/var/qmail/bin/qmail-scanner-queue"`);
//! 2. `QMAILQUEUE` in the environment the server was started with;
//! 3. the *PATH* argument;
//! 4. `$QMAIL/bin/qmail-queue`, `$QMAIL` defaulting to `/var/qmail`.
//!
//! The program runs with the server's environment, as the server's user.
//!
//! ## PATH
//!
//! Default: `$QMAIL/bin/qmail-queue`. The program to run.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: the server's. Every plugin takes it; the core handles it.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - A failure is answered with qmail-smtpd's reply for the exit status (see the table),
//!   not `451 Unable to queue message (<status>)`; permanent failures are 554.
//! - `QMAILQUEUE` can be set per connection by tcprules, as with qmail-smtpd.
//! - A message or envelope that could not be written in full is never answered 250.
//! - More than one argument is a configuration error (the original warned and went on).
//!
//! # SEE ALSO
//!
//! qmail-queue(8), qmail-smtpd(8), qpsmtpd-queue-maildir(7), qpsmtpd-queue-smtp-forward(7)

use nix::fcntl::OFlag;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reply, Setup, Verdict,
};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where qmail lives when `$QMAIL` is not set.
const DEFAULT_QMAIL: &str = "/var/qmail";

/// The write buffer for the message pipe.
const WRITE_BUFFER: usize = 64 * 1024;

/// What qmail-smtpd answers for a qmail-queue exit status: the first row whose range holds
/// the status wins (qmail.c, `qmail_close()`).
struct ExitRow {
    from: i32,
    to: i32,
    code: u16,
    enhanced: &'static str,
    text: &'static str,
}

const fn row(from: i32, to: i32, code: u16, enhanced: &'static str, text: &'static str) -> ExitRow {
    ExitRow {
        from,
        to,
        code,
        enhanced,
        text,
    }
}

const EXIT_STATUSES: &[ExitRow] = &[
    row(11, 11, 554, "5.1.3", "envelope address too long for qq"),
    row(115, 115, 554, "5.1.3", "envelope address too long for qq"),
    row(
        31,
        31,
        554,
        "5.3.0",
        "mail server permanently rejected message",
    ),
    row(51, 51, 451, "4.3.0", "qq out of memory"),
    row(52, 52, 451, "4.3.0", "qq timeout"),
    row(53, 53, 451, "4.3.0", "qq write error or disk full"),
    row(54, 54, 451, "4.3.0", READ_ERROR),
    row(55, 55, 451, "4.3.0", "qq unable to read configuration"),
    row(56, 56, 451, "4.3.0", "qq trouble making network connection"),
    row(61, 61, 451, "4.3.0", "qq trouble in home directory"),
    row(62, 66, 451, "4.3.0", "qq trouble creating files in queue"),
    row(
        71,
        71,
        451,
        "4.3.0",
        "mail server temporarily rejected message",
    ),
    row(72, 72, 451, "4.4.1", "connection to mail server timed out"),
    row(73, 73, 451, "4.4.1", "connection to mail server rejected"),
    row(
        74,
        74,
        451,
        "4.4.2",
        "communication with mail server failed",
    ),
    row(81, 81, 451, "4.3.0", "qq internal bug"),
    row(91, 91, 451, "4.3.0", "qq internal bug"),
    row(120, 120, 451, "4.3.0", EXEC_ERROR),
    row(11, 40, 554, "5.3.0", "qq permanent problem"),
    row(i32::MIN, i32::MAX, 451, "4.3.0", "qq temporary problem"),
];

/// The answer to an exit status of 0 when not everything could be written.
const READ_ERROR: &str = "qq read error";
/// The answer when the program cannot be started.
const EXEC_ERROR: &str = "unable to exec qq";
/// The answer when the program died by a signal.
const CRASHED: &str = "qq crashed";

/// The reply for a non-zero exit status.
fn exit_reply(status: i32) -> Reply {
    let r = EXIT_STATUSES
        .iter()
        .find(|r| (r.from..=r.to).contains(&status))
        .unwrap_or(&EXIT_STATUSES[EXIT_STATUSES.len() - 1]);
    Reply::new(r.code, r.enhanced, r.text)
}

fn temp_failure(text: &str) -> Reply {
    Reply::new(451, "4.3.0", text)
}

struct QmailQueue {
    /// The program unless the connection names another.
    program: PathBuf,
}

pub const SPEC: PluginSpec = PluginSpec {
    name: "queue/qmail-queue",
    factory: new,
    args: &["PATH"],
    rejects: false,
    example: "/bin/true",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let path = match setup.args {
        [] => None,
        [p] if !p.is_empty() => Some(p.clone()),
        [p] => return Err(setup.error(format!("invalid PATH {p:?}"))),
        _ => return Err(setup.error("takes at most one argument, the PATH of qmail-queue")),
    };
    let non_empty = |name: &str| (setup.env)(name).filter(|v| !v.is_empty());
    let program = non_empty("QMAILQUEUE").or(path).unwrap_or_else(|| {
        let qmail = non_empty("QMAIL").unwrap_or_else(|| DEFAULT_QMAIL.to_string());
        format!("{qmail}/bin/qmail-queue")
    });
    Ok(Box::new(QmailQueue {
        program: PathBuf::from(program),
    }))
}

/// `F<sender>\0`, `T<rcpt>\0` for each recipient, and the final `\0`.
fn envelope(cx: &Context<'_>) -> Vec<u8> {
    let t = cx.transaction();
    let mut out = Vec::with_capacity(64 * (t.recipients.len() + 1));
    out.push(b'F');
    if let Some(sender) = &t.sender {
        out.extend_from_slice(sender.address().as_bytes());
    }
    out.push(0);
    for r in &t.recipients {
        out.push(b'T');
        out.extend_from_slice(r.address().as_bytes());
        out.push(0);
    }
    out.push(0);
    out
}

/// Starts `program` with a pipe on fd 0 and the read end of the envelope pipe on fd 1.
/// Returns the child and the write end of the envelope pipe.
fn spawn(program: &Path) -> io::Result<(Child, File)> {
    let (envelope_read, envelope_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let mut command = Command::new(program);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::from(envelope_read));
    let child = command.spawn()?;
    // The command holds our copy of the read end; close it, or a program that exits early
    // would leave us writing into a pipe nobody reads.
    drop(command);
    Ok((child, File::from(envelope_write)))
}

/// What happened to one message.
struct Run {
    pid: u32,
    status: io::Result<ExitStatus>,
    /// Why the message or the envelope could not be written in full.
    write_error: Option<String>,
}

fn run(cx: &mut Context<'_>, program: &Path) -> io::Result<Run> {
    let envelope = envelope(cx);
    let (mut child, mut envelope_pipe) = spawn(program)?;
    let mut write_error = None;
    match child.stdin.take() {
        Some(stdin) => {
            let mut w = BufWriter::with_capacity(WRITE_BUFFER, stdin);
            let written = cx
                .transaction_mut()
                .write_message(&mut w)
                .and_then(|_| w.flush());
            if let Err(e) = written {
                write_error = Some(format!("writing the message: {e}"));
            }
            // Dropping the writer closes fd 0 of the program: end of message.
        }
        None => write_error = Some("no pipe to the program's fd 0".into()),
    }
    // As qmail does: after a failed message write, send no envelope, so that qmail-queue
    // reads an empty one and gives up instead of queuing a truncated message.
    if write_error.is_none()
        && let Err(e) = envelope_pipe.write_all(&envelope)
    {
        write_error = Some(format!("writing the envelope: {e}"));
    }
    drop(envelope_pipe);
    Ok(Run {
        pid: child.id(),
        status: child.wait(),
        write_error,
    })
}

impl QmailQueue {
    fn program(&self, cx: &Context<'_>) -> PathBuf {
        match cx.connection().info.env("QMAILQUEUE") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => self.program.clone(),
        }
    }
}

impl Plugin for QmailQueue {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Queue.into()]
    }

    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        let program = self.program(cx);
        let name = program.display();
        let run = match run(cx, &program) {
            Ok(run) => run,
            Err(e) => {
                cx.error(format!("cannot run {name}: {e}"));
                return Verdict::done(temp_failure(EXEC_ERROR));
            }
        };
        let pid = run.pid;
        let status = match run.status {
            Ok(s) => s,
            Err(e) => {
                cx.error(format!("waiting for {name} (qp {pid}): {e}"));
                return Verdict::done(temp_failure("qq waitpid surprise"));
            }
        };
        let reply = match (status.code(), &run.write_error) {
            (Some(0), None) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut text = format!("Queued! {now} qp {pid}");
                if let Some(id) = cx.transaction().message_id().filter(|i| !i.is_empty()) {
                    if id.starts_with('<') && id.ends_with('>') {
                        text = format!("{text} {id}");
                    } else {
                        text = format!("{text} <{id}>");
                    }
                }
                cx.pass(format!("queued by {name} (qp {pid})"));
                return Verdict::ok_with(text);
            }
            (Some(0), Some(_)) => temp_failure(READ_ERROR),
            (Some(code), _) => exit_reply(code),
            (None, _) => temp_failure(CRASHED),
        };
        let mut cause = format!("{name} (qp {pid}) {status}");
        if let Some(w) = run.write_error {
            cause = format!("{cause}; {w}");
        }
        cx.error(format!("{cause}: {reply}"));
        Verdict::done(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::LogCapture as Logs;
    use qpsmtpd_core::testing::{Harness, TestServer};
    use std::fs;
    use std::net::IpAddr;

    const BODY: &str = "From: s@example.org\r\n\
        Subject: qq test\r\n\
        Message-Id: <qq1@example.org>\r\n\
        \r\n\
        line one\r\n\
        ..dotted\r\n\
        end";

    /// The fixture, linked into a fresh directory where it keeps its records.
    struct FakeQueue {
        dir: tempfile::TempDir,
    }

    impl FakeQueue {
        fn new() -> FakeQueue {
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/fake-qmail-queue")
                .canonicalize()
                .expect("tests/fixtures/fake-qmail-queue");
            let dir = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(fixture, dir.path().join("qmail-queue")).unwrap();
            FakeQueue { dir }
        }
        fn program(&self) -> String {
            self.dir.path().join("qmail-queue").display().to_string()
        }
        fn exit_with(&self, status: &str) {
            fs::write(self.dir.path().join("exit"), status).unwrap();
        }
        fn record(&self, name: &str) -> Option<Vec<u8>> {
            fs::read(self.dir.path().join(name)).ok()
        }
    }

    fn server_with(args: &str, env: &[(&str, &str)], logs: &Logs) -> TestServer {
        let mut h = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("rcpt_ok\nqueue/qmail-queue {args}"))
            .file("rcpthosts", "example.com")
            .plugin("logs", logs.clone());
        for (k, v) in env {
            h = h.env(k, v);
        }
        h.build().unwrap()
    }

    #[test]
    fn hands_over_message_and_envelope() {
        let qq = FakeQueue::new();
        let logs = Logs::default();
        let server = server_with(&qq.program(), &[], &logs);
        let reply = server.send_message("s@example.org", &["a@example.com", "b@example.com"], BODY);
        let text = reply.strip_prefix("250 2.0.0 Queued! ").expect(&reply);
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len(), 4, "{reply}");
        assert!(words[0].parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(words[1], "qp");
        assert!(words[2].parse::<u32>().is_ok());
        assert_eq!(words[3], "<qq1@example.org>");

        assert_eq!(
            qq.record("envelope").unwrap(),
            b"Fs@example.org\0Ta@example.com\0Tb@example.com\0\0"
        );
        let message = String::from_utf8(qq.record("message").unwrap()).unwrap();
        let (head, body) = message.split_once("\n\n").unwrap();
        assert!(head.contains("\nReceived: from [127.0.0.1] (HELO client.example)"));
        assert!(
            head.ends_with(
                "\nFrom: s@example.org\nSubject: qq test\nMessage-Id: <qq1@example.org>"
            )
        );
        assert_eq!(body, "line one\n.dotted\nend\n");
        assert!(!message.contains('\r'));
        assert!(logs.find("pass: queued by").is_some());
    }

    #[test]
    fn null_sender_and_no_message_id() {
        let qq = FakeQueue::new();
        let server = server_with(&qq.program(), &[], &Logs::default());
        let reply = server.send_message("", &["a@example.com"], "Subject: bounce\r\n\r\nx");
        let text = reply.strip_prefix("250 2.0.0 Queued! ").expect(&reply);
        assert_eq!(text.trim_end().split(' ').count(), 3, "{reply:?}");
        assert_eq!(qq.record("envelope").unwrap(), b"F\0Ta@example.com\0\0");
    }

    #[test]
    fn every_exit_status_gets_qmails_reply() {
        let qq = FakeQueue::new();
        let logs = Logs::default();
        let server = server_with(&qq.program(), &[], &logs);
        let cases: &[(&str, &str)] = &[
            ("11", "554 5.1.3 envelope address too long for qq"),
            ("115", "554 5.1.3 envelope address too long for qq"),
            ("31", "554 5.3.0 mail server permanently rejected message"),
            ("51", "451 4.3.0 qq out of memory"),
            ("52", "451 4.3.0 qq timeout"),
            ("53", "451 4.3.0 qq write error or disk full"),
            ("54", "451 4.3.0 qq read error"),
            ("55", "451 4.3.0 qq unable to read configuration"),
            ("56", "451 4.3.0 qq trouble making network connection"),
            ("61", "451 4.3.0 qq trouble in home directory"),
            ("62", "451 4.3.0 qq trouble creating files in queue"),
            ("64", "451 4.3.0 qq trouble creating files in queue"),
            ("66", "451 4.3.0 qq trouble creating files in queue"),
            ("71", "451 4.3.0 mail server temporarily rejected message"),
            ("72", "451 4.4.1 connection to mail server timed out"),
            ("73", "451 4.4.1 connection to mail server rejected"),
            ("74", "451 4.4.2 communication with mail server failed"),
            ("81", "451 4.3.0 qq internal bug"),
            ("91", "451 4.3.0 qq internal bug"),
            ("120", "451 4.3.0 unable to exec qq"),
            ("12", "554 5.3.0 qq permanent problem"),
            ("40", "554 5.3.0 qq permanent problem"),
            ("1", "451 4.3.0 qq temporary problem"),
            ("10", "451 4.3.0 qq temporary problem"),
            ("41", "451 4.3.0 qq temporary problem"),
            ("67", "451 4.3.0 qq temporary problem"),
            ("255", "451 4.3.0 qq temporary problem"),
            ("KILL", "451 4.3.0 qq crashed"),
        ];
        for (status, want) in cases {
            qq.exit_with(status);
            let reply = server.send_message("s@example.org", &["a@example.com"], BODY);
            assert_eq!(reply, format!("{want}\r\n"), "exit {status}");
        }
        let line = logs.find("error: ").unwrap();
        assert!(line.contains(&qq.program()), "{line}");
        assert!(line.contains("exit status: 11"), "{line}");
    }

    #[test]
    fn a_program_that_quits_early_is_not_a_success() {
        let qq = FakeQueue::new();
        fs::write(qq.dir.path().join("early"), "").unwrap();
        qq.exit_with("0");
        let logs = Logs::default();
        let server = server_with(&qq.program(), &[], &logs);
        // More than a pipe holds, so the write cannot finish before the program is gone.
        let big = format!("Subject: big\r\n\r\n{}", "x".repeat(100).repeat(3000));
        let reply = server.send_message("s@example.org", &["a@example.com"], &big);
        assert_eq!(reply, "451 4.3.0 qq read error\r\n");
        let line = logs.find("error: ").unwrap();
        assert!(line.contains("writing the message"), "{line}");
    }

    #[test]
    fn a_missing_program_gives_451() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-qmail-queue");
        let logs = Logs::default();
        let server = server_with(missing.to_str().unwrap(), &[], &logs);
        let reply = server.send_message("s@example.org", &["a@example.com"], BODY);
        assert_eq!(reply, "451 4.3.0 unable to exec qq\r\n");
        let line = logs.find("error: cannot run").unwrap();
        assert!(line.contains("no-such-qmail-queue"), "{line}");
    }

    #[test]
    fn which_program_runs() {
        let (arg, env, conn, qmail) = (
            FakeQueue::new(),
            FakeQueue::new(),
            FakeQueue::new(),
            FakeQueue::new(),
        );
        fs::create_dir(qmail.dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(qmail.program(), qmail.dir.path().join("bin/qmail-queue"))
            .unwrap();
        let qmail_dir = qmail.dir.path().to_str().unwrap();
        let logs = Logs::default();
        let send_from = |server: &TestServer, info: ConnectionInfo| {
            let mut s = server.session_from(info);
            s.connect();
            s.command("HELO client.example");
            s.mail("s@example.org", &["a@example.com"], BODY)
        };
        let plain = || ConnectionInfo::from_ip(IpAddr::from([127, 0, 0, 1]));
        let mut tcprules = plain();
        tcprules.env.insert("QMAILQUEUE".into(), conn.program());

        // $QMAIL/bin/qmail-queue without anything else.
        let server = server_with("", &[("QMAIL", qmail_dir)], &logs);
        assert!(send_from(&server, plain()).starts_with("250 "));
        assert!(qmail.record("bin/envelope").is_some(), "records next to $0");

        // The argument beats $QMAIL.
        let server = server_with(&arg.program(), &[("QMAIL", qmail_dir)], &logs);
        assert!(send_from(&server, plain()).starts_with("250 "));
        assert!(arg.record("envelope").is_some());

        // The process's QMAILQUEUE beats the argument; the connection's beats both.
        let server = server_with(&arg.program(), &[("QMAILQUEUE", &env.program())], &logs);
        assert!(send_from(&server, plain()).starts_with("250 "));
        assert!(env.record("envelope").is_some());
        assert!(send_from(&server, tcprules).starts_with("250 "));
        assert!(conn.record("envelope").is_some());

        // $QMAIL pointing where there is no qmail-queue.
        let server = server_with("", &[("QMAIL", "/nonexistent")], &logs);
        assert_eq!(
            send_from(&server, plain()),
            "451 4.3.0 unable to exec qq\r\n"
        );
    }

    #[test]
    fn too_many_arguments() {
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "queue/qmail-queue /a /b")
            .build()
            .expect_err("two paths refused");
        assert!(err.to_string().contains("at most one argument"), "{err}");
    }
}
