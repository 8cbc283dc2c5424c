//! # NAME
//!
//! logging/warn - write log messages to standard error
//!
//! # DESCRIPTION
//!
//! Writes every log message at or above a chosen importance to standard error, one line
//! per message, in the same form as the server's built-in logger:
//!
//! ```text
//! 4242 (rcpt) rcpt_ok: fail: <joe@elsewhere.example> is not one of our domains
//! ```
//!
//! (process id, hook, plugin, message). Under daemontools or systemd standard error is
//! where the logs are collected anyway, so this plugin is mostly useful to log at a
//! different level than `config/loglevel`, or beside another logging plugin: it always
//! lets the logging plugins listed after it see the message too.
//!
//! Load it from `config/logging`, for example `logging/warn LOGINFO`.
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
//! Default: none. An absolute `loglevel N` is another way to give LEVEL
//! (`logging/warn loglevel 6` is `logging/warn 6`), as qpsmtpd's other logging plugins
//! take it; the positional LEVEL wins when both are given. A relative `+N`/`-N` has no
//! effect here.
//!
//! # SEE ALSO
//!
//! qpsmtpd(8), qpsmtpd-plugins(7)

use qpsmtpd_core::log::{Level, LogAdjust, write_stderr_line};
use qpsmtpd_core::{
    ConfigError, Hook, LogRecord, Plugin, PluginSpec, Registration, Setup, Verdict,
};

/// The threshold when none is given: qpsmtpd's LOGWARN.
const DEFAULT_LEVEL: Level = Level::Warn;

pub const SPEC: PluginSpec = PluginSpec {
    name: "logging/warn",
    factory: new,
    args: &["LEVEL"],
    rejects: false,
    example: "6",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let max = match (setup.args, setup.loglevel) {
        ([], LogAdjust::Absolute(level)) => level,
        (args, _) => threshold(args).map_err(|e| setup.error(e))?,
    };
    Ok(Box::new(Warn { max }))
}

/// The optional positional argument: the least important level written.
fn threshold(args: &[String]) -> Result<Level, String> {
    match args {
        [] => Ok(DEFAULT_LEVEL),
        [level] => Level::parse(level)
            .ok_or_else(|| format!("{level:?} is not a log level (0-7 or a name like LOGINFO)")),
        [_, extra, ..] => Err(format!("unexpected argument {extra:?}")),
    }
}

struct Warn {
    /// The least important level written.
    max: Level,
}

impl Warn {
    fn wants(&self, level: Level) -> bool {
        level <= self.max
    }
}

impl Plugin for Warn {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Logging.into()]
    }

    fn on_failure(&self, _: Hook) -> Verdict {
        // A logger never stands in the way of the session.
        Verdict::Declined
    }

    fn logging(&self, record: &LogRecord<'_>) -> Verdict {
        if self.wants(record.level) {
            write_stderr_line(&record.format_line(std::process::id()));
        }
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::{Harness, TestServer};
    use std::sync::{Arc, Mutex};

    fn server(line: &str) -> Result<TestServer, ConfigError> {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", line)
            .build()
    }

    #[test]
    fn level_argument() {
        let cases: &[(&[&str], Result<Level, &str>)] = &[
            (&[], Ok(Level::Warn)),
            (&["7"], Ok(Level::Debug)),
            (&["0"], Ok(Level::Emerg)),
            (&["LOGINFO"], Ok(Level::Info)),
            (&["notice"], Ok(Level::Notice)),
            (
                &["8"],
                Err("\"8\" is not a log level (0-7 or a name like LOGINFO)"),
            ),
            (&["6", "x"], Err("unexpected argument \"x\"")),
        ];
        for (args, want) in cases {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            assert_eq!(threshold(&args), want.map_err(String::from), "{args:?}");
        }
    }

    #[test]
    fn filters_by_level() {
        let warn = Warn { max: Level::Warn };
        let wanted: Vec<Level> = Level::ALL.into_iter().filter(|&l| warn.wants(l)).collect();
        assert_eq!(
            wanted,
            [
                Level::Emerg,
                Level::Alert,
                Level::Crit,
                Level::Error,
                Level::Warn
            ]
        );
    }

    /// A logger placed after logging/warn: it sees a record only if warn declined it.
    #[derive(Clone, Default)]
    struct Tail(Arc<Mutex<Vec<String>>>);
    impl Plugin for Tail {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Logging.into()]
        }
        fn logging(&self, record: &LogRecord<'_>) -> Verdict {
            self.0.lock().unwrap().push(record.message.to_string());
            Verdict::Ok(None)
        }
    }

    #[test]
    fn declines_so_later_loggers_run() {
        let tail = Tail::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", "logging/warn LOGERROR")
            .plugin("tail", tail.clone())
            .build()
            .unwrap();
        let chain = &server.server.chain;
        let loggers = chain.hooked(Hook::Logging);
        assert_eq!(loggers.len(), 2);
        assert_eq!(chain.entry(loggers[0]).name, "logging::warn");
        let record = |level, message| LogRecord {
            level,
            hook: Some(Hook::Connect),
            plugin: Some("test"),
            session: None,
            transaction: 0,
            message,
        };
        let quiet = record(Level::Debug, "logging/warn test: filtered out, not written");
        assert_eq!(
            chain.entry(loggers[0]).plugin.logging(&quiet),
            Verdict::Declined
        );
        server.server.log(&quiet);
        server
            .server
            .log(&record(Level::Crit, "logging/warn test: written to stderr"));
        // The tail logger saw both: logging/warn declined both, written or not.
        assert_eq!(
            *tail.0.lock().unwrap(),
            [
                "logging/warn test: filtered out, not written",
                "logging/warn test: written to stderr"
            ]
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            (
                "logging/warn LOUD",
                "logging:1: logging/warn: \"LOUD\" is not a log level",
            ),
            (
                "logging/warn 8",
                "logging:1: logging/warn: \"8\" is not a log level",
            ),
            (
                "logging/warn 4 6",
                "logging:1: logging/warn: unexpected argument \"6\"",
            ),
        ] {
            let err = server(line).expect_err("should be refused").to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
