//! # NAME
//!
//! dns_whitelist_soft - exempt clients listed in a DNS whitelist from later checks
//!
//! # DESCRIPTION
//!
//! Looks the client's address up in the DNS whitelists (DNSWLs) named in
//! `whitelist_zones`, the way blocklists are asked (RFC 5782): the address is reversed
//! (`192.0.2.7` becomes `7.2.0.192`, an IPv6 address becomes its 32 nibbles) and the zone
//! appended. An A record in 127.0.0.0/8 or a TXT record there means the client is listed.
//!
//! A listed client becomes a *whitelisted host*: the plugin sets the connection note
//! `whitelisthost` (to the list's TXT text, or `listed in <zone>`), which makes it immune
//! to `dnsbl`, `rhsbl` and the content checks, as the `whitelist` plugin's
//! `whitelisthosts` does. The plugin refuses nothing. It is "soft" in that it only sets
//! the note: each check decides what the note means to it.
//!
//! Every zone is asked for its A and TXT records at once when the client connects, and
//! the answers are awaited there, so the note is known to every later plugin, connection
//! checks included (`dnsbl reject connect`). Load it before the plugins it should exempt
//! clients from, for example before `dnsbl`.
//!
//! Each connection logs one line: `pass: ...` for a listed client, `skip: ...` for one that
//! is not listed (or when no zone is configured).
//!
//! ## DNS failures
//!
//! A whitelist that cannot be asked (a timeout, SERVFAIL, no nameserver) whitelists nobody:
//! the plugin logs `error: ...` and the client is checked like any other (fail closed,
//! since the note exempts from checks). When another zone lists the client, the listing
//! counts. An A record outside 127.0.0.0/8 is no listing and counts as a failure.
//!
//! # CONFIGURATION
//!
//! ## timeout *SECONDS*
//!
//! Default: the value of the `dns_timeout` control file (5 seconds when it is not set).
//! How long the connection waits for the whitelists' answers; decimals are allowed. The
//! banner is sent only when they have answered or the time is up.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `whitelist_zones`: one DNS whitelist zone per line (`list.dnswl.example`). Anything after
//! the zone on the line is ignored, as the original plugin ignored it. A zone that is not
//! a domain name, or a zone listed twice, stops the server from starting, with the file
//! and line named. The file is read once, when the server starts (or reloads). Without it
//! the plugin does nothing.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The answers are awaited at connect, so the note holds for every later check; the
//!   Perl plugin read them at the first RCPT, after the connection, HELO and MAIL checks
//!   had run without it.
//! - Both A and TXT records are asked for (the Perl plugin asked for TXT only, although its
//!   documentation promised either); an A record must be in 127.0.0.0/8.
//! - IPv6 clients are looked up in nibble form.
//! - A DNS failure is logged as `error`; the `timeout` argument is new.
//!
//! # SEE ALSO
//!
//! qpsmtpd-whitelist(7), qpsmtpd-dnsbl(7), qpsmtpd-rhsbl(7), qpsmtpd-plugins(7)

use crate::dnsbl::{Listing, listing, zone_name};
use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::dns::{Query, reversed_ip};
use qpsmtpd_core::{
    ConfigError, ConfigLine, Context, Hook, Level, Plugin, PluginSpec, Registration, Setup, Verdict,
};
use std::time::Duration;

pub const SPEC: PluginSpec = PluginSpec {
    name: "dns_whitelist_soft",
    factory: new,
    args: &["timeout"],
    rejects: false,
    example: "timeout 2",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    Ok(Box::new(DnsWhitelistSoft {
        timeout: pairs.seconds("timeout").map_err(|e| setup.error(e))?,
        zones: load_zones(setup.config.lines("whitelist_zones")?)?,
    }))
}

/// `whitelist_zones`: a zone per line; the rest of the line is ignored.
fn load_zones(lines: Vec<ConfigLine>) -> Result<Vec<String>, ConfigError> {
    let mut zones: Vec<String> = Vec::new();
    for line in lines {
        let first = line.text.split_whitespace().next().unwrap_or_default();
        let name = zone_name(&line, first)?;
        if zones.contains(&name) {
            return Err(line.error(format!("zone {name} is listed twice")));
        }
        zones.push(name);
    }
    Ok(zones)
}

struct DnsWhitelistSoft {
    timeout: Option<Duration>,
    zones: Vec<String>,
}

impl Plugin for DnsWhitelistSoft {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Connect.into()]
    }

    /// A whitelist only ever adds an exemption; if it breaks, the client is checked as
    /// usual.
    fn on_failure(&self, _: Hook) -> Verdict {
        Verdict::Declined
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        let ip = strip_mapped(cx.connection().remote_ip());
        if self.zones.is_empty() {
            cx.skip("no zones in whitelist_zones");
            return Verdict::Declined;
        }
        if ip.is_unspecified() {
            cx.skip("the client's address is unknown");
            return Verdict::Declined;
        }
        let subject = reversed_ip(ip);
        let queries: Vec<Query> = self
            .zones
            .iter()
            .flat_map(|z| {
                let name = format!("{subject}.{z}");
                [Query::A(name.clone()), Query::Txt(name)]
            })
            .collect();
        let answers = cx.resolve_all(&queries, self.timeout);
        for (q, a) in queries.iter().zip(&answers) {
            cx.log(Level::Debug, format!("{q}: {a:?}"));
        }
        let mut listed = None;
        let mut errors = Vec::new();
        for (zone, pair) in self.zones.iter().zip(answers.chunks(2)) {
            let (a, txt) = (listing(&pair[0]), listing(&pair[1]));
            match (a, txt) {
                (_, Listing::Listed(text)) if !text.is_empty() && text != "0" => {
                    listed.get_or_insert((zone, text));
                }
                (Listing::Listed(_), _) | (_, Listing::Listed(_)) => {
                    listed.get_or_insert((zone, format!("listed in {zone}")));
                }
                (Listing::Failed(e), _) | (_, Listing::Failed(e)) => {
                    errors.push(format!("{zone}: {e}"));
                }
                (Listing::NotListed, Listing::NotListed) => {}
            }
        }
        match listed {
            Some((zone, note)) => {
                cx.pass(format!("{ip} is listed in {zone}: {note}"));
                cx.connection_mut().notes.set("whitelisthost", note);
            }
            None if errors.is_empty() => cx.skip(format!(
                "{ip} is not listed in any of {} zones",
                self.zones.len()
            )),
            None => cx.error(format!(
                "{ip} could not be checked ({}); not whitelisted",
                errors.join("; ")
            )),
        }
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer};

    use crate::test_support::start_with_dns as start;

    /// The `whitelisthost` note after connecting from `ip`, and the reply to a recipient.
    fn visit(server: &TestServer, ip: &str) -> (Option<String>, String) {
        let mut s = server.session_from(ConnectionInfo::from_ip(ip.parse().unwrap()));
        s.begin("sender@sender.example");
        let note = s
            .session
            .connection()
            .notes
            .get_str("whitelisthost")
            .map(String::from);
        (note, s.command("RCPT TO:<user@example.com>"))
    }

    const OK: &str = "250 2.1.5 <user@example.com>, recipient ok\r\n";

    #[test]
    fn listed_clients_become_whitelisted_hosts_and_escape_dnsbl() {
        let dns = DnsServer::start();
        let files = [("whitelist_zones", "wl.test"), ("dnsbl_zones", "bl.test")];
        let (server, log) = start(&dns, "dns_whitelist_soft\ndnsbl\nrcpt_ok", &files);
        assert_eq!(
            visit(&server, "192.0.2.10"),
            (Some("192.0.2.10 is a trusted sender".into()), OK.into())
        );
        assert_eq!(
            visit(&server, "2001:db8::10"),
            (Some("2001:db8::10 is a trusted sender".into()), OK.into())
        );
        // Listed in bl.test and not whitelisted: refused.
        let (note, reply) = visit(&server, "192.0.2.2");
        assert_eq!(note, None);
        assert!(
            reply.starts_with("550 5.7.1 192.0.2.2 is listed in bl.test"),
            "{reply}"
        );
        assert_eq!(
            crate::test_support::summary(&log, "dns_whitelist_soft"),
            [
                "INFO pass: 192.0.2.10 is listed in wl.test: 192.0.2.10 is a trusted sender",
                "INFO pass: 2001:db8::10 is listed in wl.test: 2001:db8::10 is a trusted sender",
                "INFO skip: 192.0.2.2 is not listed in any of 1 zones",
            ]
        );
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            [
                "INFO skip: 192.0.2.10 is immune (whitelisted host)",
                "INFO skip: 2001:db8::10 is immune (whitelisted host)",
                "INFO fail: 192.0.2.2 is listed in bl.test",
            ]
        );
    }

    #[test]
    fn an_a_record_or_a_txt_record_is_enough() {
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "dns_whitelist_soft\nrcpt_ok",
            // bl2.test publishes A records only; the text after the zone is ignored.
            &[("whitelist_zones", "bl2.test ignored words\nwl.test")],
        );
        assert_eq!(
            visit(&server, "192.0.2.11").0.as_deref(),
            Some("listed in wl.test")
        );
        assert_eq!(
            visit(&server, "192.0.2.12").0.as_deref(),
            Some("192.0.2.12 is known")
        );
        // The first zone in the file that lists the client names it.
        assert_eq!(
            visit(&server, "192.0.2.3").0.as_deref(),
            Some("listed in bl2.test")
        );
        assert_eq!(visit(&server, "192.0.2.1").0, None);
        // bl2.test answers 192.0.2.99 for 192.0.2.5: no listing, an error.
        assert_eq!(visit(&server, "192.0.2.5").0, None);
        assert_eq!(
            crate::test_support::summary(&log, "dns_whitelist_soft"),
            [
                "INFO pass: 192.0.2.11 is listed in wl.test: listed in wl.test",
                "INFO pass: 192.0.2.12 is listed in wl.test: 192.0.2.12 is known",
                "INFO pass: 192.0.2.3 is listed in bl2.test: listed in bl2.test",
                "INFO skip: 192.0.2.1 is not listed in any of 2 zones",
                "ERROR error: 192.0.2.5 could not be checked (bl2.test: answered 192.0.2.99, \
                 outside 127.0.0.0/8); not whitelisted",
            ]
        );
    }

    #[test]
    fn a_dead_nameserver_whitelists_nobody() {
        let dead = SilentDns::start();
        let log = LogCapture::default();
        let server = Harness::new()
            .silent_dns(&dead, "0.3")
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "dns_whitelist_soft\nrcpt_ok")
            .file("whitelist_zones", "wl.test\nwl2.test")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(visit(&server, "192.0.2.10"), (None, OK.to_string()));
        // Four lookups at once cost one timeout.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let lines = crate::test_support::summary(&log, "dns_whitelist_soft");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("ERROR error: 192.0.2.10 could not be checked (wl.test: "),
            "{lines:?}"
        );
        assert!(lines[0].ends_with("; not whitelisted"), "{lines:?}");
    }

    #[test]
    fn without_zones_nothing_is_asked() {
        // No dns_servers either: asking anything would go to the machine's resolver.
        let (server, log) = crate::test_support::start("dns_whitelist_soft");
        assert_eq!(visit(&server, "192.0.2.10").0, None);
        assert_eq!(
            crate::test_support::summary(&log, "dns_whitelist_soft"),
            ["INFO skip: no zones in whitelist_zones"]
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_file_and_line() {
        for (text, want) in [
            (
                "wl.test\n192.0.2.1/24",
                "whitelist_zones:2: \"192.0.2.1/24\" is not a DNS zone name",
            ),
            (
                "wl.test\nWL.TEST",
                "whitelist_zones:2: zone wl.test is listed twice",
            ),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", "dns_whitelist_soft")
                .file("whitelist_zones", text)
                .build()
                .expect_err("should be refused")
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        for (line, want) in [
            (
                "dns_whitelist_soft timeout x",
                "timeout must be a number of seconds",
            ),
            ("dns_whitelist_soft bogus_arg 1", "unknown argument"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: dns_whitelist_soft: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
