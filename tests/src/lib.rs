//! Helpers for the end-to-end tests: the release `qpsmtpd` binary, configuration
//! directories, real daemons (tcpserver, xinetd, smtp-sink, the forkserver) on free
//! loopback ports, and a plain SMTP client that shows exactly what a user would see.
//!
//! Everything talks to 127.0.0.1 or ::1 only. Daemons are started in their own process
//! group and killed with it when their guard is dropped.

pub mod man;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The release binary, built once per test process (`QPSMTPD_BIN` overrides).
pub fn qpsmtpd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("QPSMTPD_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "qpsmtpd-inetd",
                "--bin",
                "qpsmtpd",
            ])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the release binary failed");
        workspace().join("target/release/qpsmtpd")
    })
}

/// A test fixture file in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(name)
}

/// Panics with a clear message if a program the test needs is missing.
pub fn require(program: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: run scripts/install-test-deps.sh");
}

/// A free TCP port on 127.0.0.1 (bound and released; the kernel will not hand it out
/// again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// Waits until something accepts connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listening on {addr} after {timeout:?}");
}

/// A temporary qpsmtpd installation: `config/`, `spool/`, `maildir/`, logs.
pub struct Site {
    dir: tempfile::TempDir,
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

impl Site {
    /// `me` = `test.example`, a private spool, `loglevel` 7, and the plugins
    /// `rcpt_ok` + `queue/maildir <site>/maildir` with `rcpthosts` = `example.com`.
    pub fn new() -> Site {
        Site::new_in(&std::env::temp_dir())
    }

    /// Like [`Site::new`], but the temporary directory is created under `parent` (for
    /// benchmarks that want the site, its spool and its maildir on a real disk rather
    /// than on a possibly memory-backed `/tmp`).
    pub fn new_in(parent: &Path) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("qpsmtpd-e2e-")
            .tempdir_in(parent)
            .expect("tempdir");
        // Daemons that drop to nobody must be able to reach the site.
        set_mode(dir.path(), 0o755);
        let site = Site { dir };
        let maildir = site.path().join("maildir");
        let spool = site.spool_dir();
        site.file("me", "test.example")
            .file("spool_dir", &spool.to_string_lossy())
            .file("loglevel", "7")
            .file("rcpthosts", "example.com")
            .file(
                "plugins",
                &format!("rcpt_ok\nqueue/maildir {}", maildir.display()),
            )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.path().join("config")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.path().join("spool")
    }

    pub fn maildir(&self) -> PathBuf {
        self.path().join("maildir")
    }

    /// Writes `config/<name>`.
    pub fn file(self, name: &str, contents: &str) -> Site {
        let p = self.config_dir().join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, format!("{contents}\n")).expect("write config");
        self
    }

    /// The messages in `maildir/new`, oldest first by name.
    pub fn messages(&self) -> Vec<String> {
        maildir_messages(&self.maildir())
    }

    /// Files left in the spool directory (there should be none after a session).
    pub fn spool_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.spool_dir()) {
            Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// `qpsmtpd --config-dir <site>/config` with stdin/stdout piped, as inetd would run it.
    pub fn command(&self) -> Command {
        let mut c = Command::new(qpsmtpd_bin());
        c.arg("--config-dir").arg(self.config_dir());
        c
    }

    /// Runs one session over pipes: writes `input`, returns (stdout, stderr).
    pub fn pipe_session(&self, env: &[(&str, &str)], input: &[u8]) -> (String, String) {
        let mut cmd = self.command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run_with_input(cmd, input, Duration::from_secs(30));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The files in `<maildir>/new`, sorted by name.
pub fn maildir_messages(maildir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).expect("read message")).into_owned())
        .collect()
}

/// How many entries a directory holds (0 if it does not exist), without reading them.
pub fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs a command with `input` on stdin; kills it if it runs longer than `timeout`.
pub fn run_with_input(mut cmd: Command, input: &[u8], timeout: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(timeout);
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    drop(watchdog); // it may still fire; the pid is gone or reaped by then
    out
}

/// A daemon started for a test; killed (with its process group) on drop.
pub struct Daemon {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` in its own process group with stdout and stderr going to `log`.
    pub fn start(name: &str, mut cmd: Command, log: &Path) -> Daemon {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("dup log");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {needle:?} not in log:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the daemon itself.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the daemon to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tcpserver -R -H -l localhost 127.0.0.1 <port> qpsmtpd --config-dir ...`, with optional
/// tcprules (`-x rules.cdb`) and extra tcpserver flags.
pub fn tcpserver(site: &Site, rules: Option<&Path>, extra: &[&str]) -> (Daemon, u16) {
    let tcpserver = require("tcpserver");
    let port = free_port();
    let mut cmd = Command::new(tcpserver);
    cmd.args(["-v", "-R", "-H", "-l", "localhost"]);
    if let Some(r) = rules {
        cmd.arg("-x").arg(r);
    }
    cmd.args(extra)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg(qpsmtpd_bin())
        .arg("--config-dir")
        .arg(site.config_dir());
    let d = Daemon::start("tcpserver", cmd, &site.path().join("tcpserver.log"));
    wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(10));
    (d, port)
}

/// Compiles tcprules text into `<site>/rules.cdb`.
pub fn tcprules(site: &Site, rules: &str) -> PathBuf {
    let cdb = site.path().join("rules.cdb");
    let tmp = site.path().join("rules.tmp");
    let mut child = Command::new(require("tcprules"))
        .arg(&cdb)
        .arg(&tmp)
        .stdin(Stdio::piped())
        .spawn()
        .expect("tcprules");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rules.as_bytes())
        .expect("write rules");
    assert!(child.wait().expect("tcprules").success());
    cdb
}

/// The forkserver: `qpsmtpd --config-dir ... --listen 127.0.0.1:<port> <extra>`.
/// Ready once its PID file (`<site>/forkserver.pid`, written after the listeners are bound)
/// exists, so no probe connection counts against the connection limits.
pub fn forkserver(site: &Site, extra: &[&str]) -> (Daemon, u16) {
    let port = free_port();
    let pid_file = site.path().join("forkserver.pid");
    let mut cmd = site.command();
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--pid-file")
        .arg(&pid_file)
        .args(extra);
    let d = Daemon::start("forkserver", cmd, &site.path().join("forkserver.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pid_file).map_or(true, |t| t.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "forkserver did not start:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (d, port)
}

/// A line-level SMTP client: what you send is what goes on the wire.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects to 127.0.0.1:`port` and reads the banner.
    pub fn connect(port: u16) -> (Client, String) {
        Client::connect_to(([127, 0, 0, 1], port).into())
    }

    pub fn connect_to(addr: SocketAddr) -> (Client, String) {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        Client::on_stream(s)
    }

    /// A client on a connected stream; reads the banner (or whatever comes first).
    pub fn on_stream(s: TcpStream) -> (Client, String) {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut c = Client {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        };
        let banner = c.reply();
        (c, banner)
    }

    /// Reads one (possibly multi-line) reply; empty if the server closed the connection.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Sends a command line (CRLF added) and reads the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True once the server has closed the connection (reads EOF, or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            Ok(_) => false,
        }
    }

    /// Shuts down our sending side.
    pub fn shutdown_write(&mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Write);
    }
}

/// Runs swaks with `args`; returns (exit status ok, stdout+stderr).
pub fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new(require("swaks"))
        .args(args)
        .output()
        .expect("run swaks");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs a Python script with the system interpreter (not the slow pyenv shim).
pub fn python(script: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

impl Client {
    /// Connects to `addr` from the local address `from` (Linux lets a client use any
    /// address in 127.0.0.0/8) and reads the banner.
    pub fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> (Client, String) {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, connect, socket,
        };
        use std::os::fd::AsRawFd;
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
        match SocketAddr::new(from, 0) {
            SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
            SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
        }
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        match addr {
            SocketAddr::V4(a) => connect(fd.as_raw_fd(), &SockaddrIn::from(a)),
            SocketAddr::V6(a) => connect(fd.as_raw_fd(), &SockaddrIn6::from(a)),
        }
        .unwrap_or_else(|e| panic!("connect {from} -> {addr}: {e}"));
        Client::on_stream(TcpStream::from(fd))
    }
}

impl Client {
    /// Changes how long [`Client::reply`] waits for a line (30 s after connecting); a
    /// reply that does not come in time reads as the empty string.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.writer
            .set_read_timeout(Some(timeout))
            .expect("set read timeout");
    }

    /// One message transaction: `MAIL FROM:<from>`, `RCPT TO:<rcpt>` for each recipient
    /// and `DATA`, each of which must be accepted, then `message` (CRLF line ends,
    /// dot-stuffed by the caller) and the final dot. Returns the reply to the message.
    pub fn send_mail(&mut self, from: &str, rcpts: &[&str], message: &str) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250 "), "MAIL FROM:<{from}> got {r:?}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(r.starts_with("250 "), "RCPT TO:<{rcpt}> got {r:?}");
        }
        let r = self.cmd("DATA");
        assert!(r.starts_with("354 "), "DATA got {r:?}");
        self.send(message.as_bytes());
        self.send(b".\r\n");
        self.reply()
    }
}

impl Daemon {
    /// For tcpserver: waits for the session whose log has a line containing `needle` (its
    /// pid starts the line) to end, i.e. for `tcpserver: end <pid> `. Returns the log.
    pub fn wait_for_session_end(&self, needle: &str, timeout: Duration) -> String {
        let text = self.wait_for_log(needle, timeout);
        let pid = text
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|w| w.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no pid on the log line with {needle:?}:\n{text}"));
        self.wait_for_log(&format!("tcpserver: end {pid} "), timeout)
    }
}
