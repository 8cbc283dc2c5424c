//! # NAME
//!
//! sender_permitted_from - check the sender's SPF policy (RFC 7208)
//!
//! # DESCRIPTION
//!
//! Sender Policy Framework lets the owner of a domain publish, in a DNS TXT record, which
//! hosts may send mail in that domain's name. At `MAIL FROM` this plugin looks up the policy
//! of the sender's domain and asks whether the connecting address is one of those hosts. The
//! answer is one of `pass`, `fail`, `softfail`, `neutral`, `none` (no policy published),
//! `permerror` (the policy cannot be evaluated: a syntax error, an include loop, more than
//! ten DNS-querying mechanisms) or `temperror` (a DNS failure).
//!
//! Both identities of RFC 7208 §2.3 and §2.4 are checked, at the same time:
//!
//! - **MAIL FROM**: the envelope sender's domain. Its result decides what happens to the
//!   message.
//! - **HELO**: the name the client gave in HELO/EHLO (address literals and names without a
//!   dot are not checked). Its result is recorded but never rejects by itself, unless the
//!   sender is the null sender `<>` (bounces): then the HELO identity, as
//!   `postmaster@<helo>`, *is* the sender's identity, and its result decides.
//!
//! What happens next depends on `reject` (see below): by default nothing is refused and the
//! results are only recorded. A pass raises the connection's karma by one; a `fail` or
//! `softfail` lowers it by one.
//!
//! When the message has arrived, the plugin adds
//!
//! - a `Received-SPF` header (RFC 7208 §9.1) with the deciding result (for example
//!   `Received-SPF: pass (mx.example.org: domain of a@example.com designates 192.0.2.1 as
//!   permitted sender) client-ip=192.0.2.1; envelope-from="a@example.com";
//!   helo=mail.example.com; receiver=mx.example.org; identity=mailfrom`);
//! - to the `Authentication-Results` header (RFC 8601): `spf=<result>
//!   smtp.mailfrom=<domain>` for the MAIL FROM identity and `spf=<result> smtp.helo=<name>`
//!   for the HELO identity.
//!
//! The MAIL FROM result (the HELO result for `<>`) is left in the transaction for the `dmarc`
//! plugin, which then needs no SPF lookup of its own (their order in `config/plugins` does
//! not matter for this: the result is there from MAIL on).
//!
//! Relay clients, authenticated users and whitelisted hosts or senders are not checked
//! (`skip: immune`), and get no `Received-SPF` header.
//!
//! A temporary DNS failure is never a pass: its result is `temperror`, which is deferred
//! with `451 4.4.3 SPF - temperror: ...` from `reject 2` up, and logged as
//! `fail, tolerated` (and recorded as `spf=temperror`) below that.
//!
//! # CONFIGURATION
//!
//! ## reject *0-6*
//!
//! Default: `0`, annotate only. How strict to be, each level adding to the one before
//! (the levels of the Perl plugin, modeled on the SPF patch for qmail-smtpd):
//!
//! - `0` or `1`: annotate only: add the headers, refuse nothing.
//! - `2`: defer on DNS errors, so that every message that gets in has a meaningful
//!   result: `temperror` gets `451 4.4.3 SPF - temperror: ...`. A `fail` is deferred too
//!   (`450 4.7.1 SPF - fail: ...`).
//! - `3`: refuse `fail` with `550 5.7.1 SPF - forgery: ...`; defer `softfail` with
//!   `450 4.7.1 SPF - fail: ...`. Most sites should start here.
//! - `4`: also refuse `softfail` (`550 5.7.1 SPF - fail: ...`) and defer `permerror`.
//! - `5`: also refuse `neutral` (`550 5.7.1 SPF - neutral: ...`).
//! - `6`: also refuse `none` (no SPF record) and `permerror`.
//!
//! Levels above 4 refuse mail whose sender simply has not published a careful policy; they
//! are for sites that accept losing some legitimate mail. A `temperror` is always deferred
//! with `451 4.4.3` (RFC 7208 §8.6), never refused.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How the permanent refusals above are made: `perm` with a 5xx reply,
//! `temp` with a 4xx reply, `disconnect` with a 5xx reply and closing the connection,
//! `temp_disconnect` with 421 and closing. The deferrals stay temporary; with `disconnect`
//! or `temp_disconnect` they answer 421 and close the connection.
//!
//! ## spf_deny *1|2*
//!
//! Default: none. The old way to say `reject 3` (`spf_deny 1`) or `reject 4`
//! (`spf_deny 2`); used only when `reject` is not given.
//!
//! ## no_dmarc_policy *0-4*
//!
//! Default: `0`, off. A second chance to refuse on the SPF result alone, after the `dmarc`
//! plugin has looked for the sender's DMARC policy and found none. For a site that lets
//! `dmarc` decide (`reject 1` here) but wants SPF to count for domains without DMARC. The
//! refusal is made after the message has arrived (`552 5.7.1 SPF - fail: ...`):
//!
//! - `1`: refuse `fail`;
//! - `2`: also `softfail`;
//! - `3`: also `neutral`;
//! - `4`: also `none` and `permerror`.
//!
//! It has no effect when the `dmarc` plugin is not loaded, did not run, failed, or found a
//! policy (even `p=none`).
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! `spfbehavior`: one line with a number 1-6, the `reject` level when neither `reject` nor
//! `spf_deny` is given (an old qpsmtpd file). Anything else stops the server from starting,
//! with the file and line named. Read once, when the server starts.
//!
//! The DNS servers and the time each query may take are the core's `dns_servers` and
//! `dns_timeout`.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The HELO identity is checked too, and reported in Authentication-Results; the Perl
//!   plugin checked it only through macros of the sender's record.
//! - The null sender is checked through the HELO identity (RFC 7208 §2.4) instead of being
//!   skipped. A null sender whose HELO is not a domain is skipped as before.
//! - A `temperror` is deferred with `451 4.4.3` as RFC 7208 §8.6 recommends, instead of the
//!   450 of a plain DENYSOFT at MAIL.
//! - The `Received-SPF` and Authentication-Results entries are written from the same result;
//!   the explanation a domain publishes with `exp=` is quoted in the SMTP reply to a `fail`
//!   but not in the headers.
//! - The karma adjustments happen at every `reject` level, not only from level 1 up.
//! - `reject_type` is new; `reject naughty` is not offered (the levels say when to refuse).
//!
//! # SEE ALSO
//!
//! qpsmtpd-dmarc(7), qpsmtpd-dkim(7), qpsmtpd-karma(7), qpsmtpd-plugins(7), RFC 7208,
//! RFC 8601

use mail_auth::spf::verify::SpfParameters;
use mail_auth::{SpfOutput, SpfResult};
use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::header::clean_header_text;
use qpsmtpd_core::protocol::address::is_domain;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Level, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Reply, Setup, Verdict,
};
use std::future::Future;
use std::net::IpAddr;
use std::pin::pin;
use std::task::Poll;

pub const SPEC: PluginSpec = PluginSpec {
    name: "sender_permitted_from",
    factory: new,
    args: &["reject", "reject_type", "spf_deny", "no_dmarc_policy"],
    rejects: true,
    example: "reject 3 reject_type perm no_dmarc_policy 1",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let level = |key: &str, max: u8| -> Result<Option<u8>, ConfigError> {
        match args.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .map(Some)
                .ok_or_else(|| setup.error(format!("{key} must be a number 0-{max}, not {v:?}"))),
        }
    };
    let spf_deny = match args.get("spf_deny") {
        None => None,
        Some("1") => Some(3),
        Some("2") => Some(4),
        Some(v) => return Err(setup.error(format!("spf_deny must be 1 or 2, not {v:?}"))),
    };
    let mut reject = level("reject", 6)?.or(spf_deny);
    if reject.is_none()
        && let Some(line) = setup.config.first("spfbehavior")?
    {
        let n = line
            .text
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=6).contains(n))
            .ok_or_else(|| line.error(format!("{:?} is not an SPF level 1-6", line.text)))?;
        reject = Some(n);
    }
    let kind = match args.get("reject_type") {
        None => RejectType::Perm,
        Some(v) => RejectType::parse(v).ok_or_else(|| {
            setup.error(format!(
                "reject_type must be perm, temp, disconnect or temp_disconnect, not {v:?}"
            ))
        })?,
    };
    Ok(Box::new(Spf {
        level: reject.unwrap_or(0),
        kind,
        no_dmarc_policy: level("no_dmarc_policy", 4)?.unwrap_or(0),
    }))
}

struct Spf {
    /// The `reject` level, 0-6.
    level: u8,
    /// How permanent refusals are made.
    kind: RejectType,
    /// The `no_dmarc_policy` level, 0-4 (0: off).
    no_dmarc_policy: u8,
}

/// Which identity a check was about (RFC 7208 §2.3, §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    MailFrom,
    Helo,
}

/// One SPF check and its outcome.
#[derive(Clone, Debug)]
struct Check {
    scope: Scope,
    /// `user@domain` (`postmaster@<helo>` for the HELO identity).
    identity: String,
    /// The domain whose policy was asked (or the HELO name).
    domain: String,
    output: SpfOutput,
}

/// What the `mail` hook found, left in the transaction for the later hooks.
#[derive(Clone, Debug)]
struct Evaluation {
    /// The check that decides: MAIL FROM, or HELO for the null sender.
    decisive: Check,
    /// The HELO check, when it is a second, separate one.
    helo: Option<Check>,
    client_ip: IpAddr,
    helo_name: String,
}

/// The HELO check is the same for every transaction of a session; kept per session.
#[derive(Default)]
struct HeloCache(Option<(String, SpfOutput)>);

impl Plugin for Spf {
    fn hooks(&self) -> Vec<Registration> {
        let mut hooks = vec![Hook::Mail.into(), Hook::DataPostHeaders.into()];
        if self.no_dmarc_policy > 0 {
            hooks.push(Hook::DataPost.into());
        }
        hooks
    }

    fn mail(&self, cx: &mut Context<'_>, sender: &Address, _: &Params) -> Verdict {
        if let Some(why) = immunity(cx) {
            cx.skip(format!("immune: {why}"));
            return Verdict::Declined;
        }
        let eval = evaluate(cx, sender);
        let decisive = &eval.decisive;
        let result = decisive.output.result();
        cx.transaction_mut().set_extension(decisive.output.clone());
        if let Some(h) = &eval.helo {
            cx.log(
                Level::Debug,
                format!("HELO {}: {}", h.domain, explain(h, eval.client_ip)),
            );
        }
        let why = explain(decisive, eval.client_ip);
        let unchecked = decisive.scope == Scope::Helo && !helo_checkable(&decisive.domain);
        cx.transaction_mut().set_extension(eval);

        match result {
            SpfResult::Pass => {
                cx.adjust_karma(1);
            }
            SpfResult::Fail | SpfResult::SoftFail => {
                cx.adjust_karma(-1);
            }
            _ => {}
        }
        let name = result_name(result);
        if unchecked {
            // The null sender from a client whose HELO is no domain: nothing to check.
            cx.skip(format!("{name}, {why}"));
            return Verdict::Declined;
        }
        match decide(self.level, result) {
            Decision::Pass => {
                cx.pass(&why);
                Verdict::Declined
            }
            Decision::Skip => {
                cx.skip(format!("{name}, {why}"));
                Verdict::Declined
            }
            Decision::Tolerate => tolerate(cx, &format!("{name}, {why}")),
            Decision::Refuse { prefix, permanent } => self.refuse(
                cx,
                permanent,
                result == SpfResult::TempError,
                &format!("{prefix}: {why}"),
                &format!("{name}, {why}"),
            ),
        }
    }

    fn data_post_headers(&self, cx: &mut Context<'_>) -> Verdict {
        let Some(eval) = cx.transaction().extension::<Evaluation>().cloned() else {
            return Verdict::Declined;
        };
        let me = cx.core().me.clone();
        let header = received_spf(&eval, &me);
        cx.transaction_mut().header.prepend("Received-SPF", &header);
        for check in std::iter::once(&eval.decisive).chain(eval.helo.as_ref()) {
            cx.add_auth_result(&auth_result(check));
        }
        cx.log(Level::Debug, format!("added Received-SPF: {header}"));
        Verdict::Declined
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        let Some(eval) = cx.transaction().extension::<Evaluation>().cloned() else {
            return Verdict::Declined;
        };
        let domain = eval.decisive.domain.clone();
        match cx.transaction().extension::<crate::dmarc::DmarcFinding>() {
            None => {
                cx.skip("no_dmarc_policy: the dmarc plugin gave no verdict");
                return Verdict::Declined;
            }
            Some(crate::dmarc::DmarcFinding::Policy) => {
                cx.skip(format!(
                    "no_dmarc_policy: the DMARC policy of the From domain decides for {domain}"
                ));
                return Verdict::Declined;
            }
            Some(crate::dmarc::DmarcFinding::NoPolicy) => {}
        }
        let result = eval.decisive.output.result();
        let name = result_name(result);
        let why = explain(&eval.decisive, eval.client_ip);
        let refuse = match result {
            SpfResult::Fail => self.no_dmarc_policy >= 1,
            SpfResult::SoftFail => self.no_dmarc_policy >= 2,
            SpfResult::Neutral => self.no_dmarc_policy >= 3,
            SpfResult::None | SpfResult::PermError => self.no_dmarc_policy >= 4,
            SpfResult::Pass | SpfResult::TempError => false,
        };
        let log = format!("no_dmarc_policy: {name}, {why}");
        if refuse {
            let prefix = match result {
                SpfResult::SoftFail => "fail",
                _ => name,
            };
            return self.refuse(cx, true, false, &format!("SPF - {prefix}: {why}"), &log);
        }
        match result {
            SpfResult::Pass => cx.pass(log),
            SpfResult::None => cx.skip(log),
            _ => {
                return tolerate(cx, &log);
            }
        }
        Verdict::Declined
    }
}

impl Spf {
    /// Refuses through the shared reject policy: `permanent` refusals take `reject_type`,
    /// temporary ones stay temporary; a DNS failure is answered `451 4.4.3`.
    fn refuse(
        &self,
        cx: &mut Context<'_>,
        permanent: bool,
        dns: bool,
        smtp_msg: &str,
        log_msg: &str,
    ) -> Verdict {
        let kind = match (permanent, self.kind) {
            (true, kind) => kind,
            (false, RejectType::Disconnect | RejectType::TempDisconnect) => {
                RejectType::TempDisconnect
            }
            (false, _) => RejectType::Temp,
        };
        let reject = Reject {
            mode: RejectMode::On,
            kind,
        };
        match reject.apply(cx, smtp_msg, log_msg) {
            Verdict::DenySoft(Some(text)) if dns => Verdict::done(Reply::new(451, "4.4.3", &text)),
            verdict => verdict,
        }
    }
}

/// Logs a tolerated failure (`fail, tolerated: ...`) and lets the client go on.
fn tolerate(cx: &mut Context<'_>, log_msg: &str) -> Verdict {
    Reject {
        mode: RejectMode::Off,
        kind: RejectType::Perm,
    }
    .apply(cx, "", log_msg)
}

/// Why a client is not checked, if it is immune.
fn immunity(cx: &Context<'_>) -> Option<String> {
    let conn = cx.connection();
    if let Some(auth) = &conn.auth {
        return Some(format!("authenticated as {}", auth.user));
    }
    if conn.relay_client {
        return Some("relay client".into());
    }
    cx.is_immune().then(|| "whitelisted".into())
}

/// What a result leads to at a `reject` level.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Pass,
    /// Logged as `skip` (no policy, not refused).
    Skip,
    /// Logged as `fail, tolerated`.
    Tolerate,
    /// Refused with `SPF - <prefix>: <why>`.
    Refuse {
        prefix: &'static str,
        permanent: bool,
    },
}

/// The levels of the Perl plugin.
fn decide(level: u8, result: SpfResult) -> Decision {
    let refuse = |prefix, permanent| Decision::Refuse { prefix, permanent };
    match result {
        SpfResult::Pass => Decision::Pass,
        SpfResult::None if level >= 6 => refuse("SPF - none", true),
        SpfResult::None => Decision::Skip,
        SpfResult::Fail if level >= 3 => refuse("SPF - forgery", true),
        SpfResult::Fail if level == 2 => refuse("SPF - fail", false),
        SpfResult::SoftFail if level >= 4 => refuse("SPF - fail", true),
        SpfResult::SoftFail if level == 3 => refuse("SPF - fail", false),
        SpfResult::Neutral if level >= 5 => refuse("SPF - neutral", true),
        SpfResult::PermError if level >= 6 => refuse("SPF - permerror", true),
        SpfResult::PermError if level >= 4 => refuse("SPF - permerror", false),
        SpfResult::TempError if level >= 2 => refuse("SPF - temperror", false),
        _ => Decision::Tolerate,
    }
}

/// Runs the MAIL FROM and HELO checks (at the same time) for this transaction.
fn evaluate(cx: &mut Context<'_>, sender: &Address) -> Evaluation {
    let client_ip = strip_mapped(cx.connection().remote_ip());
    let helo_name = cx.connection().hello_host.clone().unwrap_or_default();
    let me = cx.core().me.clone();
    let mail_from = (!sender.is_null()).then(|| sender.address());

    let cached_helo = match &cx.state::<HeloCache>().0 {
        Some((name, output)) if *name == helo_name => Some(output.clone()),
        _ => None,
    };
    let want_helo = helo_checkable(&helo_name) && cached_helo.is_none();
    let (mail_output, helo_output) = match cx.dns() {
        Ok(dns) => {
            let auth = dns.authenticator();
            let mail_check = async {
                match &mail_from {
                    Some(from) => Some(
                        auth.verify_spf(SpfParameters::verify_mail_from(
                            client_ip, &helo_name, &me, from,
                        ))
                        .await,
                    ),
                    None => None,
                }
            };
            let helo_check = async {
                if want_helo {
                    Some(
                        auth.verify_spf(SpfParameters::verify_ehlo(client_ip, &helo_name, &me))
                            .await,
                    )
                } else {
                    None
                }
            };
            dns.block_on(join(mail_check, helo_check))
        }
        Err(e) => {
            cx.log(Level::Debug, format!("no resolver: {e}"));
            let failed =
                |domain: &str| SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError);
            (
                mail_from.as_ref().map(|_| failed(sender.host())),
                want_helo.then(|| failed(&helo_name)),
            )
        }
    };
    let helo_output = match (helo_output, cached_helo) {
        (Some(out), _) => {
            // Only a definite answer is worth keeping for the next transaction.
            if out.result() != SpfResult::TempError {
                cx.state::<HeloCache>().0 = Some((helo_name.clone(), out.clone()));
            }
            Some(out)
        }
        (None, cached) => cached,
    };
    let helo_check = helo_output.map(|output| Check {
        scope: Scope::Helo,
        identity: format!("postmaster@{helo_name}"),
        domain: helo_name.clone(),
        output,
    });
    let (decisive, helo) = match (mail_from, mail_output) {
        (Some(identity), Some(output)) => (
            Check {
                scope: Scope::MailFrom,
                identity,
                domain: sender.host().to_string(),
                output,
            },
            helo_check,
        ),
        // The null sender: the HELO identity speaks for it.
        _ => (
            helo_check.unwrap_or_else(|| Check {
                scope: Scope::Helo,
                identity: format!("postmaster@{helo_name}"),
                domain: helo_name.clone(),
                output: SpfOutput::new(helo_name.clone()).with_result(SpfResult::None),
            }),
            None,
        ),
    };
    Evaluation {
        decisive,
        helo,
        client_ip,
        helo_name,
    }
}

/// A HELO name worth an SPF check: a domain with at least two labels.
fn helo_checkable(name: &str) -> bool {
    is_domain(name) && name.contains('.')
}

/// Polls two futures together until both are done (the checks wait on DNS at the same
/// time, so two take as long as the slower).
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut ra = None;
    let mut rb = None;
    std::future::poll_fn(|task| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(task)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(task)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    match (ra, rb) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("both futures are ready"),
    }
}

/// The RFC 8601 / RFC 7208 name of a result.
pub(crate) fn result_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// The explanation of a result, for replies and logs (with the domain's own `exp=` text).
fn explain(check: &Check, ip: IpAddr) -> String {
    let exp = check.output.explanation().map(|exp| {
        // The domain's own words, for the client to read.
        let exp: String = clean_header_text(exp).chars().take(200).collect();
        format!(" ({exp})")
    });
    describe(
        check,
        &clean_header_text(&check.identity),
        &clean_header_text(&check.domain),
        ip,
        exp.as_deref().unwrap_or(""),
    )
}

/// The explanation for the comment of `Received-SPF`: no `exp=` text, and no parentheses
/// from the client's words that could end the comment early.
fn comment(check: &Check, ip: IpAddr) -> String {
    let plain = |s: &str| clean_header_text(s).replace(['(', ')', '\\'], "");
    describe(
        check,
        &plain(&check.identity),
        &plain(&check.domain),
        ip,
        "",
    )
}

fn describe(check: &Check, id: &str, domain: &str, ip: IpAddr, exp: &str) -> String {
    match check.output.result() {
        SpfResult::Pass => format!("domain of {id} designates {ip} as permitted sender"),
        SpfResult::Fail => {
            format!("domain of {id} does not designate {ip} as permitted sender{exp}")
        }
        SpfResult::SoftFail => format!(
            "domain of {id} does not designate {ip} as permitted sender, but only softly (softfail)"
        ),
        SpfResult::Neutral => format!("domain of {id} makes no statement about {ip}"),
        SpfResult::None if check.scope == Scope::Helo && !helo_checkable(&check.domain) => {
            format!("HELO {domain} is not a domain name, no SPF check for {id}")
        }
        SpfResult::None => format!("no SPF record for {domain}"),
        SpfResult::PermError => format!(
            "the SPF record of {domain} cannot be evaluated (syntax error, include loop or more than 10 DNS lookups)"
        ),
        SpfResult::TempError => format!("DNS error looking up the SPF record of {domain}"),
    }
}

/// The Authentication-Results entry of a check.
fn auth_result(check: &Check) -> String {
    let name = result_name(check.output.result());
    match check.scope {
        Scope::MailFrom => format!(
            "spf={name} smtp.mailfrom={}",
            property_value(&check.domain.to_ascii_lowercase())
        ),
        Scope::Helo => format!(
            "spf={name} smtp.helo={}",
            property_value(&check.domain.to_ascii_lowercase())
        ),
    }
}

/// A value as RFC 8601 writes it: a plain token, or a quoted string.
pub(crate) fn property_value(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._@+".contains(c))
    {
        v.to_string()
    } else {
        quoted(v)
    }
}

fn quoted(v: &str) -> String {
    let mut out = String::from("\"");
    for c in clean_header_text(v).chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The value of the `Received-SPF` header (RFC 7208 §9.1).
fn received_spf(eval: &Evaluation, me: &str) -> String {
    let check = &eval.decisive;
    let ip = eval.client_ip;
    let comment = comment(check, ip);
    let helo = if eval.helo_name.is_empty() {
        "\"\"".to_string()
    } else {
        property_value(&eval.helo_name)
    };
    let identity = match check.scope {
        Scope::MailFrom => "mailfrom",
        Scope::Helo => "helo",
    };
    let envelope_from = if check.scope == Scope::MailFrom {
        quoted(&check.identity)
    } else {
        "\"<>\"".to_string()
    };
    format!(
        "{} ({me}: {comment})\n client-ip={ip}; envelope-from={envelope_from}; helo={helo};\n receiver={me}; identity={identity}",
        result_name(check.output.result()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer, TestSession};
    use std::sync::{Arc, Mutex};

    /// A queue that keeps every message it is given.
    #[derive(Clone, Default)]
    pub(crate) struct Queue(pub Arc<Mutex<Vec<String>>>);

    impl Plugin for Queue {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Queue.into()]
        }
        fn queue(&self, cx: &mut Context<'_>) -> Verdict {
            let mut out = Vec::new();
            cx.transaction_mut().write_message(&mut out).unwrap();
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&out).into_owned());
            Verdict::ok_with("Queued!")
        }
    }

    impl Queue {
        pub(crate) fn last(&self) -> String {
            self.0.lock().unwrap().last().cloned().unwrap_or_default()
        }
    }

    struct Setup {
        server: TestServer,
        log: LogCapture,
        queue: Queue,
        _dns: Option<DnsServer>,
    }

    /// A server with `plugins` (rcpt_ok added), the test DNS server, a queue and a log.
    fn start(plugins: &str) -> Setup {
        let dns = DnsServer::start();
        let h = Harness::new().dns(&dns);
        start_with(h, plugins, Some(dns))
    }

    fn start_with(h: Harness, plugins: &str, dns: Option<DnsServer>) -> Setup {
        let log = LogCapture::default();
        let queue = Queue::default();
        let server = h
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", &format!("{plugins}\nrcpt_ok"))
            .plugin("queue", queue.clone())
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        Setup {
            server,
            log,
            queue,
            _dns: dns,
        }
    }

    /// A UDP socket that never answers, as `dns_servers` (with a short `dns_timeout`).
    pub(crate) fn black_hole() -> (SilentDns, Harness) {
        let silent = SilentDns::start();
        let h = Harness::new().silent_dns(&silent, "0.3");
        (silent, h)
    }

    fn session(s: &Setup, ip: &str, helo: &str) -> TestSession {
        let mut t = s
            .server
            .session_from(ConnectionInfo::from_ip(ip.parse().unwrap()));
        assert!(t.connect().starts_with("220 "));
        let r = t.command(&format!("EHLO {helo}"));
        assert!(r.starts_with("250"), "{r}");
        t
    }

    /// The reply to `MAIL FROM:<from>` from `ip` after `EHLO helo`.
    fn mail_reply(s: &Setup, ip: &str, helo: &str, from: &str) -> String {
        session(s, ip, helo).command(&format!("MAIL FROM:<{from}>"))
    }

    const SENDER_OK: &str = "250 2.1.0 <{}>, sender OK - how exciting to get mail from you!\r\n";

    const MESSAGE: &str = "From: <a@example.org>\r\nSubject: spf\r\n\r\nhello\r\n";

    fn summary(s: &Setup) -> Vec<String> {
        crate::test_support::summary(&s.log, "sender_permitted_from")
    }

    #[test]
    fn pass_adds_received_spf_and_both_identities_to_authentication_results() {
        let s = start("sender_permitted_from reject 3");
        let mut t = session(&s, "192.0.2.1", "mx.spf.test");
        assert_eq!(
            t.mail("a@pass.spf.test", &["u@example.com"], MESSAGE),
            "250 2.0.0 Queued!\r\n"
        );
        let m = s.queue.last();
        assert!(
            m.starts_with(
                "Authentication-Results: test.example;\n\tauth=none;\n\
                 \tspf=pass smtp.mailfrom=pass.spf.test;\n\tspf=pass smtp.helo=mx.spf.test\n\
                 Received: "
            ),
            "{m}"
        );
        assert!(
            m.contains(
                "\nReceived-SPF: pass (test.example: domain of a@pass.spf.test designates \
                 192.0.2.1 as permitted sender)\n client-ip=192.0.2.1; \
                 envelope-from=\"a@pass.spf.test\"; helo=mx.spf.test;\n \
                 receiver=test.example; identity=mailfrom\nFrom: <a@example.org>\n"
            ),
            "{m}"
        );
        assert_eq!(
            summary(&s),
            ["INFO pass: domain of a@pass.spf.test designates 192.0.2.1 as permitted sender"]
        );
        assert_eq!(t.session.connection().notes.get_int("karma"), Some(1));
    }

    #[test]
    fn every_reject_level_as_the_original() {
        let fail = "domain of a@fail.spf.test does not designate 198.51.100.1 as permitted sender";
        let soft = "domain of a@softfail.spf.test does not designate 198.51.100.1 as permitted sender, but only softly (softfail)";
        let neutral = "domain of a@neutral.spf.test makes no statement about 198.51.100.1";
        let none = "no SPF record for nospf.spf.test";
        let perm = "the SPF record of broken.spf.test cannot be evaluated (syntax error, include loop or more than 10 DNS lookups)";
        let ok = SENDER_OK;
        let table: [(&str, &str, [String; 7]); 5] = [
            (
                "a@fail.spf.test",
                fail,
                [
                    ok.into(),
                    ok.into(),
                    format!("450 4.7.1 SPF - fail: {fail}\r\n"),
                    format!("550 5.7.1 SPF - forgery: {fail}\r\n"),
                    format!("550 5.7.1 SPF - forgery: {fail}\r\n"),
                    format!("550 5.7.1 SPF - forgery: {fail}\r\n"),
                    format!("550 5.7.1 SPF - forgery: {fail}\r\n"),
                ],
            ),
            (
                "a@softfail.spf.test",
                soft,
                [
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    format!("450 4.7.1 SPF - fail: {soft}\r\n"),
                    format!("550 5.7.1 SPF - fail: {soft}\r\n"),
                    format!("550 5.7.1 SPF - fail: {soft}\r\n"),
                    format!("550 5.7.1 SPF - fail: {soft}\r\n"),
                ],
            ),
            (
                "a@neutral.spf.test",
                neutral,
                [
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    format!("550 5.7.1 SPF - neutral: {neutral}\r\n"),
                    format!("550 5.7.1 SPF - neutral: {neutral}\r\n"),
                ],
            ),
            (
                "a@nospf.spf.test",
                none,
                [
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    format!("550 5.7.1 SPF - none: {none}\r\n"),
                ],
            ),
            (
                "a@broken.spf.test",
                perm,
                [
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    ok.into(),
                    format!("450 4.7.1 SPF - permerror: {perm}\r\n"),
                    format!("450 4.7.1 SPF - permerror: {perm}\r\n"),
                    format!("550 5.7.1 SPF - permerror: {perm}\r\n"),
                ],
            ),
        ];
        let dns = DnsServer::start();
        for level in 0..=6 {
            let line = if level == 0 {
                "sender_permitted_from".to_string()
            } else {
                format!("sender_permitted_from reject {level}")
            };
            let s = start_with(Harness::new().dns(&dns), &line, None);
            for (from, _, replies) in &table {
                let want = replies[level].replace("{}", from);
                assert_eq!(
                    mail_reply(&s, "198.51.100.1", "client.example", from),
                    want,
                    "{line}: {from}"
                );
            }
            // A pass is a pass at every level.
            assert_eq!(
                mail_reply(&s, "192.0.2.1", "client.example", "a@pass.spf.test"),
                ok.replace("{}", "a@pass.spf.test"),
            );
        }
    }

    #[test]
    fn summary_lines_name_the_result() {
        let s = start("sender_permitted_from reject 3");
        for from in [
            "a@fail.spf.test",
            "a@softfail.spf.test",
            "a@neutral.spf.test",
            "a@nospf.spf.test",
            "a@broken.spf.test",
        ] {
            mail_reply(&s, "198.51.100.1", "client.example", from);
        }
        assert_eq!(
            summary(&s),
            [
                "INFO fail: fail, domain of a@fail.spf.test does not designate 198.51.100.1 as permitted sender",
                "INFO fail: softfail, domain of a@softfail.spf.test does not designate 198.51.100.1 as permitted sender, but only softly (softfail)",
                "INFO fail, tolerated: neutral, domain of a@neutral.spf.test makes no statement about 198.51.100.1",
                "INFO skip: none, no SPF record for nospf.spf.test",
                "INFO fail, tolerated: permerror, the SPF record of broken.spf.test cannot be evaluated (syntax error, include loop or more than 10 DNS lookups)",
            ]
        );
    }

    #[test]
    fn include_redirect_a_and_ipv6_pass() {
        let s = start("sender_permitted_from reject 6");
        for (ip, from) in [
            ("192.0.2.7", "a@include.spf.test"),
            ("192.0.2.7", "a@redirect.spf.test"),
            ("192.0.2.25", "a@host.spf.test"),
            ("2001:db8::7", "a@pass.spf.test"),
        ] {
            let r = mail_reply(&s, ip, "client.example", from);
            assert_eq!(r, SENDER_OK.replace("{}", from), "{from}");
        }
        // The same records do not let strangers in.
        for from in [
            "a@include.spf.test",
            "a@redirect.spf.test",
            "a@host.spf.test",
        ] {
            let r = mail_reply(&s, "198.51.100.1", "client.example", from);
            assert!(r.starts_with("550 5.7.1 SPF - forgery: "), "{from}: {r}");
        }
    }

    #[test]
    fn loops_too_many_lookups_and_bad_includes_are_permerrors() {
        let s = start("sender_permitted_from reject 6");
        for from in [
            "a@loop.spf.test",
            "a@toomany.spf.test",
            "a@badinclude.spf.test",
            "a@broken.spf.test",
        ] {
            let domain = from.split('@').nth(1).unwrap();
            // From a permitted address too: the limit stops evaluation before any match.
            assert_eq!(
                mail_reply(&s, "192.0.2.1", "client.example", from),
                format!(
                    "550 5.7.1 SPF - permerror: the SPF record of {domain} cannot be evaluated \
                     (syntax error, include loop or more than 10 DNS lookups)\r\n"
                )
            );
        }
    }

    #[test]
    fn the_senders_words_cannot_break_the_received_spf_comment() {
        let s = start("sender_permitted_from");
        let mut t = session(&s, "192.0.2.1", "mx.spf.test");
        assert_eq!(
            t.mail("\"x) y\\\"(z\"@pass.spf.test", &["u@example.com"], MESSAGE),
            "250 2.0.0 Queued!\r\n"
        );
        let m = s.queue.last();
        assert!(
            m.contains(
                "\nReceived-SPF: pass (test.example: domain of x y\"z@pass.spf.test designates \
                 192.0.2.1 as permitted sender)\n client-ip=192.0.2.1; \
                 envelope-from=\"x) y\\\"(z@pass.spf.test\";"
            ),
            "{m}"
        );
    }

    #[test]
    fn a_fail_quotes_the_domains_explanation() {
        let s = start("sender_permitted_from reject 3");
        assert_eq!(
            mail_reply(&s, "198.51.100.1", "client.example", "a@explained.spf.test"),
            "550 5.7.1 SPF - forgery: domain of a@explained.spf.test does not designate \
             198.51.100.1 as permitted sender (198.51.100.1 is not one of \
             explained.spf.test's mail servers)\r\n"
        );
    }

    #[test]
    fn the_null_sender_is_checked_through_helo() {
        let s = start("sender_permitted_from reject 3");
        let mut t = session(&s, "192.0.2.1", "mx.spf.test");
        assert_eq!(
            t.mail("", &["u@example.com"], MESSAGE),
            "250 2.0.0 Queued!\r\n"
        );
        let m = s.queue.last();
        assert!(
            m.starts_with(
                "Authentication-Results: test.example;\n\tauth=none;\n\
                 \tspf=pass smtp.helo=mx.spf.test\nReceived: "
            ),
            "{m}"
        );
        assert!(
            m.contains(
                "envelope-from=\"<>\"; helo=mx.spf.test;\n receiver=test.example; identity=helo\n"
            ),
            "{m}"
        );
        assert_eq!(
            mail_reply(&s, "198.51.100.1", "forged.spf.test", ""),
            "550 5.7.1 SPF - forgery: domain of postmaster@forged.spf.test does not \
             designate 198.51.100.1 as permitted sender\r\n"
        );
        // A HELO that is no domain cannot be checked: skipped, whatever the level.
        let s = start("sender_permitted_from reject 6");
        assert_eq!(
            mail_reply(&s, "198.51.100.1", "[198.51.100.1]", ""),
            SENDER_OK.replace("<{}>", "<>")
        );
        assert_eq!(
            summary(&s),
            [
                "INFO skip: none, HELO [198.51.100.1] is not a domain name, no SPF check for postmaster@[198.51.100.1]"
            ]
        );
    }

    #[test]
    fn a_failing_helo_is_reported_but_does_not_decide() {
        let s = start("sender_permitted_from reject 3");
        let mut t = session(&s, "192.0.2.1", "forged.spf.test");
        assert_eq!(
            t.mail("a@pass.spf.test", &["u@example.com"], MESSAGE),
            "250 2.0.0 Queued!\r\n"
        );
        assert!(
            s.queue.last().starts_with(
                "Authentication-Results: test.example;\n\tauth=none;\n\
                 \tspf=pass smtp.mailfrom=pass.spf.test;\n\tspf=fail smtp.helo=forged.spf.test\n"
            ),
            "{}",
            s.queue.last()
        );
        // The HELO answer is kept for the session's next transaction.
        assert_eq!(
            t.mail("b@pass.spf.test", &["u@example.com"], MESSAGE),
            "250 2.0.0 Queued!\r\n"
        );
        assert!(
            s.queue
                .last()
                .contains("spf=fail smtp.helo=forged.spf.test\n")
        );
    }

    #[test]
    fn legacy_spf_deny_and_spfbehavior() {
        let dns = DnsServer::start();
        for (line, behavior, want) in [
            (
                "sender_permitted_from spf_deny 1",
                None,
                "450 4.7.1 SPF - fail: ",
            ),
            (
                "sender_permitted_from spf_deny 2",
                None,
                "550 5.7.1 SPF - fail: ",
            ),
            ("sender_permitted_from", Some("3"), "450 4.7.1 SPF - fail: "),
            ("sender_permitted_from", Some("4"), "550 5.7.1 SPF - fail: "),
            ("sender_permitted_from reject 1", Some("4"), "250 "),
        ] {
            let mut h = Harness::new().dns(&dns);
            if let Some(b) = behavior {
                h = h.file("spfbehavior", b);
            }
            let s = start_with(h, line, None);
            let r = mail_reply(&s, "198.51.100.1", "client.example", "a@softfail.spf.test");
            assert!(r.starts_with(want), "{line} {behavior:?}: {r}");
        }
    }

    #[test]
    fn reject_type_shapes_the_refusals() {
        let dns = DnsServer::start();
        let s = start_with(
            Harness::new().dns(&dns),
            "sender_permitted_from reject 3 reject_type disconnect",
            None,
        );
        let mut t = session(&s, "198.51.100.1", "client.example");
        assert!(
            t.command("MAIL FROM:<a@fail.spf.test>")
                .starts_with("550 5.7.1 SPF - forgery: ")
        );
        assert!(t.is_closed());
        let mut t = session(&s, "198.51.100.1", "client.example");
        assert!(
            t.command("MAIL FROM:<a@softfail.spf.test>")
                .starts_with("421 4.7.1 SPF - fail: ")
        );
        assert!(t.is_closed());
        let s = start_with(
            Harness::new().dns(&dns),
            "sender_permitted_from reject 3 reject_type temp",
            None,
        );
        assert!(
            mail_reply(&s, "198.51.100.1", "client.example", "a@fail.spf.test")
                .starts_with("450 4.7.1 SPF - forgery: ")
        );
    }

    #[test]
    fn a_dns_server_that_never_answers_is_a_temperror_never_a_pass() {
        let (_sock, h) = black_hole();
        let s = start_with(h, "sender_permitted_from reject 2", None);
        assert_eq!(
            mail_reply(&s, "192.0.2.1", "mx.spf.test", "a@pass.spf.test"),
            "451 4.4.3 SPF - temperror: DNS error looking up the SPF record of pass.spf.test\r\n"
        );
        assert_eq!(
            summary(&s),
            ["INFO fail: temperror, DNS error looking up the SPF record of pass.spf.test"]
        );

        // Annotate only: the message gets in, marked temperror.
        let (_sock, h) = black_hole();
        let s = start_with(h, "sender_permitted_from reject 1", None);
        let mut t = session(&s, "192.0.2.1", "mx.spf.test");
        assert_eq!(
            t.mail("a@pass.spf.test", &["u@example.com"], MESSAGE),
            "250 2.0.0 Queued!\r\n"
        );
        let m = s.queue.last();
        assert!(
            m.contains("spf=temperror smtp.mailfrom=pass.spf.test;\n\tspf=temperror smtp.helo=mx.spf.test\n"),
            "{m}"
        );
        assert!(m.contains("\nReceived-SPF: temperror ("), "{m}");
        assert_eq!(
            summary(&s),
            [
                "INFO fail, tolerated: temperror, DNS error looking up the SPF record of pass.spf.test"
            ]
        );
    }

    #[test]
    fn relay_clients_and_authenticated_users_are_not_checked() {
        let dns = DnsServer::start();
        let s = start_with(
            Harness::new()
                .dns(&dns)
                .file("relayclients", "198.51.100.5"),
            "relay\nsender_permitted_from reject 6",
            None,
        );
        let mut t = session(&s, "198.51.100.5", "client.example");
        assert_eq!(
            t.mail("a@fail.spf.test", &["u@elsewhere.example"], MESSAGE),
            "250 2.0.0 Queued!\r\n"
        );
        assert!(!s.queue.last().contains("Received-SPF"));
        assert!(!s.queue.last().contains("spf="));
        assert_eq!(summary(&s), ["INFO skip: immune: relay client"]);

        let s = {
            let log = LogCapture::default();
            let server = Harness::new()
                .dns(&dns)
                .catalogue(crate::CATALOGUE)
                .file("plugins", "sender_permitted_from reject 6")
                .plugin("auth", crate::relay::tests::Authenticated)
                .plugin("capture", log.clone())
                .build()
                .unwrap();
            Setup {
                server,
                log,
                queue: Queue::default(),
                _dns: None,
            }
        };
        assert_eq!(
            mail_reply(&s, "198.51.100.1", "client.example", "a@fail.spf.test"),
            SENDER_OK.replace("{}", "a@fail.spf.test")
        );
        assert_eq!(summary(&s), ["INFO skip: immune: authenticated as joe"]);
    }

    /// Reads the SpfOutput this plugin leaves for dmarc.
    struct Reader(Arc<Mutex<Vec<(SpfResult, String)>>>);
    impl Plugin for Reader {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::DataPost.into()]
        }
        fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
            if let Some(o) = cx.transaction().extension::<SpfOutput>() {
                self.0
                    .lock()
                    .unwrap()
                    .push((o.result(), o.domain().to_string()));
            }
            Verdict::Declined
        }
    }

    #[test]
    fn leaves_its_result_for_dmarc() {
        let dns = DnsServer::start();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = start_with(
            Harness::new()
                .dns(&dns)
                .plugin("reader", Reader(seen.clone())),
            "sender_permitted_from",
            None,
        );
        let mut t = session(&s, "198.51.100.1", "mx.spf.test");
        t.mail("a@softfail.spf.test", &["u@example.com"], MESSAGE);
        t.mail("", &["u@example.com"], MESSAGE);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (SpfResult::SoftFail, "softfail.spf.test".to_string()),
                (SpfResult::Fail, "mx.spf.test".to_string()),
            ]
        );
    }

    #[test]
    fn no_dmarc_policy_refuses_when_the_domain_has_no_dmarc_record() {
        let dns = DnsServer::start();
        let plugins = "sender_permitted_from reject 1 no_dmarc_policy 1\ndmarc";
        let s = start_with(Harness::new().dns(&dns), plugins, None);
        // spf.test publishes no DMARC policy: SPF decides.
        let mut t = session(&s, "198.51.100.1", "client.example");
        let msg = "From: <a@fail.spf.test>\r\nSubject: x\r\n\r\nhello\r\n";
        assert_eq!(
            t.mail("a@fail.spf.test", &["u@example.com"], msg),
            "552 5.7.1 SPF - fail: domain of a@fail.spf.test does not designate \
             198.51.100.1 as permitted sender\r\n"
        );
        // A softfail is below level 1.
        let msg = "From: <a@softfail.spf.test>\r\nSubject: x\r\n\r\nhello\r\n";
        assert_eq!(
            t.mail("a@softfail.spf.test", &["u@example.com"], msg),
            "250 2.0.0 Queued!\r\n"
        );
        // With a DMARC policy (p=none), dmarc decides, and lets it pass.
        let msg = "From: <a@none.dmarc.test>\r\nSubject: x\r\n\r\nhello\r\n";
        assert_eq!(
            t.mail("a@fail.spf.test", &["u@example.com"], msg),
            "250 2.0.0 Queued!\r\n"
        );
        assert_eq!(
            summary(&s),
            [
                "INFO fail, tolerated: fail, domain of a@fail.spf.test does not designate 198.51.100.1 as permitted sender",
                "INFO fail: no_dmarc_policy: fail, domain of a@fail.spf.test does not designate 198.51.100.1 as permitted sender",
                "INFO fail, tolerated: softfail, domain of a@softfail.spf.test does not designate 198.51.100.1 as permitted sender, but only softly (softfail)",
                "INFO fail, tolerated: no_dmarc_policy: softfail, domain of a@softfail.spf.test does not designate 198.51.100.1 as permitted sender, but only softly (softfail)",
                "INFO fail, tolerated: fail, domain of a@fail.spf.test does not designate 198.51.100.1 as permitted sender",
                "INFO skip: no_dmarc_policy: the DMARC policy of the From domain decides for fail.spf.test",
            ]
        );
    }

    #[test]
    fn bad_arguments_and_files_are_refused_at_load_time() {
        for line in [
            "sender_permitted_from reject 7",
            "sender_permitted_from reject naughty",
            "sender_permitted_from spf_deny 3",
            "sender_permitted_from reject_type later",
            "sender_permitted_from no_dmarc_policy 5",
            "sender_permitted_from bogus_arg 1",
            "sender_permitted_from reject",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: sender_permitted_from: "),
                "{line}: {err}"
            );
        }
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "sender_permitted_from")
            .file("spfbehavior", "# level\nstrict")
            .build()
            .expect_err("spfbehavior should be refused")
            .to_string();
        assert!(
            err.ends_with("spfbehavior:2: \"strict\" is not an SPF level 1-6"),
            "{err}"
        );
    }

    #[test]
    fn levels_table() {
        use SpfResult::*;
        assert_eq!(decide(0, Fail), Decision::Tolerate);
        assert_eq!(decide(1, TempError), Decision::Tolerate);
        assert_eq!(
            decide(2, TempError),
            Decision::Refuse {
                prefix: "SPF - temperror",
                permanent: false
            }
        );
        assert_eq!(decide(6, TempError), decide(2, TempError));
        assert_eq!(decide(5, None), Decision::Skip);
        assert_eq!(decide(6, Pass), Decision::Pass);
    }
}
