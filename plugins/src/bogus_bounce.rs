//! # NAME
//!
//! bogus_bounce - refuse bounces that cannot be real
//!
//! # DESCRIPTION
//!
//! A bounce (a delivery status notification, sent with the null sender `MAIL FROM:<>`)
//! goes back to the one sender of the message that failed, so it has exactly one
//! recipient. And RFC 3834 asks that automatic replies carry no return path of their own.
//! Spam disguised as bounces often breaks these rules. For messages with the null sender,
//! this plugin checks that:
//!
//! - there is exactly one recipient; otherwise the message is refused with
//!   `552 5.7.1 This bounce message does not have exactly 1 recipient`;
//! - a `Return-Path` header, if there is one, is empty (`<>`); otherwise the message is
//!   refused with `552 5.7.1 A bounce return path must be empty (RFC 3834)`.
//!
//! Messages with a real sender are not checked.
//!
//! By default the plugin only logs what it finds (`reject 0`): turn on the refusals with
//! `reject 1`, or with the older form `bogus_bounce deny`.
//!
//! # CONFIGURATION
//!
//! ## ACTION *log|deny|denysoft*
//!
//! Default: `log`. The older way to choose what happens, as a single word in place of the
//! `reject` arguments: `log` only logs (`reject 0`), `deny` refuses (`reject 1`), and
//! `denysoft` refuses with a temporary error (`reject 1 reject_type temp`). If `reject` or
//! `reject_type` is given too, it wins.
//!
//! ## reject *0|1|naughty*
//!
//! Default: `0`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
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
//! - `bogus_bounce deny` and `bogus_bounce denysoft` refuse, as the Perl manual says. The
//!   Perl plugin only logged with them (its `reject` stayed at the default 0), and
//!   `denysoft` merely chose the kind of a refusal that never came.
//! - The refusal texts no longer start with `fail,` (the Perl plugin sent its log text).
//! - An unknown ACTION or argument is a configuration error.
//!
//! # SEE ALSO
//!
//! qpsmtpd-headers(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use qpsmtpd_core::{
    ConfigError, Context, Hook, Pairs, Plugin, PluginSpec, Registration, Reject, RejectMode,
    RejectType, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "bogus_bounce",
    factory: new,
    args: &["ACTION", "reject", "reject_type"],
    rejects: true,
    example: "deny",
};

const NOT_ONE_RECIPIENT: &str = "5.7.1 This bounce message does not have exactly 1 recipient";
const RETURN_PATH: &str = "5.7.1 A bounce return path must be empty (RFC 3834)";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    // An odd number of words: the first is the old ACTION word.
    let (action, rest) = match setup.args.len() % 2 {
        1 => (Some(setup.args[0].to_ascii_lowercase()), &setup.args[1..]),
        _ => (None, setup.args),
    };
    let (mode, kind) = match action.as_deref() {
        None | Some("log") => (RejectMode::Off, RejectType::Perm),
        Some("deny") => (RejectMode::On, RejectType::Perm),
        Some("denysoft") => (RejectMode::On, RejectType::Temp),
        Some(other) => {
            return Err(setup.error(format!(
                "the action must be log, deny or denysoft, not {other:?}"
            )));
        }
    };
    let pairs = Pairs::parse(rest, &setup.spec.keys()).map_err(|e| setup.error(e))?;
    Ok(Box::new(BogusBounce {
        reject: setup.reject(&pairs, mode, kind)?,
    }))
}

struct BogusBounce {
    reject: Reject,
}

impl Plugin for BogusBounce {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::DataPost.into()]
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        let txn = cx.transaction();
        let sender = txn.sender.as_ref().filter(|s| !s.is_null());
        if let Some(sender) = sender {
            cx.pass(format!("not a bounce (sender {})", sender.format()));
            return Verdict::Declined;
        }
        if txn.recipients.len() != 1 {
            let rcpts: Vec<String> = txn.recipients.iter().map(|r| r.format()).collect();
            let why = format!("bounce to {} recipients: {}", rcpts.len(), rcpts.join(","));
            return self.reject.apply(cx, NOT_ONE_RECIPIENT, &why);
        }
        if let Some(path) = txn.header.get("Return-Path")
            && !path.is_empty()
            && path != "<>"
        {
            let why = format!("bounce with Return-Path {path:?}");
            return self.reject.apply(cx, RETURN_PATH, &why);
        }
        cx.pass("bounce to a single recipient, no Return-Path");
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{LogCapture, TestServer};

    fn start(line: &str) -> (TestServer, LogCapture) {
        crate::test_support::start(&format!("{line}\nrcpt_ok"))
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "bogus_bounce")
    }

    /// With no queue plugin loaded, a message that passes is declined by the queue stage.
    const PASSED: &str = "451 4.3.0 Queuing declined or disabled; try again later\r\n";
    const NOT_ONE: &str = "552 5.7.1 This bounce message does not have exactly 1 recipient\r\n";

    fn send(server: &TestServer, from: &str, to: &[&str], header: &str) -> String {
        server.send_message(from, to, &format!("{header}\r\n\r\nbody\r\n"))
    }

    #[test]
    fn checks_only_bounces() {
        let (server, log) = start("bogus_bounce reject 1");
        let two = ["postmaster", "abuse"];
        assert_eq!(send(&server, "a@example.org", &two, "Subject: x"), PASSED);
        assert_eq!(send(&server, "", &["postmaster"], "Subject: x"), PASSED);
        assert_eq!(
            send(&server, "", &["postmaster"], "Return-Path: <>"),
            PASSED
        );
        assert_eq!(send(&server, "", &two, "Subject: x"), NOT_ONE);
        assert_eq!(
            send(&server, "", &["postmaster"], "Return-Path: <x@example.org>"),
            "552 5.7.1 A bounce return path must be empty (RFC 3834)\r\n"
        );
        assert_eq!(
            summary(&log),
            [
                "INFO pass: not a bounce (sender <a@example.org>)",
                "INFO pass: bounce to a single recipient, no Return-Path",
                "INFO pass: bounce to a single recipient, no Return-Path",
                "INFO fail: bounce to 2 recipients: <postmaster>,<abuse>",
                "INFO fail: bounce with Return-Path \"<x@example.org>\"",
            ]
        );
    }

    #[test]
    fn only_logs_by_default() {
        let (server, log) = start("bogus_bounce");
        assert_eq!(
            send(&server, "", &["postmaster", "abuse"], "Subject: x"),
            PASSED
        );
        assert_eq!(
            summary(&log),
            ["INFO fail, tolerated: bounce to 2 recipients: <postmaster>,<abuse>"]
        );
        let (server, _) = start("bogus_bounce log");
        assert_eq!(
            send(&server, "", &["postmaster", "abuse"], "Subject: x"),
            PASSED
        );
    }

    #[test]
    fn old_action_words() {
        let two = ["postmaster", "abuse"];
        let (server, _) = start("bogus_bounce deny");
        assert_eq!(send(&server, "", &two, "Subject: x"), NOT_ONE);
        let (server, _) = start("bogus_bounce DenySoft");
        assert_eq!(
            send(&server, "", &two, "Subject: x"),
            "452 4.7.1 This bounce message does not have exactly 1 recipient\r\n"
        );
        // Explicit reject arguments win over the action word.
        let (server, _) = start("bogus_bounce deny reject 0");
        assert_eq!(send(&server, "", &two, "Subject: x"), PASSED);
        let (server, _) = start("bogus_bounce denysoft reject_type perm");
        assert_eq!(send(&server, "", &two, "Subject: x"), NOT_ONE);
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            (
                "bogus_bounce reject",
                "the action must be log, deny or denysoft",
            ),
            (
                "bogus_bounce drop",
                "the action must be log, deny or denysoft",
            ),
            ("bogus_bounce deny bogus_arg 1", "unknown argument"),
            ("bogus_bounce bogus_arg 1", "unknown argument"),
            ("bogus_bounce reject sometimes", "reject must be"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: bogus_bounce: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
