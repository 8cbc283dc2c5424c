//! # NAME
//!
//! queue/smtp-forward - relay accepted mail to another SMTP server
//!
//! # DESCRIPTION
//!
//! Hands every accepted message to another SMTP server (a filtering gateway, the real MTA
//! behind a qpsmtpd front end) while the client waits, and gives the client that server's
//! answer: the client hears `250` only when the downstream server has said `250` to the
//! message.
//!
//! For each message the plugin connects to *HOST*, reads the greeting, says
//! `EHLO <me>` (or `HELO` if EHLO is refused with a 5xx), then `MAIL FROM`, one `RCPT TO`
//! per recipient, `DATA`, the message, `.`, and `QUIT`. The message is streamed from the
//! spool with CRLF line ends and dot-stuffing, never loaded whole into memory. When the
//! client's `MAIL FROM` had `BODY=8BITMIME` and the downstream server offers 8BITMIME, the
//! parameter is passed on.
//!
//! The downstream's reply goes back to the client as it was given, with its code, its
//! enhanced status code (`X.0.0` of the same class when it gave none) and its text:
//!
//! - the reply to the message itself, whether it accepts or refuses it;
//! - the first refusal (4xx or 5xx) at any earlier step. A refused recipient fails the
//!   whole message: we have already accepted it for every recipient, and the client will
//!   retry them all on a 4xx or bounce them all on a 5xx.
//!
//! A downstream `421` or `521` means that server is closing; the client gets it as `451`
//! or `554`, since this server is not closing the client's connection.
//!
//! When there is no usable answer (the host cannot be resolved or reached, the connection
//! is refused, the server hangs up or stops answering, or says something that is not
//! SMTP), the client gets `451 4.4.1 Unable to forward message: <reason>`. Every failure
//! is logged as an `error:` line naming the downstream server and the step.
//!
//! Time limits: 30 seconds to connect (to each address of *HOST* in turn), 300 seconds for
//! each reply and each write, 600 seconds for the reply to the message.
//!
//! # CONFIGURATION
//!
//! ```text
//! queue/smtp-forward 10.2.2.2
//! queue/smtp-forward mx.internal.example 2525
//! queue/smtp-forward ::1 10025
//! ```
//!
//! ## HOST
//!
//! Required. The downstream server: a host name (looked up for every message), an IPv4
//! address or an IPv6 address (with or without `[ ]`).
//!
//! ## PORT
//!
//! Default: `25`. The TCP port.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: the server's. Every plugin takes it; the core handles it.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The downstream server's reply is passed through to the client, code and text; the
//!   original answered `451 Unable to queue message (<errno>)` to every refusal and
//!   `250 Queued!` to a success.
//! - Connection failures are a 451, not a plugin crash.
//! - The message is sent with CRLF line ends.
//! - Postfix XCLIENT (the third argument of later qpsmtpd versions) is not supported.
//! - Extra arguments are a configuration error (the original warned and went on).
//!
//! # SEE ALSO
//!
//! qpsmtpd-queue-qmail-queue(7), qpsmtpd-queue-maildir(7), RFC 5321

use qpsmtpd_core::protocol::Enhanced;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reply, Setup, Verdict,
};
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const DEFAULT_PORT: u16 = 25;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// For each reply, and each write.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// For the reply to the message, which may be scanned before it is answered.
const FINAL_TIMEOUT: Duration = Duration::from_secs(600);
/// For the reply to QUIT, and for a parting reply after a write failed.
const PARTING_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest reply line accepted (RFC 5321 allows 512).
const MAX_LINE: usize = 4096;
/// The most lines one reply may have.
const MAX_LINES: usize = 128;
/// Socket write buffer (and read size from the spool) while sending the message.
const BUFFER: usize = 64 * 1024;

struct SmtpForward {
    host: String,
    port: u16,
}

pub const SPEC: PluginSpec = PluginSpec {
    name: "queue/smtp-forward",
    factory: new,
    args: &["HOST", "PORT"],
    rejects: false,
    example: "127.0.0.1 25",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let (host, port) = match setup.args {
        [host] => (host, None),
        [host, port] => (host, Some(port)),
        [] => return Err(setup.error("the downstream HOST is required")),
        _ => return Err(setup.error("takes at most two arguments: HOST [PORT]")),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let valid_name = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if host.is_empty() || !(valid_name || host.parse::<IpAddr>().is_ok()) {
        return Err(setup.error(format!("invalid HOST {host:?}")));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(setup.error(format!("invalid PORT {p:?}"))),
        },
    };
    Ok(Box::new(SmtpForward {
        host: host.to_string(),
        port,
    }))
}

/// One reply of the downstream server.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    code: u16,
    /// The text of each line, after the code and the separator.
    lines: Vec<String>,
}

impl Answer {
    fn class(&self) -> u16 {
        self.code / 100
    }

    /// The reply for our client: the downstream's code, enhanced code and text. A 421 or
    /// 521 (the downstream closing) becomes 451 or 554.
    fn to_reply(&self) -> Reply {
        let code = match self.code {
            421 => 451,
            521 => 554,
            c => c,
        };
        let mut enhanced: Option<&str> = None;
        let lines: Vec<&str> = self
            .lines
            .iter()
            .map(|line| {
                let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
                if Enhanced::parse(first).is_some() {
                    enhanced.get_or_insert(first);
                    rest
                } else {
                    line.as_str()
                }
            })
            .collect();
        let default = format!("{}.0.0", code / 100);
        Reply::new(code, enhanced.unwrap_or(&default), &lines.join("\n"))
    }

    /// The EHLO keywords (upper case), from the lines after the greeting.
    fn keywords(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_ascii_uppercase)
            .collect()
    }
}

impl Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg.into())
}

/// Reads one (possibly multi-line) reply.
fn read_answer(r: &mut impl BufRead) -> io::Result<Answer> {
    let mut code = None;
    let mut lines = Vec::new();
    let mut buf = Vec::with_capacity(128);
    loop {
        buf.clear();
        let n = r
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)?;
        if buf.last() != Some(&b'\n') {
            return Err(if n == MAX_LINE {
                invalid("reply line too long")
            } else {
                io::Error::new(ErrorKind::UnexpectedEof, "connection closed by the server")
            });
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\r', '\n']);
        let this: u16 = match line.get(..3) {
            Some(d) if d.bytes().all(|b| b.is_ascii_digit()) => d.parse().unwrap_or(0),
            _ => 0,
        };
        if !(200..=599).contains(&this) {
            return Err(invalid(format!("not an SMTP reply: {line:?}")));
        }
        if code.is_some_and(|c| c != this) {
            return Err(invalid(format!(
                "reply codes differ within a reply: {line:?}"
            )));
        }
        code = Some(this);
        let (more, rest) = match line.as_bytes().get(3) {
            Some(b'-') => (true, &line[4..]),
            Some(b' ') => (false, &line[4..]),
            None => (false, ""),
            Some(_) => return Err(invalid(format!("not an SMTP reply: {line:?}"))),
        };
        lines.push(rest.to_string());
        if !more {
            return Ok(Answer { code: this, lines });
        }
        if lines.len() >= MAX_LINES {
            return Err(invalid("reply too long"));
        }
    }
}

/// Why the message could not be forwarded.
enum Failure {
    /// The downstream server refused, at the step named.
    Refused(Answer, String),
    /// No usable answer; the reason is given to the client.
    Broken(String),
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "timed out".to_string(),
        _ => e.to_string(),
    }
}

/// An open connection to the downstream server.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Conn {
    fn new(stream: TcpStream) -> io::Result<Conn> {
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: BufWriter::with_capacity(BUFFER, stream.try_clone()?),
            stream,
        })
    }

    /// Reads a reply, giving the server `timeout`; `step` names what it answers.
    fn read(&mut self, timeout: Duration, step: &str) -> Result<Answer, Failure> {
        self.stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| read_answer(&mut self.reader))
            .map_err(|e| {
                Failure::Broken(format!("{} waiting for the reply to {step}", describe(&e)))
            })
    }

    /// Reads the reply to `step`, which should be of class `want`.
    fn expect(&mut self, want: u16, timeout: Duration, step: &str) -> Result<Answer, Failure> {
        let answer = self.read(timeout, step)?;
        check(answer, want, step)
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.writer.flush()
    }

    /// Sends a command and reads its reply.
    fn command(&mut self, line: &str, want: u16) -> Result<Answer, Failure> {
        match self.send(line) {
            Ok(()) => self.expect(want, REPLY_TIMEOUT, line),
            Err(e) => Err(self.after_write_error(&e, line)),
        }
    }

    /// A write failed: the server may have said why before it closed the connection.
    fn after_write_error(&mut self, e: &io::Error, step: &str) -> Failure {
        match self.read(PARTING_TIMEOUT, step) {
            Ok(answer) if answer.class() >= 4 => Failure::Refused(answer, step.to_string()),
            _ => Failure::Broken(format!("{} while sending {step}", describe(e))),
        }
    }

    /// Says goodbye; nothing depends on the answer any more.
    fn quit(mut self) {
        if self.send("QUIT").is_ok() {
            let _ = self.read(PARTING_TIMEOUT, "QUIT");
        }
    }
}

/// `answer` if it has class `want`; a 4xx or 5xx is a refusal, anything else a broken
/// conversation.
fn check(answer: Answer, want: u16, step: &str) -> Result<Answer, Failure> {
    if answer.class() == want {
        Ok(answer)
    } else if answer.class() >= 4 {
        Err(Failure::Refused(answer, step.to_string()))
    } else {
        Err(Failure::Broken(format!(
            "unexpected reply to {step}: {}",
            answer.code
        )))
    }
}

/// A failure while sending the message: reading our spool, or writing to the server.
enum DataError {
    Read(io::Error),
    Write(io::Error),
}

/// Sends `src` (LF line ends) as SMTP DATA: every LF becomes CRLF, a line starting with
/// `.` gets another `.`, a last line without LF is ended, and `.` CRLF follows.
fn write_data(src: &mut impl Read, dst: &mut impl Write) -> Result<(), DataError> {
    let mut buf = vec![0u8; BUFFER];
    let mut at_line_start = true;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(DataError::Read(e)),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            if at_line_start && chunk[0] == b'.' {
                dst.write_all(b".").map_err(DataError::Write)?;
            }
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    dst.write_all(&chunk[..i]).map_err(DataError::Write)?;
                    dst.write_all(b"\r\n").map_err(DataError::Write)?;
                    chunk = &chunk[i + 1..];
                    at_line_start = true;
                }
                None => {
                    dst.write_all(chunk).map_err(DataError::Write)?;
                    at_line_start = false;
                    chunk = &[];
                }
            }
        }
    }
    if !at_line_start {
        dst.write_all(b"\r\n").map_err(DataError::Write)?;
    }
    dst.write_all(b".\r\n").map_err(DataError::Write)?;
    dst.flush().map_err(DataError::Write)
}

impl SmtpForward {
    /// Connects to the first address of HOST that answers.
    fn connect(&self) -> Result<Conn, Failure> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| Failure::Broken(format!("cannot resolve {}: {e}", self.host)))?
            .collect();
        let mut last = format!("{} has no address", self.host);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).and_then(Conn::new) {
                Ok(conn) => return Ok(conn),
                Err(e) => last = format!("cannot connect to {addr}: {}", describe(&e)),
            }
        }
        Err(Failure::Broken(last))
    }

    /// The conversation from greeting to the reply to the message.
    fn transfer(conn: &mut Conn, cx: &mut Context<'_>) -> Result<Answer, Failure> {
        conn.expect(2, REPLY_TIMEOUT, "the connection")?;
        let me = cx.core().me.clone();
        let ehlo = format!("EHLO {me}");
        let keywords = match conn.send(&ehlo) {
            Ok(()) => {
                let answer = conn.read(REPLY_TIMEOUT, &ehlo)?;
                if answer.class() == 5 {
                    conn.command(&format!("HELO {me}"), 2)?;
                    Vec::new()
                } else {
                    check(answer, 2, &ehlo)?.keywords()
                }
            }
            Err(e) => return Err(conn.after_write_error(&e, &ehlo)),
        };

        let t = cx.transaction();
        let sender = t.sender.clone().unwrap_or_default();
        let mut mail = format!("MAIL FROM:{}", sender.format());
        let eight_bit = t
            .mail_params
            .get("BODY")
            .flatten()
            .is_some_and(|b| b.eq_ignore_ascii_case("8BITMIME"));
        if eight_bit && keywords.iter().any(|k| k == "8BITMIME") {
            mail.push_str(" BODY=8BITMIME");
        }
        let recipients: Vec<String> = t.recipients.iter().map(|r| r.format()).collect();
        conn.command(&mail, 2)?;
        for r in recipients {
            conn.command(&format!("RCPT TO:{r}"), 2)?;
        }
        conn.command("DATA", 3)?;

        let sent = match cx.transaction_mut().message_reader() {
            Ok(mut message) => write_data(&mut message, &mut conn.writer),
            Err(e) => Err(DataError::Read(e)),
        };
        match sent {
            Ok(()) => {}
            Err(DataError::Read(e)) => {
                return Err(Failure::Broken(format!("cannot read the message: {e}")));
            }
            Err(DataError::Write(e)) => return Err(conn.after_write_error(&e, "the message")),
        }
        let answer = conn.read(FINAL_TIMEOUT, "the message")?;
        match answer.class() {
            2 | 4 | 5 => Ok(answer),
            _ => Err(Failure::Broken(format!(
                "unexpected reply to the message: {}",
                answer.code
            ))),
        }
    }
}

impl Plugin for SmtpForward {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Queue.into()]
    }

    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        let peer = format!("{}:{}", self.host, self.port);
        let outcome = self.connect().and_then(|mut conn| {
            let result = Self::transfer(&mut conn, cx);
            if !matches!(result, Err(Failure::Broken(_))) {
                conn.quit();
            }
            result
        });
        match outcome {
            Ok(answer) if answer.class() == 2 => {
                cx.pass(format!("forwarded to {peer}: {answer}"));
                Verdict::done(answer.to_reply())
            }
            Ok(answer) => {
                cx.error(format!("{peer} refused the message: {answer}"));
                Verdict::done(answer.to_reply())
            }
            Err(Failure::Refused(answer, step)) => {
                cx.error(format!("{peer} refused {step}: {answer}"));
                Verdict::done(answer.to_reply())
            }
            Err(Failure::Broken(reason)) => {
                cx.error(format!("cannot forward to {peer}: {reason}"));
                Verdict::done(Reply::new(
                    451,
                    "4.4.1",
                    &format!("Unable to forward message: {reason}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::LogCapture as Logs;
    use qpsmtpd_core::testing::{Harness, TestServer};
    use std::fs;
    use std::io::Cursor;
    use std::net::TcpListener;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

    const BODY: &str = "From: s@example.org\r\n\
        Subject: forward test\r\n\
        Message-Id: <fw1@example.org>\r\n\
        \r\n\
        first\r\n\
        ..one dot\r\n\
        ...two dots\r\n\
        \r\n\
        last";

    /// Postfix's smtp-sink on a free loopback port, storing one file per message; killed
    /// when dropped.
    struct Sink {
        child: Child,
        port: u16,
        mail: PathBuf,
        _root: tempfile::TempDir,
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    impl Sink {
        fn start(options: &[&str]) -> Sink {
            let root = tempfile::tempdir().unwrap();
            // smtp-sink writes as nobody: the path must be traversable and the
            // directory writable by it.
            fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let mail = root.path().join("mail");
            fs::create_dir(&mail).unwrap();
            fs::set_permissions(&mail, fs::Permissions::from_mode(0o1777)).unwrap();
            let port = free_port();
            let mut cmd = Command::new(SMTP_SINK);
            if nix::unistd::geteuid().is_root() {
                cmd.args(["-u", "nobody"]);
            }
            cmd.args(options)
                .arg("-d")
                .arg(format!("{}/", mail.display()))
                .arg(format!("127.0.0.1:{port}"))
                .arg("10")
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("{SMTP_SINK} (Debian package postfix): {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("smtp-sink exited: {status}");
                }
                assert!(Instant::now() < deadline, "smtp-sink did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Sink {
                child,
                port,
                mail,
                _root: root,
            }
        }

        /// The stored messages.
        fn messages(&self) -> Vec<String> {
            let mut files: Vec<PathBuf> = fs::read_dir(&self.mail)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
                .iter()
                .map(|p| fs::read_to_string(p).unwrap())
                .collect()
        }
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn server(args: &str, logs: &Logs) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("rcpt_ok\nqueue/smtp-forward {args}"))
            .file("rcpthosts", "example.com")
            .plugin("logs", logs.clone())
            .build()
            .unwrap()
    }

    fn send(server: &TestServer, to: &[&str], body: &str) -> String {
        server.send_message("s@example.org", to, body)
    }

    /// The smtp-sink header lines named `name`.
    fn sink_field<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
        message
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter_map(|l| l.strip_prefix(": "))
            .collect()
    }

    #[test]
    fn forwards_envelope_and_message() {
        let sink = Sink::start(&[]);
        let logs = Logs::default();
        let server = server(&format!("127.0.0.1 {}", sink.port), &logs);
        let reply = send(&server, &["a@example.com", "b@example.com"], BODY);
        assert_eq!(reply, "250 2.0.0 Ok\r\n", "smtp-sink's own reply");

        let messages = sink.messages();
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(sink_field(m, "X-Client-Proto"), ["ESMTP"]);
        assert_eq!(sink_field(m, "X-Helo-Args"), ["test.example"]);
        assert_eq!(sink_field(m, "X-Mail-Args"), ["<s@example.org>"]);
        assert_eq!(
            sink_field(m, "X-Rcpt-Args"),
            ["<a@example.com>", "<b@example.com>"]
        );
        // smtp-sink's own Received comes first; ours follows with the original header.
        let ours = m.split_once("\nAuthentication-Results: ").unwrap().1;
        assert!(ours.contains("\nReceived: from [127.0.0.1] (HELO client.example)"));
        assert!(ours.contains(
            "\nFrom: s@example.org\nSubject: forward test\nMessage-Id: <fw1@example.org>\n\n"
        ));
        assert!(
            m.ends_with("\n\nfirst\n.one dot\n..two dots\n\nlast\n\n"),
            "{m}"
        );
        let line = logs.find("pass: forwarded to 127.0.0.1:").unwrap();
        assert!(line.contains("250 2.0.0 Ok"), "{line}");
    }

    #[test]
    fn a_big_message_arrives_intact() {
        let sink = Sink::start(&[]);
        let server = server(&format!("[127.0.0.1] {}", sink.port), &Logs::default());
        let mut body = String::from("Subject: big\r\n\r\n");
        let mut want = String::new();
        for i in 0..30_000 {
            let line = format!(".line {i} {}", "x".repeat(i % 70));
            body.push('.');
            body.push_str(&line);
            body.push_str("\r\n");
            want.push_str(&line);
            want.push('\n');
        }
        body.push_str("tail");
        want.push_str("tail\n\n");
        assert_eq!(send(&server, &["a@example.com"], &body), "250 2.0.0 Ok\r\n");
        let messages = sink.messages();
        assert!(messages[0].ends_with(&format!("\n\n{want}")));
    }

    #[test]
    fn falls_back_to_helo() {
        let sink = Sink::start(&["-f", "EHLO"]);
        let server = server(&format!("127.0.0.1 {}", sink.port), &Logs::default());
        assert_eq!(send(&server, &["a@example.com"], BODY), "250 2.0.0 Ok\r\n");
        let messages = sink.messages();
        assert_eq!(sink_field(&messages[0], "X-Client-Proto"), ["SMTP"]);
        assert_eq!(sink_field(&messages[0], "X-Helo-Args"), ["test.example"]);
    }

    #[test]
    fn downstream_refusals_are_passed_through() {
        // smtp-sink options, the reply our client must get, and whether the message was
        // refused before it was sent (smtp-sink keeps what it received either way).
        let cases: &[(&[&str], &str, bool)] = &[
            (
                &["-f", "RCPT", "-B", "550 5.1.1 No such user here"],
                "550 5.1.1 No such user here",
                true,
            ),
            (
                &["-r", "MAIL", "-b", "452 4.3.1 Insufficient system storage"],
                "452 4.3.1 Insufficient system storage",
                true,
            ),
            (
                &["-f", ".", "-B", "554 5.7.1 Looks like spam"],
                "554 5.7.1 Looks like spam",
                false,
            ),
            (
                &["-r", "DATA", "-b", "451 Try again later"],
                "451 4.0.0 Try again later",
                true,
            ),
            (&["-f", "CONNECT"], "500 5.3.0 Error: command failed", true),
        ];
        for (options, want, before_data) in cases {
            let sink = Sink::start(options);
            let logs = Logs::default();
            let server = server(&format!("127.0.0.1 {}", sink.port), &logs);
            let reply = send(&server, &["a@example.com"], BODY);
            assert_eq!(reply, format!("{want}\r\n"), "{options:?}");
            if *before_data {
                let stored = sink.messages();
                assert!(
                    !stored.iter().any(|m| m.contains("Subject: forward test")),
                    "{options:?}: {stored:?}"
                );
            }
            let line = logs.find("error: 127.0.0.1:").unwrap();
            assert!(line.contains("refused"), "{line}");
        }
    }

    #[test]
    fn a_closing_downstream_does_not_close_our_client() {
        let sink = Sink::start(&["-Q", "RCPT"]);
        let server = server(&format!("127.0.0.1 {}", sink.port), &Logs::default());
        let mut s = server.session();
        s.connect();
        s.command("EHLO client.example");
        let reply = s.mail("s@example.org", &["a@example.com"], BODY);
        assert_eq!(reply, "451 4.0.0 Server closing connection\r\n");
        assert!(!s.is_closed());
        assert!(s.command("NOOP").starts_with("250"));
    }

    #[test]
    fn hang_ups_and_closed_ports_give_451() {
        let sink = Sink::start(&["-q", "DATA"]);
        let logs = Logs::default();
        let hangs_up = server(&format!("127.0.0.1 {}", sink.port), &logs);
        let reply = send(&hangs_up, &["a@example.com"], BODY);
        assert_eq!(
            reply,
            "451 4.4.1 Unable to forward message: connection closed by the server waiting for the reply to DATA\r\n"
        );
        assert!(logs.find("error: cannot forward to 127.0.0.1:").is_some());

        let port = free_port();
        let closed = server(&format!("127.0.0.1 {port}"), &logs);
        let reply = send(&closed, &["a@example.com"], BODY);
        assert!(
            reply.starts_with(&format!(
                "451 4.4.1 Unable to forward message: cannot connect to 127.0.0.1:{port}: "
            )),
            "{reply}"
        );
        assert!(reply.contains("refused"), "{reply}");
    }

    #[test]
    fn parses_replies() {
        let mut r = Cursor::new(
            b"250-mx.example\r\n250-8BITMIME\r\n250 SIZE 100\r\n550 5.1.1 <x>: no\r\n220\r\n"
                .to_vec(),
        );
        let ehlo = read_answer(&mut r).unwrap();
        assert_eq!(ehlo.code, 250);
        assert_eq!(ehlo.keywords(), ["8BITMIME", "SIZE"]);
        let no = read_answer(&mut r).unwrap();
        assert_eq!(no.to_reply().to_wire(), "550 5.1.1 <x>: no\r\n");
        assert_eq!(read_answer(&mut r).unwrap().lines, [""]);
        assert_eq!(
            read_answer(&mut r).unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );

        let multi = read_answer(&mut Cursor::new(
            b"452-4.2.2 mailbox full\n452-4.2.2 try later\n452 4.2.2 bye\n".to_vec(),
        ))
        .unwrap();
        assert_eq!(
            multi.to_reply().to_wire(),
            "452-4.2.2 mailbox full\r\n452-4.2.2 try later\r\n452 4.2.2 bye\r\n"
        );
        let closing = read_answer(&mut Cursor::new(b"421 4.3.2 shutting down\r\n".to_vec()));
        assert_eq!(
            closing.unwrap().to_reply().to_wire(),
            "451 4.3.2 shutting down\r\n"
        );

        for bad in [
            &b"250-a\r\n251 b\r\n"[..],
            b"hello\r\n",
            b"099 x\r\n",
            b"250x\r\n",
            b"250-unterminated",
        ] {
            assert!(
                read_answer(&mut Cursor::new(bad.to_vec())).is_err(),
                "{bad:?}"
            );
        }
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE));
        let err = read_answer(&mut Cursor::new(long.into_bytes())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    }

    /// A reader that hands out one byte at a time, so every chunk boundary is exercised.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) if !buf.is_empty() => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn data(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if write_data(&mut Trickle(input), &mut out).is_err() {
            panic!("write_data failed");
        }
        let mut whole = Vec::new();
        if write_data(&mut Cursor::new(input.to_vec()), &mut whole).is_err() {
            panic!("write_data failed");
        }
        assert_eq!(out, whole, "chunking must not matter");
        out
    }

    #[test]
    fn stuffs_dots_and_ends_lines_with_crlf() {
        assert_eq!(
            data(b"a\n.b\n..c\nd.e\n.\n"),
            b"a\r\n..b\r\n...c\r\nd.e\r\n..\r\n.\r\n"
        );
        assert_eq!(data(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(data(b".x"), b"..x\r\n.\r\n");
        assert_eq!(data(b""), b".\r\n");
        assert_eq!(data(b"cr\r\nkept\n"), b"cr\r\r\nkept\r\n.\r\n");
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (args, why) in [
            ("", "HOST is required"),
            ("mx.example 0", "invalid PORT"),
            ("mx.example 70000", "invalid PORT"),
            ("mx.example 25 xclient", "at most two"),
            ("mx/example", "invalid HOST"),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", &format!("queue/smtp-forward {args}"))
                .build()
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(err.to_string().contains(why), "{args:?}: {err}");
        }
        for ok in ["::1", "[::1] 2525", "mx_1.example"] {
            let built = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", &format!("queue/smtp-forward {ok}"))
                .build();
            assert!(built.is_ok(), "{ok}");
        }
    }
}
