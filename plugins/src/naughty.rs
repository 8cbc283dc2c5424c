//! # NAME
//!
//! naughty - deliver the rejections other plugins deferred
//!
//! # DESCRIPTION
//!
//! A plugin loaded with `reject naughty` does not refuse the client when its check fails:
//! it logs `fail, naughty: ...` and stores its refusal in the connection (the `naughty`
//! and `naughty_reject_type` connection notes). This plugin delivers the stored refusal at
//! one chosen stage of the session, the same for every plugin. That has several uses:
//!
//! - clients blocked by a connection check (`dnsbl`, `karma`, `fcrdns`, ...) can still
//!   authenticate before the refusal comes, so roaming users on listed networks can send
//!   mail (authenticated clients are immune, see below);
//! - once a connection is known to be bad, later plugins may skip their costly checks;
//! - moving every refusal to `data_post` lets content filters see (and learn from) the
//!   messages that would have been refused.
//!
//! The refusal is delivered at the stage named by `reject`, and again at `data_post`, the
//! last chance, in case a plugin that answers earlier in the stage (such as `rcpt_ok`,
//! which accepts recipients) kept this one from running, or a plugin stored its refusal
//! after the stage had passed. The `data_post` check runs after the other `data_post`
//! plugins, so refusals stored by content filters are delivered too.
//!
//! The client sees the text the storing plugin gave, marked with that plugin's name:
//! `550 5.7.1 (dnsbl) Your address is listed at ...`. Only the first refusal stored in a
//! connection is delivered; the later ones are only logged by their plugins.
//!
//! Nothing is refused, and the plugin logs `skip`, when:
//!
//! - the client is immune: a relay client, an authenticated user, a host listed by the
//!   `whitelist` plugin, or a sender it listed for this transaction;
//! - at the `rcpt` stage, the recipient's local part is `postmaster` or `abuse` (in any
//!   domain, in any case): a blocked sender can still reach the people who can unblock it,
//!   as RFC 5321 §4.5.1 and RFC 2142 ask. At `data` and `data_post`, a transaction whose
//!   recipients are all such addresses, or were all accepted by the `whitelist` plugin's
//!   `whitelistrcpt`, goes through. At `connect` and `mail` no recipient is known yet, so
//!   choose `rcpt` or later to keep this way open.
//!
//! A session with nothing stored logs `pass: not naughty` at each check.
//!
//! Load `naughty` after the plugins that store refusals in the stage it delivers them, and
//! before the plugins that end the stage with an OK: at `rcpt`, list it before `rcpt_ok`
//! (or the whitelist's accepted recipients skip it). At `connect` it must come after the
//! connection checks that store refusals.
//!
//! # CONFIGURATION
//!
//! ```text
//! dnsbl reject naughty
//! karma reject naughty
//! naughty reject rcpt
//! rcpt_ok
//! ```
//!
//! ## reject *connect|mail|rcpt|data|data_post|0|1*
//!
//! Default: `rcpt`. The stage at which the stored refusal is delivered (the `data_post`
//! check is always made as well). `1` means the default stage. `0` only logs
//! `fail, tolerated: ...` where the refusal would have been delivered and lets the client
//! go on, which is a way to watch what the deferred checks would refuse before enforcing
//! them. `naughty` makes no sense here and is refused.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: the type the storing plugin asked for with its own `reject_type`, or
//! `disconnect` when it asked for none. How to reject: `perm` with a 5xx reply, `temp` with
//! a 4xx reply, `disconnect` with a 5xx reply and closing the connection,
//! `temp_disconnect` with 421 and closing.
//!
//! When given here, it overrides the type every storing plugin asked for.
//!
//! The reply code depends on the stage, as for any plugin: `550` at connect, MAIL and
//! RCPT, `554` at DATA, `552` after the message; temporary refusals `450`, `451` and `452`.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None. The refusal comes from the connection notes `naughty` (the reply text) and
//! `naughty_reject_type` (`perm`, `temp`, `disconnect` or `temp_disconnect`), which
//! every plugin's `reject naughty` sets; a plugin of one's own may set them too.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Immune clients (relay clients, authenticated users, whitelisted hosts and senders)
//!   are never refused. The Perl plugin relied on AUTH clearing the note, so a whitelisted
//!   host was refused all the same.
//! - Mail to `postmaster` and `abuse` (and transactions whose recipients were all accepted
//!   through `whitelistrcpt`) is let through, as the Perl `dnsbl` plugin did for its own
//!   refusals; the Perl `naughty` refused it.
//! - `reject_type` given to this plugin overrides the storing plugin's type; in Perl the
//!   storing plugin's type won and this one was only the fallback.
//! - `reject 0` and `reject 1` are accepted, as for every plugin that refuses; an
//!   unknown stage stops the server from starting instead of being logged and replaced by
//!   `data_post`.
//! - The `data_post` check runs after the other `data_post` plugins, wherever `naughty` is
//!   listed.
//!
//! # SEE ALSO
//!
//! qpsmtpd-whitelist(7), qpsmtpd-relay(7), qpsmtpd-rcpt_ok(7), qpsmtpd-plugins(7)

use qpsmtpd_core::plugin::parse_flag;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "naughty",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject rcpt",
};

/// The stage used when `reject` is not given (or is `1`).
const DEFAULT_STAGE: Hook = Hook::Rcpt;

/// The stages `reject` may name.
const STAGES: [Hook; 5] = [
    Hook::Connect,
    Hook::Mail,
    Hook::Rcpt,
    Hook::Data,
    Hook::DataPost,
];

/// The type used when neither this plugin nor the storing plugin named one.
const FALLBACK_TYPE: RejectType = RejectType::Disconnect;

/// Where the `data_post` check runs among the `data_post` plugins: after the others.
const LAST_CHANCE_PRIORITY: i32 = 1000;

/// Local parts that can always be written to at `rcpt` and later.
const SPECIAL_RECIPIENTS: [&str; 2] = ["postmaster", "abuse"];

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let (stage, enforce) = match pairs.get("reject").map(str::to_ascii_lowercase) {
        None => (DEFAULT_STAGE, true),
        Some(v) if parse_flag(&v).is_some() => (DEFAULT_STAGE, parse_flag(&v) == Some(true)),
        Some(v) => {
            let stage = STAGES
                .iter()
                .copied()
                .find(|h| h.name() == v)
                .ok_or_else(|| {
                    setup.error(format!(
                        "reject must be connect, mail, rcpt, data, data_post, 0 or 1, not {v:?}"
                    ))
                })?;
            (stage, true)
        }
    };
    let kind = match pairs.get("reject_type") {
        None => None,
        Some(v) => Some(RejectType::parse(v).ok_or_else(|| {
            setup.error(format!(
                "reject_type must be perm, temp, disconnect or temp_disconnect, not {v:?}"
            ))
        })?),
    };
    Ok(Box::new(Naughty {
        stage,
        enforce,
        kind,
    }))
}

struct Naughty {
    stage: Hook,
    /// False with `reject 0`: only log.
    enforce: bool,
    /// `reject_type` given to this plugin.
    kind: Option<RejectType>,
}

/// Why the client is immune, if it is.
fn immunity(cx: &Context<'_>) -> Option<String> {
    if !cx.is_immune() {
        return None;
    }
    let conn = cx.connection();
    Some(if conn.relay_client {
        "relay client".to_string()
    } else if let Some(auth) = &conn.auth {
        format!("authenticated as {}", auth.user)
    } else if conn.notes.is_true("whitelisthost") {
        "whitelisted host".to_string()
    } else {
        "whitelisted sender".to_string()
    })
}

fn is_special(rcpt: &Address) -> bool {
    SPECIAL_RECIPIENTS
        .iter()
        .any(|u| u.eq_ignore_ascii_case(rcpt.user()))
}

impl Naughty {
    /// Delivers the stored refusal, if any, unless the client or the transaction is exempt.
    fn deliver(&self, cx: &mut Context<'_>, rcpt: Option<&Address>) -> Verdict {
        let Some((text, stored)) = cx.naughty() else {
            cx.pass("not naughty");
            return Verdict::Declined;
        };
        if let Some(why) = immunity(cx) {
            cx.skip(format!("immune ({why}), not rejecting: {text}"));
            return Verdict::Declined;
        }
        if let Some(why) = self.exemption(cx, rcpt) {
            cx.skip(format!("{why}, not rejecting: {text}"));
            return Verdict::Declined;
        }
        // The storing plugin's type, unless this plugin was given one.
        let reject = Reject {
            mode: if self.enforce {
                RejectMode::On
            } else {
                RejectMode::Off
            },
            kind: self.kind.or(stored).unwrap_or(FALLBACK_TYPE),
        };
        let log = format!("deferred rejection at {}: {text}", cx.hook());
        reject.apply(cx, &text, &log)
    }

    /// Why mail to these recipients goes through, if it does.
    fn exemption(&self, cx: &Context<'_>, rcpt: Option<&Address>) -> Option<String> {
        if let Some(rcpt) = rcpt {
            return is_special(rcpt).then(|| format!("mail to {} is let through", rcpt.format()));
        }
        let txn = cx.transaction();
        let n = txn.recipients.len();
        if n == 0 {
            return None;
        }
        if txn.recipients.iter().all(is_special) {
            return Some("all recipients are postmaster or abuse".into());
        }
        let whitelisted = txn.notes.get_int("whitelistrcpt").unwrap_or(0);
        (whitelisted >= n as i64).then(|| "all recipients are whitelisted".into())
    }
}

impl Plugin for Naughty {
    fn hooks(&self) -> Vec<Registration> {
        let mut hooks = vec![Registration::with_priority(
            Hook::DataPost,
            LAST_CHANCE_PRIORITY,
        )];
        if self.stage != Hook::DataPost {
            hooks.push(self.stage.into());
        }
        hooks
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        self.deliver(cx, None)
    }

    fn mail(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.deliver(cx, None)
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        self.deliver(cx, Some(rcpt))
    }

    fn data(&self, cx: &mut Context<'_>) -> Verdict {
        self.deliver(cx, None)
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        self.deliver(cx, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};

    /// Stores a deferred rejection at connect, before every other connect plugin, as a
    /// plugin loaded with `reject naughty` does; optionally marks the client as a relay
    /// client.
    struct Storer {
        kind: RejectType,
        relay: bool,
    }

    impl Plugin for Storer {
        fn hooks(&self) -> Vec<Registration> {
            vec![Registration::with_priority(Hook::Connect, -10)]
        }
        fn connect(&self, cx: &mut Context<'_>) -> Verdict {
            cx.connection_mut().relay_client = self.relay;
            let reject = Reject {
                mode: RejectMode::Naughty,
                kind: self.kind,
            };
            reject.apply(cx, "5.7.1 You are listed", "listed in a test list")
        }
    }

    fn server_with(plugins: &str, storer: Option<Storer>, logs: &LogCapture) -> TestServer {
        let mut h = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", plugins)
            .plugin("logs", logs.clone());
        if let Some(s) = storer {
            h = h.plugin("storer", s);
        }
        h.build().unwrap()
    }

    fn server(plugins: &str, kind: RejectType, logs: &LogCapture) -> TestServer {
        server_with(plugins, Some(Storer { kind, relay: false }), logs)
    }

    fn helo(server: &TestServer) -> (TestSession, String) {
        let mut s = server.session_from(ConnectionInfo::from_ip("192.0.2.9".parse().unwrap()));
        let banner = s.connect();
        if !s.is_closed() {
            assert!(s.command("HELO client.example").starts_with("250 "));
        }
        (s, banner)
    }

    const SENDER_OK: &str =
        "250 2.1.0 <a@example.org>, sender OK - how exciting to get mail from you!\r\n";

    #[test]
    fn refused_at_rcpt_with_the_stored_text_and_type() {
        let logs = LogCapture::default();
        let server = server("naughty\nrcpt_ok", RejectType::Perm, &logs);
        let (mut s, _) = helo(&server);
        assert_eq!(s.command("MAIL FROM:<a@example.org>"), SENDER_OK);
        assert_eq!(
            s.command("RCPT TO:<joe@example.com>"),
            "550 5.7.1 (storer) You are listed\r\n"
        );
        assert!(!s.is_closed());
        assert_eq!(
            logs.of_plugin("naughty"),
            ["INFO fail: deferred rejection at rcpt: 5.7.1 (storer) You are listed"]
        );
        assert_eq!(
            logs.of_plugin("storer"),
            ["INFO fail, naughty: listed in a test list"]
        );
    }

    #[test]
    fn the_stored_type_decides_unless_naughty_has_its_own() {
        let server_ = server(
            "naughty\nrcpt_ok",
            RejectType::TempDisconnect,
            &LogCapture::default(),
        );
        let (mut s, _) = helo(&server_);
        s.command("MAIL FROM:<a@example.org>");
        assert_eq!(
            s.command("RCPT TO:<joe@example.com>"),
            "421 4.7.1 (storer) You are listed\r\n"
        );
        assert!(s.is_closed());

        let server_ = server(
            "naughty reject_type temp\nrcpt_ok",
            RejectType::TempDisconnect,
            &LogCapture::default(),
        );
        let (mut s, _) = helo(&server_);
        s.command("MAIL FROM:<a@example.org>");
        assert_eq!(
            s.command("RCPT TO:<joe@example.com>"),
            "450 4.7.1 (storer) You are listed\r\n"
        );
        assert!(!s.is_closed());
    }

    #[test]
    fn a_note_without_a_type_disconnects() {
        struct ByHand;
        impl Plugin for ByHand {
            fn hooks(&self) -> Vec<Registration> {
                vec![Registration::with_priority(Hook::Connect, -10)]
            }
            fn connect(&self, cx: &mut Context<'_>) -> Verdict {
                cx.connection_mut().notes.set("naughty", "go away");
                Verdict::Declined
            }
        }
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "naughty reject mail")
            .plugin("by_hand", ByHand)
            .build()
            .unwrap();
        let (mut s, _) = helo(&server);
        assert_eq!(
            s.command("MAIL FROM:<a@example.org>"),
            "550 5.7.1 go away\r\n"
        );
        assert!(s.is_closed());
    }

    #[test]
    fn each_stage() {
        let body = "Subject: x\r\n\r\nhello";
        // connect
        let logs = LogCapture::default();
        let server_ = server("naughty reject connect\nrcpt_ok", RejectType::Perm, &logs);
        let (s, banner) = helo(&server_);
        assert_eq!(banner, "550 5.7.1 (storer) You are listed\r\n");
        assert!(s.is_closed());
        // mail
        let server_ = server(
            "naughty reject mail\nrcpt_ok",
            RejectType::Temp,
            &LogCapture::default(),
        );
        let (mut s, _) = helo(&server_);
        assert_eq!(
            s.command("MAIL FROM:<a@example.org>"),
            "450 4.7.1 (storer) You are listed\r\n"
        );
        // data
        let server_ = server(
            "naughty reject data\nrcpt_ok",
            RejectType::Perm,
            &LogCapture::default(),
        );
        let (mut s, _) = helo(&server_);
        s.command("MAIL FROM:<a@example.org>");
        assert!(s.command("RCPT TO:<joe@example.com>").starts_with("250 "));
        assert_eq!(s.command("DATA"), "554 5.7.1 (storer) You are listed\r\n");
        // data_post
        let logs = LogCapture::default();
        let server_ = server("naughty reject data_post\nrcpt_ok", RejectType::Perm, &logs);
        let (mut s, _) = helo(&server_);
        assert_eq!(
            s.mail("a@example.org", &["joe@example.com"], body),
            "552 5.7.1 (storer) You are listed\r\n"
        );
        assert_eq!(
            logs.of_plugin("naughty"),
            ["INFO fail: deferred rejection at data_post: 5.7.1 (storer) You are listed"]
        );
    }

    #[test]
    fn data_post_is_the_last_chance() {
        // rcpt_ok answers first at rcpt, so naughty only gets its say after the message.
        let logs = LogCapture::default();
        let server = server("rcpt_ok\nnaughty", RejectType::Perm, &logs);
        let (mut s, _) = helo(&server);
        assert_eq!(
            s.mail(
                "a@example.org",
                &["joe@example.com"],
                "Subject: x\r\n\r\nhi"
            ),
            "552 5.7.1 (storer) You are listed\r\n"
        );
        assert_eq!(
            logs.of_plugin("naughty"),
            ["INFO fail: deferred rejection at data_post: 5.7.1 (storer) You are listed"]
        );
    }

    #[test]
    fn nothing_stored_nothing_refused() {
        let logs = LogCapture::default();
        let server = server_with("naughty\nrcpt_ok", None, &logs);
        let (mut s, _) = helo(&server);
        assert_eq!(
            s.mail(
                "a@example.org",
                &["joe@example.com"],
                "Subject: x\r\n\r\nhi"
            ),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n"
        );
        assert_eq!(
            logs.of_plugin("naughty"),
            ["INFO pass: not naughty", "INFO pass: not naughty"]
        );
    }

    #[test]
    fn immune_clients_are_not_refused() {
        let logs = LogCapture::default();
        let server = server_with(
            "naughty\nrcpt_ok",
            Some(Storer {
                kind: RejectType::Perm,
                relay: true,
            }),
            &logs,
        );
        let (mut s, _) = helo(&server);
        s.command("MAIL FROM:<a@example.org>");
        assert_eq!(
            s.command("RCPT TO:<joe@elsewhere.example>"),
            "250 2.1.5 <joe@elsewhere.example>, recipient ok\r\n"
        );
        assert_eq!(
            logs.of_plugin("naughty"),
            ["INFO skip: immune (relay client), not rejecting: 5.7.1 (storer) You are listed"]
        );
    }

    #[test]
    fn whitelisted_hosts_are_immune() {
        let logs = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("whitelisthosts", "192.0.2.0/24")
            .file("plugins", "whitelist\nnaughty reject mail\nrcpt_ok")
            .plugin("logs", logs.clone())
            .plugin(
                "storer",
                Storer {
                    kind: RejectType::Perm,
                    relay: false,
                },
            )
            .build()
            .unwrap();
        let (mut s, _) = helo(&server);
        assert_eq!(s.command("MAIL FROM:<a@example.org>"), SENDER_OK);
        assert_eq!(
            logs.of_plugin("naughty"),
            ["INFO skip: immune (whitelisted host), not rejecting: 5.7.1 (storer) You are listed"]
        );
    }

    #[test]
    fn postmaster_and_abuse_are_let_through() {
        let logs = LogCapture::default();
        let server = server("naughty\nrcpt_ok", RejectType::Perm, &logs);
        let (mut s, _) = helo(&server);
        s.command("MAIL FROM:<a@example.org>");
        assert_eq!(
            s.command("RCPT TO:<Postmaster@example.com>"),
            "250 2.1.5 <Postmaster@example.com>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<abuse>"),
            "250 2.1.5 <abuse>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<joe@example.com>"),
            "550 5.7.1 (storer) You are listed\r\n"
        );
        // Only the special recipients were accepted: the message goes through data_post.
        assert_eq!(
            s.data("Subject: unblock me\r\n\r\nplease"),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n"
        );
        assert_eq!(
            logs.of_plugin("naughty"),
            [
                "INFO skip: mail to <Postmaster@example.com> is let through, not rejecting: 5.7.1 (storer) You are listed",
                "INFO skip: mail to <abuse> is let through, not rejecting: 5.7.1 (storer) You are listed",
                "INFO fail: deferred rejection at rcpt: 5.7.1 (storer) You are listed",
                "INFO skip: all recipients are postmaster or abuse, not rejecting: 5.7.1 (storer) You are listed",
            ]
        );
    }

    #[test]
    fn whitelisted_recipients_are_let_through() {
        let logs = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("whitelistrcpt", "joe@example.com")
            .file("plugins", "whitelist\nnaughty\nrcpt_ok")
            .plugin("logs", logs.clone())
            .plugin(
                "storer",
                Storer {
                    kind: RejectType::Perm,
                    relay: false,
                },
            )
            .build()
            .unwrap();
        let (mut s, _) = helo(&server);
        s.command("MAIL FROM:<a@example.org>");
        assert!(s.command("RCPT TO:<joe@example.com>").starts_with("250 "));
        assert!(s.command("RCPT TO:<ann@example.com>").starts_with("550 "));
        assert_eq!(
            s.data("Subject: x\r\n\r\nhi"),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n"
        );
        assert!(
            logs.of_plugin("naughty")
                .last()
                .unwrap()
                .starts_with("INFO skip: all recipients are whitelisted"),
            "{:?}",
            logs.of_plugin("naughty")
        );
    }

    #[test]
    fn reject_0_only_logs() {
        let logs = LogCapture::default();
        let server = server("naughty reject 0\nrcpt_ok", RejectType::Perm, &logs);
        let (mut s, _) = helo(&server);
        assert_eq!(
            s.mail(
                "a@example.org",
                &["joe@example.com"],
                "Subject: x\r\n\r\nhi"
            ),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n"
        );
        assert_eq!(
            logs.of_plugin("naughty"),
            [
                "INFO fail, tolerated: deferred rejection at rcpt: 5.7.1 (storer) You are listed",
                "INFO fail, tolerated: deferred rejection at data_post: 5.7.1 (storer) You are listed",
            ]
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            ("naughty reject later", "reject must be connect, mail, rcpt"),
            (
                "naughty reject naughty",
                "reject must be connect, mail, rcpt",
            ),
            ("naughty reject_type never", "reject_type must be perm"),
            ("naughty bogus_arg 1", "unknown argument"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: naughty: "), "{err}");
            assert!(err.contains(want), "{err}");
        }
    }
}
