//! # NAME
//!
//! badmailfromto - refuse mail from given senders to given recipients
//!
//! # DESCRIPTION
//!
//! Blocks mail from one sender to one recipient while both stay free to exchange mail with
//! everyone else: the tool for harassment cases. Each recipient (`RCPT TO`) is checked
//! together with the transaction's sender against the pairs of the `badmailfromto` file;
//! when a pair matches, the recipient is refused as if it did not exist:
//!
//! ```text
//! 550 5.1.1 mail to user@example.com not accepted here
//! ```
//!
//! so the sender learns nothing about being blocked (the reply is the one badrcptto(7)
//! gives). Recipients that match no pair are passed on to the other `rcpt` plugins; this
//! plugin never accepts a recipient by itself.
//!
//! Mail from the null sender `<>` is not checked. Unlike badmailfrom(7), relay clients and
//! authenticated users are checked too, as in qpsmtpd: a block between two people holds
//! whoever sends.
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
//! `badmailfromto`: one pair per line, the sender entry, blanks (tabs or spaces), and the
//! recipient entry; anything after the pair is a comment. Each entry has the syntax of a
//! `badmailfrom` entry (see qpsmtpd-badmailfrom(7)): `user@example.com`, `@example.com` for
//! every address at a domain, or a regular expression. Comparisons ignore case.
//!
//! ```text
//! # sender                 recipient
//! stalker@example.com      victim@example.org
//! @harass.example          victim@example.org    blocked since 2024-05
//! ```
//!
//! A line that is not a pair of valid entries stops the server from starting, with the file
//! and line named. The file is read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The pair is checked at `RCPT` only; qpsmtpd also ran a `MAIL` hook to remember which
//!   sender entry matched, and then only honoured the last such entry.
//! - Sender and recipient may be separated by any blanks (qpsmtpd needed a tab at `RCPT`),
//!   and both sides take `@domain` entries and patterns (qpsmtpd's recipient side only
//!   took exact addresses).
//! - `reject` and `reject_type` are new; the refusal carries `5.1.1`.
//! - A malformed line is an error at startup instead of a warning.
//!
//! # SEE ALSO
//!
//! qpsmtpd-badmailfrom(7), qpsmtpd-badrcptto(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use crate::badmailfrom::{Matcher, Syntax, comparable};
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "badmailfromto",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject 1 reject_type perm",
};

const FILE: &str = "badmailfromto";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let mut blocks = Vec::new();
    for line in setup.config.lines(FILE)? {
        let mut words = line.text.split_whitespace();
        let (Some(from), Some(to)) = (words.next(), words.next()) else {
            return Err(line.error(format!(
                "{:?} is not a pair of sender and recipient",
                line.text
            )));
        };
        let parse = |w: &str| Matcher::parse(w, Syntax::Mixed).map_err(|e| line.error(e));
        blocks.push(Block {
            from: parse(from)?,
            to: parse(to)?,
            text: format!("{from} {to}"),
            place: line.origin.to_string(),
        });
    }
    Ok(Box::new(BadMailFromTo {
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
        blocks,
    }))
}

/// One line of the file.
struct Block {
    from: Matcher,
    to: Matcher,
    /// The pair as written, for log lines.
    text: String,
    place: String,
}

struct BadMailFromTo {
    reject: Reject,
    blocks: Vec<Block>,
}

impl Plugin for BadMailFromTo {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Rcpt.into()]
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        let sender = cx.transaction().sender.clone().unwrap_or_default();
        if sender.is_null() {
            cx.skip("null sender");
            return Verdict::Declined;
        }
        let (from, from_domain) = comparable(&sender);
        let (to, to_domain) = comparable(rcpt);
        let found = self
            .blocks
            .iter()
            .find(|b| b.from.matches(&from, &from_domain) && b.to.matches(&to, &to_domain));
        let Some(block) = found else {
            cx.pass(format!("{sender} to {rcpt} is not in {FILE}"));
            return Verdict::Declined;
        };
        let msg = format!("5.1.1 mail to {} not accepted here", rcpt.address());
        let why = format!(
            "{sender} to {rcpt} matches {} at {}",
            block.text, block.place
        );
        self.reject.apply(cx, &msg, &why)
    }
}

#[cfg(test)]
mod tests {
    use crate::relay::tests::Authenticated;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};

    const PAIRS: &str = "# sender  recipient\n\
                         stalker@example.com\tvictim@test.example\n\
                         @Harass.example  Victim@Test.Example   since 2024-05\n\
                         /^bot[0-9]+@/   @lists.test.example";

    fn harness(plugins: &str) -> Harness {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", plugins)
            .file("badmailfromto", PAIRS)
            .file("rcpthosts", "test.example\n.test.example")
    }

    fn from(server: &TestServer, sender: &str) -> TestSession {
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("EHLO client.example").starts_with("250"));
        assert!(
            s.command(&format!("MAIL FROM:<{sender}>"))
                .starts_with("250 ")
        );
        s
    }

    fn ok(rcpt: &str) -> String {
        format!("250 2.1.5 <{rcpt}>, recipient ok\r\n")
    }

    fn refused(rcpt: &str) -> String {
        format!("550 5.1.1 mail to {rcpt} not accepted here\r\n")
    }

    #[test]
    fn refuses_listed_pairs_only() {
        let server = harness("badmailfromto\nrcpt_ok").build().unwrap();
        let cases: &[(&str, &[(&str, String)])] = &[
            (
                "Stalker@Example.com",
                &[
                    ("victim@test.example", refused("victim@test.example")),
                    ("friend@test.example", ok("friend@test.example")),
                ],
            ),
            (
                "friend@example.com",
                &[("victim@test.example", ok("victim@test.example"))],
            ),
            (
                "anyone@harass.example",
                &[
                    ("VICTIM@test.example", refused("VICTIM@test.example")),
                    ("other@test.example", ok("other@test.example")),
                ],
            ),
            (
                "bot42@anywhere.example",
                &[
                    ("x@lists.test.example", refused("x@lists.test.example")),
                    ("x@test.example", ok("x@test.example")),
                ],
            ),
            ("", &[("victim@test.example", ok("victim@test.example"))]),
        ];
        for (sender, rcpts) in cases {
            let mut s = from(&server, sender);
            for (rcpt, want) in rcpts.iter() {
                assert_eq!(
                    &s.command(&format!("RCPT TO:<{rcpt}>")),
                    want,
                    "{sender} -> {rcpt}"
                );
            }
        }
    }

    #[test]
    fn authenticated_senders_are_checked_too_and_logging() {
        let log = LogCapture::default();
        let server = harness("badmailfromto\nrcpt_ok")
            .plugin("authenticated", Authenticated)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = from(&server, "stalker@example.com");
        assert_eq!(
            s.command("RCPT TO:<victim@test.example>"),
            refused("victim@test.example")
        );
        s.command("RCPT TO:<other@test.example>");
        s.command("MAIL FROM:<>");
        s.command("RCPT TO:<victim@test.example>");
        let file = server.dir().join("config/badmailfromto");
        assert_eq!(
            log.of_plugin("badmailfromto"),
            [
                format!(
                    "INFO fail: <stalker@example.com> to <victim@test.example> matches stalker@example.com victim@test.example at {}:2",
                    file.display()
                ),
                "INFO pass: <stalker@example.com> to <other@test.example> is not in badmailfromto"
                    .to_string(),
                "INFO skip: null sender".to_string(),
            ]
        );
    }

    #[test]
    fn reject_settings() {
        let server = harness("badmailfromto reject_type temp_disconnect\nrcpt_ok")
            .build()
            .unwrap();
        let mut s = from(&server, "stalker@example.com");
        assert_eq!(
            s.command("RCPT TO:<victim@test.example>"),
            "421 4.1.1 mail to victim@test.example not accepted here\r\n"
        );
        assert!(s.is_closed());
        let server = harness("badmailfromto reject 0\nrcpt_ok").build().unwrap();
        let mut s = from(&server, "stalker@example.com");
        assert_eq!(
            s.command("RCPT TO:<victim@test.example>"),
            ok("victim@test.example")
        );
    }

    #[test]
    fn bad_configuration_names_file_and_line() {
        let err = |h: Harness| h.build().expect_err("should be refused").to_string();
        let e = err(harness("badmailfromto").file(
            "badmailfromto",
            "a@example.com b@example.com\nlonely@example.com",
        ));
        assert!(
            e.ends_with(
                "badmailfromto:2: \"lonely@example.com\" is not a pair of sender and recipient"
            ),
            "{e}"
        );
        let e = err(harness("badmailfromto").file("badmailfromto", "a@example.com example.com"));
        assert!(
            e.ends_with(
                "badmailfromto:1: \"example.com\" is neither user@domain, @domain nor a pattern"
            ),
            "{e}"
        );
        let e = err(harness("badmailfromto bogus_arg 1"));
        assert!(
            e.contains("plugins:1: badmailfromto: unknown argument"),
            "{e}"
        );
    }
}
