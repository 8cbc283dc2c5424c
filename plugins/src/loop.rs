//! # NAME
//!
//! loop - refuse messages that have gone round in a mail loop
//!
//! # DESCRIPTION
//!
//! Every server a message passes through adds a `Received` header, and a delivery to a
//! mailbox adds `Delivered-To`. When a forwarding or routing mistake sends a message round
//! in a circle, these pile up. This plugin counts them, as qmail-smtpd does, and refuses a
//! message that arrives with more than MAX of them:
//!
//! ```text
//! 554 5.4.6 Too many hops
//! ```
//!
//! The count is of the header as the client sent it; the `Received` header this server adds
//! is not counted.
//!
//! Relay clients and authenticated users are checked too: a loop through them is still a
//! loop.
//!
//! # CONFIGURATION
//!
//! ## MAX
//!
//! Default: `100` (qmail-smtpd's limit; RFC 5321 §6.3 asks for at least 100). The number
//! of `Received` and `Delivered-To` headers a message may carry. It must be at least 1.
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
//! `perm` answers `554 5.4.6 Too many hops`; `temp` answers `452 4.4.6 Too many hops`;
//! `disconnect` answers `552 5.4.6 Too many hops` and `temp_disconnect`
//! `421 4.4.6 Too many hops`, and both close the connection.
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
//! - The Perl plugin counted the `Received` header of this server too and refused a
//!   message with MAX or more, so a message that arrived with MAX-1 headers was refused.
//!   This one counts what arrived and refuses more than MAX, as qmail-smtpd does.
//! - The refusal is `554 5.4.6 Too many hops` (as qmail-smtpd and Postfix answer); the
//!   Perl plugin got the generic 552 of the `data_post` stage,
//!   `552 Too many hops (#5.4.6)`.
//! - It takes `reject` and `reject_type` like every plugin that rejects.
//! - An invalid MAX or an extra argument is a configuration error; the Perl plugin warned
//!   and used the default.
//!
//! # SEE ALSO
//!
//! qpsmtpd-headers(7), qpsmtpd-plugins(7), qmail-smtpd(8)

use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reject, RejectMode, RejectType,
    Reply, Setup, Verdict,
};

/// qmail-smtpd's limit.
const DEFAULT_MAX: usize = 100;

const TOO_MANY_HOPS: &str = "5.4.6 Too many hops";

pub const SPEC: PluginSpec = PluginSpec {
    name: "loop",
    factory: new,
    args: &["MAX", "reject", "reject_type"],
    rejects: true,
    example: "100",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let (max, pairs) = setup.count_then_pairs(DEFAULT_MAX as u32)?;
    Ok(Box::new(Loop {
        max: max as usize,
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
    }))
}

struct Loop {
    max: usize,
    reject: Reject,
}

impl Plugin for Loop {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::DataPost.into()]
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        let header = &cx.transaction().header;
        // The server has put its own Received header on top by now; it is not a hop the
        // message arrived with.
        let received = header.count("Received").saturating_sub(1);
        let delivered = header.count("Delivered-To");
        let hops = received + delivered;
        let detail = format!(
            "{hops} hops ({received} Received, {delivered} Delivered-To), limit {}",
            self.max
        );
        if hops <= self.max {
            cx.pass(detail);
            return Verdict::Declined;
        }
        match self.reject.apply(cx, TOO_MANY_HOPS, &detail) {
            // The data_post table answers a plain deny with 552 (storage exceeded); a loop
            // is a failed transaction.
            Verdict::Deny(Some(msg)) => Verdict::done(Reply::new(554, "5.4.6", &msg)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{LogCapture, TestServer};

    fn start(line: &str) -> (TestServer, LogCapture) {
        crate::test_support::start(&format!("{line}\nrcpt_ok"))
    }

    /// A message with `received` Received and `delivered` Delivered-To headers.
    fn message(received: usize, delivered: usize) -> String {
        let mut m = String::new();
        for i in 0..received {
            m.push_str(&format!(
                "Received: from hop{i}.example by x.example; today\r\n"
            ));
        }
        for i in 0..delivered {
            m.push_str(&format!("Delivered-To: user{i}@example.org\r\n"));
        }
        m.push_str("Subject: loop\r\n\r\nround and round\r\n");
        m
    }

    /// The reply to one message from a fresh session.
    fn send(server: &TestServer, received: usize, delivered: usize) -> String {
        server.send_message(
            "a@example.org",
            &["postmaster"],
            &message(received, delivered),
        )
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "loop")
    }

    /// Not refused by loop: with no queue plugin loaded, the queue stage declines.
    fn passed(reply: &str) -> bool {
        reply == "451 4.3.0 Queuing declined or disabled; try again later\r\n"
    }

    #[test]
    fn counts_received_and_delivered_to() {
        let (server, log) = start("loop 5");
        assert!(passed(&send(&server, 5, 0)));
        assert!(passed(&send(&server, 3, 2)));
        assert_eq!(send(&server, 6, 0), "554 5.4.6 Too many hops\r\n");
        assert_eq!(send(&server, 4, 2), "554 5.4.6 Too many hops\r\n");
        assert_eq!(
            summary(&log),
            [
                "INFO pass: 5 hops (5 Received, 0 Delivered-To), limit 5",
                "INFO pass: 5 hops (3 Received, 2 Delivered-To), limit 5",
                "INFO fail: 6 hops (6 Received, 0 Delivered-To), limit 5",
                "INFO fail: 6 hops (4 Received, 2 Delivered-To), limit 5",
            ]
        );
    }

    #[test]
    fn default_limit_is_100() {
        let (server, _) = start("loop");
        assert!(passed(&send(&server, 60, 40)));
        assert_eq!(send(&server, 101, 0), "554 5.4.6 Too many hops\r\n");
    }

    #[test]
    fn reject_arguments() {
        let (server, log) = start("loop 1 reject 0");
        assert!(passed(&send(&server, 2, 0)));
        assert_eq!(
            summary(&log),
            ["INFO fail, tolerated: 2 hops (2 Received, 0 Delivered-To), limit 1"]
        );
        let (server, _) = start("loop 1 reject_type temp");
        assert_eq!(send(&server, 2, 0), "452 4.4.6 Too many hops\r\n");
        for (kind, want) in [
            ("disconnect", "552 5.4.6 Too many hops\r\n"),
            ("temp_disconnect", "421 4.4.6 Too many hops\r\n"),
        ] {
            let (server, _) = start(&format!("loop 1 reject_type {kind}"));
            let mut s = server.session();
            s.connect();
            s.command("HELO client.example");
            assert_eq!(
                s.mail("a@example.org", &["postmaster"], &message(2, 0)),
                want
            );
            assert!(s.is_closed(), "{kind}");
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            ("loop 0", "MAX must be at least 1"),
            ("loop 100 200", "has no value"),
            ("loop lots", "has no value"),
            ("loop 100 bogus_arg 1", "unknown argument"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: loop: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
