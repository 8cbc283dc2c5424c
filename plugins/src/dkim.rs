//! # NAME
//!
//! dkim - verify DKIM signatures, and sign the mail of our own users
//!
//! # DESCRIPTION
//!
//! DomainKeys Identified Mail (RFC 6376) lets a domain vouch for a message by signing it;
//! the public key is published in DNS under `<selector>._domainkey.<domain>`. This plugin
//! does both halves of the job.
//!
//! **Verifying.** When a message has arrived (hook `data_post_headers`), every
//! `DKIM-Signature` header is checked: the key is fetched from DNS, and the hash of the body
//! and the signature over the signed header fields are computed again. Each signature's
//! result goes into the Authentication-Results header, one entry per signature:
//!
//! ```text
//! dkim=pass header.d=example.org header.s=may2024 header.b=Hm3Ve0lX
//! dkim=fail (body hash did not verify) header.d=example.net header.s=s1 header.b=q2cT5VWo
//! ```
//!
//! The message as a whole is judged by its best signature:
//!
//! - **No signature**: `dkim=none`; logged as `skip`, and the message goes on.
//! - **At least one signature passes**: logged as `pass` (and the connection's karma goes
//!   up by one), whatever the other signatures say.
//! - **None passes, and a key could not be fetched because of a temporary DNS error**
//!   (a timeout, SERVFAIL): `dkim=temperror`. A DNS failure is never a pass: the
//!   `reject` setting decides, but the rejection is always a temporary one
//!   (`452 4.4.3 DKIM key lookup failed, please try again later`), so the sender tries
//!   again later.
//! - **None passes, and at least one fails**: its body hash or its signature does not
//!   match, so the message was altered on the way or the signature is forged. Logged as
//!   `fail`, karma goes down by one, and the `reject` setting decides
//!   (`552 5.7.20 DKIM signature invalid: ...` by default).
//! - **Only unusable signatures** (malformed, expired, an unknown algorithm, no key or a
//!   revoked key in DNS): `dkim=neutral` or `dkim=permerror` for each. As RFC 6376 §6.1
//!   says, such a message is treated as unsigned: logged as `skip`, and it goes on.
//!
//! The rejection itself is answered after `data_post_headers`, in `data_post`.
//!
//! All keys are fetched at once, so a message with several signatures costs one DNS
//! round trip (or one timeout). At most the first (topmost) 10 signatures are checked.
//!
//! Relay clients and authenticated users are not verified (their mail is signed instead),
//! nor are whitelisted hosts and senders; each is logged as `skip`. A message larger than
//! `max_size` is not verified either: `dkim=policy (message too large to verify)`.
//!
//! For the plugins that come later, the domains whose signatures passed are left in the
//! transaction note `dkim_pass_domains` (a list), and every signature's result in the
//! transaction as a typed value (`qpsmtpd_plugins::dkim::DkimResults`).
//!
//! **Signing.** A message from a relay client or an authenticated user is signed when the
//! domain of its `From:` header has a key: a directory `dkim/<domain>/` among the
//! configuration directories, holding the files `selector` and `private` (as the
//! `qpsmtpd dkim-keygen` command writes them). If `dkim/<domain>/` does not exist, the
//! parent domains are tried (mail from `host.example.org` is signed with the key of
//! `example.org`), down to two labels. If `dkim/<domain>` is a symbolic link to another
//! domain's directory, that domain's key signs, and `d=` names that domain: with
//! `dkim/client.example -> example.org`, mail from client.example is signed as
//! `d=example.org`.
//!
//! The signature is added in `queue_pre`, after every `data_post` plugin has had its say
//! and right before the queue plugin takes the message, so no later change breaks it. It
//! uses `rsa-sha256` or `ed25519-sha256` (whatever the key is), `c=relaxed/relaxed` and a
//! timestamp (`t=`), and signs these header fields: From, Sender, Reply-To, Subject, Date,
//! Message-ID, To, Cc, MIME-Version, Content-Type, Content-Transfer-Encoding, In-Reply-To,
//! References, List-Id, List-Unsubscribe and List-Unsubscribe-Post. Those the message does
//! not have are signed as absent, so nobody can add them later without breaking the
//! signature. The trace fields the server has added by then (Received,
//! Authentication-Results) are not signed: they are added to at every hop.
//!
//! A relay client's message whose domain has no key goes out unsigned (logged as `skip`).
//! If signing fails, the message is refused with
//! `452 4.3.0 DKIM signing failed, please try again later` and the reason is logged as
//! `error`: mail that should be signed never leaves unsigned.
//!
//! **Keys.** `qpsmtpd dkim-keygen DOMAIN` writes a new key and prints the DNS record to
//! publish (see qpsmtpd(8)):
//!
//! ```text
//! qpsmtpd dkim-keygen example.org --selector may2024 --type rsa --bits 2048
//! ```
//!
//! writes `dkim/example.org/selector`, `dkim/example.org/private` (mode 0600) and
//! `dkim/example.org/dns` under the first configuration directory (or `--config-dir`), and
//! prints the TXT record, split into strings of at most 255 characters:
//!
//! ```text
//! may2024._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; "
//!     "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA..."
//!     "..." )
//! ```
//!
//! `--type ed25519` makes an Ed25519 key (RFC 8463); many receivers do not check those yet,
//! so sign with RSA unless you know better. An existing key is not replaced without
//! `--force`.
//!
//! # CONFIGURATION
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the message through, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! A message fails when none of its signatures passes and at least one fails; one whose key
//! could not be fetched because of a DNS error is refused with a temporary error unless
//! `reject` is `0`. Mailing lists that change messages break signatures, so many sites
//! run this plugin with `reject 0` and let `dmarc` decide.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing. A DNS error always gives a temporary rejection (`temp`, or `temp_disconnect`
//! when `reject_type` closes the connection).
//!
//! ## max_size *BYTES*
//!
//! Default: `10485760` (10 MiB). The largest message (header and body) that is verified;
//! the message is held in memory while it is checked. Larger messages are logged as `skip`
//! and marked `dkim=policy (message too large to verify)`. Messages to be signed are
//! signed whatever their size.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `dkim/<domain>/selector` holds the selector on its first line (one or more DNS labels:
//! letters, digits, `-` and `_`, separated by dots). `dkim/<domain>/private` holds the
//! private key in PEM: RSA as `BEGIN RSA PRIVATE KEY` (PKCS#1, what `openssl genrsa` used to
//! write) or `BEGIN PRIVATE KEY` (PKCS#8), Ed25519 as `BEGIN PRIVATE KEY` (PKCS#8, what
//! `openssl genpkey -algorithm ed25519` writes). Other files in the directory (`public`,
//! `dns`) are ignored, and so are plain files directly in `dkim/` (the original's
//! `dkim_key_gen.sh`).
//!
//! Each configuration directory's `dkim/` is read once, when the server starts; a domain
//! found in several, counts in the first. A key directory without a readable selector or
//! key, or with a key that is not RSA or Ed25519 (or is encrypted), stops the server from
//! starting, with the file named. RSA keys must have 2048 to 4096 bits (1024-bit keys are
//! too weak to sign with; they are still accepted when verifying).
//!
//! `dns_servers` and `dns_timeout` (core files) say where keys are looked up and how long
//! to wait for each.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Signing uses the domain of the `From:` header, the one receivers align DKIM with for
//!   DMARC; the Perl plugin used the envelope sender's domain. Authenticated users are
//!   signed even when they are not relay clients.
//! - The signature is added in `queue_pre` with `c=relaxed/relaxed` and an explicit list of
//!   header fields, instead of in `data_post_headers` with `c=relaxed/simple` and every
//!   field Mail::DKIM chose (which included trace fields).
//! - Ed25519 keys are supported, for signing and verifying.
//! - A failed DKIM check is rejected in `data_post`: the verdict of `data_post_headers` is
//!   ignored by the server (in Perl it was ignored too, so the Perl plugin never rejected).
//! - Every signature gets its own Authentication-Results entry, with `header.d`,
//!   `header.s` and `header.b` (RFC 6008); the Perl plugin added one entry for the first
//!   signature only, and an `X-DKIM-Authentication` header.
//! - ADSP policies (RFC 5617, declared historic in 2013) are not looked up; use `dmarc`.
//! - Unusable signatures (no key, malformed) count as no signature instead of as a
//!   failure, as RFC 6376 says.
//! - A temporary DNS error follows `reject` (the Perl plugin always answered DENYSOFT).
//! - The results are kept per message (transaction note `dkim_pass_domains`), not per
//!   connection.
//! - Keys are read when the server starts, and a broken key stops it, instead of failing
//!   when the first message is signed.
//! - Messages larger than `max_size` are not verified.
//!
//! # SEE ALSO
//!
//! qpsmtpd-dmarc(7), qpsmtpd-domainkeys(7), qpsmtpd-sender_permitted_from(7),
//! qpsmtpd-naughty(7), qpsmtpd-karma(7), qpsmtpd(8), RFC 6376 (DKIM), RFC 8463 (Ed25519),
//! RFC 8601 (Authentication-Results), RFC 7372 (enhanced status codes for DKIM)

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done, Signature};
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult};
use qpsmtpd_core::config::Origin;
use qpsmtpd_core::dns::Query;
use qpsmtpd_core::{
    Config, ConfigDirs, ConfigError, Context, Hook, Level, Plugin, PluginSpec, Registration,
    Reject, RejectMode, RejectType, Setup, Verdict,
};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const SPEC: PluginSpec = PluginSpec {
    name: "dkim",
    factory: new,
    args: &["reject", "reject_type", "max_size"],
    rejects: true,
    example: "reject 0 max_size 5000000",
};

/// The default of `max_size`: 10 MiB.
const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;

/// The header fields we sign (absent ones are signed as absent).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// The most signatures checked in one message (the topmost ones).
const MAX_SIGNATURES: usize = 10;

/// The refusal of a message none of whose signatures passed (RFC 7372: X.7.20, no passing
/// DKIM signature found).
const INVALID: &str = "5.7.20 DKIM signature invalid";
/// The temporary refusal when a key could not be fetched.
const TEMPFAIL: &str = "4.4.3 DKIM key lookup failed, please try again later";
/// The temporary refusal when signing failed.
const SIGN_FAILED: &str = "4.3.0 DKIM signing failed, please try again later";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let reject = setup.reject(&args, RejectMode::On, RejectType::Perm)?;
    let max_size = args
        .value("max_size", DEFAULT_MAX_SIZE)
        .map_err(|e| setup.error(e))?;
    if max_size == 0 {
        return Err(setup.error("max_size must be at least 1"));
    }
    Ok(Box::new(Dkim {
        reject,
        max_size,
        keys: load_keys(setup.config)?,
    }))
}

struct Dkim {
    reject: Reject,
    max_size: u64,
    /// Signing keys by the domain of their directory (lower case).
    keys: BTreeMap<String, Key>,
}

/// A signing key from `dkim/<domain>/`.
struct Key {
    /// The signing domain (`d=`): the directory's name, or its link target's.
    domain: String,
    selector: String,
    signer: Signer,
}

enum Signer {
    Rsa(Box<DkimSigner<RsaKey<Sha256>, Done>>),
    Ed25519(Box<DkimSigner<Ed25519Key, Done>>),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> mail_auth::Result<Signature> {
        match self {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        }
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Signer::Rsa(_) => "rsa-sha256",
            Signer::Ed25519(_) => "ed25519-sha256",
        }
    }
}

/// A verdict decided in `data_post_headers`, answered in `data_post`.
struct PendingRejection(Verdict);

/// The result of one signature, as the dkim plugin found it; the whole list is left in the
/// transaction (`cx.transaction().extension::<DkimResults>()`) for later plugins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DkimResults(pub Vec<DkimSignatureResult>);

/// One signature's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimSignatureResult {
    /// `d=`, lower case; empty when the signature could not be parsed.
    pub domain: String,
    /// `s=`; empty when the signature could not be parsed.
    pub selector: String,
    pub status: DkimStatus,
    /// Why it did not pass.
    pub reason: Option<String>,
}

/// RFC 8601 result values of the `dkim` method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DkimStatus {
    Pass,
    Fail,
    Neutral,
    Policy,
    TempError,
    PermError,
}

impl DkimStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimStatus::Pass => "pass",
            DkimStatus::Fail => "fail",
            DkimStatus::Neutral => "neutral",
            DkimStatus::Policy => "policy",
            DkimStatus::TempError => "temperror",
            DkimStatus::PermError => "permerror",
        }
    }
}

/// One signature's result, with what the Authentication-Results entry needs.
struct Checked {
    result: DkimSignatureResult,
    /// The first 8 characters of `b=` (RFC 6008 `header.b`).
    b: Option<String>,
    /// The full error, for the debug log.
    detail: Option<String>,
}

impl Checked {
    fn from_output(output: &DkimOutput<'_>) -> Checked {
        use mail_auth::Error as E;
        let (status, err) = match output.result() {
            DkimResult::Pass => (DkimStatus::Pass, None),
            // Only a signature that does not match is a failure; a key of the wrong type
            // or an identity outside the domain make the signature unusable.
            DkimResult::Fail(e @ E::FailedVerification) => (DkimStatus::Fail, Some(e)),
            DkimResult::Fail(e) => (DkimStatus::PermError, Some(e)),
            // mail-auth calls a body hash mismatch neutral; RFC 6376 §6.1.3 calls it a
            // failure (the message was altered).
            DkimResult::Neutral(e @ E::FailedBodyHashMatch) => (DkimStatus::Fail, Some(e)),
            DkimResult::Neutral(e) => (DkimStatus::Neutral, Some(e)),
            DkimResult::PermError(e) => (DkimStatus::PermError, Some(e)),
            DkimResult::TempError(e) => (DkimStatus::TempError, Some(e)),
            DkimResult::None => (DkimStatus::Neutral, None),
        };
        Checked::new(
            output.signature(),
            status,
            err.map(reason),
            err.map(|e| e.to_string()),
        )
    }

    fn new(
        sig: Option<&Signature>,
        status: DkimStatus,
        reason: Option<String>,
        detail: Option<String>,
    ) -> Checked {
        Checked {
            result: DkimSignatureResult {
                domain: sig
                    .map(|s| token(&s.d).to_ascii_lowercase())
                    .unwrap_or_default(),
                selector: sig.map(|s| token(&s.s)).unwrap_or_default(),
                status,
                reason,
            },
            b: sig
                .filter(|s| s.b.len() >= 6)
                .map(|s| codec::base64_encode(&s.b[..6])),
            detail,
        }
    }

    /// `d=example.org s=sel`, for log lines.
    fn who(&self) -> String {
        if self.result.domain.is_empty() {
            "unparsable signature".into()
        } else {
            format!("d={} s={}", self.result.domain, self.result.selector)
        }
    }

    /// The Authentication-Results entry.
    fn auth_result(&self) -> String {
        let mut out = format!("dkim={}", self.result.status.as_str());
        if let Some(r) = &self.result.reason {
            out.push_str(&format!(" ({r})"));
        }
        if !self.result.domain.is_empty() {
            out.push_str(&format!(
                " header.d={} header.s={}",
                self.result.domain, self.result.selector
            ));
        }
        if let Some(b) = &self.b {
            out.push_str(&format!(" header.b={b}"));
        }
        out
    }
}

/// A signature that did not verify because its key was revoked (an empty `p=`, RFC 6376
/// §3.6.1) is unusable, not failed: mail-auth does not tell the two apart, so the key
/// records of the failed signatures are looked at again (from the session's cache when
/// possible).
fn mark_revoked(cx: &mut Context<'_>, checked: &mut [Checked]) {
    let failed: Vec<usize> = (0..checked.len())
        .filter(|&i| checked[i].result.status == DkimStatus::Fail && checked[i].b.is_some())
        .filter(|&i| checked[i].result.reason.as_deref() == Some("signature did not verify"))
        .collect();
    if failed.is_empty() {
        return;
    }
    let queries: Vec<Query> = failed
        .iter()
        .map(|&i| {
            let r = &checked[i].result;
            Query::Txt(format!("{}._domainkey.{}", r.selector, r.domain))
        })
        .collect();
    let answers = cx.resolve_all(&queries, None);
    for (&i, answer) in failed.iter().zip(answers) {
        let Ok(answer) = answer else { continue };
        if answer.texts().iter().any(|t| is_revoked(t)) {
            checked[i].result.status = DkimStatus::PermError;
            checked[i].result.reason = Some("key revoked".into());
        }
    }
}

/// True for a key record whose `p=` is empty.
pub(crate) fn is_revoked(record: &str) -> bool {
    record.split(';').any(|tag| {
        let (name, value) = tag.split_once('=').unwrap_or((tag, ""));
        name.trim() == "p" && value.trim().is_empty()
    })
}

/// Our words for mail-auth's errors (they go in A-R comments, so no parentheses).
fn reason(e: &mail_auth::Error) -> String {
    use mail_auth::Error as E;
    match e {
        E::FailedBodyHashMatch => "body hash did not verify",
        E::FailedVerification => "signature did not verify",
        E::FailedAuidMatch => "identity does not match the key",
        E::SignatureExpired => "signature expired",
        E::RevokedPublicKey => "key revoked",
        E::DnsRecordNotFound(_) => "no key published",
        E::DnsError(_) => "key lookup failed",
        E::UnsupportedAlgorithm => "unsupported algorithm",
        E::IncompatibleAlgorithms => "key type does not match the algorithm",
        E::UnsupportedVersion => "unsupported version",
        E::UnsupportedCanonicalization => "unsupported canonicalization",
        E::UnsupportedKeyType => "unsupported key type",
        E::InvalidRecordType => "malformed key record",
        E::SignatureLength => "body length tag exceeds the body",
        E::CryptoError(_) => "unusable key or signature",
        E::ParseError | E::MissingParameters | E::Base64 | E::NoHeadersFound => {
            "malformed signature"
        }
        _ => "unusable signature",
    }
    .to_string()
}

/// Keeps a value that goes into Authentication-Results to the characters of a domain name
/// or selector.
fn token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Why this client is immune, for the skip line.
pub(crate) fn immune_reason(cx: &Context<'_>) -> &'static str {
    let c = cx.connection();
    if c.auth.is_some() {
        "authenticated user"
    } else if c.relay_client {
        "relay client"
    } else if c.notes.is_true("whitelisthost") {
        "whitelisted host"
    } else {
        "whitelisted sender"
    }
}

/// The whole message (header, blank line, body) with CRLF line ends, as it goes over the
/// wire: what DKIM and DomainKeys sign.
pub(crate) fn wire_message(cx: &mut Context<'_>) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(cx.transaction().data_size as usize + 1024);
    cx.transaction_mut()
        .message_reader()?
        .read_to_end(&mut raw)?;
    Ok(to_crlf(&raw))
}

/// LF line ends to CRLF (CRLF pairs stay as they are).
pub(crate) fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The address of the first mailbox of `From:` (or of `Sender:` with `sender`), lower-cased
/// domain included as written.
pub(crate) fn header_address(header: &qpsmtpd_core::Header, sender: bool) -> Option<String> {
    let mut block = header.as_bytes();
    block.push(b'\n');
    let parsed = qpsmtpd_core::mail_parser::MessageParser::default().parse_headers(&block)?;
    let list = if sender {
        parsed.sender()
    } else {
        parsed.from()
    }?;
    list.first()?.address().map(|a| a.trim().to_string())
}

/// The domain of an address, lower case, without a trailing dot.
pub(crate) fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

impl Dkim {
    /// The key for mail from `domain`: its own, or its nearest parent's (two labels at
    /// least).
    fn key_for(&self, domain: &str) -> Option<&Key> {
        let mut d = domain;
        loop {
            if let Some(k) = self.keys.get(d) {
                return Some(k);
            }
            let (_, parent) = d.split_once('.')?;
            if !parent.contains('.') {
                return None;
            }
            d = parent;
        }
    }

    /// Verifies every signature of the message: one result each, or a single result
    /// without a signature when the message could not be checked at all.
    fn check(&self, cx: &mut Context<'_>) -> Vec<Checked> {
        let failed = |status: DkimStatus, why: &str, detail: String| {
            vec![Checked {
                result: DkimSignatureResult {
                    domain: String::new(),
                    selector: String::new(),
                    status,
                    reason: Some(why.into()),
                },
                b: None,
                detail: Some(detail),
            }]
        };
        let message = match wire_message(cx) {
            Ok(m) => m,
            Err(e) => {
                return failed(
                    DkimStatus::TempError,
                    "cannot read the message",
                    e.to_string(),
                );
            }
        };
        let dns = match cx.dns() {
            Ok(d) => d,
            Err(e) => return failed(DkimStatus::TempError, "key lookup failed", e.to_string()),
        };
        let Some(mut parsed) = AuthenticatedMessage::parse(&message) else {
            return failed(
                DkimStatus::PermError,
                "unparsable message",
                "mail-auth could not parse the message".into(),
            );
        };
        if parsed.dkim_headers.len() > MAX_SIGNATURES {
            cx.log(
                Level::Debug,
                format!(
                    "{} signatures: only the first {MAX_SIGNATURES} are checked",
                    parsed.dkim_headers.len()
                ),
            );
            parsed.dkim_headers.truncate(MAX_SIGNATURES);
        }
        // mail-auth fetches the keys one after the other; fetch them all at once first, so
        // that it finds them in the resolver's cache, and leave out the signatures whose
        // key could not be fetched for now: ten unreachable domains cost one timeout.
        let keys: Vec<(usize, Query)> = parsed
            .dkim_headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let sig = h.header.as_ref().ok()?;
                Some((i, Query::Txt(format!("{}._domainkey.{}", sig.s, sig.d))))
            })
            .collect();
        let queries: Vec<Query> = keys.iter().map(|(_, q)| q.clone()).collect();
        let answers = cx.resolve_all(&queries, None);
        let mut unreachable: BTreeMap<usize, Checked> = BTreeMap::new();
        for ((i, _), answer) in keys.iter().zip(answers) {
            if let Err(e) = answer
                && e.is_temporary()
            {
                let sig = parsed.dkim_headers[*i].header.as_ref().ok();
                let checked = Checked::new(
                    sig,
                    DkimStatus::TempError,
                    Some("key lookup failed".into()),
                    Some(e.to_string()),
                );
                unreachable.insert(*i, checked);
            }
        }
        let all = std::mem::take(&mut parsed.dkim_headers);
        parsed.dkim_headers = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !unreachable.contains_key(i))
            .map(|(_, h)| h)
            .collect();
        let total = parsed.dkim_headers.len() + unreachable.len();
        let mut outputs = if parsed.dkim_headers.is_empty() {
            Vec::new()
        } else {
            dns.block_on(dns.authenticator().verify_dkim(&parsed))
                .iter()
                .map(Checked::from_output)
                .collect::<Vec<_>>()
        }
        .into_iter();
        // In the order of the signatures.
        (0..total)
            .filter_map(|i| unreachable.remove(&i).or_else(|| outputs.next()))
            .collect()
    }

    fn verify(&self, cx: &mut Context<'_>) {
        let header = &cx.transaction().header;
        if header.count("DKIM-Signature") == 0 {
            cx.add_auth_result("dkim=none");
            cx.transaction_mut().set_extension(DkimResults::default());
            cx.skip("message is not signed");
            return;
        }
        let size = cx.transaction().data_size;
        if size > self.max_size {
            cx.add_auth_result("dkim=policy (message too large to verify)");
            cx.skip(format!(
                "message of {size} bytes is larger than max_size {}: not verified",
                self.max_size
            ));
            return;
        }
        let mut checked = self.check(cx);
        mark_revoked(cx, &mut checked);
        for c in &checked {
            cx.log(
                Level::Debug,
                format!(
                    "{}: {}{}",
                    c.who(),
                    c.result.status.as_str(),
                    c.detail
                        .as_ref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
            );
            cx.add_auth_result(&c.auth_result());
        }
        let passed: Vec<&Checked> = checked
            .iter()
            .filter(|c| c.result.status == DkimStatus::Pass)
            .collect();
        let pass_domains: Vec<qpsmtpd_core::Value> = passed
            .iter()
            .map(|c| c.result.domain.clone().into())
            .collect();
        let txn = cx.transaction_mut();
        txn.notes.set("dkim_pass_domains", pass_domains);
        txn.set_extension(DkimResults(
            checked.iter().map(|c| c.result.clone()).collect(),
        ));

        let verdict = if !passed.is_empty() {
            cx.adjust_karma(1);
            let who: Vec<String> = passed.iter().map(|c| c.who()).collect();
            cx.pass(format!(
                "{} of {} signatures verified ({})",
                passed.len(),
                checked.len(),
                who.join(", ")
            ));
            Verdict::Declined
        } else if let Some(t) = checked
            .iter()
            .find(|c| c.result.status == DkimStatus::TempError)
        {
            let why = t.result.reason.as_deref().unwrap_or("temporary error");
            self.reject
                .temporary()
                .apply(cx, TEMPFAIL, &format!("{}: {why}", t.who()))
        } else if let Some(f) = checked.iter().find(|c| c.result.status == DkimStatus::Fail) {
            cx.adjust_karma(-1);
            let why = f
                .result
                .reason
                .as_deref()
                .unwrap_or("signature did not verify");
            self.reject.apply(
                cx,
                &format!("{INVALID}: {why}"),
                &format!("{}: {why}", f.who()),
            )
        } else {
            let why: Vec<String> = checked
                .iter()
                .map(|c| {
                    format!(
                        "{}: {}",
                        c.who(),
                        c.result.reason.as_deref().unwrap_or("unusable")
                    )
                })
                .collect();
            cx.skip(format!(
                "no usable signature, treated as unsigned ({})",
                why.join(", ")
            ));
            Verdict::Declined
        };
        if verdict.is_deny() {
            cx.transaction_mut()
                .set_extension(PendingRejection(verdict));
        }
    }

    fn sign(&self, cx: &mut Context<'_>) -> Verdict {
        let Some(from) = header_address(&cx.transaction().header, false) else {
            cx.skip("no address in the From header: not signed");
            return Verdict::Declined;
        };
        let Some(domain) = domain_of(&from) else {
            cx.skip(format!("From address {from:?} has no domain: not signed"));
            return Verdict::Declined;
        };
        let Some(key) = self.key_for(&domain) else {
            cx.skip(format!("no key for {domain} in dkim/: not signed"));
            return Verdict::Declined;
        };
        let signed = wire_message(cx)
            .map_err(|e| format!("cannot read the message: {e}"))
            .and_then(|m| key.signer.sign(&m).map_err(|e| e.to_string()));
        match signed {
            Ok(signature) => {
                let text = signature.to_header();
                let value = text
                    .strip_prefix("DKIM-Signature:")
                    .unwrap_or(&text)
                    .trim()
                    .replace("\r\n", "\n");
                // mail-auth 0.7 may fold the line right before the closing `;`, after the
                // b= value. A verifier keeps that whitespace when it blanks b= (RFC 6376
                // §3.5), but the signer hashed `b=;`: put the `;` back on the b= line.
                let value = match value.strip_suffix(';') {
                    Some(v) => format!("{};", v.trim_end()),
                    None => value,
                };
                cx.transaction_mut()
                    .header
                    .prepend("DKIM-Signature", &value);
                cx.pass(format!(
                    "signed for {domain} with d={} s={} a={}",
                    key.domain,
                    key.selector,
                    key.signer.algorithm()
                ));
                Verdict::Declined
            }
            Err(e) => {
                cx.error(format!(
                    "signing for {domain} with d={} s={} failed: {e}",
                    key.domain, key.selector
                ));
                Verdict::deny_soft(SIGN_FAILED)
            }
        }
    }
}

impl Plugin for Dkim {
    fn hooks(&self) -> Vec<Registration> {
        vec![
            Hook::DataPostHeaders.into(),
            Hook::DataPost.into(),
            Hook::QueuePre.into(),
        ]
    }

    fn data_post_headers(&self, cx: &mut Context<'_>) -> Verdict {
        if cx.is_immune() {
            let why = immune_reason(cx);
            cx.skip(format!("{why}: not verified"));
            return Verdict::Declined;
        }
        self.verify(cx);
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

    fn queue_pre(&self, cx: &mut Context<'_>) -> Verdict {
        let c = cx.connection();
        if !(c.relay_client || c.auth.is_some()) {
            cx.log(
                Level::Debug,
                "not a relay client nor authenticated: not signing",
            );
            return Verdict::Declined;
        }
        self.sign(cx)
    }
}

/// Reads every `dkim/<domain>/` of the configuration directories.
fn load_keys(config: &Config) -> Result<BTreeMap<String, Key>, ConfigError> {
    let mut keys = BTreeMap::new();
    for dir in config.dirs().dirs() {
        let base = dir.join("dkim");
        let entries = match std::fs::read_dir(&base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
            Err(e) => return Err(file_error(&base, format!("cannot read: {e}"))),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            let path = base.join(&name);
            if !path.is_dir() {
                continue; // dkim_key_gen.sh and other plain files
            }
            let domain = name.to_ascii_lowercase();
            if keys.contains_key(&domain) {
                continue;
            }
            keys.insert(domain, load_key(&path, &name)?);
        }
    }
    Ok(keys)
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::at(
        Origin {
            file: path.into(),
            line: 0,
        },
        message,
    )
}

/// Loads `dir/selector` and `dir/private`; `name` is the directory's name.
fn load_key(dir: &Path, name: &str) -> Result<Key, ConfigError> {
    // A link to another domain's directory signs as that domain.
    let signing_domain = match std::fs::read_link(dir) {
        Ok(target) => target
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .unwrap_or_else(|| name.to_string()),
        Err(_) => name.to_string(),
    }
    .to_ascii_lowercase();
    if !valid_dns_name(&signing_domain) {
        return Err(file_error(
            dir,
            format!("{signing_domain:?} is not a domain name"),
        ));
    }
    let files = Config::new(ConfigDirs::only(vec![dir.to_path_buf()]));
    let selector_path = dir.join("selector");
    let selector = files.first("selector")?.ok_or_else(|| {
        file_error(
            &selector_path,
            "missing or empty: it must name the selector",
        )
    })?;
    if !valid_dns_name(&selector.text) {
        return Err(selector.error(format!(
            "{:?} is not a valid selector (DNS labels of letters, digits, - and _)",
            selector.text
        )));
    }
    let private_path = dir.join("private");
    let pem = std::fs::read_to_string(&private_path)
        .map_err(|e| file_error(&private_path, format!("cannot read: {e}")))?;
    let key = parse_private_key(&pem).map_err(|e| file_error(&private_path, e))?;
    let signer = match key {
        PrivateKey::Rsa(k) => Signer::Rsa(Box::new(
            DkimSigner::from_key(k)
                .domain(&signing_domain)
                .selector(&selector.text)
                .headers(SIGNED_HEADERS.iter().copied())
                // Both the same: mail-auth 0.7 hashes the body with the header method.
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed),
        )),
        PrivateKey::Ed25519(k) => Signer::Ed25519(Box::new(
            DkimSigner::from_key(k)
                .domain(&signing_domain)
                .selector(&selector.text)
                .headers(SIGNED_HEADERS.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed),
        )),
    };
    Ok(Key {
        domain: signing_domain,
        selector: selector.text,
        signer,
    })
}

/// One or more labels of letters, digits, `-` and `_`, separated by dots.
fn valid_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

enum PrivateKey {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// Reads a PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
fn parse_private_key(pem: &str) -> Result<PrivateKey, String> {
    let (label, der) = codec::pem_decode(pem)?;
    match label.as_str() {
        "RSA PRIVATE KEY" => RsaKey::<Sha256>::from_der(&der)
            .map(PrivateKey::Rsa)
            .map_err(|e| format!("not a usable RSA key: {e}")),
        "PRIVATE KEY" => {
            if let Ok(k) = RsaKey::<Sha256>::from_pkcs8_der(&der) {
                return Ok(PrivateKey::Rsa(k));
            }
            Ed25519Key::from_pkcs8_maybe_unchecked_der(&der)
                .map(PrivateKey::Ed25519)
                .map_err(|_| {
                    "not a usable RSA or Ed25519 key (RSA keys need 2048 to 4096 bits)".into()
                })
        }
        "ENCRYPTED PRIVATE KEY" => Err("encrypted keys are not supported".into()),
        other => Err(format!(
            "a {other:?} PEM block is not an RSA or Ed25519 private key"
        )),
    }
}

/// The kind of key `dkim-keygen` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

/// What `generate_key` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedKey {
    /// `<config>/dkim/<domain>`.
    pub directory: PathBuf,
    pub domain: String,
    pub selector: String,
    /// The record to publish, in zone-file syntax:
    /// `<selector>._domainkey.<domain>. IN TXT ( "v=DKIM1; k=rsa; " "p=..." )`.
    pub record: String,
}

/// The default selector: the month and year, as the original's `dkim_key_gen.sh` chose it
/// (`may2024`).
pub fn default_selector() -> String {
    chrono::Local::now()
        .format("%b%Y")
        .to_string()
        .to_ascii_lowercase()
}

/// Makes a key pair for `domain` and writes `selector`, `private` (mode 0600) and `dns`
/// (the record) into `<config_dir>/dkim/<domain>/`. `bits` applies to RSA (2048 to 4096,
/// default 2048). An existing key is replaced only with `force`.
pub fn generate_key(
    config_dir: &Path,
    domain: &str,
    selector: &str,
    key_type: KeyType,
    bits: Option<usize>,
    force: bool,
) -> Result<GeneratedKey, String> {
    use mail_auth::dkim::generate::DkimKeyPair;
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !valid_dns_name(&domain) || !domain.contains('.') {
        return Err(format!("{domain:?} is not a domain name"));
    }
    if !valid_dns_name(selector) {
        return Err(format!(
            "{selector:?} is not a valid selector (DNS labels of letters, digits, - and _)"
        ));
    }
    let (pem, record) = match key_type {
        KeyType::Rsa => {
            let bits = bits.unwrap_or(2048);
            if !(2048..=4096).contains(&bits) {
                return Err(format!("--bits must be between 2048 and 4096, not {bits}"));
            }
            let pair = DkimKeyPair::generate_rsa(bits).map_err(|e| e.to_string())?;
            let public = codec::base64_encode(&codec::rsa_spki(pair.public_key()));
            (
                codec::pem_encode("RSA PRIVATE KEY", pair.private_key()),
                txt_record(selector, &domain, "rsa", &public),
            )
        }
        KeyType::Ed25519 => {
            if bits.is_some() {
                return Err("--bits applies to RSA keys only".into());
            }
            let pair = DkimKeyPair::generate_ed25519().map_err(|e| e.to_string())?;
            let public = codec::base64_encode(pair.public_key());
            (
                codec::pem_encode("PRIVATE KEY", pair.private_key()),
                txt_record(selector, &domain, "ed25519", &public),
            )
        }
    };
    // What we write must be what the plugin can load.
    parse_private_key(&pem).map_err(|e| format!("the new key does not load: {e}"))?;

    let dir = config_dir.join("dkim").join(&domain);
    let private = dir.join("private");
    if private.exists() && !force {
        return Err(format!(
            "{} already exists; use --force to replace it",
            private.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write_err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&private)
        .map_err(|e| write_err(&private, e))?;
    // An existing file keeps its mode through open(); the key must not stay readable.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| write_err(&private, e))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| write_err(&private, e))?;
    let selector_file = dir.join("selector");
    std::fs::write(&selector_file, format!("{selector}\n"))
        .map_err(|e| write_err(&selector_file, e))?;
    let dns_file = dir.join("dns");
    std::fs::write(&dns_file, format!("{record}\n")).map_err(|e| write_err(&dns_file, e))?;
    Ok(GeneratedKey {
        directory: dir,
        domain,
        selector: selector.to_string(),
        record,
    })
}

/// The TXT record of a public key, in zone-file syntax, its text split into quoted strings
/// of at most 255 characters.
pub fn txt_record(selector: &str, domain: &str, key_type: &str, public_b64: &str) -> String {
    let mut strings = vec![format!("v=DKIM1; k={key_type}; ")];
    let p = format!("p={public_b64}");
    strings.extend(
        p.as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
    );
    let quoted: Vec<String> = strings.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        quoted.join("\n\t")
    )
}

/// Base64, PEM and the bits of DER the DKIM and DomainKeys plugins need.
pub(crate) mod codec {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(crate) fn base64_encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Decodes base64, ignoring whitespace (as in folded header fields and DNS records).
    pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut acc = 0u32;
        let mut n = 0;
        let mut padding = 0;
        for c in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => {
                    padding += 1;
                    0
                }
                _ => return None,
            };
            if padding > 0 && c != b'=' {
                return None; // data after padding
            }
            acc = (acc << 6) | u32::from(v);
            n += 1;
            if n == 4 {
                let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
                out.extend_from_slice(&bytes[..3 - padding.min(2)]);
                acc = 0;
                n = 0;
            }
        }
        (n == 0 && padding <= 2).then_some(out)
    }

    /// The first PEM block: its label and its bytes.
    pub(crate) fn pem_decode(text: &str) -> Result<(String, Vec<u8>), String> {
        let mut lines = text.lines().map(str::trim);
        let label = lines
            .by_ref()
            .find_map(|l| {
                l.strip_prefix("-----BEGIN ")
                    .and_then(|r| r.strip_suffix("-----"))
            })
            .ok_or("no PEM block (-----BEGIN ...-----) found")?
            .to_string();
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == end {
                return base64_decode(&body)
                    .map(|der| (label, der))
                    .ok_or_else(|| "the PEM block is not valid base64".to_string());
            }
            if line.contains(':') {
                return Err("encrypted keys are not supported".into());
            }
            body.push_str(line);
        }
        Err(format!("no {end} line"))
    }

    pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
        let b64 = base64_encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// The AlgorithmIdentifier of rsaEncryption (OID 1.2.840.113549.1.1.1, NULL).
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (what `p=` holds).
    pub(crate) fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
        let mut bits = vec![0u8];
        bits.extend_from_slice(pkcs1);
        let mut content = RSA_ALGORITHM.to_vec();
        content.extend(der(0x03, &bits));
        der(0x30, &content)
    }

    /// One DER element: (tag, content, the rest).
    fn next(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = data.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }

    /// The size in bits of a PKCS#1 RSAPublicKey's modulus.
    pub(crate) fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
        let (tag, content, _) = next(pkcs1)?;
        let (int_tag, n, _) = next(content)?;
        if tag != 0x30 || int_tag != 0x02 {
            return None;
        }
        let start = n.iter().position(|&b| b != 0)?;
        let n = &n[start..];
        Some(n.len() * 8 - n[0].leading_zeros() as usize)
    }

    /// The PKCS#1 RSAPublicKey inside a SubjectPublicKeyInfo; a bare RSAPublicKey is
    /// returned as it is. `None` for anything else (another algorithm, garbage).
    pub(crate) fn rsa_public_key(data: &[u8]) -> Option<Vec<u8>> {
        let (tag, content, rest) = next(data)?;
        if tag != 0x30 || !rest.is_empty() {
            return None;
        }
        let (first_tag, first, after) = next(content)?;
        match first_tag {
            0x02 => Some(data.to_vec()),
            0x30 => {
                let (oid_tag, oid, _) = next(first)?;
                if oid_tag != 0x06 || oid != &RSA_ALGORITHM[4..13] {
                    return None;
                }
                let (bits_tag, bits, _) = next(after)?;
                match bits.split_first() {
                    Some((0, key)) if bits_tag == 0x03 => Some(key.to_vec()),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer};
    use qpsmtpd_core::{ConnectionInfo, Header};
    use std::sync::{Arc, Mutex};

    pub(crate) fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/dns/keys")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A queue plugin that keeps every message it is given.
    #[derive(Clone, Default)]
    pub(crate) struct Queued(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Queued {
        pub(crate) fn last(&self) -> String {
            let all = self.0.lock().unwrap();
            String::from_utf8(all.last().expect("a queued message").clone()).unwrap()
        }

        pub(crate) fn count(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    impl Plugin for Queued {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Queue.into()]
        }
        fn queue(&self, cx: &mut Context<'_>) -> Verdict {
            let mut m = Vec::new();
            cx.transaction_mut()
                .message_reader()
                .unwrap()
                .read_to_end(&mut m)
                .unwrap();
            self.0.lock().unwrap().push(m);
            Verdict::ok_with("Queued")
        }
    }

    /// The header of a queued message.
    pub(crate) fn header_of(message: &str) -> Header {
        let end = message.find("\n\n").expect("a blank line");
        Header::parse(&message.as_bytes()[..=end])
    }

    /// Our Authentication-Results header, unfolded.
    pub(crate) fn auth_results(message: &str) -> String {
        header_of(message)
            .get("Authentication-Results")
            .expect("an Authentication-Results header")
    }

    pub(crate) struct Started {
        pub(crate) server: TestServer,
        pub(crate) log: LogCapture,
        pub(crate) queued: Queued,
    }

    /// A server with `plugins` (plus rcpt_ok) whose DNS is `dns_servers`, with extra files.
    pub(crate) fn start(dns: &str, plugins: &str, files: &[(&str, &str)]) -> Started {
        let log = LogCapture::default();
        let queued = Queued::default();
        let server = files
            .iter()
            .fold(Harness::new().file("dns_timeout", "0.5"), |h, (n, t)| {
                h.file(n, t)
            })
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("{plugins}\nrcpt_ok"))
            .file("rcpthosts", "example.com")
            .file("dns_servers", dns)
            .plugin("capture", log.clone())
            .plugin("queue", queued.clone())
            .build()
            .unwrap();
        Started {
            server,
            log,
            queued,
        }
    }

    /// A message from `from`, CRLF line ends, without the final CRLF (TestSession::data
    /// adds it).
    fn message(from: &str, body: &str) -> String {
        format!(
            "From: Joe <{from}>\r\nTo: <user@example.com>\r\nSubject: DKIM test\r\n\
             Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <t1@example.test>\r\n\r\n{body}"
        )
    }

    fn rsa_key() -> RsaKey<Sha256> {
        RsaKey::<Sha256>::from_pkcs8_pem(&fixture("rsa2048.pem")).unwrap()
    }

    fn ed_key() -> Ed25519Key {
        let (_, der) = codec::pem_decode(&fixture("ed25519.pem")).unwrap();
        Ed25519Key::from_pkcs8_maybe_unchecked_der(&der).unwrap()
    }

    /// `msg` with a DKIM-Signature made by mail-auth prepended.
    fn signed_with(msg: &str, sig: mail_auth::Result<Signature>) -> String {
        let header = sig.unwrap().to_header();
        format!("{}{msg}", header)
    }

    fn sign_rsa(msg: &str, domain: &str, selector: &str) -> String {
        let full = format!("{msg}\r\n");
        signed_with(
            msg,
            DkimSigner::from_key(rsa_key())
                .domain(domain)
                .selector(selector)
                .headers(["From", "To", "Subject", "Date", "Message-ID"])
                .sign(full.as_bytes()),
        )
    }

    fn sign_ed(msg: &str, domain: &str, selector: &str) -> String {
        let full = format!("{msg}\r\n");
        signed_with(
            msg,
            DkimSigner::from_key(ed_key())
                .domain(domain)
                .selector(selector)
                .headers(["From", "To", "Subject"])
                .sign(full.as_bytes()),
        )
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "dkim")
    }

    const QUEUED: &str = "250 2.0.0 Queued\r\n";

    #[test]
    fn a_good_rsa_signature_passes() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "dkim", &[]);
        let msg = sign_rsa(
            &message("joe@example.test", "Hello.\r\n"),
            "example.test",
            "rsa",
        );
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &msg),
            QUEUED
        );
        let ar = auth_results(&t.queued.last());
        let b: String = msg[msg.find(" b=").unwrap() + 3..]
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(8)
            .collect();
        assert!(
            ar.contains(&format!(
                "; dkim=pass header.d=example.test header.s=rsa header.b={b}"
            )),
            "{ar}"
        );
        assert_eq!(
            summary(&t.log),
            ["INFO pass: 1 of 1 signatures verified (d=example.test s=rsa)"]
        );
    }

    #[test]
    fn a_good_ed25519_signature_passes_and_the_results_are_left_for_dmarc() {
        let dns = DnsServer::start();
        type Seen = Arc<Mutex<Option<(DkimResults, Option<String>)>>>;
        let results: Seen = Arc::default();
        struct Peek(Seen);
        impl Plugin for Peek {
            fn hooks(&self) -> Vec<Registration> {
                vec![Hook::DataPost.into()]
            }
            fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
                let t = cx.transaction();
                let domains = t.notes.get("dkim_pass_domains").map(|v| format!("{v:?}"));
                *self.0.lock().unwrap() =
                    Some((t.extension::<DkimResults>().unwrap().clone(), domains));
                Verdict::Declined
            }
        }
        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "dkim\nrcpt_ok")
            .file("rcpthosts", "example.com")
            .dns(&dns)
            .plugin("capture", log.clone())
            .plugin("peek", Peek(results.clone()))
            .plugin("queue", Queued::default())
            .build()
            .unwrap();
        let msg = sign_ed(&message("joe@dkim.test", "Hello.\r\n"), "dkim.test", "ed");
        assert_eq!(
            server.send_message("joe@dkim.test", &["user@example.com"], &msg),
            QUEUED
        );
        let (found, domains) = results.lock().unwrap().clone().unwrap();
        assert_eq!(
            found,
            DkimResults(vec![DkimSignatureResult {
                domain: "dkim.test".into(),
                selector: "ed".into(),
                status: DkimStatus::Pass,
                reason: None,
            }])
        );
        assert_eq!(domains.as_deref(), Some(r#"List([Str("dkim.test")])"#));
        assert_eq!(
            summary(&log),
            ["INFO pass: 1 of 1 signatures verified (d=dkim.test s=ed)"]
        );
    }

    #[test]
    fn an_altered_body_is_rejected_and_reported_per_signature() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "dkim", &[]);
        let msg = sign_rsa(
            &message("joe@example.test", "Hello.\r\n"),
            "example.test",
            "rsa",
        )
        .replace("Hello.", "Hello!");
        let mut s = t.server.session();
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.mail("joe@example.test", &["user@example.com"], &msg),
            "552 5.7.20 DKIM signature invalid: body hash did not verify\r\n"
        );
        assert_eq!(t.queued.count(), 0);
        assert_eq!(
            summary(&t.log),
            ["INFO fail: d=example.test s=rsa: body hash did not verify"]
        );
        assert_eq!(s.session.connection().notes.get_int("karma"), Some(-1));

        // An altered header breaks the signature itself.
        let msg = sign_rsa(
            &message("joe@example.test", "Hello.\r\n"),
            "example.test",
            "rsa",
        )
        .replace("Subject: DKIM test", "Subject: DKIM rest");
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &msg),
            "552 5.7.20 DKIM signature invalid: signature did not verify\r\n"
        );
    }

    #[test]
    fn reject_0_and_naughty_let_a_failure_through() {
        let dns = DnsServer::start();
        let bad = sign_rsa(
            &message("joe@example.test", "Hello.\r\n"),
            "example.test",
            "rsa",
        )
        .replace("Hello.", "Bye.");
        let t = start(&dns.addr().to_string(), "dkim reject 0", &[]);
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &bad),
            QUEUED
        );
        assert!(
            auth_results(&t.queued.last()).contains(
                "dkim=fail (body hash did not verify) header.d=example.test header.s=rsa"
            )
        );
        assert_eq!(
            summary(&t.log),
            ["INFO fail, tolerated: d=example.test s=rsa: body hash did not verify"]
        );

        let t = start(&dns.addr().to_string(), "dkim reject naughty", &[]);
        let mut s = t.server.session();
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.mail("joe@example.test", &["user@example.com"], &bad),
            QUEUED
        );
        assert_eq!(
            s.session.connection().notes.get_str("naughty"),
            Some("5.7.20 (dkim) DKIM signature invalid: body hash did not verify")
        );
    }

    #[test]
    fn one_good_signature_is_enough() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "dkim", &[]);
        let good = sign_rsa(
            &message("joe@example.test", "Hello.\r\n"),
            "example.test",
            "rsa",
        );
        // A second signature whose key is not the one published at dkim.test's ed selector.
        let both = sign_rsa(&good, "dkim.test", "ed");
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &both),
            QUEUED
        );
        let ar = auth_results(&t.queued.last());
        assert!(
            ar.contains("dkim=pass header.d=example.test header.s=rsa"),
            "{ar}"
        );
        assert!(
            ar.contains(
                "dkim=permerror (key type does not match the algorithm) header.d=dkim.test header.s=ed"
            ),
            "{ar}"
        );
        assert_eq!(
            summary(&t.log),
            ["INFO pass: 1 of 2 signatures verified (d=example.test s=rsa)"]
        );
    }

    #[test]
    fn unsigned_and_unusable_signatures_are_skipped() {
        let dns = DnsServer::start();
        let t = start(&dns.addr().to_string(), "dkim", &[]);
        let plain = message("joe@example.test", "Hello.\r\n");
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &plain),
            QUEUED
        );
        assert!(auth_results(&t.queued.last()).ends_with("; dkim=none"));

        for (selector, why) in [
            ("nosuchkey", "no key published"),
            ("revoked", "key revoked"),
            ("garbage", "malformed key record"),
        ] {
            let msg = sign_rsa(&plain, "dkim.test", selector);
            assert_eq!(
                t.server
                    .send_message("joe@dkim.test", &["user@example.com"], &msg),
                QUEUED,
                "{selector}"
            );
            let ar = auth_results(&t.queued.last());
            assert!(
                ar.contains(&format!(
                    "; dkim=permerror ({why}) header.d=dkim.test header.s={selector} header.b="
                )),
                "{ar}"
            );
        }
        assert_eq!(
            summary(&t.log),
            [
                "INFO skip: message is not signed",
                "INFO skip: no usable signature, treated as unsigned (d=dkim.test s=nosuchkey: no key published)",
                "INFO skip: no usable signature, treated as unsigned (d=dkim.test s=revoked: key revoked)",
                "INFO skip: no usable signature, treated as unsigned (d=dkim.test s=garbage: malformed key record)",
            ]
        );
    }

    #[test]
    fn a_dns_server_that_never_answers_gives_a_temporary_error() {
        let silent = SilentDns::start();
        let addr = silent.addr();
        let t = start(&addr, "dkim", &[]);
        let msg = sign_rsa(
            &message("joe@example.test", "Hello.\r\n"),
            "example.test",
            "rsa",
        );
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &msg),
            "452 4.4.3 DKIM key lookup failed, please try again later\r\n"
        );
        assert_eq!(t.queued.count(), 0);
        assert_eq!(
            summary(&t.log),
            ["INFO fail: d=example.test s=rsa: key lookup failed"]
        );

        // reject_type disconnect closes with 421; reject 0 tolerates but reports temperror.
        let t = start(&addr, "dkim reject_type disconnect", &[]);
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &msg),
            "421 4.4.3 DKIM key lookup failed, please try again later\r\n"
        );
        let t = start(&addr, "dkim reject 0", &[]);
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &msg),
            QUEUED
        );
        assert!(
            auth_results(&t.queued.last())
                .contains("dkim=temperror (key lookup failed) header.d=example.test")
        );
    }

    #[test]
    fn keys_are_fetched_at_once() {
        // Four signatures whose keys cannot be fetched cost one timeout, not four.
        let silent = SilentDns::start();
        let addr = silent.addr();
        let t = start(&addr, "dkim reject 0", &[("dns_timeout", "1")]);
        let mut msg = message("joe@example.test", "Hello.\r\n");
        for (d, s) in [
            ("example.test", "rsa"),
            ("dkim.test", "rsa"),
            ("dkim.test", "ed"),
            ("example.test", "x"),
        ] {
            msg = sign_rsa(&msg, d, s);
        }
        let started = std::time::Instant::now();
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &msg),
            QUEUED
        );
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(3), "{took:?}");
        let ar = auth_results(&t.queued.last());
        assert_eq!(
            ar.matches("dkim=temperror (key lookup failed)").count(),
            4,
            "{ar}"
        );
        // In the order of the signatures: the last one added is on top.
        assert!(
            ar.contains("header.d=example.test header.s=x header.b=")
                && ar.find("header.s=x").unwrap() < ar.find("header.s=ed").unwrap(),
            "{ar}"
        );
    }

    #[test]
    fn messages_over_max_size_are_not_verified() {
        let silent = SilentDns::start();
        let addr = silent.addr();
        let t = start(&addr, "dkim max_size 100", &[]);
        let msg = sign_rsa(
            &message("joe@example.test", "Hello.\r\n"),
            "example.test",
            "rsa",
        );
        assert_eq!(
            t.server
                .send_message("joe@example.test", &["user@example.com"], &msg),
            QUEUED
        );
        assert!(
            auth_results(&t.queued.last()).ends_with("; dkim=policy (message too large to verify)")
        );
        let lines = summary(&t.log);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("INFO skip: message of ")
                && lines[0].ends_with(" bytes is larger than max_size 100: not verified"),
            "{lines:?}"
        );
    }

    /// Key files for `domain` in a harness: selector and private key.
    fn with_key(h: Harness, domain: &str, selector: &str, pem: &str) -> Harness {
        h.file(&format!("dkim/{domain}/selector"), selector)
            .file(&format!("dkim/{domain}/private"), pem)
    }

    /// A server signing for relay clients (127.0.0.1 is one) with the given harness.
    fn signing_server(h: Harness, dns: &str) -> (TestServer, LogCapture, Queued) {
        let log = LogCapture::default();
        let queued = Queued::default();
        let server = h
            .catalogue(crate::CATALOGUE)
            .file("plugins", "relay\ndkim\nrcpt_ok")
            .file("relayclients", "127.0.0.1")
            .file("rcpthosts", "example.com")
            .file("dns_servers", dns)
            .plugin("capture", log.clone())
            .plugin("queue", queued.clone())
            .build()
            .unwrap();
        (server, log, queued)
    }

    /// The queued message without the headers our server added (what the next hop checks
    /// is the whole message; this is only to show what was signed).
    fn resend(server: &TestServer, message: &str) -> String {
        // Line ends back to CRLF, and the final line end left to TestSession::data.
        let wire = message.replace('\n', "\r\n");
        let wire = wire.strip_suffix("\r\n").unwrap_or(&wire);
        let mut s = server.session_from(ConnectionInfo::from_ip("192.0.2.7".parse().unwrap()));
        s.connect();
        s.command("EHLO relay.example");
        s.mail("joe@example.test", &["user@example.com"], wire)
    }

    #[test]
    fn relay_clients_are_signed_and_the_signature_verifies() {
        let dns = DnsServer::start();
        for (domain, selector, pem, algorithm) in [
            ("example.test", "rsa", fixture("rsa2048.pem"), "rsa-sha256"),
            ("dkim.test", "ed", fixture("ed25519.pem"), "ed25519-sha256"),
        ] {
            let (server, log, queued) = signing_server(
                with_key(Harness::new(), domain, selector, &pem),
                &dns.addr().to_string(),
            );
            let from = format!("joe@{domain}");
            assert_eq!(
                server.send_message(
                    &from,
                    &["someone@elsewhere.example"],
                    &message(&from, "Hi.\r\n")
                ),
                QUEUED
            );
            let signed = queued.last();
            let h = header_of(&signed);
            let sig = h.get("DKIM-Signature").expect("signed");
            assert!(
                sig.starts_with(&format!(
                    "v=1; a={algorithm}; s={selector}; d={domain}; c=relaxed/relaxed;"
                )),
                "{sig}"
            );
            assert!(sig.contains("h=Message-ID:Date:Subject:To:From:"), "{sig}");
            assert!(
                !sig.contains("Received") && !sig.contains("Authentication-Results"),
                "{sig}"
            );
            // Our own header is first: it was prepended last.
            assert!(signed.starts_with("DKIM-Signature: v=1;"), "{signed}");
            assert_eq!(
                summary(&log),
                [
                    "INFO skip: relay client: not verified".to_string(),
                    format!(
                        "INFO pass: signed for {domain} with d={domain} s={selector} a={algorithm}"
                    ),
                ]
            );

            // The next hop (here: the same server, for a client that is not a relay
            // client) finds it good.
            let t = start(&dns.addr().to_string(), "dkim", &[]);
            assert_eq!(resend(&t.server, &signed), QUEUED);
            let ar = auth_results(&t.queued.last());
            assert!(
                ar.contains(&format!("dkim=pass header.d={domain} header.s={selector}")),
                "{ar}"
            );
        }
    }

    #[test]
    fn parent_domains_and_linked_directories_sign() {
        let dns = DnsServer::start();
        let h = with_key(
            Harness::new(),
            "example.test",
            "rsa",
            &fixture("rsa2048.pem"),
        );
        std::os::unix::fs::symlink("example.test", h.dir().join("config/dkim/alias.test")).unwrap();
        // A plain file in dkim/ (the original's key script) is ignored.
        let h = h.file("dkim/dkim_key_gen.sh", "#!/bin/sh");
        let (server, log, queued) = signing_server(h, &dns.addr().to_string());
        for from in [
            "joe@mail.example.test",
            "ann@alias.test",
            "bob@www.alias.test",
        ] {
            assert_eq!(
                server.send_message(from, &["x@elsewhere.example"], &message(from, "Hi.\r\n")),
                QUEUED
            );
            let sig = header_of(&queued.last()).get("DKIM-Signature").unwrap();
            assert!(sig.contains("s=rsa; d=example.test;"), "{from}: {sig}");
        }
        // Domains without a key (even whose parent is a bare TLD) go out unsigned.
        for from in ["joe@other.test", "joe@test"] {
            assert_eq!(
                server.send_message(from, &["x@elsewhere.example"], &message(from, "Hi.\r\n")),
                QUEUED
            );
            assert_eq!(header_of(&queued.last()).get("DKIM-Signature"), None);
        }
        let lines = summary(&log);
        assert!(
            lines.contains(
                &"INFO pass: signed for mail.example.test with d=example.test s=rsa a=rsa-sha256"
                    .to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"INFO pass: signed for alias.test with d=example.test s=rsa a=rsa-sha256"
                    .to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"INFO skip: no key for other.test in dkim/: not signed".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"INFO skip: no key for test in dkim/: not signed".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn other_clients_are_verified_not_signed() {
        let dns = DnsServer::start();
        let h = with_key(
            Harness::new(),
            "example.test",
            "rsa",
            &fixture("rsa2048.pem"),
        );
        let (server, log, queued) = signing_server(h, &dns.addr().to_string());
        let mut s = server.session_from(ConnectionInfo::from_ip("192.0.2.9".parse().unwrap()));
        s.connect();
        s.command("EHLO client.example");
        let msg = message("joe@example.test", "Hi.\r\n");
        assert_eq!(
            s.mail("joe@example.test", &["user@example.com"], &msg),
            QUEUED
        );
        assert_eq!(header_of(&queued.last()).get("DKIM-Signature"), None);
        assert_eq!(summary(&log), ["INFO skip: message is not signed"]);
    }

    #[test]
    fn authenticated_users_are_signed() {
        let dns = DnsServer::start();
        let log = LogCapture::default();
        let queued = Queued::default();
        let server = with_key(
            Harness::new(),
            "example.test",
            "rsa",
            &fixture("rsa2048.pem"),
        )
        .catalogue(crate::CATALOGUE)
        .file("plugins", "dkim\nrcpt_ok")
        .file("rcpthosts", "example.com")
        .dns(&dns)
        .plugin("auth", crate::relay::tests::Authenticated)
        .plugin("capture", log.clone())
        .plugin("queue", queued.clone())
        .build()
        .unwrap();
        assert_eq!(
            server.send_message(
                "joe@example.test",
                &["user@example.com"],
                &message("joe@example.test", "Hi.\r\n")
            ),
            QUEUED
        );
        assert!(
            queued
                .last()
                .starts_with("DKIM-Signature: v=1; a=rsa-sha256; s=rsa; d=example.test;")
        );
        assert_eq!(
            summary(&log),
            [
                "INFO skip: authenticated user: not verified",
                "INFO pass: signed for example.test with d=example.test s=rsa a=rsa-sha256",
            ]
        );
    }

    #[test]
    fn broken_key_directories_stop_the_server() {
        let load = |files: &[(&str, &str)]| {
            files
                .iter()
                .fold(Harness::new(), |h, (n, t)| h.file(n, t))
                .catalogue(crate::CATALOGUE)
                .file("plugins", "dkim")
                .build()
                .expect_err("should not load")
                .to_string()
        };
        let pem = fixture("rsa2048.pem");
        let err = load(&[("dkim/example.test/private", &pem)]);
        assert!(
            err.ends_with(
                "dkim/example.test/selector: missing or empty: it must name the selector"
            ),
            "{err}"
        );
        let err = load(&[
            (
                "dkim/example.test/selector",
                "# the selector\nbad selector!",
            ),
            ("dkim/example.test/private", &pem),
        ]);
        assert!(
            err.contains("dkim/example.test/selector:2: \"bad selector!\" is not a valid selector"),
            "{err}"
        );
        let err = load(&[("dkim/example.test/selector", "rsa")]);
        assert!(
            err.contains("dkim/example.test/private: cannot read: "),
            "{err}"
        );
        let err = load(&[
            ("dkim/example.test/selector", "rsa"),
            ("dkim/example.test/private", "not a key"),
        ]);
        assert!(
            err.ends_with("dkim/example.test/private: no PEM block (-----BEGIN ...-----) found"),
            "{err}"
        );
        let err = load(&[
            ("dkim/example.test/selector", "rsa"),
            (
                "dkim/example.test/private",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
            ),
        ]);
        assert!(
            err.ends_with("a \"CERTIFICATE\" PEM block is not an RSA or Ed25519 private key"),
            "{err}"
        );
        let err = load(&[
            ("dkim/example.test/selector", "rsa"),
            (
                "dkim/example.test/private",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            ),
        ]);
        assert!(err.contains("not a usable RSA or Ed25519 key"), "{err}");

        for line in [
            "dkim max_size 0",
            "dkim max_size big",
            "dkim reject maybe",
            "dkim bogus 1",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: dkim: "), "{line}: {err}");
        }
    }

    #[test]
    fn codec_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let e = codec::base64_encode(data);
            assert_eq!(codec::base64_decode(&e).as_deref(), Some(data), "{e}");
        }
        assert_eq!(codec::base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(codec::base64_encode(b"fo"), "Zm8=");
        assert_eq!(
            codec::base64_decode(" Zm9v\r\n\tYmE= ").as_deref(),
            Some(&b"fooba"[..])
        );
        assert_eq!(codec::base64_decode("Zm9v!"), None);
        assert_eq!(codec::base64_decode("Zm8=Zm8="), None);
        assert_eq!(codec::base64_decode("Zm9"), None);
        // The fixture's public key: SPKI → PKCS#1 → SPKI.
        let spki = codec::base64_decode(&fixture("rsa2048.pub.b64")).unwrap();
        let pkcs1 = codec::rsa_public_key(&spki).unwrap();
        assert_eq!(codec::rsa_spki(&pkcs1), spki);
        assert_eq!(codec::rsa_public_key(&pkcs1), Some(pkcs1.clone()));
        assert_eq!(rsa_key().public_key(), pkcs1);
        assert_eq!(codec::rsa_modulus_bits(&pkcs1), Some(2048));
        assert_eq!(codec::rsa_public_key(b"\x30\x03\x01\x01\x00"), None);
        let (label, der) = codec::pem_decode(&fixture("rsa2048.pem")).unwrap();
        assert_eq!(
            codec::pem_encode(&label, &der).trim(),
            fixture("rsa2048.pem").trim()
        );
        assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn keygen_writes_a_key_the_plugin_signs_with_and_a_record_that_verifies() {
        let config = tempfile::tempdir().unwrap();
        for (domain, key_type, bits, k) in [
            ("dkim.test", KeyType::Rsa, Some(2048), "rsa"),
            ("ed.dkim.test", KeyType::Ed25519, None, "ed25519"),
        ] {
            let made = generate_key(config.path(), domain, "gen1", key_type, bits, false).unwrap();
            assert_eq!(made.directory, config.path().join("dkim").join(domain));
            let mode = std::fs::metadata(made.directory.join("private"))
                .unwrap()
                .permissions();
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(mode.mode() & 0o777, 0o600);
            assert_eq!(
                std::fs::read_to_string(made.directory.join("selector")).unwrap(),
                "gen1\n"
            );
            assert!(
                made.record.starts_with(&format!(
                    "gen1._domainkey.{domain}. IN TXT ( \"v=DKIM1; k={k}; \"\n\t\"p="
                )),
                "{}",
                made.record
            );
            assert!(made.record.ends_with("\" )"));
            for s in made.record.split('"').skip(1).step_by(2) {
                assert!(s.len() <= 255, "{s}");
            }
            let again = generate_key(config.path(), domain, "gen2", key_type, bits, false)
                .expect_err("must not replace a key");
            assert!(
                again.ends_with("private already exists; use --force to replace it"),
                "{again}"
            );
        }
        // Replaced with --force (a 2048-bit key's record takes three strings).
        let made =
            generate_key(config.path(), "dkim.test", "gen2", KeyType::Rsa, None, true).unwrap();
        assert_eq!(made.record.matches("\"p=").count(), 1);
        assert_eq!(made.record.matches("\n\t\"").count(), 2, "{}", made.record);
        let ed = std::fs::read_to_string(config.path().join("dkim/ed.dkim.test/dns")).unwrap();

        // A DNS server publishing both records, next to the base zone.
        let zones = tempfile::tempdir().unwrap();
        std::fs::copy(
            DnsServer::fixture_zones().join("example.test.zone"),
            zones.path().join("example.test.zone"),
        )
        .unwrap();
        std::fs::write(
            zones.path().join("dkim.test.zone"),
            format!(
                "$ORIGIN dkim.test.\n$TTL 60\n@ IN SOA ns1.example.test. h.example.test. 1 3600 600 86400 60\n\
                 @ IN NS ns1.example.test.\n{}\n{ed}",
                made.record
            ),
        )
        .unwrap();
        let dns = DnsServer::start_with(zones.path());
        // The keys as the plugin finds them in its configuration directory.
        let h = Harness::new();
        let copy = |d: &str| {
            let to = h.dir().join("config/dkim").join(d);
            std::fs::create_dir_all(&to).unwrap();
            for f in ["selector", "private"] {
                std::fs::copy(config.path().join("dkim").join(d).join(f), to.join(f)).unwrap();
            }
        };
        copy("dkim.test");
        copy("ed.dkim.test");
        let (server, _, queued) = signing_server(h, &dns.addr().to_string());
        let verifier = start(&dns.addr().to_string(), "dkim", &[]);
        for (from, want) in [
            (
                "joe@dkim.test",
                "dkim=pass header.d=dkim.test header.s=gen2",
            ),
            (
                "joe@ed.dkim.test",
                "dkim=pass header.d=ed.dkim.test header.s=gen1",
            ),
        ] {
            assert_eq!(
                server.send_message(from, &["x@elsewhere.example"], &message(from, "Hi.\r\n")),
                QUEUED
            );
            assert_eq!(resend(&verifier.server, &queued.last()), QUEUED);
            let ar = auth_results(&verifier.queued.last());
            assert!(ar.contains(want), "{ar}");
        }
    }

    #[test]
    fn keygen_refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let e = |d: &str, s: &str, t: KeyType, b: Option<usize>| {
            generate_key(dir.path(), d, s, t, b, false).unwrap_err()
        };
        assert_eq!(
            e("not a domain", "s", KeyType::Rsa, None),
            "\"not a domain\" is not a domain name"
        );
        assert_eq!(
            e("localhost", "s", KeyType::Rsa, None),
            "\"localhost\" is not a domain name"
        );
        assert!(e("example.test", "a b", KeyType::Rsa, None).contains("is not a valid selector"));
        assert_eq!(
            e("example.test", "s", KeyType::Rsa, Some(512)),
            "--bits must be between 2048 and 4096, not 512"
        );
        assert_eq!(
            e("example.test", "s", KeyType::Ed25519, Some(2048)),
            "--bits applies to RSA keys only"
        );
        assert!(!dir.path().join("dkim").exists());
        assert!(
            default_selector()
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
    }
}
