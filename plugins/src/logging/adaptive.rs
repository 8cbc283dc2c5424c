//! # NAME
//!
//! logging/adaptive - log rejected transactions in detail and accepted ones briefly
//!
//! # DESCRIPTION
//!
//! Keeps the log messages of each transaction until the transaction is over, then writes
//! them to standard error at one of two levels: in detail (down to the `reject` level) when
//! a plugin rejected something in it, briefly (down to the `accept` level) when nothing
//! was rejected. The details of why a message was refused stay in the log, without the
//! noise of the many that went through.
//!
//! A transaction is what happens between two resets: from the connection to the first
//! `MAIL FROM`, then from each `MAIL FROM` (or `RSET`) to the next, or to the reply to the
//! message, and lastly the end of the connection. "Rejected" means that a plugin answered
//! with a deny (what runs the `deny` hook): a refused sender or recipient, a refused
//! message, a refused connection. Refusals the server makes by itself (a command out of
//! sequence, a message too big) and checks that were only logged (`reject 0`) do not
//! count. The messages logged after the last transaction of a rejected connection are
//! written in detail too.
//!
//! The lines have the form of `logging/warn`'s, and the lines of accepted transactions
//! carry the `prefix` right after the process id:
//!
//! ```text
//! 4242 6740a1b2.3039.1.3 (rcpt) badrcptto: fail: <bad@example.com> is in badrcptto
//! 4242` 6740a1b2.3039.1.5 (rcpt) rcpt_ok: pass: example.com is one of our domains
//! ```
//!
//! so that a log processor can tell them apart. With multilog, for example:
//!
//! ```text
//! exec multilog t '-*` *' ./rejected '-*' '+*` *' ./accepted
//! ```
//!
//! Lines that belong to no connection (the forkserver's own messages) are written at once,
//! down to the `reject` level. The plugin lets the logging plugins listed after it see
//! every message as it comes.
//!
//! At most 500 lines are kept per transaction: beyond that the oldest are dropped, and a
//! line saying how many precedes the rest when they are written.
//!
//! Load it from `config/logging`, for example
//! `logging/adaptive accept LOGINFO reject LOGDEBUG`.
//!
//! # CONFIGURATION
//!
//! Both levels are numbers from 0 (`LOGEMERG`) to 7 (`LOGDEBUG`) or names (`LOGINFO`,
//! `info`); a message is written when it is at least as important as the level.
//!
//! ## accept *LEVEL*
//!
//! Default: `LOGERROR` (3). The least important level written for a transaction in which
//! nothing was rejected. `LOGINFO` keeps every plugin's one-line verdict.
//!
//! ## reject *LEVEL*
//!
//! Default: `LOGWARN` (4). The least important level written for a transaction in which
//! something was rejected; usually the more detailed of the two, up to `LOGDEBUG`. (This
//! is a log level: the plugin itself never rejects anything.)
//!
//! ## prefix *TEXT*
//!
//! Default: `` ` `` (a backquote). Written right after the process id on the lines of
//! accepted transactions. Keep it short; it cannot contain spaces.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it; it has no effect here (the levels are `accept`
//! and `reject`).
//!
//! ## Files
//!
//! It is listed in `config/logging` (with the same syntax as `config/plugins`) and reads no
//! file of its own.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The Perl plugin wrote every message down to the `reject` level at once and wrote the
//!   messages of accepted transactions a second time, with the prefix, down to the
//!   `accept` level. Here each line is written once, when its transaction is over, at the
//!   level its outcome calls for.
//! - The Perl plugin remembered a rejection for the rest of the process, so after the first
//!   rejection nothing counted as accepted any more; here each transaction is judged on
//!   its own.
//! - Lines have the same layout as the server's other logs (transaction id, hook,
//!   plugin), where the Perl plugin wrote `plugin plugin:`.
//! - The number of lines kept is bounded; unknown arguments and bad levels stop the server
//!   at start-up.
//!
//! # SEE ALSO
//!
//! qpsmtpd-logging-warn(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7), multilog(8)

use super::connection_id::Output;
use qpsmtpd_core::log::{Level, LogAdjust};
use qpsmtpd_core::{
    ConfigError, Context, Hook, LogRecord, Pairs, Plugin, PluginSpec, Registration, Setup, Verdict,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

const DEFAULT_ACCEPT: Level = Level::Error;
const DEFAULT_REJECT: Level = Level::Warn;
const DEFAULT_PREFIX: &str = "`";

/// Lines kept per transaction; older ones are dropped.
const MAX_LINES: usize = 500;

/// Connections followed at once; beyond that the oldest is written out and forgotten.
const MAX_SESSIONS: usize = 4096;

/// Connections remembered as over, so that a line logged after the end is not kept.
const ENDED: usize = 64;

pub const SPEC: PluginSpec = PluginSpec {
    name: "logging/adaptive",
    factory: new,
    args: &["accept", "reject", "prefix"],
    rejects: false,
    example: "accept LOGINFO reject LOGDEBUG prefix +",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let settings = Settings::parse(&pairs, setup.loglevel).map_err(|e| setup.error(e))?;
    Ok(Box::new(Adaptive::new(settings, Output::Stderr)))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Settings {
    accept: Level,
    reject: Level,
    prefix: String,
}

impl Settings {
    fn parse(pairs: &Pairs, _loglevel: LogAdjust) -> Result<Settings, String> {
        let level = |key: &str, default: Level| match pairs.get(key) {
            None => Ok(default),
            Some(v) => Level::parse(v).ok_or_else(|| {
                format!("{key} {v:?} is not a log level (0-7 or a name like LOGINFO)")
            }),
        };
        Ok(Settings {
            accept: level("accept", DEFAULT_ACCEPT)?,
            reject: level("reject", DEFAULT_REJECT)?,
            prefix: pairs.get("prefix").unwrap_or(DEFAULT_PREFIX).to_string(),
        })
    }
}

/// The lines of one connection's current transaction.
#[derive(Default)]
struct Buffer {
    /// Order of arrival, to let the oldest go when there are too many connections.
    seq: u64,
    /// Each line's level and text after the process id (starting with a space).
    lines: VecDeque<(Level, String)>,
    /// Lines dropped from the front, by level.
    dropped: [usize; 8],
    /// The transaction the lines belong to (none yet).
    transaction: Option<u32>,
    /// Something was rejected in this transaction.
    denied: bool,
    /// Something was rejected in this connection.
    ever_denied: bool,
}

#[derive(Default)]
struct Sessions {
    buffers: HashMap<String, Buffer>,
    seq: u64,
    /// The connections that ended last.
    ended: VecDeque<String>,
}

struct Adaptive {
    settings: Settings,
    /// The more detailed of the two levels: lines less important are not kept.
    keep: Level,
    out: Output,
    sessions: Mutex<Sessions>,
}

impl Adaptive {
    fn new(settings: Settings, out: Output) -> Adaptive {
        Adaptive {
            keep: settings.accept.max(settings.reject),
            settings,
            out,
            sessions: Mutex::new(Sessions::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a line of a connection, or writes it at once when it belongs to none (or to
    /// one that is over).
    fn keep_line(&self, record: &LogRecord<'_>) {
        if record.level > self.keep {
            return;
        }
        let text = record.format_with_prefix("");
        if let Some(id) = record.session {
            let mut s = self.lock();
            if !s.ended.iter().any(|e| e == id) {
                let b = self.buffer(&mut s, id, record.transaction);
                if b.lines.len() >= MAX_LINES
                    && let Some((level, _)) = b.lines.pop_front()
                {
                    b.dropped[level as usize] += 1;
                }
                b.lines.push_back((record.level, text));
                return;
            }
        }
        if record.level <= self.settings.reject {
            self.out.write(&format!("{}{text}", std::process::id()));
        }
    }

    /// The buffer of a connection's transaction `txn`. It is made at the connection's
    /// first line; when too many connections are followed, the one heard of first is
    /// written out and forgotten. A line of a later transaction than the buffered ones
    /// means that theirs is over, even if the `reset_transaction` hook did not reach this
    /// plugin: they are written out first.
    fn buffer<'s>(&self, s: &'s mut Sessions, id: &str, txn: u32) -> &'s mut Buffer {
        if !s.buffers.contains_key(id) {
            if s.buffers.len() >= MAX_SESSIONS {
                let oldest = s
                    .buffers
                    .iter()
                    .min_by_key(|(_, b)| b.seq)
                    .map(|(k, _)| k.clone());
                if let Some((k, b)) = oldest.and_then(|k| s.buffers.remove(&k).map(|b| (k, b))) {
                    self.write_out(&k, &b, b.denied || b.ever_denied);
                }
            }
            s.seq += 1;
            let buffer = Buffer {
                seq: s.seq,
                ..Buffer::default()
            };
            s.buffers.insert(id.to_string(), buffer);
        }
        let b = s.buffers.get_mut(id).expect("inserted above");
        if b.transaction.is_some_and(|t| t != txn) {
            self.flush(id, b);
        }
        b.transaction = Some(txn);
        b
    }

    fn denied(&self, id: &str, txn: u32) {
        let mut s = self.lock();
        let b = self.buffer(&mut s, id, txn);
        b.denied = true;
        b.ever_denied = true;
    }

    /// A transaction is over: its lines are written, at the level its outcome calls for.
    fn end_transaction(&self, id: &str) {
        let mut s = self.lock();
        if let Some(b) = s.buffers.get_mut(id) {
            self.flush(id, b);
        }
    }

    fn flush(&self, id: &str, b: &mut Buffer) {
        self.write_out(id, b, b.denied);
        b.lines.clear();
        b.dropped = [0; 8];
        b.denied = false;
        b.transaction = None;
    }

    /// The connection is over: what it logged after its last transaction is written (in
    /// detail if anything in it was rejected), and it is forgotten.
    fn end_session(&self, id: &str) {
        let mut s = self.lock();
        if let Some(b) = s.buffers.remove(id) {
            self.write_out(id, &b, b.denied || b.ever_denied);
        }
        // Its late lines, if any, are written at once rather than kept for ever.
        if s.ended.len() >= ENDED {
            s.ended.pop_front();
        }
        s.ended.push_back(id.to_string());
    }

    fn write_out(&self, id: &str, b: &Buffer, denied: bool) {
        let (max, prefix) = if denied {
            (self.settings.reject, "")
        } else {
            (self.settings.accept, self.settings.prefix.as_str())
        };
        let pid = std::process::id();
        let dropped: usize = b.dropped[..=max as usize].iter().sum();
        if dropped > 0 {
            self.out.write(&format!(
                "{pid}{prefix} {id} logging::adaptive: {dropped} earlier lines were dropped \
                 (at most {MAX_LINES} are kept per transaction)"
            ));
        }
        for (level, text) in &b.lines {
            if *level <= max {
                self.out.write(&format!("{pid}{prefix}{text}"));
            }
        }
    }
}

impl Plugin for Adaptive {
    fn hooks(&self) -> Vec<Registration> {
        vec![
            Hook::Logging.into(),
            Hook::Deny.into(),
            // After all others have logged for the transaction or connection.
            Registration::with_priority(Hook::ResetTransaction, i32::MAX),
            Registration::with_priority(Hook::PostConnection, i32::MAX),
        ]
    }

    fn on_failure(&self, _: Hook) -> Verdict {
        // A logger never stands in the way of the session.
        Verdict::Declined
    }

    fn logging(&self, record: &LogRecord<'_>) -> Verdict {
        self.keep_line(record);
        Verdict::Declined
    }

    fn deny(&self, cx: &mut Context<'_>, _plugin: &str, _verdict: &Verdict) -> Verdict {
        self.denied(cx.session_id(), cx.transaction_number());
        Verdict::Declined
    }

    fn reset_transaction(&self, cx: &mut Context<'_>) -> Verdict {
        self.end_transaction(cx.session_id());
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
    use qpsmtpd_core::testing::{Harness, TestServer};
    use qpsmtpd_core::{Address, Params};
    use std::sync::Arc;

    type Lines = Arc<Mutex<Vec<String>>>;

    /// Accepts every recipient except `bad@...`, which it refuses; says so at INFO with a
    /// detail at DEBUG, as plugins do.
    struct Judge;
    impl Plugin for Judge {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Rcpt.into()]
        }
        fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
            let user = rcpt.user().to_string();
            cx.log(Level::Debug, format!("detail {user}"));
            if user == "bad" {
                cx.fail(format!("{user} refused"));
                Verdict::deny("5.7.1 no thanks")
            } else {
                cx.log(Level::Warn, format!("warning {user}"));
                cx.pass(format!("{user} accepted"));
                Verdict::ok()
            }
        }
    }

    fn server(line: &str) -> (TestServer, Lines) {
        let lines = Lines::default();
        let settings = Settings::parse(
            &Pairs::parse(&words(line), &SPEC.keys()).unwrap(),
            LogAdjust::None,
        )
        .unwrap();
        let server = Harness::new()
            .plugin(
                "logging::adaptive",
                Adaptive::new(settings, Output::Memory(lines.clone())),
            )
            .plugin("judge", Judge)
            .build()
            .unwrap();
        (server, lines)
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn take(lines: &Lines) -> Vec<String> {
        std::mem::take(&mut *lines.lock().unwrap())
    }

    #[test]
    fn accepted_briefly_with_prefix_rejected_in_detail() {
        let (server, lines) = server("accept LOGINFO reject LOGDEBUG");
        let pid = std::process::id();
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        // Nothing is written while the first transaction lasts.
        assert_eq!(take(&lines), Vec::<String>::new());

        assert!(s.command("MAIL FROM:<a@example.org>").starts_with("250 "));
        // MAIL ended transaction 0 (connect, HELO): nothing rejected, brief and prefixed.
        let first = take(&lines);
        let banner = first
            .iter()
            .find(|l| l.contains(" 220 test.example"))
            .expect("banner");
        let id = banner
            .split(' ')
            .nth(1)
            .unwrap()
            .strip_suffix(".0")
            .unwrap()
            .to_string();
        assert!(
            banner.starts_with(&format!("{pid}` {id}.0 220 ")),
            "{banner}"
        );

        assert_eq!(
            s.command("RCPT TO:<good@example.org>"),
            "250 2.1.5 <good@example.org>, recipient ok\r\n"
        );
        assert_eq!(take(&lines), Vec::<String>::new());
        s.command("RSET");
        let accepted = take(&lines);
        assert!(
            accepted.contains(&format!("{pid}` {id}.1 (rcpt) judge: pass: good accepted")),
            "{accepted:#?}"
        );
        assert!(accepted.contains(&format!("{pid}` {id}.1 (rcpt) judge: warning good")));
        assert!(
            !accepted.iter().any(|l| l.contains("detail good")),
            "DEBUG is below accept: {accepted:#?}"
        );
        assert!(accepted.iter().all(|l| l.starts_with(&format!("{pid}` "))));

        assert!(s.command("MAIL FROM:<b@example.org>").starts_with("250 "));
        assert_eq!(
            s.command("RCPT TO:<bad@example.org>"),
            "550 5.7.1 no thanks\r\n"
        );
        s.command("RSET");
        let rejected = take(&lines);
        for want in [
            format!("{pid} {id}.3 (rcpt) judge: detail bad"),
            format!("{pid} {id}.3 (rcpt) judge: fail: bad refused"),
            format!("{pid} {id}.3 550 5.7.1 no thanks"),
            format!(
                "{pid} {id}.3 {}",
                "250 2.1.0 <b@example.org>, sender OK - how exciting to get mail from you!"
            ),
        ] {
            assert!(rejected.contains(&want), "{want}\n{rejected:#?}");
        }
        // The next transaction is judged on its own again.
        assert!(s.command("MAIL FROM:<c@example.org>").starts_with("250 "));
        assert!(s.command("RCPT TO:<good@example.org>").starts_with("250 "));
        s.command("QUIT");
        let last = take(&lines);
        assert!(
            last.contains(&format!("{pid}` {id}.5 (rcpt) judge: pass: good accepted")),
            "{last:#?}"
        );
        assert!(
            last.iter()
                .any(|l| l.contains(" 221 2.0.0 test.example closing"))
        );
    }

    #[test]
    fn default_levels_write_little() {
        let (server, lines) = server("");
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@example.org>");
        s.command("RCPT TO:<good@example.org>");
        s.command("RSET");
        // Accepted: LOGERROR and above only; the transaction logged nothing that important.
        assert_eq!(take(&lines), Vec::<String>::new());
        s.command("MAIL FROM:<a@example.org>");
        s.command("RCPT TO:<bad@example.org>");
        s.command("RSET");
        // Rejected: LOGWARN and above; the INFO verdict is left out.
        assert_eq!(take(&lines), Vec::<String>::new());
        s.command("MAIL FROM:<a@example.org>");
        s.command("RCPT TO:<good@example.org>");
        s.command("RCPT TO:<bad@example.org>");
        s.command("RSET");
        let got = take(&lines);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].ends_with("(rcpt) judge: warning good"), "{got:#?}");
        assert!(!got[0].contains('`'));
    }

    #[test]
    fn connections_are_kept_apart() {
        let (server, lines) = server("accept LOGINFO reject LOGINFO prefix +");
        let mut a = server.session();
        let mut b = server.session();
        a.connect();
        b.connect();
        a.command("HELO a.example");
        b.command("HELO b.example");
        a.command("MAIL FROM:<a@example.org>");
        b.command("MAIL FROM:<b@example.org>");
        take(&lines);
        a.command("RCPT TO:<bad@example.org>");
        b.command("RCPT TO:<good@example.org>");
        b.command("RSET");
        let got = take(&lines);
        assert!(
            got.iter().all(|l| l.contains("+ ")),
            "only b's accepted lines: {got:#?}"
        );
        assert!(
            got.iter()
                .any(|l| l.ends_with("judge: pass: good accepted"))
        );
        a.command("RSET");
        let got = take(&lines);
        assert!(got.iter().all(|l| !l.contains('+')), "{got:#?}");
        assert!(got.iter().any(|l| l.ends_with("judge: fail: bad refused")));
    }

    #[test]
    fn a_rejected_connection_ends_in_detail() {
        let (server, lines) = server("accept LOGERROR reject LOGINFO");
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@example.org>");
        s.command("RCPT TO:<bad@example.org>");
        take(&lines);
        // The client hangs up: the transaction ends (written in detail), then the connection.
        s.hang_up();
        let got = take(&lines);
        assert!(
            got.iter().any(|l| l.ends_with("judge: fail: bad refused")),
            "{got:#?}"
        );
        assert!(
            got.iter().any(|l| l.contains(" 550 5.7.1 no thanks")),
            "{got:#?}"
        );
    }

    fn record<'a>(session: Option<&'a str>, level: Level, message: &'a str) -> LogRecord<'a> {
        LogRecord {
            level,
            hook: Some(Hook::Data),
            plugin: Some("test"),
            session,
            transaction: 1,
            message,
        }
    }

    #[test]
    fn buffers_are_bounded() {
        let lines = Lines::default();
        let settings = Settings {
            accept: Level::Info,
            reject: Level::Debug,
            prefix: "`".into(),
        };
        let plugin = Adaptive::new(settings, Output::Memory(lines.clone()));
        for i in 0..MAX_LINES + 20 {
            plugin.logging(&record(Some("s1"), Level::Info, &format!("line {i}")));
            plugin.logging(&record(Some("s1"), Level::Debug, "debug"));
        }
        assert_eq!(plugin.lock().buffers["s1"].lines.len(), MAX_LINES);
        plugin.end_transaction("s1");
        let got = take(&lines);
        // Accepted: the dropped DEBUG lines do not count, the dropped INFO lines do.
        let pid = std::process::id();
        assert_eq!(
            got[0],
            format!(
                "{pid}` s1 logging::adaptive: {} earlier lines were dropped (at most \
                 {MAX_LINES} are kept per transaction)",
                MAX_LINES / 2 + 20
            )
        );
        assert_eq!(got.len(), 1 + MAX_LINES / 2);
        assert!(
            got[1].ends_with(&format!("test: line {}", MAX_LINES / 2 + 20)),
            "{}",
            got[1]
        );
        assert!(
            got.last()
                .unwrap()
                .ends_with(&format!("test: line {}", MAX_LINES + 19))
        );
        assert!(plugin.lock().buffers["s1"].lines.is_empty());
        plugin.end_session("s1");
        assert!(plugin.lock().buffers.is_empty());
    }

    /// When the `reset_transaction` hook does not reach the plugin (an earlier plugin
    /// stopped the chain), the first line of the next transaction ends the previous one.
    #[test]
    fn a_later_transaction_ends_the_earlier_one() {
        let lines = Lines::default();
        let plugin = Adaptive::new(
            Settings {
                accept: Level::Warn,
                reject: Level::Info,
                prefix: "`".into(),
            },
            Output::Memory(lines.clone()),
        );
        let line = |txn, level, message| LogRecord {
            transaction: txn,
            ..record(Some("s1"), level, message)
        };
        plugin.logging(&line(1, Level::Info, "detail of 1"));
        plugin.denied("s1", 1);
        plugin.logging(&line(2, Level::Info, "detail of 2"));
        plugin.logging(&line(2, Level::Warn, "warning of 2"));
        let pid = std::process::id();
        assert_eq!(
            take(&lines),
            [format!("{pid} s1.1 (data) test: detail of 1")]
        );
        plugin.end_transaction("s1");
        assert_eq!(
            take(&lines),
            [format!("{pid}` s1.2 (data) test: warning of 2")]
        );
    }

    #[test]
    fn lines_of_no_connection_are_written_at_once() {
        let lines = Lines::default();
        let plugin = Adaptive::new(
            Settings {
                accept: Level::Error,
                reject: Level::Warn,
                prefix: "`".into(),
            },
            Output::Memory(lines.clone()),
        );
        plugin.logging(&record(None, Level::Warn, "listening"));
        plugin.logging(&record(None, Level::Info, "too detailed"));
        // A connection that is over.
        plugin.logging(&record(Some("gone"), Level::Error, "kept"));
        plugin.end_session("gone");
        plugin.logging(&record(Some("gone"), Level::Error, "late"));
        assert!(plugin.lock().buffers.is_empty());
        let pid = std::process::id();
        assert_eq!(
            take(&lines),
            [
                format!("{pid} (data) test: listening"),
                format!("{pid}` gone.1 (data) test: kept"),
                format!("{pid} gone.1 (data) test: late")
            ]
        );
    }

    #[test]
    fn arguments() {
        let parse = |line: &str| {
            Pairs::parse(&words(line), &SPEC.keys())
                .and_then(|p| Settings::parse(&p, LogAdjust::None))
        };
        assert_eq!(
            parse(""),
            Ok(Settings {
                accept: Level::Error,
                reject: Level::Warn,
                prefix: "`".into()
            })
        );
        assert_eq!(
            parse("accept 6 reject LOGDEBUG prefix >>"),
            Ok(Settings {
                accept: Level::Info,
                reject: Level::Debug,
                prefix: ">>".into()
            })
        );
        for (line, want) in [
            (
                "logging/adaptive accept LOUD",
                "logging:1: logging/adaptive: accept \"LOUD\" is not a log level",
            ),
            (
                "logging/adaptive reject 8",
                "logging:1: logging/adaptive: reject \"8\" is not a log level",
            ),
            (
                "logging/adaptive accept 6 bogus_arg 1",
                "logging:1: logging/adaptive: unknown argument \"bogus_arg\"",
            ),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("logging", line)
                .build()
                .expect_err(line)
                .to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("logging", &format!("logging/adaptive {}", SPEC.example))
            .build()
            .unwrap();
    }
}
