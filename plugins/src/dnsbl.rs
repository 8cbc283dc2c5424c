//! # NAME
//!
//! dnsbl - refuse clients whose address is on a DNS blocklist
//!
//! # DESCRIPTION
//!
//! Looks the client's address up in the DNS blocklists (DNSBLs, RBLs) named in
//! `dnsbl_zones`, the way RFC 5782 describes: the address is reversed (`192.0.2.7` becomes
//! `7.2.0.192`, an IPv6 address becomes its 32 nibbles) and the zone appended. A listed
//! address has records there; an unlisted one has none.
//!
//! When the client connects, one query per zone is sent, all at once, and the session goes
//! on while they run. The answers are read when the decision is due: at the first `RCPT`
//! by default, so a slow list costs nothing while the client greets and names its sender.
//! A zone that lists the client makes every recipient of the session refused, with the
//! reason the list gives (see `dnsbl_zones`); the connection itself stays open, so the
//! client may still reach:
//!
//! - `postmaster`, `abuse`, `mailer-daemon` and `root` (the local part, in any case and at
//!   any domain), so a blocked sender can ask to be unblocked (RFC 5321 §4.5.1). The plugin
//!   logs `skip` for them and lets the later `rcpt` plugins decide;
//! - anything at all once it authenticates: relay clients, authenticated users and
//!   whitelisted hosts (the `whitelisthost` note that `whitelist` and
//!   `dns_whitelist_soft` set) are never refused, and are not even looked up when they are
//!   known at connect.
//!
//! Each zone that lists the client lowers the connection's karma by 1.
//!
//! Load it after `relay`, `whitelist` and `dns_whitelist_soft` (so their exemptions are
//! known at connect) and before `rcpt_ok` (which ends the RCPT stage).
//!
//! ## DNS failures
//!
//! A blocklist that cannot be asked (a timeout, SERVFAIL, no nameserver) refuses nobody:
//! the plugin logs `error: ...` naming the zones that failed and lets the client go on, as
//! if it were not listed. This is a deliberate choice (fail open): a blocklist is one sign
//! among several, and an outage of a list must not stop all mail. A failure is never
//! logged as `pass`. When another zone does list the client, the listing counts and the
//! failure is named in the same `fail` line.
//!
//! An A record outside 127.0.0.0/8 is no listing (RFC 5782 §2.1 reserves that network for
//! answers; other addresses come from resolvers that rewrite NXDOMAIN) and counts as a
//! failure of that zone.
//!
//! ## RBLSMTPD
//!
//! The environment variable `RBLSMTPD`, as tcpserver rules set it for `rblsmtpd`, is
//! honoured the way `rblsmtpd` does:
//!
//! - set and empty (`192.0.2.:allow,RBLSMTPD=""`): the client is exempt; no list is asked;
//! - set and not empty: the client is refused with that text (`%IP%` in it becomes the
//!   client's address) instead of asking the lists. A leading `-` makes the refusal
//!   permanent (5xx) and is not shown; otherwise it is temporary (4xx). `reject_type`
//!   still decides whether the connection is closed;
//! - not set: the lists are asked.
//!
//! # CONFIGURATION
//!
//! ## reject *0|1|naughty|connect*
//!
//! Default: `1`. What a listing does: `1` refuses every recipient (except those above),
//! `0` only logs `fail, tolerated` and lets the client go on, `naughty` keeps the refusal
//! for the `naughty` plugin to deliver later, and `connect` refuses the connection before
//! the banner (then nobody, not even `postmaster`, can be reached).
//!
//! With `naughty` and `connect` the answers are awaited at connect, since the decision is
//! made there: the banner waits for the slowest list (at most `timeout`).
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! Since a listed client stays listed for the whole session, `disconnect` saves the
//! server from refusing its recipients one by one (but also keeps it from reaching
//! `postmaster` after a refused recipient).
//!
//! ## timeout *SECONDS*
//!
//! Default: the value of the `dns_timeout` control file (5 seconds when it is not set).
//! How long to wait for the lists' answers, counted from connect; decimals are allowed
//! (`0.5`).
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `dnsbl_zones`: one blocklist per line, `zone` or `zone:message`.
//!
//! - `zone` alone: the list is asked for a TXT record, whose text is the reason given to
//!   the client (`zen.example.net`). Lists that publish only A records need a message.
//! - `zone:message`: the list is asked for an A record, and the reason is `message`, in
//!   which `%IP%` becomes the client's address
//!   (`rbl.example.net:Listed by rbl.example.net, see https://rbl.example.net/?%IP%`).
//!
//! The reason of the first zone in the file that lists the client is given. Without
//! `dnsbl_zones` the plugin does nothing.
//!
//! `dnsbl_allow`: addresses that are never looked up, one per line: a full address
//! (`192.0.2.25`, `2001:db8::25`), leading groups ending in `.` or `:` (`172.16.33.`,
//! `fdda:b13d:`), or a CIDR block (`10.1.0.0/24`).
//!
//! `dnsbl_rejectmsg`: lines put before the reason in every refusal, for example to tell
//! the sender what to do about it; `%IP%` becomes the client's address.
//!
//! A malformed line (a zone that is not a domain name, an empty message, a zone listed
//! twice, a bad address) stops the server from starting, with the file and line named.
//! The files are read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - IPv6 clients are looked up too, in nibble form (RFC 5782 §2.4); the Perl plugin
//!   reversed the text of the address and sent nonsense queries.
//! - All zones are asked at once and their answers are awaited together, for at most
//!   `timeout`; the Perl plugin waited a fixed 8 seconds at RCPT whatever its `timeout`.
//! - A DNS failure is logged as `error` (the Perl plugin logged some and hid others) and
//!   refuses nobody; an A record outside 127.0.0.0/8 is not taken as a listing.
//! - `RBLSMTPD` with a leading `-` is a permanent refusal and without it a temporary one,
//!   as with `rblsmtpd`; the Perl plugin always used `reject_type`. Immune clients and the
//!   special recipients are exempt from it too.
//! - `reject connect` waits for the answers at connect and refuses before the banner;
//!   `reject 0` and `reject naughty` work as for every plugin. Each listing zone lowers
//!   karma by 1.
//! - `dnsbl_allow` takes CIDR blocks and IPv6, and matches prefixes by value.
//! - Reply text from the lists is cut to printable ASCII and 300 characters.
//!
//! # SEE ALSO
//!
//! qpsmtpd-dns_whitelist_soft(7), qpsmtpd-rhsbl(7), qpsmtpd-whitelist(7),
//! qpsmtpd-naughty(7), qpsmtpd-plugins(7), rblsmtpd(1)

use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::context::Lookups;
use qpsmtpd_core::dns::{Answer, DnsError, DnsResult, Query, reversed_ip};
use qpsmtpd_core::net::IpList;
use qpsmtpd_core::plugin::{Pairs, parse_flag};
use qpsmtpd_core::protocol::address::is_domain;
use qpsmtpd_core::{
    Address, ConfigError, ConfigLine, Context, Hook, Params, Plugin, PluginSpec, Registration,
    Reject, RejectMode, RejectType, Setup, Verdict,
};
use std::net::IpAddr;
use std::time::Duration;

pub const SPEC: PluginSpec = PluginSpec {
    name: "dnsbl",
    factory: new,
    args: &["reject", "reject_type", "timeout"],
    rejects: true,
    example: "reject_type disconnect timeout 10",
};

/// Local parts that are never refused at RCPT.
const SPECIAL_RECIPIENTS: [&str; 4] = ["postmaster", "abuse", "mailer-daemon", "root"];

/// How much each listing zone lowers the connection's karma.
const KARMA_PER_LISTING: i64 = -1;

/// The longest reason taken from a list's TXT record.
const MAX_REASON: usize = 300;

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    if let Some(v) = pairs.get("reject")
        && !v.eq_ignore_ascii_case("connect")
        && !v.eq_ignore_ascii_case("naughty")
        && parse_flag(v).is_none()
    {
        return Err(setup.error(format!(
            "reject must be 0, 1, naughty or connect, not {v:?}"
        )));
    }
    let at_connect = pairs
        .get("reject")
        .is_some_and(|v| v.eq_ignore_ascii_case("connect"));
    let reject = if at_connect {
        // The core reads `reject` as 0, 1 or naughty; `connect` refuses like 1, earlier.
        let rest = Pairs::parse(&pairs_without(setup.args, "reject"), &SPEC.keys())
            .map_err(|e| setup.error(e))?;
        setup.reject(&rest, RejectMode::On, RejectType::Perm)?
    } else {
        setup.reject(&pairs, RejectMode::On, RejectType::Perm)?
    };
    let stage = if at_connect || reject.mode == RejectMode::Naughty {
        Hook::Connect
    } else {
        Hook::Rcpt
    };
    Ok(Box::new(Dnsbl {
        stage,
        reject,
        timeout: pairs.seconds("timeout").map_err(|e| setup.error(e))?,
        zones: load_zones(setup.config.lines("dnsbl_zones")?)?,
        allow: IpList::load(setup.config, "dnsbl_allow")?,
        rejectmsg: setup
            .config
            .lines("dnsbl_rejectmsg")?
            .into_iter()
            .map(|l| l.text)
            .collect(),
    }))
}

/// The `key value` arguments without `key`.
fn pairs_without(args: &[String], key: &str) -> Vec<String> {
    args.chunks(2)
        .filter(|kv| !kv[0].eq_ignore_ascii_case(key))
        .flatten()
        .cloned()
        .collect()
}

/// A DNS zone name from a control file: a domain name, compared in lower case, without a
/// trailing dot.
pub(crate) fn zone_name(line: &ConfigLine, text: &str) -> Result<String, ConfigError> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if is_domain(&name) && name.contains('.') {
        Ok(name)
    } else {
        Err(line.error(format!("{text:?} is not a DNS zone name")))
    }
}

/// One blocklist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Zone {
    pub name: String,
    /// The configured reason; with it an A query suffices, without it the TXT record is
    /// the reason.
    pub message: Option<String>,
}

impl Zone {
    /// The question to ask of this zone about `subject` (a reversed address or a domain).
    pub fn query(&self, subject: &str) -> Query {
        let name = format!("{subject}.{}", self.name);
        match self.message {
            Some(_) => Query::A(name),
            None => Query::Txt(name),
        }
    }
}

/// `dnsbl_zones`: `zone` or `zone:message`.
fn load_zones(lines: Vec<ConfigLine>) -> Result<Vec<Zone>, ConfigError> {
    let mut zones: Vec<Zone> = Vec::new();
    for line in lines {
        let (name, message) = match line.text.split_once(':') {
            Some((name, message)) => {
                let message = message.trim();
                if message.is_empty() {
                    return Err(line.error(format!(
                        "{:?}: the message after ':' is empty (leave out the ':' to use the \
                         list's TXT record)",
                        line.text
                    )));
                }
                (name.trim(), Some(message.to_string()))
            }
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

/// What one list said about one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Listed: the TXT text (cleaned, possibly empty) or the A address.
    Listed(String),
    NotListed,
    /// The list could not be asked, or gave no usable answer.
    Failed(String),
}

/// Reads a blocklist answer (RFC 5782): a TXT record, or an A record in 127.0.0.0/8.
pub(crate) fn listing(answer: &DnsResult) -> Listing {
    match answer {
        Ok(Answer::Txt(texts)) => {
            Listing::Listed(texts.first().map_or(String::new(), |t| clean(t)))
        }
        Ok(Answer::Addrs(addrs)) => match addrs.iter().find(|a| is_listing_address(a)) {
            Some(a) => Listing::Listed(a.to_string()),
            None => Listing::Failed(format!(
                "answered {}, outside 127.0.0.0/8",
                addrs
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        Ok(other) => Listing::Failed(format!("unexpected answer {other:?}")),
        Err(DnsError::NotFound) => Listing::NotListed,
        Err(e) => Listing::Failed(e.to_string()),
    }
}

fn is_listing_address(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 127)
}

/// Text from the DNS made safe for a reply or a log line: printable ASCII, at most
/// `MAX_REASON` characters.
pub(crate) fn clean(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(MAX_REASON)
        .collect();
    cleaned.trim().to_string()
}

/// Is this recipient one a blocked client may still write to?
pub(crate) fn is_special(rcpt: &Address) -> bool {
    SPECIAL_RECIPIENTS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(rcpt.user()))
}

/// Why the client is immune to refusals, if it is.
pub(crate) fn immunity(cx: &Context<'_>) -> Option<&'static str> {
    if !cx.is_immune() {
        return None;
    }
    let conn = cx.connection();
    Some(if conn.relay_client {
        "relay client"
    } else if conn.auth.is_some() {
        "authenticated"
    } else if conn.notes.is_true("whitelisthost") {
        "whitelisted host"
    } else {
        "whitelisted sender"
    })
}

/// `"a, b"` (`"none"` for nothing).
pub(crate) fn join(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

struct Dnsbl {
    /// Where the decision is made: `Rcpt`, or `Connect` (`reject connect|naughty`).
    stage: Hook,
    reject: Reject,
    timeout: Option<Duration>,
    zones: Vec<Zone>,
    allow: IpList,
    rejectmsg: Vec<String>,
}

/// This plugin's state in a session.
#[derive(Default)]
struct SessionState {
    /// Lookups started at connect, not yet read.
    pending: Option<Lookups>,
    /// What the session needs decided; `None` when connect already decided everything.
    plan: Option<Plan>,
    /// The finding, once known.
    finding: Option<Finding>,
}

#[derive(Clone)]
enum Plan {
    /// Read the lists' answers.
    Lists,
    /// Refuse with the `RBLSMTPD` text.
    Rblsmtpd(String),
}

/// What the lists (or `RBLSMTPD`) say of the client.
#[derive(Clone, Debug)]
enum Finding {
    Listed {
        /// For the log, after the address: `is listed in a, b` or `is blocked by RBLSMTPD=..`.
        why: String,
        /// How many listings (each costs karma).
        count: usize,
        /// The reason given to the client.
        reason: String,
        /// From `RBLSMTPD`: permanent (leading `-`) or temporary.
        permanent: Option<bool>,
        /// Zones that failed meanwhile.
        errors: Vec<String>,
    },
    NotListed {
        zones: usize,
    },
    Failed {
        errors: Vec<String>,
    },
}

impl Dnsbl {
    fn queries(&self, ip: IpAddr) -> Vec<Query> {
        let subject = reversed_ip(ip);
        self.zones.iter().map(|z| z.query(&subject)).collect()
    }

    /// Reads the answers (in zone order) into a finding.
    fn evaluate(&self, ip: IpAddr, answers: &[DnsResult]) -> Finding {
        let mut by = Vec::new();
        let mut reason = None;
        let mut errors = Vec::new();
        for (zone, answer) in self.zones.iter().zip(answers) {
            match listing(answer) {
                Listing::Listed(detail) => {
                    by.push(zone.name.clone());
                    reason.get_or_insert_with(|| match &zone.message {
                        Some(m) => m.replace("%IP%", &ip.to_string()),
                        None if detail.is_empty() => format!("{ip} is listed in {}", zone.name),
                        None => detail,
                    });
                }
                Listing::NotListed => {}
                Listing::Failed(e) => errors.push(format!("{}: {e}", zone.name)),
            }
        }
        match reason {
            Some(reason) => Finding::Listed {
                why: format!("is listed in {}", join(&by)),
                count: by.len(),
                reason,
                permanent: None,
                errors,
            },
            None if errors.is_empty() => Finding::NotListed {
                zones: self.zones.len(),
            },
            None => Finding::Failed { errors },
        }
    }

    /// The finding of this session, reading the answers (and adjusting karma) the first
    /// time.
    fn finding(&self, cx: &mut Context<'_>, ip: IpAddr) -> Option<Finding> {
        if let Some(f) = &cx.state::<SessionState>().finding {
            return Some(f.clone());
        }
        let plan = cx.state::<SessionState>().plan.clone()?;
        let finding = match plan {
            Plan::Rblsmtpd(raw) => {
                let (permanent, text) = match raw.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, raw.as_str()),
                };
                Finding::Listed {
                    why: format!("is blocked by RBLSMTPD={raw:?}"),
                    count: 1,
                    reason: text.replace("%IP%", &ip.to_string()),
                    permanent: Some(permanent),
                    errors: Vec::new(),
                }
            }
            Plan::Lists => {
                let pending = cx.state::<SessionState>().pending.take();
                let answers = match pending {
                    Some(p) => cx.collect_lookups(p),
                    None => cx.resolve_all(&self.queries(ip), self.timeout),
                };
                for (q, a) in self.queries(ip).iter().zip(&answers) {
                    cx.log(qpsmtpd_core::Level::Debug, format!("{q}: {a:?}"));
                }
                self.evaluate(ip, &answers)
            }
        };
        if let Finding::Listed { count, .. } = &finding {
            cx.adjust_karma(KARMA_PER_LISTING * *count as i64);
        }
        cx.state::<SessionState>().finding = Some(finding.clone());
        Some(finding)
    }

    /// Lines of `dnsbl_rejectmsg`, then the reason.
    fn reply_text(&self, ip: IpAddr, reason: &str) -> String {
        let ip = ip.to_string();
        self.rejectmsg
            .iter()
            .map(|l| l.replace("%IP%", &ip))
            .chain(std::iter::once(reason.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Acts on a finding: refuses (by `reject`), passes, or logs the error. `rcpt` is the
    /// recipient at RCPT.
    fn decide(
        &self,
        cx: &mut Context<'_>,
        ip: IpAddr,
        finding: Finding,
        rcpt: Option<&Address>,
    ) -> Verdict {
        match finding {
            Finding::Listed {
                why,
                reason,
                permanent,
                errors,
                ..
            } => {
                let mut why = format!("{ip} {why}");
                if !errors.is_empty() {
                    why.push_str(&format!(" (failed: {})", errors.join("; ")));
                }
                if let Some(rcpt) = rcpt.filter(|r| is_special(r)) {
                    cx.skip(format!("{} is always reachable; {why}", rcpt.format()));
                    return Verdict::Declined;
                }
                let mut reject = self.reject;
                if let Some(permanent) = permanent {
                    reject.kind = rblsmtpd_kind(reject.kind, permanent);
                }
                let text = self.reply_text(ip, &reason);
                reject.apply(cx, &text, &why)
            }
            Finding::NotListed { zones } => {
                cx.pass(format!("{ip} is not listed in any of {zones} zones"));
                Verdict::Declined
            }
            Finding::Failed { errors } => {
                cx.error(format!(
                    "{ip} could not be checked ({}); not refused",
                    errors.join("; ")
                ));
                Verdict::Declined
            }
        }
    }
}

/// `RBLSMTPD` decides temporary or permanent; `reject_type` whether to disconnect.
fn rblsmtpd_kind(kind: RejectType, permanent: bool) -> RejectType {
    let disconnect = matches!(kind, RejectType::Disconnect | RejectType::TempDisconnect);
    match (disconnect, permanent) {
        (false, true) => RejectType::Perm,
        (false, false) => RejectType::Temp,
        (true, true) => RejectType::Disconnect,
        (true, false) => RejectType::TempDisconnect,
    }
}

impl Plugin for Dnsbl {
    fn hooks(&self) -> Vec<Registration> {
        let mut hooks = vec![Hook::Connect.into()];
        if self.stage == Hook::Rcpt {
            hooks.push(Hook::Rcpt.into());
        }
        hooks
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        let ip = strip_mapped(cx.connection().remote_ip());
        let rblsmtpd = cx.connection().info.env("RBLSMTPD").map(str::to_string);
        *cx.state::<SessionState>() = SessionState::default();
        if rblsmtpd.as_deref() == Some("") {
            cx.skip(format!("{ip}: RBLSMTPD is set and empty"));
            return Verdict::Declined;
        }
        if let Some(why) = immunity(cx) {
            cx.skip(format!("{ip} is immune ({why})"));
            return Verdict::Declined;
        }
        let plan = if let Some(text) = rblsmtpd {
            cx.log(
                qpsmtpd_core::Level::Debug,
                format!("RBLSMTPD={text:?}: no list is asked"),
            );
            Plan::Rblsmtpd(text)
        } else if self.zones.is_empty() {
            cx.skip("no zones in dnsbl_zones");
            return Verdict::Declined;
        } else if let Some(entry) = self.allow.find(ip) {
            cx.skip(format!("{ip} matches {entry} in dnsbl_allow"));
            return Verdict::Declined;
        } else if ip.is_unspecified() {
            cx.skip("the client's address is unknown");
            return Verdict::Declined;
        } else {
            let queries = self.queries(ip);
            cx.log(
                qpsmtpd_core::Level::Debug,
                format!(
                    "looking up {}",
                    queries
                        .iter()
                        .map(Query::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            let lookups = cx.start_lookups(queries, self.timeout);
            cx.state::<SessionState>().pending = Some(lookups);
            Plan::Lists
        };
        cx.state::<SessionState>().plan = Some(plan);
        if self.stage != Hook::Connect {
            return Verdict::Declined;
        }
        match self.finding(cx, ip) {
            Some(finding) => self.decide(cx, ip, finding, None),
            None => Verdict::Declined,
        }
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        if cx.state::<SessionState>().plan.is_none() {
            // Decided (and logged) at connect.
            return Verdict::Declined;
        }
        let ip = strip_mapped(cx.connection().remote_ip());
        if let Some(why) = immunity(cx) {
            cx.skip(format!("{ip} is immune ({why})"));
            return Verdict::Declined;
        }
        match self.finding(cx, ip) {
            Some(finding) => self.decide(cx, ip, finding, Some(rcpt)),
            None => Verdict::Declined,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer};
    use std::time::Instant;

    use crate::test_support::start_with_dns as start;

    fn from(ip: &str, env: &[(&str, &str)]) -> ConnectionInfo {
        let mut info = ConnectionInfo::from_ip(ip.parse().unwrap());
        for (k, v) in env {
            info.env.insert(k.to_string(), v.to_string());
        }
        info
    }

    /// Connects from `ip`, greets, sends MAIL, and returns the replies to the recipients.
    fn rcpts(server: &TestServer, ip: &str, env: &[(&str, &str)], to: &[&str]) -> Vec<String> {
        let mut s = server.session_from(from(ip, env));
        s.begin("sender@sender.example");
        s.rcpt_replies(to)
    }

    fn one_rcpt(server: &TestServer, ip: &str) -> String {
        rcpts(server, ip, &[], &["user@example.com"]).remove(0)
    }

    const OK: &str = "250 2.1.5 <user@example.com>, recipient ok\r\n";
    const BL_192_0_2_2: &str =
        "550 5.7.1 192.0.2.2 is listed in bl.test, see https://bl.test/lookup?ip=192.0.2.2\r\n";

    #[test]
    fn listed_clients_are_refused_with_the_txt_reason() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "dnsbl\nrcpt_ok", &[("dnsbl_zones", "bl.test")]);
        assert_eq!(one_rcpt(&server, "192.0.2.2"), BL_192_0_2_2);
        assert_eq!(one_rcpt(&server, "192.0.2.1"), OK);
        // IPv4 seen on a dual-stack socket counts as IPv4.
        assert_eq!(one_rcpt(&server, "::ffff:192.0.2.2"), BL_192_0_2_2);
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            [
                "INFO fail: 192.0.2.2 is listed in bl.test",
                "INFO pass: 192.0.2.1 is not listed in any of 1 zones",
                "INFO fail: 192.0.2.2 is listed in bl.test",
            ]
        );
    }

    #[test]
    fn ipv6_clients_are_looked_up_in_nibble_form() {
        let dns = DnsServer::start();
        let (server, _) = start(&dns, "dnsbl\nrcpt_ok", &[("dnsbl_zones", "bl.test")]);
        assert_eq!(
            one_rcpt(&server, "2001:db8::2"),
            "550 5.7.1 2001:db8::2 is listed in bl.test\r\n"
        );
        assert_eq!(one_rcpt(&server, "2001:db8::1"), OK);
    }

    #[test]
    fn a_zone_with_a_message_needs_only_an_a_record() {
        let dns = DnsServer::start();
        let (server, _) = start(
            &dns,
            "dnsbl\nrcpt_ok",
            &[(
                "dnsbl_zones",
                "bl2.test:Listed by bl2.test, see https://bl2.test/?ip=%IP%",
            )],
        );
        assert_eq!(
            one_rcpt(&server, "192.0.2.3"),
            "550 5.7.1 Listed by bl2.test, see https://bl2.test/?ip=192.0.2.3\r\n"
        );
        assert_eq!(
            one_rcpt(&server, "2001:db8::5"),
            "550 5.7.1 Listed by bl2.test, see https://bl2.test/?ip=2001:db8::5\r\n"
        );
        assert_eq!(one_rcpt(&server, "192.0.2.1"), OK);

        // Without a message the TXT record is asked for, and an A-only listing is missed:
        // such lists need a message.
        let (server, _) = start(&dns, "dnsbl\nrcpt_ok", &[("dnsbl_zones", "bl.test")]);
        assert_eq!(one_rcpt(&server, "192.0.2.6"), OK);
        let (server, _) = start(&dns, "dnsbl\nrcpt_ok", &[("dnsbl_zones", "bl.test:listed")]);
        assert_eq!(one_rcpt(&server, "192.0.2.6"), "550 5.7.1 listed\r\n");
    }

    #[test]
    fn three_zones_at_once_first_listing_gives_the_reason_and_each_costs_karma() {
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "dnsbl\nrcpt_ok",
            &[
                (
                    "dnsbl_zones",
                    "# three lists\nbl3.test\nbl2.test:in bl2\nbl.test",
                ),
                (
                    "dnsbl_rejectmsg",
                    "Your address %IP% is on a blocklist.\nAsk your provider to fix it.",
                ),
            ],
        );
        let mut s = server.session_from(from("192.0.2.2", &[]));
        s.begin("sender@sender.example");
        assert_eq!(
            s.rcpt_replies(&["user@example.com", "other@example.com"]),
            [
                "550-5.7.1 Your address 192.0.2.2 is on a blocklist.\r\n\
                 550-5.7.1 Ask your provider to fix it.\r\n\
                 550 5.7.1 in bl2\r\n",
                "550-5.7.1 Your address 192.0.2.2 is on a blocklist.\r\n\
                 550-5.7.1 Ask your provider to fix it.\r\n\
                 550 5.7.1 in bl2\r\n",
            ]
        );
        // Two zones list it: karma -2, counted once however many recipients.
        assert_eq!(s.session.connection().notes.get_int("karma"), Some(-2));
        assert!(log.contains("fail: 192.0.2.2 is listed in bl2.test, bl.test"));

        let replies = rcpts(&server, "192.0.2.4", &[], &["user@example.com"]);
        assert!(
            replies[0].ends_with("550 5.7.1 bl3.test lists 192.0.2.4 as a dynamic address\r\n"),
            "{replies:?}"
        );
        assert_eq!(one_rcpt(&server, "192.0.2.1"), OK);
        assert!(log.contains("pass: 192.0.2.1 is not listed in any of 3 zones"));
    }

    #[test]
    fn postmaster_and_friends_stay_reachable() {
        let dns = DnsServer::start();
        let (server, log) = start(&dns, "dnsbl\nrcpt_ok", &[("dnsbl_zones", "bl.test")]);
        let replies = rcpts(
            &server,
            "192.0.2.2",
            &[],
            &[
                "postmaster@example.com",
                "Abuse@example.com",
                "mailer-daemon@example.com",
                "root@example.com",
                "postmaster",
                "user@example.com",
            ],
        );
        assert!(
            replies[..5].iter().all(|r| r.starts_with("250 ")),
            "{replies:?}"
        );
        assert_eq!(replies[5], BL_192_0_2_2);
        assert!(log.contains(
            "skip: <postmaster@example.com> is always reachable; 192.0.2.2 is listed in bl.test"
        ));
    }

    #[test]
    fn reject_connect_refuses_before_the_banner() {
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "dnsbl reject connect\nrcpt_ok",
            &[("dnsbl_zones", "bl.test")],
        );
        let mut s = server.session_from(from("192.0.2.2", &[]));
        assert_eq!(
            s.connect(),
            "550 5.7.1 192.0.2.2 is listed in bl.test, see https://bl.test/lookup?ip=192.0.2.2\r\n"
        );
        assert!(s.is_closed());
        let mut s = server.session_from(from("192.0.2.1", &[]));
        assert!(s.connect().starts_with("220 "));
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            [
                "INFO fail: 192.0.2.2 is listed in bl.test",
                "INFO pass: 192.0.2.1 is not listed in any of 1 zones",
            ]
        );

        let (server, _) = start(
            &dns,
            "dnsbl reject connect timeout 2 reject_type temp\nrcpt_ok",
            &[("dnsbl_zones", "bl.test")],
        );
        let mut s = server.session_from(from("2001:db8::2", &[]));
        assert_eq!(
            s.connect(),
            "450 4.7.1 2001:db8::2 is listed in bl.test\r\n"
        );
    }

    #[test]
    fn reject_naughty_leaves_the_refusal_to_naughty() {
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "dnsbl reject naughty\nnaughty\nrcpt_ok",
            &[("dnsbl_zones", "bl.test")],
        );
        let replies = rcpts(
            &server,
            "192.0.2.2",
            &[],
            &["postmaster@example.com", "user@example.com"],
        );
        assert!(replies[0].starts_with("250 "), "{replies:?}");
        assert_eq!(
            replies[1],
            "550 5.7.1 (dnsbl) 192.0.2.2 is listed in bl.test, see \
             https://bl.test/lookup?ip=192.0.2.2\r\n"
        );
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            ["INFO fail, naughty: 192.0.2.2 is listed in bl.test"]
        );
    }

    #[test]
    fn reject_0_only_logs() {
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "dnsbl reject 0\nrcpt_ok",
            &[("dnsbl_zones", "bl.test")],
        );
        assert_eq!(one_rcpt(&server, "192.0.2.2"), OK);
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            ["INFO fail, tolerated: 192.0.2.2 is listed in bl.test"]
        );
    }

    #[test]
    fn rblsmtpd_variable_as_rblsmtpd_reads_it() {
        // No list is asked when RBLSMTPD is set: the nameserver here never answers, and
        // asking it would show as an error in the log.
        let dead = SilentDns::start();
        let log = LogCapture::default();
        let server = Harness::new()
            .silent_dns(&dead, "0.3")
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "dnsbl\nrcpt_ok")
            .file("dnsbl_zones", "bl.test")
            .file("dnsbl_rejectmsg", "Blocked:")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let to = ["user@example.com", "postmaster@example.com"];
        let empty = rcpts(&server, "192.0.2.2", &[("RBLSMTPD", "")], &to);
        assert_eq!(empty[0], OK);
        let perm = rcpts(&server, "192.0.2.9", &[("RBLSMTPD", "-go away, %IP%")], &to);
        assert_eq!(
            perm,
            [
                "550-5.7.1 Blocked:\r\n550 5.7.1 go away, 192.0.2.9\r\n",
                "250 2.1.5 <postmaster@example.com>, recipient ok\r\n"
            ]
        );
        let temp = rcpts(&server, "192.0.2.9", &[("RBLSMTPD", "try later")], &to);
        assert_eq!(temp[0], "450-4.7.1 Blocked:\r\n450 4.7.1 try later\r\n");
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            [
                "INFO skip: 192.0.2.2: RBLSMTPD is set and empty",
                "INFO fail: 192.0.2.9 is blocked by RBLSMTPD=\"-go away, %IP%\"",
                "INFO skip: <postmaster@example.com> is always reachable; 192.0.2.9 is blocked \
                 by RBLSMTPD=\"-go away, %IP%\"",
                "INFO fail: 192.0.2.9 is blocked by RBLSMTPD=\"try later\"",
                "INFO skip: <postmaster@example.com> is always reachable; 192.0.2.9 is blocked \
                 by RBLSMTPD=\"try later\"",
            ]
        );

        // reject_type decides about the connection, RBLSMTPD about the code.
        let server = Harness::new()
            .silent_dns(&dead, "0.3")
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "dnsbl reject_type disconnect\nrcpt_ok")
            .build()
            .unwrap();
        let mut s = server.session_from(from("192.0.2.9", &[("RBLSMTPD", "busy")]));
        s.begin("sender@sender.example");
        assert_eq!(
            s.command("RCPT TO:<user@example.com>"),
            "421 4.7.1 busy\r\n"
        );
        assert!(s.is_closed());
        let server = Harness::new()
            .silent_dns(&dead, "0.3")
            .catalogue(crate::CATALOGUE)
            .file("plugins", "dnsbl reject connect")
            .build()
            .unwrap();
        let mut s = server.session_from(from("192.0.2.9", &[("RBLSMTPD", "-no")]));
        assert_eq!(s.connect(), "550 5.7.1 no\r\n");
    }

    #[test]
    fn allowed_and_immune_clients_are_not_looked_up() {
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "relay\nwhitelist\ndnsbl\nrcpt_ok",
            &[
                ("dnsbl_zones", "bl.test"),
                ("dnsbl_allow", "# our partner\n192.0.2.2"),
                ("relayclients", "2001:db8::2"),
                ("whitelisthosts", "192.0.2.10"),
            ],
        );
        assert_eq!(one_rcpt(&server, "192.0.2.2"), OK);
        let relayed = rcpts(&server, "2001:db8::2", &[], &["someone@elsewhere.example"]);
        assert!(relayed[0].starts_with("250 "), "{relayed:?}");
        assert_eq!(one_rcpt(&server, "192.0.2.10"), OK);
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            [
                "INFO skip: 192.0.2.2 matches 192.0.2.2 in dnsbl_allow",
                "INFO skip: 2001:db8::2 is immune (relay client)",
                "INFO skip: 192.0.2.10 is immune (whitelisted host)",
            ]
        );
    }

    #[test]
    fn authenticated_clients_are_not_refused() {
        let dns = DnsServer::start();
        let log = LogCapture::default();
        let server = Harness::new()
            .dns(&dns)
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "dnsbl\nrcpt_ok")
            .file("dnsbl_zones", "bl.test")
            // Authenticates after dnsbl's connect hook, as SMTP AUTH would.
            .plugin("auth", crate::relay::tests::Authenticated)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert_eq!(
            one_rcpt(&server, "192.0.2.2"),
            "250 2.1.5 <user@example.com>, recipient ok\r\n"
        );
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            ["INFO skip: 192.0.2.2 is immune (authenticated)"]
        );
    }

    #[test]
    fn an_answer_outside_127_is_an_error_not_a_listing() {
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "dnsbl\nrcpt_ok",
            &[("dnsbl_zones", "bl2.test:listed")],
        );
        assert_eq!(one_rcpt(&server, "192.0.2.5"), OK);
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            [
                "ERROR error: 192.0.2.5 could not be checked (bl2.test: answered 192.0.2.99, \
              outside 127.0.0.0/8); not refused"
            ]
        );
    }

    #[test]
    fn a_dead_nameserver_fails_open_with_an_error_and_costs_one_timeout() {
        let dead = SilentDns::start();
        let zones: Vec<String> = (0..10).map(|i| format!("z{i}.bl.test")).collect();
        for plugins in [
            "dnsbl\nrcpt_ok",
            "dnsbl reject connect\nrcpt_ok",
            "dnsbl reject naughty\nnaughty\nrcpt_ok",
        ] {
            let log = LogCapture::default();
            let server = Harness::new()
                .silent_dns(&dead, "0.3")
                .catalogue(crate::CATALOGUE)
                .file("rcpthosts", "example.com")
                .file("plugins", plugins)
                .file("dnsbl_zones", &zones.join("\n"))
                .plugin("capture", log.clone())
                .build()
                .unwrap();
            let started = Instant::now();
            assert_eq!(one_rcpt(&server, "192.0.2.2"), OK, "{plugins}");
            // Ten zones that time out cost one timeout (0.3 s), not ten (3 s).
            let took = started.elapsed();
            assert!(took < Duration::from_secs(2), "{plugins}: took {took:?}");
            let lines = crate::test_support::summary(&log, "dnsbl");
            assert_eq!(lines.len(), 1, "{plugins}: {lines:?}");
            assert!(
                lines[0].starts_with("ERROR error: 192.0.2.2 could not be checked (z0.bl.test: "),
                "{plugins}: {lines:?}"
            );
            assert!(lines[0].ends_with("); not refused"), "{lines:?}");
        }
    }

    #[test]
    fn a_listing_counts_even_when_another_zone_fails() {
        // 192.0.2.5: bl2.test answers outside 127/8 (a failure), bl.test lists it.
        let dns = DnsServer::start();
        let (server, log) = start(
            &dns,
            "dnsbl\nrcpt_ok",
            &[("dnsbl_zones", "bl2.test:in bl2\nbl.test")],
        );
        assert_eq!(
            one_rcpt(&server, "192.0.2.5"),
            "550 5.7.1 192.0.2.5 is listed in bl.test\r\n"
        );
        assert_eq!(
            crate::test_support::summary(&log, "dnsbl"),
            [
                "INFO fail: 192.0.2.5 is listed in bl.test (failed: bl2.test: answered \
              192.0.2.99, outside 127.0.0.0/8)"
            ]
        );
    }

    #[test]
    fn lookups_start_at_connect_and_are_read_at_rcpt() {
        let dead = SilentDns::start();
        let log = LogCapture::default();
        let server = Harness::new()
            .silent_dns(&dead, "1.0")
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "dnsbl\nrcpt_ok")
            .file("dnsbl_zones", "bl.test\nbl2.test:x\nbl3.test")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = server.session_from(from("192.0.2.2", &[]));
        let started = Instant::now();
        assert!(s.connect().starts_with("220 "));
        // The banner does not wait for the lists.
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "{:?}",
            started.elapsed()
        );
        // While the client talks, the lookups run out their time.
        std::thread::sleep(Duration::from_millis(1100));
        s.command("EHLO client.example");
        s.command("MAIL FROM:<sender@sender.example>");
        let before_rcpt = Instant::now();
        assert_eq!(s.command("RCPT TO:<user@example.com>"), OK);
        assert!(
            before_rcpt.elapsed() < Duration::from_millis(800),
            "RCPT waited {:?}",
            before_rcpt.elapsed()
        );
        assert!(log.contains("error: 192.0.2.2 could not be checked"));
    }

    #[test]
    fn bad_configuration_is_refused_with_file_and_line() {
        for (file, text, want) in [
            (
                "dnsbl_zones",
                "bl.test\nnot a zone",
                "dnsbl_zones:2: \"not a zone\" is not a DNS zone name",
            ),
            (
                "dnsbl_zones",
                "bl.test:",
                "dnsbl_zones:1: \"bl.test:\": the message after ':' is empty",
            ),
            (
                "dnsbl_zones",
                "bl.test\nBL.test.",
                "dnsbl_zones:2: zone bl.test is listed twice",
            ),
            (
                "dnsbl_zones",
                "localhost",
                "dnsbl_zones:1: \"localhost\" is not a DNS zone name",
            ),
            ("dnsbl_allow", "192.0.2.", ""),
            (
                "dnsbl_allow",
                "192.0.2.0/33",
                "dnsbl_allow:1: bad prefix length",
            ),
        ] {
            let built = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", "dnsbl")
                .file(file, text)
                .build();
            match (built, want) {
                (Ok(_), "") => {}
                (Ok(_), _) => panic!("{file} {text:?} was accepted"),
                (Err(e), _) => assert!(e.to_string().contains(want), "{file} {text:?}: {e}"),
            }
        }
        for (line, want) in [
            (
                "dnsbl reject later",
                "reject must be 0, 1, naughty or connect, not \"later\"",
            ),
            (
                "dnsbl reject connect reject_type never",
                "reject_type must be",
            ),
            ("dnsbl timeout soon", "timeout must be a number of seconds"),
            ("dnsbl timeout 0", "timeout must be a number of seconds"),
            ("dnsbl reject", "has no value"),
            ("dnsbl bogus_arg 1", "unknown argument"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: dnsbl: ") && err.contains(want),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn reasons_from_the_dns_are_cleaned() {
        assert_eq!(clean("a\r\n550 b\u{7f}é"), "a??550 b??");
        assert_eq!(clean(&"x".repeat(1000)).len(), MAX_REASON);
        assert_eq!(
            listing(&Ok(Answer::Addrs(vec!["127.0.0.2".parse().unwrap()]))),
            Listing::Listed("127.0.0.2".into())
        );
        assert_eq!(listing(&Err(DnsError::NotFound)), Listing::NotListed);
        assert!(matches!(
            listing(&Err(DnsError::Timeout)),
            Listing::Failed(_)
        ));
        assert_eq!(rblsmtpd_kind(RejectType::Temp, true), RejectType::Perm);
        assert_eq!(
            rblsmtpd_kind(RejectType::Disconnect, false),
            RejectType::TempDisconnect
        );
    }
}
