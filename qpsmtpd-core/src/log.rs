//! Log levels and log records.
//!
//! Levels are qpsmtpd's (syslog's): 0 is the most severe, 7 the most verbose. A record
//! goes to the `logging` hooks when a logging plugin is loaded, else to stderr as
//! `<pid> (<hook>) <plugin>: message`, the format multilog users and log watchers expect.

use crate::hook::Hook;
use std::fmt;
use std::io::Write;

/// A log level (qpsmtpd's LOG* constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Error = 3,
    Warn = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    pub const ALL: [Level; 8] = [
        Level::Emerg,
        Level::Alert,
        Level::Crit,
        Level::Error,
        Level::Warn,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];

    pub fn from_number(n: i64) -> Level {
        Level::ALL[n.clamp(0, 7) as usize]
    }

    /// Parses `6`, `info`, `LOGINFO`.
    pub fn parse(s: &str) -> Option<Level> {
        if let Ok(n) = s.parse::<i64>() {
            return (0..=7).contains(&n).then(|| Level::from_number(n));
        }
        let name = s.to_ascii_uppercase();
        let name = name.strip_prefix("LOG").unwrap_or(&name);
        Level::ALL.iter().copied().find(|l| l.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Emerg => "EMERG",
            Level::Alert => "ALERT",
            Level::Crit => "CRIT",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A plugin's `loglevel` argument: an absolute level for all its messages, or a shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogAdjust {
    #[default]
    None,
    /// `loglevel 6`: every message of the plugin is logged at this level.
    Absolute(Level),
    /// `loglevel +1` / `loglevel -2`: messages are made less (+) or more (-) important.
    Relative(i8),
}

impl LogAdjust {
    pub fn parse(s: &str) -> Option<LogAdjust> {
        if let Some(n) = s
            .strip_prefix('+')
            .or_else(|| s.strip_prefix('-').map(|_| s))
        {
            let n: i8 = n.parse().ok()?;
            return (-7..=7).contains(&n).then_some(LogAdjust::Relative(n));
        }
        Level::parse(s).map(LogAdjust::Absolute)
    }

    pub fn apply(self, level: Level) -> Level {
        match self {
            LogAdjust::None => level,
            LogAdjust::Absolute(l) => l,
            LogAdjust::Relative(n) => Level::from_number(level as i64 + n as i64),
        }
    }
}

/// One log message with where it came from.
#[derive(Clone, Debug)]
pub struct LogRecord<'a> {
    pub level: Level,
    /// The hook running when the message was logged, if any.
    pub hook: Option<Hook>,
    /// The plugin that logged, or `None` for the core.
    pub plugin: Option<&'a str>,
    /// The session (connection) the message belongs to, if any.
    pub session: Option<&'a str>,
    /// The transaction within the session: 0 before the first MAIL, then 1, 2, ...
    pub transaction: u32,
    pub message: &'a str,
}

impl LogRecord<'_> {
    /// `<session id>.<transaction number>`, the id that follows one transaction through
    /// a busy log.
    pub fn transaction_id(&self) -> Option<String> {
        self.session.map(|s| format!("{s}.{}", self.transaction))
    }

    /// qpsmtpd's line format with the transaction id after the pid, without a trailing
    /// newline: `<pid> <session>.<transaction> (<hook>) <plugin>: message`. Parts that do
    /// not apply are left out (the forkserver's own lines are `<pid> message`).
    pub fn format_line(&self, pid: u32) -> String {
        self.format_with_prefix(&pid.to_string())
    }

    /// The line after a prefix of the caller's choice (the pid, a time stamp...).
    pub fn format_with_prefix(&self, prefix: &str) -> String {
        let mut line = format!("{prefix} ");
        if let Some(id) = self.transaction_id() {
            line.push_str(&id);
            line.push(' ');
        }
        if let Some(hook) = self.hook {
            line.push_str(&format!("({hook}) "));
        }
        if let Some(plugin) = self.plugin {
            line.push_str(plugin);
            line.push_str(": ");
        }
        // One record is one line: a message can never forge a second log line.
        line.extend(
            self.message
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
        );
        line
    }
}

/// Writes one line to stderr in a single write, so lines from concurrent processes (forked
/// children sharing a log pipe) do not interleave.
pub fn write_stderr_line(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels_and_adjustments() {
        assert_eq!(Level::parse("6"), Some(Level::Info));
        assert_eq!(Level::parse("LOGWARN"), Some(Level::Warn));
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("8"), None);
        assert_eq!(
            LogAdjust::parse("+2").unwrap().apply(Level::Info),
            Level::Debug
        );
        assert_eq!(
            LogAdjust::parse("-2").unwrap().apply(Level::Info),
            Level::Warn
        );
        assert_eq!(
            LogAdjust::parse("3").unwrap().apply(Level::Debug),
            Level::Error
        );
        assert_eq!(LogAdjust::parse("x"), None);
    }

    #[test]
    fn formats_lines() {
        let r = LogRecord {
            level: Level::Info,
            hook: Some(Hook::Rcpt),
            plugin: Some("rcpt_ok"),
            session: Some("6740a1b2.3039.1"),
            transaction: 2,
            message: "pass: example.com\nforged",
        };
        assert_eq!(
            r.format_line(42),
            "42 6740a1b2.3039.1.2 (rcpt) rcpt_ok: pass: example.com forged"
        );
        let core = LogRecord {
            level: Level::Info,
            hook: None,
            plugin: None,
            session: None,
            transaction: 0,
            message: "250 OK",
        };
        assert_eq!(core.format_line(1), "1 250 OK");
    }
}
