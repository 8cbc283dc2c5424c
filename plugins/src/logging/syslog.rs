//! # NAME
//!
//! logging/syslog - send log messages to syslog
//!
//! # DESCRIPTION
//!
//! Sends every log message at or above a chosen importance to the system's syslog daemon
//! (rsyslog, syslog-ng, journald's `/dev/log`), or to a syslog server over UDP. Each
//! message is tagged with an ident and the process id, and carries the transaction id, hook
//! and plugin as the server's other logs do:
//!
//! ```text
//! Nov 21 14:03:07 mx1 qpsmtpd[4242]: 6740a1b2.3039.1.2 (rcpt) rcpt_ok: pass: example.com is one of our domains
//! ```
//!
//! The server's levels become the syslog severities of the same names: `LOGEMERG` →
//! `emerg`, `LOGALERT` → `alert`, `LOGCRIT` → `crit`, `LOGERROR` → `err`, `LOGWARN` →
//! `warning`, `LOGNOTICE` → `notice`, `LOGINFO` → `info`, `LOGDEBUG` → `debug`, so the
//! daemon's own rules (`mail.info -/var/log/mail.log`) can sort them.
//!
//! Load it from `config/logging`, for example
//! `logging/syslog loglevel LOGINFO priority LOG_NOTICE`. It lets the logging plugins listed
//! after it see every message too.
//!
//! The syslog socket is opened when the server starts, and a server that cannot reach it
//! does not start. Later, when the daemon is restarted, the plugin reconnects; while the
//! daemon cannot be reached (or is too slow: a message waits at most one second), messages
//! are dropped for five seconds at a time and the server says so once on standard error.
//!
//! # CONFIGURATION
//!
//! ## priority *SEVERITY*
//!
//! Default: none (each message's level gives its severity). A fixed severity for all
//! messages, such as `LOG_NOTICE`, `notice` or a number from 0 to 7.
//!
//! ## ident *NAME*
//!
//! Default: `qpsmtpd`. The name the messages are tagged with (letters, digits, `_`, `-`
//! and `.`).
//!
//! ## facility *FACILITY*
//!
//! Default: `LOG_MAIL`. The syslog facility: `LOG_MAIL`, `LOG_DAEMON`, `LOG_LOCAL0` to
//! `LOG_LOCAL7`, ... (with or without `LOG_`, in any case).
//!
//! ## logsock *SOCKET[,SOCKET...]*
//!
//! Default: `unix`. Where the messages go, as a comma-separated list of choices tried in
//! order when the server starts; the first that works is used:
//!
//! - `unix` (or `stream`): the system's socket, `/dev/log` (or `/var/run/syslog`,
//!   `/var/run/log`), as a datagram or a stream socket, whichever it is;
//! - a path such as `/var/spool/postfix/dev/log`: that Unix socket;
//! - `udp`: UDP to the syslog port of this host, 127.0.0.1:514;
//! - `udp:HOST:PORT`: UDP to another host, such as `udp:192.0.2.10:514` or
//!   `udp:[2001:db8::10]:514` (a name is resolved once, at start-up). The messages then
//!   carry this host's name, as RFC 3164 asks.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: `LOGWARN`. Every plugin takes it. Here an absolute `loglevel N` sets the least
//! important level sent, as a number from 0 (`LOGEMERG`) to 7 (`LOGDEBUG`) or as a name
//! (`LOGINFO`, `info`); a relative `+N`/`-N` shifts the default (`loglevel +2` is
//! `LOGINFO`).
//!
//! ## Files
//!
//! It is listed in `config/logging` (with the same syntax as `config/plugins`) and reads no
//! file of its own.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - `logsock` names sockets (`unix`, a path, `udp`, `udp:HOST:PORT`); Perl's `tcp` and
//!   `console` choices are not available and are refused at start-up.
//! - Messages carry the transaction id, hook and plugin; the Perl plugin sent only the
//!   message text.
//! - A bad `priority`, `ident` or `facility`, an unknown argument, or a syslog that cannot
//!   be reached stops the server at start-up with the line named, where the Perl plugin
//!   used a default or logged nothing.
//! - Time stamps in the messages are in UTC; most syslog daemons put their own.
//!
//! # SEE ALSO
//!
//! qpsmtpd-logging-file(7), qpsmtpd-logging-warn(7), qpsmtpd-plugins(7), syslog(3),
//! rsyslogd(8)

use qpsmtpd_core::log::{Level, LogAdjust, write_stderr_line};
use qpsmtpd_core::{
    ConfigError, Hook, LogRecord, Pairs, Plugin, PluginSpec, Registration, Setup, Verdict,
};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use syslog::{Facility, Formatter3164, LogFormat, Logger, LoggerBackend, Severity};

/// The threshold when `loglevel` is not given: qpsmtpd's LOGWARN.
const DEFAULT_LEVEL: Level = Level::Warn;
const DEFAULT_IDENT: &str = "qpsmtpd";
const DEFAULT_FACILITY: Facility = Facility::LOG_MAIL;
/// The syslog port `udp` alone sends to.
const LOCAL_UDP: &str = "127.0.0.1:514";
/// The longest message text sent (syslog daemons commonly accept 8 KiB).
const MAX_MESSAGE: usize = 8000;
/// How long a message may wait for a busy local syslog daemon.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// How long messages are dropped after syslog could not be reached.
const PAUSE: Duration = Duration::from_secs(5);

pub const SPEC: PluginSpec = PluginSpec {
    name: "logging/syslog",
    factory: new,
    args: &["priority", "ident", "facility", "logsock"],
    rejects: false,
    // The discard port of this host: nothing listens there, nothing leaves it.
    example: "loglevel LOGINFO ident qpsmtpd facility LOG_MAIL logsock udp:127.0.0.1:9",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let settings = Settings::parse(&pairs, setup.loglevel).map_err(|e| setup.error(e))?;
    let plugin = Syslog::connect(settings).map_err(|e| setup.error(e))?;
    Ok(Box::new(plugin))
}

/// Where messages are sent.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sock {
    /// `unix`/`stream`: the system's socket.
    System,
    /// A Unix socket by path.
    Path(PathBuf),
    /// A syslog server over UDP.
    Udp(SocketAddr),
}

impl Sock {
    fn parse(s: &str) -> Result<Sock, String> {
        match s.to_ascii_lowercase().as_str() {
            "unix" | "stream" => return Ok(Sock::System),
            "udp" => return Ok(Sock::Udp(LOCAL_UDP.parse().expect("a socket address"))),
            "tcp" | "console" | "native" | "pipe" | "inet" => {
                return Err(format!(
                    "logsock {s} is not supported (use unix, a socket path, udp or udp:HOST:PORT)"
                ));
            }
            _ => {}
        }
        if let Some(server) = s.strip_prefix("udp:") {
            let addr = server
                .to_socket_addrs()
                .map_err(|e| format!("logsock {s}: {e} (the form is udp:HOST:PORT)"))?
                .next()
                .ok_or_else(|| format!("logsock {s}: no address"))?;
            return Ok(Sock::Udp(addr));
        }
        if s.starts_with('/') {
            return Ok(Sock::Path(PathBuf::from(s)));
        }
        Err(format!(
            "logsock {s:?} is none of unix, a socket path, udp or udp:HOST:PORT"
        ))
    }

    fn open(
        &self,
        ident: &str,
        facility: Facility,
    ) -> Result<Logger<LoggerBackend, Formatter3164>, String> {
        let mut formatter = Formatter3164 {
            facility,
            hostname: None,
            process: ident.to_string(),
            pid: std::process::id(),
        };
        let logger = match self {
            Sock::System => syslog::unix(formatter),
            Sock::Path(path) => syslog::unix_custom(formatter, path),
            Sock::Udp(server) => {
                // Over the network the message says which host it comes from.
                formatter.hostname = nix::unistd::gethostname()
                    .ok()
                    .map(|h| h.to_string_lossy().into_owned());
                let local = if server.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                syslog::udp(formatter, local, server)
            }
        }
        .map_err(|e| format!("{self}: {e}"))?;
        match &logger.backend {
            LoggerBackend::Unix(s) => s.set_write_timeout(Some(SEND_TIMEOUT)),
            LoggerBackend::UnixStream(s) => s.get_ref().set_write_timeout(Some(SEND_TIMEOUT)),
            _ => Ok(()),
        }
        .map_err(|e| format!("{self}: {e}"))?;
        Ok(logger)
    }
}

impl std::fmt::Display for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sock::System => f.write_str("the system's syslog socket"),
            Sock::Path(p) => write!(f, "{}", p.display()),
            Sock::Udp(a) => write!(f, "udp:{a}"),
        }
    }
}

/// The plugin's line of `config/logging`, parsed.
struct Settings {
    max: Level,
    priority: Option<Severity>,
    ident: String,
    facility: Facility,
    socks: Vec<Sock>,
}

impl Settings {
    fn parse(pairs: &Pairs, loglevel: LogAdjust) -> Result<Settings, String> {
        let priority = match pairs.get("priority") {
            None => None,
            Some(p) => Some(parse_severity(p).ok_or_else(|| {
                format!("priority {p:?} is not a syslog severity (LOG_ERR, LOG_NOTICE, 0-7...)")
            })?),
        };
        let ident = pairs.get("ident").unwrap_or(DEFAULT_IDENT);
        if !ident
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "ident {ident:?} may only hold letters, digits, _, - and ."
            ));
        }
        let facility = match pairs.get("facility") {
            None => DEFAULT_FACILITY,
            Some(f) => f.parse().map_err(|()| {
                format!("facility {f:?} is not a syslog facility (LOG_MAIL, LOG_LOCAL0...)")
            })?,
        };
        let socks = match pairs.get("logsock") {
            None => vec![Sock::System],
            Some(list) => list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(Sock::parse)
                .collect::<Result<Vec<_>, _>>()?,
        };
        if socks.is_empty() {
            return Err("logsock is empty".into());
        }
        Ok(Settings {
            max: loglevel.apply(DEFAULT_LEVEL),
            priority,
            ident: ident.to_string(),
            facility,
            socks,
        })
    }
}

/// `LOG_NOTICE`, `notice`, `LOGNOTICE` or `5`.
fn parse_severity(s: &str) -> Option<Severity> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 7).then(|| severity(Level::from_number(n.into())));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper
        .strip_prefix("LOG_")
        .or_else(|| upper.strip_prefix("LOG"))
        .unwrap_or(&upper);
    Some(match name {
        "EMERG" | "PANIC" => Severity::LOG_EMERG,
        "ALERT" => Severity::LOG_ALERT,
        "CRIT" => Severity::LOG_CRIT,
        "ERR" | "ERROR" => Severity::LOG_ERR,
        "WARNING" | "WARN" => Severity::LOG_WARNING,
        "NOTICE" => Severity::LOG_NOTICE,
        "INFO" => Severity::LOG_INFO,
        "DEBUG" => Severity::LOG_DEBUG,
        _ => return None,
    })
}

/// The syslog severity of a level: the one of the same name.
fn severity(level: Level) -> Severity {
    match level {
        Level::Emerg => Severity::LOG_EMERG,
        Level::Alert => Severity::LOG_ALERT,
        Level::Crit => Severity::LOG_CRIT,
        Level::Error => Severity::LOG_ERR,
        Level::Warn => Severity::LOG_WARNING,
        Level::Notice => Severity::LOG_NOTICE,
        Level::Info => Severity::LOG_INFO,
        Level::Debug => Severity::LOG_DEBUG,
    }
}

/// The connection to syslog, shared by the sessions of the process.
struct Link {
    logger: Option<Logger<LoggerBackend, Formatter3164>>,
    /// Messages are dropped until then, after a failure.
    paused_until: Option<Instant>,
    /// The current failure was reported on standard error.
    reported: bool,
    /// Failures reported so far.
    errors_reported: u64,
}

struct Syslog {
    settings: Settings,
    /// The choice of `logsock` that worked at start-up.
    sock: Sock,
    link: Mutex<Link>,
}

impl Syslog {
    /// Opens the first `logsock` choice that works.
    fn connect(settings: Settings) -> Result<Syslog, String> {
        let mut errors = Vec::new();
        for sock in &settings.socks {
            match sock.open(&settings.ident, settings.facility) {
                Ok(logger) => {
                    let sock = sock.clone();
                    return Ok(Syslog {
                        settings,
                        sock,
                        link: Mutex::new(Link {
                            logger: Some(logger),
                            paused_until: None,
                            reported: false,
                            errors_reported: 0,
                        }),
                    });
                }
                Err(e) => errors.push(e),
            }
        }
        Err(format!("cannot reach syslog: {}", errors.join("; ")))
    }

    fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one message; reconnects once when the socket went away (a restarted daemon).
    fn send(&self, severity: Severity, message: &str) {
        let mut link = self.lock();
        if link.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let mut result = match link.logger.as_mut() {
            Some(logger) => send_with(logger, severity, message),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        };
        if let Err(e) = &result
            && !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        {
            link.logger = None;
            result = match self.sock.open(&self.settings.ident, self.settings.facility) {
                Ok(mut logger) => {
                    let sent = send_with(&mut logger, severity, message);
                    link.logger = Some(logger);
                    sent
                }
                Err(e) => Err(std::io::Error::other(e)),
            };
        }
        match result {
            Ok(()) => {
                link.paused_until = None;
                link.reported = false;
            }
            Err(e) => {
                link.paused_until = Some(Instant::now() + PAUSE);
                if !link.reported {
                    link.reported = true;
                    link.errors_reported += 1;
                    write_stderr_line(&format!(
                        "{} logging::syslog: error: cannot send to {}: {e}; messages are dropped \
                         until it works again",
                        std::process::id(),
                        self.sock
                    ));
                }
            }
        }
    }
}

fn send_with(
    logger: &mut Logger<LoggerBackend, Formatter3164>,
    severity: Severity,
    message: &str,
) -> std::io::Result<()> {
    // A forked child logs under its own process id.
    logger.formatter.pid = std::process::id();
    logger
        .formatter
        .format(&mut logger.backend, severity, message)
        .map_err(|e| match e {
            syslog::Error::Write(e) => e,
            other => std::io::Error::other(other.to_string()),
        })
}

/// The text sent: the server's line without the process id (syslog adds its own), cut to
/// a length syslog daemons accept.
fn message_text(record: &LogRecord<'_>) -> String {
    let line = record.format_with_prefix("");
    let mut text = line.trim_start().to_string();
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl Plugin for Syslog {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Logging.into()]
    }

    fn on_failure(&self, _: Hook) -> Verdict {
        // A logger never stands in the way of the session.
        Verdict::Declined
    }

    fn logging(&self, record: &LogRecord<'_>) -> Verdict {
        if record.level <= self.settings.max {
            let severity = self
                .settings
                .priority
                .unwrap_or_else(|| severity(record.level));
            self.send(severity, &message_text(record));
        }
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};
    use std::net::UdpSocket;
    use std::os::unix::net::UnixDatagram;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    fn server(line: &str) -> Result<TestServer, ConfigError> {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", line)
            .build()
    }

    /// Collects the datagrams a socket receives until none came for half a second (read
    /// on a thread, so that a full socket queue never blocks the session under test).
    fn collect(
        recv: impl Fn(&mut [u8]) -> std::io::Result<usize> + Send + 'static,
    ) -> JoinHandle<Vec<String>> {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            got
        })
    }

    fn unix_listener(dir: &std::path::Path) -> (PathBuf, Arc<UnixDatagram>) {
        let path = dir.join("log");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        (path, Arc::new(sock))
    }

    fn udp_listener() -> (u16, Arc<UdpSocket>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        (sock.local_addr().unwrap().port(), Arc::new(sock))
    }

    /// A session: banner, HELO, QUIT.
    fn session(server: &TestServer) {
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("HELO client.example").starts_with("250 "));
        assert!(s.command("QUIT").starts_with("221 "));
    }

    #[test]
    fn sends_to_a_unix_socket_with_ident_pid_and_severity() {
        let dir = tempfile::tempdir().unwrap();
        let (path, sock) = unix_listener(dir.path());
        let logs = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file(
                "logging",
                &format!(
                    "logging/syslog loglevel LOGINFO ident qp-test facility local3 logsock {}",
                    path.display()
                ),
            )
            .plugin("logs", logs.clone())
            .build()
            .unwrap();
        let reader = collect(move |buf| sock.recv(buf));
        session(&server);
        let got = reader.join().unwrap();
        let pid = std::process::id();
        let banner = got
            .iter()
            .find(|m| m.contains(" 220 test.example ESMTP qpsmtpd"))
            .unwrap_or_else(|| panic!("no banner in {got:#?}"));
        // local3 (19) * 8 + info (6); then "Nov 21 14:03:07", no host name over a local
        // socket, the ident with the pid, and the line with its transaction id.
        assert!(banner.starts_with("<158>"), "{banner}");
        let after_time = &banner[5 + "Nov 21 14:03:07".len()..];
        assert!(
            after_time.starts_with(&format!(" qp-test[{pid}]: ")),
            "{banner}"
        );
        let text = after_time.split_once("]: ").unwrap().1;
        let id = text.split(' ').next().unwrap();
        assert!(
            id.ends_with(".0") && id.matches('.').count() == 3,
            "{banner}"
        );
        assert!(got.iter().any(|m| m.contains(&format!(
            "qp-test[{pid}]: {id} 221 2.0.0 test.example closing connection."
        ))));
        // One datagram per record at INFO or above, none for DEBUG.
        let info = logs
            .records()
            .iter()
            .filter(|r| r.level <= Level::Info)
            .count();
        assert_eq!(got.len(), info, "{got:#?}");
        assert!(logs.records().len() > info);
    }

    #[test]
    fn sends_over_udp_with_the_host_name_and_a_fixed_priority() {
        let (port, sock) = udp_listener();
        let server = server(&format!(
            "logging/syslog loglevel 6 priority LOG_NOTICE logsock udp:127.0.0.1:{port}"
        ))
        .unwrap();
        let reader = collect(move |buf| sock.recv(buf));
        session(&server);
        let got = reader.join().unwrap();
        assert!(!got.is_empty());
        let host = nix::unistd::gethostname().unwrap();
        let host = host.to_string_lossy();
        let pid = std::process::id();
        for m in &got {
            // mail (2) * 8 + notice (5), whatever the level.
            assert!(m.starts_with("<21>"), "{m}");
            assert!(m.contains(&format!(" {host} qpsmtpd[{pid}]: ")), "{m}");
        }
        assert!(
            got.iter().any(|m| m.contains(" 250 test.example Hi ")),
            "{got:#?}"
        );
    }

    #[test]
    fn the_first_logsock_that_works_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let (port, sock) = udp_listener();
        let server = server(&format!(
            "logging/syslog loglevel 6 logsock {}/nothing-here,udp:127.0.0.1:{port}",
            dir.path().display()
        ))
        .unwrap();
        let reader = collect(move |buf| sock.recv(buf));
        session(&server);
        assert!(reader.join().unwrap().iter().any(|m| m.contains(" 220 ")));
    }

    fn record(level: Level, message: &str) -> LogRecord<'_> {
        LogRecord {
            level,
            hook: Some(Hook::Mail),
            plugin: Some("test"),
            session: Some("6740a1b2.3039.1"),
            transaction: 1,
            message,
        }
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// The syslog daemon restarts (its socket is made anew): the next message reconnects.
    #[test]
    fn reconnects_after_the_daemon_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let (path, sock) = unix_listener(dir.path());
        let pairs = Pairs::parse(
            &[
                "logsock".to_string(),
                path.display().to_string(),
                "ident".into(),
                "qp".into(),
            ],
            &SPEC.keys(),
        )
        .unwrap();
        let plugin = Syslog::connect(Settings::parse(&pairs, LogAdjust::None).unwrap()).unwrap();
        plugin.logging(&record(Level::Warn, "before"));
        plugin.logging(&record(Level::Notice, "below the level"));
        let got = recv(&sock);
        assert!(got.starts_with("<20>"), "{got}"); // mail warning
        assert!(
            got.ends_with("]: 6740a1b2.3039.1.1 (mail) test: before"),
            "{got}"
        );

        drop(sock);
        std::fs::remove_file(&path).unwrap();
        let (_, sock) = unix_listener(dir.path());
        plugin.logging(&record(Level::Error, "after"));
        let got = recv(&sock);
        assert!(
            got.starts_with("<19>") && got.ends_with("test: after"),
            "{got}"
        );
        assert_eq!(plugin.lock().errors_reported, 0);

        // The daemon is gone: reported once, then messages are dropped for a while.
        drop(sock);
        std::fs::remove_file(&path).unwrap();
        for _ in 0..3 {
            plugin.logging(&record(Level::Error, "lost"));
        }
        assert_eq!(plugin.lock().errors_reported, 1);
        assert!(plugin.lock().paused_until.is_some());
    }

    #[test]
    fn levels_become_severities() {
        let names: Vec<u8> = Level::ALL.iter().map(|&l| severity(l) as u8).collect();
        assert_eq!(names, [0, 1, 2, 3, 4, 5, 6, 7]);
        for (text, want) in [
            ("LOG_NOTICE", Some(5)),
            ("notice", Some(5)),
            ("LOGERROR", Some(3)),
            ("log_err", Some(3)),
            ("warning", Some(4)),
            ("0", Some(0)),
            ("7", Some(7)),
            ("8", None),
            ("LOG_LOUD", None),
        ] {
            assert_eq!(parse_severity(text).map(|s| s as u8), want, "{text}");
        }
        let long = "x".repeat(MAX_MESSAGE + 10);
        assert_eq!(message_text(&record(Level::Info, &long)).len(), MAX_MESSAGE);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        for (line, want) in [
            (
                "logging/syslog logsock udp:127.0.0.1:9 bogus_arg 1".to_string(),
                "logging:1: logging/syslog: unknown argument \"bogus_arg\"".to_string(),
            ),
            (
                "logging/syslog priority LOUD logsock udp".into(),
                "priority \"LOUD\" is not a syslog severity".into(),
            ),
            (
                "logging/syslog ident qp/smtpd logsock udp".into(),
                "ident \"qp/smtpd\" may only hold".into(),
            ),
            (
                "logging/syslog facility LOG_NOWHERE logsock udp".into(),
                "facility \"LOG_NOWHERE\" is not a syslog facility".into(),
            ),
            (
                "logging/syslog logsock tcp".into(),
                "logsock tcp is not supported".into(),
            ),
            (
                "logging/syslog logsock udp:localhost".into(),
                "logsock udp:localhost:".into(),
            ),
            (
                format!("logging/syslog logsock {d}/nothing-here"),
                format!("logging:1: logging/syslog: cannot reach syslog: {d}/nothing-here: "),
            ),
            ("logging/syslog logsock".into(), "has no value".into()),
        ] {
            let err = server(&line).expect_err(&line).to_string();
            assert!(err.contains(&want), "{line}: {err}");
        }
        server(&format!("logging/syslog {}", SPEC.example)).unwrap();
    }
}
