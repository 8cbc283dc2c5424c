//! # NAME
//!
//! earlytalker - refuse clients that talk before the server has greeted them
//!
//! # DESCRIPTION
//!
//! An SMTP client must wait for the server's `220` greeting before it says anything.
//! Spam software that shovels its whole conversation down the connection at once does not.
//! This plugin holds the greeting back for a moment (one second by default) and watches
//! whether the client sends anything in that time. A client that does is an *early
//! talker*: the connection note `earlytalker` is set, its karma score is lowered by one,
//! and it is refused:
//!
//! ```text
//! 550 5.7.1 Connecting host started transmitting before SMTP greeting
//! ```
//!
//! after which the connection is closed. A client that stays quiet gets the greeting as
//! usual, one second late.
//!
//! With `defer-reject 1` the early talker is greeted anyway and each of its `MAIL`
//! commands is refused instead, so that its transcript shows up in the log.
//!
//! With `check-at data` the same test is made after the `DATA` command: the client must
//! wait for the `354` go-ahead before it sends the message (RFC 2920 requires this even
//! of clients that pipeline). The go-ahead is held back while the plugin watches. A client
//! that sends the message early is refused with a `554` and its transaction reset.
//!
//! Relay clients, authenticated users and whitelisted hosts are not checked (list this
//! plugin after `relay` and `whitelist` in `config/plugins` so that their decisions are
//! known when it runs). Neither are clients whose connection note `karma_history` (set by
//! the `karma` plugin) is above 5.
//!
//! The plugin only asks the server to wait for input; it never reads from the client, so
//! what an early talker sent is still there for the server to read (and usually refuse)
//! when `reject 0` lets it go on.
//!
//! # CONFIGURATION
//!
//! ## wait *SECONDS*
//!
//! Default: `1`. How long to hold back the greeting (or the go-ahead) and watch, in
//! seconds: fractions are allowed (`0.5`), up to 300. Keep it short: some senders give up
//! on a server that has not greeted them within 30 seconds, and network delay counts too.
//!
//! Another plugin can choose the time per connection by setting the connection note
//! `earlytalker_wait` to a number of seconds before this plugin runs (a reputation plugin
//! may want to make suspect clients wait longer); it replaces `wait` for that connection.
//!
//! ## check-at *connect|data*
//!
//! Default: `connect`. When to watch: before the greeting (`connect`) or before the `354`
//! go-ahead of each message (`data`). Give it twice (`check-at connect check-at data`) or
//! as a list (`check-at connect,data`) to watch at both.
//!
//! ## defer-reject *0|1*
//!
//! Default: `0`. With `1`, an early talker caught before the greeting is greeted as usual,
//! and every `MAIL` command it sends is refused (with the verdict of `reject` and
//! `reject_type`). It has no effect on the `data` check, which always refuses the message
//! at once.
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! A refusal before the greeting always closes the connection (550, or 450 for the `temp`
//! forms). At `DATA`, `perm` answers 554 and `temp` 451, and the session goes on; at `MAIL`
//! (with `defer-reject 1`), 550 and 450.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None. The plugin reads the connection notes `earlytalker_wait` and `karma_history`, and
//! sets `earlytalker` (to 1) on the connections it catches.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The Perl manual gave `temp` as the default `reject_type`, but its code used `perm`;
//!   `perm` it is.
//! - The `data` check refuses with its own text (`Client started transmitting before the
//!   354 go-ahead`); the Perl plugin reused the greeting text.
//! - With `defer-reject 1`, a MAIL from a client that has become immune since (it
//!   authenticated) is let through.
//! - Arguments are checked when the server starts: an unknown argument or value is an
//!   error. The old `action` argument is not accepted; use `reject` and `reject_type`.
//! - `wait` may be a fraction of a second, and `earlytalker_wait` may be 0 (no waiting,
//!   only input already received counts); in the Perl plugin a 0 there meant "not set".
//!
//! # SEE ALSO
//!
//! qpsmtpd-naughty(7), qpsmtpd-relay(7), qpsmtpd-whitelist(7), qpsmtpd-plugins(7)

use qpsmtpd_core::log::Level;
use qpsmtpd_core::notes::Value;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};
use std::time::Duration;

/// The longest `wait` accepted: beyond this, senders give up before they are greeted.
const MAX_WAIT_SECS: f64 = 300.0;

/// The refusal of a client that talked before the greeting.
const BEFORE_GREETING: &str = "Connecting host started transmitting before SMTP greeting";
/// The refusal of a client that sent its message before the go-ahead.
const BEFORE_GO_AHEAD: &str = "Client started transmitting before the 354 go-ahead";

pub const SPEC: PluginSpec = PluginSpec {
    name: "earlytalker",
    factory: new,
    args: &["wait", "check-at", "defer-reject", "reject", "reject_type"],
    rejects: true,
    example: "wait 1 check-at connect defer-reject 0",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let wait = match pairs.get("wait") {
        None => Duration::from_secs(1),
        Some(v) => parse_wait(v).ok_or_else(|| {
            setup.error(format!(
                "wait must be a number of seconds from 0 to {MAX_WAIT_SECS}, not {v:?}"
            ))
        })?,
    };
    // check-at may be given more than once; every occurrence counts.
    let (mut at_connect, mut at_data) = (false, false);
    for kv in setup.args.chunks(2) {
        if !kv[0].eq_ignore_ascii_case("check-at") {
            continue;
        }
        for when in kv[1].split(',') {
            match when.to_ascii_lowercase().as_str() {
                "connect" => at_connect = true,
                "data" => at_data = true,
                _ => {
                    return Err(
                        setup.error(format!("check-at must be connect or data, not {when:?}"))
                    );
                }
            }
        }
    }
    if !at_data {
        at_connect = true;
    }
    Ok(Box::new(Earlytalker {
        wait,
        at_connect,
        at_data,
        defer: pairs
            .flag("defer-reject", false)
            .map_err(|e| setup.error(e))?,
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
    }))
}

/// Seconds, possibly fractional, within the accepted range.
fn parse_wait(v: &str) -> Option<Duration> {
    v.trim().parse().ok().and_then(wait_from_secs)
}

fn wait_from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..=MAX_WAIT_SECS).contains(&secs))
        .then(|| Duration::from_secs_f64(secs))
}

struct Earlytalker {
    wait: Duration,
    at_connect: bool,
    at_data: bool,
    defer: bool,
    reject: Reject,
}

impl Earlytalker {
    /// The time to watch on this connection: the `earlytalker_wait` note, or `wait`.
    fn wait_for(&self, cx: &Context<'_>) -> Duration {
        let note = cx.connection().notes.get("earlytalker_wait");
        let wait = match note {
            Some(Value::Int(i)) => wait_from_secs(*i as f64),
            Some(Value::Str(s)) => parse_wait(s),
            _ => None,
        };
        match wait {
            Some(d) => d,
            None => {
                if note.is_some() {
                    cx.log(
                        Level::Debug,
                        format!("ignoring earlytalker_wait note {note:?}"),
                    );
                }
                self.wait
            }
        }
    }

    /// Records a caught client: note, karma.
    fn caught(&self, cx: &mut Context<'_>) {
        cx.connection_mut().notes.set("earlytalker", 1i64);
        cx.adjust_karma(-1);
    }

    /// Why this client is not checked, if it is not.
    fn exempt(&self, cx: &Context<'_>) -> Option<String> {
        if cx.is_immune() {
            return Some("immune: relay client, authenticated or whitelisted".into());
        }
        None
    }
}

impl Plugin for Earlytalker {
    fn hooks(&self) -> Vec<Registration> {
        let mut hooks = Vec::new();
        if self.at_connect {
            hooks.push(Hook::Connect.into());
            if self.defer {
                hooks.push(Hook::Mail.into());
            }
        }
        if self.at_data {
            hooks.push(Hook::Data.into());
        }
        hooks
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        if let Some(why) = self.exempt(cx) {
            cx.skip(why);
            return Verdict::Declined;
        }
        if let Some(karma) = cx.connection().notes.get_int("karma_history")
            && karma > 5
        {
            cx.skip(format!("good karma ({karma})"));
            return Verdict::Declined;
        }
        let ip = cx.connection().remote_ip();
        let wait = self.wait_for(cx);
        cx.log(Level::Debug, format!("watching {ip} for {wait:?}"));
        if !cx.wait_readable(wait) {
            cx.pass(format!("{ip} said nothing before the greeting"));
            return Verdict::Declined;
        }
        self.caught(cx);
        let why = format!("{ip} started talking before the greeting");
        if self.defer {
            cx.log(
                Level::Info,
                format!("fail, deferred: {why}; its MAIL commands will be refused"),
            );
            return Verdict::Declined;
        }
        self.reject.apply(cx, BEFORE_GREETING, &why)
    }

    fn mail(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        if !cx.connection().notes.is_true("earlytalker") {
            cx.log(Level::Debug, "not an early talker");
            return Verdict::Declined;
        }
        if let Some(why) = self.exempt(cx) {
            cx.skip(why);
            return Verdict::Declined;
        }
        let why = format!(
            "{} started talking before the greeting",
            cx.connection().remote_ip()
        );
        self.reject.apply(cx, BEFORE_GREETING, &why)
    }

    fn data(&self, cx: &mut Context<'_>) -> Verdict {
        if let Some(why) = self.exempt(cx) {
            cx.skip(why);
            return Verdict::Declined;
        }
        let ip = cx.connection().remote_ip();
        let wait = self.wait_for(cx);
        cx.log(Level::Debug, format!("watching {ip} for {wait:?}"));
        if !cx.wait_readable(wait) {
            cx.pass(format!("{ip} waited for the go-ahead"));
            return Verdict::Declined;
        }
        self.caught(cx);
        let why = format!("{ip} started sending the message before the go-ahead");
        self.reject.apply(cx, BEFORE_GO_AHEAD, &why)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_wait;
    use crate::relay::tests::Authenticated;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};
    use qpsmtpd_core::{Context, Hook, Plugin, Registration, Verdict};
    use std::time::Duration;

    fn start(plugins: &str) -> (TestServer, LogCapture) {
        crate::test_support::start(plugins)
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "earlytalker")
    }

    /// A session whose client sends EHLO before the greeting.
    fn early(server: &TestServer) -> TestSession {
        let s = server.session();
        s.handle.push(b"EHLO early.example\r\n");
        s
    }

    const REFUSED: &str = "550 5.7.1 Connecting host started transmitting before SMTP greeting\r\n";

    #[test]
    fn quiet_clients_are_greeted() {
        let (server, log) = start("earlytalker");
        let mut s = server.session();
        assert!(s.connect().starts_with("220 test.example ESMTP"));
        assert!(!s.session.connection().notes.is_true("earlytalker"));
        assert_eq!(
            summary(&log),
            ["INFO pass: 127.0.0.1 said nothing before the greeting"]
        );
    }

    #[test]
    fn early_talkers_are_refused_before_the_greeting() {
        let (server, log) = start("earlytalker");
        let mut s = early(&server);
        assert_eq!(s.connect(), REFUSED);
        assert!(s.is_closed());
        let notes = &s.session.connection().notes;
        assert!(notes.is_true("earlytalker"));
        assert_eq!(notes.get_int("karma"), Some(-1));
        assert_eq!(
            summary(&log),
            ["INFO fail: 127.0.0.1 started talking before the greeting"]
        );

        let (server, _) = start("earlytalker reject_type temp");
        assert_eq!(
            early(&server).connect(),
            "450 4.7.1 Connecting host started transmitting before SMTP greeting\r\n"
        );
    }

    #[test]
    fn reject_0_and_naughty_let_the_client_in() {
        let (server, log) = start("earlytalker reject 0");
        let mut s = early(&server);
        assert!(s.connect().starts_with("220 "));
        assert!(s.session.connection().notes.is_true("earlytalker"));
        assert_eq!(
            summary(&log),
            ["INFO fail, tolerated: 127.0.0.1 started talking before the greeting"]
        );

        let (server, _) = start("earlytalker reject naughty");
        let mut s = early(&server);
        assert!(s.connect().starts_with("220 "));
        assert_eq!(
            s.session.connection().notes.get_str("naughty"),
            Some("(earlytalker) Connecting host started transmitting before SMTP greeting")
        );
    }

    #[test]
    fn defer_reject_refuses_mail_instead() {
        let (server, log) = start("earlytalker defer-reject 1");
        let mut s = early(&server);
        assert!(s.connect().starts_with("220 "));
        // What the client sent early is still there to be answered.
        assert!(s.command("NOOP").starts_with("250-test.example Hi "));
        assert_eq!(s.command("MAIL FROM:<a@example.org>"), REFUSED);
        assert!(!s.is_closed());
        assert_eq!(s.command("MAIL FROM:<b@example.org>"), REFUSED);
        assert_eq!(
            summary(&log),
            [
                "INFO fail, deferred: 127.0.0.1 started talking before the greeting; its MAIL commands will be refused",
                "INFO fail: 127.0.0.1 started talking before the greeting",
                "INFO fail: 127.0.0.1 started talking before the greeting",
            ]
        );

        // A quiet client's MAIL goes through, with nothing logged at INFO for it.
        let (server, log) = start("earlytalker defer-reject 1");
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        assert!(s.command("MAIL FROM:<a@example.org>").starts_with("250 "));
        assert_eq!(summary(&log).len(), 1);
    }

    #[test]
    fn check_at_data_holds_back_the_go_ahead() {
        let (server, log) = start("earlytalker check-at data\nrcpt_ok");
        // Not checked before the greeting.
        let mut s = early(&server);
        assert!(s.connect().starts_with("220 "));
        s.hang_up();
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@example.org>");
        s.command("RCPT TO:<postmaster>");
        // DATA with the message right behind it, before the 354.
        let out = s.data("Subject: hi\r\n\r\nhello");
        assert!(
            out.starts_with("554 5.7.1 Client started transmitting before the 354 go-ahead\r\n"),
            "{out}"
        );
        assert!(s.session.connection().notes.is_true("earlytalker"));

        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@example.org>");
        s.command("RCPT TO:<postmaster>");
        // DATA alone: the client waits for the go-ahead.
        assert!(s.command("DATA").starts_with("354 go ahead\r\n"));
        assert_eq!(
            summary(&log),
            [
                "INFO fail: 127.0.0.1 started sending the message before the go-ahead",
                "INFO pass: 127.0.0.1 waited for the go-ahead",
            ]
        );
    }

    #[test]
    fn check_at_both_and_lists() {
        for line in [
            "earlytalker check-at connect check-at data\nrcpt_ok",
            "earlytalker check-at Data,CONNECT\nrcpt_ok",
        ] {
            let (server, _) = start(line);
            assert_eq!(early(&server).connect(), REFUSED, "{line}");
            let mut s = server.session();
            assert!(s.connect().starts_with("220 "));
            s.command("HELO client.example");
            s.command("MAIL FROM:<a@example.org>");
            s.command("RCPT TO:<postmaster>");
            assert!(
                s.data("Subject: hi\r\n\r\nhello").starts_with("554 "),
                "{line}"
            );
        }
    }

    /// Sets connection notes at connect, before earlytalker runs.
    struct Notes(&'static str, i64);
    impl Plugin for Notes {
        fn hooks(&self) -> Vec<Registration> {
            vec![Registration::with_priority(Hook::Connect, -10)]
        }
        fn connect(&self, cx: &mut Context<'_>) -> Verdict {
            cx.connection_mut().notes.set(self.0, self.1);
            Verdict::Declined
        }
    }

    #[test]
    fn immune_and_good_karma_clients_are_not_checked() {
        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay\nearlytalker")
            .file("relayclients", "127.0.0.1")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert!(early(&server).connect().starts_with("220 "));
        assert_eq!(
            summary(&log),
            ["INFO skip: immune: relay client, authenticated or whitelisted"]
        );

        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "earlytalker")
            .plugin("karma", Notes("karma_history", 6))
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert!(early(&server).connect().starts_with("220 "));
        assert_eq!(summary(&log), ["INFO skip: good karma (6)"]);

        // An authenticated client is not refused at MAIL even if it talked early.
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "earlytalker defer-reject 1")
            .plugin("authenticated", Authenticated)
            .build()
            .unwrap();
        let mut s = early(&server);
        assert!(s.connect().starts_with("220 "));
        assert!(s.session.connection().notes.is_true("earlytalker"));
        let out = s.command("MAIL FROM:<a@example.org>");
        assert!(
            out.contains("\r\n250 2.1.0 <a@example.org>, sender OK"),
            "{out}"
        );
    }

    #[test]
    fn wait_note_overrides_the_argument() {
        let watching = |log: &LogCapture| {
            log.of_plugin("earlytalker")
                .into_iter()
                .filter(|l| l.starts_with("DEBUG watching"))
                .collect::<Vec<_>>()
        };
        let (server, log) = start("earlytalker wait 2.5");
        assert!(server.session().connect().starts_with("220 "));
        assert_eq!(watching(&log), ["DEBUG watching 127.0.0.1 for 2.5s"]);

        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "earlytalker wait 2")
            .plugin("reputation", Notes("earlytalker_wait", 0))
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert_eq!(early(&server).connect(), REFUSED);
        assert!(server.session().connect().starts_with("220 "));
        assert_eq!(
            watching(&log),
            [
                "DEBUG watching 127.0.0.1 for 0ns",
                "DEBUG watching 127.0.0.1 for 0ns"
            ]
        );
    }

    #[test]
    fn wait_values() {
        assert_eq!(parse_wait("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_wait("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_wait("0"), Some(Duration::ZERO));
        for bad in ["-1", "NaN", "inf", "301", "soon"] {
            assert_eq!(parse_wait(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            ("earlytalker wait soon", "wait must be a number of seconds"),
            (
                "earlytalker check-at helo",
                "check-at must be connect or data",
            ),
            (
                "earlytalker defer-reject maybe",
                "defer-reject must be 0 or 1",
            ),
            ("earlytalker reject_type later", "reject_type must be"),
            ("earlytalker action deny", "unknown argument"),
            ("earlytalker wait 1 bogus_arg 1", "unknown argument"),
            ("earlytalker wait", "has no value"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: earlytalker: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
