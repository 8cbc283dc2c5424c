//! # NAME
//!
//! connection_time - log how long each connection lasted
//!
//! # DESCRIPTION
//!
//! Notes the time when a session starts and, when it has ended, logs how long it lasted,
//! in seconds with millisecond precision:
//!
//! ```text
//! pass: connection from 192.0.2.7 lasted 4.217 s
//! ```
//!
//! The clock starts when the session starts (its `connect` hook; this plugin's runs before
//! every other plugin's), and stops at the `post-connection` hook, after the client has
//! gone and every other end-of-session hook has run. A connection refused before the
//! session starts (by `hosts_allow` under the forking listener) is not timed.
//!
//! It only logs: it never refuses anything.
//!
//! # CONFIGURATION
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! The line is logged at `LOGINFO`; `loglevel LOGNOTICE` (or `loglevel 5`) logs it at
//! NOTICE, as the Perl plugin did by default.
//!
//! The plugin takes no other arguments.
//!
//! ## Files
//!
//! None: the plugin reads no control files.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The log level is chosen with `loglevel` like every plugin's; the Perl plugin took a
//!   level name as its only argument (`connection_time LOGDEBUG`), which is refused here.
//!   Its default level was NOTICE; here it is INFO, like every plugin's summary line.
//! - The line follows the common summary format: `pass: connection from IP lasted N s`
//!   instead of `Connection time from IP: N sec.`.
//! - The clock starts at `connect` rather than at `pre-connection`, which runs before the
//!   forking listener has started a process for the connection; under tcpserver and
//!   inetd, where there is no `pre-connection`, the Perl plugin logged nothing at all.
//!
//! # SEE ALSO
//!
//! qpsmtpd-plugins(7), qpsmtpd-logging-file(7)

use qpsmtpd_core::{ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Setup, Verdict};
use std::time::Instant;

pub const SPEC: PluginSpec = PluginSpec {
    name: "connection_time",
    factory: new,
    args: &[],
    rejects: false,
    example: "",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    setup.no_args()?;
    Ok(Box::new(ConnectionTime))
}

struct ConnectionTime;

/// When this session started.
#[derive(Default)]
struct Started(Option<Instant>);

impl Plugin for ConnectionTime {
    fn hooks(&self) -> Vec<Registration> {
        vec![
            // Before every other connect plugin, which might refuse the client and so end
            // the hook before this plugin's turn.
            Registration::with_priority(Hook::Connect, i32::MIN),
            Hook::PostConnection.into(),
        ]
    }

    /// It only logs; a failure must not refuse anyone.
    fn on_failure(&self, _hook: Hook) -> Verdict {
        Verdict::Declined
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        cx.state::<Started>().0 = Some(Instant::now());
        Verdict::Declined
    }

    fn post_connection(&self, cx: &mut Context<'_>) -> Verdict {
        let ip = cx.connection().remote_ip();
        match cx.state::<Started>().0.take() {
            Some(start) => cx.pass(format!(
                "connection from {ip} lasted {:.3} s",
                start.elapsed().as_secs_f64()
            )),
            None => cx.skip(format!("connection from {ip} was not timed")),
        }
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};
    use std::time::Duration;

    fn server(plugins: &str, log: &LogCapture) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", plugins)
            .plugin("capture", log.clone())
            .build()
            .unwrap()
    }

    /// The seconds in `pass: connection from IP lasted N s`.
    fn seconds(line: &str, ip: &str) -> f64 {
        let prefix = format!("INFO pass: connection from {ip} lasted ");
        let n = line
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(" s"))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert_eq!(n.split_once('.').map(|(_, f)| f.len()), Some(3), "{line}");
        n.parse().unwrap()
    }

    #[test]
    fn logs_the_duration_once_the_session_ends() {
        let log = LogCapture::default();
        let server = server("connection_time", &log);
        let mut s = server.session_from(ConnectionInfo::from_ip("192.0.2.7".parse().unwrap()));
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("HELO client.example").starts_with("250 "));
        std::thread::sleep(Duration::from_millis(120));
        assert!(log.of_plugin("connection_time").is_empty());
        assert!(s.command("QUIT").starts_with("221 "));
        let lines = log.of_plugin("connection_time");
        assert_eq!(lines.len(), 1, "{lines:?}");
        let secs = seconds(&lines[0], "192.0.2.7");
        assert!((0.12..10.0).contains(&secs), "{secs}");
    }

    #[test]
    fn times_connections_another_plugin_refuses() {
        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "hosts_allow\nconnection_time")
            .file("hosts_allow", "127.0.0.1 DENY go away")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = server.session();
        assert_eq!(s.connect(), "550 5.7.1 go away\r\n");
        assert!(s.is_closed());
        let lines = log.of_plugin("connection_time");
        assert_eq!(lines.len(), 1, "{lines:?}");
        seconds(&lines[0], "127.0.0.1");
    }

    #[test]
    fn a_client_that_hangs_up_is_timed_too() {
        let log = LogCapture::default();
        let server = server("connection_time loglevel LOGNOTICE", &log);
        let mut s = server.session();
        s.connect();
        s.hang_up();
        let records = log.records();
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.plugin.as_deref() == Some("connection_time"))
            .collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].level, qpsmtpd_core::Level::Notice);
        assert_eq!(mine[0].hook, Some(Hook::PostConnection));
        assert!(
            mine[0]
                .message
                .starts_with("pass: connection from 127.0.0.1 lasted ")
        );
    }

    #[test]
    fn takes_no_arguments() {
        for line in ["connection_time bogus_arg 1", "connection_time LOGDEBUG"] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: connection_time: "),
                "{line}: {err}"
            );
        }
    }
}
