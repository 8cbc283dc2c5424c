//! # NAME
//!
//! noop_counter - disconnect clients that send too many NOOPs in a row
//!
//! # DESCRIPTION
//!
//! Counts the consecutive `NOOP` commands of a session. The NOOP that reaches the limit is
//! answered with
//!
//! ```text
//! 500 5.5.1 Stop wasting my time, too many consecutive NOOPs
//! ```
//!
//! and the connection is closed. Any other command resets the count: HELO, EHLO, MAIL,
//! RCPT, DATA, RSET, VRFY, HELP and unrecognized commands (a new transaction resets it
//! too). QUIT ends the session anyway.
//!
//! The resets run before every other plugin's hooks, so the plugin may be listed anywhere
//! in `config/plugins`: a plugin that answers a command itself cannot keep the count from
//! being reset.
//!
//! # CONFIGURATION
//!
//! ## MAX
//!
//! Default: `3`. The number of consecutive NOOPs that ends the session: with the default,
//! the third NOOP in a row is refused and the connection closed. It must be at least 1.
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
//! They apply to every NOOP from the MAXth in a row on. `perm` answers 500 and leaves the
//! connection open. SMTP has no temporary refusal of NOOP short of closing, so `temp`
//! answers `250 OK` and only logs; `temp_disconnect` answers 421 and closes.
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
//! - The count belongs to the session. The Perl plugin kept it in the plugin object, which
//!   a server process serving several sessions in turn carried from one to the next.
//! - Unrecognized commands reset the count too, as the Perl manual promised ("any other
//!   command"), and the resets no longer depend on the plugin being loaded early.
//! - It takes `reject` and `reject_type` like every plugin that rejects; the defaults give
//!   the Perl plugin's behaviour.
//! - A MAX that is not a positive number, and extra arguments, are configuration errors;
//!   the Perl plugin ignored them.
//! - The summary line at INFO is written when the limit is reached, or else at the end of
//!   the session (`pass: at most 1 consecutive NOOPs (limit 3)`).
//!
//! # SEE ALSO
//!
//! qpsmtpd-count_unrecognized_commands(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use qpsmtpd_core::log::Level;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};

/// The limit when none is given (the Perl plugin's).
const DEFAULT_MAX: u32 = 3;

/// The resets run before the plugins of default priority, so a plugin that answers a
/// command (and so ends its hook chain) does not hide the command from this one.
const RESET_PRIORITY: i32 = -1000;

const STOP_WASTING: &str = "Stop wasting my time, too many consecutive NOOPs";

pub const SPEC: PluginSpec = PluginSpec {
    name: "noop_counter",
    factory: new,
    args: &["MAX", "reject", "reject_type"],
    rejects: true,
    example: "3",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let (max, pairs) = setup.count_then_pairs(DEFAULT_MAX)?;
    Ok(Box::new(NoopCounter {
        max,
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Disconnect)?,
    }))
}

struct NoopCounter {
    max: u32,
    reject: Reject,
}

/// NOOPs in this session: the current run, the longest run, and whether the limit was
/// reached.
#[derive(Default)]
struct Noops {
    run: u32,
    longest: u32,
    limited: bool,
}

impl NoopCounter {
    /// Another command: the run of NOOPs is over. Keeps state only, so logs nothing.
    fn reset(&self, cx: &mut Context<'_>) -> Verdict {
        cx.state::<Noops>().run = 0;
        Verdict::Declined
    }
}

impl Plugin for NoopCounter {
    fn hooks(&self) -> Vec<Registration> {
        let resets = [
            Hook::Helo,
            Hook::Ehlo,
            Hook::Mail,
            Hook::Rcpt,
            Hook::Data,
            Hook::ResetTransaction,
            Hook::Vrfy,
            Hook::Help,
            Hook::UnrecognizedCommand,
        ];
        [Hook::Noop.into(), Hook::Disconnect.into()]
            .into_iter()
            .chain(
                resets
                    .into_iter()
                    .map(|h| Registration::with_priority(h, RESET_PRIORITY)),
            )
            .collect()
    }

    fn noop(&self, cx: &mut Context<'_>, _arg: &str) -> Verdict {
        let n = {
            let noops = cx.state::<Noops>();
            noops.run = noops.run.saturating_add(1);
            noops.longest = noops.longest.max(noops.run);
            noops.limited |= noops.run >= self.max;
            noops.run
        };
        if n < self.max {
            cx.log(Level::Debug, format!("NOOP {n} of {} in a row", self.max));
            return Verdict::Declined;
        }
        let why = format!("{n} consecutive NOOPs (limit {})", self.max);
        self.reject.apply(cx, STOP_WASTING, &why)
    }

    /// The session's verdict when the limit was never reached (otherwise it was logged
    /// when it was).
    fn disconnect(&self, cx: &mut Context<'_>) -> Verdict {
        let noops = cx.state::<Noops>();
        if !noops.limited {
            let n = noops.longest;
            cx.pass(format!(
                "at most {n} consecutive NOOPs (limit {})",
                self.max
            ));
        }
        Verdict::Declined
    }

    fn helo(&self, cx: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
        self.reset(cx)
    }
    fn ehlo(&self, cx: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
        self.reset(cx)
    }
    fn mail(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.reset(cx)
    }
    fn rcpt(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.reset(cx)
    }
    fn data(&self, cx: &mut Context<'_>) -> Verdict {
        self.reset(cx)
    }
    fn reset_transaction(&self, cx: &mut Context<'_>) -> Verdict {
        self.reset(cx)
    }
    fn vrfy(&self, cx: &mut Context<'_>, _: &str) -> Verdict {
        self.reset(cx)
    }
    fn help(&self, cx: &mut Context<'_>, _: &str) -> Verdict {
        self.reset(cx)
    }
    fn unrecognized_command(&self, cx: &mut Context<'_>, _: &str, _: &str) -> Verdict {
        self.reset(cx)
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{LogCapture, TestServer};

    fn start(line: &str) -> (TestServer, LogCapture) {
        crate::test_support::start(line)
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "noop_counter")
    }

    const OK: &str = "250 2.0.0 OK\r\n";
    const STOP: &str = "500 5.5.1 Stop wasting my time, too many consecutive NOOPs\r\n";

    #[test]
    fn the_third_noop_in_a_row_disconnects() {
        let (server, log) = start("noop_counter");
        let mut s = server.session();
        s.connect();
        assert_eq!(s.command("NOOP"), OK);
        assert_eq!(s.command("NOOP"), OK);
        assert_eq!(s.command("NOOP"), STOP);
        assert!(s.is_closed());
        assert_eq!(summary(&log), ["INFO fail: 3 consecutive NOOPs (limit 3)"]);
    }

    #[test]
    fn other_commands_reset_the_count() {
        // rcpt_ok answers RCPT itself (ending the chain) and still the count is reset.
        let (server, log) = start("rcpt_ok\nnoop_counter 2");
        let mut s = server.session();
        s.connect();
        for cmd in [
            "EHLO client.example",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<postmaster>",
            "VRFY joe",
            "HELP",
            "RSET",
            "XYZZY",
        ] {
            assert_eq!(s.command("NOOP"), OK, "NOOP before {cmd}");
            s.command(cmd);
        }
        assert_eq!(s.command("NOOP"), OK);
        assert_eq!(s.command("NOOP"), STOP);
        assert_eq!(summary(&log), ["INFO fail: 2 consecutive NOOPs (limit 2)"]);
    }

    #[test]
    fn sessions_under_the_limit_pass_at_the_end() {
        let (server, log) = start("noop_counter");
        let mut s = server.session();
        s.connect();
        for cmd in ["NOOP", "NOOP", "HELO client.example", "NOOP", "QUIT"] {
            s.command(cmd);
        }
        let mut s = server.session();
        s.connect();
        s.hang_up();
        assert_eq!(
            summary(&log),
            [
                "INFO pass: at most 2 consecutive NOOPs (limit 3)",
                "INFO pass: at most 0 consecutive NOOPs (limit 3)",
            ]
        );
    }

    #[test]
    fn counts_per_session() {
        let (server, _) = start("noop_counter 2");
        for _ in 0..2 {
            let mut s = server.session();
            s.connect();
            assert_eq!(s.command("NOOP"), OK);
            assert_eq!(s.command("NOOP"), STOP);
        }
    }

    #[test]
    fn reject_arguments() {
        let (server, log) = start("noop_counter 1 reject 0");
        let mut s = server.session();
        s.connect();
        assert_eq!(s.command("NOOP"), OK);
        assert_eq!(s.command("NOOP"), OK);
        assert_eq!(
            summary(&log),
            [
                "INFO fail, tolerated: 1 consecutive NOOPs (limit 1)",
                "INFO fail, tolerated: 2 consecutive NOOPs (limit 1)",
            ]
        );

        let (server, _) = start("noop_counter 2 reject_type perm");
        let mut s = server.session();
        s.connect();
        s.command("NOOP");
        assert_eq!(s.command("NOOP"), STOP);
        assert!(!s.is_closed());

        let (server, _) = start("noop_counter 1 reject_type temp_disconnect");
        let mut s = server.session();
        s.connect();
        assert_eq!(
            s.command("NOOP"),
            "421 4.7.0 Stop wasting my time, too many consecutive NOOPs\r\n"
        );
        assert!(s.is_closed());
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            ("noop_counter 0", "MAX must be at least 1"),
            ("noop_counter 3 bogus_arg 1", "unknown argument"),
            ("noop_counter three", "has no value"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: noop_counter: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
