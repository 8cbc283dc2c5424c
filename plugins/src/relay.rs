//! # NAME
//!
//! relay - decide which clients may relay through this server
//!
//! # DESCRIPTION
//!
//! When a client connects, this plugin decides whether it is a *relay client*: a client
//! that may send mail to any domain, not only to the domains this server accepts mail for.
//! Other plugins read the decision too: relay clients are immune to content rejections, and
//! `rcpt_ok` accepts any recipient from them.
//!
//! The checks run in this order, and the first that matches decides:
//!
//! 1. The remote address is in `norelayclients`: the client is **not** a relay client,
//!    whatever the later checks would say, and the `RELAYCLIENT` variable is removed from the
//!    connection so that no later plugin treats it as one either.
//! 2. The supervisor set `RELAYCLIENT` for this connection (tcpserver with a tcprules entry
//!    such as `192.168.:allow,RELAYCLIENT=""`). Only its presence counts; the value may be
//!    empty.
//! 3. The remote address is `::1`, the IPv6 loopback address.
//! 4. The remote address is in `relayclients`.
//! 5. The remote address, or one of its prefixes, is a key of `morerelayclients.cdb`.
//!
//! Otherwise the client is not a relay client. A client that authenticates later becomes
//! one through SMTP AUTH, not through this plugin.
//!
//! Load it before the `rcpt` plugins in `config/plugins`.
//!
//! # CONFIGURATION
//!
//! ## only *0|1*
//!
//! Default: `0`. With `only 1` the server serves only its relay clients, as a smarthost for
//! its own users does: every recipient from a client that is neither a relay client nor
//! authenticated is refused with `550 5.7.1 Relaying denied`. Recipients from the others
//! are passed on to the following `rcpt` plugins, so `rcpt_ok` must still be loaded (it
//! accepts relay clients and authenticated users).
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
//! They apply to the `only 1` refusal.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `relayclients` and `norelayclients` hold one entry per line, each one of:
//!
//! - a full address: `192.0.2.25`, `2001:db8::25`;
//! - the leading groups of an address, which match a whole network: `192.168.` (that is
//!   192.168.0.0/16), `fdda:b13d:` (fdda:b13d::/32). The trailing `.` or `:` is customary
//!   and may be left out;
//! - a CIDR block: `10.1.0.0/24`, `fdda:b13d:e431:ae06::/64`.
//!
//! IPv4 entries never match IPv6 clients and the other way round, except that IPv4
//! clients seen on a dual-stack socket (`::ffff:192.0.2.25`) count as IPv4. A line that is
//! none of these stops the server from starting, with the file and line named.
//!
//! `morerelayclients.cdb` is a constant database (built with qmail's `cdbmake` tools) whose
//! keys are full addresses or prefixes as above, written in lower case without leading
//! zeros: `192.0.2.25`, `192.168.`, `2001:db8::25`, `fdda:b13d:`. It suits long lists.
//! No CIDR blocks there.
//!
//! All three are read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - `RELAYCLIENT` counts when it is present. The Perl plugin tested its value for truth,
//!   so the empty value tcprules sets with `RELAYCLIENT=""` (the form qmail's documentation
//!   uses) was ignored.
//! - With `only 1`, a permitted recipient is passed on (DECLINED) instead of accepted
//!   outright (OK). Accepting outright skipped every later recipient check, such as
//!   `badrcptto`; authenticated clients are also let through here explicitly.
//! - CIDR blocks include their first and last address (the Perl comparison left them out),
//!   and prefixes match by value, so `2001:db8:0:` matches `2001:db8::1` however the address
//!   is written. `norelayclients` takes CIDR blocks too.
//! - Entries are checked when the server starts; a malformed one is an error, not a line
//!   that silently never matches.
//!
//! # SEE ALSO
//!
//! qpsmtpd-rcpt_ok(7), qpsmtpd-plugins(7), tcprules(1)

use qpsmtpd_core::config::CdbMap;
use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::net::IpList;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};
use std::net::{IpAddr, Ipv6Addr};

/// The refusal for a client that may not relay (also used by `rcpt_ok`).
pub(crate) const RELAYING_DENIED: &str = "5.7.1 Relaying denied";

pub const SPEC: PluginSpec = PluginSpec {
    name: "relay",
    factory: new,
    args: &["only", "reject", "reject_type"],
    rejects: true,
    example: "only 1",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    Ok(Box::new(Relay {
        only: args.flag("only", false).map_err(|e| setup.error(e))?,
        reject: setup.reject(&args, RejectMode::On, RejectType::Perm)?,
        deny: IpList::load(setup.config, "norelayclients")?,
        allow: IpList::load(setup.config, "relayclients")?,
        more: setup.config.map("morerelayclients")?,
    }))
}

struct Relay {
    only: bool,
    reject: Reject,
    deny: IpList,
    allow: IpList,
    more: Option<CdbMap>,
}

impl Relay {
    /// Why this connection may relay, or `None`.
    fn reason(&self, cx: &Context<'_>, ip: IpAddr) -> Option<String> {
        if cx.connection().info.env("RELAYCLIENT").is_some() {
            return Some("RELAYCLIENT is set".into());
        }
        if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
            return Some(format!("{ip} is the loopback address"));
        }
        if let Some(entry) = self.allow.find(ip) {
            return Some(format!("{ip} matches {entry} in relayclients"));
        }
        let more = self.more.as_ref()?;
        let key = cdb_keys(ip).into_iter().find(|k| more.contains(k))?;
        Some(format!("{ip} matches {key} in morerelayclients"))
    }
}

impl Plugin for Relay {
    fn hooks(&self) -> Vec<Registration> {
        let mut hooks = vec![Hook::Connect.into()];
        if self.only {
            hooks.push(Hook::Rcpt.into());
        }
        hooks
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        let ip = strip_mapped(cx.connection().remote_ip());
        if let Some(entry) = self.deny.find(ip) {
            let conn = cx.connection_mut();
            conn.relay_client = false;
            // Later plugins may look at RELAYCLIENT themselves; the denial must hold there too.
            conn.info.env.remove("RELAYCLIENT");
            cx.fail(format!("{ip} matches {entry} in norelayclients"));
            return Verdict::Declined;
        }
        match self.reason(cx, ip) {
            Some(why) => {
                cx.connection_mut().relay_client = true;
                cx.pass(why);
            }
            None => cx.skip(format!("{ip} is not a relay client")),
        }
        Verdict::Declined
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        let conn = cx.connection();
        if conn.relay_client || conn.auth.is_some() {
            // Let the later rcpt plugins (and finally rcpt_ok) have their say.
            cx.pass(format!("relay only: {} may relay", conn.info.remote_ip));
            return Verdict::Declined;
        }
        let why = format!(
            "relay only: {} may not relay to {}",
            conn.info.remote_ip,
            rcpt.format()
        );
        self.reject.apply(cx, RELAYING_DENIED, &why)
    }
}

/// The keys `morerelayclients.cdb` is searched for: the address as usually written, then
/// ever shorter runs of its leading groups (`192.0.2.`, `192.0.`, `192.`).
fn cdb_keys(ip: IpAddr) -> Vec<String> {
    let mut keys = vec![ip.to_string()];
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            keys.extend(
                (1..4)
                    .rev()
                    .map(|n| o[..n].iter().map(|g| format!("{g}.")).collect()),
            );
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let full: Vec<String> = s.iter().map(|g| format!("{g:x}")).collect();
            keys.push(full.join(":"));
            keys.extend(
                (1..8)
                    .rev()
                    .map(|n| s[..n].iter().map(|g| format!("{g:x}:")).collect()),
            );
        }
    }
    keys
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::connection::AuthInfo;
    use qpsmtpd_core::testing::{Harness, TestServer, TestSession};

    fn server(plugins: &str, files: &[(&str, &str)]) -> TestServer {
        files
            .iter()
            .fold(Harness::new(), |h, (name, text)| h.file(name, text))
            .catalogue(crate::CATALOGUE)
            .file("plugins", plugins)
            .build()
            .unwrap()
    }

    fn from(ip: &str, env: &[(&str, &str)]) -> ConnectionInfo {
        let mut info = ConnectionInfo::from_ip(ip.parse().unwrap());
        for (k, v) in env {
            info.env.insert(k.to_string(), v.to_string());
        }
        info
    }

    /// The reply to a recipient outside our domains.
    fn relay_attempt(s: &mut TestSession) -> String {
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("HELO client.example").starts_with("250 "));
        assert!(
            s.command("MAIL FROM:<a@sender.example>")
                .starts_with("250 ")
        );
        s.command("RCPT TO:<someone@elsewhere.example>")
    }

    const RELAYED: &str = "250 2.1.5 <someone@elsewhere.example>, recipient ok\r\n";
    const DENIED: &str = "550 5.7.1 Relaying denied\r\n";

    #[test]
    fn cdb_keys_run_from_long_to_short() {
        assert_eq!(
            cdb_keys("192.0.2.7".parse().unwrap()),
            ["192.0.2.7", "192.0.2.", "192.0.", "192."]
        );
        let keys = cdb_keys("2001:db8::7".parse().unwrap());
        assert_eq!(
            keys[..3],
            ["2001:db8::7", "2001:db8:0:0:0:0:0:7", "2001:db8:0:0:0:0:0:"]
        );
        assert_eq!(keys.last().unwrap(), "2001:");
    }

    #[test]
    fn relayclients_and_cidr_blocks_may_relay() {
        let server = server(
            "relay\nrcpt_ok",
            &[(
                "relayclients",
                "# office\n192.0.2.\n198.51.100.0/25\n2001:db8::/32",
            )],
        );
        for (ip, want) in [
            ("192.0.2.200", RELAYED),
            ("198.51.100.127", RELAYED),
            ("198.51.100.128", DENIED),
            ("2001:db8:1::5", RELAYED),
            ("2001:db9::5", DENIED),
            ("127.0.0.1", DENIED),
            ("::1", RELAYED),
        ] {
            let mut s = server.session_from(from(ip, &[]));
            assert_eq!(relay_attempt(&mut s), want, "from {ip}");
        }
    }

    #[test]
    fn relayclient_variable_counts_even_when_empty() {
        let server = server("relay\nrcpt_ok", &[]);
        let mut s = server.session_from(from("203.0.113.9", &[("RELAYCLIENT", "")]));
        assert_eq!(relay_attempt(&mut s), RELAYED);
        let mut s = server.session_from(from("203.0.113.9", &[("RELAYCLIENTX", "1")]));
        assert_eq!(relay_attempt(&mut s), DENIED);
    }

    #[test]
    fn norelayclients_overrides_everything() {
        let server = server(
            "relay\nrcpt_ok",
            &[
                ("relayclients", "192.0.2.0/24\n::1"),
                ("norelayclients", "192.0.2.66\n::1"),
            ],
        );
        let mut s = server.session_from(from("192.0.2.66", &[("RELAYCLIENT", "1")]));
        assert_eq!(relay_attempt(&mut s), DENIED);
        assert_eq!(s.session.connection().info.env("RELAYCLIENT"), None);
        let mut s = server.session_from(from("::1", &[]));
        assert_eq!(relay_attempt(&mut s), DENIED);
        let mut s = server.session_from(from("192.0.2.67", &[]));
        assert_eq!(relay_attempt(&mut s), RELAYED);
    }

    #[test]
    fn morerelayclients_cdb_holds_addresses_and_prefixes() {
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay\nrcpt_ok")
            .cdb(
                "morerelayclients",
                &["203.0.113.5", "198.51.", "fdda:b13d:", "2001:db8::25"],
            )
            .build()
            .unwrap();
        for (ip, want) in [
            ("203.0.113.5", RELAYED),
            ("203.0.113.6", DENIED),
            ("198.51.7.8", RELAYED),
            ("198.52.7.8", DENIED),
            ("fdda:b13d:1::1", RELAYED),
            ("2001:db8::25", RELAYED),
            ("2001:db8::26", DENIED),
        ] {
            let mut s = server.session_from(from(ip, &[]));
            assert_eq!(relay_attempt(&mut s), want, "from {ip}");
        }
    }

    /// Marks every connection as authenticated, as a successful AUTH would.
    pub(crate) struct Authenticated;
    impl Plugin for Authenticated {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Connect.into()]
        }
        fn connect(&self, cx: &mut Context<'_>) -> Verdict {
            cx.connection_mut().auth = Some(AuthInfo {
                user: "joe".into(),
                mechanism: "PLAIN".into(),
            });
            Verdict::Declined
        }
    }

    #[test]
    fn only_refuses_everyone_else_even_for_local_domains() {
        let server = server(
            "relay only 1\nrcpt_ok",
            &[("rcpthosts", "test.example"), ("relayclients", "192.0.2.1")],
        );
        let mut s = server.session_from(from("203.0.113.9", &[]));
        assert!(s.connect().starts_with("220 "));
        s.command("HELO client.example");
        s.command("MAIL FROM:<a@sender.example>");
        assert_eq!(s.command("RCPT TO:<user@test.example>"), DENIED);
        assert_eq!(s.command("RCPT TO:<postmaster>"), DENIED);

        let mut s = server.session_from(from("192.0.2.1", &[]));
        assert_eq!(relay_attempt(&mut s), RELAYED);
    }

    #[test]
    fn only_passes_relay_clients_on_to_later_plugins() {
        // Without rcpt_ok nobody accepts: relay's own answer for a relay client is DECLINED.
        let server = server("relay only 1", &[("relayclients", "192.0.2.1")]);
        let mut s = server.session_from(from("192.0.2.1", &[]));
        assert_eq!(
            relay_attempt(&mut s),
            "450 4.7.1 No plugin decided if relaying is allowed\r\n"
        );
    }

    #[test]
    fn only_lets_authenticated_clients_through() {
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay only 1\nrcpt_ok")
            .plugin("authenticated", Authenticated)
            .build()
            .unwrap();
        let mut s = server.session_from(from("203.0.113.9", &[]));
        assert_eq!(relay_attempt(&mut s), RELAYED);
    }

    #[test]
    fn logs_one_summary_line_per_decision() {
        let log = qpsmtpd_core::testing::LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay only 1")
            .file("relayclients", "192.0.2.")
            .file("norelayclients", "192.0.2.66")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        for ip in ["192.0.2.1", "192.0.2.66", "203.0.113.9"] {
            relay_attempt(&mut server.session_from(from(ip, &[])));
        }
        assert_eq!(
            log.of_plugin("relay"),
            [
                "INFO pass: 192.0.2.1 matches 192.0.2. in relayclients",
                "INFO pass: relay only: 192.0.2.1 may relay",
                "INFO fail: 192.0.2.66 matches 192.0.2.66 in norelayclients",
                "INFO fail: relay only: 192.0.2.66 may not relay to <someone@elsewhere.example>",
                "INFO skip: 203.0.113.9 is not a relay client",
                "INFO fail: relay only: 203.0.113.9 may not relay to <someone@elsewhere.example>",
            ]
        );
    }

    #[test]
    fn bad_configuration_names_file_and_line() {
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay")
            .file("relayclients", "192.0.2.1\n\n10.0.0.0/40")
            .build()
            .expect_err("configuration should be refused")
            .to_string();
        assert!(
            err.ends_with("relayclients:3: bad prefix length in \"10.0.0.0/40\""),
            "{err}"
        );
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay")
            .file("norelayclients", "# x\nlocalhost")
            .build()
            .expect_err("configuration should be refused")
            .to_string();
        assert!(
            err.contains("norelayclients:2: \"localhost\" is not"),
            "{err}"
        );
        for line in ["relay only", "relay only maybe", "relay bogus 1"] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: relay: "), "{line}: {err}");
        }
    }
}
