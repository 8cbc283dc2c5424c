//! # NAME
//!
//! rcpt_regexp - answer for recipients from a list of addresses and regular expressions
//!
//! # DESCRIPTION
//!
//! Each recipient's `user@domain` is compared, in order, with the rules of the
//! `rcpt_regexp` file, and the first rule that matches gives the answer; a recipient that
//! no rule matches is left to the later `rcpt` plugins. A rule is an exact address or a
//! regular expression between slashes; both ignore case. Recipients without a domain
//! (`<postmaster>`) are not checked.
//!
//! The answers are qpsmtpd's return codes, as for rcpt_map(7):
//!
//! - `OK`: the recipient is accepted, and no later `rcpt` plugin is asked. Be careful: an
//!   `OK` rule that matches addresses outside your own domains makes an open relay, since
//!   `rcpt_ok` is not asked any more;
//! - `DECLINED`: no opinion, the later `rcpt` plugins decide (useful to exempt addresses
//!   from a catch-all rule further down);
//! - `DENY` (`550`), `DENYSOFT` (`450`), `DENY_DISCONNECT` (`550` and the connection is
//!   closed), `DENYSOFT_DISCONNECT` (`421` and closed): the recipient is refused, with the
//!   comment of the rule as the reply text (`No such user.` when there is none). The text
//!   may start with its own enhanced status code; otherwise `X.1.1` is used. `DENYHARD` is
//!   accepted as an old name of `DENY_DISCONNECT`.
//!
//! Load it before `rcpt_ok`.
//!
//! # CONFIGURATION
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! They apply to every refusal of a rule. With `reject 0` a new list can be tried out:
//! refusals are only logged, and the later plugins decide.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: as the rule's code says (`DENY` perm, `DENYSOFT` temp, `DENY_DISCONNECT`
//! disconnect, `DENYSOFT_DISCONNECT` temp_disconnect). How to reject: `perm` with a 5xx
//! reply, `temp` with a 4xx reply, `disconnect` with a 5xx reply and closing the
//! connection, `temp_disconnect` with 421 and closing.
//!
//! When given, it replaces the type of every refusal, whatever the rule's code says.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `rcpt_regexp`: one rule per line, `RULE CODE [comment]`, separated by blanks; empty lines
//! and `#` comments are skipped. `RULE` is either `/regex/`, a regular expression searched
//! for in the recipient's `user@domain` (anchor it with `^` and `$` to match the whole
//! address; it cannot contain blanks, use `\s`), or an address compared as a whole.
//!
//! ```text
//! # rule                    code      comment
//! me@example.org            OK
//! /^user\d+@example\.org$/  OK
//! info@example.com          DENY      User not found.
//! /^unused@/                DENY      5.1.6 This address is no longer in use
//! /^.*$/                    DECLINED
//! ```
//!
//! The syntax of the expressions is that of Rust's `regex` crate, which covers the usual
//! Perl syntax except look-around and back-references. A rule that is not `/regex/` nor an
//! address, an expression that does not compile, a missing or unknown code, or the code
//! `DONE` (this plugin never answers by itself) stops the server from starting, with the
//! file and line named. The file is read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The file is read and compiled when the server starts (or reloads), not at every
//!   `RCPT`; bad lines are errors instead of warnings, and the expressions are Rust
//!   regular expressions, compiled without `eval` and matched in linear time.
//! - A refusal without a comment says `No such user.` (qpsmtpd gave the core's
//!   `relaying denied`).
//! - `reject`, `reject_type` and the default `X.1.1` enhanced status code are new.
//!
//! # SEE ALSO
//!
//! qpsmtpd-rcpt_map(7), qpsmtpd-rcpt_ok(7), qpsmtpd-badrcptto(7), qpsmtpd-naughty(7),
//! qpsmtpd-plugins(7)

use crate::badmailfrom::{comparable, compile};
use crate::rcpt_map::{Answer, Refusal};
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, RejectMode,
    RejectType, Setup, Verdict,
};
use regex::Regex;

pub const SPEC: PluginSpec = PluginSpec {
    name: "rcpt_regexp",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject 1",
};

const FILE: &str = "rcpt_regexp";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let mut rules = Vec::new();
    for line in setup.config.lines(FILE)? {
        let (word, answer) =
            Answer::parse_line(&line.text, line.origin.to_string()).map_err(|e| line.error(e))?;
        let matcher = match word.strip_prefix('/').and_then(|w| w.strip_suffix('/')) {
            Some(re) => Matcher::Pattern(compile(re).map_err(|e| line.error(e))?),
            None => match Address::parse_mailbox(word) {
                Ok(a) if !a.host().is_empty() => Matcher::Address(a.address().to_lowercase()),
                _ => {
                    return Err(line.error(format!("{word:?} is neither /regex/ nor an address")));
                }
            },
        };
        rules.push(Rule {
            matcher,
            word: word.to_string(),
            answer,
        });
    }
    let reject = setup.reject(&pairs, RejectMode::On, RejectType::Perm)?;
    Ok(Box::new(RcptRegexp {
        rules,
        reject: Refusal::new(reject, pairs.get("reject_type").is_some()),
    }))
}

enum Matcher {
    /// A whole address, lower-cased.
    Address(String),
    Pattern(Regex),
}

struct Rule {
    matcher: Matcher,
    /// The rule as written, for log lines.
    word: String,
    answer: Answer,
}

struct RcptRegexp {
    rules: Vec<Rule>,
    reject: Refusal,
}

impl Plugin for RcptRegexp {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Rcpt.into()]
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        if rcpt.host().is_empty() {
            cx.skip(format!("{rcpt} has no domain"));
            return Verdict::Declined;
        }
        let (addr, _) = comparable(rcpt);
        let found = self.rules.iter().find(|r| match &r.matcher {
            Matcher::Address(a) => *a == addr,
            Matcher::Pattern(re) => re.is_match(&addr),
        });
        match found {
            Some(rule) => {
                let what = format!("{rcpt} matches {} at {}", rule.word, rule.answer.place);
                self.reject.answer(cx, &rule.answer, &what)
            }
            None => {
                cx.skip(format!("{rcpt} matches no rule"));
                Verdict::Declined
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};

    const RULES: &str = "# rules\n\
                         me@Example.org            OK\n\
                         /^user\\d+\\@example\\.org$/  OK  Accepting mail\n\
                         info@example.com          DENY      User not found.\n\
                         /^unused@/                DENY      5.1.6 This address is no longer in use\n\
                         /^(abuse|postmaster)@/    DECLINED\n\
                         /^busy@/                  denysoft\n\
                         /^.*@example\\.org$/       DENY";

    fn harness(plugins: &str) -> Harness {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", plugins)
            .file("rcpt_regexp", RULES)
            .file("rcpthosts", "example.com")
    }

    fn replies(server: &TestServer, rcpts: &[&str]) -> Vec<String> {
        server
            .session()
            .begin("a@sender.example")
            .rcpt_replies(rcpts)
    }

    fn ok(rcpt: &str) -> String {
        format!("250 2.1.5 <{rcpt}>, recipient ok\r\n")
    }

    #[test]
    fn first_matching_rule_answers() {
        let server = harness("rcpt_regexp\nrcpt_ok").build().unwrap();
        let cases = [
            ("me@example.org", ok("me@example.org")),
            ("ME@EXAMPLE.ORG", ok("ME@EXAMPLE.ORG")),
            ("user42@Example.org", ok("user42@Example.org")),
            (
                "user42x@example.org",
                "550 5.1.1 No such user.\r\n".to_string(),
            ),
            (
                "info@example.com",
                "550 5.1.1 User not found.\r\n".to_string(),
            ),
            (
                "info@example.com.evil",
                "550 5.7.1 Relaying denied\r\n".to_string(),
            ),
            (
                "unused@example.com",
                "550 5.1.6 This address is no longer in use\r\n".to_string(),
            ),
            // DECLINED stops the search: the catch-all below is not reached.
            (
                "abuse@example.org",
                "550 5.7.1 Relaying denied\r\n".to_string(),
            ),
            ("abuse@example.com", ok("abuse@example.com")),
            (
                "busy@example.com",
                "450 4.1.1 No such user.\r\n".to_string(),
            ),
            ("someone@example.com", ok("someone@example.com")),
            ("postmaster", ok("postmaster")),
        ];
        let rcpts: Vec<&str> = cases.iter().map(|(r, _)| *r).collect();
        for ((rcpt, want), got) in cases.iter().zip(replies(&server, &rcpts)) {
            assert_eq!(&got, want, "RCPT TO:<{rcpt}>");
        }
    }

    #[test]
    fn reject_settings_and_logging() {
        let server = harness("rcpt_regexp reject_type disconnect\nrcpt_ok")
            .build()
            .unwrap();
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@sender.example>");
        assert_eq!(
            s.command("RCPT TO:<busy@example.com>"),
            "550 5.1.1 No such user.\r\n"
        );
        assert!(s.is_closed());

        let log = LogCapture::default();
        let server = harness("rcpt_regexp reject 0\nrcpt_ok")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert_eq!(
            replies(
                &server,
                &[
                    "info@example.com",
                    "me@example.org",
                    "abuse@example.com",
                    "x@example.com",
                    "postmaster"
                ]
            ),
            [
                ok("info@example.com"),
                ok("me@example.org"),
                ok("abuse@example.com"),
                ok("x@example.com"),
                ok("postmaster"),
            ]
        );
        let file = server.dir().join("config/rcpt_regexp");
        let file = file.display();
        assert_eq!(
            log.of_plugin("rcpt_regexp"),
            [
                format!(
                    "INFO fail, tolerated: <info@example.com> matches info@example.com at {file}:4: DENY"
                ),
                format!("INFO pass: <me@example.org> matches me@Example.org at {file}:2: OK"),
                format!(
                    "INFO skip: <abuse@example.com> matches /^(abuse|postmaster)@/ at {file}:6: DECLINED"
                ),
                "INFO skip: <x@example.com> matches no rule".to_string(),
                "INFO skip: <postmaster> has no domain".to_string(),
            ]
        );
    }

    #[test]
    fn bad_configuration_names_file_and_line() {
        let err = |h: Harness| h.build().expect_err("should be refused").to_string();
        for (rules, want) in [
            (
                "me@example.org OK\n/^(a/ DENY",
                "rcpt_regexp:2: bad regular expression \"^(a\"",
            ),
            (
                "me@example.org",
                "rcpt_regexp:1: \"me@example.org\" has no return code",
            ),
            ("/a/ MAYBE", "rcpt_regexp:1: \"MAYBE\" is not one of"),
            ("/a/ DONE", "rcpt_regexp:1: DONE cannot be used here"),
            (
                "^a@ DENY",
                "rcpt_regexp:1: \"^a@\" is neither /regex/ nor an address",
            ),
        ] {
            let e = err(harness("rcpt_regexp").file("rcpt_regexp", rules));
            assert!(e.contains(want), "{rules}: {e}");
        }
        let e = err(harness("rcpt_regexp bogus_arg 1"));
        assert!(
            e.contains("plugins:1: rcpt_regexp: unknown argument \"bogus_arg\""),
            "{e}"
        );
    }
}
