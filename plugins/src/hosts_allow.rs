//! # NAME
//!
//! hosts_allow - decide which hosts may connect at all
//!
//! # DESCRIPTION
//!
//! Decides, before the greeting, whether a client may talk to this server at all. Two
//! checks, in this order:
//!
//! 1. **Connections per address.** When the server runs as its own forking listener with a
//!    per-address limit (`qpsmtpd --listen ... --max-from-ip N`), a client that already
//!    has N connections open is turned away with
//!    `451 4.7.1 Sorry, too many connections from <ip>, try again later`.
//! 2. **The `hosts_allow` file**, a list of address rules read from top to bottom. The first
//!    rule that matches the client decides, with the answer it names; when none matches,
//!    the client may connect.
//!
//! Under the forking listener both checks run right after the connection is accepted,
//! before a process is started for it. Under tcpserver, inetd, xinetd or nginx, where there
//! is no such step, the file is checked when the session starts (the `connect` hook) and
//! the per-address limit is left to the supervisor (tcpserver's `-c`, xinetd's
//! `per_source`).
//!
//! # CONFIGURATION
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! The plugin takes no other arguments.
//!
//! ## Files
//!
//! `hosts_allow`: one rule per line, `ADDRESS ANSWER [MESSAGE...]`.
//!
//! - `ADDRESS` is an address or a CIDR block, IPv4 or IPv6: `192.0.2.7`, `192.0.2.0/24`,
//!   `2001:db8::/32`. Leading groups (`192.0.2.`) work as in relay(7)'s `relayclients`.
//! - `ANSWER` is one of qpsmtpd's return codes:
//!   - `DECLINED`: stop reading the file and let the client in (an exception to a rule
//!     further down);
//!   - `OK`: let the client in and skip the other connection checks (such as DNS
//!     blocklists) of plugins that come after this one;
//!   - `DENY` / `DENY_DISCONNECT`: refuse with a 550 and close;
//!   - `DENYSOFT` / `DENYSOFT_DISCONNECT`: refuse with a 451 (450 at `connect`) and close.
//! - `MESSAGE` is the text the client sees when refused; without it the server's usual
//!   refusal text is used. It may start with its own enhanced status code.
//!
//! For example, to refuse a network except for one host in it:
//!
//! ```text
//! 192.0.2.7      DECLINED
//! 192.0.2.0/24   DENY Sorry, no mail from this network
//! ```
//!
//! The file is read once, when the server starts (or reloads); a line that cannot be
//! understood stops the server from starting, with the file and line named.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The file is also checked under tcpserver and inetd (at `connect`); the Perl plugin
//!   only worked under its forking servers.
//! - IPv6 addresses and blocks are understood; the Perl plugin compared IPv4 only.
//! - A malformed line or an unknown answer is a configuration error; the Perl plugin
//!   skipped the first and read the second as DECLINED.
//! - A block written with host bits (`192.0.2.9/24`) matches its network; in the Perl
//!   plugin it never matched.
//! - The per-address limit is `--max-from-ip` as given; the Perl plugin raised or lowered
//!   it by the client's karma score.
//!
//! # SEE ALSO
//!
//! qpsmtpd-relay(7), qpsmtpd(8), tcprules(1)

use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::log::Level;
use qpsmtpd_core::net::IpRule;
use qpsmtpd_core::{
    ConfigError, ConfigLine, Context, Hook, Plugin, PluginSpec, PreConnection, Registration, Setup,
    Verdict,
};
use std::net::IpAddr;

// Its verdicts are the ones its rules file names, so it takes no reject arguments.
pub const SPEC: PluginSpec = PluginSpec {
    name: "hosts_allow",
    factory: new,
    args: &[],
    rejects: false,
    example: "",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    setup.no_args()?;
    let rules = setup
        .config
        .lines("hosts_allow")?
        .iter()
        .map(Rule::parse)
        .collect::<Result<_, _>>()?;
    Ok(Box::new(HostsAllow { rules }))
}

struct HostsAllow {
    rules: Vec<Rule>,
}

/// One line of `hosts_allow`.
struct Rule {
    addresses: IpRule,
    verdict: Verdict,
    /// `hosts_allow:LINE`, for log lines.
    place: String,
}

impl Rule {
    fn parse(line: &ConfigLine) -> Result<Rule, ConfigError> {
        let (address, rest) = first_word(&line.text);
        let (answer, message) = first_word(rest);
        let message = Some(message).filter(|m| !m.is_empty()).map(String::from);
        let addresses = IpRule::parse(address).map_err(|e| line.error(e))?;
        let verdict = Verdict::from_code_name(answer, message)
            .filter(|v| !matches!(v, Verdict::Done(_)))
            .ok_or_else(|| {
                line.error(format!(
                    "{answer:?} is not one of DECLINED, OK, DENY, DENYSOFT, \
                     DENY_DISCONNECT, DENYSOFT_DISCONNECT"
                ))
            })?;
        let file = line.origin.file.file_name().unwrap_or_default();
        Ok(Rule {
            addresses,
            verdict,
            place: format!("{}:{}", file.to_string_lossy(), line.origin.line),
        })
    }
}

/// The first word of `s` and the rest, trimmed (inner spacing of the rest is kept).
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let (word, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
    (word, rest.trim())
}

impl HostsAllow {
    /// The file's answer for `ip`, with the summary line to log.
    fn check(&self, ip: IpAddr) -> (Verdict, String) {
        let ip = strip_mapped(ip);
        let Some(rule) = self.rules.iter().find(|r| r.addresses.matches(ip)) else {
            return (Verdict::Declined, format!("skip: no rule for {ip}"));
        };
        let verdict = rule.verdict.clone();
        let outcome = if verdict.is_deny() { "fail" } else { "pass" };
        let line = format!("{outcome}: {ip} matches {} ({verdict})", rule.place);
        (verdict, line)
    }
}

impl Plugin for HostsAllow {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::PreConnection.into(), Hook::Connect.into()]
    }

    fn pre_connection(&self, pc: &PreConnection<'_>) -> Verdict {
        let count = pc.connections_from_remote();
        if pc.max_conn_ip > 0 && count > pc.max_conn_ip {
            let ip = pc.remote_ip;
            pc.log(
                Level::Info,
                format!(
                    "fail: too many connections from {ip} ({count} > {})",
                    pc.max_conn_ip
                ),
            );
            return Verdict::deny_soft(format!(
                "Sorry, too many connections from {ip}, try again later"
            ));
        }
        let (verdict, line) = self.check(pc.remote_ip);
        pc.log(Level::Info, line);
        verdict
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        // Under the forking listener the file was already read for this connection.
        if cx.connection().info.pre_connection_done {
            return Verdict::Declined;
        }
        let (verdict, line) = self.check(cx.connection().remote_ip());
        cx.log(Level::Info, line);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, TestServer};
    use qpsmtpd_core::{ConnectionInfo, PreConnectionFacts, run_pre_connection};
    use std::net::IpAddr;

    const RULES: &str = "\
# exceptions first
192.0.2.7        DECLINED
192.0.2.0/24     DENY   Sorry, no mail from this network
198.51.100.0/24  DENYSOFT
2001:db8::/32    deny_disconnect 5.7.0 Go away
203.0.113.5      OK";

    const BANNER: &str = "220 test.example ESMTP";

    fn server(rules: &str) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "hosts_allow")
            .file("hosts_allow", rules)
            .build()
            .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// What the forking listener would send before closing, if anything.
    fn pre_connection(server: &TestServer, from: &str, max: usize, children: &[&str]) -> String {
        let facts = PreConnectionFacts {
            remote_ip: ip(from),
            remote_port: 40000,
            local_ip: Some(ip("192.0.2.1")),
            local_port: 25,
            max_conn_ip: max,
        };
        let children: Vec<IpAddr> = children.iter().map(|c| ip(c)).collect();
        run_pre_connection(&server.server, &facts, &children)
            .map(|reply| reply.to_wire())
            .unwrap_or_default()
    }

    #[test]
    fn too_many_connections_from_one_address() {
        let server = server("");
        let children = ["127.0.0.1", "192.0.2.9", "127.0.0.1"];
        assert_eq!(
            pre_connection(&server, "127.0.0.1", 2, &children),
            "451 4.7.1 Sorry, too many connections from 127.0.0.1, try again later\r\n"
        );
        assert_eq!(pre_connection(&server, "127.0.0.1", 3, &children), "");
        assert_eq!(
            pre_connection(&server, "192.0.2.9", 1, &children),
            "451 4.7.1 Sorry, too many connections from 192.0.2.9, try again later\r\n"
        );
        assert_eq!(pre_connection(&server, "192.0.2.10", 1, &children), "");
        assert_eq!(pre_connection(&server, "127.0.0.1", 0, &children), "");
    }

    #[test]
    fn first_matching_rule_decides_before_the_fork() {
        let server = server(RULES);
        for (from, want) in [
            ("192.0.2.7", ""),
            (
                "192.0.2.8",
                "550 5.7.1 Sorry, no mail from this network\r\n",
            ),
            ("198.51.100.1", "451 4.7.1 Sorry, try again later\r\n"),
            ("2001:db8::1", "550 5.7.0 Go away\r\n"),
            ("203.0.113.5", ""),
            ("203.0.113.6", ""),
        ] {
            assert_eq!(pre_connection(&server, from, 0, &[]), want, "from {from}");
        }
    }

    #[test]
    fn rules_apply_at_connect_without_a_forking_listener() {
        let server = server(RULES);
        for (from, want) in [
            ("192.0.2.7", BANNER),
            (
                "192.0.2.8",
                "550 5.7.1 Sorry, no mail from this network\r\n",
            ),
            (
                "198.51.100.1",
                "450 4.7.1 Connection from you temporarily denied, bye bye.\r\n",
            ),
            (
                "::ffff:192.0.2.8",
                "550 5.7.1 Sorry, no mail from this network\r\n",
            ),
            ("2001:db8::1", "550 5.7.0 Go away\r\n"),
            ("203.0.113.5", BANNER),
            ("2001:db9::1", BANNER),
        ] {
            let mut s = server.session_from(ConnectionInfo::from_ip(ip(from)));
            let got = s.connect();
            assert!(got.starts_with(want), "from {from}: {got}");
            assert_eq!(s.is_closed(), want != BANNER, "from {from}");
        }
    }

    #[test]
    fn connect_leaves_forked_connections_alone() {
        let server = server(RULES);
        let mut info = ConnectionInfo::from_ip(ip("192.0.2.8"));
        info.pre_connection_done = true;
        let mut s = server.session_from(info);
        assert!(s.connect().starts_with(BANNER));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for (rules, want) in [
            ("192.0.2.0/24", "hosts_allow:1: \"\" is not one of DECLINED"),
            (
                "\n192.0.2.0/24 MAYBE",
                "hosts_allow:2: \"MAYBE\" is not one of",
            ),
            ("192.0.2.0/24 DONE", "hosts_allow:1: \"DONE\" is not one of"),
            (
                "192.0.2.300 DENY",
                "hosts_allow:1: \"192.0.2.300\" is not an IP",
            ),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", "hosts_allow")
                .file("hosts_allow", rules)
                .build()
                .expect_err("configuration should be refused")
                .to_string();
            assert!(err.contains(want), "{rules:?}: {err}");
        }
    }
}
