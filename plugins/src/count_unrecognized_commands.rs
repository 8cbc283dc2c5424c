//! # NAME
//!
//! count_unrecognized_commands - disconnect clients that send too many unknown commands
//!
//! # DESCRIPTION
//!
//! Counts the commands of a session that the server does not know (including empty and
//! malformed command lines). Below the limit the server answers each of them as usual,
//! with `500 5.5.1 Unrecognized command`. The command that reaches the limit is answered
//! with
//!
//! ```text
//! 521 5.5.1 Closing connection, 4 unrecognized commands. Perhaps you should read RFC 2821?
//! ```
//!
//! and the connection is closed. Clients that talk something other than SMTP, such as
//! spam sent through open HTTP proxies (`GET / HTTP/1.0`, `Host: ...`, `User-Agent: ...`),
//! are dropped after a few lines instead of being answered until they give up.
//!
//! The count is kept per connection and is not reset by RSET or a new transaction.
//! Commands that another plugin implements (STARTTLS, AUTH after EHLO, ...) are not counted
//! when that plugin comes earlier in `config/plugins`.
//!
//! # CONFIGURATION
//!
//! ## MAX
//!
//! Default: `4`. The number of unrecognized commands that ends the session: with the
//! default, the fourth one is refused and the connection closed. It must be at least 1.
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `disconnect`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! They apply to every unrecognized command from the MAXth on. SMTP has no temporary
//! refusal of an unknown command, so `perm` and `temp` both answer `500 5.5.1` with the
//! count and leave the connection open; `disconnect` answers 521 and `temp_disconnect`
//! 421 before closing it.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - It takes `reject` and `reject_type` like every plugin that rejects; the defaults give
//!   the Perl plugin's behaviour.
//! - Extra arguments, and a MAX that is not a positive number, are configuration errors;
//!   the Perl plugin warned and ignored them.
//! - Each unrecognized command below the limit is logged at DEBUG only. The summary line at
//!   INFO is written when the limit is reached, or else at the end of the session
//!   (`pass: 2 unrecognized commands (limit 4)`).
//!
//! # SEE ALSO
//!
//! qpsmtpd-noop_counter(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use qpsmtpd_core::log::Level;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reject, RejectMode, RejectType,
    Setup, Verdict,
};

/// The limit when none is given (the Perl plugin's).
const DEFAULT_MAX: u32 = 4;

pub const SPEC: PluginSpec = PluginSpec {
    name: "count_unrecognized_commands",
    factory: new,
    args: &["MAX", "reject", "reject_type"],
    rejects: true,
    example: "4",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let (max, pairs) = setup.count_then_pairs(DEFAULT_MAX)?;
    Ok(Box::new(CountUnrecognized {
        max,
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Disconnect)?,
    }))
}

struct CountUnrecognized {
    max: u32,
    reject: Reject,
}

/// Unrecognized commands seen in this session, and whether the limit was reached.
#[derive(Default)]
struct Seen {
    count: u32,
    limited: bool,
}

impl Plugin for CountUnrecognized {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::UnrecognizedCommand.into(), Hook::Disconnect.into()]
    }

    fn unrecognized_command(&self, cx: &mut Context<'_>, verb: &str, rest: &str) -> Verdict {
        let n = {
            let seen = cx.state::<Seen>();
            seen.count = seen.count.saturating_add(1);
            seen.limited |= seen.count >= self.max;
            seen.count
        };
        let what = if verb.is_empty() {
            format!("malformed line {rest:?}")
        } else {
            format!("{verb:?}")
        };
        if n < self.max {
            cx.log(
                Level::Debug,
                format!("unrecognized command {what}, {n} of {} allowed", self.max),
            );
            return Verdict::Declined;
        }
        let closing = match self.reject.kind {
            RejectType::Disconnect | RejectType::TempDisconnect => "Closing connection, ",
            RejectType::Perm | RejectType::Temp => "",
        };
        let smtp_msg =
            format!("{closing}{n} unrecognized commands. Perhaps you should read RFC 2821?");
        let log_msg = format!(
            "{n} unrecognized commands (limit {}), the last {what}",
            self.max
        );
        self.reject.apply(cx, &smtp_msg, &log_msg)
    }

    /// The session's verdict when the limit was never reached (otherwise it was logged
    /// when it was).
    fn disconnect(&self, cx: &mut Context<'_>) -> Verdict {
        let seen = cx.state::<Seen>();
        if !seen.limited {
            let n = seen.count;
            cx.pass(format!("{n} unrecognized commands (limit {})", self.max));
        }
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{LogCapture, TestServer};

    fn start(line: &str) -> (TestServer, LogCapture) {
        crate::test_support::start(line)
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "count_unrecognized_commands")
    }

    const UNRECOGNIZED: &str = "500 5.5.1 Unrecognized command\r\n";

    #[test]
    fn disconnects_at_the_default_limit() {
        let (server, log) = start("count_unrecognized_commands");
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        assert_eq!(s.command("GET / HTTP/1.0"), UNRECOGNIZED);
        assert_eq!(s.command("Host: example.com"), UNRECOGNIZED);
        // Known commands in between neither count nor reset the count.
        assert!(s.command("HELO client.example").starts_with("250 "));
        assert!(s.command("RSET").starts_with("250 "));
        assert_eq!(s.command(""), UNRECOGNIZED);
        assert_eq!(
            s.command("FOO bar"),
            "521 5.5.1 Closing connection, 4 unrecognized commands. Perhaps you should read RFC 2821?\r\n"
        );
        assert!(s.is_closed());
        assert_eq!(
            summary(&log),
            ["INFO fail: 4 unrecognized commands (limit 4), the last \"foo\""]
        );
    }

    #[test]
    fn sessions_under_the_limit_pass_at_the_end() {
        let (server, log) = start("count_unrecognized_commands");
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        s.command("XYZZY");
        s.command("QUIT");
        let mut s = server.session();
        s.connect();
        s.hang_up();
        assert_eq!(
            summary(&log),
            [
                "INFO pass: 1 unrecognized commands (limit 4)",
                "INFO pass: 0 unrecognized commands (limit 4)",
            ]
        );
    }

    #[test]
    fn counts_per_session() {
        let (server, _) = start("count_unrecognized_commands 2");
        for _ in 0..2 {
            let mut s = server.session();
            s.connect();
            assert_eq!(s.command("XYZZY"), UNRECOGNIZED);
            assert!(
                s.command("PLUGH")
                    .starts_with("521 5.5.1 Closing connection, 2 ")
            );
            assert!(s.is_closed());
        }
        let (server, _) = start("count_unrecognized_commands 1");
        let mut s = server.session();
        s.connect();
        assert!(s.command("XYZZY").starts_with("521 "));
    }

    #[test]
    fn reject_arguments() {
        let (server, log) = start("count_unrecognized_commands 2 reject 0");
        let mut s = server.session();
        s.connect();
        for _ in 0..3 {
            assert_eq!(s.command("XYZZY"), UNRECOGNIZED);
        }
        assert!(!s.is_closed());
        assert_eq!(
            summary(&log),
            [
                "INFO fail, tolerated: 2 unrecognized commands (limit 2), the last \"xyzzy\"",
                "INFO fail, tolerated: 3 unrecognized commands (limit 2), the last \"xyzzy\"",
            ]
        );

        let (server, _) = start("count_unrecognized_commands 2 reject_type perm");
        let mut s = server.session();
        s.connect();
        s.command("XYZZY");
        assert_eq!(
            s.command("XYZZY"),
            "500 5.5.1 2 unrecognized commands. Perhaps you should read RFC 2821?\r\n"
        );
        assert!(!s.is_closed());

        let (server, _) = start("count_unrecognized_commands reject_type temp_disconnect");
        let mut s = server.session();
        s.connect();
        for _ in 0..3 {
            s.command("XYZZY");
        }
        assert_eq!(
            s.command("XYZZY"),
            "421 4.5.1 Closing connection, 4 unrecognized commands. Perhaps you should read RFC 2821?\r\n"
        );
        assert!(s.is_closed());

        let (server, _) = start("count_unrecognized_commands 1 reject naughty");
        let mut s = server.session();
        s.connect();
        assert_eq!(s.command("XYZZY"), UNRECOGNIZED);
        let naughty = s.session.connection().notes.get_str("naughty");
        assert_eq!(
            naughty,
            Some(
                "(count_unrecognized_commands) Closing connection, 1 unrecognized commands. Perhaps you should read RFC 2821?"
            )
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            ("count_unrecognized_commands 0", "MAX must be at least 1"),
            ("count_unrecognized_commands 4 5", "has no value"),
            ("count_unrecognized_commands many", "has no value"),
            (
                "count_unrecognized_commands 4 bogus_arg 1",
                "unknown argument",
            ),
            ("count_unrecognized_commands reject maybe", "reject must be"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: count_unrecognized_commands: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
