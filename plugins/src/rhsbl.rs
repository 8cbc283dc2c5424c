//! # NAME
//!
//! rhsbl - refuse mail whose sender domain is on a DNS domain blocklist
//!
//! # DESCRIPTION
//!
//! Looks the domain of the envelope sender up in the domain blocklists (RHSBLs, "right-hand
//! side" lists) named in `rhsbl_zones`, as RFC 5782 §3 describes: `example.net` is listed
//! in `dbl.example.org` when `example.net.dbl.example.org` has records. The client's
//! HELO/EHLO name is looked up too (see `helo`), as the original plugin did.
//!
//! The queries, one per name and zone, are all sent at `MAIL` and run while the client
//! goes on; their answers are read at the first `RCPT`, where the decision is made. A
//! listing makes every recipient of the transaction refused with the reason the list
//! gives (see `rhsbl_zones`), except the recipients `postmaster`, `abuse`,
//! `mailer-daemon` and `root` (in any case, at any domain), who stay reachable as with
//! `dnsbl`.
//!
//! Nothing is looked up, and the plugin logs `skip`, for the null sender `<>` (bounces
//! have no sender domain), for a sender given as an address literal, and for immune
//! clients: relay clients, authenticated users, whitelisted hosts and whitelisted senders.
//!
//! Load it before `rcpt_ok` (which ends the RCPT stage).
//!
//! ## DNS failures
//!
//! A list that cannot be asked (a timeout, SERVFAIL, no nameserver) refuses nobody: the
//! plugin logs `error: ...` naming what failed and lets the mail go on, as if the domain
//! were not listed. A blocklist is one sign among several, and an outage of a list must
//! not stop all mail (fail open). A failure is never logged as `pass`. When another
//! lookup does find a listing, the listing counts. An A record outside 127.0.0.0/8 is no
//! listing (RFC 5782 §2.1) and counts as a failure.
//!
//! # CONFIGURATION
//!
//! ## helo *0|1*
//!
//! Default: `1`. Whether the HELO/EHLO name is looked up as well as the sender domain. It
//! is looked up only when it is a domain name with a dot that differs from the sender
//! domain (not an address literal).
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a listing does: `1` refuses the recipients (except those above),
//! `0` only logs `fail, tolerated` and lets the mail go on, `naughty` keeps the refusal
//! for the `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! ## timeout *SECONDS*
//!
//! Default: the value of the `dns_timeout` control file (5 seconds when it is not set).
//! How long to wait for the lists' answers, counted from `MAIL`; decimals are allowed.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `rhsbl_zones`: one domain blocklist per line, `zone` or `zone message`.
//!
//! - `zone` alone: the list is asked for a TXT record, and the refusal reads
//!   `Mail from example.net rejected: <the TXT text>`. Lists that publish only A records
//!   need a message.
//! - `zone message`: the list is asked for an A record, and the refusal reads
//!   `Mail from example.net rejected because it <message>`, so write the message to
//!   follow "it" (`dsn.example.org does not accept bounces`).
//!
//! For a listed HELO name the refusal starts `Mail from HELO <name>` instead. The first
//! zone in the file that lists the sender domain gives the reason; the HELO name only
//! when the sender domain is not listed anywhere.
//!
//! A line whose zone is not a domain name, or a zone listed twice, stops the server from
//! starting, with the file and line named. The file is read once, when the server starts
//! (or reloads). Without it the plugin does nothing.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The decision is made at `RCPT`, where `postmaster` and the other special recipients
//!   can be let through; the last Perl plugin looked up and refused at `MAIL`. The
//!   lookups still start at `MAIL`, all at once.
//! - Zones without a message are asked for TXT and those with one for A, as the Perl
//!   plugin's documentation said (its last code asked A only and then had no reason to
//!   give for zones without a message).
//! - Immune clients and senders are skipped; a DNS failure is logged as `error` and
//!   refuses nobody; an A record outside 127.0.0.0/8 is not a listing.
//! - `reject`, `reject_type`, `timeout` and `helo` are new. Reply text from the lists is
//!   cut to printable ASCII and 300 characters.
//!
//! # SEE ALSO
//!
//! qpsmtpd-dnsbl(7), qpsmtpd-naughty(7), qpsmtpd-whitelist(7), qpsmtpd-plugins(7)

use crate::dnsbl::{Listing, Zone, immunity, is_special, join, listing, zone_name};
use qpsmtpd_core::context::Lookups;
use qpsmtpd_core::protocol::address::is_domain;
use qpsmtpd_core::{
    Address, ConfigError, ConfigLine, Context, Hook, Level, Params, Plugin, PluginSpec,
    Registration, Reject, RejectMode, RejectType, Setup, Verdict,
};
use std::time::Duration;

pub const SPEC: PluginSpec = PluginSpec {
    name: "rhsbl",
    factory: new,
    args: &["helo", "reject", "reject_type", "timeout"],
    rejects: true,
    example: "helo 0 reject naughty timeout 10",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    Ok(Box::new(Rhsbl {
        helo: pairs.flag("helo", true).map_err(|e| setup.error(e))?,
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
        timeout: pairs.seconds("timeout").map_err(|e| setup.error(e))?,
        zones: load_zones(setup.config.lines("rhsbl_zones")?)?,
    }))
}

/// `rhsbl_zones`: `zone` or `zone message`.
fn load_zones(lines: Vec<ConfigLine>) -> Result<Vec<Zone>, ConfigError> {
    let mut zones: Vec<Zone> = Vec::new();
    for line in lines {
        let (name, message) = match line.text.split_once(char::is_whitespace) {
            Some((name, message)) => (name, Some(message.trim().to_string())),
            None => (line.text.as_str(), None),
        };
        let name = zone_name(&line, name)?;
        if zones.iter().any(|z| z.name == name) {
            return Err(line.error(format!("zone {name} is listed twice")));
        }
        zones.push(Zone { name, message });
    }
    Ok(zones)
}

struct Rhsbl {
    helo: bool,
    reject: Reject,
    timeout: Option<Duration>,
    zones: Vec<Zone>,
}

/// This plugin's state in a transaction: the names being looked up, set at `MAIL`.
#[derive(Default)]
struct TxnState {
    current: Option<Check>,
}

struct Check {
    /// The sender domain, then maybe the HELO name; lower case.
    names: Vec<Name>,
    pending: Option<Lookups>,
    finding: Option<Finding>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Sender,
    Helo,
}

struct Name {
    role: Role,
    name: String,
}

#[derive(Clone, Debug)]
enum Finding {
    Listed {
        /// For the log: `sender domain listed.test is listed in rhsbl.test`.
        why: String,
        reason: String,
        errors: Vec<String>,
    },
    NotListed {
        what: String,
    },
    Failed {
        what: String,
        errors: Vec<String>,
    },
}

impl Rhsbl {
    /// The names to look up for this sender, or why there are none.
    fn names(&self, cx: &Context<'_>, sender: &Address) -> Result<Vec<Name>, String> {
        if sender.is_null() {
            return Err("null sender".into());
        }
        if let Some(why) = immunity(cx) {
            return Err(format!("immune ({why})"));
        }
        if self.zones.is_empty() {
            return Err("no zones in rhsbl_zones".into());
        }
        let domain = sender.host().to_ascii_lowercase();
        let mut names = Vec::new();
        if is_domain(&domain) {
            names.push(Name {
                role: Role::Sender,
                name: domain.clone(),
            });
        }
        let helo = cx
            .connection()
            .hello_host
            .as_deref()
            .map(|h| h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase())
            .filter(|h| self.helo && is_domain(h) && h.contains('.') && *h != domain);
        if let Some(helo) = helo {
            names.push(Name {
                role: Role::Helo,
                name: helo,
            });
        }
        if names.is_empty() {
            return Err(format!("no domain to look up in {}", sender.format()));
        }
        Ok(names)
    }

    fn queries(&self, names: &[Name]) -> Vec<qpsmtpd_core::dns::Query> {
        names
            .iter()
            .flat_map(|n| self.zones.iter().map(|z| z.query(&n.name)))
            .collect()
    }

    /// Reads the answers (names in order, each over the zones in order).
    fn evaluate(&self, names: &[Name], answers: &[qpsmtpd_core::dns::DnsResult]) -> Finding {
        let mut listed: Vec<(&Name, Vec<String>, String)> = Vec::new();
        let mut errors = Vec::new();
        let mut answers = answers.iter();
        for name in names {
            let mut zones = Vec::new();
            let mut reason = None;
            for zone in &self.zones {
                let Some(answer) = answers.next() else {
                    break;
                };
                match listing(answer) {
                    Listing::Listed(detail) => {
                        zones.push(zone.name.clone());
                        let subject = match name.role {
                            Role::Sender => format!("Mail from {}", name.name),
                            Role::Helo => format!("Mail from HELO {}", name.name),
                        };
                        reason.get_or_insert_with(|| match &zone.message {
                            Some(m) => format!("{subject} rejected because it {m}"),
                            None if detail.is_empty() => {
                                format!("{subject} rejected: listed in {}", zone.name)
                            }
                            None => format!("{subject} rejected: {detail}"),
                        });
                    }
                    Listing::NotListed => {}
                    Listing::Failed(e) => errors.push(format!("{}.{}: {e}", name.name, zone.name)),
                }
            }
            if let Some(reason) = reason {
                listed.push((name, zones, reason));
            }
        }
        let what = names.iter().map(describe).collect::<Vec<_>>().join(" and ");
        match listed.into_iter().next() {
            Some((name, zones, reason)) => Finding::Listed {
                why: format!("{} is listed in {}", describe(name), join(&zones)),
                reason,
                errors,
            },
            None if errors.is_empty() => Finding::NotListed { what },
            None => Finding::Failed { what, errors },
        }
    }

    /// The transaction's finding, reading the answers the first time.
    fn finding(&self, cx: &mut Context<'_>) -> Option<Finding> {
        let check = cx.state::<TxnState>().current.as_mut()?;
        if let Some(f) = &check.finding {
            return Some(f.clone());
        }
        let pending = check.pending.take();
        let names = std::mem::take(&mut check.names);
        let answers = match pending {
            Some(p) => cx.collect_lookups(p),
            None => cx.resolve_all(&self.queries(&names), self.timeout),
        };
        for (q, a) in self.queries(&names).iter().zip(&answers) {
            cx.log(Level::Debug, format!("{q}: {a:?}"));
        }
        let finding = self.evaluate(&names, &answers);
        if let Some(check) = cx.state::<TxnState>().current.as_mut() {
            check.names = names;
            check.finding = Some(finding.clone());
        }
        Some(finding)
    }
}

fn describe(name: &Name) -> String {
    match name.role {
        Role::Sender => format!("sender domain {}", name.name),
        Role::Helo => format!("HELO name {}", name.name),
    }
}

impl Plugin for Rhsbl {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Mail.into(), Hook::Rcpt.into()]
    }

    fn mail(&self, cx: &mut Context<'_>, sender: &Address, _: &Params) -> Verdict {
        cx.state::<TxnState>().current = None;
        match self.names(cx, sender) {
            Err(why) => cx.skip(why),
            Ok(names) => {
                let queries = self.queries(&names);
                cx.log(
                    Level::Debug,
                    format!(
                        "looking up {}",
                        queries
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                let pending = cx.start_lookups(queries, self.timeout);
                cx.state::<TxnState>().current = Some(Check {
                    names,
                    pending: Some(pending),
                    finding: None,
                });
            }
        }
        Verdict::Declined
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        if cx.state::<TxnState>().current.is_none() {
            // Skipped (and logged) at MAIL.
            return Verdict::Declined;
        }
        if let Some(why) = immunity(cx) {
            cx.skip(format!("immune ({why})"));
            return Verdict::Declined;
        }
        let Some(finding) = self.finding(cx) else {
            return Verdict::Declined;
        };
        match finding {
            Finding::Listed {
                why,
                reason,
                errors,
            } => {
                let mut why = why;
                if !errors.is_empty() {
                    why.push_str(&format!(" (failed: {})", errors.join("; ")));
                }
                if is_special(rcpt) {
                    cx.skip(format!("{} is always reachable; {why}", rcpt.format()));
                    return Verdict::Declined;
                }
                self.reject.apply(cx, &reason, &why)
            }
            Finding::NotListed { what } => {
                cx.pass(format!(
                    "{what} not listed in any of {} zones",
                    self.zones.len()
                ));
                Verdict::Declined
            }
            Finding::Failed { what, errors } => {
                cx.error(format!(
                    "{what} could not be checked ({}); not refused",
                    errors.join("; ")
                ));
                Verdict::Declined
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer};
    use std::time::Instant;

    fn start(dns: &DnsServer, plugins: &str, zones: &str) -> (TestServer, LogCapture) {
        crate::test_support::start_with_dns(dns, plugins, &[("rhsbl_zones", zones)])
    }

    /// Greets with `helo`, sends MAIL from `sender`, and returns the replies to `to`.
    fn attempt(server: &TestServer, helo: &str, sender: &str, to: &[&str]) -> Vec<String> {
        let mut s = server.session_from(ConnectionInfo::from_ip("192.0.2.1".parse().unwrap()));
        assert!(s.connect().starts_with("220 "));
        assert!(s.command(&format!("EHLO {helo}")).starts_with("250"));
        let mail = s.command(&format!("MAIL FROM:<{sender}>"));
        assert!(mail.starts_with("250 "), "{mail}");
        s.rcpt_replies(to)
    }

    fn one(server: &TestServer, helo: &str, sender: &str) -> String {
        attempt(server, helo, sender, &["user@example.com"]).remove(0)
    }

    const OK: &str = "250 2.1.5 <user@example.com>, recipient ok\r\n";

    #[test]
    fn a_listed_sender_domain_is_refused_with_the_txt_reason() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "rhsbl\nrcpt_ok", "rhsbl.test");
        assert_eq!(
            one(&server, "mail.client.example", "joe@listed.test"),
            "550 5.7.1 Mail from listed.test rejected: listed.test is a known spam source\r\n"
        );
        assert_eq!(one(&server, "mail.client.example", "joe@clean.test"), OK);
        assert_eq!(
            crate::test_support::summary(&log, "rhsbl"),
            [
                "INFO fail: sender domain listed.test is listed in rhsbl.test",
                "INFO pass: sender domain clean.test and HELO name mail.client.example not \
                 listed in any of 1 zones",
            ]
        );
    }

    #[test]
    fn a_zone_with_a_message_needs_only_an_a_record() {
        let dns = DnsServer::start();
        let (server, _) = start(
            &dns,
            "rhsbl\nrcpt_ok",
            "rhsbl.test   is listed at https://rhsbl.test/",
        );
        assert_eq!(
            one(&server, "mail.client.example", "joe@aonly.test"),
            "550 5.7.1 Mail from aonly.test rejected because it is listed at \
             https://rhsbl.test/\r\n"
        );
        // Without a message the TXT record is asked for, which this listing lacks.
        let (server, _) = start(&dns, "rhsbl\nrcpt_ok", "rhsbl.test");
        assert_eq!(one(&server, "mail.client.example", "joe@aonly.test"), OK);
    }

    #[test]
    fn the_helo_name_is_looked_up_too_unless_helo_0() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "rhsbl\nrcpt_ok", "rhsbl.test");
        assert_eq!(
            one(&server, "BadHelo.test.", "joe@clean.test"),
            "550 5.7.1 Mail from HELO badhelo.test rejected: badhelo.test is a known spam \
             host\r\n"
        );
        // The sender domain's listing comes first.
        assert_eq!(
            one(&server, "badhelo.test", "joe@listed.test"),
            "550 5.7.1 Mail from listed.test rejected: listed.test is a known spam source\r\n"
        );
        // Address literals and single labels are not looked up.
        assert_eq!(one(&server, "[192.0.2.1]", "joe@clean.test"), OK);
        assert!(log.contains("pass: sender domain clean.test not listed in any of 1 zones"));

        let (server, _) = start(&dns, "rhsbl helo 0\nrcpt_ok", "rhsbl.test");
        assert_eq!(one(&server, "badhelo.test", "joe@clean.test"), OK);
    }

    #[test]
    fn postmaster_stays_reachable_and_every_other_recipient_is_refused() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "rhsbl\nrcpt_ok", "rhsbl.test");
        let replies = attempt(
            &server,
            "mail.client.example",
            "joe@listed.test",
            &[
                "user@example.com",
                "postmaster@example.com",
                "other@example.com",
            ],
        );
        assert!(
            replies[0].starts_with("550 5.7.1 Mail from listed.test"),
            "{replies:?}"
        );
        assert!(replies[1].starts_with("250 "), "{replies:?}");
        assert!(
            replies[2].starts_with("550 5.7.1 Mail from listed.test"),
            "{replies:?}"
        );
        assert_eq!(
            crate::test_support::summary(&log, "rhsbl"),
            [
                "INFO fail: sender domain listed.test is listed in rhsbl.test",
                "INFO skip: <postmaster@example.com> is always reachable; sender domain \
                 listed.test is listed in rhsbl.test",
                "INFO fail: sender domain listed.test is listed in rhsbl.test",
            ]
        );
    }

    #[test]
    fn null_senders_and_immune_clients_are_skipped() {
        let dns = DnsServer::start();
        let log = LogCapture::default();
        let server = Harness::new()
            .dns(&dns)
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "whitelist\nrhsbl\nrcpt_ok")
            .file("rhsbl_zones", "rhsbl.test")
            .file("whitelistsenders", "listed.test")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert_eq!(one(&server, "badhelo.test", ""), OK);
        assert_eq!(one(&server, "mail.client.example", "joe@listed.test"), OK);
        assert_eq!(one(&server, "mail.client.example", "joe@[192.0.2.7]"), OK);
        assert_eq!(
            crate::test_support::summary(&log, "rhsbl"),
            [
                "INFO skip: null sender",
                "INFO skip: immune (whitelisted sender)",
                "INFO pass: HELO name mail.client.example not listed in any of 1 zones",
            ]
        );
    }

    #[test]
    fn reject_0_and_naughty() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "rhsbl reject 0\nrcpt_ok", "rhsbl.test");
        assert_eq!(one(&server, "mail.client.example", "joe@listed.test"), OK);
        assert_eq!(
            crate::test_support::summary(&log, "rhsbl"),
            ["INFO fail, tolerated: sender domain listed.test is listed in rhsbl.test"]
        );
        let (server, _) = start(
            &dns,
            "rhsbl reject naughty reject_type temp\nnaughty\nrcpt_ok",
            "rhsbl.test",
        );
        assert_eq!(
            one(&server, "mail.client.example", "joe@listed.test"),
            "450 4.7.1 (rhsbl) Mail from listed.test rejected: listed.test is a known spam \
             source\r\n"
        );
    }

    #[test]
    fn each_transaction_is_looked_up_anew() {
        let dns = DnsServer::start();
        let (server, _) = start(&dns, "rhsbl helo 0\nrcpt_ok", "rhsbl.test");
        let mut s = server.session_from(ConnectionInfo::from_ip("192.0.2.1".parse().unwrap()));
        s.begin("joe@listed.test");
        assert!(s.command("RCPT TO:<user@example.com>").starts_with("550 "));
        assert!(s.command("RSET").starts_with("250 "));
        assert!(s.command("MAIL FROM:<joe@clean.test>").starts_with("250 "));
        assert_eq!(s.command("RCPT TO:<user@example.com>"), OK);
        assert!(s.command("RSET").starts_with("250 "));
        assert!(s.command("MAIL FROM:<>").starts_with("250 "));
        assert_eq!(s.command("RCPT TO:<user@example.com>"), OK);
    }

    #[test]
    fn a_dead_nameserver_fails_open_with_an_error() {
        let dead = SilentDns::start();
        let log = LogCapture::default();
        let zones: Vec<String> = (0..10).map(|i| format!("z{i}.rhsbl.test")).collect();
        let server = Harness::new()
            .silent_dns(&dead, "0.3")
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "rhsbl\nrcpt_ok")
            .file("rhsbl_zones", &zones.join("\n"))
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let started = Instant::now();
        assert_eq!(one(&server, "mail.client.example", "joe@listed.test"), OK);
        // Twenty lookups that time out cost one timeout, not twenty.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "took {took:?}");
        let lines = crate::test_support::summary(&log, "rhsbl");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "ERROR error: sender domain listed.test and HELO name mail.client.example \
                 could not be checked (listed.test.z0.rhsbl.test: "
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_file_and_line() {
        for (text, want) in [
            (
                "rhsbl.test\nbad_zone!",
                "rhsbl_zones:2: \"bad_zone!\" is not a DNS zone name",
            ),
            (
                "rhsbl.test\nRHSBL.TEST. again",
                "rhsbl_zones:2: zone rhsbl.test is listed twice",
            ),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", "rhsbl")
                .file("rhsbl_zones", text)
                .build()
                .expect_err("should be refused")
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        for (line, want) in [
            ("rhsbl helo maybe", "helo must be 0 or 1"),
            ("rhsbl reject connect", "reject must be 0, 1 or naughty"),
            ("rhsbl timeout -1", "timeout must be a number of seconds"),
            ("rhsbl bogus_arg 1", "unknown argument"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: rhsbl: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }
}
