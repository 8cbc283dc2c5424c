//! # NAME
//!
//! rcpt_ok - accept recipients in this server's own domains
//!
//! # DESCRIPTION
//!
//! The last word on a recipient: qmail-smtpd's `rcpthosts` check. A recipient is accepted
//! when any of these holds, and refused with `550 5.7.1 Relaying denied` otherwise:
//!
//! - the client is a relay client (see relay(7)) or has authenticated;
//! - the recipient is `<postmaster>` or `<abuse>` without a domain (in any case);
//! - the recipient's domain, compared without regard to case, is this server's name (the
//!   `me` control file), or is listed in `rcpthosts` or `morercpthosts.cdb`.
//!
//! The server refuses every recipient that no plugin accepts, so without this plugin (or
//! another that accepts recipients) no mail gets in. Other recipient checks (`badrcptto`,
//! `qmail_deliverable`, ...) only refuse, so they must come before it: load `rcpt_ok` as the
//! **last** `rcpt` plugin in `config/plugins`.
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
//! They apply to the refusal of a recipient outside our domains; with `reject 0` or
//! `reject naughty` no plugin accepts the recipient and the core answers `450 4.7.1`.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! The plugin takes no other arguments.
//!
//! ## Files
//!
//! `rcpthosts`: one domain per line. `example.com` accepts recipients at exactly
//! `example.com`; `.example.com` accepts them at every subdomain (`mail.example.com`,
//! `a.b.example.com`) but not at `example.com` itself, which needs its own line. Address
//! literals (`[192.0.2.25]`) may be listed too. A line that is not a domain stops the server
//! from starting, with the file and line named.
//!
//! `morercpthosts.cdb`: a constant database for long lists, built by qmail's
//! `qmail-newmrh` from `morercpthosts`. Keys are lower-case domains; like `rcpthosts`, a
//! key starting with `.` covers the subdomains.
//!
//! `me`: this server's name, always accepted.
//!
//! The files are read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - `.domain` keys in `morercpthosts.cdb` cover subdomains, as they do for qmail-smtpd;
//!   the Perl plugin only looked up the exact domain there.
//! - `rcpthosts` is read and checked when the server starts, not for every recipient, so a
//!   change takes effect on reload, and a malformed line is an error instead of a line that
//!   never matches.
//! - The refusal carries its enhanced status code in the usual place:
//!   `550 5.7.1 Relaying denied` rather than `550 Relaying denied (#5.7.1)`.
//!
//! # SEE ALSO
//!
//! qpsmtpd-relay(7), qpsmtpd-plugins(7), qmail-smtpd(8)

use crate::relay::RELAYING_DENIED;
use qpsmtpd_core::config::CdbMap;
use qpsmtpd_core::protocol::address::{is_address_literal, is_domain};
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};
use std::collections::HashSet;

/// Recipients without a domain that are accepted anyway (RFC 5321 §4.5.1).
const HOSTLESS_USERS: [&str; 2] = ["postmaster", "abuse"];

pub const SPEC: PluginSpec = PluginSpec {
    name: "rcpt_ok",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    let mut plugin = RcptOk {
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
        domains: HashSet::new(),
        parents: Vec::new(),
        more: setup.config.map("morercpthosts")?,
    };
    for line in setup.config.lines("rcpthosts")? {
        let entry = line.text.to_ascii_lowercase();
        let name = entry.strip_prefix('.').unwrap_or(&entry);
        if !(is_domain(name) || is_address_literal(name)) {
            return Err(line.error(format!("{:?} is not a domain name", line.text)));
        }
        if entry.starts_with('.') {
            plugin.parents.push(entry);
        } else {
            plugin.domains.insert(entry);
        }
    }
    Ok(Box::new(plugin))
}

struct RcptOk {
    reject: Reject,
    /// `rcpthosts` lines naming one domain, lower-cased.
    domains: HashSet<String>,
    /// `rcpthosts` lines starting with `.`, lower-cased, dot kept.
    parents: Vec<String>,
    more: Option<CdbMap>,
}

impl RcptOk {
    /// Why the recipient is accepted, or `None`.
    fn accepts(&self, cx: &Context<'_>, rcpt: &Address) -> Option<String> {
        let conn = cx.connection();
        if conn.relay_client {
            return Some("relay client".into());
        }
        if let Some(auth) = &conn.auth {
            return Some(format!("authenticated as {}", auth.user));
        }
        let host = rcpt.host().to_ascii_lowercase();
        if host.is_empty() {
            let user = rcpt.user();
            return HOSTLESS_USERS
                .iter()
                .any(|u| u.eq_ignore_ascii_case(user))
                .then(|| format!("{user} without a domain"));
        }
        if host.eq_ignore_ascii_case(&cx.core().me) {
            return Some(format!("{host} is me"));
        }
        if self.domains.contains(&host) {
            return Some(format!("{host} in rcpthosts"));
        }
        if let Some(parent) = self.parents.iter().find(|p| host.ends_with(p.as_str())) {
            return Some(format!("{host} in rcpthosts as {parent}"));
        }
        let more = self.more.as_ref()?;
        // The domain itself, then `.parent` for each parent domain, as qmail-smtpd does.
        let keys =
            std::iter::once(host.as_str()).chain(host.match_indices('.').map(|(i, _)| &host[i..]));
        for key in keys {
            if more.contains(key) {
                return Some(format!("{host} in morercpthosts as {key}"));
            }
        }
        None
    }
}

impl Plugin for RcptOk {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Rcpt.into()]
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        match self.accepts(cx, rcpt) {
            Some(why) => {
                cx.pass(why);
                Verdict::ok()
            }
            None => {
                let why = format!("{} is not one of our domains", rcpt.format());
                self.reject.apply(cx, RELAYING_DENIED, &why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::relay::tests::Authenticated;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::{Harness, TestServer};

    const DENIED: &str = "550 5.7.1 Relaying denied\r\n";

    fn harness(rcpthosts: &str) -> Harness {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay\nrcpt_ok")
            .file("rcpthosts", rcpthosts)
    }

    /// The reply to each recipient, in one transaction from 203.0.113.9.
    fn replies(server: &TestServer, rcpts: &[&str]) -> Vec<String> {
        let mut s = server.session_from(ConnectionInfo::from_ip([203, 0, 113, 9].into()));
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("HELO client.example").starts_with("250 "));
        assert!(
            s.command("MAIL FROM:<a@sender.example>")
                .starts_with("250 ")
        );
        rcpts
            .iter()
            .map(|r| s.command(&format!("RCPT TO:<{r}>")))
            .collect()
    }

    fn ok(rcpt: &str) -> String {
        format!("250 2.1.5 <{rcpt}>, recipient ok\r\n")
    }

    #[test]
    fn accepts_our_domains_and_refuses_the_rest() {
        let server = harness("# ours\nExample.COM\n.example.net\n[192.0.2.25]")
            .build()
            .unwrap();
        let cases = [
            ("joe@example.com", ok("joe@example.com")),
            ("joe@EXAMPLE.com", ok("joe@EXAMPLE.com")),
            ("joe@mail.example.com", DENIED.to_string()),
            ("joe@example.net", DENIED.to_string()),
            ("joe@mail.example.net", ok("joe@mail.example.net")),
            ("joe@a.b.Example.NET", ok("joe@a.b.Example.NET")),
            ("joe@notexample.net", DENIED.to_string()),
            ("joe@test.example", ok("joe@test.example")),
            ("joe@TEST.example", ok("joe@TEST.example")),
            ("joe@[192.0.2.25]", ok("joe@[192.0.2.25]")),
            ("joe@[192.0.2.26]", DENIED.to_string()),
            ("postmaster", ok("postmaster")),
            ("Abuse", ok("Abuse")),
            ("joe@elsewhere.example", DENIED.to_string()),
        ];
        let rcpts: Vec<&str> = cases.iter().map(|(r, _)| *r).collect();
        for ((rcpt, want), got) in cases.iter().zip(replies(&server, &rcpts)) {
            assert_eq!(&got, want, "RCPT TO:<{rcpt}>");
        }
    }

    #[test]
    fn morercpthosts_cdb_with_domains_and_parents() {
        let server = harness("example.com")
            .cdb("morercpthosts", &["example.org", ".example.info"])
            .build()
            .unwrap();
        let got = replies(
            &server,
            &[
                "a@Example.ORG",
                "a@sub.example.org",
                "a@x.y.example.info",
                "a@example.info",
                "a@example.com",
            ],
        );
        assert_eq!(
            got,
            [
                ok("a@Example.ORG"),
                DENIED.to_string(),
                ok("a@x.y.example.info"),
                DENIED.to_string(),
                ok("a@example.com"),
            ]
        );
    }

    #[test]
    fn relay_clients_and_authenticated_users_may_send_anywhere() {
        let server = harness("example.com")
            .file("relayclients", "192.0.2.")
            .build()
            .unwrap();
        let mut s = server.session_from(ConnectionInfo::from_ip([192, 0, 2, 9].into()));
        s.connect();
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@example.com>");
        assert_eq!(
            s.command("RCPT TO:<b@elsewhere.example>"),
            ok("b@elsewhere.example")
        );

        let server = harness("example.com")
            .plugin("authenticated", Authenticated)
            .build()
            .unwrap();
        assert_eq!(
            replies(&server, &["b@elsewhere.example"]),
            [ok("b@elsewhere.example")]
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        let err = |h: Harness| {
            h.build()
                .expect_err("configuration should be refused")
                .to_string()
        };
        let e = err(harness("example.com\n\nexample .org"));
        assert!(
            e.ends_with("rcpthosts:3: \"example .org\" is not a domain name"),
            "{e}"
        );
        let e = err(harness("..example.com"));
        assert!(
            e.ends_with("rcpthosts:1: \"..example.com\" is not a domain name"),
            "{e}"
        );
        let e = err(harness("example.com").file("plugins", "rcpt_ok bogus 1"));
        assert!(
            e.contains("plugins:1: rcpt_ok: unknown argument \"bogus\""),
            "{e}"
        );
    }
}
