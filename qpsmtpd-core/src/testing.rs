//! A test harness: a configuration directory in a temp dir, a server built from it, and
//! sessions over the in-memory transport. The `Test::Qpsmtpd` of this project: transcript
//! tests in the core and unit tests of every plugin use it.
//!
//! ```
//! use qpsmtpd_core::testing::Harness;
//! let server = Harness::new().file("rcpthosts", "example.com").build().unwrap();
//! let mut s = server.session();
//! assert!(s.connect().starts_with("220 test.example ESMTP"));
//! assert!(s.command("EHLO client.example").contains("250-PIPELINING"));
//! ```

use crate::chain::{Chain, Entry};
use crate::config::{Config, ConfigDirs, ConfigError};
use crate::connection::ConnectionInfo;
use crate::core_config::CoreConfig;
use crate::hook::{Hook, Verdict};
use crate::log::{LogAdjust, LogRecord};
use crate::plugin::{Plugin, PluginSpec, Registration};
use crate::server::Server;
use crate::session::{Flow, Session};
use crate::transport::{MemoryHandle, MemoryTransport};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Builds a test server.
pub struct Harness {
    dir: tempfile::TempDir,
    catalogue: Vec<PluginSpec>,
    extra: Vec<Entry>,
    env: BTreeMap<String, String>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    /// A config directory with `me` = `test.example` and a private spool directory.
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let h = Harness {
            dir,
            catalogue: Vec::new(),
            extra: Vec::new(),
            env: BTreeMap::new(),
        };
        let spool = h.dir.path().join("spool");
        h.file("me", "test.example")
            .file("spool_dir", &spool.to_string_lossy())
    }

    /// Writes a control file (parent directories are created).
    pub fn file(self, name: &str, contents: &str) -> Harness {
        let path = self.dir.path().join("config").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{contents}\n")).expect("write config file");
        self
    }

    /// Writes the constant database `config/<name>.cdb` with these keys (empty values).
    pub fn cdb(self, name: &str, keys: &[&str]) -> Harness {
        let path = self.dir.path().join("config").join(format!("{name}.cdb"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut w =
            cdb::CDBWriter::create(path.to_string_lossy().into_owned()).expect("create cdb");
        for key in keys {
            w.add(key.as_bytes(), b"").expect("add cdb key");
        }
        w.finish().expect("write cdb");
        self
    }

    /// Plugins that `config/plugins` may name.
    pub fn catalogue(mut self, specs: &[PluginSpec]) -> Harness {
        self.catalogue.extend_from_slice(specs);
        self
    }

    /// Adds a plugin object after those loaded from `config/plugins`.
    pub fn plugin(mut self, name: &str, plugin: impl Plugin + 'static) -> Harness {
        self.extra.push(Entry {
            name: name.to_string(),
            plugin: Box::new(plugin),
            log_adjust: LogAdjust::None,
        });
        self
    }

    /// Points `dns_servers` at a nameserver that never answers, with `dns_timeout` seconds
    /// to wait for it.
    pub fn silent_dns(self, server: &SilentDns, timeout: &str) -> Harness {
        self.file("dns_servers", &server.addr())
            .file("dns_timeout", timeout)
    }

    /// Points `dns_servers` at a test DNS server.
    pub fn dns(self, server: &DnsServer) -> Harness {
        self.file("dns_servers", &server.addr().to_string())
    }

    /// A process environment variable as plugins will see it at setup.
    pub fn env(mut self, name: &str, value: &str) -> Harness {
        self.env.insert(name.into(), value.into());
        self
    }

    /// The directory holding `config/`, `spool/` and anything a test puts there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn build(self) -> Result<TestServer, ConfigError> {
        let config = Config::new(ConfigDirs::only(vec![self.dir.path().join("config")]));
        let core = CoreConfig::load(&config, "localhost")?;
        core.prepare_spool_dir()?;
        let env = self.env.clone();
        let lookup = move |k: &str| env.get(k).cloned();
        let loaded = Chain::load(&config, &core, &self.catalogue, &lookup)?;
        let mut entries = loaded.into_entries();
        entries.extend(self.extra);
        let chain = Chain::from_entries(entries);
        Ok(TestServer {
            server: Arc::new(Server::new(config, core, chain)),
            dir: self.dir,
        })
    }
}

/// A built test server.
#[derive(Debug)]
pub struct TestServer {
    pub server: Arc<Server>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// A session from 127.0.0.1.
    pub fn session(&self) -> TestSession {
        self.session_from(ConnectionInfo::from_ip(IpAddr::from([127, 0, 0, 1])))
    }

    /// A session with the given connection facts.
    pub fn session_from(&self, info: ConnectionInfo) -> TestSession {
        let (transport, handle) = MemoryTransport::new();
        TestSession {
            session: Session::new(self.server.clone(), info, Box::new(transport)),
            handle,
            closed: false,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One whole session from 127.0.0.1: banner, `EHLO client.example`, MAIL and RCPT
    /// (which must be accepted), DATA with `body`; returns the reply to the message.
    pub fn send_message(&self, from: &str, to: &[&str], body: &str) -> String {
        let mut s = self.session();
        s.connect();
        s.command("EHLO client.example");
        s.mail(from, to, body)
    }

    /// The spool directory (to check no file is left behind).
    pub fn spool_dir(&self) -> PathBuf {
        self.server.core.spool_dir.clone()
    }
}

/// A session driven one command at a time.
pub struct TestSession {
    pub session: Session,
    pub handle: MemoryHandle,
    closed: bool,
}

impl TestSession {
    /// Runs the connect hooks; returns the banner (or rejection).
    pub fn connect(&mut self) -> String {
        if self.session.start() == Flow::Close {
            self.closed = true;
        }
        self.handle.take_output()
    }

    /// Sends one command line (CRLF added) and returns the reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes())
    }

    /// Sends raw bytes and runs the session until they are consumed; returns all output.
    pub fn send(&mut self, bytes: &[u8]) -> String {
        self.handle.push(bytes);
        while !self.closed && self.handle.pending_input() > 0 {
            if self.session.step() == Flow::Close {
                self.closed = true;
            }
        }
        // Input the session has buffered but not yet handled (pipelining).
        while !self.closed && !self.session_input_empty() {
            if self.session.step() == Flow::Close {
                self.closed = true;
            }
        }
        self.session.flush_replies();
        self.handle.take_output()
    }

    /// Sends `DATA`, then `body` as given and `\r\n.\r\n`, all at once (the memory
    /// transport reads EOF when it runs dry, so the message must arrive with the command).
    /// Returns the reply to the message; if DATA itself was refused, returns that refusal
    /// (and the body was taken as commands, as a real server would).
    pub fn data(&mut self, body: &str) -> String {
        let out = self.send(format!("DATA\r\n{body}\r\n.\r\n").as_bytes());
        match out.strip_prefix("354 go ahead\r\n") {
            Some(rest) => rest.to_string(),
            None => out,
        }
    }

    /// Runs MAIL, RCPT (each must succeed) and DATA with `body`; returns the reply to
    /// the message.
    pub fn mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        for (cmd, reply) in std::iter::once(format!("MAIL FROM:<{from}>"))
            .chain(to.iter().map(|t| format!("RCPT TO:<{t}>")))
            .map(|c| {
                let r = self.command(&c);
                (c, r)
            })
            .collect::<Vec<_>>()
        {
            assert!(reply.starts_with("250"), "{cmd} got {reply}");
        }
        self.data(body)
    }

    /// Greets (`EHLO client.example`) and starts a transaction from `from`; each step must
    /// be accepted.
    pub fn begin(&mut self, from: &str) -> &mut TestSession {
        let banner = self.connect();
        assert!(banner.starts_with("220 "), "banner: {banner}");
        let ehlo = self.command("EHLO client.example");
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        let mail = self.command(&format!("MAIL FROM:<{from}>"));
        assert!(mail.starts_with("250 "), "MAIL: {mail}");
        self
    }

    /// The reply to `RCPT TO:<r>` for each recipient, in order.
    pub fn rcpt_replies(&mut self, rcpts: &[&str]) -> Vec<String> {
        rcpts
            .iter()
            .map(|r| self.command(&format!("RCPT TO:<{r}>")))
            .collect()
    }

    /// The client hangs up: the session reads EOF (the memory transport has nothing more
    /// to give) and ends.
    pub fn hang_up(&mut self) -> String {
        while !self.closed {
            if self.session.step() == Flow::Close {
                self.closed = true;
            }
        }
        self.handle.take_output()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn session_input_empty(&self) -> bool {
        self.session.buffered_input_len() == 0
    }
}

/// A logging plugin that keeps every record, for tests that check what was logged. Add it
/// with `Harness::plugin("logs", logs.clone())` and read it afterwards.
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<CapturedLog>>>);

/// One captured record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedLog {
    pub level: crate::log::Level,
    pub hook: Option<Hook>,
    pub plugin: Option<String>,
    pub session: Option<String>,
    pub transaction: u32,
    pub message: String,
}

impl LogCapture {
    /// Every record so far.
    pub fn records(&self) -> Vec<CapturedLog> {
        self.0.lock().expect("log capture").clone()
    }

    /// The first message containing `needle`.
    pub fn find(&self, needle: &str) -> Option<String> {
        self.records()
            .into_iter()
            .map(|r| r.message)
            .find(|m| m.contains(needle))
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.find(needle).is_some()
    }

    /// The messages one plugin logged, as `LEVEL message`.
    pub fn of_plugin(&self, plugin: &str) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|r| r.plugin.as_deref() == Some(plugin))
            .map(|r| format!("{} {}", r.level, r.message))
            .collect()
    }
}

impl Plugin for LogCapture {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Logging.into()]
    }

    fn logging(&self, record: &LogRecord<'_>) -> Verdict {
        self.0.lock().expect("log capture").push(CapturedLog {
            level: record.level,
            hook: record.hook,
            plugin: record.plugin.map(String::from),
            session: record.session.map(String::from),
            transaction: record.transaction,
            message: record.message.to_string(),
        });
        Verdict::Declined
    }
}

/// An authoritative DNS server (Debian's knot) on a free 127.0.0.1 port, serving every
/// `NAME.zone` file of a directory as zone NAME: by default the project's fixtures in
/// `tests/fixtures/dns/zones`. Stopped when dropped. Tests never use the machine's own
/// resolver: point `dns_servers` at this (`Harness::dns`).
pub struct DnsServer {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DnsServer({})", self.addr)
    }
}

impl DnsServer {
    /// The fixture zones of this repository.
    pub fn fixture_zones() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dns/zones")
    }

    /// Starts knot with the fixture zones; panics with the reason if it cannot.
    pub fn start() -> DnsServer {
        DnsServer::start_with(&DnsServer::fixture_zones())
    }

    /// Starts knot serving the `*.zone` files of `zones`.
    pub fn start_with(zones: &Path) -> DnsServer {
        let knotd = ["/usr/sbin/knotd", "/usr/bin/knotd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("knotd is not installed: run scripts/install-test-deps.sh");
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("zones");
        std::fs::create_dir_all(storage.join("db")).expect("mkdir");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(zones).expect("zones dir") {
            let path = entry.expect("entry").path();
            if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".zone"))
            {
                std::fs::copy(&path, storage.join(format!("{name}.zone"))).expect("copy zone");
                names.push(name.to_string());
            }
        }
        // The port is taken by binding UDP and TCP at once, so both are free.
        let port = loop {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let port = udp.local_addr().expect("addr").port();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let mut conf = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: {run}\n    pidfile: {run}/knot.pid\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: {run}/db\n\
             template:\n  - id: default\n    storage: {run}\n    file: \"%s.zone\"\n\
             \x20   zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n\
             zone:\n",
            run = storage.display()
        );
        for name in &names {
            conf.push_str(&format!("  - domain: {name}\n"));
        }
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).expect("write knot.conf");
        let log = std::fs::File::create(dir.path().join("knot.log")).expect("log");
        let child = std::process::Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start knotd");
        let server = DnsServer {
            child,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        use crate::dns::{Dns, DnsSettings, Query};
        let dns = Dns::new(&DnsSettings {
            servers: vec![self.addr],
            timeout: std::time::Duration::from_millis(200),
        })
        .expect("resolver");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let q = Query::A("ready.example.test".into());
            if dns
                .lookup(&q, std::time::Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            let log =
                std::fs::read_to_string(self._dir.path().join("knot.log")).unwrap_or_default();
            assert!(
                std::time::Instant::now() < deadline,
                "knot did not answer on {}:\n{log}",
                self.addr
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A nameserver that never answers: a UDP socket on 127.0.0.1 that reads nothing and, on
/// the same port, a TCP listener that never accepts. For testing timeouts.
#[derive(Debug)]
pub struct SilentDns {
    _udp: std::net::UdpSocket,
    _tcp: Option<std::net::TcpListener>,
    port: u16,
}

impl SilentDns {
    pub fn start() -> SilentDns {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).ok();
        SilentDns {
            _udp: udp,
            _tcp: tcp,
            port,
        }
    }

    /// `127.0.0.1:<port>`, as `dns_servers` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
