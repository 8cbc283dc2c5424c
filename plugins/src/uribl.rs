//! # NAME
//!
//! uribl - look up the domains a message links to in URI blocklists
//!
//! # DESCRIPTION
//!
//! Spam advertises web sites, and the domains of those sites are listed in URI blocklists
//! (URIBLs such as SURBL, URIBL or Spamhaus DBL) that answer DNS queries much as an IP
//! blocklist does. After the message has arrived (`data_post`), this plugin collects the
//! links in it, reduces each to the domain its owner registered, and asks every zone of
//! `uribl_zones` about every domain. What a listing does depends on the zone's *action*:
//! add an `X-URIBL-Match: <domain> in <zone>` header, refuse the message, or only log.
//!
//! What counts as a link:
//!
//! - `http://`, `https://` and `ftp://` URLs, with or without user name, password and
//!   port (`http://user:pw@www.example.test:8080/`), also written with backslashes or a
//!   single slash as some mail readers accept;
//! - host names starting with `www.` written without a scheme (`www.example.test`);
//! - in HTML, also protocol-relative `href`, `src` and `action` values (`//example.test/`),
//!   after HTML character references are decoded (`&#46;` is a dot);
//! - addresses written as numbers (`http://192.0.2.2/`, also `http://3221225986/` and the
//!   octal and hexadecimal forms browsers accept), when `checkip` is on. Loopback, private
//!   and link-local addresses are never looked up.
//!
//! Links are taken from every text and HTML part of the message, nested forwarded messages
//! included, after decoding their transfer encoding (base64, quoted-printable) and their
//! character set, so an encoded link is found as well as a plain one. Percent-encoded
//! characters in a host name are decoded; international names are converted to their
//! ASCII (punycode) form, `bücher.example` to `xn--bcher-kva.example`. Each host is then
//! reduced to its registered domain with the Public Suffix List, so `www.shop.example.co.uk`
//! is looked up as `example.co.uk`. Addresses are looked up reversed, as in an IP
//! blocklist (`2.2.0.192.<zone>` for 192.0.2.2).
//!
//! All lookups, every domain under every zone, are sent at once and cost as long as the
//! slowest of them.
//!
//! Limits, so that a huge or hostile message cannot cause a storm of lookups: at most
//! `max_domains` distinct names are looked up per message (the first ones found), only the
//! first 4 MiB of a message is read, and only the first 256 KiB of each decoded part is
//! searched for links.
//!
//! A domain (or any of its parents) in `uribl_whitelist_domains` is never looked up.
//! Relay clients, authenticated users and whitelisted hosts or senders are not checked.
//!
//! **DNS failures.** A lookup that times out or fails does not refuse the message: when no
//! other lookup found a listing, the plugin logs `error` and lets the message pass
//! unmarked. Listings found by the other lookups are acted on as usual. An answer outside
//! 127.0.0.0/8 is not a listing (blocklists answer in 127.0.0.0/8; anything else comes from
//! a resolver that rewrites answers).
//!
//! **Caution.** A URIBL match in `deny` mode refuses not only spam, but also mail that
//! merely quotes a listed link, such as a complaint forwarding a spam. Prefer `add-header`
//! unless you know your users.
//!
//! # CONFIGURATION
//!
//! ## action *add-header|deny|denysoft|log*
//!
//! Default: `add-header`. What a listing does, for the zones of `uribl_zones` that do not
//! name their own action: `add-header` adds an `X-URIBL-Match: <domain> in <zone>` header
//! (one per listing) and logs `fail, tolerated`; `deny` refuses the message (see `reject`
//! and `reject_type`); `denysoft` refuses it temporarily; `log` only logs
//! `fail, tolerated`.
//!
//! When several listings are found, the strongest action decides (`deny`, then `denysoft`,
//! then `add-header`, then `log`).
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a listing whose action is `deny` or `denysoft` does: `1` refuses the
//! message at once, `0` only logs `fail, tolerated` and adds the `X-URIBL-Match` header
//! instead, `naughty` adds the header and keeps the refusal for the `naughty` plugin to
//! deliver later. Listings whose action is `add-header` or `log` never refuse, whatever
//! `reject` says: the action says whether a listing refuses, `reject` whether such a
//! refusal is carried out.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How a `deny` listing refuses: `perm` with a 5xx reply, `temp` with a
//! 4xx reply, `disconnect` with a 5xx reply and closing the connection, `temp_disconnect`
//! with 421 and closing. A `denysoft` listing always refuses temporarily: with a 4xx
//! reply, or with 421 and closing when `reject_type` is `disconnect` or `temp_disconnect`.
//!
//! The refusal reads `552 5.7.1 Message refused: <domain> is listed in <zone>`.
//!
//! ## timeout *SECONDS*
//!
//! Default: the `dns_timeout` setting (5 seconds unless set). How long to wait for the
//! answers; decimals are allowed (`timeout 2.5`). All lookups run at once, so this bounds
//! the whole check.
//!
//! ## scan-headers *0|1*
//!
//! Default: `0`. Also look for links in the header fields (the Subject, From, Reply-To,
//! `X-` fields, ...), decoded from RFC 2047 encoded words. Trace, authentication, MIME and
//! message-id fields are left out: `Received`, `Return-Path`, `Delivered-To`,
//! `X-Original-To`, `Authentication-Results`, `Received-SPF`, `ARC-*`, `DKIM-Signature`,
//! `DomainKey-Signature`, `Message-Id`, `In-Reply-To`, `References`, `Content-*`,
//! `MIME-Version`, `Date` and `X-URIBL-Match`.
//!
//! ## check-headers *0|1*
//!
//! Default: `0`. Another name for `scan-headers`, which the original plugin also read.
//!
//! ## checkip *0|1*
//!
//! Default: `1`. Look up the addresses of links written with a numeric host
//! (`http://192.0.2.2/`) as well as domains. Turn it off for lists that hold only domains
//! (uribl.com's black list, Spamhaus DBL), to save the queries.
//!
//! ## max_domains *N*
//!
//! Default: `50`. The most distinct domains and addresses looked up per message (each in
//! every zone); the rest of the message is not searched once that many were found.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `uribl_zones` names the blocklists, one per line, in up to three columns separated by
//! blanks:
//!
//! ```text
//! # zone            [mask,...]  [action]
//! multi.surbl.org   2,8         deny
//! ob.surbl.org      1           add-header
//! dbl.example.net   add-header
//! ```
//!
//! - the zone queried;
//! - optionally, masks for composite lists, where each bit of the `127.0.0.x` answer stands
//!   for one sub-list: a comma-separated list of numbers (decimal or `0x` hexadecimal), of
//!   which a listing needs at least one bit. A negative number selects every sub-list, and
//!   so does leaving the column out (the mask is then `0x00ffffff`, any answer but
//!   127.0.0.0). Lists that answer `127.0.0.1` for "query refused" need a mask that leaves
//!   bit 1 out;
//! - optionally, the action for this zone (`add-header`, `deny`, `denysoft` or `log`),
//!   which overrides the `action` argument. It may stand in the second column when there
//!   is no mask.
//!
//! Without any zone the plugin checks nothing and logs `skip` for every message.
//!
//! `uribl_whitelist_domains` holds domains that are never looked up, one per line: a line
//! covers the domain and every name under it (`example.com` covers `www.example.com`).
//! International names may be written in either form. An IPv4 address on a line is never
//! looked up either.
//!
//! Both files are read once, when the server starts (or reloads); a malformed line stops
//! the server from starting, with the file and line named.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Each host is reduced to its registered domain with the Public Suffix List and only
//!   that domain is looked up. The original looked up the host and each of its parents
//!   down to two labels (three under a fixed list of country domains), which cost several
//!   queries per link, some of them for names nobody can register (`com.mx`).
//! - Links are found in the decoded MIME parts, in any transfer encoding and character set
//!   (the original searched the raw body lines, undoing only quoted-printable), in nested
//!   messages, in protocol-relative HTML links, and international names are looked up in
//!   their ASCII form. Bare host names are taken only when they start with `www.`; the
//!   original took any word that looked like `name.tld`, which sent lookups for file names
//!   and for the domains of e-mail addresses.
//! - Only A records are asked for; the original also asked for every TXT record, which it
//!   used only for the log line.
//! - The work per message is bounded (`max_domains`, the read and part limits).
//! - `reject` and `reject_type` are taken as by every plugin (see above); the original had
//!   only `deny` (a permanent refusal) and `denysoft`.
//! - Relay clients, authenticated users and whitelisted senders are not checked; the
//!   original checked every message.
//! - An answer outside 127.0.0.0/8 is not a listing, and a failed lookup is logged as
//!   `error`; the original counted any answer and ignored failures.
//! - `timeout` defaults to `dns_timeout` (5 seconds), not to 30 seconds.
//! - A malformed zone line is an error naming the file and line; the original logged it
//!   and checked nothing. A mask selecting no bit (`0`) is refused too.
//!
//! # SEE ALSO
//!
//! qpsmtpd-rhsbl(7), qpsmtpd-dnsbl(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7),
//! <https://www.surbl.org/guidelines>

use mail_auth::hickory_resolver::proto::rr::Name;
use qpsmtpd_core::dns::{Answer, DnsError, Query, reversed_ip};
use qpsmtpd_core::mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};
use qpsmtpd_core::{
    ConfigError, ConfigLine, Context, Hook, Level, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};
use regex::Regex;
use std::collections::HashSet;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;
use std::time::Duration;

pub const SPEC: PluginSpec = PluginSpec {
    name: "uribl",
    factory: new,
    args: &[
        "action",
        "reject",
        "reject_type",
        "timeout",
        "scan-headers",
        "check-headers",
        "checkip",
        "max_domains",
    ],
    rejects: true,
    example: "action deny timeout 2.5 scan-headers 1 checkip 0 max_domains 20 reject naughty",
};

/// The default of `max_domains`.
const DEFAULT_MAX_DOMAINS: usize = 50;
/// The most bytes of a message that are read.
const MESSAGE_LIMIT: u64 = 4 << 20;
/// The most bytes of each decoded part that are searched.
const PART_LIMIT: usize = 256 << 10;
/// How deep nested (forwarded) messages are searched.
const MAX_NESTING: usize = 3;
/// The mask of a zone without one: any answer in 127.0.0.0/8 but 127.0.0.0.
const ALL_LISTS: u32 = 0x00ff_ffff;

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let action = match args.get("action") {
        None => Action::AddHeader,
        Some(v) => Action::parse(v).ok_or_else(|| {
            setup.error(format!(
                "action must be add-header, deny, denysoft or log, not {v:?}"
            ))
        })?,
    };
    let timeout = match args.get("timeout") {
        None => None,
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|t| (0.01..=3600.0).contains(t))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    setup.error(format!("timeout must be a number of seconds, not {v:?}"))
                })?,
        ),
    };
    let flag = |key: &str, default: bool| args.flag(key, default).map_err(|e| setup.error(e));
    let scan_headers = flag("scan-headers", false)? || flag("check-headers", false)?;
    let max_domains = args
        .value("max_domains", DEFAULT_MAX_DOMAINS)
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| setup.error("max_domains must be a number from 1 to 1000"))?;
    let zones = setup
        .config
        .lines("uribl_zones")?
        .iter()
        .map(|line| Zone::parse(line, action))
        .collect::<Result<Vec<_>, _>>()?;
    let mut whitelist = HashSet::new();
    for line in setup.config.lines("uribl_whitelist_domains")? {
        whitelist.insert(whitelist_entry(&line)?);
    }
    Ok(Box::new(Uribl {
        zones,
        timeout,
        reject: setup.reject(&args, RejectMode::On, RejectType::Perm)?,
        scanner: Scanner {
            scan_headers,
            checkip: flag("checkip", true)?,
            max_domains,
            whitelist,
        },
    }))
}

/// What a listing does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    // In order of strength: the strongest action among a message's listings decides.
    Log,
    AddHeader,
    DenySoft,
    Deny,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s.to_ascii_lowercase().as_str() {
            "add-header" => Action::AddHeader,
            "deny" => Action::Deny,
            "denysoft" => Action::DenySoft,
            "log" => Action::Log,
            _ => return None,
        })
    }
}

/// One line of `uribl_zones`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Zone {
    name: String,
    mask: u32,
    action: Action,
}

impl Zone {
    fn parse(line: &ConfigLine, default_action: Action) -> Result<Zone, ConfigError> {
        let cols: Vec<&str> = line.text.split_whitespace().collect();
        if cols.len() > 3 {
            return Err(line.error("expected `zone [mask,...] [action]`"));
        }
        let name = dns_name(cols[0])
            .ok_or_else(|| line.error(format!("{:?} is not a DNS zone", cols[0])))?;
        let (masks, action) = match cols.get(1) {
            Some(c) if cols.len() == 2 && Action::parse(c).is_some() => (None, Some(*c)),
            Some(c) => (Some(*c), cols.get(2).copied()),
            None => (None, None),
        };
        let mask = match masks {
            None => ALL_LISTS,
            Some(m) => parse_masks(m).map_err(|e| line.error(format!("{}: {e}", cols[0])))?,
        };
        let action = match action {
            None => default_action,
            Some(a) => Action::parse(a).ok_or_else(|| {
                line.error(format!(
                    "{}: action must be add-header, deny, denysoft or log, not {a:?}",
                    cols[0]
                ))
            })?,
        };
        Ok(Zone { name, mask, action })
    }

    /// The bits of an answer that count as a listing here (`None`: not a listing).
    fn evaluate(&self, answer: Ipv4Addr) -> Option<u32> {
        if answer.octets()[0] != 127 {
            return None;
        }
        let bits = u32::from(answer) & self.mask;
        (bits != 0).then_some(bits)
    }
}

/// `2,8` or `-1` or `0x0a`: the OR of the masks; a negative one selects every list.
fn parse_masks(text: &str) -> Result<u32, String> {
    let mut mask = 0u32;
    for m in text.split(',') {
        let value = match m.strip_prefix("0x").or_else(|| m.strip_prefix("0X")) {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => m.parse::<i64>(),
        }
        .map_err(|_| format!("malformed mask {m:?}"))?;
        mask |= match value {
            v if v < 0 => ALL_LISTS,
            v => u32::try_from(v).map_err(|_| format!("mask {m:?} is too large"))?,
        };
    }
    if mask == 0 {
        return Err(format!("mask {text:?} selects no list"));
    }
    Ok(mask)
}

/// A DNS name as we query it: ASCII, lower case, no trailing dot, at least two labels.
fn dns_name(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let ok = labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(name)
}

/// A line of `uribl_whitelist_domains`: a domain (in either IDNA form) or an IPv4 address.
fn whitelist_entry(line: &ConfigLine) -> Result<Target, ConfigError> {
    let text = line.text.trim();
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Ok(Target::Ip(ip));
    }
    let name = text.trim_end_matches('.').to_lowercase();
    ascii_host(&name)
        .map(Target::Domain)
        .ok_or_else(|| line.error(format!("{text:?} is not a domain name or IPv4 address")))
}

/// What a message links to: a domain or an IPv4 address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Target {
    Domain(String),
    Ip(Ipv4Addr),
}

impl Target {
    /// The name looked up under each zone.
    fn query_name(&self) -> String {
        match self {
            Target::Domain(d) => d.clone(),
            Target::Ip(ip) => reversed_ip(IpAddr::V4(*ip)),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Domain(d) => f.write_str(d),
            Target::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Finds the domains and addresses a message links to.
struct Scanner {
    scan_headers: bool,
    checkip: bool,
    max_domains: usize,
    whitelist: HashSet<Target>,
}

/// What a scan found.
#[derive(Debug, Default)]
struct Found {
    /// Distinct, in the order first seen.
    targets: Vec<Target>,
    seen: HashSet<Target>,
    /// `max_domains` was reached: the rest of the message was not searched.
    full: bool,
    /// Hosts as written that were handled already.
    written: HashSet<String>,
    /// What was taken, left out and why, for the DEBUG log (at most `MAX_NOTES`).
    notes: Vec<String>,
}

/// The most DEBUG notes kept per message.
const MAX_NOTES: usize = 100;

impl Found {
    fn note(&mut self, note: String) {
        match self.notes.len() {
            n if n < MAX_NOTES => self.notes.push(note),
            MAX_NOTES => self.notes.push("(further notes left out)".into()),
            _ => {}
        }
    }
}

/// `http://`, `https://`, `ftp://` URLs (also with `\` or a single slash), with optional
/// user information; the host (a name, a number, or a bracketed literal) is captured.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b(?:https?|ftp):[/\\]{1,3}(?:[^\s/\\?#@<>"'`]*@)?(?P<host>\[[^\]\s/]*\]|[\w.%\-\x{3002}\x{FF0E}\x{FF61}]+)"#,
    )
    .expect("URL regex")
});

/// Host names starting with `www.`, written without a scheme.
static WWW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?P<host>www\d{0,3}\.[\w.%\-\x{3002}\x{FF0E}\x{FF61}]+)").expect("www regex")
});

/// Protocol-relative links in HTML attributes: `href="//example.test/"`.
static RELATIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b(?:href|src|action|background)\s*=\s*["']?\s*[/\\]{2}(?P<host>[\w.%\-\x{3002}\x{FF0E}\x{FF61}]+)"#,
    )
    .expect("relative link regex")
});

/// HTML character references.
static ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"&(?:#(?P<dec>[0-9]{1,7})|#[xX](?P<hex>[0-9a-fA-F]{1,6})|(?P<name>[a-zA-Z]{2,8}));?",
    )
    .expect("entity regex")
});

/// Header fields that are not searched with `scan-headers` (lower case; `arc-` and
/// `content-` fields by prefix).
const UNSCANNED_HEADERS: &[&str] = &[
    "received",
    "return-path",
    "delivered-to",
    "x-original-to",
    "authentication-results",
    "received-spf",
    "dkim-signature",
    "domainkey-signature",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "date",
    "x-uribl-match",
];

impl Scanner {
    /// Searches a whole message (header block, blank line, body; LF line ends).
    fn scan_message_bytes(&self, raw: &[u8]) -> Found {
        let mut found = Found::default();
        let parser = MessageParser::new()
            .with_mime_headers()
            .with_address_headers()
            .default_header_text();
        match parser.parse(raw) {
            Some(message) => {
                if self.scan_headers {
                    let text = header_text(&message, raw);
                    self.scan_text(&text, false, &mut found);
                }
                self.scan_parts(&message, 0, &mut found);
            }
            None => {
                found.note("not a MIME message: searched as text".into());
                let text = String::from_utf8_lossy(raw);
                self.scan_text(&text, false, &mut found);
            }
        }
        found
    }

    fn scan_parts(&self, message: &Message<'_>, depth: usize, found: &mut Found) {
        for part in &message.parts {
            if found.full {
                return;
            }
            match &part.body {
                PartType::Text(text) => self.scan_text(text, false, found),
                PartType::Html(html) => self.scan_text(html, true, found),
                PartType::Message(nested) if depth < MAX_NESTING => {
                    self.scan_parts(nested, depth + 1, found)
                }
                _ => {}
            }
        }
    }

    /// Searches the first `PART_LIMIT` bytes of a decoded part.
    fn scan_text(&self, text: &str, html: bool, found: &mut Found) {
        let text = truncate(text, PART_LIMIT);
        let decoded;
        let text = if html {
            decoded = decode_entities(text);
            decoded.as_str()
        } else {
            text
        };
        let mut hosts: Vec<(usize, &str)> = Vec::new();
        let mut patterns = vec![&*URL, &*WWW];
        if html {
            patterns.push(&*RELATIVE);
        }
        for re in patterns {
            hosts.extend(re.captures_iter(text).filter_map(|c| {
                let m = c.name("host")?;
                Some((m.start(), m.as_str()))
            }));
        }
        // In the order they appear, so `max_domains` keeps the first ones.
        hosts.sort_by_key(|&(at, _)| at);
        for (_, host) in hosts {
            if found.full {
                return;
            }
            self.add_host(host, found);
        }
    }

    /// Takes one host as written in a link.
    fn add_host(&self, written: &str, found: &mut Found) {
        if !found.written.insert(written.to_string()) {
            return;
        }
        let target = match self.target(written) {
            Ok(target) => target,
            Err(why) => {
                found.note(format!("{written}: {why}"));
                return;
            }
        };
        if found.seen.insert(target.clone()) {
            found.note(format!("{written} -> {target}"));
            found.targets.push(target);
            if found.targets.len() >= self.max_domains {
                found.full = true;
                found.note(format!(
                    "max_domains ({}) reached: the rest is not searched",
                    self.max_domains
                ));
            }
        }
    }

    /// What a written host is looked up as, or why it is not looked up.
    fn target(&self, written: &str) -> Result<Target, String> {
        if written.starts_with('[') {
            return Err("address literal, not looked up".into());
        }
        let host = percent_decode(written)
            .replace(['\u{3002}', '\u{FF0E}', '\u{FF61}'], ".")
            .trim_matches('.')
            .to_lowercase();
        let last = host.rsplit('.').next().unwrap_or("");
        if !last.is_empty()
            && (last.bytes().all(|b| b.is_ascii_digit())
                || last
                    .strip_prefix("0x")
                    .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
        {
            return self.ip_target(&host);
        }
        let ascii = ascii_host(&host).ok_or("not a host name")?;
        if let Some(entry) = self.whitelisted(&ascii) {
            return Err(format!("{entry} is in uribl_whitelist_domains"));
        }
        match psl::domain_str(&ascii) {
            Some(domain) => Ok(Target::Domain(domain.to_string())),
            None => Err(format!("{ascii} is a public suffix")),
        }
    }

    fn ip_target(&self, host: &str) -> Result<Target, String> {
        let ip = parse_ipv4_loose(host).ok_or("not an address")?;
        if !self.checkip {
            return Err(format!("address {ip} not looked up (checkip 0)"));
        }
        if ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
        {
            return Err(format!("address {ip} is not a public one"));
        }
        if self.whitelist.contains(&Target::Ip(ip)) {
            return Err(format!("{ip} is in uribl_whitelist_domains"));
        }
        Ok(Target::Ip(ip))
    }

    /// The whitelist entry covering `host` (the host itself or a parent), if any.
    fn whitelisted(&self, host: &str) -> Option<String> {
        let mut name = host;
        loop {
            if self.whitelist.contains(&Target::Domain(name.to_string())) {
                return Some(name.to_string());
            }
            name = name.split_once('.')?.1;
        }
    }
}

/// The header fields to search with `scan-headers`, raw and decoded, one per line.
fn header_text(message: &Message<'_>, raw: &[u8]) -> String {
    let mut text = String::new();
    let Some(top) = message.parts.first() else {
        return text;
    };
    for h in &top.headers {
        let name = h.name.as_str().to_ascii_lowercase();
        if UNSCANNED_HEADERS.contains(&name.as_str())
            || name.starts_with("arc-")
            || name.starts_with("content-")
        {
            continue;
        }
        if let Some(value) = raw.get(h.offset_start as usize..h.offset_end as usize) {
            text.push_str(&String::from_utf8_lossy(value));
            text.push('\n');
        }
        let mut decoded = Vec::new();
        match &h.value {
            HeaderValue::Text(t) => decoded.push(t.to_string()),
            HeaderValue::TextList(list) => decoded.extend(list.iter().map(|t| t.to_string())),
            HeaderValue::Address(Address::List(addrs)) => {
                for a in addrs {
                    decoded.extend(a.name.iter().map(|n| n.to_string()));
                    decoded.extend(a.address.iter().map(|n| n.to_string()));
                }
            }
            HeaderValue::Address(Address::Group(groups)) => {
                for g in groups {
                    for a in &g.addresses {
                        decoded.extend(a.name.iter().map(|n| n.to_string()));
                        decoded.extend(a.address.iter().map(|n| n.to_string()));
                    }
                }
            }
            _ => {}
        }
        for d in decoded {
            text.push_str(&d);
            text.push('\n');
        }
    }
    text
}

/// The host in ASCII (IDNA) form, if it is a valid DNS name with an alphabetic top label.
fn ascii_host(host: &str) -> Option<String> {
    let ascii = if host.is_ascii() {
        host.to_ascii_lowercase()
    } else {
        Name::from_utf8(host)
            .ok()?
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase()
    };
    let name = dns_name(&ascii)?;
    let tld = name.rsplit('.').next()?;
    (tld.bytes().any(|b| b.is_ascii_alphabetic()) && !tld.contains('_')).then_some(name)
}

/// An IPv4 address as `inet_aton` and browsers read it: one to four parts, each decimal,
/// octal (leading `0`) or hexadecimal (`0x`), the last filling the remaining bytes.
fn parse_ipv4_loose(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in parts {
        let n = if let Some(hex) = p.strip_prefix("0x") {
            if hex.is_empty() {
                0
            } else {
                u64::from_str_radix(hex, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, init) = nums.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - init.len() as u32);
    if *last >= 1u64 << rest_bits {
        return None;
    }
    let mut value = *last;
    for (i, n) in init.iter().enumerate() {
        value |= n << (24 - 8 * i);
    }
    Some(Ipv4Addr::from(value as u32))
}

/// `%2e` → `.`; invalid escapes are kept; bytes that do not form UTF-8 are replaced.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes numeric character references and the few named ones that matter in links.
fn decode_entities(html: &str) -> String {
    ENTITY
        .replace_all(html, |c: &regex::Captures<'_>| {
            let code = if let Some(d) = c.name("dec") {
                d.as_str().parse::<u32>().ok()
            } else if let Some(h) = c.name("hex") {
                u32::from_str_radix(h.as_str(), 16).ok()
            } else {
                match c["name"].to_ascii_lowercase().as_str() {
                    "amp" => Some('&' as u32),
                    "lt" => Some('<' as u32),
                    "gt" => Some('>' as u32),
                    "quot" => Some('"' as u32),
                    "apos" => Some('\'' as u32),
                    "nbsp" => Some(' ' as u32),
                    "sol" => Some('/' as u32),
                    "colon" => Some(':' as u32),
                    "period" => Some('.' as u32),
                    _ => None,
                }
            };
            match code.and_then(char::from_u32) {
                Some(ch) => ch.to_string(),
                None => c[0].to_string(),
            }
        })
        .into_owned()
}

/// The first `limit` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

struct Uribl {
    zones: Vec<Zone>,
    /// `None`: the `dns_timeout` setting.
    timeout: Option<Duration>,
    reject: Reject,
    scanner: Scanner,
}

/// One listing.
struct Listing<'a> {
    target: &'a Target,
    zone: &'a Zone,
    answer: Ipv4Addr,
}

impl Listing<'_> {
    /// As in the header and the log: `example.test in uribl.example`.
    fn describe(&self) -> String {
        format!("{} in {}", self.target, self.zone.name)
    }
}

impl Plugin for Uribl {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::DataPost.into()]
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        if self.zones.is_empty() {
            cx.skip("no zones in uribl_zones");
            return Verdict::Declined;
        }
        if cx.is_immune() {
            cx.skip("immune: relay client, authenticated or whitelisted");
            return Verdict::Declined;
        }
        let mut raw = Vec::new();
        let read = cx
            .transaction_mut()
            .message_reader()
            .and_then(|r| r.take(MESSAGE_LIMIT).read_to_end(&mut raw));
        if let Err(e) = read {
            cx.error(format!("cannot read the message: {e}"));
            return Verdict::Declined;
        }
        let found = self.scanner.scan_message_bytes(&raw);
        drop(raw);
        for note in &found.notes {
            cx.log(Level::Debug, note);
        }
        if found.targets.is_empty() {
            cx.skip("no links to look up");
            return Verdict::Declined;
        }

        let pairs: Vec<(&Target, &Zone)> = found
            .targets
            .iter()
            .flat_map(|t| self.zones.iter().map(move |z| (t, z)))
            .collect();
        let queries: Vec<Query> = pairs
            .iter()
            .map(|(t, z)| Query::A(format!("{}.{}", t.query_name(), z.name)))
            .collect();
        let answers = cx.resolve_all(&queries, self.timeout);

        let mut listings = Vec::new();
        let mut failures: Vec<(String, DnsError)> = Vec::new();
        for ((&(target, zone), query), answer) in pairs.iter().zip(&queries).zip(answers) {
            match answer {
                Ok(Answer::Addrs(addrs)) => {
                    let hit = addrs.iter().find_map(|a| match a {
                        IpAddr::V4(v4) => zone.evaluate(*v4).map(|_| *v4),
                        IpAddr::V6(_) => None,
                    });
                    match hit {
                        Some(answer) => {
                            cx.log(Level::Debug, format!("{query}: {answer}, listed"));
                            listings.push(Listing {
                                target,
                                zone,
                                answer,
                            });
                        }
                        None => cx.log(
                            Level::Debug,
                            format!(
                                "{query}: {addrs:?}, not a listing under mask {:#x}",
                                zone.mask
                            ),
                        ),
                    }
                }
                Ok(other) => cx.log(Level::Debug, format!("{query}: unexpected {other:?}")),
                Err(DnsError::NotFound) => cx.log(Level::Debug, format!("{query}: not listed")),
                Err(e) => {
                    cx.log(Level::Debug, format!("{query}: {e}"));
                    failures.push((query.to_string(), e));
                }
            }
        }

        let names = format!(
            "{} name{}",
            found.targets.len(),
            if found.targets.len() == 1 { "" } else { "s" },
        );
        let limit = if found.full {
            " (max_domains reached)"
        } else {
            ""
        };
        let failed = match failures.first() {
            None => String::new(),
            Some((q, e)) => format!(
                "; {} of {} lookups failed ({q}: {e})",
                failures.len(),
                queries.len()
            ),
        };
        if listings.is_empty() {
            if failures.is_empty() {
                let zones: Vec<&str> = self.zones.iter().map(|z| z.name.as_str()).collect();
                cx.pass(format!("{names} not listed in {}{limit}", zones.join(", ")));
            } else {
                // Not a pass: some names could not be checked. Not a refusal either (see
                // the manual): the message goes on unmarked.
                cx.error(format!("{names}{limit}, none listed{failed}"));
            }
            return Verdict::Declined;
        }
        self.act(cx, &listings, &format!("({names}{limit}{failed})"))
    }
}

impl Uribl {
    /// Acts on the listings found: the strongest action decides.
    fn act(&self, cx: &mut Context<'_>, listings: &[Listing<'_>], context: &str) -> Verdict {
        let strongest = listings
            .iter()
            .map(|l| l.zone.action)
            .max()
            .unwrap_or(Action::Log);
        let all: Vec<String> = listings
            .iter()
            .map(|l| format!("{} ({})", l.describe(), l.answer))
            .collect();
        let log_msg = format!("{} {context}", all.join(", "));
        let refusing = matches!(strongest, Action::Deny | Action::DenySoft);
        // Headers: for add-header listings, and for refusals not carried out now.
        let header_for = |l: &Listing<'_>| match l.zone.action {
            Action::AddHeader => true,
            Action::Deny | Action::DenySoft => self.reject.mode != RejectMode::On,
            Action::Log => false,
        };
        if !(refusing && self.reject.mode == RejectMode::On) {
            for l in listings.iter().filter(|l| header_for(l)) {
                cx.transaction_mut()
                    .header
                    .add("X-URIBL-Match", &l.describe());
            }
        }
        if !refusing {
            let marked = if strongest == Action::AddHeader {
                "; X-URIBL-Match added"
            } else {
                ""
            };
            cx.log(Level::Info, format!("fail, tolerated: {log_msg}{marked}"));
            return Verdict::Declined;
        }
        let first = listings
            .iter()
            .find(|l| l.zone.action == strongest)
            .unwrap_or(&listings[0]);
        let kind = match (strongest, self.reject.kind) {
            (Action::DenySoft, RejectType::Perm | RejectType::Temp) => RejectType::Temp,
            (Action::DenySoft, _) => RejectType::TempDisconnect,
            (_, kind) => kind,
        };
        let reject = Reject {
            mode: self.reject.mode,
            kind,
        };
        let smtp_msg = format!(
            "5.7.1 Message refused: {} is listed in {}",
            first.target, first.zone.name
        );
        reject.apply(cx, &smtp_msg, &log_msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer};
    use std::sync::{Arc, Mutex};

    fn scanner(checkip: bool, scan_headers: bool, whitelist: &[&str]) -> Scanner {
        Scanner {
            scan_headers,
            checkip,
            max_domains: DEFAULT_MAX_DOMAINS,
            whitelist: whitelist
                .iter()
                .map(|w| match w.parse::<Ipv4Addr>() {
                    Ok(ip) => Target::Ip(ip),
                    Err(_) => Target::Domain(w.to_string()),
                })
                .collect(),
        }
    }

    /// The names a plain-text body links to.
    fn names_in(s: &Scanner, body: &str) -> Vec<String> {
        let msg = format!("Subject: t\n\n{body}\n");
        s.scan_message_bytes(msg.as_bytes())
            .targets
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn finds_hosts_in_urls_however_written() {
        let s = scanner(true, false, &[]);
        for (text, want) in [
            ("see http://www.spam.test/offer now", vec!["spam.test"]),
            ("HTTPS://WWW.Spam.TEST:8443/x?y=1", vec!["spam.test"]),
            (
                "http://user:secret@deep.sub.spam.test:8080/",
                vec!["spam.test"],
            ),
            ("http://spam.test@other.test/", vec!["other.test"]),
            ("ftp://files.spam.test/pub/", vec!["spam.test"]),
            (r"http:\\backslash.test\x", vec!["backslash.test"]),
            ("http:/one-slash.test/", vec!["one-slash.test"]),
            ("visit www.bare.test today.", vec!["bare.test"]),
            (
                "http://sp%61m.test/ and http://spam%2etest/",
                vec!["spam.test"],
            ),
            ("http://end-of-sentence.test.", vec!["end-of-sentence.test"]),
            (
                "<http://a.test/>, \"http://b.test\" (www.c.test)",
                vec!["a.test", "b.test", "c.test"],
            ),
            // IDN: the ASCII form, from any spelling.
            (
                "http://bücher.test/ and http://BÜCHER.test/",
                vec!["xn--bcher-kva.test"],
            ),
            ("http://xn--bcher-kva.test/", vec!["xn--bcher-kva.test"]),
            ("http://bücher。test/", vec!["xn--bcher-kva.test"]),
            // Numeric hosts.
            ("http://192.0.2.2/x", vec!["192.0.2.2"]),
            ("http://3221225986/", vec!["192.0.2.2"]),
            ("http://0xc0.0.02.2/ http://0300.0.2.2/", vec!["192.0.2.2"]),
            // Not looked up.
            (
                "http://127.0.0.1/ http://10.1.2.3/ http://192.168.1.1/",
                vec![],
            ),
            ("http://[2001:db8::1]/ http://999.1.1.1/", vec![]),
            (
                "file.txt, user@mail.test, mailto:x@y.test, example.test",
                vec![],
            ),
            ("http://localhost/ http://test/", vec![]),
        ] {
            assert_eq!(names_in(&s, text), want, "{text}");
        }
        let no_ip = scanner(false, false, &[]);
        assert_eq!(
            names_in(&no_ip, "http://192.0.2.2/ http://a.test/"),
            ["a.test"]
        );
    }

    #[test]
    fn reduces_hosts_to_the_registered_domain() {
        let s = scanner(true, false, &[]);
        assert_eq!(
            names_in(&s, "http://www.shop.example.co.uk/ http://a.b.c.spam.test/"),
            ["example.co.uk", "spam.test"]
        );
        // A public suffix itself is nobody's domain.
        assert_eq!(names_in(&s, "http://co.uk/"), Vec::<String>::new());
    }

    #[test]
    fn whitelist_covers_the_domain_and_names_below_it() {
        let s = scanner(true, false, &["ok.test", "sub.mixed.test", "192.0.2.9"]);
        assert_eq!(
            names_in(
                &s,
                "http://www.ok.test/ http://ok.test/ http://x.sub.mixed.test/ \
                 http://other.mixed.test/ http://192.0.2.9/ http://notok.test/"
            ),
            ["mixed.test", "notok.test"]
        );
    }

    #[test]
    fn html_entities_and_protocol_relative_links() {
        let s = scanner(true, false, &[]);
        let mut found = Found::default();
        s.scan_text(
            "<a href=\"http://spam&#46;test/\">x</a> <a href='//rel.test/p'>y</a> \
             <img src=//img.test/i.gif> &#104;&#x74;tp://ent.test/ www&period;period.test",
            true,
            &mut found,
        );
        let names: Vec<String> = found.targets.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "spam.test",
                "rel.test",
                "img.test",
                "ent.test",
                "period.test"
            ]
        );
    }

    #[test]
    fn stops_at_max_domains() {
        let mut s = scanner(true, false, &[]);
        s.max_domains = 3;
        let body: String = (1..=10).map(|i| format!("http://d{i}.test/\n")).collect();
        let msg = format!("Subject: t\n\n{body}");
        let found = s.scan_message_bytes(msg.as_bytes());
        let names: Vec<String> = found.targets.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["d1.test", "d2.test", "d3.test"]);
        assert!(found.full);
    }

    #[test]
    fn debug_notes_are_bounded() {
        let s = scanner(true, false, &[]);
        // 300 distinct hosts that are never looked up, each written twice.
        let body: String = (0..600)
            .map(|i| format!("http://10.0.{}.{}/\n", i % 300 / 250, i % 300 % 250))
            .collect();
        let found = s.scan_message_bytes(format!("Subject: t\n\n{body}").as_bytes());
        assert!(found.targets.is_empty());
        assert_eq!(found.notes.len(), MAX_NOTES + 1);
        assert_eq!(
            found.notes[0],
            "10.0.0.0: address 10.0.0.0 is not a public one"
        );
        assert_eq!(found.notes[MAX_NOTES], "(further notes left out)");
    }

    #[test]
    fn only_the_first_part_of_a_huge_part_is_searched() {
        let s = scanner(true, false, &[]);
        let body = format!(
            "http://early.test/\n{}\nhttp://late.test/",
            "x".repeat(PART_LIMIT)
        );
        assert_eq!(names_in(&s, &body), ["early.test"]);
    }

    #[test]
    fn loose_ipv4_forms() {
        for (text, want) in [
            ("192.0.2.2", Some("192.0.2.2")),
            ("3221225986", Some("192.0.2.2")),
            ("0xc0000202", Some("192.0.2.2")),
            ("192.0.514", Some("192.0.2.2")),
            ("0300.0.02.0x2", Some("192.0.2.2")),
            ("256.0.0.1", None),
            ("1.2.3.4.5", None),
            ("1..2", None),
            ("4294967296", None),
            ("09.1.1.1", None),
        ] {
            assert_eq!(
                parse_ipv4_loose(text).map(|ip| ip.to_string()).as_deref(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn zone_lines() {
        let line = |text: &str| ConfigLine {
            text: text.into(),
            origin: qpsmtpd_core::Origin {
                file: std::path::Path::new("uribl_zones").into(),
                line: 3,
            },
        };
        let z = |text: &str| Zone::parse(&line(text), Action::AddHeader);
        assert_eq!(
            z("Multi.URIBL.test. 2,8 deny").unwrap(),
            Zone {
                name: "multi.uribl.test".into(),
                mask: 10,
                action: Action::Deny
            }
        );
        assert_eq!(z("uribl.test").unwrap().mask, ALL_LISTS);
        assert_eq!(z("uribl.test").unwrap().action, Action::AddHeader);
        assert_eq!(z("uribl.test denysoft").unwrap().action, Action::DenySoft);
        assert_eq!(z("uribl.test -1 log").unwrap().mask, ALL_LISTS);
        assert_eq!(z("uribl.test 0x0c").unwrap().mask, 12);
        for (bad, why) in [
            ("uribl.test 2,x", "uribl.test: malformed mask \"x\""),
            ("uribl.test 0", "uribl.test: mask \"0\" selects no list"),
            ("uribl.test 2 reject", "uribl.test: action must be"),
            (
                "uribl.test 2 deny extra",
                "expected `zone [mask,...] [action]`",
            ),
            ("not a/zone", "\"not\" is not a DNS zone"),
            ("bad/zone.test", "\"bad/zone.test\" is not a DNS zone"),
        ] {
            let err = z(bad).expect_err(bad).to_string();
            assert!(err.starts_with("uribl_zones:3: "), "{bad}: {err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
        let zone = z("multi.uribl.test 8").unwrap();
        assert_eq!(zone.evaluate(Ipv4Addr::new(127, 0, 0, 10)), Some(8));
        assert_eq!(zone.evaluate(Ipv4Addr::new(127, 0, 0, 2)), None);
        assert_eq!(zone.evaluate(Ipv4Addr::new(192, 0, 2, 8)), None);
    }

    // ---- sessions against the test DNS server ----

    /// A queue plugin that accepts every message and keeps its X-URIBL-Match values.
    #[derive(Clone, Default)]
    struct Queue(Arc<Mutex<Vec<Vec<String>>>>);

    impl Queue {
        fn headers(&self) -> Vec<Vec<String>> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Plugin for Queue {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Queue.into()]
        }
        fn queue(&self, cx: &mut Context<'_>) -> Verdict {
            let values = cx.transaction().header.get_all("X-URIBL-Match");
            self.0.lock().unwrap().push(values);
            Verdict::ok()
        }
    }

    struct Rig {
        server: TestServer,
        log: LogCapture,
        queue: Queue,
        _dns: Option<DnsServer>,
    }

    impl Rig {
        /// The reply to a message with this header block and body.
        fn send(&self, head: &str, body: &str) -> String {
            self.server.send_message(
                "sender@example.test",
                &["user@example.test"],
                &format!("From: <sender@example.test>\r\n{head}\r\n\r\n{body}"),
            )
        }

        fn summary(&self) -> Vec<String> {
            crate::test_support::summary(&self.log, "uribl")
        }
    }

    const ZONES: &str = "# zone mask action\nuribl.test\nmulti.uribl.test 2";

    /// A server with `uribl <args>` against the fixture zones.
    fn serve(args: &str, files: &[(&str, &str)]) -> Rig {
        let dns = DnsServer::start();
        let h = Harness::new().dns(&dns);
        let mut rig = rig_with(h, args, files);
        rig._dns = Some(dns);
        rig
    }

    fn rig_with(h: Harness, args: &str, files: &[(&str, &str)]) -> Rig {
        let log = LogCapture::default();
        let queue = Queue::default();
        let h = files
            .iter()
            .fold(h, |h, (name, text)| h.file(name, text))
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.test")
            .file(
                "plugins",
                &format!("uribl {args}\nrcpt_ok").replace(" \n", "\n"),
            )
            .plugin("queue", queue.clone())
            .plugin("capture", log.clone());
        Rig {
            server: h.build().unwrap(),
            log,
            queue,
            _dns: None,
        }
    }

    const QUEUED: &str = "250 2.0.0 Queued\r\n";

    #[test]
    fn plain_text_link_gets_a_header_by_default() {
        let rig = serve("", &[("uribl_zones", ZONES)]);
        assert_eq!(
            rig.send("Subject: hi", "Cheap stuff at http://www.spam.test/buy\r\n"),
            QUEUED
        );
        // spam.test is in both zones (127.0.0.4 in the composite one does not pass mask 2).
        assert_eq!(rig.queue.headers(), [["spam.test in uribl.test"]]);
        assert_eq!(
            rig.summary(),
            [
                "INFO fail, tolerated: spam.test in uribl.test (127.0.0.2) (1 name); X-URIBL-Match added"
            ]
        );
        assert!(
            rig.log.of_plugin("uribl").contains(
                &"DEBUG spam.test.multi.uribl.test A: [127.0.0.4], not a listing under mask 0x2"
                    .to_string()
            ),
            "{:?}",
            rig.log.of_plugin("uribl")
        );
    }

    #[test]
    fn unlisted_links_pass() {
        let rig = serve("", &[("uribl_zones", ZONES)]);
        assert_eq!(
            rig.send(
                "Subject: hi",
                "See http://clean.test/ and www.example.test\r\n"
            ),
            QUEUED
        );
        assert_eq!(rig.queue.headers(), [Vec::<String>::new()]);
        assert_eq!(
            rig.summary(),
            ["INFO pass: 2 names not listed in uribl.test, multi.uribl.test"]
        );
        assert_eq!(rig.send("Subject: hi", "no links here\r\n"), QUEUED);
        assert_eq!(rig.summary()[1], "INFO skip: no links to look up");
    }

    #[test]
    fn deny_and_denysoft_refuse_as_reject_type_says() {
        let zones = "uribl.test deny\nmulti.uribl.test 8 denysoft";
        let rig = serve("", &[("uribl_zones", zones)]);
        assert_eq!(
            rig.send("Subject: x", "http://spam.test/\r\n"),
            "552 5.7.1 Message refused: spam.test is listed in uribl.test\r\n"
        );
        assert_eq!(
            rig.send("Subject: x", "http://ph.test/\r\n"),
            "452 4.7.1 Message refused: ph.test is listed in multi.uribl.test\r\n"
        );
        // Both: the stronger action (deny) decides.
        assert_eq!(
            rig.send("Subject: x", "http://ph.test/ http://spam.test/\r\n"),
            "552 5.7.1 Message refused: spam.test is listed in uribl.test\r\n"
        );
        assert!(rig.queue.headers().is_empty());
        assert_eq!(
            rig.summary(),
            [
                "INFO fail: spam.test in uribl.test (127.0.0.2) (1 name)",
                "INFO fail: ph.test in multi.uribl.test (127.0.0.8) (1 name)",
                "INFO fail: ph.test in multi.uribl.test (127.0.0.8), spam.test in uribl.test (127.0.0.2) (2 names)",
            ]
        );

        // The action argument is the default of zones without one; reject_type applies.
        let rig = serve(
            "action deny reject_type disconnect",
            &[("uribl_zones", "uribl.test\nmulti.uribl.test 8 denysoft")],
        );
        let mut s = rig.server.session();
        s.connect();
        s.command("EHLO client.example");
        let reply = s.mail(
            "a@example.test",
            &["user@example.test"],
            "Subject: x\r\n\r\nhttp://spam.test/",
        );
        assert_eq!(
            reply,
            "552 5.7.1 Message refused: spam.test is listed in uribl.test\r\n"
        );
        assert!(s.is_closed());
        let mut s = rig.server.session();
        s.connect();
        s.command("EHLO client.example");
        let reply = s.mail(
            "a@example.test",
            &["user@example.test"],
            "Subject: x\r\n\r\nhttp://both.test/",
        );
        assert_eq!(
            reply,
            "421 4.7.1 Message refused: both.test is listed in multi.uribl.test\r\n"
        );
        assert!(s.is_closed());
    }

    #[test]
    fn reject_0_and_naughty_add_the_header_instead() {
        let zones = "uribl.test deny";
        let rig = serve("reject 0", &[("uribl_zones", zones)]);
        assert_eq!(rig.send("Subject: x", "http://spam.test/\r\n"), QUEUED);
        assert_eq!(rig.queue.headers(), [["spam.test in uribl.test"]]);
        assert_eq!(
            rig.summary(),
            ["INFO fail, tolerated: spam.test in uribl.test (127.0.0.2) (1 name)"]
        );

        let rig = serve("reject naughty", &[("uribl_zones", zones)]);
        let mut s = rig.server.session();
        s.connect();
        s.command("EHLO client.example");
        let reply = s.mail(
            "a@example.test",
            &["user@example.test"],
            "Subject: x\r\n\r\nhttp://spam.test/",
        );
        assert_eq!(reply, QUEUED);
        assert_eq!(
            s.session.connection().notes.get_str("naughty"),
            Some("5.7.1 (uribl) Message refused: spam.test is listed in uribl.test")
        );
        assert_eq!(rig.queue.headers(), [["spam.test in uribl.test"]]);
        assert_eq!(
            rig.summary(),
            ["INFO fail, naughty: spam.test in uribl.test (127.0.0.2) (1 name)"]
        );
    }

    #[test]
    fn log_action_only_logs() {
        let rig = serve("action log", &[("uribl_zones", "uribl.test")]);
        assert_eq!(rig.send("Subject: x", "http://spam.test/\r\n"), QUEUED);
        assert_eq!(rig.queue.headers(), [Vec::<String>::new()]);
        assert_eq!(
            rig.summary(),
            ["INFO fail, tolerated: spam.test in uribl.test (127.0.0.2) (1 name)"]
        );
    }

    #[test]
    fn quoted_printable_links_are_decoded() {
        let rig = serve("action deny", &[("uribl_zones", "uribl.test")]);
        let head = "Subject: qp\r\nMIME-Version: 1.0\r\n\
                    Content-Type: text/plain; charset=utf-8\r\n\
                    Content-Transfer-Encoding: quoted-printable";
        // A soft line break inside the host, and an encoded dot.
        let body = "Go to http://www.sp=\r\nam=2Etest/now=3D1 please\r\n";
        assert_eq!(
            rig.send(head, body),
            "552 5.7.1 Message refused: spam.test is listed in uribl.test\r\n"
        );
        // The IDN bücher.test, in UTF-8 encoded as quoted-printable: looked up as punycode.
        let body = "Books: http://b=C3=BCcher.test/\r\n";
        assert_eq!(
            rig.send(head, body),
            "552 5.7.1 Message refused: xn--bcher-kva.test is listed in uribl.test\r\n"
        );
    }

    #[test]
    fn base64_html_in_a_multipart_message() {
        let rig = serve("action deny", &[("uribl_zones", "uribl.test")]);
        // ISO-8859-1 HTML, base64-encoded: the link is in an href, with an entity for the
        // dot and the host b\xfccher.test written in Latin-1.
        let html =
            b"<html><body><a href=\"http://www.b\xfccher&#46;test/\">Click</a></body></html>";
        let encoded = base64(html);
        let head = "Subject: html\r\nMIME-Version: 1.0\r\n\
                    Content-Type: multipart/alternative; boundary=\"b1\"";
        let body = format!(
            "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlain part, no links.\r\n\
             --b1\r\nContent-Type: text/html; charset=iso-8859-1\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b1--\r\n"
        );
        assert_eq!(
            rig.send(head, &body),
            "552 5.7.1 Message refused: xn--bcher-kva.test is listed in uribl.test\r\n"
        );
        // Without decoding, the raw body holds no link at all.
        assert!(!body.contains("cher"));
    }

    fn base64(data: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn whitelisted_domains_are_not_looked_up() {
        let rig = serve(
            "action deny",
            &[
                ("uribl_zones", "uribl.test"),
                (
                    "uribl_whitelist_domains",
                    "# ours\nlisted-but-ok.test\n192.0.2.2",
                ),
            ],
        );
        assert_eq!(
            rig.send(
                "Subject: x",
                "http://www.listed-but-ok.test/ http://192.0.2.2/\r\n"
            ),
            QUEUED
        );
        assert_eq!(rig.summary(), ["INFO skip: no links to look up"]);
        assert!(
            rig.log
                .contains("listed-but-ok.test is in uribl_whitelist_domains")
        );
    }

    #[test]
    fn masks_select_the_sub_lists_that_count() {
        let rig = serve("", &[("uribl_zones", "multi.uribl.test 8,4")]);
        let body = "http://sc.test/ http://ph.test/ http://both.test/ \
                    http://refused.test/ http://spam.test/\r\n";
        assert_eq!(rig.send("Subject: x", body), QUEUED);
        assert_eq!(
            rig.queue.headers(),
            [[
                "ph.test in multi.uribl.test",
                "both.test in multi.uribl.test",
                "spam.test in multi.uribl.test"
            ]]
        );
        // No mask: every sub-list, 127.0.0.1 included.
        let rig = serve("", &[("uribl_zones", "multi.uribl.test")]);
        assert_eq!(rig.send("Subject: x", body), QUEUED);
        assert_eq!(rig.queue.headers()[0].len(), 5);
        // A negative mask is the same; answers outside 127/8 never count.
        let rig = serve("", &[("uribl_zones", "uribl.test -1")]);
        assert_eq!(rig.send("Subject: x", "http://hijacked.test/"), QUEUED);
        assert_eq!(rig.queue.headers(), [Vec::<String>::new()]);
        assert_eq!(
            rig.summary(),
            ["INFO pass: 1 name not listed in uribl.test"]
        );
    }

    #[test]
    fn address_links_are_looked_up_reversed_unless_checkip_is_off() {
        let rig = serve("action deny", &[("uribl_zones", "uribl.test")]);
        assert_eq!(
            rig.send("Subject: x", "http://192.0.2.2/login\r\n"),
            "552 5.7.1 Message refused: 192.0.2.2 is listed in uribl.test\r\n"
        );
        let rig = serve("action deny checkip 0", &[("uribl_zones", "uribl.test")]);
        assert_eq!(rig.send("Subject: x", "http://192.0.2.2/login\r\n"), QUEUED);
        assert_eq!(rig.summary(), ["INFO skip: no links to look up"]);
    }

    #[test]
    fn headers_are_searched_only_with_scan_headers() {
        let head = "Subject: =?utf-8?q?visit_www=2Espam=2Etest?=\r\n\
                    Received: from www.spam.test by test.example";
        let rig = serve("action deny", &[("uribl_zones", "uribl.test")]);
        assert_eq!(rig.send(head, "nothing\r\n"), QUEUED);
        let rig = serve(
            "action deny scan-headers 1",
            &[("uribl_zones", "uribl.test")],
        );
        assert_eq!(
            rig.send(head, "nothing\r\n"),
            "552 5.7.1 Message refused: spam.test is listed in uribl.test\r\n"
        );
        // Trace fields are never searched.
        let rig = serve(
            "action deny check-headers 1",
            &[("uribl_zones", "uribl.test")],
        );
        assert_eq!(
            rig.send("Received: from www.spam.test by x.test", "nothing\r\n"),
            QUEUED
        );
    }

    #[test]
    fn many_domains_are_looked_up_at_once_up_to_max_domains() {
        let rig = serve("", &[("uribl_zones", ZONES)]);
        // 60 domains, 2 zones: the first 50 are looked up (100 queries, all at once).
        // bulk-37 is listed; bulk-55 is listed too but beyond the limit.
        let body: String = (1..=60)
            .map(|i| format!("http://www.bulk-{i}.test/page\r\n"))
            .collect();
        assert_eq!(rig.send("Subject: bulk", &body), QUEUED);
        assert_eq!(rig.queue.headers(), [["bulk-37.test in uribl.test"]]);
        assert_eq!(
            rig.summary(),
            [
                "INFO fail, tolerated: bulk-37.test in uribl.test (127.0.0.2) (50 names (max_domains reached)); X-URIBL-Match added"
            ]
        );
        let rig = serve("max_domains 30", &[("uribl_zones", ZONES)]);
        assert_eq!(rig.send("Subject: bulk", &body), QUEUED);
        assert_eq!(
            rig.summary(),
            [
                "INFO pass: 30 names not listed in uribl.test, multi.uribl.test (max_domains reached)"
            ]
        );
    }

    #[test]
    fn a_dns_timeout_is_an_error_and_never_a_refusal_or_a_pass() {
        let silent = qpsmtpd_core::testing::SilentDns::start();
        let h = Harness::new()
            .file("dns_servers", &silent.addr())
            .file("dns_timeout", "30");
        // The plugin's own timeout wins over dns_timeout.
        let rig = rig_with(h, "action deny timeout 0.3", &[("uribl_zones", ZONES)]);
        let body: String = (1..=40).map(|i| format!("http://t{i}.test/\r\n")).collect();
        let started = std::time::Instant::now();
        assert_eq!(rig.send("Subject: slow", &body), QUEUED);
        // 80 queries that each time out after 0.3 s: concurrent, so far less than 24 s.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(rig.queue.headers(), [Vec::<String>::new()]);
        let summary = rig.summary();
        assert_eq!(summary.len(), 1, "{summary:?}");
        assert!(
            summary[0].starts_with(
                "ERROR error: 40 names, none listed; 80 of 80 lookups failed (t1.test.uribl.test A: "
            ),
            "{summary:?}"
        );
    }

    #[test]
    fn immune_clients_are_not_checked() {
        let dns = DnsServer::start();
        let log = LogCapture::default();
        let queue = Queue::default();
        let server = Harness::new()
            .dns(&dns)
            .catalogue(crate::CATALOGUE)
            .file("uribl_zones", "uribl.test deny")
            .file("relayclients", "192.0.2.1")
            .file("rcpthosts", "example.test")
            .file("plugins", "relay\nuribl\nrcpt_ok")
            .plugin("queue", queue.clone())
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let body = "Subject: x\r\n\r\nhttp://spam.test/";
        for (ip, want) in [
            ("192.0.2.1", QUEUED),
            (
                "203.0.113.5",
                "552 5.7.1 Message refused: spam.test is listed in uribl.test\r\n",
            ),
        ] {
            let mut s = server.session_from(ConnectionInfo::from_ip(ip.parse().unwrap()));
            s.connect();
            s.command("EHLO client.example");
            assert_eq!(s.mail("a@example.test", &["user@example.test"], body), want);
        }
        assert_eq!(
            crate::test_support::summary(&log, "uribl"),
            [
                "INFO skip: immune: relay client, authenticated or whitelisted",
                "INFO fail: spam.test in uribl.test (127.0.0.2) (1 name)",
            ]
        );
    }

    #[test]
    fn without_zones_every_message_is_skipped() {
        let rig = rig_with(Harness::new(), "", &[]);
        assert_eq!(rig.send("Subject: x", "http://spam.test/"), QUEUED);
        assert_eq!(rig.summary(), ["INFO skip: no zones in uribl_zones"]);
    }

    #[test]
    fn bad_configuration_is_refused_with_its_place() {
        let err = |plugins: &str, files: &[(&str, &str)]| {
            files
                .iter()
                .fold(Harness::new(), |h, (n, t)| h.file(n, t))
                .catalogue(crate::CATALOGUE)
                .file("plugins", plugins)
                .build()
                .expect_err(plugins)
                .to_string()
        };
        let e = err(
            "uribl",
            &[("uribl_zones", "uribl.test\n\nmulti.uribl.test 2,x")],
        );
        assert!(
            e.ends_with("uribl_zones:3: multi.uribl.test: malformed mask \"x\""),
            "{e}"
        );
        let e = err("uribl", &[("uribl_zones", "uribl.test 2 refuse")]);
        assert!(
            e.contains("uribl_zones:1: uribl.test: action must be"),
            "{e}"
        );
        let e = err(
            "uribl",
            &[("uribl_whitelist_domains", "ok.test\nnot a domain!")],
        );
        assert!(
            e.ends_with(
                "uribl_whitelist_domains:2: \"not a domain!\" is not a domain name or IPv4 address"
            ),
            "{e}"
        );
        for line in [
            "uribl action reject",
            "uribl timeout soon",
            "uribl timeout 0",
            "uribl max_domains 0",
            "uribl checkip maybe",
            "uribl reject sometimes",
            "uribl bogus_arg 1",
        ] {
            let e = crate::test_support::load_error(line);
            assert!(e.contains("plugins:1: uribl: "), "{line}: {e}");
        }
    }
}
