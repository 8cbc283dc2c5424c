//! # NAME
//!
//! logging/transaction_id - log to standard error, each line starting with its transaction id
//!
//! # DESCRIPTION
//!
//! Writes every log message at or above a chosen importance to standard error, one line per
//! message, like `logging/warn`, but each line starts with the id of the transaction it
//! belongs to instead of the process id:
//!
//! ```text
//! 6740a1b2.3039.1.2 (rcpt) rcpt_ok: fail: <joe@elsewhere.example> is not one of our domains
//! ```
//!
//! (transaction id, hook, plugin, message). A transaction id is the connection id (see
//! `logging/connection_id`) followed by the number of the transaction within the
//! connection: `.0` for what happens before the first `MAIL FROM`, then one more at each
//! new transaction (each `MAIL FROM`, `RSET`, and after each message is answered). Lines
//! that belong to no connection (the forkserver's own messages) start with the process id
//! instead, as they do in the built-in format.
//!
//! The built-in logger and `logging/warn` write the same id after the process id
//! (`4242 6740a1b2.3039.1.2 (rcpt) ...`). With the id as the first field, the tools that
//! work on fields can take one message out of a busy log: `sort -s -k1,1` brings the lines
//! of each transaction together in their original order, `awk '$1 == "6740a1b2.3039.1.2"'`
//! prints one of them, `grep '^6740a1b2.3039.1\.'` the whole connection. Use
//! `logging/connection_id` when the lines of a connection should stay together instead.
//!
//! Like `logging/warn` it lets the logging plugins listed after it see every message too.
//! Load it from `config/logging`, for example `logging/transaction_id LOGINFO`.
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
//! give *LEVEL* (`logging/transaction_id loglevel 6` is `logging/transaction_id 6`) and a
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
//! - The Perl plugin refused to load ("The transaction ID feature is currently
//!   unsupported"): the transaction object it asked for its id had lost that method. Here
//!   it works, with the transaction id every log line of qpsmtpd-rs carries.
//! - Lines have the same `(hook) plugin:` layout as the built-in logger, where the Perl
//!   plugin wrote `plugin plugin:` or `running plugin (hook):`.
//!
//! # SEE ALSO
//!
//! qpsmtpd-logging-connection_id(7), qpsmtpd-logging-warn(7), qpsmtpd-plugins(7)

use super::connection_id::{IdKind, IdLogger, threshold};
use qpsmtpd_core::{ConfigError, Plugin, PluginSpec, Setup};

pub const SPEC: PluginSpec = PluginSpec {
    name: "logging/transaction_id",
    factory: new,
    args: &["LEVEL"],
    rejects: false,
    example: "LOGINFO",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let max = threshold(setup.args, setup.loglevel).map_err(|e| setup.error(e))?;
    Ok(Box::new(IdLogger::new(IdKind::Transaction, max)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::log::Level;
    use qpsmtpd_core::testing::Harness;
    use qpsmtpd_core::{Hook, LogRecord};
    use std::sync::{Arc, Mutex};

    #[test]
    fn lines_start_with_the_transaction_id() {
        let logger = IdLogger::new(IdKind::Transaction, Level::Info);
        let record = LogRecord {
            level: Level::Info,
            hook: Some(Hook::Rcpt),
            plugin: Some("rcpt_ok"),
            session: Some("6740a1b2.3039.1"),
            transaction: 2,
            message: "fail: <joe@elsewhere.example> is not one of our domains",
        };
        assert_eq!(
            logger.line(&record, 42),
            "6740a1b2.3039.1.2 (rcpt) rcpt_ok: fail: <joe@elsewhere.example> is not one of our domains"
        );
        let parent = LogRecord {
            session: None,
            hook: None,
            plugin: None,
            message: "listening",
            ..record
        };
        assert_eq!(logger.line(&parent, 42), "42 listening");
    }

    /// The transaction number in the lines follows MAIL and RSET.
    #[test]
    fn transactions_are_numbered_in_the_lines() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let server = Harness::new()
            .plugin(
                "logging::transaction_id",
                IdLogger::new(IdKind::Transaction, Level::Info).writing_to(lines.clone()),
            )
            .build()
            .unwrap();
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        assert!(s.command("MAIL FROM:<a@example.org>").starts_with("250 "));
        assert!(s.command("RSET").starts_with("250 "));
        assert!(s.command("MAIL FROM:<b@example.org>").starts_with("250 "));
        let lines = lines.lock().unwrap().clone();
        let first = lines[0].split(' ').next().unwrap();
        let session = first.strip_suffix(".0").expect("connect is transaction 0");
        let ids: Vec<&str> = lines
            .iter()
            .map(|l| l.split(' ').next().unwrap().strip_prefix(session).unwrap())
            .collect();
        let reply_to = |needle: &str| {
            let i = lines.iter().position(|l| l.contains(needle)).unwrap();
            ids[i]
        };
        assert_eq!(reply_to(" 220 "), ".0");
        assert_eq!(reply_to(" 250 test.example Hi "), ".0");
        assert_eq!(reply_to("<a@example.org>, sender OK"), ".1");
        assert_eq!(reply_to("250 2.0.0 OK"), ".2");
        assert_eq!(reply_to("<b@example.org>, sender OK"), ".3");
    }

    #[test]
    fn bad_arguments_are_refused() {
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", "logging/transaction_id 9")
            .build()
            .expect_err("level 9")
            .to_string();
        assert!(
            err.contains("logging:1: logging/transaction_id: \"9\" is not a log level"),
            "{err}"
        );
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", "logging/transaction_id LOGINFO bogus_arg 1")
            .build()
            .expect_err("bogus_arg")
            .to_string();
        assert!(err.contains("unexpected argument \"bogus_arg\""), "{err}");
    }
}
