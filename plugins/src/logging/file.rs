//! # NAME
//!
//! logging/file - write log messages to a file or through a program
//!
//! # DESCRIPTION
//!
//! Appends every log message at or above a chosen importance to a file, one line per
//! message, or writes it to the standard input of a program. Each line is a time stamp
//! followed by the server's usual line:
//!
//! ```text
//! Sat Nov 21 14:03:07 2026 4242 6740a1b2.3039.1.2 (rcpt) rcpt_ok: pass: example.com is one of our domains
//! ```
//!
//! (time, process id, transaction id, hook, plugin, message). A message that spans lines
//! is written on one (its line breaks become spaces), so each line of the file is one
//! message. Load it from `config/logging`, for example:
//!
//! ```text
//! logging/file loglevel LOGINFO /var/log/qpsmtpd/qpsmtpd.log
//! logging/file /var/log/qpsmtpd/qpsmtpd.log.%Y-%m-%d
//! logging/file loglevel LOGDEBUG tsformat %FT%T /var/log/qpsmtpd/sessions/%Y%m%d-%i.log
//! logging/file loglevel LOGCRIT reopen |/usr/local/sbin/page-sysadmin
//! ```
//!
//! The file name may contain `strftime` conversions (`%Y`, `%m`, `%d`, `%H`...; see
//! strftime(3)), expanded in local time for every line: when the name changes (a new day
//! with `%Y-%m-%d`) the new file is opened and the old one closed. `%i` stands for the
//! connection id (`parent` for lines that belong to no connection), so that each
//! connection gets a file of its own. `%%` is a literal `%`.
//!
//! Files are created with mode 0640 (less the umask) and always appended to, each line in a
//! single write, so that several server processes can share one file without mixing their
//! lines up.
//!
//! A name starting with `|` is a command instead: it is run with `/bin/sh -c` when the
//! first line is to be written, and receives the lines on its standard input; its standard
//! output goes to the server's standard error. It runs for as long as the server process
//! (or, with `reopen`, the connection) and gets end-of-file when that ends. The command may
//! contain `strftime` conversions and `%i` too; a new one is started when the expansion
//! changes.
//!
//! The plugin lets the logging plugins listed after it see every message too. It never
//! delays the session: when the file cannot be opened or written (disk full, directory
//! removed, the command died), the server says so once on standard error and the lines for
//! that file are lost until its name changes (or, with `reopen`, the next connection).
//!
//! # CONFIGURATION
//!
//! The words `reopen`, `nosplit` and `tsformat` *FORMAT* come first, in any order; the
//! rest of the line is the file name or the command.
//!
//! ## reopen
//!
//! Default: off. Opens the file (or starts the command) afresh for each connection, when
//! its first line is to be written, and closes it when the connection ends. Without it the
//! file is opened once and kept open, which does not follow a file that was renamed by a
//! log rotation. With a command, each connection that logs something runs it once: with a
//! high log level that makes a pager or a monitoring agent get one report per troubled
//! connection.
//!
//! ## nosplit
//!
//! Default: off. Keeps each connection in one file: the name is expanded once, at the
//! connection's first line, and its later lines go to the same file even when the time
//! conversions in the name would have moved on (a connection that spans midnight stays
//! in the file of the day it started). Without it each line goes to the file its own time
//! names.
//!
//! ## tsformat *FORMAT*
//!
//! Default: `%a %b %d %T %Y` (`Sat Nov 21 14:03:07 2026`). The time stamp at the start of
//! each line, as a `strftime` format in local time: `%FT%T` gives
//! `2026-11-21T14:03:07`, `%s` the seconds since the epoch. It cannot contain spaces.
//!
//! ## PATH
//!
//! Required. The file to append to, or `|` followed by a command, as described above. A
//! file name is one word; a command takes the rest of the line.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: `LOGWARN`. Every plugin takes it. Here an absolute `loglevel N` sets the least
//! important level written, as a number from 0 (`LOGEMERG`) to 7 (`LOGDEBUG`) or as a name
//! (`LOGINFO`, `info`); a relative `+N`/`-N` shifts the default (`loglevel +2` is
//! `LOGINFO`).
//!
//! ## Files
//!
//! It is listed in `config/logging` (with the same syntax as `config/plugins`). The file it
//! writes must be in a directory the server can write to; that is checked when the server
//! starts (a file name without `%i` is opened then), and a command given by its path must
//! be executable.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Lines carry the process id, transaction id, hook and plugin as the server's other
//!   logs do, where the Perl plugin wrote `host[pid]: message`.
//! - With several connections served at once by one process (the nginx module), each
//!   connection's `reopen` file, command or `%i` file is its own, instead of one output
//!   that every connection reopened in turn.
//! - `reopen` closes the file (and ends the command) when the connection ends, as the
//!   Perl documentation said; the Perl code never did, through a misspelt variable.
//! - A file that cannot be opened, a bad time format, an unknown option or a word after
//!   the file name stops the server at start-up with the line named, instead of a warning
//!   and a plugin that logs nothing.
//! - A command's standard output goes to standard error, not to the SMTP client.
//!
//! # SEE ALSO
//!
//! qpsmtpd-logging-syslog(7), qpsmtpd-logging-warn(7), qpsmtpd-plugins(7), strftime(3)

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local};
use nix::unistd::{AccessFlags, access};
use qpsmtpd_core::log::{Level, LogAdjust, write_stderr_line};
use qpsmtpd_core::{
    ConfigError, Context, Hook, LogRecord, Plugin, PluginSpec, Registration, Setup, Verdict,
};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

/// The threshold when `loglevel` is not given: qpsmtpd's LOGWARN.
const DEFAULT_LEVEL: Level = Level::Warn;

/// The default time stamp, the form of Perl's `scalar localtime` (with a zero-padded day).
const DEFAULT_TSFORMAT: &str = "%a %b %d %T %Y";

/// What `%i` becomes for lines that belong to no connection.
const NO_SESSION: &str = "parent";

/// Connections whose state is kept at most (their state normally goes when they end).
const MAX_SESSIONS: usize = 4096;

/// Connections remembered as over, so that a line logged after the end leaves no state.
const ENDED: usize = 64;

/// The mode new log files are created with (before the umask).
const FILE_MODE: u32 = 0o640;

pub const SPEC: PluginSpec = PluginSpec {
    name: "logging/file",
    factory: new,
    args: &["reopen", "nosplit", "tsformat", "PATH"],
    rejects: false,
    example: "reopen tsformat %FT%T {dir}/qpsmtpd-%Y-%m-%d.log",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let settings = Settings::parse(setup.args, setup.loglevel).map_err(|e| setup.error(e))?;
    let logger = FileLogger::new(settings);
    logger.check(Local::now()).map_err(|e| setup.error(e))?;
    Ok(Box::new(logger))
}

/// One piece of a file name or command.
#[derive(Debug)]
enum Part {
    /// Text with `strftime` conversions.
    Time(Vec<Item<'static>>),
    /// `%i`: the connection id.
    Session,
}

/// A file name or command with its conversions, checked once.
#[derive(Debug)]
struct Template {
    parts: Vec<Part>,
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut piece = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                piece.push(c);
                continue;
            }
            match chars.next() {
                Some('i') => {
                    parts.push(Part::Time(time_items(&piece)?));
                    piece.clear();
                    parts.push(Part::Session);
                }
                // `%%` and the other conversions stay whole for strftime.
                Some(next) => {
                    piece.push('%');
                    piece.push(next);
                }
                None => piece.push('%'),
            }
        }
        parts.push(Part::Time(time_items(&piece)?));
        Ok(Template { parts })
    }

    /// True when `%i` is used: one output per connection.
    fn per_session(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Session))
    }

    fn expand(&self, now: &DateTime<Local>, session: Option<&str>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Time(items) => format_time(&mut out, now, items),
                Part::Session => out.push_str(session.unwrap_or(NO_SESSION)),
            }
        }
        out
    }
}

/// Parses a `strftime` format, refusing unknown conversions.
fn time_items(format: &str) -> Result<Vec<Item<'static>>, String> {
    StrftimeItems::new(format)
        .parse_to_owned()
        .map_err(|_| format!("bad time format {format:?} (see strftime(3))"))
}

fn format_time(out: &mut String, now: &DateTime<Local>, items: &[Item<'static>]) {
    // The items were checked; a conversion that still cannot be formatted leaves a gap
    // rather than a panic.
    let _ = write!(out, "{}", now.format_with_items(items.iter()));
}

/// A file, or a command to write to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    File,
    Command,
}

/// The plugin's line of `config/logging`, parsed.
#[derive(Debug)]
struct Settings {
    max: Level,
    reopen: bool,
    nosplit: bool,
    tsformat: Vec<Item<'static>>,
    target: Target,
    /// The file name or command as written (for messages).
    text: String,
    template: Template,
}

impl Settings {
    fn parse(args: &[String], loglevel: LogAdjust) -> Result<Settings, String> {
        let mut reopen = false;
        let mut nosplit = false;
        let mut tsformat = DEFAULT_TSFORMAT.to_string();
        let mut rest = args;
        while let Some((word, tail)) = rest.split_first() {
            match word.to_ascii_lowercase().as_str() {
                "reopen" => reopen = true,
                "nosplit" => nosplit = true,
                "tsformat" => {
                    let (format, tail) = tail
                        .split_first()
                        .ok_or("tsformat needs a value (a strftime format)")?;
                    tsformat = format.clone();
                    rest = tail;
                    continue;
                }
                _ => break,
            }
            rest = tail;
        }
        let (target, text) = match rest {
            [] => return Err("needs a file name or |command after its options".into()),
            [first, ..] if first.starts_with('|') => {
                let command = rest.join(" ");
                let command = command[1..].trim().to_string();
                if command.is_empty() {
                    return Err("| must be followed by a command".into());
                }
                (Target::Command, command)
            }
            [path] => (Target::File, path.clone()),
            [_, extra, ..] => {
                return Err(format!(
                    "unexpected argument {extra:?} after the file name (options come first; \
                     a file name is one word)"
                ));
            }
        };
        Ok(Settings {
            max: loglevel.apply(DEFAULT_LEVEL),
            reopen,
            nosplit,
            tsformat: time_items(&tsformat).map_err(|e| format!("tsformat: {e}"))?,
            target,
            template: Template::parse(&text)?,
            text,
        })
    }
}

/// Which open output a line goes to: the expanded name and, with `reopen`, the connection
/// that opened it for itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    name: String,
    owner: Option<String>,
}

/// An open output.
enum Sink {
    File(std::fs::File),
    Command(Pipe),
    /// Could not be opened or written; the failure was reported, lines are dropped.
    Broken,
}

impl Sink {
    fn open(target: Target, name: &str) -> std::io::Result<Sink> {
        match target {
            Target::File => std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(FILE_MODE)
                .open(name)
                .map(Sink::File),
            Target::Command => Pipe::start(name).map(Sink::Command),
        }
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(line),
            Sink::Command(p) => p.write(line),
            Sink::Broken => Ok(()),
        }
    }
}

/// A command reading the lines on its standard input.
struct Pipe {
    stdin: Option<ChildStdin>,
    child: Option<Child>,
}

impl Pipe {
    fn start(command: &str) -> std::io::Result<Pipe> {
        // Its output must never reach the SMTP client (standard output under tcpserver).
        let stdout = std::io::stderr().as_fd().try_clone_to_owned()?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(stdout))
            .spawn()?;
        Ok(Pipe {
            stdin: child.stdin.take(),
            child: Some(child),
        })
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(stdin) => stdin.write_all(line),
            None => Ok(()),
        }
    }
}

impl Drop for Pipe {
    /// Closes the command's input (it sees end-of-file) and collects its exit status
    /// without waiting for it here.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = std::thread::Builder::new()
                .name("logging-file-wait".into())
                .spawn(move || child.wait());
        }
    }
}

/// What is remembered of a connection between its lines.
#[derive(Debug)]
struct SessionState {
    /// Order of arrival, to let the oldest go when there are too many.
    seq: u64,
    /// With `nosplit`: the name chosen at the connection's first line.
    pinned: Option<String>,
    /// The output its last line went to.
    key: Option<Key>,
}

#[derive(Default)]
struct State {
    outputs: HashMap<Key, Sink>,
    sessions: HashMap<String, SessionState>,
    seq: u64,
    /// The shared output (no owner) used last: kept open between connections.
    shared: Option<Key>,
    /// The connections that ended last.
    ended: VecDeque<String>,
    /// Failures reported on standard error so far.
    errors_reported: u64,
}

impl State {
    /// Closes the outputs nothing refers to any more.
    fn close_unused(&mut self, keep: Option<&Key>) {
        let sessions = &self.sessions;
        let shared = self.shared.as_ref();
        self.outputs.retain(|k, _| {
            Some(k) == keep
                || Some(k) == shared
                || sessions.values().any(|s| s.key.as_ref() == Some(k))
        });
    }

    fn session(&mut self, id: &str) -> &mut SessionState {
        if !self.sessions.contains_key(id) {
            if self.sessions.len() >= MAX_SESSIONS {
                let oldest = self
                    .sessions
                    .iter()
                    .min_by_key(|(_, s)| s.seq)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.sessions.remove(&oldest);
                }
            }
            self.seq += 1;
            let state = SessionState {
                seq: self.seq,
                pinned: None,
                key: None,
            };
            self.sessions.insert(id.to_string(), state);
        }
        self.sessions.get_mut(id).expect("inserted above")
    }
}

struct FileLogger {
    settings: Settings,
    state: Mutex<State>,
}

impl FileLogger {
    fn new(settings: Settings) -> FileLogger {
        FileLogger {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At start-up: opens a file whose name does not depend on the connection (it is
    /// kept), or checks that the directory of a per-connection file is writable and that a
    /// command given by its path can be run.
    fn check(&self, now: DateTime<Local>) -> Result<(), String> {
        let s = &self.settings;
        match s.target {
            Target::File if !s.template.per_session() => {
                let name = s.template.expand(&now, None);
                let sink = Sink::open(Target::File, &name)
                    .map_err(|e| format!("cannot open {name}: {e}"))?;
                let key = Key { name, owner: None };
                let mut st = self.lock();
                st.outputs.insert(key.clone(), sink);
                st.shared = Some(key);
            }
            Target::File => {
                let name = s.template.expand(&now, Some("check"));
                let dir = match Path::new(&name).parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                access(dir, AccessFlags::W_OK).map_err(|e| {
                    format!(
                        "cannot create files in {}: {e} (for {})",
                        dir.display(),
                        s.text
                    )
                })?;
            }
            Target::Command => {
                let program = s.text.split_whitespace().next().unwrap_or_default();
                if program.contains('/') && !program.contains('%') {
                    access(program, AccessFlags::X_OK)
                        .map_err(|e| format!("cannot run {program}: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// The output for a line of `session` at `now`.
    fn key_for(&self, st: &mut State, session: Option<&str>, now: &DateTime<Local>) -> Key {
        let s = &self.settings;
        let Some(id) = session.filter(|id| !st.ended.iter().any(|e| e == id)) else {
            // No connection, or one that is over: nothing to remember.
            let key = Key {
                name: s.template.expand(now, session),
                owner: None,
            };
            st.shared = Some(key.clone());
            return key;
        };
        let state = st.session(id);
        let name = match (&state.pinned, s.nosplit) {
            (Some(pinned), true) => pinned.clone(),
            _ => s.template.expand(now, Some(id)),
        };
        if s.nosplit {
            state.pinned = Some(name.clone());
        }
        let key = Key {
            name,
            owner: s.reopen.then(|| id.to_string()),
        };
        state.key = Some(key.clone());
        if key.owner.is_none() {
            st.shared = Some(key.clone());
        }
        key
    }

    /// Writes one record as if it were logged at `now`.
    fn write_at(&self, record: &LogRecord<'_>, now: DateTime<Local>) {
        let mut line = String::new();
        format_time(&mut line, &now, &self.settings.tsformat);
        line.push(' ');
        line.push_str(&record.format_line(std::process::id()));
        line.push('\n');

        let mut st = self.lock();
        let key = self.key_for(&mut st, record.session, &now);
        if !st.outputs.contains_key(&key) {
            let sink = match Sink::open(self.settings.target, &key.name) {
                Ok(sink) => sink,
                Err(e) => {
                    report(&mut st, &format!("cannot open {}: {e}", key.name));
                    Sink::Broken
                }
            };
            st.outputs.insert(key.clone(), sink);
            st.close_unused(Some(&key));
        }
        let sink = st.outputs.get_mut(&key).expect("opened above");
        if let Err(e) = sink.write(line.as_bytes()) {
            *sink = Sink::Broken;
            report(&mut st, &format!("cannot write to {}: {e}", key.name));
        }
    }

    /// The connection is over: its own outputs are closed.
    fn end_session(&self, id: &str) {
        let mut st = self.lock();
        if st.ended.len() >= ENDED {
            st.ended.pop_front();
        }
        st.ended.push_back(id.to_string());
        if st.sessions.remove(id).is_some() {
            st.close_unused(None);
        }
    }
}

/// Says on standard error that lines are being lost (once per output that fails).
fn report(st: &mut State, message: &str) {
    st.errors_reported += 1;
    write_stderr_line(&format!(
        "{} logging::file: error: {message}; its log lines are lost",
        std::process::id()
    ));
}

impl Plugin for FileLogger {
    fn hooks(&self) -> Vec<Registration> {
        vec![
            Hook::Logging.into(),
            // After every other plugin, so that their last lines still find the output.
            Registration::with_priority(Hook::PostConnection, i32::MAX),
        ]
    }

    fn on_failure(&self, _: Hook) -> Verdict {
        // A logger never stands in the way of the session.
        Verdict::Declined
    }

    fn logging(&self, record: &LogRecord<'_>) -> Verdict {
        if record.level <= self.settings.max {
            self.write_at(record, Local::now());
        }
        Verdict::Declined
    }

    fn post_connection(&self, cx: &mut Context<'_>) -> Verdict {
        self.end_session(cx.session_id());
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn server(line: &str) -> Result<TestServer, ConfigError> {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", line)
            .build()
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A short session, ended by QUIT.
    fn session(server: &TestServer) {
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("HELO client.example").starts_with("250 "));
        assert!(s.command("QUIT").starts_with("221 "));
    }

    fn at(h: u32, m: u32) -> DateTime<Local> {
        Local.with_ymd_and_hms(2026, 11, 21, h, m, 7).unwrap()
    }

    fn record<'a>(session: Option<&'a str>, message: &'a str) -> LogRecord<'a> {
        LogRecord {
            level: Level::Warn,
            hook: Some(Hook::Rcpt),
            plugin: Some("test"),
            session,
            transaction: 1,
            message,
        }
    }

    fn file_logger(line: &str) -> FileLogger {
        FileLogger::new(Settings::parse(&words(line), LogAdjust::None).unwrap())
    }

    #[test]
    fn arguments() {
        let s = Settings::parse(
            &words("reopen NOSPLIT tsformat %s /var/log/qp.log"),
            LogAdjust::Absolute(Level::Info),
        )
        .unwrap();
        assert!(s.reopen && s.nosplit);
        assert_eq!(
            (s.max, s.target, s.text.as_str()),
            (Level::Info, Target::File, "/var/log/qp.log")
        );
        let s = Settings::parse(&words("| logger -t qp %i"), LogAdjust::Relative(2)).unwrap();
        assert_eq!(
            (s.max, s.target, s.text.as_str()),
            (Level::Info, Target::Command, "logger -t qp %i")
        );
        assert!(!s.reopen && !s.nosplit);
        let s = Settings::parse(&words("|cat"), LogAdjust::None).unwrap();
        assert_eq!((s.max, s.text.as_str()), (Level::Warn, "cat"));

        for (args, want) in [
            ("", "needs a file name or |command"),
            ("reopen", "needs a file name or |command"),
            ("tsformat", "tsformat needs a value"),
            ("tsformat %! /tmp/x", "tsformat: bad time format \"%!\""),
            ("/tmp/x-%!", "bad time format \"/tmp/x-%!\""),
            (
                "/tmp/x bogus_arg 1",
                "unexpected argument \"bogus_arg\" after the file name",
            ),
            ("|", "| must be followed by a command"),
        ] {
            let err = Settings::parse(&words(args), LogAdjust::None).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn names_expand_time_and_connection() {
        let t = Template::parse("/var/log/qp-%Y%m%d-%H.%i.log").unwrap();
        assert!(t.per_session());
        assert_eq!(
            t.expand(&at(9, 5), Some("6740a1b2.3039.1")),
            "/var/log/qp-20261121-09.6740a1b2.3039.1.log"
        );
        assert_eq!(
            t.expand(&at(9, 5), None),
            "/var/log/qp-20261121-09.parent.log"
        );
        let t = Template::parse("100%%i-%%%i").unwrap();
        assert_eq!(t.expand(&at(9, 5), Some("x")), "100%i-%x");
        assert!(!Template::parse("/var/log/qp.log").unwrap().per_session());
    }

    #[test]
    fn writes_time_stamped_lines_above_the_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qp.log");
        let logs = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file(
                "logging",
                &format!(
                    "logging/file loglevel LOGINFO tsformat [%Y] {}",
                    path.display()
                ),
            )
            .plugin("logs", logs.clone())
            .build()
            .unwrap();
        session(&server);
        let text = read(&path);
        let year = Local::now().format("%Y").to_string();
        let pid = std::process::id();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with(&format!("[{year}] {pid} "))),
            "{text}"
        );
        let banner = lines
            .iter()
            .find(|l| l.contains(" 220 test.example ESMTP"))
            .expect("banner logged");
        let id = banner.split(' ').nth(2).unwrap();
        assert!(id.ends_with(".0"), "{banner}");
        assert!(
            text.contains(&format!(
                "{pid} {id} 221 2.0.0 test.example closing connection. Have a wonderful day.\n"
            )),
            "{text}"
        );
        // Exactly the INFO-and-above records, and the logger declined them all.
        let info = logs
            .records()
            .iter()
            .filter(|r| r.level <= Level::Info)
            .count();
        assert_eq!(lines.len(), info, "{text}");
        assert!(
            logs.records().len() > info,
            "DEBUG records exist and were left out"
        );
    }

    #[test]
    fn percent_i_gives_each_connection_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let server = server(&format!(
            "logging/file loglevel 6 {}/s-%i.log",
            dir.path().display()
        ))
        .unwrap();
        session(&server);
        session(&server);
        server
            .server
            .log_core(Level::Error, None, "a line of no connection");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 3, "{files:?}");
        let parent = dir.path().join("s-parent.log");
        assert!(read(&parent).ends_with(" a line of no connection\n"));
        for f in files.iter().filter(|f| **f != parent) {
            let name = f.file_name().unwrap().to_str().unwrap();
            let id = name
                .strip_prefix("s-")
                .unwrap()
                .strip_suffix(".log")
                .unwrap();
            let text = read(f);
            assert!(text.contains(" 220 test.example"), "{text}");
            assert!(
                text.lines().all(|l| l.contains(&format!(" {id}."))),
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn nosplit_keeps_a_connection_in_its_first_file() {
        for (option, want_second) in [("", "qp-01.log"), ("nosplit", "qp-00.log")] {
            let dir = tempfile::tempdir().unwrap();
            let logger = file_logger(&format!("{option} {}/qp-%M.log", dir.path().display()));
            logger.write_at(&record(Some("s1"), "first"), at(10, 0));
            logger.write_at(&record(Some("s1"), "second"), at(10, 1));
            // A line of no connection always follows the clock.
            logger.write_at(&record(None, "parent"), at(10, 1));
            let second = read(&dir.path().join(want_second));
            assert!(
                second.contains("(rcpt) test: second\n"),
                "{option}: {second}"
            );
            let minute_1 = read(&dir.path().join("qp-01.log"));
            assert!(
                minute_1.contains("(rcpt) test: parent\n"),
                "{option}: {minute_1}"
            );
            assert!(read(&dir.path().join("qp-00.log")).contains("test: first\n"));
            // The file of minute 0 is closed once nothing writes to it any more.
            logger.end_session("s1");
            let st = logger.lock();
            let open: Vec<&str> = st.outputs.keys().map(|k| k.name.as_str()).collect();
            assert_eq!(open.len(), 1, "{open:?}");
            assert!(open[0].ends_with("qp-01.log"));
        }
    }

    /// After a log rotation renamed the file, `reopen` writes the next connection to a new
    /// file at the configured name; without it lines follow the renamed file.
    #[test]
    fn reopen_follows_a_rotated_file() {
        for (option, rotated_gets_second) in [("", true), ("reopen", false)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("qp.log");
            let rotated = dir.path().join("qp.log.1");
            let server = server(&format!(
                "logging/file loglevel 6 {option} {}",
                path.display()
            ))
            .unwrap();
            session(&server);
            std::fs::rename(&path, &rotated).unwrap();
            session(&server);
            let old = read(&rotated);
            assert_eq!(
                old.matches(" 220 test.example").count(),
                if rotated_gets_second { 2 } else { 1 },
                "{option}: {old}"
            );
            if rotated_gets_second {
                assert!(!path.exists());
            } else {
                assert_eq!(read(&path).matches(" 220 test.example").count(), 1);
            }
        }
    }

    #[test]
    fn reopen_opens_per_connection_and_closes_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let logger = file_logger(&format!("reopen {}/qp.log", dir.path().display()));
        logger.write_at(&record(Some("s1"), "one"), at(10, 0));
        logger.write_at(&record(Some("s2"), "two"), at(10, 0));
        logger.write_at(&record(Some("s1"), "three"), at(10, 0));
        {
            let st = logger.lock();
            let mut owners: Vec<Option<&str>> =
                st.outputs.keys().map(|k| k.owner.as_deref()).collect();
            owners.sort();
            assert_eq!(owners, [Some("s1"), Some("s2")]);
        }
        logger.end_session("s1");
        logger.end_session("s2");
        assert!(logger.lock().outputs.is_empty());
        let text = read(&dir.path().join("qp.log"));
        let messages: Vec<&str> = text
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(messages, ["one", "two", "three"]);
    }

    #[test]
    fn a_line_after_the_end_of_its_connection_leaves_nothing_open() {
        let dir = tempfile::tempdir().unwrap();
        let logger = file_logger(&format!("reopen {}/%i.log", dir.path().display()));
        logger.write_at(&record(Some("s1"), "during"), at(10, 0));
        logger.end_session("s1");
        logger.write_at(&record(Some("s1"), "late"), at(10, 0));
        logger.write_at(&record(None, "elsewhere"), at(10, 0));
        let st = logger.lock();
        assert!(st.sessions.is_empty());
        let open: Vec<&Key> = st.outputs.keys().collect();
        assert_eq!(open.len(), 1, "{open:?}");
        assert!(open[0].name.ends_with("/parent.log") && open[0].owner.is_none());
        let text = read(&dir.path().join("s1.log"));
        let messages: Vec<&str> = text
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(messages, ["during", "late"]);
    }

    fn wait_for(path: &Path, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(needle) || start.elapsed() > Duration::from_secs(10) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_command_receives_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("piped.log");
        let server = server(&format!(
            "logging/file loglevel 6 tsformat %Y |cat >> {}",
            out.display()
        ))
        .unwrap();
        session(&server);
        let text = wait_for(&out, "closing connection");
        assert!(text.contains(" 220 test.example ESMTP"), "{text}");
        assert!(
            text.contains(" 221 2.0.0 test.example closing connection"),
            "{text}"
        );
    }

    #[test]
    fn with_reopen_each_connection_runs_the_command_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("runs.log");
        // Each run of the command adds one line: how many lines it was given.
        let server = server(&format!(
            "logging/file loglevel 6 reopen |wc -l >> {}",
            out.display()
        ))
        .unwrap();
        session(&server);
        session(&server);
        let start = Instant::now();
        let mut runs = String::new();
        while start.elapsed() < Duration::from_secs(10) {
            runs = std::fs::read_to_string(&out).unwrap_or_default();
            if runs.lines().count() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let counts: Vec<u32> = runs.lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(counts.len(), 2, "{runs}");
        assert!(counts.iter().all(|&n| n >= 3), "{runs}");
    }

    #[test]
    fn failures_are_reported_once_and_never_stop_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let logger = file_logger(&format!("{}/%i.log", sub.display()));
        logger.check(at(10, 0)).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        for _ in 0..3 {
            logger.write_at(&record(Some("s1"), "lost"), at(10, 0));
        }
        assert_eq!(logger.lock().errors_reported, 1);
        // A command that exits at once: the write fails (broken pipe), reported once.
        let logger = file_logger("|exit 0");
        let start = Instant::now();
        while logger.lock().errors_reported == 0 && start.elapsed() < Duration::from_secs(10) {
            logger.write_at(&record(None, "lost"), at(10, 0));
            std::thread::sleep(Duration::from_millis(10));
        }
        logger.write_at(&record(None, "lost"), at(10, 0));
        assert_eq!(logger.lock().errors_reported, 1);
    }

    #[test]
    fn start_up_checks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        for (line, want) in [
            (
                format!("logging/file {d}/missing/qp.log"),
                format!("logging:1: logging/file: cannot open {d}/missing/qp.log: No such file"),
            ),
            (
                format!("logging/file {d}/missing/%i.log"),
                format!("logging:1: logging/file: cannot create files in {d}/missing: ENOENT"),
            ),
            (
                "logging/file |/nonexistent/pager -x".to_string(),
                "logging:1: logging/file: cannot run /nonexistent/pager: ENOENT".to_string(),
            ),
            (
                format!("logging/file {d}/qp.log bogus_arg 1"),
                "unexpected argument \"bogus_arg\"".to_string(),
            ),
            (
                format!("logging/file tsformat %Q {d}/qp.log"),
                "logging:1: logging/file: tsformat: bad time format \"%Q\"".to_string(),
            ),
        ] {
            let err = server(&line).expect_err(&line).to_string();
            assert!(err.contains(&want), "{line}: {err}");
        }
        // The example of the catalogue loads.
        let example = SPEC.example.replace("{dir}", &d.to_string());
        server(&format!("logging/file {example}")).unwrap();
    }
}
