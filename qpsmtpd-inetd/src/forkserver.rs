//! The forkserver (`--listen`): bind, drop privileges, load the configuration and plugins
//! once, then fork one child per accepted connection. Each child serves its session with
//! the configuration the parent holds, so a configuration edit takes effect on SIGHUP, and
//! a broken one is refused by the reload while the old one goes on serving.
//!
//! Before forking, the parent enforces `--max-connections` and runs the `pre-connection`
//! hook (the `hosts_allow` plugin enforces `--max-from-ip` there).
//!
//! Signals arrive through a signalfd polled with the listeners: SIGCHLD reaps children,
//! SIGHUP reloads the configuration and plugins, SIGTERM/SIGINT stop accepting, ask the
//! children to finish (they answer 421 at their next wait) and wait for them.

use crate::cli::Args;
use crate::inetd::shutdown_signals;
use crate::load::load_server;
use crate::pidfile::PidFile;
use crate::privileges;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::log::write_stderr_line;
use qpsmtpd_core::{
    ConnectionInfo, FdTransport, Level, PreConnectionFacts, Server, Session, run_pre_connection,
};
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(args: &Args) -> ExitCode {
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
    listeners: Vec<TcpListener>,
    signals: SignalFd,
    /// The signals the parent takes through `signals` (blocked for normal delivery).
    mask: SigSet,
    server: Arc<Server>,
    /// Running children and the peer each one serves.
    children: HashMap<Pid, IpAddr>,
    _pid_file: Option<PidFile>,
}

impl Forkserver {
    fn start(args: &Args) -> Result<Forkserver, String> {
        let mut listeners = Vec::new();
        for addr in &args.listen {
            let l = bind_listener(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            listeners.push(l);
        }
        // Opened while still root (it usually lives in /run), written once we know our PID.
        let pid_file = args.pid_file.as_deref().map(PidFile::open).transpose()?;
        privileges::drop_to(args.user.as_deref(), args.group.as_deref())?;
        let server = load_server(args.config_dir.as_deref())
            .map_err(|e| format!("configuration error: {e}"))?;
        let server = Arc::new(server);
        for l in &listeners {
            if let Ok(addr) = l.local_addr() {
                server.log_core(Level::Notice, None, &format!("Listening on {addr}"));
            }
        }
        server.log_core(
            Level::Notice,
            None,
            &format!(
                "Running as uid {} gid {}",
                nix::unistd::getuid(),
                nix::unistd::getgid()
            ),
        );
        if args.max_from_ip > 0 && !server.chain.has_hook(qpsmtpd_core::Hook::PreConnection) {
            server.log_core(
                Level::Warn,
                None,
                &format!(
                    "--max-from-ip {} is not enforced: no plugin hooks pre-connection (add hosts_allow to config/plugins)",
                    args.max_from_ip
                ),
            );
        }
        if args.detach {
            detach()?;
        }
        let pid_file = pid_file.map(PidFile::write).transpose()?;
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
        Ok(Forkserver {
            args: args.clone(),
            listeners,
            signals,
            mask,
            server,
            children: HashMap::new(),
            _pid_file: pid_file,
        })
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

    /// Collects every child that has ended.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => {
                    self.children.remove(&pid);
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
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
        let remote_ip = strip_mapped(peer.ip());
        let local = stream.local_addr().ok();
        // Children may have ended since the last poll round; count only the live ones.
        self.reap();
        if self.children.len() >= self.args.max_connections {
            self.log(
                Level::Notice,
                &format!(
                    "too many connections ({}), refusing {remote_ip}",
                    self.children.len()
                ),
            );
            let me = &self.server.core.me;
            refuse(
                &mut stream,
                &format!("421 4.3.2 {me} Too many connections, try again later\r\n"),
            );
            return;
        }
        let facts = PreConnectionFacts {
            remote_ip,
            remote_port: peer.port(),
            local_ip: local.map(|a| strip_mapped(a.ip())),
            local_port: local.map_or(0, |a| a.port()),
            max_conn_ip: self.args.max_from_ip,
        };
        let peers: Vec<IpAddr> = self.children.values().copied().collect();
        if let Some(reply) = run_pre_connection(&self.server, &facts, &peers) {
            self.log(
                Level::Info,
                &format!("pre-connection refused {remote_ip}: {reply}"),
            );
            refuse(&mut stream, &reply.to_wire());
            return;
        }
        match fork_process() {
            Ok(ForkResult::Parent { child }) => {
                self.log(
                    Level::Info,
                    &format!(
                        "connection from {remote_ip}:{} served by {child}",
                        facts.remote_port
                    ),
                );
                self.children.insert(child, remote_ip);
            }
            Ok(ForkResult::Child) => self.serve_child(stream, &facts),
            Err(e) => self.log(Level::Error, &format!("cannot fork for {remote_ip}: {e}")),
        }
    }

    /// In the child: serve the session with the parent's configuration, then exit.
    fn serve_child(&mut self, stream: TcpStream, facts: &PreConnectionFacts) -> ! {
        self.listeners.clear();
        let _ = self.mask.thread_unblock();
        let server = self.server.clone();
        server.run_post_fork();
        let info = ConnectionInfo {
            remote_ip: facts.remote_ip,
            remote_port: facts.remote_port,
            local_ip: facts.local_ip,
            local_port: facts.local_port,
            env: std::env::vars().collect(),
            pre_connection_done: true,
            ..ConnectionInfo::default()
        };
        let session = match stream.try_clone() {
            Ok(input) => {
                let transport = FdTransport::new(input, stream);
                let transport = match shutdown_signals() {
                    Some(fd) => transport.with_shutdown(Box::new(fd)),
                    None => transport,
                };
                Session::new(server, info, Box::new(transport))
            }
            Err(e) => {
                self.log(
                    Level::Error,
                    &format!("cannot serve {}: {e}", facts.remote_ip),
                );
                std::process::exit(1);
            }
        };
        session.run();
        // exit() runs no destructors: the parent's PID file must stay where it is.
        std::process::exit(0);
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
            let _ = kill(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(self.args.shutdown_timeout);
        while !self.children.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            self.reap();
        }
        for pid in self.children.keys() {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        while !self.children.is_empty() && waitpid(None, None).is_ok() {
            self.reap();
        }
        self.log(Level::Notice, "stopped");
    }
}

/// fork(2).
#[allow(unsafe_code)]
fn fork_process() -> nix::Result<ForkResult> {
    // SAFETY: the forkserver is single-threaded (it never starts a thread, and plugins run
    // their sessions only in children), so no other thread can hold a lock, such as the
    // allocator's, at the moment of the fork; the child goes on running ordinary Rust code.
    unsafe { nix::unistd::fork() }
}

/// `--detach`: the parent returns to the shell; the child leaves the terminal's session and
/// points its standard descriptors at /dev/null (use a logging plugin to keep logs).
fn detach() -> Result<(), String> {
    match fork_process().map_err(|e| format!("cannot detach: {e}"))? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    for dup in [
        nix::unistd::dup2_stdin,
        nix::unistd::dup2_stdout,
        nix::unistd::dup2_stderr,
    ] {
        dup(&null).map_err(|e| format!("dup2: {e}"))?;
    }
    Ok(())
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
