//! The DNS service plugins share: hickory-resolver inside a small tokio runtime, behind a
//! blocking interface, so the session keeps its simple shape.
//!
//! - Nameservers come from `/etc/resolv.conf`, or from the control file `dns_servers`
//!   (`ip[:port]` per line, port 53 by default), which tests point at their own server.
//! - Every query has a deadline (`dns_timeout`, default 5 s, or the plugin's own).
//! - Queries given together run concurrently: ten lookups take as long as the slowest.
//! - A plugin can start queries early ([`Dns::start`]) and collect the answers later; they
//!   go on in the runtime's own thread meanwhile (the Perl dnsbl started its lookups at
//!   connect and read them at RCPT).
//! - Answers are cached per session by [`crate::Context`].
//!
//! The runtime is created on the first lookup of a process (a forkserver child makes its
//! own; threads do not survive fork), so a server without DNS plugins never starts it.
//! The same resolver drives mail-auth's SPF, DKIM and DMARC checks
//! ([`Dns::authenticator`], [`Dns::block_on`]).

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use mail_auth::MessageAuthenticator;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A question.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Query {
    /// IPv4 addresses.
    A(String),
    /// IPv6 addresses.
    Aaaa(String),
    /// IPv4 and IPv6 addresses.
    Ip(String),
    Mx(String),
    Txt(String),
    /// The names of an address (reverse DNS).
    Ptr(IpAddr),
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::A(n) => write!(f, "{n} A"),
            Query::Aaaa(n) => write!(f, "{n} AAAA"),
            Query::Ip(n) => write!(f, "{n} A/AAAA"),
            Query::Mx(n) => write!(f, "{n} MX"),
            Query::Txt(n) => write!(f, "{n} TXT"),
            Query::Ptr(ip) => write!(f, "{ip} PTR"),
        }
    }
}

/// One MX record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// The exchange, lower-case, without the trailing dot; empty for a null MX (`.`).
    pub exchange: String,
}

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Addrs(Vec<IpAddr>),
    Mx(Vec<Mx>),
    /// Each record's strings joined, as SPF and DKIM read them.
    Txt(Vec<String>),
    /// Host names, lower-case, without the trailing dot.
    Names(Vec<String>),
}

impl Answer {
    pub fn addrs(&self) -> &[IpAddr] {
        match self {
            Answer::Addrs(a) => a,
            _ => &[],
        }
    }
    pub fn names(&self) -> &[String] {
        match self {
            Answer::Names(n) => n,
            _ => &[],
        }
    }
    pub fn texts(&self) -> &[String] {
        match self {
            Answer::Txt(t) => t,
            _ => &[],
        }
    }
    pub fn mx(&self) -> &[Mx] {
        match self {
            Answer::Mx(m) => m,
            _ => &[],
        }
    }
}

/// Why there is no answer. A DNS failure is never an answer: plugins decide (and document)
/// what a temporary failure means for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist, or has no record of that type (NXDOMAIN, NODATA; also
    /// REFUSED, which is what an authoritative-only server says of names not its own).
    NotFound,
    /// No answer within the deadline.
    Timeout,
    /// Any other failure (SERVFAIL, network errors, bad configuration).
    Failed(String),
}

impl DnsError {
    /// A temporary failure: the answer may be different next time.
    pub fn is_temporary(&self) -> bool {
        !matches!(self, DnsError::NotFound)
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NotFound => f.write_str("not found"),
            DnsError::Timeout => f.write_str("timed out"),
            DnsError::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl std::error::Error for DnsError {}

pub type DnsResult = Result<Answer, DnsError>;

/// Where the nameservers come from and how long to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// Empty: `/etc/resolv.conf`.
    pub servers: Vec<SocketAddr>,
    pub timeout: Duration,
}

/// The resolver and the runtime that drives it.
pub struct Dns {
    runtime: tokio::runtime::Runtime,
    auth: MessageAuthenticator,
    timeout: Duration,
}

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dns(timeout {:?})", self.timeout)
    }
}

/// Queries started by [`Dns::start`], to be collected with [`Pending::wait`].
pub struct Pending {
    queries: Vec<Query>,
    handles: Vec<tokio::task::JoinHandle<DnsResult>>,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.queries).finish()
    }
}

impl Pending {
    pub fn queries(&self) -> &[Query] {
        &self.queries
    }
}

impl Dns {
    /// Builds the resolver (no query is sent yet).
    pub fn new(settings: &DnsSettings) -> Result<Dns, DnsError> {
        let (config, mut opts) = if settings.servers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| DnsError::Failed(format!("/etc/resolv.conf: {e}")))?
        } else {
            let mut group = Vec::new();
            for addr in &settings.servers {
                group.push(NameServerConfig::new(*addr, Protocol::Udp));
                group.push(NameServerConfig::new(*addr, Protocol::Tcp));
            }
            (
                ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::from(group)),
                ResolverOpts::default(),
            )
        };
        // Names are always queried as given (plugins pass full names): no search list.
        opts.ndots = 0;
        opts.timeout = settings.timeout;
        opts.attempts = 1;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qpsmtpd-dns")
            .enable_all()
            .build()
            .map_err(|e| DnsError::Failed(format!("cannot start the DNS runtime: {e}")))?;
        let auth = {
            // hickory builds its connections inside the runtime.
            let _guard = runtime.enter();
            MessageAuthenticator::new(config, opts)
                .map_err(|e| DnsError::Failed(format!("resolver: {e}")))?
        };
        Ok(Dns {
            runtime,
            auth,
            timeout: settings.timeout,
        })
    }

    /// The default deadline of a query.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// mail-auth's authenticator (SPF, DKIM, DMARC), on this resolver.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// Runs a future (a mail-auth check) to completion on the DNS runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// One query, waiting at most `timeout`.
    pub fn lookup(&self, query: &Query, timeout: Duration) -> DnsResult {
        self.lookup_all(std::slice::from_ref(query), timeout)
            .remove(0)
    }

    /// Several queries at once; the answers in the same order. Takes as long as the
    /// slowest (at most `timeout`).
    pub fn lookup_all(&self, queries: &[Query], timeout: Duration) -> Vec<DnsResult> {
        self.start(queries.to_vec(), timeout).wait(self)
    }

    /// Starts queries in the background; collect them with [`Pending::wait`].
    pub fn start(&self, queries: Vec<Query>, timeout: Duration) -> Pending {
        let handles = queries
            .iter()
            .map(|q| {
                let resolver = self.auth.resolver().clone();
                let q = q.clone();
                self.runtime.spawn(async move {
                    match tokio::time::timeout(timeout, resolve(&resolver, &q)).await {
                        Ok(r) => r,
                        Err(_) => Err(DnsError::Timeout),
                    }
                })
            })
            .collect();
        Pending { queries, handles }
    }
}

impl Pending {
    /// Waits for every answer (each query keeps its own deadline).
    pub fn wait(self, dns: &Dns) -> Vec<DnsResult> {
        let handles = self.handles;
        dns.runtime.block_on(async move {
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(
                    h.await
                        .unwrap_or_else(|e| Err(DnsError::Failed(e.to_string()))),
                );
            }
            out
        })
    }
}

/// A name as an absolute DNS name (a trailing dot), so no search list applies.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// `mx.example.test.` → `mx.example.test`.
fn plain(name: &impl ToString) -> String {
    name.to_string().trim_end_matches('.').to_ascii_lowercase()
}

async fn resolve(resolver: &TokioResolver, query: &Query) -> DnsResult {
    match query {
        Query::A(n) => resolver
            .ipv4_lookup(fqdn(n))
            .await
            .map(|l| Answer::Addrs(l.iter().map(|a| IpAddr::V4(a.0)).collect())),
        Query::Aaaa(n) => resolver
            .ipv6_lookup(fqdn(n))
            .await
            .map(|l| Answer::Addrs(l.iter().map(|a| IpAddr::V6(a.0)).collect())),
        Query::Ip(n) => resolver
            .lookup_ip(fqdn(n))
            .await
            .map(|l| Answer::Addrs(l.iter().collect())),
        Query::Mx(n) => resolver.mx_lookup(fqdn(n)).await.map(|l| {
            let mut mx: Vec<Mx> = l
                .iter()
                .map(|m| Mx {
                    preference: m.preference(),
                    exchange: plain(m.exchange()),
                })
                .collect();
            mx.sort_by_key(|m| m.preference);
            Answer::Mx(mx)
        }),
        Query::Txt(n) => resolver.txt_lookup(fqdn(n)).await.map(|l| {
            Answer::Txt(
                l.iter()
                    .map(|t| {
                        t.txt_data()
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>()
                    })
                    .collect(),
            )
        }),
        Query::Ptr(ip) => resolver
            .reverse_lookup(*ip)
            .await
            .map(|l| Answer::Names(l.iter().map(|p| plain(&p.0)).collect())),
    }
    .map_err(classify)
    .and_then(|a| match &a {
        // An empty answer is no answer.
        Answer::Addrs(v) if v.is_empty() => Err(DnsError::NotFound),
        Answer::Names(v) if v.is_empty() => Err(DnsError::NotFound),
        Answer::Txt(v) if v.is_empty() => Err(DnsError::NotFound),
        Answer::Mx(v) if v.is_empty() => Err(DnsError::NotFound),
        _ => Ok(a),
    })
}

/// NXDOMAIN, NODATA and REFUSED are "not found"; everything else is a failure.
fn classify(e: ResolveError) -> DnsError {
    if let Some(proto) = e.proto() {
        if let ProtoErrorKind::NoRecordsFound { response_code, .. } = proto.kind() {
            return match *response_code {
                ResponseCode::NoError | ResponseCode::NXDomain | ResponseCode::Refused => {
                    DnsError::NotFound
                }
                other => DnsError::Failed(format!("{other}")),
            };
        }
        if matches!(proto.kind(), ProtoErrorKind::Timeout) {
            return DnsError::Timeout;
        }
    }
    DnsError::Failed(e.to_string())
}

/// `4.3.2.1.zone` for 1.2.3.4; the 32 nibbles for IPv6 (RFC 5782 §2.4).
pub fn reversed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0xf, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// Parses a `dns_servers` line: `ip` or `ip:port` (IPv6 as `[ip]:port`).
pub fn parse_server(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverses_addresses() {
        assert_eq!(reversed_ip("192.0.2.7".parse().unwrap()), "7.2.0.192");
        assert_eq!(
            reversed_ip("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
        );
    }

    #[test]
    fn parses_servers() {
        assert_eq!(
            parse_server("127.0.0.1"),
            Some("127.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_server("dns.example"), None);
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        // A UDP socket that reads and never replies, and a TCP listener that never accepts.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let _tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let dns = Dns::new(&DnsSettings {
            servers: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            timeout: Duration::from_millis(300),
        })
        .unwrap();
        let started = std::time::Instant::now();
        let answers = dns.lookup_all(
            &[
                Query::A("a.example.test".into()),
                Query::Txt("b.example.test".into()),
            ],
            Duration::from_millis(300),
        );
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_err_and(DnsError::is_temporary)),
            "{answers:?}"
        );
        // Concurrent: two timeouts cost one.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
}
