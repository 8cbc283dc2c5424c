//! # NAME
//!
//! badmailfrom - refuse senders listed in the badmailfrom file
//!
//! # DESCRIPTION
//!
//! qmail-smtpd's `badmailfrom` check, with reasons and patterns. When a client gives its
//! envelope sender (`MAIL FROM`), the sender is compared with the entries of the
//! `badmailfrom` file; the first entry that matches refuses the sender, by default with
//!
//! ```text
//! 550 5.7.1 Your envelope sender is in my badmailfrom list
//! ```
//!
//! or with the reason written on the entry's line. A sender that matches no entry is passed
//! on to the other plugins. Each match also lowers the connection's karma by one.
//!
//! Not checked: the null sender `<>` (bounces must get through), a sender without a domain,
//! and clients that are immune to content checks (relay clients, authenticated users,
//! whitelisted hosts and senders).
//!
//! **Per-recipient lists.** A recipient may have a `badmailfrom` list of its own, supplied
//! by a plugin on the `user_config` hook (see qpsmtpd-user_config(7)). For each recipient
//! the plugin asks the `user_config` plugins for that recipient's own `badmailfrom`; when
//! the recipient has none (or no `user_config` plugin is loaded), nothing more is done,
//! since the sender was checked against the server-wide list already. Otherwise the sender is checked against the recipient's own list,
//! and a match refuses that recipient only, with the same reply, reject settings and
//! karma as a match at `MAIL`; the other recipients of the message are not affected. A
//! malformed line in a recipient's list is skipped and reported in the log (an `error`
//! line when nothing else matched), never refusing mail on its own.
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
//! They apply to the refusal of a sender (at `MAIL`) and of a recipient whose own list
//! names the sender (at `RCPT`).
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `badmailfrom`: one entry per line, the entry first, then optionally blanks and the
//! reason to give the client instead of the default text (it may start with its own
//! enhanced status code, as in `5.7.0 Go away`). Empty lines and `#` comments are skipped.
//! An entry is one of:
//!
//! - `user@example.com`: exactly this sender;
//! - `@example.com`: every sender at exactly this domain (not its subdomains);
//! - `/regex/`: a regular expression between slashes;
//! - any other word that contains a character other than letters, digits and
//!   `@ . - _ + = ' [ ] :` is a regular expression too, written without slashes (the
//!   form qpsmtpd's pattern lines use): `^bounce-.*@.*\.example\.net$`, `%` (the percent
//!   hack), `!` (bang paths).
//!
//! Comparisons ignore case. A regular expression is searched for in the sender's
//! `user@domain` (without angle brackets), so anchor it with `^` and `$` to match the whole
//! address; it cannot contain blanks (use `\s`). The syntax is that of Rust's `regex`
//! crate, which covers the Perl syntax such lists use except look-around and
//! back-references. A word of address characters without an `@`, a bad domain, or a
//! regular expression that does not compile stops the server from starting, with the file
//! and line named.
//!
//! ```text
//! # entry                          reason (optional)
//! spammer@example.com
//! @spam.example                    We do not take mail from spam.example
//! ^bounce-.*@.*\.mailer\.example$  Your VERP does not fool me
//! /^[0-9]+@example\.org$/
//! ```
//!
//! The file is read once, when the server starts (or reloads). Per-recipient lists have the
//! same syntax and are read for every recipient.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Which lines are patterns is decided by the rule above. qpsmtpd took a line as a
//!   pattern when it contained one of `/ ^ $ * + ! % ? \`, so `joe+list@example.com` was a
//!   (broken) regular expression there and is a plain address here; write `/…/` to force a
//!   regular expression.
//! - Patterns ignore case (qpsmtpd's were matched case-sensitively against the lower-cased
//!   address, so a pattern with a capital letter never matched).
//! - A malformed line is an error at startup instead of a warning at every `MAIL`.
//! - Per-recipient lists through `user_config` are new.
//!
//! # SEE ALSO
//!
//! qpsmtpd-badrcptto(7), qpsmtpd-badmailfromto(7), qpsmtpd-user_config(7),
//! qpsmtpd-naughty(7), qpsmtpd-plugins(7), qmail-smtpd(8)

use qpsmtpd_core::config::ConfigLine;
use qpsmtpd_core::protocol::Enhanced;
use qpsmtpd_core::protocol::address::{is_address_literal, is_domain};
use qpsmtpd_core::{
    Address, Config, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};
use regex::{Regex, RegexBuilder};

pub const SPEC: PluginSpec = PluginSpec {
    name: "badmailfrom",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject 1 reject_type perm",
};

/// The reply text when the matching line gives no reason.
const DEFAULT_REASON: &str = "Your envelope sender is in my badmailfrom list";

/// The control file (and the per-recipient setting).
const FILE: &str = "badmailfrom";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let lines = setup.config.lines(FILE)?;
    Ok(Box::new(BadMailFrom {
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
        list: AddressList::from_lines(&lines, Syntax::Mixed)?,
    }))
}

struct BadMailFrom {
    reject: Reject,
    list: AddressList,
}

impl BadMailFrom {
    /// Refuses (by the reject settings) for a matching entry.
    fn refuse(&self, cx: &mut Context<'_>, entry: &Entry, log_msg: &str) -> Verdict {
        cx.adjust_karma(-1);
        let reason = entry.reason.as_deref().unwrap_or(DEFAULT_REASON);
        self.reject.apply(cx, reason, log_msg)
    }
}

impl Plugin for BadMailFrom {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Mail.into(), Hook::Rcpt.into()]
    }

    fn mail(&self, cx: &mut Context<'_>, sender: &Address, _: &Params) -> Verdict {
        if let Some(why) = unchecked_sender(cx, sender) {
            cx.skip(why);
            return Verdict::Declined;
        }
        match self.list.find(sender) {
            Some(entry) => {
                let why = format!("{sender} matches {} at {}", entry.word, entry.place);
                self.refuse(cx, entry, &why)
            }
            None => {
                cx.pass(format!("{sender} is not in {FILE}"));
                Verdict::Declined
            }
        }
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        let sender = cx.transaction().sender.clone().unwrap_or_default();
        if let Some(why) = unchecked_sender(cx, &sender) {
            cx.skip(why);
            return Verdict::Declined;
        }
        let Some(values) = cx.user_config_own(rcpt, FILE) else {
            cx.skip(format!("{rcpt} has no {FILE} list of its own"));
            return Verdict::Declined;
        };
        let (list, problems) = AddressList::from_values(&values, Syntax::Mixed);
        match list.find(&sender) {
            Some(entry) => {
                for p in &problems {
                    cx.log(qpsmtpd_core::Level::Debug, format!("{rcpt}'s {FILE}: {p}"));
                }
                let why = format!(
                    "{sender} matches {} in {rcpt}'s {FILE} ({})",
                    entry.word, entry.place
                );
                self.refuse(cx, entry, &why)
            }
            None if !problems.is_empty() => {
                cx.error(format!(
                    "{rcpt}'s {FILE}: {} (the other entries do not match {sender})",
                    problems.join("; ")
                ));
                Verdict::Declined
            }
            None => {
                cx.pass(format!("{sender} is not in {rcpt}'s {FILE}"));
                Verdict::Declined
            }
        }
    }
}

/// Why a sender is not checked at all, if it is not.
fn unchecked_sender(cx: &Context<'_>, sender: &Address) -> Option<String> {
    if let Some(why) = immunity(cx) {
        return Some(format!("immune: {why}"));
    }
    if sender.is_null() {
        return Some("null sender".into());
    }
    if sender.host().is_empty() {
        return Some(format!("{sender} has no domain"));
    }
    None
}

/// Why the client is immune to content checks, if it is (see `Context::is_immune`).
pub(crate) fn immunity(cx: &Context<'_>) -> Option<&'static str> {
    if !cx.is_immune() {
        return None;
    }
    let conn = cx.connection();
    Some(if conn.relay_client {
        "relay client"
    } else if conn.auth.is_some() {
        "authenticated"
    } else {
        "whitelisted"
    })
}

/// `msg`, with `code` (an enhanced status code such as `5.1.1`) in front unless the text
/// starts with one of its own.
pub(crate) fn with_enhanced(code: &str, msg: &str) -> String {
    let has_own = msg
        .split_whitespace()
        .next()
        .and_then(Enhanced::parse)
        .is_some();
    if has_own {
        msg.to_string()
    } else {
        format!("{code} {msg}")
    }
}

/// How the entries of a list file are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// Addresses, `@domain`s and patterns (`badmailfrom`, `badrcptto`): see the manual.
    Mixed,
    /// Every entry is a regular expression, as written (`badrcptto_patterns`).
    Patterns,
}

/// What an entry matches.
#[derive(Debug)]
pub(crate) enum Matcher {
    /// `user@domain`, lower-cased.
    Address(String),
    /// `@domain`: every address at the domain (lower-cased, without the `@`).
    Domain(String),
    /// A regular expression, searched for in the lower-cased `user@domain`.
    Pattern(Regex),
}

impl Matcher {
    /// Parses an entry word.
    pub(crate) fn parse(word: &str, syntax: Syntax) -> Result<Matcher, String> {
        if syntax == Syntax::Patterns {
            return pattern(word);
        }
        if let Some(inner) = word
            .strip_prefix('/')
            .and_then(|w| w.strip_suffix('/'))
            .filter(|w| !w.is_empty())
        {
            return pattern(inner);
        }
        if !word.chars().all(is_address_char) {
            return pattern(word);
        }
        let lower = word.to_lowercase();
        let Some((user, domain)) = lower.rsplit_once('@') else {
            return Err(format!(
                "{word:?} is neither user@domain, @domain nor a pattern"
            ));
        };
        if user.contains('@') || !(is_domain(domain) || is_address_literal(domain)) {
            return Err(format!("{word:?} is not a valid user@domain or @domain"));
        }
        Ok(if user.is_empty() {
            Matcher::Domain(domain.to_string())
        } else {
            Matcher::Address(lower)
        })
    }

    /// Does the address `full` (lower-cased `user@domain`) with domain `domain` match?
    pub(crate) fn matches(&self, full: &str, domain: &str) -> bool {
        match self {
            Matcher::Address(a) => a == full,
            Matcher::Domain(d) => d == domain,
            Matcher::Pattern(re) => re.is_match(full),
        }
    }
}

/// Characters of the plain entries: anything else makes a word a regular expression.
fn is_address_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@.-_+='[]:".contains(c)
}

/// Compiles a case-insensitive regular expression.
pub(crate) fn compile(re: &str) -> Result<Regex, String> {
    RegexBuilder::new(re)
        .case_insensitive(true)
        .build()
        .map_err(|e| {
            // The parser's message spans several lines; its last one says what is wrong.
            let detail = e.to_string();
            let detail = detail.lines().last().unwrap_or_default().trim().to_string();
            format!("bad regular expression {re:?}: {detail}")
        })
}

fn pattern(re: &str) -> Result<Matcher, String> {
    compile(re).map(Matcher::Pattern)
}

/// The lower-cased `user@domain` and domain of an address, as entries are compared.
pub(crate) fn comparable(addr: &Address) -> (String, String) {
    let domain = addr.host().to_lowercase();
    (format!("{}@{domain}", addr.user().to_lowercase()), domain)
}

/// One entry of a list.
#[derive(Debug)]
pub(crate) struct Entry {
    pub matcher: Matcher,
    /// The entry as written, for log lines.
    pub word: String,
    /// The reply text given on the line, if any.
    pub reason: Option<String>,
    /// Where it was written (`path:line`, or `entry N` for per-recipient values).
    pub place: String,
}

impl Entry {
    /// Parses `entry [reason]`.
    pub(crate) fn parse(text: &str, syntax: Syntax, place: String) -> Result<Entry, String> {
        let text = text.trim();
        let (word, reason) = match text.split_once(char::is_whitespace) {
            Some((w, r)) => (w, Some(r.trim().to_string())),
            None => (text, None),
        };
        Ok(Entry {
            matcher: Matcher::parse(word, syntax)?,
            word: word.to_string(),
            reason: reason.filter(|r| !r.is_empty()),
            place,
        })
    }
}

/// A list of sender or recipient entries, checked in order.
#[derive(Debug, Default)]
pub(crate) struct AddressList(Vec<Entry>);

impl AddressList {
    /// Reads the control file `name`.
    pub(crate) fn load(
        config: &Config,
        name: &str,
        syntax: Syntax,
    ) -> Result<AddressList, ConfigError> {
        AddressList::from_lines(&config.lines(name)?, syntax)
    }

    /// Parses lines of a control file; a bad line is an error naming it.
    pub(crate) fn from_lines(
        lines: &[ConfigLine],
        syntax: Syntax,
    ) -> Result<AddressList, ConfigError> {
        lines
            .iter()
            .map(|l| Entry::parse(&l.text, syntax, l.origin.to_string()).map_err(|e| l.error(e)))
            .collect::<Result<_, _>>()
            .map(AddressList)
    }

    /// Parses values handed over by a `user_config` plugin: bad entries are left out and
    /// described in the second list.
    pub(crate) fn from_values(values: &[String], syntax: Syntax) -> (AddressList, Vec<String>) {
        let mut list = AddressList::default();
        let mut problems = Vec::new();
        let lines = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && !v.starts_with('#'));
        for (n, text) in lines.enumerate() {
            match Entry::parse(text, syntax, format!("entry {}", n + 1)) {
                Ok(e) => list.0.push(e),
                Err(e) => problems.push(format!("entry {}: {e}", n + 1)),
            }
        }
        (list, problems)
    }

    /// Appends the entries of another list.
    pub(crate) fn extend(&mut self, other: AddressList) {
        self.0.extend(other.0);
    }

    /// The first entry matching `addr`.
    pub(crate) fn find(&self, addr: &Address) -> Option<&Entry> {
        let (full, domain) = comparable(addr);
        self.0.iter().find(|e| e.matcher.matches(&full, &domain))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};

    const LIST: &str = "# senders we refuse\n\
                        spammer@example.com\n\
                        @Spam.Example   We do not take mail from spam.example\n\
                        ^bounce-.*@.*\\.mailer\\.example$  5.7.0 Your VERP does not fool me\n\
                        /^[0-9]+@example\\.org$/\n\
                        joe+list@example.net\n\
                        %";

    const REFUSED: &str = "550 5.7.1 Your envelope sender is in my badmailfrom list\r\n";

    fn harness(plugins: &str, list: &str) -> Harness {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", plugins)
            .file("badmailfrom", list)
            .file("rcpthosts", "test.example")
    }

    fn server(plugins: &str, list: &str) -> TestServer {
        harness(plugins, list).build().unwrap()
    }

    fn greeted(server: &TestServer) -> TestSession {
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("EHLO client.example").starts_with("250"));
        s
    }

    fn mail_reply(server: &TestServer, sender: &str) -> String {
        greeted(server).command(&format!("MAIL FROM:{sender}"))
    }

    fn accepted(sender: &str) -> String {
        format!("250 2.1.0 {sender}, sender OK - how exciting to get mail from you!\r\n")
    }

    #[test]
    fn entry_kinds() {
        let m = |w: &str| Matcher::parse(w, Syntax::Mixed);
        assert!(matches!(m("Joe@Example.COM"), Ok(Matcher::Address(a)) if a == "joe@example.com"));
        assert!(matches!(m("@Example.COM"), Ok(Matcher::Domain(d)) if d == "example.com"));
        assert!(matches!(m("joe+x@example.com"), Ok(Matcher::Address(_))));
        assert!(matches!(m("@[192.0.2.1]"), Ok(Matcher::Domain(_))));
        assert!(matches!(m("/joe+x@example.com/"), Ok(Matcher::Pattern(_))));
        assert!(matches!(m("^joe@"), Ok(Matcher::Pattern(_))));
        assert!(m("example.com").unwrap_err().contains("neither"));
        assert!(m("a@b@example.com").is_err());
        assert!(m("joe@exa_mple..com").is_err());
        assert!(m("^(joe@").unwrap_err().contains("bad regular expression"));
        assert!(matches!(
            Matcher::parse("example.com", Syntax::Patterns),
            Ok(Matcher::Pattern(_))
        ));
    }

    #[test]
    fn refuses_listed_senders_with_their_reasons() {
        let server = server("badmailfrom", LIST);
        let cases = [
            ("<spammer@example.com>", REFUSED.to_string()),
            ("<SPAMMER@Example.Com>", REFUSED.to_string()),
            ("<friend@example.com>", accepted("<friend@example.com>")),
            (
                "<anyone@spam.example>",
                "550 5.7.1 We do not take mail from spam.example\r\n".to_string(),
            ),
            (
                "<anyone@sub.spam.example>",
                accepted("<anyone@sub.spam.example>"),
            ),
            (
                "<Bounce-123@out.Mailer.example>",
                "550 5.7.0 Your VERP does not fool me\r\n".to_string(),
            ),
            ("<12345@example.org>", REFUSED.to_string()),
            ("<a12345@example.org>", accepted("<a12345@example.org>")),
            ("<joe+list@example.net>", REFUSED.to_string()),
            ("<joeelist@example.net>", accepted("<joeelist@example.net>")),
            ("<\"a%b\"@example.net>", REFUSED.to_string()),
            ("<>", accepted("<>")),
        ];
        for (sender, want) in cases {
            assert_eq!(mail_reply(&server, sender), want, "MAIL FROM:{sender}");
        }
    }

    #[test]
    fn reject_settings_and_karma() {
        let log = LogCapture::default();
        let tolerant = harness("badmailfrom reject 0", LIST)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = greeted(&tolerant);
        assert_eq!(
            s.command("MAIL FROM:<spammer@example.com>"),
            accepted("<spammer@example.com>")
        );
        assert_eq!(s.session.connection().notes.get_int("karma"), Some(-1));
        assert!(log.contains("fail, tolerated: <spammer@example.com> matches"));

        let temp = server("badmailfrom reject_type temp", LIST);
        assert_eq!(
            mail_reply(&temp, "<spammer@example.com>"),
            "450 4.7.1 Your envelope sender is in my badmailfrom list\r\n"
        );
        let disconnect = server("badmailfrom reject_type disconnect", LIST);
        let mut s = greeted(&disconnect);
        assert_eq!(s.command("MAIL FROM:<spammer@example.com>"), REFUSED);
        assert!(s.is_closed());

        let naughty_server = server("badmailfrom reject naughty", LIST);
        let mut s = greeted(&naughty_server);
        assert_eq!(
            s.command("MAIL FROM:<spammer@example.com>"),
            accepted("<spammer@example.com>")
        );
        let (text, kind) = naughty(&s).expect("deferred rejection");
        assert_eq!(text, format!("(badmailfrom) {DEFAULT_REASON}"));
        assert_eq!(kind, RejectType::Perm);
    }

    /// The deferred rejection stored by `reject naughty`.
    pub(crate) fn naughty(s: &TestSession) -> Option<(String, RejectType)> {
        let notes = &s.session.connection().notes;
        Some((
            notes.get_str("naughty")?.to_string(),
            RejectType::parse(notes.get_str("naughty_reject_type")?)?,
        ))
    }

    #[test]
    fn immune_clients_are_not_checked() {
        let log = LogCapture::default();
        let server = harness("relay\nbadmailfrom", LIST)
            .file("relayclients", "192.0.2.")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = server.session_from(ConnectionInfo::from_ip([192, 0, 2, 7].into()));
        s.connect();
        s.command("HELO client.example");
        assert_eq!(
            s.command("MAIL FROM:<spammer@example.com>"),
            accepted("<spammer@example.com>")
        );
        assert_eq!(
            log.of_plugin("badmailfrom"),
            ["INFO skip: immune: relay client"]
        );
    }

    #[test]
    fn logs_one_line_per_decision() {
        let log = LogCapture::default();
        let server = harness("badmailfrom\nrcpt_ok", LIST)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = greeted(&server);
        s.command("MAIL FROM:<spammer@example.com>");
        s.command("MAIL FROM:<>");
        s.command("RCPT TO:<a@test.example>");
        s.command("MAIL FROM:<friend@example.com>");
        s.command("RCPT TO:<a@test.example>");
        let file = server.dir().join("config/badmailfrom");
        assert_eq!(
            log.of_plugin("badmailfrom"),
            [
                format!(
                    "INFO fail: <spammer@example.com> matches spammer@example.com at {}:2",
                    file.display()
                ),
                "INFO skip: null sender".to_string(),
                "INFO skip: null sender".to_string(),
                "INFO pass: <friend@example.com> is not in badmailfrom".to_string(),
                "INFO skip: <a@test.example> has no badmailfrom list of its own".to_string(),
            ]
        );
    }

    /// Hands out a per-recipient `badmailfrom` for `picky@test.example`.
    struct UserLists;
    impl Plugin for UserLists {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::UserConfig.into()]
        }
        fn user_config(
            &self,
            _: &mut Context<'_>,
            rcpt: &Address,
            name: &str,
        ) -> Option<Vec<String>> {
            match (rcpt.user(), name) {
                ("picky", "badmailfrom") => Some(vec![
                    "# mine".into(),
                    "@example.com  5.7.1 picky does not want mail from example.com".into(),
                    "^(broken".into(),
                ]),
                ("empty", "badmailfrom") => Some(vec![]),
                _ => None,
            }
        }
    }

    #[test]
    fn per_recipient_lists_refuse_only_their_recipient() {
        let log = LogCapture::default();
        let server = harness("badmailfrom\nrcpt_ok", "spammer@example.com")
            .plugin("lists", UserLists)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = greeted(&server);
        assert!(
            s.command("MAIL FROM:<friend@example.com>")
                .starts_with("250 ")
        );
        assert_eq!(
            s.command("RCPT TO:<picky@test.example>"),
            "550 5.7.1 picky does not want mail from example.com\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<other@test.example>"),
            "250 2.1.5 <other@test.example>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<empty@test.example>"),
            "250 2.1.5 <empty@test.example>, recipient ok\r\n"
        );
        assert!(
            s.command("MAIL FROM:<friend@example.net>")
                .starts_with("250 ")
        );
        assert_eq!(
            s.command("RCPT TO:<picky@test.example>"),
            "250 2.1.5 <picky@test.example>, recipient ok\r\n"
        );
        assert_eq!(s.session.connection().notes.get_int("karma"), Some(-1));
        let lines = log.of_plugin("badmailfrom");
        assert_eq!(
            lines,
            [
                "INFO pass: <friend@example.com> is not in badmailfrom",
                "DEBUG <picky@test.example>'s badmailfrom: entry 2: bad regular expression \"^(broken\": error: unclosed group",
                "INFO fail: <friend@example.com> matches @example.com in <picky@test.example>'s badmailfrom (entry 1)",
                "INFO skip: <other@test.example> has no badmailfrom list of its own",
                "INFO pass: <friend@example.com> is not in <empty@test.example>'s badmailfrom",
                "INFO pass: <friend@example.net> is not in badmailfrom",
                "ERROR error: <picky@test.example>'s badmailfrom: entry 2: bad regular expression \"^(broken\": error: unclosed group (the other entries do not match <friend@example.net>)",
            ]
        );
    }

    #[test]
    fn bad_configuration_names_file_and_line() {
        let err = |h: Harness| h.build().expect_err("should be refused").to_string();
        let e = err(harness("badmailfrom", "a@example.com\n\nexample.com"));
        assert!(
            e.ends_with(
                "badmailfrom:3: \"example.com\" is neither user@domain, @domain nor a pattern"
            ),
            "{e}"
        );
        let e = err(harness("badmailfrom", "# x\n^(a@example.com  reason"));
        assert!(
            e.contains("badmailfrom:2: bad regular expression \"^(a@example.com\""),
            "{e}"
        );
        for line in [
            "badmailfrom bogus_arg 1",
            "badmailfrom reject maybe",
            "badmailfrom reject",
        ] {
            let e = err(harness(line, ""));
            assert!(e.contains("plugins:1: badmailfrom: "), "{line}: {e}");
        }
    }
}
