//! # NAME
//!
//! content_log - keep a copy of every message in an archive file
//!
//! # DESCRIPTION
//!
//! Appends every message that reaches the end of DATA to an archive file, in mbox format,
//! so that it can be read with any mail reader (`mutt -f mail/20250314`) or split up again
//! with the usual tools. It is meant for debugging other plugins, or for keeping an archive
//! of what came in.
//!
//! Each message is written as it would be queued (its header as the plugins left it, the
//! `Received` line included, then the body), preceded by an mbox separator line naming the
//! envelope sender and the time:
//!
//! ```text
//! From sender@example.org Fri Mar 14 09:26:53 2025
//! ```
//!
//! A null sender is written as `MAILER-DAEMON`. Body lines that would look like a separator
//! (`From ` at the start, possibly after some `>`) get one more `>` in front (the *mboxrd*
//! convention), and every message is followed by an empty line.
//!
//! The file name is chosen for each message from a pattern with strftime(3) conversions in
//! local time, so by default there is one file per day. The file is created (mode 0600) if
//! needed, but its directory must exist. Writing is safe when several sessions or servers
//! append to the same file: each holds an exclusive lock (flock(2)) on the file while it
//! writes its message.
//!
//! The plugin never refuses a message: when the file cannot be written it logs an `error`
//! line and the message goes on to be queued.
//!
//! # CONFIGURATION
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! The plugin takes no other arguments; it is set up with the control files below.
//!
//! ## Files
//!
//! `content_log_enabled`: `1` (or `yes`, `true`, `on`) to archive messages, `0` (or `no`,
//! `false`, `off`) not to. Default: `1`. When off, the plugin does nothing at all.
//!
//! `content_log_file`: the archive file's path, with strftime(3) conversions such as
//! `%Y` (year), `%m` (month), `%d` (day), `%H` (hour). Default: `mail/%Y%m%d`. A relative
//! path is relative to the directory the server runs in. Use `%%` for a `%` in the name.
//!
//! Only the first line of each counts. Both are read once, when the server starts (or
//! reloads); a value that cannot be understood stops the server from starting, with the
//! file and line named.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Messages are written in mbox format, with a separator line before each and `From `
//!   lines of the body quoted; the Perl plugin wrote them one after the other with nothing
//!   in between, so they could not be told apart again.
//! - Writers lock the file, so messages from concurrent sessions never interleave.
//! - The archive file is created with mode 0600: it holds other people's mail.
//! - The control files are read when the server starts, not for every message, and a
//!   bad value is an error.
//!
//! # SEE ALSO
//!
//! qpsmtpd-queue-maildir(7), qpsmtpd-plugins(7), strftime(3), mbox(5)

use chrono::format::{Item, StrftimeItems};
use nix::fcntl::{Flock, FlockArg};
use qpsmtpd_core::plugin::parse_flag;
use qpsmtpd_core::{ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Setup, Verdict};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;

pub const SPEC: PluginSpec = PluginSpec {
    name: "content_log",
    factory: new,
    args: &[],
    rejects: false,
    example: "",
};

/// The archive file when `content_log_file` does not say.
const DEFAULT_FILE: &str = "mail/%Y%m%d";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    setup.no_args()?;
    let enabled = match setup.config.first("content_log_enabled")? {
        None => true,
        Some(line) => parse_flag(&line.text).ok_or_else(|| {
            line.error(format!(
                "content_log_enabled must be 1 or 0 (yes/no, true/false, on/off), not {:?}",
                line.text
            ))
        })?,
    };
    let pattern = match setup.config.first("content_log_file")? {
        None => DEFAULT_FILE.parse().map_err(|e| setup.error(e))?,
        Some(line) => line.text.parse().map_err(|e| line.error(e))?,
    };
    Ok(Box::new(ContentLog { enabled, pattern }))
}

/// A file name with strftime conversions, checked when read.
struct Pattern {
    text: String,
    items: Vec<Item<'static>>,
}

impl std::str::FromStr for Pattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Pattern, String> {
        let items = StrftimeItems::new(text)
            .parse_to_owned()
            .map_err(|_| format!("{text:?} has a conversion strftime does not know"))?;
        Ok(Pattern {
            text: text.to_string(),
            items,
        })
    }
}

impl Pattern {
    /// The file name for this moment.
    fn path(&self, now: &chrono::DateTime<chrono::Local>) -> Result<String, String> {
        let mut out = String::new();
        write!(out, "{}", now.format_with_items(self.items.iter()))
            .map_err(|_| format!("cannot expand {:?}", self.text))?;
        if out.is_empty() {
            return Err(format!("{:?} expands to an empty file name", self.text));
        }
        Ok(out)
    }
}

struct ContentLog {
    enabled: bool,
    pattern: Pattern,
}

impl Plugin for ContentLog {
    fn hooks(&self) -> Vec<Registration> {
        if self.enabled {
            vec![Hook::DataPost.into()]
        } else {
            Vec::new()
        }
    }

    /// An archive that cannot be written never stops mail.
    fn on_failure(&self, _hook: Hook) -> Verdict {
        Verdict::Declined
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        let now = chrono::Local::now();
        let path = match self.pattern.path(&now) {
            Ok(p) => p,
            Err(e) => {
                cx.error(e);
                return Verdict::Declined;
            }
        };
        match append(cx, &path, &now) {
            Ok(bytes) => cx.pass(format!("saved the message to {path} ({bytes} bytes)")),
            Err(e) => cx.error(format!("cannot save the message to {path}: {e}")),
        }
        Verdict::Declined
    }
}

/// Appends the transaction's message to the mbox file `path`; returns the bytes written.
fn append(
    cx: &mut Context<'_>,
    path: &str,
    now: &chrono::DateTime<chrono::Local>,
) -> io::Result<u64> {
    let sender = match &cx.transaction().sender {
        Some(a) if !a.is_null() => a
            .address()
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect(),
        _ => "MAILER-DAEMON".to_string(),
    };
    let separator = format!("From {sender} {}\n", now.format("%a %b %e %H:%M:%S %Y"));
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
    let mut out = Counter {
        inner: BufWriter::new(&*file),
        count: 0,
    };
    out.write_all(separator.as_bytes())?;
    let mut message = BufReader::new(cx.transaction_mut().message_reader()?);
    let mut line = Vec::new();
    let mut ends_with_newline = true;
    loop {
        line.clear();
        if message.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if is_separator_like(&line) {
            out.write_all(b">")?;
        }
        out.write_all(&line)?;
        ends_with_newline = line.ends_with(b"\n");
    }
    if !ends_with_newline {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    out.inner.flush()?;
    Ok(out.count)
}

/// `From ` after any number of `>`: a line an mbox reader would take for a separator
/// (or for a quoted one), so it gets one more `>`.
fn is_separator_like(line: &[u8]) -> bool {
    let rest = &line[line.iter().take_while(|&&b| b == b'>').count()..];
    rest.starts_with(b"From ")
}

/// Counts what goes through.
struct Counter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    const QUEUE_DECLINED: &str = "451 4.3.0 Queuing declined or disabled; try again later\r\n";

    /// A server archiving to `<dir>/archive/<file>` (the directory is created).
    fn server(file: &str, extra: &[(&str, &str)], log: &LogCapture) -> (TestServer, PathBuf) {
        let h = Harness::new();
        let dir = h.dir().join("archive");
        std::fs::create_dir(&dir).unwrap();
        let h = extra
            .iter()
            .fold(h, |h, (name, text)| h.file(name, text))
            .catalogue(crate::CATALOGUE)
            .file("plugins", "content_log\nrcpt_ok")
            .file("content_log_file", &format!("{}/{file}", dir.display()))
            .plugin("capture", log.clone());
        (h.build().unwrap(), dir)
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    /// The mbox with its separator lines' dates replaced by `DATE`.
    fn read_mbox(path: &Path) -> String {
        std::fs::read_to_string(path)
            .unwrap()
            .split_inclusive('\n')
            .map(|l| match l.strip_prefix("From ") {
                Some(rest) => {
                    let sender = rest.split(' ').next().unwrap();
                    format!("From {sender} DATE\n")
                }
                None => l.to_string(),
            })
            .collect()
    }

    #[test]
    fn appends_each_message_in_mbox_format() {
        let log = LogCapture::default();
        let (server, dir) = server("mbox", &[("rcpthosts", "test.example")], &log);
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        for (from, body) in [
            (
                "a@b.example",
                "Subject: one\r\n\r\nFrom here on\r\n>From there\r\nbye",
            ),
            ("", "Subject: two\r\n\r\nsecond\r\n"),
        ] {
            let reply = s.send(
                format!(
                    "MAIL FROM:<{from}>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n{body}\r\n.\r\n"
                )
                .as_bytes(),
            );
            assert!(reply.ends_with(QUEUE_DECLINED), "{reply}");
        }
        assert_eq!(files(&dir), [dir.join("mbox")]);
        let mbox = read_mbox(&dir.join("mbox"));
        let received = |mbox: &str| mbox.lines().filter(|l| l.starts_with("Received: ")).count();
        assert_eq!(received(&mbox), 2, "{mbox}");
        // Without the headers the server added (their text has times and ids in it):
        let stripped: String = mbox
            .split_inclusive('\n')
            .filter(|l| {
                !l.starts_with("Received: ")
                    && !l.starts_with("Authentication-Results: ")
                    && !l.starts_with(char::is_whitespace)
                    || *l == "\n"
            })
            .collect();
        assert_eq!(
            stripped,
            "From a@b.example DATE\n\
             Subject: one\n\
             \n\
             >From here on\n\
             >>From there\n\
             bye\n\
             \n\
             From MAILER-DAEMON DATE\n\
             Subject: two\n\
             \n\
             second\n\
             \n\
             \n"
        );
        let mode = std::fs::metadata(dir.join("mbox"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let lines = log.of_plugin("content_log");
        assert_eq!(lines.len(), 2, "{lines:?}");
        let want = format!("INFO pass: saved the message to {}/mbox (", dir.display());
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with(&want) && l.ends_with(" bytes)")),
            "{lines:?}"
        );
        // The byte counts add up to the file.
        let total: u64 = lines
            .iter()
            .map(|l| {
                l.rsplit_once('(')
                    .unwrap()
                    .1
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(total, std::fs::metadata(dir.join("mbox")).unwrap().len());
    }

    #[test]
    fn the_file_name_is_expanded_with_strftime() {
        let log = LogCapture::default();
        let before = chrono::Local::now().format("%Y-%m%%").to_string();
        let (server, dir) = server("log-%Y-%m%%", &[("rcpthosts", "test.example")], &log);
        assert_eq!(
            server.send_message("a@b.example", &["u@test.example"], "Subject: x\r\n\r\nhi"),
            QUEUE_DECLINED
        );
        let after = chrono::Local::now().format("%Y-%m%%").to_string();
        let names: Vec<String> = files(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(
            names[0] == format!("log-{before}") || names[0] == format!("log-{after}"),
            "{names:?}"
        );
    }

    #[test]
    fn a_missing_directory_is_logged_and_mail_goes_on() {
        let log = LogCapture::default();
        let (server, _dir) = server("no/such/dir/%Y", &[("rcpthosts", "test.example")], &log);
        assert_eq!(
            server.send_message("a@b.example", &["u@test.example"], "Subject: x\r\n\r\nhi"),
            QUEUE_DECLINED
        );
        let lines = log.of_plugin("content_log");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("ERROR error: cannot save the message to ")
                && lines[0].contains("/archive/no/such/dir/"),
            "{lines:?}"
        );
    }

    #[test]
    fn content_log_enabled_0_turns_it_off() {
        let log = LogCapture::default();
        let (server, dir) = server(
            "mbox",
            &[
                ("rcpthosts", "test.example"),
                ("content_log_enabled", "# off\nno"),
            ],
            &log,
        );
        assert_eq!(
            server.send_message("a@b.example", &["u@test.example"], "Subject: x\r\n\r\nhi"),
            QUEUE_DECLINED
        );
        assert!(files(&dir).is_empty());
        assert!(log.of_plugin("content_log").is_empty());
    }

    #[test]
    fn concurrent_writers_do_not_interleave() {
        let log = LogCapture::default();
        let (server, dir) = server("mbox", &[("rcpthosts", "test.example")], &log);
        let body: String = (0..2000)
            .map(|i| format!("line {i} of a long message\r\n"))
            .collect();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let server = &server;
                let body = &body;
                scope.spawn(move || {
                    for _ in 0..5 {
                        let text = format!("Subject: thread {t}\r\n\r\n{body}");
                        assert_eq!(
                            server.send_message(
                                &format!("t{t}@b.example"),
                                &["u@test.example"],
                                &text
                            ),
                            QUEUE_DECLINED
                        );
                    }
                });
            }
        });
        let mbox = std::fs::read_to_string(dir.join("mbox")).unwrap();
        let messages: Vec<&str> = mbox.split("\n\nFrom t").collect();
        assert_eq!(messages.len(), 20);
        for m in messages {
            let t = m.trim_start_matches("From t").chars().next().unwrap();
            assert!(m.contains(&format!("Subject: thread {t}\n")), "{m:.200}");
            assert_eq!(m.matches("of a long message\n").count(), 2000);
        }
    }

    #[test]
    fn bad_configuration_names_file_and_line() {
        for (file, text, want) in [
            (
                "content_log_enabled",
                "# x\nmaybe",
                "content_log_enabled:2: content_log_enabled must be 1 or 0",
            ),
            (
                "content_log_file",
                "mail/%Q",
                "content_log_file:1: \"mail/%Q\" has a conversion",
            ),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", "content_log")
                .file(file, text)
                .build()
                .expect_err(text)
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let err = crate::test_support::load_error("content_log bogus_arg 1");
        assert!(err.contains("plugins:1: content_log: "), "{err}");
    }
}
