//! # NAME
//!
//! logging/connection_id - log to standard error, each line starting with its connection id
//!
//! # DESCRIPTION
//!
//! Writes every log message at or above a chosen importance to standard error, one line per
//! message, like `logging/warn`, but each line starts with the id of the connection it
//! belongs to instead of the process id:
//!
//! ```text
//! 6740a1b2.3039.1 (rcpt) rcpt_ok: fail: <joe@elsewhere.example> is not one of our domains
//! ```
//!
//! (connection id, hook, plugin, message). A connection id is unique across processes and
//! over time: the hexadecimal time the server process started the connection, its process
//! id in hexadecimal, and a counter. Lines that belong to no connection (the forkserver's
//! own messages) start with the process id instead, as they do in the built-in format.
//!
//! The built-in logger and `logging/warn` already carry the id after the process id
//! (`4242 6740a1b2.3039.1.2 (rcpt) ...`), which is what a search with `grep` needs. This
//! plugin is for the tools that work on the first field: with the id first, a busy log
//! where many connections interleave can be regrouped connection by connection with
//! `sort -s -k1,1`, split with `awk '{ print > $1 }'`, or matched with an anchored pattern
//! (`grep '^6740a1b2.3039.1 '`), and multilog or a log shipper can key on it. The
//! transaction number is left out, so all lines of one connection share exactly the same
//! first field; `logging/transaction_id` keeps it, to tell the messages of one connection
//! apart.
//!
//! Like `logging/warn` it lets the logging plugins listed after it see every message too.
//! Load it from `config/logging`, for example `logging/connection_id LOGINFO`.
//!
//! # CONFIGURATION
//!
//! ## LEVEL
//!
//! Default: `4` (`LOGWARN`). The least important level written, as a number from 0
//! (`LOGEMERG`) to 7 (`LOGDEBUG`) or as a name (`LOGINFO`, `info`). Messages less important
//! than this are left out. This is the only positional argument, and it is optional.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it. Here an absolute `loglevel N` is another way to
//! give *LEVEL* (`logging/connection_id loglevel 6` is `logging/connection_id 6`) and a
//! relative `+N`/`-N` shifts the default `LOGWARN` (`loglevel +2` is `LOGINFO`); the
//! positional *LEVEL* wins when both are given.
//!
//! ## Files
//!
//! It is listed in `config/logging` (with the same syntax as `config/plugins`) and reads no
//! file of its own.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The Perl plugin refused to load ("The connection ID feature is currently
//!   unsupported"): the connection object it asked for its id had lost that method. Here
//!   it works, with the session id every log line of qpsmtpd-rs carries.
//! - Lines have the same `(hook) plugin:` layout as the built-in logger, where the Perl
//!   plugin wrote `plugin plugin:` or `running plugin (hook):`.
//!
//! # SEE ALSO
//!
//! qpsmtpd-logging-transaction_id(7), qpsmtpd-logging-warn(7), qpsmtpd-plugins(7)

use qpsmtpd_core::log::{Level, LogAdjust, write_stderr_line};
use qpsmtpd_core::{
    ConfigError, Hook, LogRecord, Plugin, PluginSpec, Registration, Setup, Verdict,
};

/// The threshold when none is given: qpsmtpd's LOGWARN.
const DEFAULT_LEVEL: Level = Level::Warn;

pub const SPEC: PluginSpec = PluginSpec {
    name: "logging/connection_id",
    factory: new,
    args: &["LEVEL"],
    rejects: false,
    example: "6",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let max = threshold(setup.args, setup.loglevel).map_err(|e| setup.error(e))?;
    Ok(Box::new(IdLogger::new(IdKind::Connection, max)))
}

/// The least important level written: the positional argument, else `loglevel`, else
/// LOGWARN (shared with `logging/transaction_id`).
pub(crate) fn threshold(args: &[String], loglevel: LogAdjust) -> Result<Level, String> {
    match args {
        [] => Ok(loglevel.apply(DEFAULT_LEVEL)),
        [level] => Level::parse(level)
            .ok_or_else(|| format!("{level:?} is not a log level (0-7 or a name like LOGINFO)")),
        [_, extra, ..] => Err(format!("unexpected argument {extra:?}")),
    }
}

/// Which id starts the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdKind {
    /// `<session id>`
    Connection,
    /// `<session id>.<transaction number>`
    Transaction,
}

/// Where the lines go: standard error, or memory in tests.
#[derive(Clone, Debug)]
pub(crate) enum Output {
    Stderr,
    #[cfg(test)]
    Memory(std::sync::Arc<std::sync::Mutex<Vec<String>>>),
}

impl Output {
    pub(crate) fn write(&self, line: &str) {
        match self {
            Output::Stderr => write_stderr_line(line),
            #[cfg(test)]
            Output::Memory(lines) => lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.to_string()),
        }
    }
}

/// A stderr logger whose lines start with an id (`logging/connection_id`,
/// `logging/transaction_id`).
pub(crate) struct IdLogger {
    kind: IdKind,
    max: Level,
    out: Output,
}

impl IdLogger {
    pub(crate) fn new(kind: IdKind, max: Level) -> IdLogger {
        IdLogger {
            kind,
            max,
            out: Output::Stderr,
        }
    }

    #[cfg(test)]
    pub(crate) fn writing_to(
        mut self,
        lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Self {
        self.out = Output::Memory(lines);
        self
    }

    /// The line for a record: the id (or, outside any session, the process id), then the
    /// hook, the plugin and the message as the built-in logger writes them.
    pub(crate) fn line(&self, record: &LogRecord<'_>, pid: u32) -> String {
        let id = match (record.session, self.kind) {
            (None, _) => pid.to_string(),
            (Some(session), IdKind::Connection) => session.to_string(),
            (Some(session), IdKind::Transaction) => format!("{session}.{}", record.transaction),
        };
        // The id is already the prefix: the rest is the built-in format without it.
        let rest = LogRecord {
            session: None,
            ..record.clone()
        };
        rest.format_with_prefix(&id)
    }
}

impl Plugin for IdLogger {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Logging.into()]
    }

    fn on_failure(&self, _: Hook) -> Verdict {
        // A logger never stands in the way of the session.
        Verdict::Declined
    }

    fn logging(&self, record: &LogRecord<'_>) -> Verdict {
        if record.level <= self.max {
            self.out.write(&self.line(record, std::process::id()));
        }
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::{Harness, LogCapture};
    use std::sync::{Arc, Mutex};

    fn record<'a>(session: Option<&'a str>, transaction: u32, message: &'a str) -> LogRecord<'a> {
        LogRecord {
            level: Level::Info,
            hook: Some(Hook::Rcpt),
            plugin: Some("rcpt_ok"),
            session,
            transaction,
            message,
        }
    }

    #[test]
    fn lines_start_with_the_connection_id() {
        let logger = IdLogger::new(IdKind::Connection, Level::Info);
        assert_eq!(
            logger.line(&record(Some("6740a1b2.3039.1"), 2, "pass: ok\nforged"), 42),
            "6740a1b2.3039.1 (rcpt) rcpt_ok: pass: ok forged"
        );
        // Outside a session: the process id, as the built-in logger writes it.
        let core = LogRecord {
            hook: None,
            plugin: None,
            ..record(None, 0, "listening on 0.0.0.0:25")
        };
        assert_eq!(logger.line(&core, 42), "42 listening on 0.0.0.0:25");
    }

    #[test]
    fn level_argument() {
        let words = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
        let cases: &[(&str, LogAdjust, Result<Level, &str>)] = &[
            ("", LogAdjust::None, Ok(Level::Warn)),
            ("7", LogAdjust::None, Ok(Level::Debug)),
            ("LOGINFO", LogAdjust::None, Ok(Level::Info)),
            ("", LogAdjust::Absolute(Level::Notice), Ok(Level::Notice)),
            ("", LogAdjust::Relative(2), Ok(Level::Info)),
            ("3", LogAdjust::Absolute(Level::Debug), Ok(Level::Error)),
            (
                "LOUD",
                LogAdjust::None,
                Err("\"LOUD\" is not a log level (0-7 or a name like LOGINFO)"),
            ),
            ("6 x", LogAdjust::None, Err("unexpected argument \"x\"")),
        ];
        for (args, adjust, want) in cases {
            assert_eq!(
                threshold(&words(args), *adjust),
                want.map_err(String::from),
                "{args:?} {adjust:?}"
            );
        }
    }

    #[test]
    fn writes_a_session_by_its_id_and_filters_by_level() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let logs = LogCapture::default();
        let server = Harness::new()
            .plugin(
                "logging::connection_id",
                IdLogger::new(IdKind::Connection, Level::Info).writing_to(lines.clone()),
            )
            .plugin("logs", logs.clone())
            .build()
            .unwrap();
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@example.org>");
        s.command("QUIT");
        let lines = lines.lock().unwrap().clone();
        let session = lines[0].split(' ').next().unwrap().to_string();
        assert_eq!(session.matches('.').count(), 2, "{session}");
        assert!(
            lines.iter().all(|l| l.starts_with(&format!("{session} "))),
            "{lines:#?}"
        );
        let banner = format!(
            "{session} 220 test.example ESMTP qpsmtpd {} ready; send us your mail, but not \
             your spam.",
            qpsmtpd_core::VERSION
        );
        assert!(lines.contains(&banner), "{lines:#?}");
        assert!(
            lines.contains(&format!(
                "{session} 221 2.0.0 test.example closing connection. Have a wonderful day."
            )),
            "{lines:#?}"
        );
        // Only INFO and more important: the DEBUG records the core logged are left out,
        // and the logger declined every record, so the next logger saw them all.
        let all = logs.records();
        let info = all.iter().filter(|r| r.level <= Level::Info).count();
        assert_eq!(lines.len(), info);
        assert!(all.len() >= lines.len());
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            (
                "logging/connection_id LOUD",
                "logging:1: logging/connection_id: \"LOUD\" is not a log level",
            ),
            (
                "logging/connection_id 6 bogus_arg 1",
                "logging:1: logging/connection_id: unexpected argument \"bogus_arg\"",
            ),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("logging", line)
                .build()
                .expect_err("should be refused")
                .to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
        assert!(
            Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("logging", "logging/connection_id LOGDEBUG")
                .build()
                .is_ok()
        );
    }
}
