//! # NAME
//!
//! resolvable_fromhost - refuse senders whose domain cannot receive mail
//!
//! # DESCRIPTION
//!
//! At `MAIL FROM`, checks that the sender's domain (the part after `@`) could receive a
//! reply, as a bounce would need:
//!
//! 1. Its MX records: the domain passes when one of its mail exchangers has an address
//!    (A or AAAA) outside the invalid ranges (see *Files*). The exchangers are looked up
//!    all at once.
//! 2. A domain with a *null MX* (RFC 7505: `MX 0 .`) says it receives no mail at all, so it
//!    fails, whatever else it publishes.
//! 3. A domain without MX records is its own mail exchanger (the *implicit MX* of RFC 5321
//!    §5.1): it passes when it has an address outside the invalid ranges.
//!
//! A domain that does not exist, has neither MX nor address, or whose every mail exchanger
//! is unusable fails with `450 4.1.8 FQDN required in the envelope sender` (with the
//! default `reject_type temp`); a null MX fails with `450 4.7.27 Sender address has null MX`.
//!
//! The null sender `<>` and immune clients (relay clients, authenticated users,
//! whitelisted hosts and senders) are skipped. A sender at an address literal
//! (`user@[192.0.2.1]`) is skipped too, unless the address is in an invalid range, but
//! costs a karma point. Every failure costs a karma point.
//!
//! The outcome is left in the transaction note `resolvable_fromhost` for other plugins:
//! `mx`, `a` (resolved by address), `ip` (an address literal), `null` (the null sender),
//! `whitelist` (an immune client), or the reason of a failure (`invalid MX for
//! example.test`, `null MX for example.test`, ...). The domain is in
//! `resolvable_fromhost_host`.
//!
//! A temporary DNS failure (timeout, SERVFAIL) never passes: it follows the `reject`
//! setting, but always with a temporary reply: `450 4.4.3 Temporary address resolution
//! failure` (421 and closing the connection with `reject_type disconnect`), so the sender
//! tries again later. With `reject 0` it is logged as `fail, tolerated`.
//!
//! Each `MAIL FROM` logs one line: `pass: example.net has MX at mail.example.net
//! (192.0.2.25)`, `fail: ...`, `skip: null sender`.
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
//! Default: `temp`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! The default defers mail from unresolvable domains rather than refusing it, as the old
//! `require_resolvable_fromhost` did: a domain whose DNS is broken for an hour is not
//! refused for good. Set `reject_type perm` to refuse at once.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `invalid_resolvable_fromhost`: the address ranges a mail exchanger (or the domain's own
//! address) may not be in, one per line: a CIDR block (`127.0.0.0/8`, `fe80::/10`), a full
//! address, or the leading groups of an address (`10.`). A line that is none of these stops
//! the server from starting, with the file and line named.
//!
//! When the file does not exist, the built-in list applies: `0.0.0.0/8`, `10.0.0.0/8`,
//! `127.0.0.0/8`, `169.254.0.0/16`, `224.0.0.0/4` (the list of qpsmtpd's sample file) and
//! their IPv6 counterparts `::/128`, `::1/128`, `fe80::/10`, `ff00::/8`. A file that exists
//! replaces the list entirely, so an empty file allows every address.
//!
//! The file is read once, when the server starts (or reloads). The nameservers are those of
//! `dns_servers` (or `/etc/resolv.conf`), with the `dns_timeout` deadline.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - A null MX (RFC 7505) fails, with its own reply; the Perl plugin took the `.` for a
//!   host name and failed it only by chance.
//! - A temporary DNS failure defers the sender (when rejecting) instead of passing as an
//!   unresolvable domain sometimes did; after a timeout the Perl plugin could report the
//!   domain as not resolvable and refuse it for good with `reject_type perm`.
//! - Every address of every mail exchanger is considered, IPv6 included; the Perl plugin
//!   judged each exchanger by its first address, and the invalid ranges were IPv4 only.
//! - The invalid ranges are read once at startup, with the built-in list when the file is
//!   missing; the Perl plugin re-read the file for every sender and kept the entries of
//!   earlier versions of it in memory.
//! - Immune clients and the null sender log a `skip` line.
//!
//! # SEE ALSO
//!
//! qpsmtpd-rhsbl(7), qpsmtpd-sender_permitted_from(7), qpsmtpd-naughty(7),
//! qpsmtpd-plugins(7), RFC 7505, RFC 5321 section 5.1

use crate::fcrdns::join;
use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::dns::{DnsError, DnsResult, Query};
use qpsmtpd_core::net::IpRule;
use qpsmtpd_core::protocol::address::literal_ip;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Level, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};
use std::net::IpAddr;

pub const SPEC: PluginSpec = PluginSpec {
    name: "resolvable_fromhost",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject 0 reject_type temp",
};

/// The ranges used when `invalid_resolvable_fromhost` does not exist.
const DEFAULT_INVALID: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "::/128",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
];

/// The most mail exchangers looked up for one domain.
const MAX_MX: usize = 10;

const UNRESOLVABLE: &str = "5.1.8 FQDN required in the envelope sender";
const NULL_MX: &str = "5.7.27 Sender address has null MX";
const TEMPORARY: &str = "4.4.3 Temporary address resolution failure";

/// The note other plugins read.
const NOTE: &str = "resolvable_fromhost";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let file = "invalid_resolvable_fromhost";
    let invalid = if setup.config.locate(file).is_some() {
        setup
            .config
            .lines(file)?
            .into_iter()
            .map(|line| match IpRule::parse(&line.text) {
                Ok(rule) => Ok((rule, line.text)),
                Err(e) => Err(line.error(e)),
            })
            .collect::<Result<_, _>>()?
    } else {
        DEFAULT_INVALID
            .iter()
            .map(|r| (IpRule::parse(r).expect("built-in range"), r.to_string()))
            .collect()
    };
    Ok(Box::new(ResolvableFromhost {
        reject: setup.reject(&args, RejectMode::On, RejectType::Temp)?,
        invalid,
    }))
}

struct ResolvableFromhost {
    reject: Reject,
    invalid: Vec<(IpRule, String)>,
}

/// What the DNS says of a sender domain.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Resolved: the note (`mx`, `a`, `ip`) and what was found.
    Pass(&'static str, String),
    /// Cannot receive mail: the note, the reply and the log line.
    Fail(String, &'static str, String),
    /// The DNS did not answer.
    Temporary(String),
}

impl ResolvableFromhost {
    /// The invalid range holding `ip`, if any.
    fn invalid_range(&self, ip: IpAddr) -> Option<&str> {
        let ip = strip_mapped(ip);
        self.invalid
            .iter()
            .find(|(rule, _)| rule.matches(ip))
            .map(|(_, text)| text.as_str())
    }

    /// The first address outside the invalid ranges; debug-logs the others.
    fn first_valid(&self, cx: &Context<'_>, name: &str, addrs: &[IpAddr]) -> Option<IpAddr> {
        let mut found = None;
        for &ip in addrs {
            match self.invalid_range(ip) {
                Some(range) => cx.log(
                    Level::Debug,
                    format!("{name}: {ip} is in invalid range {range}"),
                ),
                None => {
                    found.get_or_insert(ip);
                }
            }
        }
        found
    }

    fn check(&self, cx: &mut Context<'_>, host: &str) -> Outcome {
        // MX, A and AAAA at once: the addresses are the implicit MX when there is no MX.
        let first = cx.resolve_all(
            &[
                Query::Mx(host.to_string()),
                Query::A(host.to_string()),
                Query::Aaaa(host.to_string()),
            ],
            None,
        );
        match &first[0] {
            Ok(answer) => self.check_mx(cx, host, answer.mx()),
            Err(DnsError::NotFound) => {
                cx.log(Level::Debug, format!("{host} has no MX"));
                self.check_implicit(cx, host, &first[1..])
            }
            Err(e) => Outcome::Temporary(format!("MX lookup for {host}: {e}")),
        }
    }

    fn check_mx(&self, cx: &mut Context<'_>, host: &str, mx: &[qpsmtpd_core::dns::Mx]) -> Outcome {
        let mut exchanges: Vec<&str> = Vec::new();
        for m in mx {
            if !m.exchange.is_empty() && !exchanges.contains(&m.exchange.as_str()) {
                exchanges.push(&m.exchange);
            }
        }
        exchanges.truncate(MAX_MX);
        if exchanges.is_empty() {
            return Outcome::Fail(
                format!("null MX for {host}"),
                NULL_MX,
                format!("{host} has a null MX (RFC 7505)"),
            );
        }
        cx.log(Level::Debug, format!("{host} MX: {}", exchanges.join(" ")));
        // An exchanger written as an address needs no lookup.
        let named: Vec<&str> = exchanges
            .iter()
            .copied()
            .filter(|e| e.parse::<IpAddr>().is_err())
            .collect();
        let queries: Vec<Query> = named
            .iter()
            .flat_map(|n| [Query::A(n.to_string()), Query::Aaaa(n.to_string())])
            .collect();
        let answers = cx.resolve_all(&queries, None);
        let mut trouble = None;
        for exchange in &exchanges {
            let (addrs, error) = match exchange.parse::<IpAddr>() {
                Ok(ip) => (vec![ip], None),
                Err(_) => {
                    let i = named.iter().position(|n| n == exchange).unwrap_or(0);
                    addresses(&answers[2 * i..2 * i + 2])
                }
            };
            if let Some(ip) = self.first_valid(cx, exchange, &addrs) {
                return Outcome::Pass("mx", format!("{host} has MX at {exchange} ({ip})"));
            }
            if let Some(e) = error {
                cx.log(Level::Debug, format!("lookup of MX {exchange}: {e}"));
                trouble.get_or_insert(format!("lookup of MX {exchange} of {host}: {e}"));
            } else if addrs.is_empty() {
                cx.log(Level::Debug, format!("MX {exchange} has no address"));
            }
        }
        // An exchanger that did not answer might have been a good one.
        match trouble {
            Some(why) => Outcome::Temporary(why),
            None => Outcome::Fail(
                format!("invalid MX for {host}"),
                UNRESOLVABLE,
                format!("no MX of {host} has a valid address"),
            ),
        }
    }

    fn check_implicit(&self, cx: &mut Context<'_>, host: &str, answers: &[DnsResult]) -> Outcome {
        let (addrs, error) = addresses(answers);
        if let Some(ip) = self.first_valid(cx, host, &addrs) {
            return Outcome::Pass("a", format!("{host} has address {ip} (no MX)"));
        }
        if let Some(e) = error {
            return Outcome::Temporary(format!("address lookup for {host}: {e}"));
        }
        if addrs.is_empty() {
            return Outcome::Fail(
                format!("{host} has no MX and no address"),
                UNRESOLVABLE,
                format!("{host} has no MX and no address"),
            );
        }
        Outcome::Fail(
            format!("invalid address for {host}"),
            UNRESOLVABLE,
            format!(
                "{host} has no MX, and its address ({}) is invalid",
                join(&addrs)
            ),
        )
    }
}

/// The addresses of A and AAAA answers, and a temporary error if one of them had one.
fn addresses(answers: &[DnsResult]) -> (Vec<IpAddr>, Option<DnsError>) {
    let mut addrs = Vec::new();
    let mut error = None;
    for a in answers {
        match a {
            Ok(a) => addrs.extend_from_slice(a.addrs()),
            Err(DnsError::NotFound) => {}
            Err(e) => {
                error.get_or_insert(e.clone());
            }
        }
    }
    (addrs, error)
}

impl Plugin for ResolvableFromhost {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Mail.into()]
    }

    fn mail(&self, cx: &mut Context<'_>, sender: &Address, _: &Params) -> Verdict {
        if cx.is_immune() {
            cx.transaction_mut().notes.set(NOTE, "whitelist");
            cx.skip("immune: relay client, authenticated or whitelisted");
            return Verdict::Declined;
        }
        if sender.is_null() {
            cx.transaction_mut().notes.set(NOTE, "null");
            cx.skip("null sender");
            return Verdict::Declined;
        }
        let host = sender.host().to_ascii_lowercase();
        let outcome = if host.is_empty() {
            Outcome::Fail(
                "unparsable host".into(),
                UNRESOLVABLE,
                format!("{} has no domain", sender.format()),
            )
        } else {
            cx.transaction_mut()
                .notes
                .set("resolvable_fromhost_host", host.as_str());
            match literal_ip(&host) {
                Some(ip) => match self.invalid_range(ip) {
                    Some(range) => Outcome::Fail(
                        format!("invalid address literal {host}"),
                        UNRESOLVABLE,
                        format!("{host} is in invalid range {range}"),
                    ),
                    None => {
                        cx.adjust_karma(-1);
                        cx.transaction_mut().notes.set(NOTE, "ip");
                        cx.skip(format!("{host} is an address literal"));
                        return Verdict::Declined;
                    }
                },
                None => self.check(cx, &host),
            }
        };
        match outcome {
            Outcome::Pass(note, what) => {
                cx.transaction_mut().notes.set(NOTE, note);
                cx.pass(what);
                Verdict::Declined
            }
            Outcome::Fail(note, smtp, why) => {
                cx.transaction_mut().notes.set(NOTE, note);
                cx.adjust_karma(-1);
                self.reject.apply(cx, smtp, &why)
            }
            Outcome::Temporary(why) => {
                cx.transaction_mut().notes.set(NOTE, why.as_str());
                self.reject.temporary().apply(cx, TEMPORARY, &why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcrdns::tests::from;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer, TestSession};

    fn start(dns: &DnsServer, plugins: &str, files: &[(&str, &str)]) -> (TestServer, LogCapture) {
        let log = LogCapture::default();
        let server = files
            .iter()
            .fold(Harness::new(), |h, (name, text)| h.file(name, text))
            .catalogue(crate::CATALOGUE)
            .dns(dns)
            .file("rcpthosts", "example.com")
            .file("plugins", plugins)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        (server, log)
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "resolvable_fromhost")
    }

    /// The reply to `MAIL FROM:<sender>` in a new session from 192.0.2.99.
    fn mail_from(server: &TestServer, sender: &str) -> (String, TestSession) {
        let mut s = server.session_from(from("192.0.2.99"));
        s.connect();
        s.command("EHLO client.example");
        let reply = s.command(&format!("MAIL FROM:<{sender}>"));
        (reply, s)
    }

    fn note(s: &TestSession) -> Option<String> {
        s.session
            .transaction()
            .notes
            .get_str(NOTE)
            .map(String::from)
    }

    const OK: &str = "250 2.1.0 <{}>, sender OK - how exciting to get mail from you!\r\n";

    #[test]
    fn domains_that_can_receive_mail_pass() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "resolvable_fromhost", &[]);
        for (sender, want_note, line) in [
            (
                "a@withmx.hosts.test",
                "mx",
                "INFO pass: withmx.hosts.test has MX at mail.withmx.hosts.test (192.0.2.25)",
            ),
            (
                "a@TwoMX.hosts.test",
                "mx",
                "INFO pass: twomx.hosts.test has MX at mail.twomx.hosts.test (2001:db8::25)",
            ),
            (
                "a@aonly.hosts.test",
                "a",
                "INFO pass: aonly.hosts.test has address 192.0.2.26 (no MX)",
            ),
            (
                "a@v6only.hosts.test",
                "a",
                "INFO pass: v6only.hosts.test has address 2001:db8::26 (no MX)",
            ),
        ] {
            let (reply, s) = mail_from(&server, sender);
            assert_eq!(reply, OK.replace("{}", sender), "{sender}");
            assert_eq!(note(&s).as_deref(), Some(want_note), "{sender}");
            assert_eq!(summary(&log).last().unwrap(), line);
        }
        let (_, s) = mail_from(&server, "a@withmx.hosts.test");
        assert_eq!(
            s.session
                .transaction()
                .notes
                .get_str("resolvable_fromhost_host"),
            Some("withmx.hosts.test")
        );
    }

    #[test]
    fn domains_that_cannot_receive_mail_are_deferred() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "resolvable_fromhost", &[]);
        let deferred = "450 4.1.8 FQDN required in the envelope sender\r\n";
        for (sender, reply, want_note, line) in [
            (
                "a@badmx.hosts.test",
                deferred,
                "invalid MX for badmx.hosts.test",
                "INFO fail: no MX of badmx.hosts.test has a valid address",
            ),
            (
                "a@nullmx.hosts.test",
                "450 4.7.27 Sender address has null MX\r\n",
                "null MX for nullmx.hosts.test",
                "INFO fail: nullmx.hosts.test has a null MX (RFC 7505)",
            ),
            (
                "a@linklocal.hosts.test",
                deferred,
                "invalid address for linklocal.hosts.test",
                "INFO fail: linklocal.hosts.test has no MX, and its address (169.254.1.1) is invalid",
            ),
            (
                "a@txtonly.hosts.test",
                deferred,
                "txtonly.hosts.test has no MX and no address",
                "INFO fail: txtonly.hosts.test has no MX and no address",
            ),
            (
                "a@nosuch.hosts.test",
                deferred,
                "nosuch.hosts.test has no MX and no address",
                "INFO fail: nosuch.hosts.test has no MX and no address",
            ),
            (
                "a@[127.0.0.1]",
                deferred,
                "invalid address literal [127.0.0.1]",
                "INFO fail: [127.0.0.1] is in invalid range 127.0.0.0/8",
            ),
        ] {
            let (got, s) = mail_from(&server, sender);
            assert_eq!(got, reply, "{sender}");
            assert_eq!(note(&s).as_deref(), Some(want_note), "{sender}");
            assert_eq!(summary(&log).last().unwrap(), line);
            assert_eq!(s.session.connection().notes.get_int("karma"), Some(-1));
        }
    }

    #[test]
    fn reject_type_perm_refuses_and_reject_0_tolerates() {
        let dns = DnsServer::start();
        let (server, _) = start(&dns, "resolvable_fromhost reject_type perm", &[]);
        let (reply, _) = mail_from(&server, "a@badmx.hosts.test");
        assert_eq!(reply, "550 5.1.8 FQDN required in the envelope sender\r\n");

        let (server, log) = server_with(&dns, "resolvable_fromhost reject 0");
        let (reply, _) = mail_from(&server, "a@badmx.hosts.test");
        assert_eq!(reply, OK.replace("{}", "a@badmx.hosts.test"));
        assert_eq!(
            summary(&log),
            ["INFO fail, tolerated: no MX of badmx.hosts.test has a valid address"]
        );

        let (server, log) = server_with(&dns, "resolvable_fromhost reject naughty");
        let (reply, s) = mail_from(&server, "a@nullmx.hosts.test");
        assert!(reply.starts_with("250 "));
        assert_eq!(
            s.session.connection().notes.get_str("naughty"),
            Some("5.7.27 (resolvable_fromhost) Sender address has null MX")
        );
        assert_eq!(
            summary(&log),
            ["INFO fail, naughty: nullmx.hosts.test has a null MX (RFC 7505)"]
        );
    }

    fn server_with(dns: &DnsServer, plugins: &str) -> (TestServer, LogCapture) {
        start(dns, plugins, &[])
    }

    #[test]
    fn the_invalid_ranges_come_from_the_file() {
        let dns = DnsServer::start();
        // An empty file allows everything: loopback MX hosts too.
        let (server, log) = start(
            &dns,
            "resolvable_fromhost",
            &[("invalid_resolvable_fromhost", "# nothing is invalid")],
        );
        let (reply, _) = mail_from(&server, "a@linklocal.hosts.test");
        assert!(reply.starts_with("250 "), "{reply}");
        let (reply, _) = mail_from(&server, "a@badmx.hosts.test");
        assert!(reply.starts_with("250 "), "{reply}");
        assert_eq!(
            summary(&log),
            [
                "INFO pass: linklocal.hosts.test has address 169.254.1.1 (no MX)",
                "INFO pass: badmx.hosts.test has MX at lo.badmx.hosts.test (10.1.2.3)",
            ]
        );
        // A listed range fails, the built-in ones no longer do.
        let (server, log) = start(
            &dns,
            "resolvable_fromhost",
            &[("invalid_resolvable_fromhost", "192.0.2.0/24")],
        );
        let (reply, _) = mail_from(&server, "a@withmx.hosts.test");
        assert!(reply.starts_with("450 4.1.8 "), "{reply}");
        let (reply, _) = mail_from(&server, "a@twomx.hosts.test");
        assert!(reply.starts_with("250 "), "{reply}");
        assert_eq!(
            summary(&log).last().unwrap(),
            "INFO pass: twomx.hosts.test has MX at lo.twomx.hosts.test (127.0.0.2)"
        );
    }

    #[test]
    fn null_sender_literals_and_immune_clients_are_skipped() {
        let dead = SilentDns::start();
        let log = LogCapture::default();
        let server = Harness::new()
            .silent_dns(&dead, "0.2")
            .catalogue(crate::CATALOGUE)
            .file("relayclients", "192.0.2.1")
            .file("plugins", "relay\nresolvable_fromhost reject_type perm")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let (reply, s) = mail_from(&server, "");
        assert_eq!(
            reply,
            "250 2.1.0 <>, sender OK - how exciting to get mail from you!\r\n"
        );
        assert_eq!(note(&s).as_deref(), Some("null"));
        let (reply, s) = mail_from(&server, "a@[192.0.2.7]");
        assert!(reply.starts_with("250 "), "{reply}");
        assert_eq!(note(&s).as_deref(), Some("ip"));
        assert_eq!(s.session.connection().notes.get_int("karma"), Some(-1));
        let mut s = server.session_from(from("192.0.2.1"));
        s.connect();
        s.command("EHLO client.example");
        assert!(
            s.command("MAIL FROM:<a@nosuch.hosts.test>")
                .starts_with("250 ")
        );
        assert_eq!(note(&s).as_deref(), Some("whitelist"));
        assert_eq!(
            summary(&log),
            [
                "INFO skip: null sender",
                "INFO skip: [192.0.2.7] is an address literal",
                "INFO skip: immune: relay client, authenticated or whitelisted",
            ]
        );
    }

    #[test]
    fn a_dns_server_that_never_answers_defers() {
        let dead = SilentDns::start();
        let build = |plugins: &str| crate::test_support::start_silent(&dead, "0.3", plugins);
        // Even with reject_type perm, a DNS failure is only ever a temporary refusal.
        let (server, log) = build("resolvable_fromhost reject_type perm");
        let (reply, s) = mail_from(&server, "a@withmx.hosts.test");
        assert_eq!(reply, "450 4.4.3 Temporary address resolution failure\r\n");
        let line = summary(&log).pop().unwrap();
        assert!(
            line.starts_with("INFO fail: MX lookup for withmx.hosts.test: "),
            "{line}"
        );
        assert!(
            note(&s)
                .unwrap()
                .starts_with("MX lookup for withmx.hosts.test")
        );
        assert_eq!(s.session.connection().notes.get_int("karma"), None);

        let (server, _) = build("resolvable_fromhost reject_type disconnect");
        let (reply, s) = mail_from(&server, "a@withmx.hosts.test");
        assert_eq!(reply, "421 4.4.3 Temporary address resolution failure\r\n");
        assert!(s.is_closed());

        let (server, log) = build("resolvable_fromhost reject 0");
        let (reply, _) = mail_from(&server, "a@withmx.hosts.test");
        assert!(reply.starts_with("250 "), "{reply}");
        let line = summary(&log).pop().unwrap();
        assert!(
            line.starts_with("INFO fail, tolerated: MX lookup"),
            "{line}"
        );
    }

    #[test]
    fn literals_parse() {
        assert_eq!(literal_ip("[192.0.2.1]"), "192.0.2.1".parse().ok());
        assert_eq!(literal_ip("[IPv6:2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(literal_ip("192.0.2.1"), None);
        assert_eq!(literal_ip("[example.test]"), None);
    }

    #[test]
    fn a_bad_range_names_file_and_line() {
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "resolvable_fromhost")
            .file("invalid_resolvable_fromhost", "127.0.0.0/8\n# x\n10/8")
            .build()
            .expect_err("configuration should be refused")
            .to_string();
        assert!(
            err.contains("invalid_resolvable_fromhost:3: \"10/8\" is not"),
            "{err}"
        );
        for line in [
            "resolvable_fromhost reject maybe",
            "resolvable_fromhost timeout 3",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: resolvable_fromhost: "),
                "{line}: {err}"
            );
        }
    }
}
