//! # NAME
//!
//! domainkeys - verify DomainKeys signatures (RFC 4870)
//!
//! # DESCRIPTION
//!
//! DomainKeys was Yahoo!'s forerunner of DKIM: a `DomainKey-Signature` header carries an
//! RSA-SHA1 signature over the header fields below it and the body, and the public key is
//! published in DNS under `<selector>._domainkey.<domain>`. It was declared historic in
//! favour of DKIM (qpsmtpd-dkim(7)) and hardly anyone signs with it any more; this plugin
//! checks the few messages that still carry such a signature. It never signs.
//!
//! When a message has arrived (hook `data_post_headers`), the first `DomainKey-Signature`
//! is checked: the signed header fields (those below the signature, or the ones its `h=`
//! tag lists) and the body are put in canonical form (`c=simple` or `c=nofws`), and the
//! signature is verified with the key found in DNS. The sending address is the one in
//! `Sender:`, or else in `From:`; the signing domain (`d=`) must be its domain or a parent
//! of it. The result goes into the Authentication-Results header:
//!
//! ```text
//! domainkeys=pass header.d=example.org header.from=joe@example.org
//! domainkeys=fail (signature did not verify) header.d=example.org header.from=joe@example.org
//! ```
//!
//! - **No signature**: logged as `skip`; nothing is added to Authentication-Results.
//! - **The signature verifies**: `pass`.
//! - **It does not** (`fail`), or cannot be checked (`permerror`: a malformed signature,
//!   an algorithm other than `rsa-sha1`, no key or a revoked key in DNS, a `d=` that is not
//!   the sender's domain): whether that matters is the sending domain's to say. Its
//!   DomainKeys policy, a TXT record at `_domainkey.<sender domain>`, may say `o=-`: "all
//!   our mail is signed". Only then is the message refused, as the `reject` setting says
//!   (`552 5.7.1 DomainKeys signature failed to verify` by default). Otherwise (`o=~`, no
//!   policy, or a key or policy marked as being tested with `t=y`), the failure is logged
//!   as `fail, tolerated` and the message goes on.
//! - **A temporary DNS error** (a timeout, SERVFAIL) while fetching the key
//!   (`domainkeys=temperror`), or the policy when it is needed. A DNS failure is never a
//!   pass: the `reject` setting decides, but the rejection is always a temporary one
//!   (`452 4.4.3 DomainKeys lookup failed, please try again later`).
//!
//! The rejection itself is answered after `data_post_headers`, in `data_post`.
//!
//! Relay clients, authenticated users and whitelisted hosts and senders are not checked
//! (logged as `skip`), nor are messages larger than `max_size`.
//!
//! # CONFIGURATION
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the message through, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! A message fails when its signature does not verify (or cannot be checked) and its
//! domain says that it signs all its mail.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing. A DNS error always gives a temporary rejection (`temp`, or `temp_disconnect`
//! when `reject_type` closes the connection).
//!
//! ## warn_only *0|1*
//!
//! Default: `0`. The old name of `reject 0`, kept so old `config/plugins` lines still load:
//! `warn_only 1` only logs failures.
//!
//! ## max_size *BYTES*
//!
//! Default: `10485760` (10 MiB). The largest message (header and body) that is checked; the
//! message is held in memory while it is. Larger messages are logged as `skip` and marked
//! `domainkeys=policy (message too large to verify)`.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None of its own. `dns_servers` and `dns_timeout` (core files) say where keys and
//! policies are looked up and how long to wait for each.
//!
//! The key record is the one DKIM uses (`k=rsa; p=<base64 public key>`, optionally `t=y`
//! and `g=<local part, * as a wildcard>`), so a domain can publish one record for both.
//! Keys shorter than 1024 bits are not accepted.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The result goes into Authentication-Results instead of a `DomainKey-Status` header.
//! - A failed check is rejected in `data_post`, after `data_post_headers`; the server
//!   ignores verdicts of `data_post_headers`.
//! - `reject naughty` and the `disconnect` reject types are supported; `warn_only` is an
//!   alias of `reject 0`.
//! - Relay clients, authenticated users and whitelisted hosts are not checked.
//! - A temporary DNS error follows `reject` instead of counting as no policy.
//! - A bad signature from a domain without a policy is logged as `fail, tolerated` (Perl
//!   logged `pass: non-participant`).
//! - The canonicalization and the RSA check are done here (ring), not by
//!   Mail::DomainKeys.
//!
//! # SEE ALSO
//!
//! qpsmtpd-dkim(7), qpsmtpd-dmarc(7), qpsmtpd-naughty(7), RFC 4870 (DomainKeys), RFC 8601
//! (Authentication-Results)

use crate::dkim::{codec, domain_of, header_address, immune_reason, to_crlf};
use qpsmtpd_core::dns::{DnsError, Query};
use qpsmtpd_core::{
    ConfigError, Context, Hook, Level, Plugin, PluginSpec, Registration, Reject, RejectMode,
    RejectType, Setup, Verdict,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;

pub const SPEC: PluginSpec = PluginSpec {
    name: "domainkeys",
    factory: new,
    args: &["reject", "reject_type", "warn_only", "max_size"],
    rejects: true,
    example: "reject naughty max_size 5000000",
};

const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
const FAILED: &str = "5.7.1 DomainKeys signature failed to verify";
const TEMPFAIL: &str = "4.4.3 DomainKeys lookup failed, please try again later";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let mut reject = setup.reject(&args, RejectMode::On, RejectType::Perm)?;
    if args.flag("warn_only", false).map_err(|e| setup.error(e))? {
        reject.mode = RejectMode::Off;
    }
    let max_size = args
        .value("max_size", DEFAULT_MAX_SIZE)
        .map_err(|e| setup.error(e))?;
    if max_size == 0 {
        return Err(setup.error("max_size must be at least 1"));
    }
    Ok(Box::new(DomainKeys { reject, max_size }))
}

struct DomainKeys {
    reject: Reject,
    max_size: u64,
}

/// A verdict decided in `data_post_headers`, answered in `data_post`.
struct PendingRejection(Verdict);

/// Header canonicalization and body canonicalization (RFC 4870 §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Canon {
    Simple,
    Nofws,
}

/// One header field as it came, with CRLF line ends.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RawField {
    /// Lower case; empty for a line without a colon.
    name: String,
    raw: Vec<u8>,
}

/// Splits a header block (LF line ends) into fields; continuation lines stay with theirs.
fn raw_fields(block: &[u8]) -> Vec<RawField> {
    let mut fields: Vec<RawField> = Vec::new();
    for line in block.split_inclusive(|&b| b == b'\n') {
        match fields.last_mut() {
            Some(last) if matches!(line.first(), Some(b' ' | b'\t')) => {
                last.raw.extend_from_slice(line)
            }
            _ => fields.push(RawField {
                name: line
                    .iter()
                    .position(|&b| b == b':')
                    .map(|c| {
                        String::from_utf8_lossy(&line[..c])
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .unwrap_or_default(),
                raw: line.to_vec(),
            }),
        }
    }
    for f in &mut fields {
        if f.raw.last() != Some(&b'\n') {
            f.raw.push(b'\n');
        }
        f.raw = to_crlf(&f.raw);
    }
    fields
}

/// The fields a signature covers, in the order they are hashed. Without `h=`: every field
/// below the signature. With it: each listed name takes one field of that name, from the
/// bottom up, and the first mention of a name takes all the fields left of that name (RFC
/// 4870 §3.3: "a verifier must include all occurrences of that header").
fn signed_fields<'a>(below: &'a [RawField], h: Option<&[String]>) -> Vec<&'a RawField> {
    let Some(names) = h else {
        return below.iter().collect();
    };
    let mut groups: HashMap<&str, VecDeque<&RawField>> = HashMap::new();
    for f in below.iter().filter(|f| !f.name.is_empty()) {
        groups.entry(f.name.as_str()).or_default().push_back(f);
    }
    let mut left: HashMap<&str, usize> = HashMap::new();
    for n in names {
        *left.entry(n.as_str()).or_default() += 1;
    }
    let mut out: VecDeque<&RawField> = VecDeque::new();
    for name in names.iter().rev() {
        let n = left.get_mut(name.as_str()).expect("counted");
        *n -= 1;
        let Some(group) = groups.get_mut(name.as_str()) else {
            continue;
        };
        if *n > 0 {
            if let Some(f) = group.pop_back() {
                out.push_front(f);
            }
        } else {
            while let Some(f) = group.pop_back() {
                out.push_front(f);
            }
        }
    }
    out.into()
}

/// The bytes a signature is computed over: the fields, then the body (its first line is the
/// blank line that ends the header) without trailing empty lines.
fn canonicalize(fields: &[&RawField], body: &[u8], canon: Canon) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        match canon {
            Canon::Simple => out.extend_from_slice(&f.raw),
            Canon::Nofws => {
                out.extend(
                    f.raw
                        .iter()
                        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')),
                );
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    let mut data = b"\r\n".to_vec();
    data.extend_from_slice(body);
    if canon == Canon::Nofws {
        let mut kept = Vec::with_capacity(data.len());
        for (i, &b) in data.iter().enumerate() {
            match b {
                b' ' | b'\t' => {}
                b'\r' if data.get(i + 1) != Some(&b'\n') => {}
                b'\n' if i == 0 || data[i - 1] != b'\r' => {}
                _ => kept.push(b),
            }
        }
        data = kept;
    }
    while data.ends_with(b"\r\n\r\n") {
        data.truncate(data.len() - 2);
    }
    if data == b"\r\n" {
        data.clear(); // an empty body: not even the blank line counts
    }
    out.extend_from_slice(&data);
    out
}

/// `tag=value; ...` (a signature, a key record or a policy). Tag names are lower-cased,
/// values trimmed; `None` if a tag appears twice.
fn tags(text: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in text.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = name.trim().to_ascii_lowercase();
        if out.insert(name, value.trim().to_string()).is_some() {
            return None;
        }
    }
    Some(out)
}

/// What the check found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Pass,
    Fail(String),
    PermError(String),
    TempError(String),
}

/// One message's result.
#[derive(Clone, Debug)]
struct Outcome {
    status: Status,
    /// `d=` and `s=`, once known.
    domain: Option<String>,
    selector: Option<String>,
    /// (`from` or `sender`, the address).
    sender: Option<(&'static str, String)>,
    /// The key says `t=y`.
    testing: bool,
}

impl Outcome {
    fn new(status: Status) -> Outcome {
        Outcome {
            status,
            domain: None,
            selector: None,
            sender: None,
            testing: false,
        }
    }

    fn result(&self) -> (&'static str, Option<&str>) {
        match &self.status {
            Status::Pass => ("pass", None),
            Status::Fail(r) => ("fail", Some(r)),
            Status::PermError(r) => ("permerror", Some(r)),
            Status::TempError(r) => ("temperror", Some(r)),
        }
    }

    /// The Authentication-Results entry.
    fn auth_result(&self) -> String {
        let (result, reason) = self.result();
        let mut out = format!("domainkeys={result}");
        match (reason, self.testing) {
            (Some(r), true) => out.push_str(&format!(" ({r}; key in testing mode)")),
            (Some(r), false) => out.push_str(&format!(" ({r})")),
            (None, true) => out.push_str(" (key in testing mode)"),
            (None, false) => {}
        }
        if let Some(d) = &self.domain {
            out.push_str(&format!(" header.d={}", value(d)));
        }
        if let Some((field, addr)) = &self.sender {
            out.push_str(&format!(" header.{field}={}", value(addr)));
        }
        out
    }

    /// `d=example.org s=sel` (or what is known), for log lines.
    fn who(&self) -> String {
        match (&self.domain, &self.selector) {
            (Some(d), Some(s)) => format!("d={d} s={s}"),
            (Some(d), None) => format!("d={d}"),
            _ => "signature".into(),
        }
    }
}

/// A property value for Authentication-Results: no spaces, semicolons or parentheses.
fn value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || matches!(c, ';' | '(' | ')' | '"') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Does the key's `g=` accept this local part? (`*` matches any run of characters.)
fn granularity_matches(pattern: &str, local: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == local,
        Some((head, tail)) => {
            local.len() >= head.len() + tail.len()
                && local.starts_with(head)
                && local.ends_with(tail)
        }
    }
}

/// The sender domain's DomainKeys policy record (RFC 4870 §3.6.2.2).
fn policy_query(sender_domain: &str) -> Query {
    Query::Txt(format!("_domainkey.{sender_domain}"))
}

/// A DNS error as a status: not found is permanent, the rest temporary.
fn dns_status(what: &str, e: &DnsError) -> Status {
    match e {
        DnsError::NotFound => Status::PermError(format!("no {what} published")),
        e => Status::TempError(format!("{what} lookup failed: {e}")),
    }
}

impl DomainKeys {
    /// Checks the signature at `fields[sig]`.
    fn check(&self, cx: &mut Context<'_>, fields: &[RawField], sig: usize) -> Outcome {
        let value = {
            let raw = String::from_utf8_lossy(&fields[sig].raw);
            raw.split_once(':')
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let Some(t) = tags(&value) else {
            return Outcome::new(Status::PermError("malformed signature".into()));
        };
        let mut out = Outcome::new(Status::Pass);
        out.domain = t.get("d").map(|d| d.to_ascii_lowercase());
        out.selector = t.get("s").cloned();
        let header = &cx.transaction().header;
        out.sender = match header_address(header, true) {
            Some(a) => Some(("sender", a)),
            None => header_address(header, false).map(|a| ("from", a)),
        };
        let perm = |mut out: Outcome, why: &str| {
            out.status = Status::PermError(why.into());
            out
        };
        let (Some(domain), Some(selector)) = (out.domain.clone(), out.selector.clone()) else {
            return perm(out, "signature lacks d= or s=");
        };
        let Some(signature) = t.get("b").and_then(|b| codec::base64_decode(b)) else {
            return perm(out, "signature lacks a valid b=");
        };
        if !t
            .get("a")
            .is_none_or(|a| a.eq_ignore_ascii_case("rsa-sha1"))
        {
            return perm(out, "unsupported algorithm");
        }
        if !t.get("q").is_none_or(|q| q.eq_ignore_ascii_case("dns")) {
            return perm(out, "unsupported query method");
        }
        let canon = match t.get("c").map(|c| c.to_ascii_lowercase()).as_deref() {
            None | Some("simple") => Canon::Simple,
            Some("nofws") => Canon::Nofws,
            Some(_) => return perm(out, "unsupported canonicalization"),
        };
        let Some((_, address)) = out.sender.clone() else {
            return perm(out, "no sender address");
        };
        let Some(sender_domain) = domain_of(&address) else {
            return perm(out, "no sender domain");
        };
        if sender_domain != domain && !sender_domain.ends_with(&format!(".{domain}")) {
            return perm(out, "d= is not the sender's domain");
        }
        let h: Option<Vec<String>> = t.get("h").map(|h| {
            h.split(':')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect()
        });

        // The key and the sender's policy at once (the policy is read from the session's
        // cache if it is needed).
        let key = cx
            .resolve_all(
                &[
                    Query::Txt(format!("{selector}._domainkey.{domain}")),
                    policy_query(&sender_domain),
                ],
                None,
            )
            .remove(0);
        let public = match key {
            Err(e) => {
                out.status = dns_status("key", &e);
                return out;
            }
            Ok(a) => a
                .texts()
                .iter()
                .filter_map(|t| tags(t))
                .find(|t| t.contains_key("p")),
        };
        let Some(record) = public else {
            out.status = Status::PermError("malformed key record".into());
            return out;
        };
        out.testing = record
            .get("t")
            .is_some_and(|t| t.split(':').any(|f| f.trim().eq_ignore_ascii_case("y")));
        out.status = self.verify_key(cx, &record, &address, fields, sig, h, canon, &signature);
        out
    }

    /// Verifies the signature with the key record's tags.
    #[allow(clippy::too_many_arguments)]
    fn verify_key(
        &self,
        cx: &mut Context<'_>,
        record: &BTreeMap<String, String>,
        address: &str,
        fields: &[RawField],
        sig: usize,
        h: Option<Vec<String>>,
        canon: Canon,
        signature: &[u8],
    ) -> Status {
        if !record
            .get("k")
            .is_none_or(|k| k.is_empty() || k.eq_ignore_ascii_case("rsa"))
        {
            return Status::PermError("unsupported key type".into());
        }
        let p = record.get("p").map(String::as_str).unwrap_or("");
        if p.is_empty() {
            return Status::PermError("key revoked".into());
        }
        let Some(key) = codec::base64_decode(p).and_then(|der| codec::rsa_public_key(&der)) else {
            return Status::PermError("malformed key record".into());
        };
        if codec::rsa_modulus_bits(&key).is_none_or(|bits| bits < 1024) {
            return Status::PermError("key shorter than 1024 bits".into());
        }
        if let Some(g) = record.get("g").filter(|g| !g.is_empty()) {
            let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
            if !granularity_matches(g, local) {
                return Status::PermError("key granularity does not match the sender".into());
            }
        }
        let mut body = Vec::new();
        if let Err(e) = cx
            .transaction_mut()
            .body_reader()
            .and_then(|mut r| r.read_to_end(&mut body))
        {
            return Status::TempError(format!("cannot read the message: {e}"));
        }
        let signed = signed_fields(&fields[sig + 1..], h.as_deref());
        let data = canonicalize(&signed, &to_crlf(&body), canon);
        cx.log(
            Level::Debug,
            format!(
                "{} header fields and {} bytes signed ({canon:?})",
                signed.len(),
                data.len()
            ),
        );
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            key,
        );
        match key.verify(&data, signature) {
            Ok(()) => Status::Pass,
            Err(_) => Status::Fail("signature did not verify".into()),
        }
    }

    fn data_post_headers_(&self, cx: &mut Context<'_>) -> Option<Verdict> {
        if cx.is_immune() {
            let why = immune_reason(cx);
            cx.skip(format!("{why}: not checked"));
            return None;
        }
        let fields = raw_fields(&cx.transaction().header.as_bytes());
        let Some(sig) = fields.iter().position(|f| f.name == "domainkey-signature") else {
            cx.skip("message is not signed");
            return None;
        };
        let size = cx.transaction().data_size;
        if size > self.max_size {
            cx.add_auth_result("domainkeys=policy (message too large to verify)");
            cx.skip(format!(
                "message of {size} bytes is larger than max_size {}: not checked",
                self.max_size
            ));
            return None;
        }
        let outcome = self.check(cx, &fields, sig);
        cx.add_auth_result(&outcome.auth_result());
        let who = outcome.who();
        let why = match &outcome.status {
            Status::Pass => {
                let testing = if outcome.testing {
                    " (key in testing mode)"
                } else {
                    ""
                };
                cx.pass(format!("{who}: signature verified{testing}"));
                return None;
            }
            Status::TempError(why) => {
                return Some(self.temp_reject(cx, &format!("{who}: {why}")));
            }
            Status::Fail(why) | Status::PermError(why) => why.clone(),
        };
        if outcome.testing {
            cx.log(
                Level::Info,
                format!("fail, tolerated: {who}: {why} (the key is in testing mode)"),
            );
            return None;
        }
        let sender_domain = outcome
            .sender
            .as_ref()
            .and_then(|(_, a)| domain_of(a))
            .unwrap_or_default();
        let policy = if sender_domain.is_empty() {
            Err(DnsError::NotFound)
        } else {
            cx.resolve(&policy_query(&sender_domain))
        };
        match policy {
            Err(DnsError::NotFound) => {}
            Err(e) => {
                let why = format!("{who}: {why}; policy lookup failed: {e}");
                return Some(self.temp_reject(cx, &why));
            }
            Ok(answer) => {
                let p = answer.texts().iter().find_map(|t| tags(t));
                let testing = p
                    .as_ref()
                    .and_then(|p| p.get("t"))
                    .is_some_and(|t| t.eq_ignore_ascii_case("y"));
                let signs_all =
                    p.as_ref().and_then(|p| p.get("o")).map(String::as_str) == Some("-");
                if signs_all && !testing {
                    return Some(self.reject.apply(
                        cx,
                        FAILED,
                        &format!("{who}: {why}; {sender_domain} signs all its mail"),
                    ));
                }
            }
        }
        cx.log(
            Level::Info,
            format!(
                "fail, tolerated: {who}: {why}; {sender_domain} does not say it signs all its mail"
            ),
        );
        None
    }

    fn temp_reject(&self, cx: &mut Context<'_>, why: &str) -> Verdict {
        self.reject.temporary().apply(cx, TEMPFAIL, why)
    }
}

impl Plugin for DomainKeys {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::DataPostHeaders.into(), Hook::DataPost.into()]
    }

    fn data_post_headers(&self, cx: &mut Context<'_>) -> Verdict {
        if let Some(v) = self.data_post_headers_(cx)
            && v.is_deny()
        {
            cx.transaction_mut().set_extension(PendingRejection(v));
        }
        Verdict::Declined
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        match cx.transaction().extension::<PendingRejection>() {
            Some(PendingRejection(v)) => {
                let v = v.clone();
                cx.log(Level::Debug, format!("rejecting the message: {v}"));
                v
            }
            None => Verdict::Declined,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::tests::{auth_results, start};
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, LogCapture};

    // Messages signed with Mail::DKIM 1.20230212 (Debian's libmail-dkim-perl, an
    // independent implementation) and the key tests/fixtures/dns/keys/rsa2048.pem, which
    // the dkim.test zone publishes as rsa._domainkey.dkim.test. Line ends are CRLF; the
    // last one is left to TestSession::data.

    /// c=nofws with h=: two Received fields under one name, X-Unsigned not listed.
    const NOFWS: &str = "DomainKey-Signature: a=rsa-sha1; c=nofws; d=dkim.test;\r\n\
        \th=received:from:to:subject:date:message-id; q=dns; s=rsa;\r\n\
        \tb=La7NGzlcAouwo6LLUX5CX0yrUH08DH39dy8jIP9YEXeTuMDTAK9roM9F2bT7IJUrq5rb9oEsIManwuhVuQ7Mg5G/9oNkU0crLKfWOWtyFgwSiFgJImgy/8PEU1LE9lfg92sGQ4HsQwYh2riSnW/z+fdjERiDULQgSt3MEIhBNNhgYtfl36npeFNM7ChZHucbF3W/mIp/hhp8SKUxBxSAJhz19VboXFXa9UdIeSZMuhXzVQBh1WtIzpibDghYC+68SerieT3TsI385andAaaEXPLrWG3/Xetevi9LqSI3sEKf9KwBiKmNNRuuSDSNYN70IZaNSXZR4PQGwhCGG5ypCQ==\r\n\
        Received: from mail.dkim.test by relay.dkim.test; Mon, 1 Jan 2024 00:00:01 +0000\r\n\
        Received: from client by mail.dkim.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
        From: Joe Sender <joe@dkim.test>\r\n\
        To: user@example.com\r\n\
        Subject:  DomainKeys\r\n   test\r\n\
        Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
        Message-Id: <dk1@dkim.test>\r\n\
        X-Unsigned: not in h=\r\n\
        \r\n\
        Hello,  this is a\r\n\tDomainKeys test.\r\n\r\n";

    /// c=simple, no h=; the sender is in a subdomain of d=, and the body ends in empty
    /// lines.
    const SIMPLE: &str = "DomainKey-Signature: a=rsa-sha1; c=simple; d=dkim.test; q=dns; s=rsa;\r\n \
        b=bkGsNJCXCnz1wu/VQuQsjLxy0mcIvoo1mBhu9AWQydZA/RBfU1cZVKagtz+o9e/ifguBuLIxpZ5QdtCJSVL8kKVBVbRnm7Iilt+1g3VWO5q/HDzsT4MsWmLJfLTDd04Q9TYq5ZF4iYzzvnu0h7sTZPNF3NfJ3xjrr5mM8yGXHiqCI+I5P5oUH3PDDE/VR4fkEZ9gvzlvl6Jc2xFym5rbS249VaPlLz7ZQE+CuwUN/WmjMhp305g4skZP+bpIxPu/1rfn3FNbjVHYBLGHCm7UPleGmCk82jMbMg6Q71tloo2IM5V3czJPa3AWx5zRwOnlcsIE5+/wOdsLV84vFaFGEQ==\r\n\
        From: Joe <joe@mail.dkim.test>\r\n\
        To: user@example.com\r\n\
        Subject: simple\r\n\
        \r\n\
        A message  with\r\ntrailing blank lines.\r\n\r\n";

    /// c=nofws from some.dkim.test, whose policy is o=~ (signs some of its mail).
    const SOME: &str = "DomainKey-Signature: a=rsa-sha1; c=nofws; d=some.dkim.test; q=dns; s=rsa;\r\n\
        \tb=mm5uimx+dL0nlyOI++Yq1pf8lBm3PickLrr8w7PJjwzybVFEfpNBF6rlkYRGWR0edSd0CymQB9NOzxZIBhn/ifeTvnGN/DmQCscpipMVqJExm8ftFNifsKpQYFwyntK1OUOtSoUYPwUvhclRG2OvwuYXyjzF68wUuXomEE372RnxVliNc1VvMYKJaCe1jdqcWvqTSi7ce3uBRyo+DGKkWjRHd2PYwgu5eUKtijLgsRvYYZe6P1iYU5VZXSUYjEEMO1Cz2rNf+jR2+k7CM8w841eRVWp/Be7AjDydZpQhA4leINqhU0999i05UZ8yxs9GTE35pQ2vQkCzx3yicxm6kg==\r\n\
        From: Ann <ann@some.dkim.test>\r\n\
        To: user@example.com\r\n\
        Subject: some\r\n\
        \r\n\
        Signed by a domain that signs only some of its mail.";

    const QUEUED: &str = "250 2.0.0 Queued\r\n";
    const REJECTED: &str = "552 5.7.1 DomainKeys signature failed to verify\r\n";

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "domainkeys")
    }

    fn send(t: &crate::dkim::tests::Started, from: &str, msg: &str) -> String {
        t.server.send_message(from, &["user@example.com"], msg)
    }

    #[test]
    fn signatures_made_by_mail_dkim_verify() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "domainkeys", &[]);
        assert_eq!(send(&t, "joe@dkim.test", NOFWS), QUEUED);
        assert!(
            auth_results(&t.queued.last())
                .ends_with("; domainkeys=pass header.d=dkim.test header.from=joe@dkim.test")
        );
        assert_eq!(send(&t, "joe@mail.dkim.test", SIMPLE), QUEUED);
        assert!(
            auth_results(&t.queued.last())
                .ends_with("; domainkeys=pass header.d=dkim.test header.from=joe@mail.dkim.test")
        );
        assert_eq!(send(&t, "ann@some.dkim.test", SOME), QUEUED);
        assert_eq!(
            summary(&t.log),
            [
                "INFO pass: d=dkim.test s=rsa: signature verified",
                "INFO pass: d=dkim.test s=rsa: signature verified",
                "INFO pass: d=some.dkim.test s=rsa: signature verified",
            ]
        );
    }

    #[test]
    fn nofws_ignores_whitespace_and_unlisted_fields_simple_does_not() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "domainkeys", &[]);
        let respaced = format!(
            "{}\r\n\r\n",
            NOFWS
                .replace("Hello,  this", "Hello, this")
                .replace("X-Unsigned: not in h=", "X-Unsigned: changed")
        );
        assert_eq!(send(&t, "joe@dkim.test", &respaced), QUEUED);
        // A Received field added above the signature is not covered either.
        let relayed = format!("Received: from somewhere\r\n{NOFWS}");
        assert_eq!(send(&t, "joe@dkim.test", &relayed), QUEUED);
        // But one more Received below it is: h= covers every field of that name.
        let extra = NOFWS.replace(
            "Received: from client",
            "Received: from x\r\nReceived: from client",
        );
        assert_eq!(send(&t, "joe@dkim.test", &extra), REJECTED);
        // (mail.dkim.test has no policy of its own: a failure is only reported.)
        let respaced = SIMPLE.replace("A message  with", "A message with");
        assert_eq!(send(&t, "joe@mail.dkim.test", &respaced), QUEUED);
        assert!(
            auth_results(&t.queued.last())
                .ends_with("; domainkeys=fail (signature did not verify) header.d=dkim.test header.from=joe@mail.dkim.test")
        );
        // Trailing empty lines do not count in either.
        let longer = format!("{SIMPLE}\r\n\r\n");
        assert_eq!(send(&t, "joe@mail.dkim.test", &longer), QUEUED);
    }

    #[test]
    fn a_bad_signature_is_rejected_when_the_domain_signs_all_its_mail() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "domainkeys", &[]);
        let altered = NOFWS.replace("DomainKeys test.", "DomainKeys text.");
        let mut s = t.server.session();
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.mail("joe@dkim.test", &["user@example.com"], &altered),
            REJECTED
        );
        assert_eq!(t.queued.count(), 0);
        assert_eq!(
            summary(&t.log),
            [
                "INFO fail: d=dkim.test s=rsa: signature did not verify; dkim.test signs all its mail"
            ]
        );
        // The same for a signature that cannot be checked at all.
        for (msg, why) in [
            (NOFWS.replace("s=rsa", "s=nosuchkey"), "no key published"),
            (NOFWS.replace("s=rsa", "s=revoked"), "key revoked"),
            (NOFWS.replace("s=rsa", "s=garbage"), "malformed key record"),
            (
                NOFWS.replace("a=rsa-sha1", "a=rsa-sha256"),
                "unsupported algorithm",
            ),
            (
                NOFWS.replace("c=nofws", "c=relaxed"),
                "unsupported canonicalization",
            ),
            (NOFWS.replace("\tb=", "\tx="), "signature lacks a valid b="),
            (
                NOFWS.replace("d=dkim.test", "d=example.test"),
                "d= is not the sender's domain",
            ),
        ] {
            assert_eq!(send(&t, "joe@dkim.test", &msg), REJECTED, "{why}");
            let log = summary(&t.log);
            assert!(
                log.last()
                    .unwrap()
                    .contains(&format!(": {why}; dkim.test signs all its mail")),
                "{log:?}"
            );
        }
    }

    #[test]
    fn other_failures_are_tolerated_and_reported() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "domainkeys", &[]);
        // some.dkim.test signs only some of its mail.
        let altered = SOME.replace("only some", "only a few");
        assert_eq!(send(&t, "ann@some.dkim.test", &altered), QUEUED);
        assert!(
            auth_results(&t.queued.last()).ends_with(
                "; domainkeys=fail (signature did not verify) header.d=some.dkim.test header.from=ann@some.dkim.test"
            )
        );
        // A key in testing mode.
        let testing = NOFWS
            .replace("s=rsa", "s=testing")
            .replace("DomainKeys test.", "DomainKeys text.");
        assert_eq!(send(&t, "joe@dkim.test", &testing), QUEUED);
        assert!(auth_results(&t.queued.last()).contains(
            "; domainkeys=fail (signature did not verify; key in testing mode) header.d=dkim.test"
        ));
        // none.dkim.test has no policy at all (and this signature has no b=).
        let none = SOME
            .replace("some.dkim.test", "none.dkim.test")
            .replace("\tb=", "\tx=");
        assert_eq!(send(&t, "ann@none.dkim.test", &none), QUEUED);
        assert_eq!(
            summary(&t.log),
            [
                "INFO fail, tolerated: d=some.dkim.test s=rsa: signature did not verify; some.dkim.test does not say it signs all its mail",
                "INFO fail, tolerated: d=dkim.test s=testing: signature did not verify (the key is in testing mode)",
                "INFO fail, tolerated: d=none.dkim.test s=rsa: signature lacks a valid b=; none.dkim.test does not say it signs all its mail",
            ]
        );
    }

    #[test]
    fn reject_0_warn_only_and_naughty() {
        let dns = DnsServer::start();
        let altered = NOFWS.replace("DomainKeys test.", "DomainKeys text.");
        for plugin in ["domainkeys reject 0", "domainkeys warn_only 1"] {
            let t = start(&dns.addr().to_string(), plugin, &[]);
            assert_eq!(send(&t, "joe@dkim.test", &altered), QUEUED, "{plugin}");
            assert_eq!(
                summary(&t.log),
                [
                    "INFO fail, tolerated: d=dkim.test s=rsa: signature did not verify; dkim.test signs all its mail"
                ]
            );
        }
        let t = start(
            &dns.addr().to_string(),
            "domainkeys reject naughty reject_type temp",
            &[],
        );
        let mut s = t.server.session();
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.mail("joe@dkim.test", &["user@example.com"], &altered),
            QUEUED
        );
        assert_eq!(
            s.session.connection().notes.get_str("naughty"),
            Some("5.7.1 (domainkeys) DomainKeys signature failed to verify")
        );
        assert_eq!(
            s.session.connection().notes.get_str("naughty_reject_type"),
            Some("temp")
        );
        let t = start(
            &dns.addr().to_string(),
            "domainkeys reject_type disconnect",
            &[],
        );
        let mut s = t.server.session();
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.mail("joe@dkim.test", &["user@example.com"], &altered),
            REJECTED
        );
        assert!(s.is_closed());
    }

    #[test]
    fn a_dns_server_that_never_answers_gives_a_temporary_error() {
        let silent = SilentDns::start();
        let addr = silent.addr();
        let t = start(&addr, "domainkeys", &[]);
        assert_eq!(
            send(&t, "joe@dkim.test", NOFWS),
            "452 4.4.3 DomainKeys lookup failed, please try again later\r\n"
        );
        assert_eq!(t.queued.count(), 0);
        let log = summary(&t.log);
        assert!(
            log.len() == 1
                && log[0].starts_with("INFO fail: d=dkim.test s=rsa: key lookup failed: "),
            "{log:?}"
        );
        let t = start(&addr, "domainkeys reject 0", &[]);
        assert_eq!(send(&t, "joe@dkim.test", NOFWS), QUEUED);
        assert!(
            auth_results(&t.queued.last()).contains("; domainkeys=temperror (key lookup failed: ")
        );
    }

    #[test]
    fn unsigned_immune_and_large_messages_are_skipped() {
        let silent = SilentDns::start();
        let addr = silent.addr();
        let t = start(
            &addr,
            "domainkeys max_size 200",
            &[("relayclients", "192.0.2.1")],
        );
        let unsigned = "From: <joe@dkim.test>\r\nSubject: plain\r\n\r\nHi.";
        assert_eq!(send(&t, "joe@dkim.test", unsigned), QUEUED);
        assert!(auth_results(&t.queued.last()).ends_with("; auth=none"));
        assert_eq!(send(&t, "joe@dkim.test", NOFWS), QUEUED);
        assert!(
            auth_results(&t.queued.last())
                .ends_with("; domainkeys=policy (message too large to verify)")
        );
        let t = start(&addr, "relay\ndomainkeys", &[("relayclients", "192.0.2.1")]);
        let mut s = t
            .server
            .session_from(ConnectionInfo::from_ip("192.0.2.1".parse().unwrap()));
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.mail("joe@dkim.test", &["user@example.com"], NOFWS),
            QUEUED
        );
        assert_eq!(summary(&t.log), ["INFO skip: relay client: not checked"]);
    }

    fn field(raw: &str) -> RawField {
        raw_fields(raw.as_bytes()).remove(0)
    }

    #[test]
    fn fields_are_chosen_as_h_lists_them() {
        let block = b"A: 1\nB: 1\nA: 2\n\tcontinued\nC: 1\nA: 3\nno colon\n";
        let fields = raw_fields(block);
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[2].raw, b"A: 2\r\n\tcontinued\r\n");
        assert_eq!(fields[5].name, "");
        let pick = |h: &[&str]| -> Vec<String> {
            let h: Vec<String> = h.iter().map(|s| s.to_string()).collect();
            signed_fields(&fields, Some(&h))
                .iter()
                .map(|f| {
                    String::from_utf8_lossy(&f.raw)
                        .lines()
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        // One mention takes every field of that name.
        assert_eq!(pick(&["a", "c"]), ["A: 1", "A: 2", "A: 3", "C: 1"]);
        // Two mentions: the last takes the bottom one, the first the rest.
        assert_eq!(pick(&["a", "b", "a"]), ["A: 1", "A: 2", "B: 1", "A: 3"]);
        assert_eq!(pick(&["x", "b"]), ["B: 1"]);
        assert_eq!(signed_fields(&fields, None).len(), 6);
    }

    #[test]
    fn canonical_forms() {
        let f = field("Subject:  a \r\n\tb\r\n");
        let body = b"x  y\r\n \r\n\t\r\n\r\n";
        assert_eq!(
            canonicalize(&[&f], body, Canon::Simple),
            b"Subject:  a \r\n\tb\r\n\r\nx  y\r\n \r\n\t\r\n"
        );
        assert_eq!(
            canonicalize(&[&f], body, Canon::Nofws),
            b"Subject:ab\r\n\r\nxy\r\n"
        );
        // An empty body adds nothing, not even the blank line.
        assert_eq!(
            canonicalize(&[&f], b"\r\n\r\n", Canon::Simple),
            b"Subject:  a \r\n\tb\r\n"
        );
        assert_eq!(canonicalize(&[], b"", Canon::Nofws), b"");
        assert_eq!(canonicalize(&[], b"a\rb\r\n", Canon::Nofws), b"\r\nab\r\n");
        assert!(granularity_matches("*", "anyone"));
        assert!(granularity_matches("jo*", "joe"));
        assert!(granularity_matches("joe", "joe"));
        assert!(!granularity_matches("joe", "ann"));
        assert!(!granularity_matches("a*a", "a"));
        assert_eq!(
            tags(" a=1; B = two words ;;"),
            Some(BTreeMap::from([
                ("a".into(), "1".into()),
                ("b".into(), "two words".into())
            ]))
        );
        assert_eq!(tags("a=1; a=2"), None);
    }

    #[test]
    fn arguments_are_checked() {
        for line in [
            "domainkeys warn_only maybe",
            "domainkeys max_size 0",
            "domainkeys reject sometimes",
            "domainkeys bogus 1",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: domainkeys: "), "{line}: {err}");
        }
    }
}
