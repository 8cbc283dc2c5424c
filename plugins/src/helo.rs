//! # NAME
//!
//! helo - check the host name a client gives in HELO or EHLO
//!
//! # DESCRIPTION
//!
//! Checks the name a client introduces itself with. RFC 5321 asks for the client's fully
//! qualified domain name, or an address literal (`[192.0.2.1]`) when it has none. Spam
//! software gets this wrong in ways a mail server does not: it claims to be a big freemail
//! provider, `localhost`, a bare IP address, or somebody else's address.
//!
//! The `policy` argument picks the checks; they run in this order, and the first that
//! fails decides:
//!
//! | check | policy | fails when the HELO name ... |
//! |---|---|---|
//! | `is_in_badhelo` | all | is listed in `badhelo` (see *Files*) |
//! | `invalid_localhost` | all | is `localhost` and the client is not on a loopback address |
//! | `is_forged_literal` | all | is an address literal other than the client's address |
//! | `is_plain_ip` | all | is a bare IP address (neither a name nor a literal) |
//! | `is_not_fqdn` | rfc, strict | has no dot, or characters other than letters, digits, `-` and `.` (address literals pass) |
//! | `is_address_literal` | strict | is an address literal, even the client's own |
//! | `no_forward_dns` | rfc, strict | does not resolve (no A or AAAA record; address literals pass) |
//! | `no_reverse_dns` | rfc, strict | whatever it is, when the client's address has no PTR record |
//! | `no_matching_dns` | strict | neither resolves to the client's network nor shares its domain with the client's PTR name |
//!
//! `no_matching_dns` is forward-confirmed reverse DNS on the HELO name, made lenient so
//! that pools of servers pass: an address of the HELO name *matches* when it is the
//! client's address or in the same network (the same /24 for IPv4, the same /64 for IPv6),
//! and a PTR name of the client *matches* when it is the HELO name or shares its last two
//! labels (`mx0.example.net` and `mx1.example.net`). The outcome is kept in the connection
//! notes `helo_forward_match` and `helo_reverse_match` (set with `policy rfc` and
//! `strict`), for other plugins. RFC 5321 §4.1.4 forbids refusing mail because the
//! HELO name does not match the client's address, so use `policy strict` with `reject 0`
//! or `reject naughty`.
//!
//! The three DNS queries (A and AAAA of the name, PTR of the client) are sent at once,
//! after the checks that need no DNS, and share the session's DNS cache with `fcrdns`.
//! A temporary DNS failure (timeout, SERVFAIL) fails the DNS check it belongs to, never
//! passes it, but only ever with a temporary rejection:
//! `421 4.4.3 Temporary DNS failure checking your HELO name, try again later` with the
//! default `reject_type disconnect` (450 with `perm` or `temp`).
//!
//! Relay clients and whitelisted hosts are skipped, and so are greetings naming a host in
//! `whitelisthelo` (see qpsmtpd-whitelist(7), loaded before this plugin). A failure costs
//! a karma point; with `policy strict`, a HELO name matching both ways earns one.
//!
//! Every greeting logs one line: `pass: mail.example.net (policy rfc)`, or the failed
//! check and why (`fail: is_plain_ip: 192.0.2.1 is a plain IP address`), or `skip: ...`.
//!
//! Every accepted message gets an `X-HELO` header naming the HELO host (any `X-HELO` the
//! client sent is removed).
//!
//! # CONFIGURATION
//!
//! ## policy *lenient|rfc|strict*
//!
//! Default: `lenient`. Which checks run (see the table above). `lenient` needs no DNS and
//! suits servers that Windows PCs and other sloppy clients send through; `rfc` requires a
//! resolvable fully qualified name and reverse DNS for the client, and refuses a large part
//! of the spam from hosts not yet on any blocklist; `strict` also requires that the name
//! matches the client and refuses address literals.
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! With `policy rfc` or `strict`, clients that must authenticate to send (who have not
//! yet when they greet) may fail: `reject naughty` lets them authenticate, which lifts the
//! deferred rejection.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `disconnect`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! With the default, a failing client hears for instance
//! `550 5.7.1 Plain IP is invalid HELO hostname (RFC 2821)` and is disconnected.
//!
//! ## timeout *SECONDS*
//!
//! Default: the `dns_timeout` control file (5 seconds when it is not set). How long to
//! wait for the DNS answers; decimals are allowed (`0.5`).
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `badhelo`: HELO names to refuse, one per line, compared without regard to case:
//!
//! - a plain name (`yahoo.com`, `aol.com`: names the real providers never use in HELO)
//!   fails only that exact name, with `I do not believe you are yahoo.com.`;
//! - a line containing any of `{ } [ ] ( ) ^ $ | * + ? \ !` is a regular expression
//!   (Rust `regex` syntax, matched anywhere in the name unless anchored) that fails the
//!   names it matches, with `Your HELO hostname is not allowed`; `^(mail|smtp)\d+\.` for
//!   instance;
//! - a regular expression after `!` fails the names it does **not** match: `!\.` refuses
//!   names without a dot.
//!
//! A pattern that does not compile stops the server from starting, with the file and line
//! named. The file is read once, when the server starts (or reloads). The nameservers are
//! those of `dns_servers` (or `/etc/resolv.conf`).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Every `badhelo` line is tried; the Perl plugin gave up at the first regular expression
//!   that did not match, so the lines after it were never checked. Patterns use Rust's
//!   regex syntax (no look-around or back-references) and ignore case.
//! - `is_forged_literal` compares an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`)
//!   with the client's address, as documented; the Perl code looked at plain IP addresses
//!   instead and called every one of them forged. IPv6 literals are recognised throughout.
//! - A temporary DNS failure is a temporary rejection of the check it belongs to. The
//!   Perl plugin let a failed forward lookup pass, but refused for good (disconnecting)
//!   when the reverse lookup failed.
//! - "Does not exist" and "has no address" are one failure, `no_forward_dns`.
//! - The IPv6 network of `no_matching_dns` is the /64, not the /96.
//! - The checks that need no DNS (`is_not_fqdn`, `is_address_literal`) run before those
//!   that do, and the DNS queries are sent together, so a greeting costs one DNS round
//!   trip. Only the failure reported can differ from the Perl order.
//! - `reject_type` can be set (the Perl plugin forced `disconnect`, still the default).
//! - The `helo_forward_match` and `helo_reverse_match` notes are cleared at each greeting,
//!   and a greeting listed in `whitelisthelo` is skipped.
//!
//! # SEE ALSO
//!
//! qpsmtpd-fcrdns(7), qpsmtpd-whitelist(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7),
//! RFC 5321 sections 2.3.5, 4.1.1.1 and 4.1.4

use crate::fcrdns::join;
use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::dns::{DnsError, Query};
use qpsmtpd_core::header::clean_header_text;
use qpsmtpd_core::protocol::address::literal_ip;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Level, Plugin, PluginSpec, Registration, Reject, RejectMode,
    RejectType, Setup, Verdict,
};
use regex::{Regex, RegexBuilder};
use std::net::IpAddr;
use std::time::Duration;

pub const SPEC: PluginSpec = PluginSpec {
    name: "helo",
    factory: new,
    args: &["policy", "reject", "reject_type", "timeout"],
    rejects: true,
    example: "policy lenient reject 0",
};

const TEMPORARY: &str = "4.4.3 Temporary DNS failure checking your HELO name, try again later";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Policy {
    Lenient,
    Rfc,
    Strict,
}

/// One line of `badhelo`.
#[derive(Debug)]
enum BadHelo {
    /// A name, lower-case.
    Name(String),
    /// A regular expression, as written, and whether it is negated (`!`).
    Pattern(Regex, bool, String),
}

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let policy = match args.get("policy").map(str::to_ascii_lowercase).as_deref() {
        None | Some("lenient") => Policy::Lenient,
        Some("rfc") => Policy::Rfc,
        Some("strict") => Policy::Strict,
        Some(other) => {
            return Err(setup.error(format!(
                "policy must be lenient, rfc or strict, not {other:?}"
            )));
        }
    };
    let mut badhelo = Vec::new();
    for line in setup.config.lines("badhelo")? {
        let text = line.text.as_str();
        if !text.contains([
            '{', '}', '[', ']', '(', ')', '^', '$', '|', '*', '+', '?', '\\', '!',
        ]) {
            badhelo.push(BadHelo::Name(text.to_ascii_lowercase()));
            continue;
        }
        let (negated, pattern) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let re = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .map_err(|e| line.error(format!("bad pattern {pattern:?}: {e}")))?;
        badhelo.push(BadHelo::Pattern(re, negated, pattern.to_string()));
    }
    Ok(Box::new(HeloCheck {
        policy,
        reject: setup.reject(&args, RejectMode::On, RejectType::Disconnect)?,
        timeout: args.seconds("timeout").map_err(|e| setup.error(e))?,
        badhelo,
    }))
}

struct HeloCheck {
    policy: Policy,
    reject: Reject,
    /// `None`: the server's `dns_timeout`.
    timeout: Option<Duration>,
    badhelo: Vec<BadHelo>,
}

/// A failed check: the reply text, the log line, and whether it was the DNS's fault.
#[derive(Debug)]
struct Failure {
    smtp: String,
    log: String,
    temporary: bool,
}

fn fail(check: &str, smtp: &str, why: String) -> Failure {
    Failure {
        smtp: format!("5.7.1 {smtp}"),
        log: format!("{check}: {why}"),
        temporary: false,
    }
}

fn temp_fail(check: &str, why: String) -> Failure {
    Failure {
        smtp: TEMPORARY.to_string(),
        log: format!("{check}: {why}"),
        temporary: true,
    }
}

/// The DNS facts the DNS checks read.
struct Lookups {
    /// The HELO name's addresses (`None` for an address literal, which is not looked up).
    forward: Option<Forward>,
    /// The PTR answer for the client.
    reverse: Result<Vec<String>, DnsError>,
}

/// The answers to the A and AAAA queries of the HELO name.
struct Forward {
    addrs: Vec<IpAddr>,
    /// The temporary failures, each with whether it was the A (IPv4) query.
    errors: Vec<(bool, DnsError)>,
}

impl HeloCheck {
    /// Runs the policy's checks on `host`; the summary of a pass, or the first failure.
    fn run(&self, cx: &mut Context<'_>, host: &str, ip: IpAddr) -> Result<String, Failure> {
        let lower = host.to_ascii_lowercase();
        self.is_in_badhelo(host)?;
        invalid_localhost(&lower, ip)?;
        is_forged_literal(host, ip)?;
        is_plain_ip(host)?;
        if self.policy >= Policy::Rfc {
            is_not_fqdn(host)?;
        }
        if self.policy == Policy::Strict {
            is_address_literal(host)?;
        }
        if self.policy == Policy::Lenient {
            return Ok(format!("{host} (policy lenient)"));
        }
        let dns = self.lookups(cx, &lower, ip);
        let forward_match = no_forward_dns(cx, &lower, ip, &dns)?;
        if forward_match {
            cx.connection_mut().notes.set("helo_forward_match", true);
        }
        let reverse_match = no_reverse_dns(cx, &lower, ip, &dns)?;
        if reverse_match {
            cx.connection_mut().notes.set("helo_reverse_match", true);
        }
        if self.policy == Policy::Strict {
            no_matching_dns(host, ip, forward_match, reverse_match, &dns)?;
            if forward_match && reverse_match {
                cx.adjust_karma(1);
            }
            return Ok(format!("{host} (policy strict)"));
        }
        Ok(format!("{host} (policy rfc)"))
    }

    fn is_in_badhelo(&self, host: &str) -> Result<(), Failure> {
        const CHECK: &str = "is_in_badhelo";
        let lower = host.to_ascii_lowercase();
        for bad in &self.badhelo {
            match bad {
                BadHelo::Name(name) if name == lower.trim_end_matches('.') => {
                    return Err(fail(
                        CHECK,
                        &format!("I do not believe you are {host}."),
                        format!("{lower} is in badhelo"),
                    ));
                }
                BadHelo::Pattern(re, negated, text) if re.is_match(&lower) != *negated => {
                    let how = if *negated {
                        "does not match"
                    } else {
                        "matches"
                    };
                    return Err(fail(
                        CHECK,
                        "Your HELO hostname is not allowed",
                        format!("{lower} {how} badhelo pattern {text}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A, AAAA and PTR at once (the name is not looked up when it is a literal).
    fn lookups(&self, cx: &mut Context<'_>, host: &str, ip: IpAddr) -> Lookups {
        let literal = literal_ip(host).is_some();
        let mut queries = vec![Query::Ptr(ip)];
        if !literal {
            let name = host.trim_end_matches('.').to_string();
            queries.push(Query::A(name.clone()));
            queries.push(Query::Aaaa(name));
        }
        let mut answers = cx.resolve_all(&queries, self.timeout).into_iter();
        let reverse = match answers.next() {
            Some(Ok(a)) => Ok(a.names().to_vec()),
            Some(Err(e)) => Err(e),
            None => Err(DnsError::Failed("no answer".into())),
        };
        let forward = (!literal).then(|| {
            let mut addrs = Vec::new();
            let mut errors = Vec::new();
            for (v4, answer) in [true, false].into_iter().zip(answers) {
                match answer {
                    Ok(a) => addrs.extend_from_slice(a.addrs()),
                    Err(DnsError::NotFound) => {}
                    Err(e) => errors.push((v4, e)),
                }
            }
            Forward { addrs, errors }
        });
        Lookups { forward, reverse }
    }
}

fn invalid_localhost(host: &str, ip: IpAddr) -> Result<(), Failure> {
    if host.trim_end_matches('.') == "localhost" && !ip.is_loopback() {
        return Err(fail(
            "invalid_localhost",
            "You are not localhost",
            format!("{ip} says it is localhost"),
        ));
    }
    Ok(())
}

fn is_forged_literal(host: &str, ip: IpAddr) -> Result<(), Failure> {
    match literal_ip(host) {
        Some(claimed) if strip_mapped(claimed) != ip => Err(fail(
            "is_forged_literal",
            "Forged IPs not accepted here",
            format!("{host} is not the client's address {ip}"),
        )),
        _ => Ok(()),
    }
}

fn is_plain_ip(host: &str) -> Result<(), Failure> {
    if host.parse::<IpAddr>().is_ok() {
        return Err(fail(
            "is_plain_ip",
            "Plain IP is invalid HELO hostname (RFC 2821)",
            format!("{host} is a plain IP address"),
        ));
    }
    Ok(())
}

fn is_not_fqdn(host: &str) -> Result<(), Failure> {
    const CHECK: &str = "is_not_fqdn";
    if literal_ip(host).is_some() {
        return Ok(());
    }
    if !host.contains('.') {
        return Err(fail(
            CHECK,
            "HELO name is not fully qualified. Read RFC 2821",
            format!("{host} has no dot"),
        ));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(fail(
            CHECK,
            "HELO name contains invalid FQDN characters. Read RFC 1035",
            format!("{host} has characters a host name cannot have"),
        ));
    }
    Ok(())
}

fn is_address_literal(host: &str) -> Result<(), Failure> {
    if literal_ip(host).is_some() {
        return Err(fail(
            "is_address_literal",
            "RFC 2821 allows an address literal, but we do not",
            format!("{host} is an address literal"),
        ));
    }
    Ok(())
}

/// Fails when the name does not resolve; otherwise says whether one of its addresses is
/// in the client's network.
fn no_forward_dns(
    cx: &Context<'_>,
    host: &str,
    ip: IpAddr,
    dns: &Lookups,
) -> Result<bool, Failure> {
    const CHECK: &str = "no_forward_dns";
    let Some(Forward { addrs, errors }) = &dns.forward else {
        return Ok(false); // an address literal
    };
    if addrs.is_empty() {
        return Err(match errors.first() {
            Some((_, e)) => temp_fail(CHECK, format!("address lookup for {host}: {e}")),
            None => fail(
                CHECK,
                "HELO hostname does not resolve",
                format!("{host} has no address"),
            ),
        });
    }
    cx.log(Level::Debug, format!("{host} has address {}", join(addrs)));
    let matched = addrs.iter().find(|&&a| same_network(strip_mapped(a), ip));
    if let Some(a) = matched {
        cx.log(
            Level::Debug,
            format!("forward match: {host} has {a}, near {ip}"),
        );
    }
    Ok(matched.is_some())
}

/// Fails when the client has no PTR name; otherwise says whether one of its names matches
/// the HELO name.
fn no_reverse_dns(
    cx: &Context<'_>,
    host: &str,
    ip: IpAddr,
    dns: &Lookups,
) -> Result<bool, Failure> {
    const CHECK: &str = "no_reverse_dns";
    let names = match &dns.reverse {
        Ok(names) => names,
        Err(DnsError::NotFound) => {
            return Err(fail(
                CHECK,
                &format!("no rDNS for {ip}"),
                format!("{ip} has no PTR record"),
            ));
        }
        Err(e) => return Err(temp_fail(CHECK, format!("PTR lookup for {ip}: {e}"))),
    };
    cx.log(Level::Debug, format!("PTR {ip}: {}", names.join(" ")));
    let helo = host.trim_end_matches('.');
    let matched = names.iter().find(|n| same_domain(n, helo));
    if let Some(n) = matched {
        cx.log(Level::Debug, format!("reverse match: {ip} is {n}"));
    }
    Ok(matched.is_some())
}

fn no_matching_dns(
    host: &str,
    ip: IpAddr,
    forward: bool,
    reverse: bool,
    dns: &Lookups,
) -> Result<(), Failure> {
    const CHECK: &str = "no_matching_dns";
    if forward || reverse {
        return Ok(());
    }
    // A lookup of the client's own address family that did not answer might have matched.
    let errors = dns
        .forward
        .as_ref()
        .map_or(&[][..], |f| f.errors.as_slice());
    if let Some((_, e)) = errors.iter().find(|(v4, _)| *v4 == ip.is_ipv4()) {
        return Err(temp_fail(CHECK, format!("address lookup for {host}: {e}")));
    }
    Err(fail(
        CHECK,
        "That HELO hostname fails FCrDNS",
        format!("{host} matches neither the address nor the PTR name of {ip}"),
    ))
}

/// The same address, or the same /24 (IPv4) or /64 (IPv6) network.
fn same_network(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.segments()[..4] == b.segments()[..4],
        _ => false,
    }
}

/// The same name, or the same last two labels; `dns_name` must have two labels at least.
fn same_domain(dns_name: &str, helo: &str) -> bool {
    let last_two = |n: &str| -> Option<String> {
        let labels: Vec<&str> = n.rsplit('.').take(2).collect();
        (labels.len() == 2 && labels.iter().all(|l| !l.is_empty()))
            .then(|| format!("{}.{}", labels[1], labels[0]).to_ascii_lowercase())
    };
    let Some(dns_domain) = last_two(dns_name) else {
        return false;
    };
    dns_name.eq_ignore_ascii_case(helo) || last_two(helo).is_some_and(|h| h == dns_domain)
}

impl HeloCheck {
    fn greeting(&self, cx: &mut Context<'_>, host: &str) -> Verdict {
        let notes = &mut cx.connection_mut().notes;
        notes.remove("helo_forward_match");
        notes.remove("helo_reverse_match");
        let ip = strip_mapped(cx.connection().remote_ip());
        if cx.is_immune() {
            cx.skip(format!("immune: {ip} is a relay client or whitelisted"));
            return Verdict::Declined;
        }
        if cx.connection().notes.is_true("whitelisthelo") {
            cx.skip(format!("{host} is in whitelisthelo"));
            return Verdict::Declined;
        }
        match self.run(cx, host, ip) {
            Ok(summary) => {
                cx.pass(summary);
                Verdict::Declined
            }
            Err(f) if f.temporary => self.reject.temporary().apply(cx, &f.smtp, &f.log),
            Err(f) => {
                cx.adjust_karma(-1);
                self.reject.apply(cx, &f.smtp, &f.log)
            }
        }
    }
}

impl Plugin for HeloCheck {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Helo.into(), Hook::Ehlo.into(), Hook::DataPost.into()]
    }

    fn helo(&self, cx: &mut Context<'_>, host: &str, _: &[String]) -> Verdict {
        self.greeting(cx, host)
    }

    fn ehlo(&self, cx: &mut Context<'_>, host: &str, _: &[String]) -> Verdict {
        self.greeting(cx, host)
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        if let Some(host) = cx.connection().hello_host.clone() {
            let header = &mut cx.transaction_mut().header;
            header.remove("X-HELO");
            header.add("X-HELO", &clean_header_text(&host));
        }
        Verdict::Declined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcrdns::tests::{KeepHeaders, from};
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer};

    struct Rig {
        server: TestServer,
        log: LogCapture,
        queue: KeepHeaders,
    }

    fn rig(dns: Option<&DnsServer>, plugins: &str, files: &[(&str, &str)]) -> Rig {
        let log = LogCapture::default();
        let queue = KeepHeaders::default();
        let mut h = files
            .iter()
            .fold(Harness::new(), |h, (name, text)| h.file(name, text))
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", plugins)
            .plugin("capture", log.clone())
            .plugin("keep", queue.clone());
        if let Some(dns) = dns {
            h = h.dns(dns);
        }
        Rig {
            server: h.build().unwrap(),
            log,
            queue,
        }
    }

    impl Rig {
        /// The reply to `EHLO host` from `ip`, and whether the session was closed.
        fn ehlo(&self, ip: &str, host: &str) -> (String, bool) {
            let mut s = self.server.session_from(from(ip));
            assert!(s.connect().starts_with("220 "));
            let reply = s.command(&format!("EHLO {host}"));
            (reply, s.is_closed())
        }

        /// The first line of the reply to `EHLO host` from `ip`.
        fn first(&self, ip: &str, host: &str) -> String {
            let reply = self.ehlo(ip, host).0;
            reply.lines().next().unwrap_or("").to_string()
        }

        fn last_summary(&self) -> String {
            crate::test_support::summary(&self.log, "helo")
                .pop()
                .unwrap_or_default()
        }
    }

    const HI: &str = "250-test.example Hi";

    #[test]
    fn lenient_checks_need_no_dns() {
        let rig = rig(
            None,
            "helo",
            &[(
                "badhelo",
                "# freemail names\nyahoo.com\nAOL.com\n^mail\\d+\\.",
            )],
        );
        let refused = |text: &str| format!("550 5.7.1 {text}\r\n");
        for (ip, host, want, line) in [
            (
                "192.0.2.10",
                "Yahoo.COM",
                refused("I do not believe you are Yahoo.COM."),
                "INFO fail: is_in_badhelo: yahoo.com is in badhelo",
            ),
            (
                "192.0.2.10",
                "aol.com",
                refused("I do not believe you are aol.com."),
                "INFO fail: is_in_badhelo: aol.com is in badhelo",
            ),
            (
                "192.0.2.10",
                "MAIL7.example.net",
                refused("Your HELO hostname is not allowed"),
                "INFO fail: is_in_badhelo: mail7.example.net matches badhelo pattern ^mail\\d+\\.",
            ),
            (
                "192.0.2.10",
                "localhost",
                refused("You are not localhost"),
                "INFO fail: invalid_localhost: 192.0.2.10 says it is localhost",
            ),
            (
                "192.0.2.10",
                "[192.0.2.99]",
                refused("Forged IPs not accepted here"),
                "INFO fail: is_forged_literal: [192.0.2.99] is not the client's address 192.0.2.10",
            ),
            (
                "2001:db8::10",
                "[IPv6:2001:db8::11]",
                refused("Forged IPs not accepted here"),
                "INFO fail: is_forged_literal: [IPv6:2001:db8::11] is not the client's address 2001:db8::10",
            ),
            (
                "192.0.2.10",
                "192.0.2.10",
                refused("Plain IP is invalid HELO hostname (RFC 2821)"),
                "INFO fail: is_plain_ip: 192.0.2.10 is a plain IP address",
            ),
        ] {
            let (reply, closed) = rig.ehlo(ip, host);
            assert_eq!(reply, want, "{host}");
            assert!(closed, "{host}: reject_type disconnect closes");
            assert_eq!(rig.last_summary(), line);
        }
        for (ip, host) in [
            ("127.0.0.1", "localhost"),
            ("192.0.2.10", "[192.0.2.10]"),
            ("2001:db8::10", "[IPv6:2001:db8::10]"),
            ("192.0.2.10", "no_such_thing.example"),
            ("192.0.2.10", "yahoo.com.example"),
        ] {
            assert!(rig.first(ip, host).starts_with(HI), "{host}");
            assert_eq!(
                rig.last_summary(),
                format!("INFO pass: {host} (policy lenient)")
            );
        }
    }

    #[test]
    fn negated_patterns_refuse_what_they_do_not_match() {
        // Every line is tried: the first pattern not matching does not end the search.
        let rig = rig(
            None,
            "helo reject_type perm",
            &[("badhelo", "^spam\\.\n!\\.")],
        );
        assert_eq!(
            rig.first("192.0.2.10", "nodots"),
            "550 5.7.1 Your HELO hostname is not allowed"
        );
        assert_eq!(
            rig.last_summary(),
            "INFO fail: is_in_badhelo: nodots does not match badhelo pattern \\."
        );
        assert_eq!(
            rig.first("192.0.2.10", "spam.example"),
            "550 5.7.1 Your HELO hostname is not allowed"
        );
        assert!(rig.first("192.0.2.10", "ham.example").starts_with(HI));
    }

    #[test]
    fn rfc_requires_a_resolvable_name_and_reverse_dns() {
        let dns = DnsServer::start();
        let rig = rig(Some(&dns), "helo policy rfc reject_type perm", &[]);
        for (ip, host, want, line) in [
            (
                "192.0.2.10",
                "client",
                "550 5.7.1 HELO name is not fully qualified. Read RFC 2821",
                "INFO fail: is_not_fqdn: client has no dot",
            ),
            (
                "192.0.2.10",
                "bad_name.hosts.test",
                "550 5.7.1 HELO name contains invalid FQDN characters. Read RFC 1035",
                "INFO fail: is_not_fqdn: bad_name.hosts.test has characters a host name cannot have",
            ),
            (
                "192.0.2.10",
                "nosuch.hosts.test",
                "550 5.7.1 HELO hostname does not resolve",
                "INFO fail: no_forward_dns: nosuch.hosts.test has no address",
            ),
            (
                "192.0.2.14",
                "good.hosts.test",
                "550 5.7.1 no rDNS for 192.0.2.14",
                "INFO fail: no_reverse_dns: 192.0.2.14 has no PTR record",
            ),
            (
                "192.0.2.14",
                "[192.0.2.14]",
                "550 5.7.1 no rDNS for 192.0.2.14",
                "INFO fail: no_reverse_dns: 192.0.2.14 has no PTR record",
            ),
        ] {
            let (reply, closed) = rig.ehlo(ip, host);
            assert_eq!(reply, format!("{want}\r\n"), "{host}");
            assert!(!closed);
            assert_eq!(rig.last_summary(), line);
        }
        // A name that resolves, from a client with reverse DNS: matching is not required.
        for (ip, host) in [
            ("192.0.2.15", "far.hosts.test"),
            ("192.0.2.10", "[192.0.2.10]"),
            ("2001:db8::10", "good.hosts.test"),
        ] {
            assert!(rig.first(ip, host).starts_with(HI), "{host}");
            assert_eq!(
                rig.last_summary(),
                format!("INFO pass: {host} (policy rfc)")
            );
        }
    }

    #[test]
    fn strict_requires_matching_dns_and_no_literals() {
        let dns = DnsServer::start();
        let rig = rig(Some(&dns), "helo policy strict reject_type perm", &[]);
        for (ip, host) in [
            ("192.0.2.10", "good.hosts.test"),
            ("192.0.2.10", "GOOD.hosts.test"),
            ("2001:db8::10", "good.hosts.test"),
            // Neighbours: the same /24, the same domain.
            ("192.0.2.20", "mx0.hosts.test"),
            // The forward side alone is enough (192.0.2.15 is mx.example.test) ...
            ("192.0.2.15", "good.hosts.test"),
            // ... and so is the reverse side (192.0.2.20 is mx1.hosts.test).
            ("192.0.2.20", "far.hosts.test"),
        ] {
            assert!(rig.first(ip, host).starts_with(HI), "{ip} {host}");
            assert_eq!(
                rig.last_summary(),
                format!("INFO pass: {host} (policy strict)")
            );
        }
        assert_eq!(
            rig.first("192.0.2.15", "far.hosts.test"),
            "550 5.7.1 That HELO hostname fails FCrDNS"
        );
        assert_eq!(
            rig.last_summary(),
            "INFO fail: no_matching_dns: far.hosts.test matches neither the address nor the PTR name of 192.0.2.15"
        );
        assert_eq!(
            rig.first("192.0.2.10", "[192.0.2.10]"),
            "550 5.7.1 RFC 2821 allows an address literal, but we do not"
        );
    }

    #[test]
    fn match_notes_and_karma() {
        let dns = DnsServer::start();
        let rig = rig(Some(&dns), "helo policy strict", &[]);
        let check = |ip: &str, host: &str| {
            let mut s = rig.server.session_from(from(ip));
            s.connect();
            s.command(&format!("HELO {host}"));
            let n = &s.session.connection().notes;
            (
                n.is_true("helo_forward_match"),
                n.is_true("helo_reverse_match"),
                n.get_int("karma"),
            )
        };
        assert_eq!(
            check("192.0.2.10", "good.hosts.test"),
            (true, true, Some(1))
        );
        // mx1 points to 192.0.2.20, next to 192.0.2.21, which has no name: the forward
        // match is noted although no_reverse_dns fails.
        assert_eq!(
            check("192.0.2.21", "mx1.hosts.test"),
            (true, false, Some(-1))
        );
        // far.hosts.test is far, but 192.0.2.20 is mx1.hosts.test: the same domain.
        assert_eq!(check("192.0.2.20", "far.hosts.test"), (false, true, None));
        assert_eq!(
            check("192.0.2.15", "far.hosts.test"),
            (false, false, Some(-1))
        );
    }

    #[test]
    fn reject_0_and_naughty_let_the_client_in() {
        let dns = DnsServer::start();
        let rig = rig(Some(&dns), "helo policy rfc reject 0", &[]);
        assert!(rig.first("192.0.2.14", "good.hosts.test").starts_with(HI));
        assert_eq!(
            rig.last_summary(),
            "INFO fail, tolerated: no_reverse_dns: 192.0.2.14 has no PTR record"
        );
        let rig = self::rig(Some(&dns), "helo policy rfc reject naughty", &[]);
        let mut s = rig.server.session_from(from("192.0.2.10"));
        s.connect();
        assert!(s.command("HELO client").starts_with("250 "));
        assert_eq!(
            s.session.connection().notes.get_str("naughty"),
            Some("5.7.1 (helo) HELO name is not fully qualified. Read RFC 2821")
        );
        assert_eq!(
            s.session.connection().notes.get_str("naughty_reject_type"),
            Some("disconnect")
        );
        assert_eq!(
            rig.last_summary(),
            "INFO fail, naughty: is_not_fqdn: client has no dot"
        );
    }

    #[test]
    fn immune_and_whitelisted_greetings_are_skipped() {
        let rig = rig(
            None,
            "relay\nwhitelist\nhelo",
            &[
                ("relayclients", "192.0.2.1"),
                ("whitelisthelo", "localhost"),
                ("badhelo", "yahoo.com"),
            ],
        );
        assert!(rig.first("192.0.2.1", "yahoo.com").starts_with(HI));
        assert_eq!(
            rig.last_summary(),
            "INFO skip: immune: 192.0.2.1 is a relay client or whitelisted"
        );
        assert!(rig.first("192.0.2.2", "localhost").starts_with(HI));
        assert_eq!(
            rig.last_summary(),
            "INFO skip: localhost is in whitelisthelo"
        );
        assert!(rig.first("192.0.2.2", "yahoo.com").starts_with("550 "));
    }

    #[test]
    fn a_dns_server_that_never_answers_is_no_pass() {
        let dead = SilentDns::start();
        let build = |plugins: &str| {
            rig(
                None,
                plugins,
                &[("dns_servers", &dead.addr()), ("dns_timeout", "5")],
            )
        };
        let rig = build("helo policy rfc timeout 0.3");
        let started = std::time::Instant::now();
        let (reply, closed) = rig.ehlo("192.0.2.10", "good.hosts.test");
        assert_eq!(
            reply,
            "421 4.4.3 Temporary DNS failure checking your HELO name, try again later\r\n"
        );
        assert!(closed);
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        let line = rig.last_summary();
        assert!(
            line.starts_with("INFO fail: no_forward_dns: address lookup for good.hosts.test: "),
            "{line}"
        );

        let rig = build("helo policy strict reject_type perm timeout 0.3");
        let (reply, closed) = rig.ehlo("192.0.2.10", "[192.0.2.10]");
        // An address literal needs no forward lookup, but strict refuses it first.
        assert!(reply.starts_with("550 5.7.1 RFC 2821"), "{reply}");
        assert!(!closed);
        let rig = build("helo policy rfc reject_type perm timeout 0.3");
        let (reply, _) = rig.ehlo("192.0.2.10", "[192.0.2.10]");
        assert_eq!(
            reply,
            "450 4.4.3 Temporary DNS failure checking your HELO name, try again later\r\n"
        );
        let line = rig.last_summary();
        assert!(
            line.starts_with("INFO fail: no_reverse_dns: PTR lookup for 192.0.2.10: "),
            "{line}"
        );

        let rig = build("helo policy rfc reject 0 timeout 0.3");
        assert!(rig.first("192.0.2.10", "good.hosts.test").starts_with(HI));
        assert!(
            rig.last_summary()
                .starts_with("INFO fail, tolerated: no_forward_dns")
        );
    }

    #[test]
    fn messages_get_an_x_helo_header() {
        let rig = rig(None, "helo\nrcpt_ok", &[]);
        let mut s = rig.server.session_from(from("192.0.2.10"));
        s.connect();
        s.command("HELO mail.example.net");
        let reply = s.mail(
            "a@example.net",
            &["b@example.com"],
            "X-HELO: forged.example\r\nSubject: x\r\n\r\nhi",
        );
        assert_eq!(reply, "250 2.0.0 Queued\r\n");
        let header = rig.queue.0.lock().unwrap().pop().unwrap();
        assert_eq!(header.get_all("X-HELO"), ["mail.example.net"]);
        // The header is bookkeeping: no summary line for it.
        assert_eq!(
            crate::test_support::summary(&rig.log, "helo"),
            ["INFO pass: mail.example.net (policy lenient)"]
        );
    }

    #[test]
    fn networks_and_domains() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_network(ip("192.0.2.1"), ip("192.0.2.254")));
        assert!(!same_network(ip("192.0.2.1"), ip("192.0.1.1")));
        assert!(same_network(ip("2001:db8::1"), ip("2001:db8::2")));
        assert!(same_network(ip("2001:db8:0:0:1::1"), ip("2001:db8::2")));
        assert!(!same_network(ip("2001:db8:0:1::1"), ip("2001:db8::1")));
        assert!(!same_network(ip("2001:db8::1"), ip("2001:db7::1")));
        assert!(!same_network(ip("192.0.2.1"), ip("::ffff:192.0.2.1")));
        assert!(same_domain("mx0.example.com", "mx0.example.com"));
        assert!(same_domain("mx0.example.com", "MX1.Example.com"));
        assert!(!same_domain("mx0.example.com", "mx0.example.net"));
        assert!(!same_domain("localhost", "localhost"));
        assert!(!same_domain("com", "example.com"));
    }

    #[test]
    fn bad_configuration_is_refused() {
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "helo")
            .file("badhelo", "yahoo.com\n^(unclosed")
            .build()
            .expect_err("configuration should be refused")
            .to_string();
        assert!(
            err.contains("badhelo:2: bad pattern \"^(unclosed\""),
            "{err}"
        );
        for line in [
            "helo policy paranoid",
            "helo timeout never",
            "helo reject sometimes",
            "helo bogus 1",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: helo: "), "{line}: {err}");
        }
    }
}
