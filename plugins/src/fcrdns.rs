//! # NAME
//!
//! fcrdns - check that the client's reverse DNS is forward-confirmed
//!
//! # DESCRIPTION
//!
//! Forward-confirmed reverse DNS (FCrDNS, called *iprev* in RFC 8601): when a client
//! connects, the plugin looks up the names of its address (PTR records), then the
//! addresses of each of those names (A records for an IPv4 client, AAAA for an IPv6 one,
//! all names at once). The check passes when one of the names leads back to the client's
//! own address.
//!
//! A zombie PC's reverse DNS is in its ISP's hands, not the spammer's, so the names of
//! such hosts rarely confirm, while a mail server is expected to have matching forward and
//! reverse DNS. A failure alone is weak evidence, though (RFC 8601 warns against
//! rejecting on it), so by default the plugin only records its verdict for the others:
//!
//! - the line `iprev=pass policy.iprev=192.0.2.10 (mail.example.net)` in the
//!   Authentication-Results header of every message of the connection, with the result
//!   `pass`, `fail` (the names do not lead back), `permerror` (the address has no name) or
//!   `temperror` (a DNS failure);
//! - the connection note `fcrdns` (`pass`, `fail` or `temperror`), the note `fcrdns_names`
//!   (the list of PTR names) and, on a pass, `fcrdns_host` (the confirmed name);
//! - the karma score: +1 for a pass, -1 for a fail or a permerror.
//!
//! Clients on a loopback address (127.0.0.0/8, ::1) pass without a lookup. Relay clients
//! and whitelisted hosts (see qpsmtpd-relay(7), qpsmtpd-whitelist(7), loaded before this
//! plugin) are skipped. At most 10 PTR names are followed. Each connection logs one line:
//! `pass: 192.0.2.10 is good.hosts.test`, `fail: ...`, `skip: ...`.
//!
//! A temporary DNS failure (a timeout, SERVFAIL) never counts as a pass: it is recorded
//! as `temperror`, and it follows the `reject` setting like a failed check, except that
//! the rejection is always temporary (450, whatever `reject_type` says; a deferred
//! `naughty` rejection is stored as temporary too), so that a client is never refused for
//! good because of our DNS.
//!
//! # CONFIGURATION
//!
//! ## reject *0|1|naughty*
//!
//! Default: `0`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `temp`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! The check runs at connect, where every rejection closes the connection: a client that
//! fails hears `450 4.7.25 Reverse DNS validation failed for 192.0.2.11` (`550 5.7.25 ...`
//! with `perm`) and is disconnected; after a DNS failure it hears
//! `450 4.4.3 Temporary DNS failure checking 192.0.2.11, try again later`.
//!
//! ## timeout *SECONDS*
//!
//! Default: the `dns_timeout` control file (5 seconds when it is not set). How long to
//! wait for the PTR answer, and then again for the forward answers; decimals are allowed
//! (`0.5`).
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None of its own. The nameservers are those of `dns_servers` (or `/etc/resolv.conf`).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The Perl plugin stopped at its localhost test for every client not on loopback, so in
//!   practice it never looked anything up; here every client is checked.
//! - Only the client's exact address confirms a name. The Perl plugin also accepted any
//!   address in the same /24 network, which is not forward confirmation and would have
//!   made the `iprev=pass` it wrote untrue.
//! - The names are looked up concurrently, only for the client's address family, and
//!   names that are not valid host names are ignored.
//! - The Perl plugin read `reject` but never rejected, and forced `reject_type` to `temp`;
//!   here both work as in every other plugin (`temp` stays the default).
//! - The Authentication-Results entry names the client's address (`policy.iprev`) as
//!   RFC 8601 asks, and there is one entry per connection, not one per check.
//!
//! # SEE ALSO
//!
//! qpsmtpd-helo(7), qpsmtpd-naughty(7), qpsmtpd-relay(7), qpsmtpd-whitelist(7),
//! qpsmtpd-plugins(7), RFC 8601
//! section 3

use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::dns::{DnsError, Query};
use qpsmtpd_core::protocol::address::is_domain;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Level, Plugin, PluginSpec, Registration, Reject, RejectMode,
    RejectType, Setup, Value, Verdict,
};
use std::net::IpAddr;
use std::time::Duration;

pub const SPEC: PluginSpec = PluginSpec {
    name: "fcrdns",
    factory: new,
    args: &["reject", "reject_type", "timeout"],
    rejects: true,
    example: "reject 0 timeout 2",
};

/// The most PTR names followed for one client.
const MAX_NAMES: usize = 10;

const FAILED: &str = "5.7.25 Reverse DNS validation failed for";
const TEMPORARY: &str = "4.4.3 Temporary DNS failure checking";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    Ok(Box::new(Fcrdns {
        reject: setup.reject(&args, RejectMode::Off, RejectType::Temp)?,
        timeout: args.seconds("timeout").map_err(|e| setup.error(e))?,
    }))
}

struct Fcrdns {
    reject: Reject,
    /// `None`: the server's `dns_timeout`.
    timeout: Option<Duration>,
}

/// The iprev result (RFC 8601 §2.7.3).
#[derive(Debug, PartialEq, Eq)]
enum Iprev {
    /// One of the names leads back to the address.
    Pass { name: String },
    /// The names do not lead back.
    Fail { why: String },
    /// The address has no name.
    PermError { why: String },
    /// The DNS did not answer.
    TempError { why: String },
}

impl Fcrdns {
    fn check(&self, cx: &mut Context<'_>, ip: IpAddr) -> (Iprev, Vec<String>) {
        let ptr = cx.resolve_all(&[Query::Ptr(ip)], self.timeout).remove(0);
        let answer = match ptr {
            Ok(answer) => answer,
            Err(DnsError::NotFound) => {
                let why = format!("{ip} has no PTR record");
                return (Iprev::PermError { why }, Vec::new());
            }
            Err(e) => {
                let why = format!("PTR lookup for {ip}: {e}");
                return (Iprev::TempError { why }, Vec::new());
            }
        };
        let mut names: Vec<String> = Vec::new();
        for name in answer.names() {
            if !is_domain(name) {
                cx.log(
                    Level::Debug,
                    format!("ignoring PTR {name:?}: not a host name"),
                );
            } else if !names.contains(name) && names.len() < MAX_NAMES {
                names.push(name.clone());
            }
        }
        if names.is_empty() {
            let why = format!("no PTR name of {ip} is a host name");
            return (Iprev::Fail { why }, names);
        }
        cx.log(Level::Debug, format!("PTR {ip}: {}", names.join(" ")));
        let queries: Vec<Query> = names
            .iter()
            .map(|n| match ip {
                IpAddr::V4(_) => Query::A(n.clone()),
                IpAddr::V6(_) => Query::Aaaa(n.clone()),
            })
            .collect();
        let answers = cx.resolve_all(&queries, self.timeout);
        let mut trouble = None;
        for (name, answer) in names.iter().zip(&answers) {
            match answer {
                Ok(a) if a.addrs().iter().any(|&x| strip_mapped(x) == ip) => {
                    let name = name.clone();
                    return (Iprev::Pass { name }, names);
                }
                Ok(a) => cx.log(
                    Level::Debug,
                    format!("{name} points to {}, not {ip}", join(a.addrs())),
                ),
                Err(DnsError::NotFound) => {
                    cx.log(Level::Debug, format!("{name} has no address"));
                }
                Err(e) => {
                    cx.log(Level::Debug, format!("lookup of {name}: {e}"));
                    trouble.get_or_insert(format!("lookup of {name}: {e}"));
                }
            }
        }
        // A name that did not answer might have been the one leading back.
        let outcome = match trouble {
            Some(why) => Iprev::TempError { why },
            None => Iprev::Fail {
                why: format!("no name of {ip} ({}) points back to it", names.join(", ")),
            },
        };
        (outcome, names)
    }
}

impl Plugin for Fcrdns {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Connect.into()]
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        let ip = strip_mapped(cx.connection().remote_ip());
        if cx.is_immune() {
            cx.skip(format!("immune: {ip} is a relay client or whitelisted"));
            return Verdict::Declined;
        }
        if ip.is_loopback() {
            cx.connection_mut().notes.set("fcrdns", "pass");
            cx.adjust_karma(1);
            cx.pass(format!("{ip} is a loopback address"));
            return Verdict::Declined;
        }
        let (outcome, names) = self.check(cx, ip);
        let notes = &mut cx.connection_mut().notes;
        if !names.is_empty() {
            let list: Vec<Value> = names.iter().map(|n| Value::from(n.as_str())).collect();
            notes.set("fcrdns_names", list);
        }
        let (result, comment) = match &outcome {
            Iprev::Pass { name } => ("pass", format!(" ({name})")),
            Iprev::Fail { .. } if !names.is_empty() => ("fail", format!(" ({})", names.join(" "))),
            Iprev::Fail { .. } => ("fail", String::new()),
            Iprev::PermError { .. } => ("permerror", String::new()),
            Iprev::TempError { .. } => ("temperror", String::new()),
        };
        cx.add_connection_auth_result(&format!("iprev={result} policy.iprev={ip}{comment}"));
        match outcome {
            Iprev::Pass { name } => {
                let notes = &mut cx.connection_mut().notes;
                notes.set("fcrdns", "pass");
                notes.set("fcrdns_host", name.as_str());
                cx.adjust_karma(1);
                cx.pass(format!("{ip} is {name}"));
                Verdict::Declined
            }
            Iprev::Fail { why } | Iprev::PermError { why } => {
                cx.connection_mut().notes.set("fcrdns", "fail");
                cx.adjust_karma(-1);
                self.reject.apply(cx, &format!("{FAILED} {ip}"), &why)
            }
            Iprev::TempError { why } => {
                cx.connection_mut().notes.set("fcrdns", "temperror");
                let smtp = format!("{TEMPORARY} {ip}, try again later");
                self.reject.temporary().apply(cx, &smtp, &why)
            }
        }
    }
}

/// Addresses for a log line.
pub(crate) fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use qpsmtpd_core::testing::SilentDns;
    use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, TestServer, TestSession};
    use qpsmtpd_core::{ConnectionInfo, Hook, Registration};
    use std::sync::{Arc, Mutex};

    /// A queue plugin that keeps the header of every message it accepts.
    #[derive(Clone, Default)]
    pub(crate) struct KeepHeaders(pub(crate) Arc<Mutex<Vec<qpsmtpd_core::Header>>>);

    impl Plugin for KeepHeaders {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Queue.into()]
        }
        fn queue(&self, cx: &mut Context<'_>) -> Verdict {
            let header = cx.transaction().header.clone();
            self.0.lock().unwrap().push(header);
            Verdict::ok_with("Queued")
        }
    }

    pub(crate) fn from(ip: &str) -> ConnectionInfo {
        ConnectionInfo::from_ip(ip.parse().unwrap())
    }

    fn start(dns: &DnsServer, plugins: &str) -> (TestServer, LogCapture, KeepHeaders) {
        let log = LogCapture::default();
        let queue = KeepHeaders::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .dns(dns)
            .file("rcpthosts", "example.com")
            .file("plugins", plugins)
            .plugin("capture", log.clone())
            .plugin("keep", queue.clone())
            .build()
            .unwrap();
        (server, log, queue)
    }

    fn summary(log: &LogCapture) -> Vec<String> {
        crate::test_support::summary(log, "fcrdns")
    }

    /// Connects from `ip`, sends one message; returns the banner and the
    /// Authentication-Results header of the message.
    fn deliver(server: &TestServer, queue: &KeepHeaders, ip: &str) -> (String, String) {
        let mut s = server.session_from(from(ip));
        let banner = s.connect();
        s.command("EHLO client.example");
        let reply = s.mail("a@example.org", &["b@example.com"], "Subject: x\r\n\r\nhi");
        assert_eq!(reply, "250 2.0.0 Queued\r\n");
        let header = queue.0.lock().unwrap().pop().unwrap();
        (banner, header.get("Authentication-Results").unwrap())
    }

    fn notes(s: &TestSession) -> (Option<String>, Option<String>) {
        let n = &s.session.connection().notes;
        (
            n.get_str("fcrdns").map(String::from),
            n.get_str("fcrdns_host").map(String::from),
        )
    }

    #[test]
    fn confirmed_names_pass_and_others_fail() {
        let dns = DnsServer::start();
        let (server, log, queue) = start(&dns, "fcrdns\nrcpt_ok");
        let cases = [
            (
                "192.0.2.10",
                "iprev=pass policy.iprev=192.0.2.10 (good.hosts.test)",
                "INFO pass: 192.0.2.10 is good.hosts.test",
            ),
            (
                "2001:db8::10",
                "iprev=pass policy.iprev=2001:db8::10 (good.hosts.test)",
                "INFO pass: 2001:db8::10 is good.hosts.test",
            ),
            (
                "192.0.2.13",
                "iprev=pass policy.iprev=192.0.2.13 (two.hosts.test)",
                "INFO pass: 192.0.2.13 is two.hosts.test",
            ),
            (
                "192.0.2.11",
                "iprev=fail policy.iprev=192.0.2.11 (liar.hosts.test)",
                "INFO fail, tolerated: no name of 192.0.2.11 (liar.hosts.test) points back to it",
            ),
            (
                "192.0.2.12",
                "iprev=fail policy.iprev=192.0.2.12 (gone.hosts.test)",
                "INFO fail, tolerated: no name of 192.0.2.12 (gone.hosts.test) points back to it",
            ),
            (
                "192.0.2.14",
                "iprev=permerror policy.iprev=192.0.2.14",
                "INFO fail, tolerated: 192.0.2.14 has no PTR record",
            ),
            (
                "2001:db8::14",
                "iprev=permerror policy.iprev=2001:db8::14",
                "INFO fail, tolerated: 2001:db8::14 has no PTR record",
            ),
        ];
        for (ip, iprev, line) in cases {
            let (banner, ar) = deliver(&server, &queue, ip);
            assert!(banner.starts_with("220 "), "{ip}: {banner}");
            assert_eq!(ar, format!("test.example; auth=none; {iprev}"), "{ip}");
            assert_eq!(summary(&log).last().unwrap(), line, "{ip}");
        }
        assert_eq!(summary(&log).len(), cases.len());
    }

    #[test]
    fn notes_and_karma() {
        let dns = DnsServer::start();
        let (server, _, _) = start(&dns, "fcrdns");
        let mut s = server.session_from(from("192.0.2.13"));
        s.connect();
        assert_eq!(
            notes(&s),
            (Some("pass".into()), Some("two.hosts.test".into()))
        );
        let n = &s.session.connection().notes;
        assert_eq!(n.get_int("karma"), Some(1));
        let names: Vec<&str> = n
            .get("fcrdns_names")
            .and_then(|v| v.as_list())
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"one.hosts.test") && names.contains(&"two.hosts.test"));

        let mut s = server.session_from(from("192.0.2.14"));
        s.connect();
        assert_eq!(notes(&s), (Some("fail".into()), None));
        assert_eq!(s.session.connection().notes.get_int("karma"), Some(-1));
    }

    #[test]
    fn reject_refuses_at_connect() {
        let dns = DnsServer::start();
        let (server, log, _) = start(&dns, "fcrdns reject 1");
        let mut s = server.session_from(from("192.0.2.11"));
        assert_eq!(
            s.connect(),
            "450 4.7.25 Reverse DNS validation failed for 192.0.2.11\r\n"
        );
        assert!(s.is_closed());
        let mut s = server.session_from(from("192.0.2.10"));
        assert!(s.connect().starts_with("220 "));
        assert_eq!(
            summary(&log),
            [
                "INFO fail: no name of 192.0.2.11 (liar.hosts.test) points back to it",
                "INFO pass: 192.0.2.10 is good.hosts.test",
            ]
        );

        let (server, _, _) = server_perm(&dns);
        let mut s = server.session_from(from("192.0.2.14"));
        assert_eq!(
            s.connect(),
            "550 5.7.25 Reverse DNS validation failed for 192.0.2.14\r\n"
        );
    }

    fn server_perm(dns: &DnsServer) -> (TestServer, LogCapture, KeepHeaders) {
        start(dns, "fcrdns reject 1 reject_type perm")
    }

    #[test]
    fn naughty_defers_the_rejection() {
        let dns = DnsServer::start();
        let (server, log, _) = start(&dns, "fcrdns reject naughty");
        let mut s = server.session_from(from("192.0.2.12"));
        assert!(s.connect().starts_with("220 "));
        assert_eq!(
            s.session.connection().notes.get_str("naughty"),
            Some("5.7.25 (fcrdns) Reverse DNS validation failed for 192.0.2.12")
        );
        assert_eq!(
            summary(&log),
            ["INFO fail, naughty: no name of 192.0.2.12 (gone.hosts.test) points back to it"]
        );
    }

    #[test]
    fn loopback_and_immune_clients_need_no_lookup() {
        // No DNS server at all: a lookup would fail.
        let dead = SilentDns::start();
        let log = LogCapture::default();
        let server = Harness::new()
            .silent_dns(&dead, "0.2")
            .catalogue(crate::CATALOGUE)
            .file("relayclients", "192.0.2.0/24")
            .file("plugins", "relay\nfcrdns reject 1")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        // (relay makes ::1 a relay client.)
        for ip in ["127.0.0.1", "::1", "192.0.2.14"] {
            let mut s = server.session_from(from(ip));
            assert!(s.connect().starts_with("220 "), "{ip}");
        }
        assert_eq!(
            summary(&log),
            [
                "INFO pass: 127.0.0.1 is a loopback address",
                "INFO skip: immune: ::1 is a relay client or whitelisted",
                "INFO skip: immune: 192.0.2.14 is a relay client or whitelisted",
            ]
        );
    }

    #[test]
    fn a_dns_server_that_never_answers_is_no_pass() {
        let dead = SilentDns::start();
        let build = |plugins: &str| crate::test_support::start_silent(&dead, "5", plugins);
        // The plugin's own timeout wins over dns_timeout.
        let (server, log) = build("fcrdns reject 1 reject_type perm timeout 0.3");
        let started = std::time::Instant::now();
        let mut s = server.session_from(from("192.0.2.10"));
        assert_eq!(
            s.connect(),
            "450 4.4.3 Temporary DNS failure checking 192.0.2.10, try again later\r\n"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        assert_eq!(notes(&s).0.as_deref(), Some("temperror"));
        let line = summary(&log).pop().unwrap();
        assert!(
            line.starts_with("INFO fail: PTR lookup for 192.0.2.10: "),
            "{line}"
        );

        let (server, _) = build("fcrdns reject 1 reject_type disconnect timeout 0.3");
        let mut s = server.session_from(from("192.0.2.10"));
        assert!(s.connect().starts_with("450 4.4.3 "));

        // Tolerated, but recorded as temperror, never as a pass.
        let (server, log) = build("fcrdns timeout 0.3");
        let mut s = server.session_from(from("192.0.2.10"));
        assert!(s.connect().starts_with("220 "));
        let notes = &s.session.connection().notes;
        assert_eq!(notes.get_str("fcrdns"), Some("temperror"));
        assert_eq!(notes.get_int("karma"), None);
        let line = summary(&log).pop().unwrap();
        assert!(
            line.starts_with("INFO fail, tolerated: PTR lookup"),
            "{line}"
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            "fcrdns timeout 0",
            "fcrdns timeout soon",
            "fcrdns reject maybe",
            "fcrdns reject_type later",
            "fcrdns bogus 1",
            "fcrdns timeout",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: fcrdns: "), "{line}: {err}");
        }
        assert!(crate::test_support::load_error("fcrdns timeout -1").contains("timeout"));
    }
}
