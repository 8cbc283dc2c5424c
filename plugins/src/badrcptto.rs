//! # NAME
//!
//! badrcptto - refuse recipients listed in the badrcptto file
//!
//! # DESCRIPTION
//!
//! The recipient counterpart of badmailfrom(7): each recipient (`RCPT TO`) is compared with
//! the entries of `badrcptto` and then `badrcptto_patterns`, and the first entry that
//! matches refuses that recipient, by default as if it did not exist:
//!
//! ```text
//! 550 5.1.1 mail to user@example.com not accepted here
//! ```
//!
//! or with the reason written on the entry's line. Each match also lowers the connection's
//! karma by two. A recipient that matches no entry is passed on to the other `rcpt`
//! plugins, so this plugin never accepts a recipient by itself: load it before `rcpt_ok`.
//!
//! Not checked: recipients without a domain (`<postmaster>`), and clients that are immune
//! to content checks (relay clients, authenticated users, whitelisted hosts and senders).
//!
//! # CONFIGURATION
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
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `badrcptto`: one entry per line, with the syntax of `badmailfrom` (see
//! qpsmtpd-badmailfrom(7)): `user@example.com` for one recipient, `@example.com` for every
//! recipient at a domain, `/regex/` or a word with characters other than letters, digits
//! and `@ . - _ + = ' [ ] :` for a regular expression (searched for, ignoring case, in the
//! recipient's `user@domain`). An optional reason after the entry is the reply text; it may
//! start with its own enhanced status code, otherwise `5.1.1` is used.
//!
//! ```text
//! # entry                 reason (optional)
//! olduser@example.com     5.1.6 olduser has left the company
//! @lists.example.com
//! [%!]                    No source routing here
//! ^[^@]*@[^@]*@           Too many @ signs
//! ```
//!
//! `badrcptto_patterns`: the file of qpsmtpd's old `check_badrcptto_patterns` plugin. Every
//! line is `regex [reason]`, the first word always taken as a regular expression, even
//! when it looks like an address. Its entries are checked after those of `badrcptto`.
//!
//! A line that does not parse stops the server from starting, with the file and line
//! named. Both files are read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Which `badrcptto` lines are patterns follows badmailfrom(7)'s rule; qpsmtpd took a
//!   line with one of `/ ^ $ * + ! % ? \` as a pattern.
//! - The default reply names the recipient (`mail to user@example.com not accepted here`)
//!   where qpsmtpd named the matching entry, which could be a pattern; a reason given on the
//!   line is used (qpsmtpd ignored it).
//! - `badrcptto_patterns` is read by this plugin; qpsmtpd needed the separate
//!   `check_badrcptto_patterns` plugin, which exempted relay clients but not whitelisted
//!   hosts.
//! - A malformed line is an error at startup instead of a warning at every `RCPT`.
//!
//! # SEE ALSO
//!
//! qpsmtpd-badmailfrom(7), qpsmtpd-badmailfromto(7), qpsmtpd-rcpt_ok(7),
//! qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use crate::badmailfrom::{AddressList, Syntax, immunity, with_enhanced};
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "badrcptto",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject 1 reject_type perm",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let mut list = AddressList::load(setup.config, "badrcptto", Syntax::Mixed)?;
    list.extend(AddressList::load(
        setup.config,
        "badrcptto_patterns",
        Syntax::Patterns,
    )?);
    Ok(Box::new(BadRcptTo {
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
        list,
    }))
}

struct BadRcptTo {
    reject: Reject,
    list: AddressList,
}

impl Plugin for BadRcptTo {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Rcpt.into()]
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        if let Some(why) = immunity(cx) {
            cx.skip(format!("immune: {why}"));
            return Verdict::Declined;
        }
        if rcpt.host().is_empty() {
            cx.skip(format!("{rcpt} has no domain"));
            return Verdict::Declined;
        }
        let Some(entry) = self.list.find(rcpt) else {
            cx.pass(format!("{rcpt} is not in badrcptto"));
            return Verdict::Declined;
        };
        cx.adjust_karma(-2);
        let msg = match &entry.reason {
            Some(reason) => with_enhanced("5.1.1", reason),
            None => format!("5.1.1 mail to {} not accepted here", rcpt.address()),
        };
        let why = format!("{rcpt} matches {} at {}", entry.word, entry.place);
        self.reject.apply(cx, &msg, &why)
    }
}

#[cfg(test)]
mod tests {
    use crate::badmailfrom::tests::naughty;
    use crate::relay::tests::Authenticated;
    use qpsmtpd_core::RejectType;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};

    const LIST: &str = "# gone\n\
                        olduser@test.example   5.1.6 olduser has left the company\n\
                        @Lists.Test.example\n\
                        [%!]  No source routing here\n\
                        /^webmaster@/";

    fn harness(plugins: &str) -> Harness {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", plugins)
            .file("badrcptto", LIST)
            .file(
                "badrcptto_patterns",
                "^abuse@test\\.example$\nnoc@test.example  Ask elsewhere",
            )
            .file("rcpthosts", "test.example\n.test.example")
    }

    fn build(plugins: &str) -> TestServer {
        harness(plugins).build().unwrap()
    }

    fn in_transaction(server: &TestServer) -> TestSession {
        let mut s = server.session();
        s.begin("a@sender.example");
        s
    }

    fn ok(rcpt: &str) -> String {
        format!("250 2.1.5 <{rcpt}>, recipient ok\r\n")
    }

    #[test]
    fn refuses_listed_recipients() {
        let server = build("badrcptto\nrcpt_ok");
        let mut s = in_transaction(&server);
        let cases = [
            (
                "olduser@test.example",
                "550 5.1.6 olduser has left the company\r\n".to_string(),
            ),
            (
                "OldUser@TEST.example",
                "550 5.1.6 olduser has left the company\r\n".to_string(),
            ),
            ("newuser@test.example", ok("newuser@test.example")),
            (
                "Someone@lists.test.example",
                "550 5.1.1 mail to Someone@lists.test.example not accepted here\r\n".to_string(),
            ),
            (
                "someone@sub.lists.test.example",
                ok("someone@sub.lists.test.example"),
            ),
            (
                "\"a%b\"@test.example",
                "550 5.1.1 No source routing here\r\n".to_string(),
            ),
            (
                "WebMaster@test.example",
                "550 5.1.1 mail to WebMaster@test.example not accepted here\r\n".to_string(),
            ),
            (
                "abuse@test.example",
                "550 5.1.1 mail to abuse@test.example not accepted here\r\n".to_string(),
            ),
            ("xabuse@test.example", ok("xabuse@test.example")),
            // A patterns line is a regex even when it looks like an address: `.` is any char.
            (
                "noc@test-example",
                "550 5.1.1 Ask elsewhere\r\n".to_string(),
            ),
            ("postmaster", ok("postmaster")),
        ];
        for (rcpt, want) in cases {
            assert_eq!(
                s.command(&format!("RCPT TO:<{rcpt}>")),
                want,
                "RCPT TO:<{rcpt}>"
            );
        }
        assert_eq!(s.session.connection().notes.get_int("karma"), Some(-14));
    }

    #[test]
    fn reject_settings() {
        let server = build("badrcptto reject_type temp\nrcpt_ok");
        let mut s = in_transaction(&server);
        assert_eq!(
            s.command("RCPT TO:<x@lists.test.example>"),
            "450 4.1.1 mail to x@lists.test.example not accepted here\r\n"
        );
        let server = build("badrcptto reject 0\nrcpt_ok");
        let mut s = in_transaction(&server);
        assert_eq!(
            s.command("RCPT TO:<x@lists.test.example>"),
            ok("x@lists.test.example")
        );
        let server = build("badrcptto reject naughty reject_type disconnect\nrcpt_ok");
        let mut s = in_transaction(&server);
        assert_eq!(
            s.command("RCPT TO:<x@lists.test.example>"),
            ok("x@lists.test.example")
        );
        assert_eq!(
            naughty(&s),
            Some((
                "5.1.1 (badrcptto) mail to x@lists.test.example not accepted here".to_string(),
                RejectType::Disconnect
            ))
        );
    }

    #[test]
    fn immune_clients_and_logging() {
        let log = LogCapture::default();
        let server = harness("badrcptto\nrcpt_ok")
            .plugin("authenticated", Authenticated)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = in_transaction(&server);
        assert_eq!(
            s.command("RCPT TO:<olduser@test.example>"),
            ok("olduser@test.example")
        );
        let server = harness("badrcptto\nrcpt_ok")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = in_transaction(&server);
        s.command("RCPT TO:<olduser@test.example>");
        s.command("RCPT TO:<newuser@test.example>");
        s.command("RCPT TO:<postmaster>");
        s.command("RCPT TO:<noc@test.example>");
        let config = server.dir().join("config");
        assert_eq!(
            log.of_plugin("badrcptto"),
            [
                "INFO skip: immune: authenticated".to_string(),
                format!(
                    "INFO fail: <olduser@test.example> matches olduser@test.example at {}:2",
                    config.join("badrcptto").display()
                ),
                "INFO pass: <newuser@test.example> is not in badrcptto".to_string(),
                "INFO skip: <postmaster> has no domain".to_string(),
                format!(
                    "INFO fail: <noc@test.example> matches noc@test.example at {}:2",
                    config.join("badrcptto_patterns").display()
                ),
            ]
        );
    }

    #[test]
    fn bad_configuration_names_file_and_line() {
        let err = |h: Harness| h.build().expect_err("should be refused").to_string();
        let e = err(harness("badrcptto").file("badrcptto", "a@example.com\nexample .com"));
        assert!(
            e.ends_with("badrcptto:2: \"example\" is neither user@domain, @domain nor a pattern"),
            "{e}"
        );
        let e = err(harness("badrcptto").file("badrcptto_patterns", "\n\n(a"));
        assert!(
            e.contains("badrcptto_patterns:3: bad regular expression \"(a\""),
            "{e}"
        );
        let e = err(harness("badrcptto bogus_arg 1"));
        assert!(
            e.contains("plugins:1: badrcptto: unknown argument \"bogus_arg\""),
            "{e}"
        );
    }
}
