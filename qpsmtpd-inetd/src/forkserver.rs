//! The forkserver (`--listen`): bind, drop privileges, load plugins, then start one child
//! per accepted connection.
//!
//! Each child is this same program, started with the connection on stdin/stdout and
//! tcpserver's variables (`TCPREMOTEIP`, `TCPREMOTEPORT`, `TCPLOCALIP`, `TCPLOCALPORT`) in
//! its environment, exactly as under tcpserver. Before starting a child the parent
//! enforces `--max-connections` and runs the `pre-connection` hook (the `hosts_allow`
//! plugin enforces `--max-from-ip` there).
//!
//! Signals arrive through a signalfd polled with the listeners: SIGCHLD reaps children,
//! SIGHUP reloads the configuration and plugins, SIGTERM/SIGINT stop accepting, ask the
//! children to finish (they answer 421 at their next wait) and wait for them.

use crate::cli::Args;
use crate::inetd::PRE_CONNECTION_DONE;
use crate::load::{env, load_server};
use crate::pidfile::PidFile;
use crate::privileges;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use qpsmtpd_core::log::write_stderr_line;
use qpsmtpd_core::{Level, PreConnectionFacts, Server, run_pre_connection};
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in the environment of the background copy started by `--detach`.
const DETACHED: &str = "QPSMTPD_DETACHED";

/// A running child and the peer it serves.
struct Running {
    child: Child,
    peer: IpAddr,
}

pub fn run(args: &Args) -> ExitCode {
    if args.detach && env(DETACHED).is_none() {
        return detach(args);
    }
    if env(DETACHED).is_some() {
        // Leave the terminal's session so its hangup does not reach us.
        let _ = nix::unistd::setsid();
    }
    match Forkserver::start(args) {
        Ok(mut fs) => fs.serve(),
        Err(e) => {
            write_stderr_line(&format!("{} qpsmtpd: {e}", std::process::id()));
            ExitCode::FAILURE
        }
    }
}

struct Forkserver {
    args: Args,
    exe: PathBuf,
    listeners: Vec<TcpListener>,
    signals: SignalFd,
    server: Arc<Server>,
    children: HashMap<u32, Running>,
    _pid_file: Option<PidFile>,
}

impl Forkserver {
    fn start(args: &Args) -> Result<Forkserver, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
        let mut listeners = Vec::new();
        for addr in &args.listen {
            let l = bind_listener(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            listeners.push(l);
        }
        // Written while still root (it usually lives in /run); removed at exit if we can.
        let pid_file = args.pid_file.as_deref().map(PidFile::create).transpose()?;
        privileges::drop_to(args.user.as_deref(), args.group.as_deref())?;
        let server = load_server(args.config_dir.as_deref())
            .map_err(|e| format!("configuration error: {e}"))?;
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGHUP,
            Signal::SIGTERM,
            Signal::SIGINT,
        ] {
            mask.add(s);
        }
        mask.thread_block()
            .map_err(|e| format!("sigprocmask: {e}"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| format!("signalfd: {e}"))?;
        let fs = Forkserver {
            args: args.clone(),
            exe,
            listeners,
            signals,
            server: Arc::new(server),
            children: HashMap::new(),
            _pid_file: pid_file,
        };
        for l in &fs.listeners {
            if let Ok(addr) = l.local_addr() {
                fs.log(Level::Notice, &format!("Listening on {addr}"));
            }
        }
        fs.log(
            Level::Notice,
            &format!(
                "Running as uid {} gid {}",
                nix::unistd::getuid(),
                nix::unistd::getgid()
            ),
        );
        Ok(fs)
    }

    fn log(&self, level: Level, message: &str) {
        self.server.log_core(level, None, message);
    }

    fn serve(&mut self) -> ExitCode {
        loop {
            let (signal_ready, ready) = match self.wait() {
                Ok(r) => r,
                Err(e) => {
                    self.log(Level::Crit, &format!("poll: {e}"));
                    return ExitCode::FAILURE;
                }
            };
            if signal_ready && self.handle_signals() {
                self.shut_down();
                return ExitCode::SUCCESS;
            }
            self.reap();
            for i in ready {
                self.accept_from(i);
            }
        }
    }

    /// Waits for a signal or a connection; returns (signal pending, ready listeners).
    fn wait(&self) -> nix::Result<(bool, Vec<usize>)> {
        let mut fds: Vec<PollFd> = self
            .listeners
            .iter()
            .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
        // A second now and then, so children that ended are reaped even if a SIGCHLD was
        // merged with another.
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        let is_ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let signal = fds.last().is_some_and(is_ready);
        let ready = fds[..self.listeners.len()]
            .iter()
            .enumerate()
            .filter(|(_, fd)| is_ready(fd))
            .map(|(i, _)| i)
            .collect();
        Ok((signal, ready))
    }

    /// Handles pending signals; true when it is time to stop.
    fn handle_signals(&mut self) -> bool {
        let mut stop = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => self.reload(),
                Ok(Signal::SIGTERM | Signal::SIGINT) => stop = true,
                _ => {} // SIGCHLD: reaped below
            }
        }
        stop
    }

    fn reload(&mut self) {
        match load_server(self.args.config_dir.as_deref()) {
            Ok(server) => {
                self.server = Arc::new(server);
                self.log(Level::Notice, "SIGHUP: configuration and plugins reloaded");
            }
            Err(e) => self.log(
                Level::Error,
                &format!("SIGHUP: configuration error, keeping the old configuration: {e}"),
            ),
        }
    }

    fn reap(&mut self) {
        self.children
            .retain(|_, r| matches!(r.child.try_wait(), Ok(None)));
    }

    fn accept_from(&mut self, index: usize) {
        loop {
            let (stream, peer) = match self.listeners[index].accept() {
                Ok(conn) => conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.log(Level::Error, &format!("accept: {e}"));
                    return;
                }
            };
            self.handle_connection(stream, peer);
        }
    }

    fn handle_connection(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let remote_ip = qpsmtpd_core::connection::strip_mapped(peer.ip());
        let local = stream.local_addr().ok();
        let me = self.server.core.me.clone();
        if self.children.len() >= self.args.max_connections {
            self.log(
                Level::Notice,
                &format!(
                    "too many connections ({}), refusing {remote_ip}",
                    self.children.len()
                ),
            );
            refuse(
                &mut stream,
                &format!("421 4.3.2 {me} Too many connections, try again later\r\n"),
            );
            return;
        }
        let facts = PreConnectionFacts {
            remote_ip,
            remote_port: peer.port(),
            local_ip: local.map(|a| qpsmtpd_core::connection::strip_mapped(a.ip())),
            local_port: local.map_or(0, |a| a.port()),
            max_conn_ip: self.args.max_from_ip,
        };
        let peers: Vec<IpAddr> = self.children.values().map(|r| r.peer).collect();
        if let Some(reply) = run_pre_connection(&self.server, &facts, &peers) {
            self.log(
                Level::Info,
                &format!("pre-connection refused {remote_ip}: {reply}"),
            );
            refuse(&mut stream, &reply.to_wire());
            return;
        }
        match self.spawn_child(stream, &facts) {
            Ok(child) => {
                self.log(
                    Level::Info,
                    &format!(
                        "connection from {remote_ip}:{} served by {}",
                        facts.remote_port,
                        child.id()
                    ),
                );
                self.children.insert(
                    child.id(),
                    Running {
                        child,
                        peer: remote_ip,
                    },
                );
            }
            Err(e) => self.log(
                Level::Error,
                &format!("cannot start a child for {remote_ip}: {e}"),
            ),
        }
    }

    /// Starts this program on the connection, as tcpserver would.
    fn spawn_child(&self, stream: TcpStream, facts: &PreConnectionFacts) -> std::io::Result<Child> {
        let input = OwnedFd::from(stream.try_clone()?);
        let output = OwnedFd::from(stream);
        let mut cmd = Command::new(&self.exe);
        if let Some(dir) = &self.args.config_dir {
            cmd.arg("--config-dir").arg(dir);
        }
        for var in [
            "TCPREMOTEHOST",
            "TCPREMOTEINFO",
            "TCPLOCALHOST",
            "REMOTE_HOST",
            DETACHED,
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PROTO", "TCP")
            .env("TCPREMOTEIP", facts.remote_ip.to_string())
            .env("TCPREMOTEPORT", facts.remote_port.to_string())
            .env("TCPLOCALPORT", facts.local_port.to_string())
            .env(PRE_CONNECTION_DONE, "1");
        if let Some(ip) = facts.local_ip {
            cmd.env("TCPLOCALIP", ip.to_string());
        }
        cmd.stdin(Stdio::from(input))
            .stdout(Stdio::from(output))
            .spawn()
    }

    /// SIGTERM: stop accepting, let sessions finish (they say 421 at their next wait),
    /// kill what is left after `--shutdown-timeout`.
    fn shut_down(&mut self) {
        self.listeners.clear();
        self.log(
            Level::Notice,
            &format!(
                "shutting down, waiting for {} sessions",
                self.children.len()
            ),
        );
        for pid in self.children.keys() {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(self.args.shutdown_timeout);
        while !self.children.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            self.reap();
        }
        for r in self.children.values_mut() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        self.log(Level::Notice, "stopped");
    }
}

/// A non-blocking listener on `addr`. IPv6 listeners are IPv6-only, so `0.0.0.0:25` and
/// `[::]:25` can be given together.
fn bind_listener(addr: &SocketAddr) -> nix::Result<TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt,
        socket, sockopt,
    };
    use std::os::fd::AsRawFd;
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(*addr))?;
    listen(&fd, Backlog::new(128)?)?;
    Ok(TcpListener::from(fd))
}

/// Answers a connection we will not serve, without waiting long for a slow client.
fn refuse(stream: &mut TcpStream, reply: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(reply.as_bytes());
}

/// `--detach`: start a copy of ourselves in the background and wait until it is serving
/// (its PID file names it) or has failed.
fn detach(args: &Args) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        write_stderr_line("qpsmtpd: cannot find own executable");
        return ExitCode::FAILURE;
    };
    let spawned = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(DETACHED, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            write_stderr_line(&format!("qpsmtpd: cannot detach: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            write_stderr_line(&format!("qpsmtpd: background server exited: {status}"));
            return ExitCode::FAILURE;
        }
        let serving = match &args.pid_file {
            Some(p) => std::fs::read_to_string(p).is_ok_and(|t| t.trim() == child.id().to_string()),
            None => started.elapsed() > Duration::from_secs(1),
        };
        if serving {
            return ExitCode::SUCCESS;
        }
        if started.elapsed() > Duration::from_secs(30) {
            write_stderr_line("qpsmtpd: background server did not start within 30 s");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
