//! # NAME
//!
//! rcpt_map - answer for the recipients of one domain from a map file
//!
//! # DESCRIPTION
//!
//! A list of the valid users of one domain. For a recipient at the domain given with
//! `domain`, its address is looked up (ignoring case) in the map file given with `file`;
//! the line found says what to do, and a recipient that is not in the map gets the
//! `default` answer (by default a refusal: `550 5.1.1 No such user.`). Recipients at other
//! domains, and recipients without a domain, are left to the other `rcpt` plugins.
//!
//! The answers are qpsmtpd's return codes:
//!
//! - `OK`: the recipient is accepted, and no later `rcpt` plugin is asked (so `rcpt_ok`
//!   need not list the domain);
//! - `DECLINED`: no opinion, the later `rcpt` plugins decide;
//! - `DENY` (`550`), `DENYSOFT` (`450`), `DENY_DISCONNECT` (`550` and the connection is
//!   closed), `DENYSOFT_DISCONNECT` (`421` and closed): the recipient is refused, with the
//!   comment of the line as the reply text (`No such user.` when there is none). The text
//!   may start with its own enhanced status code; otherwise `X.1.1` is used. `DENYHARD` is
//!   accepted as an old name of `DENY_DISCONNECT`.
//!
//! Load one instance per domain, before `rcpt_ok`:
//!
//! ```text
//! rcpt_map domain example.org file map_example_org
//! rcpt_map:net domain example.net file /etc/qpsmtpd/maps/example.net default DENYSOFT
//! ```
//!
//! # CONFIGURATION
//!
//! ## domain *NAME*
//!
//! Required. The domain whose recipients are looked up (compared without regard to case;
//! subdomains are not included).
//!
//! ## file *MAP*
//!
//! Required. The map file: an absolute path, or a name looked up in the configuration
//! directories like any control file. It must exist (it may be empty, leaving every
//! recipient to `default`).
//!
//! ## default *CODE[=MSG]*
//!
//! Default: `DENY=No_such_user.` (refuse with `550 5.1.1 No such user.`). The answer for
//! recipients of the domain that are not in the map: a return code as above, optionally
//! followed by `=` and the reply text, in which every `_` stands for a space (the argument
//! cannot contain blanks): `default DENYSOFT=4.2.1_Mailbox_disabled,_try_later`.
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! They apply to every refusal, from the map or from `default`. With `reject 0` a map can
//! be tried out: refusals are only logged, and the later plugins decide.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: as the code says (`DENY` perm, `DENYSOFT` temp, `DENY_DISCONNECT` disconnect,
//! `DENYSOFT_DISCONNECT` temp_disconnect). How to reject: `perm` with a 5xx reply, `temp`
//! with a 4xx reply, `disconnect` with a 5xx reply and closing the connection,
//! `temp_disconnect` with 421 and closing.
//!
//! When given, it replaces the type of every refusal, whatever its code says: with
//! `reject_type temp` a new map refuses only temporarily until it is trusted.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! The map file: one recipient per line, `address CODE [comment]`, separated by blanks;
//! empty lines and `#` comments are skipped, `$include` works as in every control file.
//!
//! ```text
//! # example.org: who gets mail
//! me@example.org          OK
//! you@example.org         OK
//! info@example.org        DENY      5.1.6 Please write to contact@example.org
//! sales@example.org       DECLINED
//! ```
//!
//! A line without a valid address or code, an address listed twice, or the code `DONE`
//! (this plugin never answers by itself) stops the server from starting, with the file and
//! line named. Lines for addresses at other domains are allowed and never match.
//!
//! The map is read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - qpsmtpd re-read the map in the `pre-connection` hook when the file had changed; here
//!   it is read when the server starts or reloads, like every control file.
//! - A relative `file` is looked up in the configuration directories, not in the current
//!   directory.
//! - Map addresses are compared without regard to case (qpsmtpd lower-cased only the
//!   recipient, so a map line with a capital letter never matched).
//! - Malformed lines and duplicates are errors instead of log warnings; an empty map is
//!   allowed (qpsmtpd refused to start).
//! - `reject`, `reject_type` and the default `X.1.1` enhanced status code are new.
//! - Several instances each keep their own map (qpsmtpd's instances shared one).
//!
//! # SEE ALSO
//!
//! qpsmtpd-rcpt_regexp(7), qpsmtpd-rcpt_ok(7), qpsmtpd-badrcptto(7),
//! qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use crate::badmailfrom::with_enhanced;
use qpsmtpd_core::protocol::address::is_domain;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

pub const SPEC: PluginSpec = PluginSpec {
    name: "rcpt_map",
    factory: new,
    args: &["domain", "file", "default", "reject", "reject_type"],
    rejects: true,
    example: "domain example.org file /dev/null default DENY=No_such_user.",
};

/// The reply text of a refusal without a comment.
pub(crate) const NO_SUCH_USER: &str = "No such user.";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let domain = pairs
        .get("domain")
        .ok_or_else(|| setup.error("domain NAME is required"))?
        .to_ascii_lowercase();
    if !is_domain(&domain) {
        return Err(setup.error(format!("{domain:?} is not a domain name")));
    }
    let file = pairs
        .get("file")
        .ok_or_else(|| setup.error("file MAP is required"))?
        .to_string();
    if setup.config.locate(&file).is_none() {
        return Err(setup.error(format!("map file {file:?} not found")));
    }
    let default = match pairs.get("default") {
        None => Answer {
            action: Action::Refuse(RejectType::Perm),
            message: NO_SUCH_USER.into(),
            place: String::new(),
        },
        Some(arg) => {
            let (code, msg) = arg.split_once('=').unwrap_or((arg, ""));
            let msg = msg.replace('_', " ");
            Answer {
                action: Action::parse(code).map_err(|e| setup.error(format!("default: {e}")))?,
                message: if msg.trim().is_empty() {
                    NO_SUCH_USER.into()
                } else {
                    msg
                },
                place: String::new(),
            }
        }
    };
    let mut map = HashMap::new();
    for line in setup.config.lines(&file)? {
        let (word, answer) =
            Answer::parse_line(&line.text, line.origin.to_string()).map_err(|e| line.error(e))?;
        let key = match Address::parse_mailbox(word) {
            Ok(a) if !a.host().is_empty() => a.address().to_lowercase(),
            _ => return Err(line.error(format!("{word:?} is not an address"))),
        };
        match map.entry(key) {
            Entry::Vacant(v) => {
                v.insert(answer);
            }
            Entry::Occupied(o) => {
                return Err(line.error(format!(
                    "{word} is listed twice (first at {})",
                    o.get().place
                )));
            }
        }
    }
    let reject = setup.reject(&pairs, RejectMode::On, RejectType::Perm)?;
    Ok(Box::new(RcptMap {
        domain,
        file,
        map,
        default,
        reject: Refusal::new(reject, pairs.get("reject_type").is_some()),
    }))
}

struct RcptMap {
    domain: String,
    file: String,
    /// Lower-cased `user@domain` → answer.
    map: HashMap<String, Answer>,
    default: Answer,
    reject: Refusal,
}

impl Plugin for RcptMap {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Rcpt.into()]
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        if rcpt.host().is_empty() {
            cx.skip(format!("{rcpt} has no domain"));
            return Verdict::Declined;
        }
        if !rcpt.host().eq_ignore_ascii_case(&self.domain) {
            cx.skip(format!("{rcpt} is not at {}", self.domain));
            return Verdict::Declined;
        }
        match self.map.get(&rcpt.address().to_lowercase()) {
            Some(a) => self
                .reject
                .answer(cx, a, &format!("{rcpt} listed at {}", a.place)),
            None => self.reject.answer(
                cx,
                &self.default,
                &format!("{rcpt} not in {}, default", self.file),
            ),
        }
    }
}

/// What a line (or the default) says to do with a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// `OK`: accept.
    Accept,
    /// `DECLINED`: leave it to the later plugins.
    Pass,
    /// A `DENY` code: refuse, in this way.
    Refuse(RejectType),
}

impl Action {
    /// Parses a qpsmtpd return code name.
    pub(crate) fn parse(code: &str) -> Result<Action, String> {
        Ok(match code.to_ascii_uppercase().as_str() {
            "OK" => Action::Accept,
            "DECLINED" => Action::Pass,
            "DENY" => Action::Refuse(RejectType::Perm),
            "DENYSOFT" => Action::Refuse(RejectType::Temp),
            "DENY_DISCONNECT" | "DENYHARD" => Action::Refuse(RejectType::Disconnect),
            "DENYSOFT_DISCONNECT" => Action::Refuse(RejectType::TempDisconnect),
            "DONE" => {
                return Err("DONE cannot be used here: this plugin never answers by itself".into());
            }
            _ => {
                return Err(format!(
                    "{code:?} is not one of OK, DECLINED, DENY, DENYSOFT, DENY_DISCONNECT, \
                     DENYSOFT_DISCONNECT"
                ));
            }
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Accept => "OK",
            Action::Pass => "DECLINED",
            Action::Refuse(RejectType::Perm) => "DENY",
            Action::Refuse(RejectType::Temp) => "DENYSOFT",
            Action::Refuse(RejectType::Disconnect) => "DENY_DISCONNECT",
            Action::Refuse(RejectType::TempDisconnect) => "DENYSOFT_DISCONNECT",
        }
    }
}

/// An action with its reply text and where it was configured.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub action: Action,
    pub message: String,
    /// `path:line`, for log lines.
    pub place: String,
}

impl Answer {
    /// Parses `WORD CODE [comment]`; returns the word and the answer.
    pub(crate) fn parse_line(text: &str, place: String) -> Result<(&str, Answer), String> {
        let text = text.trim();
        let (word, rest) = text
            .split_once(char::is_whitespace)
            .map_or((text, ""), |(w, r)| (w, r.trim_start()));
        let (code, comment) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(c, m)| (c, m.trim()));
        if code.is_empty() {
            return Err(format!("{word:?} has no return code"));
        }
        Ok((
            word,
            Answer {
                action: Action::parse(code)?,
                message: if comment.is_empty() {
                    NO_SUCH_USER.into()
                } else {
                    comment.to_string()
                },
                place,
            },
        ))
    }
}

/// The `reject` settings of a plugin whose refusals take their type from the code of the
/// line, unless `reject_type` was given.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refusal {
    reject: Reject,
    /// Was `reject_type` given (and so replaces every line's type)?
    forced: bool,
}

impl Refusal {
    pub(crate) fn new(reject: Reject, forced: bool) -> Refusal {
        Refusal { reject, forced }
    }

    /// Carries out `answer`, logging the one summary line with `what` (the recipient and
    /// where its answer comes from).
    pub(crate) fn answer(&self, cx: &mut Context<'_>, answer: &Answer, what: &str) -> Verdict {
        let what = format!("{what}: {}", answer.action.name());
        match answer.action {
            Action::Accept => {
                cx.pass(what);
                Verdict::ok()
            }
            Action::Pass => {
                cx.skip(what);
                Verdict::Declined
            }
            Action::Refuse(kind) => {
                let reject = Reject {
                    mode: self.reject.mode,
                    kind: if self.forced { self.reject.kind } else { kind },
                };
                reject.apply(cx, &with_enhanced("5.1.1", &answer.message), &what)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};

    const MAP: &str = "# example.org\n\
                       me@example.org          OK\n\
                       You@Example.org         ok\n\
                       info@example.org        DENY      5.1.6 Please write to contact@example.org\n\
                       sales@example.org       DECLINED\n\
                       busy@example.org        DENYSOFT  Mailbox busy\n\
                       gone@example.org        DENY\n\
                       other@example.net       OK";

    fn harness(args: &str) -> Harness {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("rcpt_map {args}\nrcpt_ok"))
            .file("map_example_org", MAP)
            .file("rcpthosts", "example.net")
    }

    fn build(args: &str) -> TestServer {
        harness(args).build().unwrap()
    }

    fn in_transaction(server: &TestServer) -> TestSession {
        let mut s = server.session();
        s.begin("a@sender.example");
        s
    }

    fn replies(server: &TestServer, rcpts: &[&str]) -> Vec<String> {
        in_transaction(server).rcpt_replies(rcpts)
    }

    fn ok(rcpt: &str) -> String {
        format!("250 2.1.5 <{rcpt}>, recipient ok\r\n")
    }

    const RELAYING_DENIED: &str = "550 5.7.1 Relaying denied\r\n";

    #[test]
    fn answers_from_the_map_and_the_default() {
        let server = build("domain Example.ORG file map_example_org");
        let cases = [
            ("me@example.org", ok("me@example.org")),
            ("ME@EXAMPLE.ORG", ok("ME@EXAMPLE.ORG")),
            ("you@example.org", ok("you@example.org")),
            (
                "info@example.org",
                "550 5.1.6 Please write to contact@example.org\r\n".into(),
            ),
            // DECLINED: rcpt_ok decides, and example.org is not in rcpthosts.
            ("sales@example.org", RELAYING_DENIED.into()),
            ("busy@example.org", "450 4.1.1 Mailbox busy\r\n".into()),
            ("gone@example.org", "550 5.1.1 No such user.\r\n".into()),
            ("nobody@example.org", "550 5.1.1 No such user.\r\n".into()),
            ("me@sub.example.org", RELAYING_DENIED.into()),
            // Other domains are left to the other plugins, even when the map lists them.
            ("other@example.net", ok("other@example.net")),
            ("nobody@example.net", ok("nobody@example.net")),
            ("postmaster", ok("postmaster")),
        ];
        let rcpts: Vec<&str> = cases.iter().map(|(r, _)| *r).collect();
        for ((rcpt, want), got) in cases.iter().zip(replies(&server, &rcpts)) {
            assert_eq!(&got, want, "RCPT TO:<{rcpt}>");
        }
    }

    #[test]
    fn default_argument() {
        let server = build(
            "domain example.org file map_example_org default DENYSOFT=4.2.1_Mailbox_disabled,_try_later",
        );
        assert_eq!(
            replies(&server, &["nobody@example.org", "gone@example.org"]),
            [
                "450 4.2.1 Mailbox disabled, try later\r\n",
                "550 5.1.1 No such user.\r\n"
            ]
        );
        let server = build("domain example.org file map_example_org default OK");
        assert_eq!(
            replies(&server, &["nobody@example.org"]),
            [ok("nobody@example.org")]
        );
        let server = build("domain example.org file map_example_org default deny_disconnect");
        let mut s = in_transaction(&server);
        assert_eq!(
            s.command("RCPT TO:<nobody@example.org>"),
            "550 5.1.1 No such user.\r\n"
        );
        assert!(s.is_closed());
    }

    #[test]
    fn reject_settings_override_the_codes() {
        let server = build("domain example.org file map_example_org reject_type temp");
        assert_eq!(
            replies(
                &server,
                &["gone@example.org", "busy@example.org", "me@example.org"]
            ),
            [
                "450 4.1.1 No such user.\r\n".to_string(),
                "450 4.1.1 Mailbox busy\r\n".to_string(),
                ok("me@example.org")
            ]
        );
        let log = LogCapture::default();
        let server = harness("domain example.org file map_example_org reject 0")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert_eq!(
            replies(
                &server,
                &[
                    "gone@example.org",
                    "me@example.org",
                    "sales@example.org",
                    "x@example.net",
                    "nobody@example.org"
                ]
            ),
            [
                RELAYING_DENIED.to_string(),
                ok("me@example.org"),
                RELAYING_DENIED.to_string(),
                ok("x@example.net"),
                RELAYING_DENIED.to_string(),
            ]
        );
        let map = server.dir().join("config/map_example_org");
        let map = map.display();
        assert_eq!(
            log.of_plugin("rcpt_map"),
            [
                format!("INFO fail, tolerated: <gone@example.org> listed at {map}:7: DENY"),
                format!("INFO pass: <me@example.org> listed at {map}:2: OK"),
                format!("INFO skip: <sales@example.org> listed at {map}:5: DECLINED"),
                "INFO skip: <x@example.net> is not at example.org".to_string(),
                "INFO fail, tolerated: <nobody@example.org> not in map_example_org, default: DENY"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn absolute_map_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.org.map");
        std::fs::write(&path, "a@example.org OK\n").unwrap();
        let server = build(&format!("domain example.org file {}", path.display()));
        assert_eq!(
            replies(&server, &["a@example.org", "b@example.org"]),
            [
                ok("a@example.org"),
                "550 5.1.1 No such user.\r\n".to_string()
            ]
        );
    }

    #[test]
    fn one_instance_per_domain() {
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file(
                "plugins",
                "rcpt_map domain example.org file map_example_org\n\
                 rcpt_map:net domain example.net file net.map default DENYSOFT\n\
                 rcpt_ok",
            )
            .file("map_example_org", MAP)
            .file("net.map", "info@example.net OK")
            .build()
            .unwrap();
        assert_eq!(
            replies(
                &server,
                &[
                    "me@example.org",
                    "info@example.net",
                    "me@example.net",
                    "x@example.org"
                ]
            ),
            [
                ok("me@example.org"),
                ok("info@example.net"),
                "450 4.1.1 No such user.\r\n".to_string(),
                "550 5.1.1 No such user.\r\n".to_string(),
            ]
        );
    }

    #[test]
    fn bad_configuration() {
        let err = |h: Harness| h.build().expect_err("should be refused").to_string();
        let cases = [
            (
                "file map_example_org",
                "plugins:1: rcpt_map: domain NAME is required",
            ),
            (
                "domain example.org",
                "plugins:1: rcpt_map: file MAP is required",
            ),
            (
                "domain example.org file nothere",
                "plugins:1: rcpt_map: map file \"nothere\" not found",
            ),
            (
                "domain exa$mple.org file map_example_org",
                "is not a domain name",
            ),
            (
                "domain example.org file map_example_org default MAYBE",
                "default: \"MAYBE\" is not one of",
            ),
            (
                "domain example.org file map_example_org default DONE",
                "DONE cannot be used here",
            ),
            (
                "domain example.org file map_example_org bogus_arg 1",
                "unknown argument \"bogus_arg\"",
            ),
        ];
        for (args, want) in cases {
            let e = err(harness(args));
            assert!(e.contains(want), "{args}: {e}");
        }
        for (map, want) in [
            (
                "a@example.org OK\n\nb@example.org",
                "map:3: \"b@example.org\" has no return code",
            ),
            ("a@example.org MAYBE", "map:1: \"MAYBE\" is not one of"),
            ("example.org OK", "map:1: \"example.org\" is not an address"),
            (
                "a@example.org OK\nA@example.org DENY",
                "map:2: A@example.org is listed twice (first at ",
            ),
        ] {
            let e = err(harness("domain example.org file map").file("map", map));
            assert!(e.contains(want), "{map}: {e}");
        }
    }
}
