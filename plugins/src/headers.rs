//! # NAME
//!
//! headers - check that a message has a sound header
//!
//! # DESCRIPTION
//!
//! Checks the header of each message once it has arrived:
//!
//! - the message is not empty;
//! - the headers named by `require` (by default only `From`) are present, and not empty;
//! - none of the headers RFC 5322 §3.6 allows only once appears more than once: `Date`,
//!   `From`, `Sender`, `Reply-To`, `To`, `Cc`, `Bcc`, `Message-Id`, `In-Reply-To`,
//!   `References`, `Subject`;
//! - if `future` or `past` is set, the `Date` header (when there is one, and it can be read
//!   as a date) is not further in the future or the past than that many days.
//!
//! A message that fails is refused after DATA, with the first problem found as the reason,
//! for example
//!
//! ```text
//! 552 5.6.0 We require a valid From header
//! 552 5.6.0 Only one Subject header allowed. See RFC 5322, Section 3.6
//! 552 5.6.0 The Date header is too far in the past
//! ```
//!
//! and all problems found are logged. Each problem also lowers the connection's karma score
//! by one.
//!
//! Relay clients, authenticated users and whitelisted hosts or senders are not checked
//! (except for the empty message).
//!
//! # CONFIGURATION
//!
//! ## require *HEADER[,HEADER...]*
//!
//! Default: `From`. The headers a message must have, separated by commas, such as
//! `From,Date` or `From,Date,Subject,Message-Id`. RFC 5322 requires `From` and `Date`,
//! but some automatic senders (bank notices, photo services, bounces) leave out the `Date`,
//! so it is not required unless named here.
//!
//! ## future *DAYS*
//!
//! Default: `0` (not checked). Refuse a message whose `Date` is more than this many days
//! ahead of the server's clock.
//!
//! ## past *DAYS*
//!
//! Default: `0` (not checked). Refuse a message whose `Date` is more than this many days
//! behind the server's clock. Mail can be held up on its way for days (a sender offline, a
//! queue on a server that was down), so leave some margin: a week or more.
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
//! When first enabling the plugin, `reject 0` shows in the log what would have been
//! refused; `reject_type temp` is a cautious next step (senders retry, and `reject 0` lets
//! the retry in if a refusal was wrong).
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
//! - A failed check is refused once, with the first problem as the reply text, through
//!   `reject`/`reject_type`. The Perl plugin also stored every missing or duplicate
//!   header as a deferred (`naughty`) rejection whatever `reject` said, and answered the
//!   missing and duplicate cases with the text `perm` or `temp` instead of a reason.
//! - All problems are checked and logged in one line; the Perl plugin stopped at a bad
//!   date before looking at the other headers.
//! - Dates are read with mail-parser instead of Date::Parse; as before, a `Date` that
//!   cannot be read as a date is not refused by the `future`/`past` checks.
//! - Invalid arguments (a header name with a colon, a negative number of days, an unknown
//!   argument) are configuration errors; the Perl plugin warned and went on.
//!
//! # SEE ALSO
//!
//! qpsmtpd-loop(7), qpsmtpd-bogus_bounce(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use qpsmtpd_core::log::Level;
use qpsmtpd_core::mail_parser::DateTime;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reject, RejectMode, RejectType,
    Setup, Verdict,
};
use std::time::{SystemTime, UNIX_EPOCH};

/// Headers RFC 5322 §3.6 allows at most once.
const SINGULAR: [&str; 11] = [
    "Date",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Message-Id",
    "In-Reply-To",
    "References",
    "Subject",
];

const DAY: i64 = 24 * 3600;

pub const SPEC: PluginSpec = PluginSpec {
    name: "headers",
    factory: new,
    args: &["require", "future", "past", "reject", "reject_type"],
    rejects: true,
    example: "require From,Date future 2 past 30",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let required = match pairs.get("require") {
        None => vec!["From".to_string()],
        Some(list) => list
            .split(',')
            .map(|name| {
                let name = name.trim();
                if is_field_name(name) {
                    Ok(name.to_string())
                } else {
                    Err(setup.error(format!(
                        "require: {name:?} is not a header name (give a comma-separated list)"
                    )))
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let days = |key: &str| {
        pairs
            .value::<u32>(key, 0)
            .map_err(|_| setup.error(format!("{key} must be a number of days (0 or more)")))
    };
    Ok(Box::new(Headers {
        required,
        future: days("future")?,
        past: days("past")?,
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
    }))
}

/// RFC 5322 field name: printable ASCII except the colon.
fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

struct Headers {
    required: Vec<String>,
    /// Days; 0 = not checked.
    future: u32,
    past: u32,
    reject: Reject,
}

/// One thing wrong with a message: what the client is told, what the log says.
struct Problem {
    reply: String,
    log: String,
}

impl Headers {
    /// The problems of the current message's header, in the order checked.
    fn problems(&self, cx: &Context<'_>, now: i64) -> Vec<Problem> {
        let header = &cx.transaction().header;
        let mut found = Vec::new();
        for name in &self.required {
            if header.get(name).is_none_or(|v| v.is_empty()) {
                found.push(Problem {
                    reply: format!("We require a valid {name} header"),
                    log: format!("no {name} header"),
                });
            }
        }
        for name in SINGULAR {
            let n = header.count(name);
            if n > 1 {
                found.push(Problem {
                    reply: format!("Only one {name} header allowed. See RFC 5322, Section 3.6"),
                    log: format!("{n} {name} headers"),
                });
            }
        }
        if self.future == 0 && self.past == 0 {
            return found;
        }
        let Some(date) = header.get("Date") else {
            return found;
        };
        let Some(when) = DateTime::parse_rfc822(&date).filter(DateTime::is_valid) else {
            cx.log(
                Level::Debug,
                format!("Date {date:?} is not a date; not checked"),
            );
            return found;
        };
        let when = when.to_timestamp();
        if self.past > 0 && when < now - i64::from(self.past) * DAY {
            found.push(Problem {
                reply: "The Date header is too far in the past".into(),
                log: format!("Date {date:?} is more than {} days old", self.past),
            });
        }
        if self.future > 0 && when > now + i64::from(self.future) * DAY {
            found.push(Problem {
                reply: "The Date header is too far in the future".into(),
                log: format!(
                    "Date {date:?} is more than {} days in the future",
                    self.future
                ),
            });
        }
        found
    }
}

impl Plugin for Headers {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::DataPost.into()]
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        if cx.transaction().data_size == 0 {
            return self
                .reject
                .apply(cx, "5.6.0 You must send some data first", "empty message");
        }
        if cx.is_immune() {
            cx.skip("immune: relay client, authenticated or whitelisted");
            return Verdict::Declined;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let problems = self.problems(cx, now);
        let Some(first) = problems.first() else {
            cx.pass(format!(
                "{} present, no repeated headers",
                self.required.join(", ")
            ));
            return Verdict::Declined;
        };
        cx.adjust_karma(-(problems.len() as i64));
        let log: Vec<&str> = problems.iter().map(|p| p.log.as_str()).collect();
        let reply = format!("5.6.0 {}", first.reply);
        self.reject.apply(cx, &reply, &log.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use crate::relay::tests::Authenticated;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};

    fn start(line: &str) -> (TestServer, LogCapture) {
        crate::test_support::start(&format!("{line}\nrcpt_ok"))
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "headers")
    }

    fn send(server: &TestServer, header: &str) -> String {
        server.send_message(
            "a@example.org",
            &["postmaster"],
            &format!("{header}\r\n\r\nbody\r\n"),
        )
    }

    /// With no queue plugin loaded, a message that passes is declined by the queue stage.
    const PASSED: &str = "451 4.3.0 Queuing declined or disabled; try again later\r\n";

    /// An RFC 5322 date `days` from now.
    fn date(days: i64) -> String {
        (chrono::Utc::now() + chrono::Duration::days(days))
            .format("%a, %d %b %Y %H:%M:%S +0000")
            .to_string()
    }

    #[test]
    fn requires_from_by_default() {
        let (server, log) = start("headers");
        assert_eq!(send(&server, "From: a@example.org\r\nSubject: hi"), PASSED);
        assert_eq!(
            send(&server, "Subject: no sender"),
            "552 5.6.0 We require a valid From header\r\n"
        );
        assert_eq!(
            send(&server, "From:   \r\nSubject: empty sender"),
            "552 5.6.0 We require a valid From header\r\n"
        );
        assert_eq!(
            summary(&log),
            [
                "INFO pass: From present, no repeated headers",
                "INFO fail: no From header",
                "INFO fail: no From header",
            ]
        );
    }

    #[test]
    fn require_list() {
        let (server, log) = start("headers require From,Date,Message-Id");
        assert_eq!(
            send(
                &server,
                "from: a@example.org\r\ndate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMESSAGE-ID: <1@x>"
            ),
            PASSED
        );
        assert_eq!(
            send(&server, "From: a@example.org"),
            "552 5.6.0 We require a valid Date header\r\n"
        );
        assert_eq!(
            summary(&log)[1],
            "INFO fail: no Date header; no Message-Id header"
        );
    }

    #[test]
    fn singular_headers_appear_once() {
        let (server, log) = start("headers");
        assert_eq!(
            send(
                &server,
                "From: a@example.org\r\nTo: b@example.org\r\nTo: c@example.org\r\nsubject: 1\r\nSubject: 2\r\nSubject: 3"
            ),
            "552 5.6.0 Only one To header allowed. See RFC 5322, Section 3.6\r\n"
        );
        // Repeatable headers may repeat.
        assert_eq!(
            send(
                &server,
                "From: a@example.org\r\nComments: 1\r\nComments: 2\r\nKeywords: x\r\nKeywords: y"
            ),
            PASSED
        );
        assert_eq!(
            summary(&log),
            [
                "INFO fail: 2 To headers; 3 Subject headers",
                "INFO pass: From present, no repeated headers",
            ]
        );
    }

    #[test]
    fn date_range() {
        let (server, log) = start("headers future 2 past 10");
        let with_date = |d: &str| format!("From: a@example.org\r\nDate: {d}");
        assert_eq!(send(&server, &with_date(&date(0))), PASSED);
        assert_eq!(send(&server, &with_date(&date(-9))), PASSED);
        assert_eq!(send(&server, &with_date(&date(1))), PASSED);
        assert_eq!(
            send(&server, &with_date(&date(-11))),
            "552 5.6.0 The Date header is too far in the past\r\n"
        );
        assert_eq!(
            send(&server, &with_date(&date(3))),
            "552 5.6.0 The Date header is too far in the future\r\n"
        );
        // Unreadable dates and missing dates are not refused by the range checks.
        assert_eq!(send(&server, &with_date("sometime last week")), PASSED);
        assert_eq!(send(&server, "From: a@example.org"), PASSED);
        let lines = summary(&log);
        assert!(
            lines[3].starts_with("INFO fail: Date \"")
                && lines[3].ends_with("\" is more than 10 days old"),
            "{lines:?}"
        );
        assert!(
            lines[4].ends_with("\" is more than 2 days in the future"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 7);

        // Without future/past, dates are not looked at.
        let (server, _) = start("headers");
        assert_eq!(
            send(
                &server,
                "From: a@example.org\r\nDate: Thu, 1 Jan 1970 00:00:00 +0000"
            ),
            PASSED
        );
    }

    #[test]
    fn empty_messages_are_refused() {
        let (server, log) = start("headers");
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@example.org>");
        s.command("RCPT TO:<postmaster>");
        assert_eq!(
            s.send(b"DATA\r\n.\r\n"),
            "354 go ahead\r\n552 5.6.0 You must send some data first\r\n"
        );
        assert_eq!(summary(&log), ["INFO fail: empty message"]);
    }

    #[test]
    fn reject_arguments_and_karma() {
        let (server, log) = start("headers reject 0");
        assert_eq!(send(&server, "Subject: 1\r\nSubject: 2"), PASSED);
        assert_eq!(
            summary(&log),
            ["INFO fail, tolerated: no From header; 2 Subject headers"]
        );
        let (server, _) = start("headers reject_type temp");
        assert_eq!(
            send(&server, "Subject: x"),
            "452 4.6.0 We require a valid From header\r\n"
        );
        let (server, _) = start("headers reject naughty");
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        assert_eq!(
            s.mail(
                "a@example.org",
                &["postmaster"],
                "Subject: 1\r\nSubject: 2\r\n\r\nx"
            ),
            PASSED
        );
        let notes = &s.session.connection().notes;
        assert_eq!(
            notes.get_str("naughty"),
            Some("5.6.0 (headers) We require a valid From header")
        );
        assert_eq!(notes.get_int("karma"), Some(-2));
    }

    #[test]
    fn immune_clients_are_not_checked() {
        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "headers\nrcpt_ok")
            .plugin("authenticated", Authenticated)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert_eq!(send(&server, "Subject: no sender"), PASSED);
        assert_eq!(
            summary(&log),
            ["INFO skip: immune: relay client, authenticated or whitelisted"]
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            (
                "headers require From:,Date",
                "\"From:\" is not a header name",
            ),
            ("headers require From,,Date", "\"\" is not a header name"),
            ("headers past -1", "past must be a number of days"),
            ("headers future soon", "future must be a number of days"),
            ("headers require From bogus_arg 1", "unknown argument"),
            ("headers reject_type later", "reject_type must be"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: headers: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
