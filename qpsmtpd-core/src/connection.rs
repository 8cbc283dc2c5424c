//! The connection: who is talking to us, from where, and what the session has learnt.
//!
//! The driver fills [`ConnectionInfo`] before the session starts: from tcpserver's
//! environment (`TCPREMOTEIP`, ...), from the socket (`getpeername` under inetd, xinetd,
//! systemd, or the forkserver), or from nothing at all when stdin is a pipe.

use crate::notes::Notes;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// Facts about the peer, fixed for the life of the connection (a PROXY-protocol plugin may
/// rewrite them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// `0.0.0.0` when unknown (stdin is a pipe and the environment says nothing).
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    /// The peer's host name, if the driver knows it (tcpserver without `-H`).
    pub remote_host: Option<String>,
    /// The ident answer (tcpserver without `-R`).
    pub remote_info: Option<String>,
    pub local_ip: Option<IpAddr>,
    pub local_port: u16,
    pub local_host: Option<String>,
    /// Variables a supervisor set for this connection: tcprules' `RELAYCLIENT`,
    /// `WHITELISTCLIENT`, `RBLSMTPD`, or anything else a rule exports. Plugins read these
    /// instead of the process environment, which is shared when sessions run on threads.
    pub env: BTreeMap<String, String>,
    /// True when a forkserver already ran the `pre-connection` hook for this connection.
    pub pre_connection_done: bool,
}

impl Default for ConnectionInfo {
    fn default() -> Self {
        ConnectionInfo {
            remote_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            remote_port: 0,
            remote_host: None,
            remote_info: None,
            local_ip: None,
            local_port: 0,
            local_host: None,
            env: BTreeMap::new(),
            pre_connection_done: false,
        }
    }
}

impl ConnectionInfo {
    /// A connection from `ip` with nothing else known (tests, benchmarks).
    pub fn from_ip(ip: IpAddr) -> ConnectionInfo {
        ConnectionInfo {
            remote_ip: ip,
            ..ConnectionInfo::default()
        }
    }

    /// The variables tcpserver and xinetd export, read through `env`. Returns `None` when
    /// none of them says where the peer is.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Option<ConnectionInfo> {
        let ip = env("TCPREMOTEIP").or_else(|| env("REMOTE_HOST"))?;
        let remote_ip = strip_mapped(ip.trim().parse().ok()?);
        let port = |k: &str| env(k).and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(ConnectionInfo {
            remote_ip,
            remote_port: port("TCPREMOTEPORT"),
            remote_host: env("TCPREMOTEHOST")
                .map(|h| clean_host(&h))
                .filter(|h| !h.is_empty()),
            remote_info: env("TCPREMOTEINFO")
                .map(|h| clean_text(&h))
                .filter(|h| !h.is_empty()),
            local_ip: env("TCPLOCALIP")
                .and_then(|i| i.parse().ok())
                .map(strip_mapped),
            local_port: port("TCPLOCALPORT"),
            local_host: env("TCPLOCALHOST")
                .map(|h| clean_host(&h))
                .filter(|h| !h.is_empty()),
            env: BTreeMap::new(),
            pre_connection_done: false,
        })
    }

    /// The host part of `remote_info`: the name, or `[ip]`.
    pub fn remote_host_or_ip(&self) -> String {
        match &self.remote_host {
            Some(h) => h.clone(),
            None => format!("[{}]", self.remote_ip),
        }
    }

    /// `info@host`, or the host, or `[ip]` (qpsmtpd's `remote_info`).
    pub fn remote_info_display(&self) -> String {
        match &self.remote_info {
            Some(info) => format!("{info}@{}", self.remote_host_or_ip()),
            None => self.remote_host_or_ip(),
        }
    }

    /// A supervisor-set variable (see [`ConnectionInfo::env`]).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }
}

/// `::ffff:192.0.2.1` → `192.0.2.1`, so IPv4 rules match dual-stack listeners.
pub fn strip_mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Keeps only the characters a host name can have (qpsmtpd strips the rest).
fn clean_host(h: &str) -> String {
    h.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':' | '_'))
        .collect()
}

/// Printable ASCII only.
fn clean_text(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c)).collect()
}

/// Which greeting the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hello {
    Helo,
    Ehlo,
}

/// A completed SMTP AUTH (filled in by the AUTH support).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthInfo {
    pub user: String,
    pub mechanism: String,
}

/// The connection's mutable state.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    pub info: ConnectionInfo,
    /// May this client relay (set by the `relay` plugin, or by AUTH)?
    pub relay_client: bool,
    pub hello: Option<Hello>,
    pub hello_host: Option<String>,
    pub notes: Notes,
    /// The TLS cipher description once TLS is active.
    pub tls: Option<String>,
    pub auth: Option<AuthInfo>,
}

impl Connection {
    pub fn new(info: ConnectionInfo) -> Connection {
        Connection {
            info,
            ..Connection::default()
        }
    }

    pub fn remote_ip(&self) -> IpAddr {
        self.info.remote_ip
    }

    /// RFC 3848 protocol name for the Received header: SMTP, ESMTP, ESMTPS, ESMTPA,
    /// ESMTPSA.
    pub fn protocol_name(&self) -> String {
        let mut p = String::from(match self.hello {
            Some(Hello::Ehlo) => "ESMTP",
            _ => "SMTP",
        });
        if self.hello == Some(Hello::Ehlo) {
            if self.tls.is_some() {
                p.push('S');
            }
            if self.auth.is_some() {
                p.push('A');
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcpserver_environment() {
        let env = |k: &str| {
            Some(
                match k {
                    "TCPREMOTEIP" => "::ffff:192.0.2.7",
                    "TCPREMOTEPORT" => "4242",
                    "TCPREMOTEHOST" => "client.example\r\nX",
                    "TCPREMOTEINFO" => "joe",
                    "TCPLOCALIP" => "127.0.0.1",
                    "TCPLOCALPORT" => "25",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let info = ConnectionInfo::from_env(env).unwrap();
        assert_eq!(info.remote_ip.to_string(), "192.0.2.7");
        assert_eq!(info.remote_port, 4242);
        assert_eq!(info.remote_host.as_deref(), Some("client.exampleX"));
        assert_eq!(info.remote_info_display(), "joe@client.exampleX");
        assert_eq!(info.local_port, 25);
    }

    #[test]
    fn xinetd_and_nothing() {
        let info =
            ConnectionInfo::from_env(|k| (k == "REMOTE_HOST").then(|| "10.1.2.3".to_string()))
                .unwrap();
        assert_eq!(info.remote_info_display(), "[10.1.2.3]");
        assert!(ConnectionInfo::from_env(|_| None).is_none());
    }

    #[test]
    fn protocol_names() {
        let mut c = Connection {
            hello: Some(Hello::Helo),
            ..Connection::default()
        };
        assert_eq!(c.protocol_name(), "SMTP");
        c.hello = Some(Hello::Ehlo);
        assert_eq!(c.protocol_name(), "ESMTP");
        c.tls = Some("TLS1.3".into());
        c.auth = Some(AuthInfo {
            user: "u".into(),
            mechanism: "PLAIN".into(),
        });
        assert_eq!(c.protocol_name(), "ESMTPSA");
    }
}
