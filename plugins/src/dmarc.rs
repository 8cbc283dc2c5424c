//! # NAME
//!
//! dmarc - enforce the From domain's DMARC policy (RFC 7489)
//!
//! # DESCRIPTION
//!
//! DMARC is a policy layer over SPF and DKIM. The owner of a domain publishes, in a TXT
//! record at `_dmarc.<domain>`, what receivers should do with mail whose `From:` header
//! names the domain but which neither SPF nor DKIM vouches for. A message passes DMARC when
//! at least one of them passes *and is aligned* with the `From:` domain:
//!
//! - SPF: the envelope sender's domain (the HELO name for the null sender) passed SPF and
//!   is the `From:` domain, or, with relaxed alignment (`aspf=r`, the default), has the
//!   same organizational domain;
//! - DKIM: a valid signature's `d=` domain is the `From:` domain, or, with relaxed
//!   alignment (`adkim=r`, the default), has the same organizational domain.
//!
//! The organizational domain is found with the public suffix list compiled into the server
//! (`mail.example.co.uk` → `example.co.uk`; a suffix the list does not know counts as one
//! label, so `a.example.test` → `example.test`).
//!
//! When the message has arrived (`data_post_headers`), the plugin
//!
//! 1. takes the domain of the `From:` header (a message without one, or whose `From:` names
//!    addresses in several domains, is exempt: `skip`);
//! 2. verifies every DKIM signature of the message;
//! 3. takes the SPF result the `sender_permitted_from` plugin left, or, when that plugin is
//!    not loaded, checks SPF itself;
//! 4. looks up the policy: `_dmarc.<From domain>`, then its parents;
//! 5. adds the outcome to the `Authentication-Results` header, e.g.
//!    `dmarc=fail (p=reject dis=reject) header.from=example.com` (`p` is the policy that
//!    applied, `dis` what this server did about it), or `dmarc=none` when the domain has no
//!    policy.
//!
//! A message that fails, from a domain whose policy (`p=`, or `sp=` for a subdomain without
//! a record of its own) is `quarantine` or `reject`, is refused after the data
//! (`data_post`), as `reject` says: `552 5.7.1 failed DMARC policy`. SMTP has no quarantine,
//! so `quarantine` is refused like `reject`; a site that would rather deliver such mail to a
//! spam folder sets `reject 0` and filters on the `dmarc=fail` entry. `pct=` is honoured: a
//! message outside the sampled percentage is not refused (`dis=none`). A policy of
//! `p=none` never refuses. A failure lowers the connection's karma by 3 when the policy asks
//! for quarantine or reject.
//!
//! A temporary DNS failure is never a pass. When the policy cannot be looked up, or the
//! message would fail while an SPF or DKIM lookup failed temporarily, the result is
//! `dmarc=temperror`, and `reject` decides with a temporary refusal: `reject 1` answers
//! `452 4.4.3 DMARC - temporary DNS error, try again later`, `reject 0` logs
//! `fail, tolerated` and accepts, `reject naughty` leaves it to the `naughty` plugin. A
//! policy record that cannot be parsed (`dmarc=permerror`) is ignored (`skip`).
//!
//! Relay clients, authenticated users and whitelisted hosts or senders are not checked
//! (`skip: immune`).
//!
//! List it after `sender_permitted_from` and `dkim` in `config/plugins`, so that the
//! Authentication-Results entries come in the usual order (spf, dkim, dmarc), and set those
//! plugins not to refuse on their own (`sender_permitted_from reject 1`, `dkim reject 0`):
//! DMARC is the better judge.
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
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! They apply to messages that fail a `quarantine` or `reject` policy. A temporary DNS
//! failure is always refused temporarily (`temp`, or `temp_disconnect` when `reject_type`
//! is `disconnect` or `temp_disconnect`).
//!
//! ## reporting *0|1*
//!
//! Default: `0`. Accepted so that `config/plugins` lines of the Perl plugin load; this
//! plugin neither stores nor sends aggregate reports, whatever the value.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None of its own. The DNS servers and the time each query may take are the core's
//! `dns_servers` and `dns_timeout`.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The Perl plugin used Mail::DMARC with the notes of the SPF and DKIM plugins; this one
//!   verifies DKIM itself (the same way the `dkim` plugin does) and takes SPF from
//!   `sender_permitted_from`, or checks it itself when that plugin is not loaded.
//! - The policy is looked up as DMARCbis does, walking up from the `From:` domain, instead
//!   of jumping to the organizational domain.
//! - A temporary DNS failure defers the message (by `reject`); the Perl plugin let it
//!   through.
//! - A message without a `From:` domain is exempt (`skip`). The Perl plugin tried to refuse
//!   it in a hook whose verdict the server ignored, so it got through as well.
//! - Whitelisted hosts and senders are skipped like relay clients; the Perl plugin checked
//!   them but did not refuse them.
//! - No aggregate reports (`reporting` is accepted and ignored).
//!
//! # SEE ALSO
//!
//! qpsmtpd-sender_permitted_from(7), qpsmtpd-dkim(7), qpsmtpd-naughty(7),
//! qpsmtpd-karma(7), qpsmtpd-plugins(7), RFC 7489, RFC 8601

use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, SpfOutput, SpfResult};
use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::dns::{DnsError, Query};
use qpsmtpd_core::header::clean_header_text;
use qpsmtpd_core::protocol::address::is_domain;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Level, Plugin, PluginSpec, Registration, Reject, RejectMode,
    RejectType, Setup, Verdict,
};
use std::io::Read;

pub const SPEC: PluginSpec = PluginSpec {
    name: "dmarc",
    factory: new,
    args: &["reject", "reject_type", "reporting"],
    rejects: true,
    example: "reject 1 reject_type perm",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    args.flag("reporting", false).map_err(|e| setup.error(e))?;
    Ok(Box::new(DmarcPlugin {
        reject: setup.reject(&args, RejectMode::On, RejectType::Perm)?,
    }))
}

/// What the dmarc plugin found about the `From:` domain's policy, left in the transaction
/// (`sender_permitted_from`'s `no_dmarc_policy` reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DmarcFinding {
    /// The domain publishes no DMARC policy.
    NoPolicy,
    /// It does (whatever the policy and the outcome).
    Policy,
}

/// The refusal `data_post` is to make, decided in `data_post_headers`.
#[derive(Clone, Debug)]
enum Pending {
    /// The message failed a quarantine or reject policy.
    Refuse { log: String },
    /// DNS failed where the outcome depended on it.
    Defer { log: String },
}

/// The SMTP text of a refusal (the Perl plugin's words).
const REFUSED: &str = "failed DMARC policy";
/// The SMTP text of a deferral for a DNS failure.
const DEFERRED: &str = "4.4.3 DMARC - temporary DNS error, try again later";

struct DmarcPlugin {
    reject: Reject,
}

impl Plugin for DmarcPlugin {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::DataPostHeaders.into(), Hook::DataPost.into()]
    }

    fn data_post_headers(&self, cx: &mut Context<'_>) -> Verdict {
        if let Some(why) = immunity(cx) {
            cx.skip(format!("immune: {why}"));
            return Verdict::Declined;
        }
        match self.evaluate(cx) {
            Ok(Outcome::Done) => {}
            Ok(Outcome::Refuse(log)) => {
                cx.log(Level::Debug, format!("{log}; refusing at data_post"));
                cx.transaction_mut().set_extension(Pending::Refuse { log });
            }
            Err(log) => {
                cx.log(Level::Debug, format!("{log}; deferring at data_post"));
                cx.transaction_mut().set_extension(Pending::Defer { log });
            }
        }
        Verdict::Declined
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        match cx.transaction().extension::<Pending>().cloned() {
            None => Verdict::Declined,
            Some(Pending::Refuse { log }) => self.reject.apply(cx, REFUSED, &log),
            Some(Pending::Defer { log }) => {
                let kind = match self.reject.kind {
                    RejectType::Disconnect | RejectType::TempDisconnect => {
                        RejectType::TempDisconnect
                    }
                    _ => RejectType::Temp,
                };
                Reject {
                    mode: self.reject.mode,
                    kind,
                }
                .apply(cx, DEFERRED, &log)
            }
        }
    }
}

/// How the evaluation ended (a temporary failure is the `Err`, with its log line).
enum Outcome {
    /// Logged and recorded; nothing to do at data_post.
    Done,
    /// Refuse at data_post (`Reject::apply` logs this line then).
    Refuse(String),
}

impl DmarcPlugin {
    fn evaluate(&self, cx: &mut Context<'_>) -> Result<Outcome, String> {
        // The message as it went over the wire (CRLF), for DKIM.
        let mut raw = Vec::new();
        if let Err(e) = cx
            .transaction_mut()
            .message_reader()
            .and_then(|mut r| r.read_to_end(&mut raw))
        {
            cx.error(format!("cannot read the message: {e}"));
            return Ok(Outcome::Done);
        }
        let raw = crlf(&raw);
        let Some(message) = AuthenticatedMessage::parse(&raw) else {
            cx.skip("no header to check");
            return Ok(Outcome::Done);
        };
        let mut domains: Vec<&str> = message
            .from
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let from_domain = match domains[..] {
            [] => {
                cx.skip("no From address with a domain");
                return Ok(Outcome::Done);
            }
            [one] if is_domain(one) && one.contains('.') => one.to_string(),
            [one] => {
                cx.skip(format!(
                    "From domain {} is not a domain name",
                    clean_header_text(one)
                ));
                return Ok(Outcome::Done);
            }
            _ => {
                cx.skip(format!(
                    "From names {} domains ({}), exempt",
                    domains.len(),
                    clean_header_text(&domains.join(", "))
                ));
                return Ok(Outcome::Done);
            }
        };
        let dns = match cx.dns() {
            Ok(dns) => dns,
            Err(e) => return Err(self.temperror(cx, &from_domain, &format!("no resolver: {e}"))),
        };
        let auth = dns.authenticator();

        // SPF: sender_permitted_from's result, or our own check.
        let spf = match cx.transaction().extension::<SpfOutput>() {
            Some(spf) => spf.clone(),
            None => {
                let ip = strip_mapped(cx.connection().remote_ip());
                let helo = cx.connection().hello_host.clone().unwrap_or_default();
                let me = cx.core().me.clone();
                let sender = cx
                    .transaction()
                    .sender
                    .as_ref()
                    .filter(|s| !s.is_null())
                    .map(|s| s.address());
                let params = match &sender {
                    Some(from) => SpfParameters::verify_mail_from(ip, &helo, &me, from),
                    None => SpfParameters::verify_ehlo(ip, &helo, &me),
                };
                dns.block_on(auth.verify_spf(params))
            }
        };
        let mail_from_domain = spf.domain().to_ascii_lowercase();

        let dkim = dns.block_on(auth.verify_dkim(&message));
        for d in &dkim {
            cx.log(
                Level::Debug,
                format!(
                    "DKIM d={}: {}",
                    d.signature().map(|s| s.d.as_str()).unwrap_or("?"),
                    d.result()
                ),
            );
        }
        let params = DmarcParameters::new(&message, &dkim, &mail_from_domain, &spf)
            .with_domain_suffix_fn(organizational_domain);
        let output = dns.block_on(auth.verify_dmarc(params));
        cx.log(
            Level::Debug,
            format!(
                "SPF {} for {mail_from_domain}: aligned {}; DKIM aligned {}",
                crate::sender_permitted_from::result_name(spf.result()),
                output.spf_result(),
                output.dkim_result()
            ),
        );

        let record = match (output.dmarc_record(), output.spf_result()) {
            (_, DmarcResult::TempError(e)) => {
                return Err(self.temperror(cx, &from_domain, &format!("policy lookup: {e}")));
            }
            (_, DmarcResult::PermError(e)) => {
                cx.add_auth_result(&format!("dmarc=permerror header.from={from_domain}"));
                cx.skip(format!(
                    "permerror, the DMARC record of {from_domain} is invalid: {e}"
                ));
                return Ok(Outcome::Done);
            }
            (None, _) => {
                cx.transaction_mut().set_extension(DmarcFinding::NoPolicy);
                cx.add_auth_result(&format!("dmarc=none header.from={from_domain}"));
                cx.skip(format!("no DMARC policy for {from_domain}"));
                return Ok(Outcome::Done);
            }
            (Some(record), _) => record.clone(),
        };
        cx.transaction_mut().set_extension(DmarcFinding::Policy);

        // p= for the domain that published the record, sp= for its subdomains.
        let own = match own_record(cx, &from_domain) {
            Ok(own) => own,
            Err(e) => return Err(self.temperror(cx, &from_domain, &format!("policy lookup: {e}"))),
        };
        let policy = if own { record.p } else { record.sp };
        let p = policy_name(policy);

        let passed_by = match (output.spf_result(), output.dkim_result()) {
            (_, DmarcResult::Pass) => Some("DKIM"),
            (DmarcResult::Pass, _) => Some("SPF"),
            _ => None,
        };
        if let Some(by) = passed_by {
            cx.add_auth_result(&format!(
                "dmarc=pass (p={p} dis=none) header.from={from_domain}"
            ));
            cx.pass(format!("{from_domain}, aligned {by} (p={p})"));
            return Ok(Outcome::Done);
        }

        let why = failure_reason(&spf, &mail_from_domain, &dkim);
        let enforced = matches!(policy, Policy::Quarantine | Policy::Reject);
        let sampled = record.pct >= 100 || fastrand::u8(0..100) < record.pct;
        let dns_trouble = spf.result() == SpfResult::TempError
            || dkim
                .iter()
                .any(|d| matches!(d.result(), DkimResult::TempError(_)));
        if enforced && sampled && dns_trouble {
            return Err(self.temperror(
                cx,
                &from_domain,
                &format!("fails p={p}, but SPF or DKIM had a temporary DNS error ({why})"),
            ));
        }
        if !enforced || !sampled {
            cx.add_auth_result(&format!(
                "dmarc=fail (p={p} dis=none) header.from={from_domain}"
            ));
            let reason = if enforced {
                format!("not in the sampled {}%", record.pct)
            } else {
                "policy none".to_string()
            };
            cx.log(
                Level::Info,
                format!("fail, tolerated: {from_domain}, {why} (p={p}, {reason})"),
            );
            return Ok(Outcome::Done);
        }
        let dis = match self.reject.mode {
            RejectMode::Off => "none",
            RejectMode::On | RejectMode::Naughty => "reject",
        };
        cx.add_auth_result(&format!(
            "dmarc=fail (p={p} dis={dis}) header.from={from_domain}"
        ));
        cx.adjust_karma(-3);
        Ok(Outcome::Refuse(format!("{from_domain}, {why} (p={p})")))
    }

    /// Records a temperror; the returned line is logged when the refusal is made.
    fn temperror(&self, cx: &mut Context<'_>, from_domain: &str, detail: &str) -> String {
        cx.add_auth_result(&format!("dmarc=temperror header.from={from_domain}"));
        format!("temperror, {from_domain}: {detail}")
    }
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

/// The organizational domain (RFC 7489 §3.2) by the public suffix list.
fn organizational_domain(domain: &str) -> &str {
    psl::domain_str(domain).unwrap_or(domain)
}

/// Whether `_dmarc.<domain>` itself holds a DMARC record (else the record found is a
/// parent's, and `sp=` applies).
fn own_record(cx: &mut Context<'_>, domain: &str) -> Result<bool, DnsError> {
    match cx.resolve(&Query::Txt(format!("_dmarc.{domain}"))) {
        Ok(answer) => Ok(answer.texts().iter().any(|t| {
            t.trim_start()
                .get(..8)
                .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
        })),
        Err(DnsError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

/// A short account of why neither SPF nor DKIM made the message pass.
fn failure_reason(
    spf: &SpfOutput,
    mail_from_domain: &str,
    dkim: &[mail_auth::DkimOutput],
) -> String {
    let spf = match spf.result() {
        SpfResult::Pass => format!("SPF pass for {mail_from_domain} not aligned"),
        r => format!(
            "SPF {} for {mail_from_domain}",
            crate::sender_permitted_from::result_name(r)
        ),
    };
    let passed: Vec<&str> = dkim
        .iter()
        .filter(|d| *d.result() == DkimResult::Pass)
        .filter_map(|d| d.signature().map(|s| s.d.as_str()))
        .collect();
    let dkim = if passed.is_empty() {
        match dkim.len() {
            0 => "no DKIM signature".to_string(),
            n => format!("no valid DKIM signature of {n}"),
        }
    } else {
        format!("DKIM pass for {} not aligned", passed.join(", "))
    };
    clean_header_text(&format!("{spf}, {dkim}"))
}

/// LF line ends to CRLF (the spool keeps LF; DKIM signs CRLF).
fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 32);
    let mut prev = 0u8;
    for &b in lf {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer, TestSession};
    use std::sync::{Arc, Mutex};

    /// A queue that keeps every message it is given.
    #[derive(Clone, Default)]
    struct Queue(Arc<Mutex<Vec<String>>>);

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

    struct Env {
        server: TestServer,
        log: LogCapture,
        queue: Queue,
    }

    impl Env {
        fn new(h: Harness, plugins: &str) -> Env {
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
            Env { server, log, queue }
        }

        fn session(&self, ip: &str) -> TestSession {
            let mut t = self
                .server
                .session_from(ConnectionInfo::from_ip(ip.parse().unwrap()));
            assert!(t.connect().starts_with("220 "));
            assert!(t.command("EHLO client.example").starts_with("250"));
            t
        }

        /// Sends a message from `ip`; returns the reply to it.
        fn send(&self, ip: &str, mail_from: &str, message: &str) -> String {
            self.session(ip)
                .mail(mail_from, &["u@example.com"], message)
        }

        fn last(&self) -> String {
            self.queue
                .0
                .lock()
                .unwrap()
                .last()
                .cloned()
                .unwrap_or_default()
        }

        /// The Authentication-Results entries of the last queued message (without ours).
        fn dmarc_entry(&self) -> String {
            let m = self.last();
            m.split(";\n\t")
                .find(|e| e.starts_with("dmarc="))
                .map(|e| e.split('\n').next().unwrap().to_string())
                .unwrap_or_default()
        }

        fn summary(&self) -> Vec<String> {
            crate::test_support::summary(&self.log, "dmarc")
        }
    }

    const OK: &str = "250 2.0.0 Queued!\r\n";
    const REFUSED_REPLY: &str = "552 5.7.1 failed DMARC policy\r\n";
    /// Permitted by the SPF records of every fixture domain.
    const GOOD_IP: &str = "192.0.2.1";

    fn message(from: &str) -> String {
        format!("From: Someone <{from}>\r\nTo: <u@example.com>\r\nSubject: dmarc\r\n\r\nhello\r\n")
    }

    fn spf_and_dmarc(dns: &DnsServer, dmarc_args: &str) -> Env {
        Env::new(
            Harness::new().dns(dns),
            &format!("sender_permitted_from\ndmarc {dmarc_args}"),
        )
    }

    #[test]
    fn aligned_spf_passes() {
        let dns = DnsServer::start();
        let env = spf_and_dmarc(&dns, "");
        assert_eq!(
            env.send(
                GOOD_IP,
                "a@reject.dmarc.test",
                &message("a@reject.dmarc.test")
            ),
            OK
        );
        assert_eq!(
            env.dmarc_entry(),
            "dmarc=pass (p=reject dis=none) header.from=reject.dmarc.test"
        );
        // Relaxed alignment: same organizational domain.
        assert_eq!(
            env.send(
                GOOD_IP,
                "b@mail.reject.dmarc.test",
                &message("a@reject.dmarc.test")
            ),
            OK
        );
        assert_eq!(
            env.summary(),
            [
                "INFO pass: reject.dmarc.test, aligned SPF (p=reject)",
                "INFO pass: reject.dmarc.test, aligned SPF (p=reject)",
            ]
        );
    }

    #[test]
    fn misaligned_spf_fails_the_policy() {
        let dns = DnsServer::start();
        let env = spf_and_dmarc(&dns, "");
        // SPF passes for pass.spf.test, which is another organization.
        assert_eq!(
            env.send(
                GOOD_IP,
                "a@pass.spf.test",
                &message("ceo@reject.dmarc.test")
            ),
            REFUSED_REPLY
        );
        // Strict alignment wants the very domain.
        assert_eq!(
            env.send(
                GOOD_IP,
                "b@mail.strict.dmarc.test",
                &message("a@strict.dmarc.test")
            ),
            REFUSED_REPLY
        );
        // quarantine is refused too.
        assert_eq!(
            env.send(
                GOOD_IP,
                "a@pass.spf.test",
                &message("a@quarantine.dmarc.test")
            ),
            REFUSED_REPLY
        );
        // A stranger using the domain itself: SPF fails.
        assert_eq!(
            env.send(
                "198.51.100.1",
                "a@reject.dmarc.test",
                &message("a@reject.dmarc.test")
            ),
            REFUSED_REPLY
        );
        assert_eq!(
            env.summary(),
            [
                "INFO fail: reject.dmarc.test, SPF pass for pass.spf.test not aligned, no DKIM signature (p=reject)",
                "INFO fail: strict.dmarc.test, SPF pass for mail.strict.dmarc.test not aligned, no DKIM signature (p=reject)",
                "INFO fail: quarantine.dmarc.test, SPF pass for pass.spf.test not aligned, no DKIM signature (p=quarantine)",
                "INFO fail: reject.dmarc.test, SPF fail for reject.dmarc.test, no DKIM signature (p=reject)",
            ]
        );
    }

    #[test]
    fn reject_0_and_naughty_let_the_message_in() {
        let dns = DnsServer::start();
        let env = spf_and_dmarc(&dns, "reject 0");
        let msg = message("ceo@reject.dmarc.test");
        assert_eq!(env.send(GOOD_IP, "a@pass.spf.test", &msg), OK);
        assert_eq!(
            env.dmarc_entry(),
            "dmarc=fail (p=reject dis=none) header.from=reject.dmarc.test"
        );
        assert_eq!(
            env.summary(),
            [
                "INFO fail, tolerated: reject.dmarc.test, SPF pass for pass.spf.test not aligned, no DKIM signature (p=reject)"
            ]
        );

        let env = spf_and_dmarc(&dns, "reject naughty");
        let mut t = env.session(GOOD_IP);
        assert_eq!(t.mail("a@pass.spf.test", &["u@example.com"], &msg), OK);
        assert_eq!(
            t.session.connection().notes.get_str("naughty"),
            Some("(dmarc) failed DMARC policy")
        );
        assert_eq!(
            env.dmarc_entry(),
            "dmarc=fail (p=reject dis=reject) header.from=reject.dmarc.test"
        );
    }

    #[test]
    fn p_none_and_sp() {
        let dns = DnsServer::start();
        let env = spf_and_dmarc(&dns, "");
        assert_eq!(
            env.send(GOOD_IP, "a@pass.spf.test", &message("a@none.dmarc.test")),
            OK
        );
        assert_eq!(
            env.dmarc_entry(),
            "dmarc=fail (p=none dis=none) header.from=none.dmarc.test"
        );
        // sp.dmarc.test: p=none for itself, sp=reject for its subdomains.
        assert_eq!(
            env.send(GOOD_IP, "a@pass.spf.test", &message("a@sp.dmarc.test")),
            OK
        );
        assert_eq!(
            env.send(GOOD_IP, "a@pass.spf.test", &message("a@sub.sp.dmarc.test")),
            REFUSED_REPLY
        );
        assert_eq!(
            env.summary(),
            [
                "INFO fail, tolerated: none.dmarc.test, SPF pass for pass.spf.test not aligned, no DKIM signature (p=none, policy none)",
                "INFO fail, tolerated: sp.dmarc.test, SPF pass for pass.spf.test not aligned, no DKIM signature (p=none, policy none)",
                "INFO fail: sub.sp.dmarc.test, SPF pass for pass.spf.test not aligned, no DKIM signature (p=reject)",
            ]
        );
    }

    #[test]
    fn pct_samples_the_messages_the_policy_applies_to() {
        let dns = DnsServer::start();
        let env = spf_and_dmarc(&dns, "");
        for _ in 0..5 {
            assert_eq!(
                env.send(GOOD_IP, "a@pass.spf.test", &message("a@pct0.dmarc.test")),
                OK
            );
            assert_eq!(
                env.send(GOOD_IP, "a@pass.spf.test", &message("a@pct100.dmarc.test")),
                REFUSED_REPLY
            );
        }
        assert!(
            env.summary()[0].ends_with("(p=reject, not in the sampled 0%)"),
            "{:?}",
            env.summary()
        );
    }

    #[test]
    fn no_policy_is_a_skip() {
        let dns = DnsServer::start();
        let env = spf_and_dmarc(&dns, "");
        assert_eq!(
            env.send(
                "198.51.100.1",
                "a@nopolicy.dmarc.test",
                &message("a@nopolicy.dmarc.test")
            ),
            OK
        );
        assert_eq!(
            env.dmarc_entry(),
            "dmarc=none header.from=nopolicy.dmarc.test"
        );
        assert_eq!(
            env.summary(),
            ["INFO skip: no DMARC policy for nopolicy.dmarc.test"]
        );
    }

    /// `message` signed by `d=domain; s=rsa` with the fixture key, as sent over the wire.
    fn signed(domain: &str, message: &str) -> String {
        use mail_auth::common::crypto::{RsaKey, Sha256};
        use mail_auth::common::headers::HeaderWriter;
        use mail_auth::dkim::DkimSigner;
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/dns/keys/rsa2048.pem"
        ))
        .unwrap();
        let key = RsaKey::<Sha256>::from_pkcs8_pem(&pem).unwrap();
        // The server receives the message with the CRLF that precedes the final dot.
        let wire = format!("{message}\r\n");
        let signature = DkimSigner::from_key(key)
            .domain(domain)
            .selector("rsa")
            .headers(["From", "To", "Subject"])
            .sign(wire.as_bytes())
            .unwrap();
        format!("{}{message}", signature.to_header())
    }

    #[test]
    fn an_aligned_dkim_signature_passes_where_spf_does_not() {
        let dns = DnsServer::start();
        let env = spf_and_dmarc(&dns, "");
        let msg = signed("reject.dmarc.test", &message("a@reject.dmarc.test"));
        assert_eq!(env.send(GOOD_IP, "a@pass.spf.test", &msg), OK);
        assert_eq!(
            env.dmarc_entry(),
            "dmarc=pass (p=reject dis=none) header.from=reject.dmarc.test"
        );
        // Relaxed DKIM alignment: d=dmarc.test for reject.dmarc.test.
        let msg = signed("dmarc.test", &message("a@reject.dmarc.test"));
        assert_eq!(env.send("198.51.100.1", "a@fail.spf.test", &msg), OK);
        // Strict DKIM alignment refuses the parent domain's signature.
        let msg = signed("dmarc.test", &message("a@strict.dmarc.test"));
        assert_eq!(env.send(GOOD_IP, "a@pass.spf.test", &msg), REFUSED_REPLY);
        // A signature broken on the way is no pass.
        let msg =
            signed("reject.dmarc.test", &message("a@reject.dmarc.test")).replace("hello", "HELLO");
        assert_eq!(env.send(GOOD_IP, "a@pass.spf.test", &msg), REFUSED_REPLY);
        assert_eq!(
            env.summary(),
            [
                "INFO pass: reject.dmarc.test, aligned DKIM (p=reject)",
                "INFO pass: reject.dmarc.test, aligned DKIM (p=reject)",
                "INFO fail: strict.dmarc.test, SPF pass for pass.spf.test not aligned, DKIM pass for dmarc.test not aligned (p=reject)",
                "INFO fail: reject.dmarc.test, SPF pass for pass.spf.test not aligned, no valid DKIM signature of 1 (p=reject)",
            ]
        );
    }

    #[test]
    fn checks_spf_itself_without_sender_permitted_from() {
        let dns = DnsServer::start();
        let env = Env::new(Harness::new().dns(&dns), "dmarc");
        assert_eq!(
            env.send(
                GOOD_IP,
                "a@reject.dmarc.test",
                &message("a@reject.dmarc.test")
            ),
            OK
        );
        assert_eq!(
            env.send(
                "198.51.100.1",
                "a@reject.dmarc.test",
                &message("a@reject.dmarc.test")
            ),
            REFUSED_REPLY
        );
        // The null sender: the HELO identity (client.example has no SPF record).
        let mut t = env.session(GOOD_IP);
        assert_eq!(
            t.mail("", &["u@example.com"], &message("a@reject.dmarc.test")),
            REFUSED_REPLY
        );
        assert_eq!(
            env.summary()[2],
            "INFO fail: reject.dmarc.test, SPF none for client.example, no DKIM signature (p=reject)"
        );
    }

    #[test]
    fn a_dns_server_that_never_answers_defers() {
        let silent = qpsmtpd_core::testing::SilentDns::start();
        let hole = || Harness::new().silent_dns(&silent, "0.3");
        let env = Env::new(hole(), "dmarc");
        let msg = message("a@reject.dmarc.test");
        assert_eq!(
            env.send(GOOD_IP, "a@reject.dmarc.test", &msg),
            "452 4.4.3 DMARC - temporary DNS error, try again later\r\n"
        );
        let summary = env.summary();
        assert_eq!(summary.len(), 1);
        assert!(
            summary[0].starts_with("INFO fail: temperror, reject.dmarc.test: policy lookup: "),
            "{summary:?}"
        );

        let env = Env::new(hole(), "dmarc reject 0");
        assert_eq!(env.send(GOOD_IP, "a@reject.dmarc.test", &msg), OK);
        assert_eq!(
            env.dmarc_entry(),
            "dmarc=temperror header.from=reject.dmarc.test"
        );
        assert!(env.summary()[0].starts_with("INFO fail, tolerated: temperror, "));

        let env = Env::new(hole(), "dmarc reject_type disconnect");
        let mut t = env.session(GOOD_IP);
        assert_eq!(
            t.mail("a@reject.dmarc.test", &["u@example.com"], &msg),
            "421 4.4.3 DMARC - temporary DNS error, try again later\r\n"
        );
        assert!(t.is_closed());
        drop(silent);
    }

    #[test]
    fn immune_clients_and_exempt_messages_are_skipped() {
        let dns = DnsServer::start();
        let env = Env::new(
            Harness::new()
                .dns(&dns)
                .file("relayclients", "198.51.100.5"),
            "relay\ndmarc",
        );
        let mut t = env.session("198.51.100.5");
        assert_eq!(
            t.mail(
                "a@pass.spf.test",
                &["u@elsewhere.example"],
                &message("a@reject.dmarc.test")
            ),
            OK
        );
        assert!(!env.last().contains("dmarc="));
        // Several From domains, or none: exempt (RFC 7489 section 6.6.1).
        let two = "From: a@reject.dmarc.test, b@pass.spf.test\r\nSubject: x\r\n\r\nhi\r\n";
        assert_eq!(env.send(GOOD_IP, "a@pass.spf.test", two), OK);
        assert_eq!(
            env.send(GOOD_IP, "a@pass.spf.test", "Subject: x\r\n\r\nhi\r\n"),
            OK
        );
        assert_eq!(
            env.summary(),
            [
                "INFO skip: immune: relay client",
                "INFO skip: From names 2 domains (pass.spf.test, reject.dmarc.test), exempt",
                "INFO skip: no From address with a domain",
            ]
        );
    }

    #[test]
    fn bad_arguments_are_refused_at_load_time() {
        for line in [
            "dmarc reject maybe",
            "dmarc reject_type later",
            "dmarc reporting sometimes",
            "dmarc bogus_arg 1",
            "dmarc reject",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: dmarc: "), "{line}: {err}");
        }
    }

    #[test]
    fn organizational_domains() {
        assert_eq!(organizational_domain("a.b.dmarc.test"), "dmarc.test");
        assert_eq!(organizational_domain("mail.example.co.uk"), "example.co.uk");
        assert_eq!(organizational_domain("example.com"), "example.com");
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
