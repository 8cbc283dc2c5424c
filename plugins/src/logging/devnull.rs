//! # NAME
//!
//! logging/devnull - discard every log message
//!
//! # DESCRIPTION
//!
//! Throws every log message away. Without a logging plugin the server writes its messages
//! to standard error (at the level set in `config/loglevel`); with this one loaded alone in
//! `config/logging`, nothing is logged at all. That suits a test server, or a front-end
//! whose standard error goes somewhere unwanted.
//!
//! It also stops the logging plugins listed *after* it from seeing any message, so it can
//! end a list of loggers (`logging/file ...` then `logging/devnull`) without changing what
//! they write: place it last.
//!
//! # CONFIGURATION
//!
//! It takes no arguments.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it; it has no effect here, as every message is
//! discarded whatever its level.
//!
//! ## Files
//!
//! It is listed in `config/logging` (with the same syntax as `config/plugins`) and reads no
//! file of its own.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The Perl plugin declined each message, so the loggers listed after it still wrote it.
//!   This one ends the logging chain (it answers OK), so that `logging/devnull` means no
//!   log wherever it stands. Both keep the messages from standard error.
//!
//! # SEE ALSO
//!
//! qpsmtpd-logging-warn(7), qpsmtpd-logging-file(7), qpsmtpd-plugins(7)

use qpsmtpd_core::{
    ConfigError, Hook, LogRecord, Plugin, PluginSpec, Registration, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "logging/devnull",
    factory: new,
    args: &[],
    rejects: false,
    example: "",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    setup.no_args()?;
    Ok(Box::new(DevNull))
}

struct DevNull;

impl Plugin for DevNull {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Logging.into()]
    }

    fn on_failure(&self, _: Hook) -> Verdict {
        Verdict::Declined
    }

    fn logging(&self, _: &LogRecord<'_>) -> Verdict {
        // Handled: the later loggers and the built-in stderr logger write nothing.
        Verdict::ok()
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, LogCapture};
    use qpsmtpd_core::{Hook, Level, LogRecord, Verdict};

    #[test]
    fn later_loggers_see_nothing() {
        let logs = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", "logging/devnull")
            .file("plugins", "rcpt_ok")
            .plugin("logs", logs.clone())
            .build()
            .unwrap();
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("HELO client.example").starts_with("250 "));
        assert!(s.command("MAIL FROM:<a@example.org>").starts_with("250 "));
        s.command("QUIT");
        assert_eq!(logs.records(), []);

        let chain = &server.server.chain;
        let first = chain.entry(chain.hooked(Hook::Logging)[0]);
        assert_eq!(first.name, "logging::devnull");
        let record = LogRecord {
            level: Level::Emerg,
            hook: None,
            plugin: None,
            session: None,
            transaction: 0,
            message: "even this",
        };
        assert_eq!(first.plugin.logging(&record), Verdict::ok());
    }

    #[test]
    fn without_it_the_capture_sees_the_session() {
        // The same session without devnull: the test above can fail.
        let logs = LogCapture::default();
        let server = Harness::new().plugin("logs", logs.clone()).build().unwrap();
        let mut s = server.session();
        s.connect();
        assert!(logs.contains("220 test.example ESMTP"));
    }

    #[test]
    fn arguments_are_refused() {
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", "logging/devnull bogus_arg 1")
            .build()
            .expect_err("takes no arguments")
            .to_string();
        assert!(
            err.contains("logging:1: logging/devnull: takes no arguments (got \"bogus_arg\")"),
            "{err}"
        );
        // loglevel is the core's: accepted, and of no consequence.
        assert!(
            Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("logging", "logging/devnull loglevel 7")
                .build()
                .is_ok()
        );
    }
}
