//! One session on stdin/stdout: the tcpserver, inetd, xinetd and systemd `Accept=yes`
//! mode.
//!
//! Where the peer is comes from, in order: tcpserver's `TCPREMOTEIP` and friends, xinetd's `REMOTE_HOST`, `getpeername(0)` when stdin
//! is a socket (inetd, systemd). When stdin is a pipe (`swaks --pipe`, scripts) and the
//! environment says nothing, the peer is `0.0.0.0`.

use crate::cli::Args;
use crate::load;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{SockaddrLike, SockaddrStorage, getpeername, getsockname};
use qpsmtpd_core::{ConnectionInfo, FdTransport, Session};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit status for a broken configuration (sysexits EX_CONFIG).
const EX_CONFIG: u8 = 78;

pub fn serve(args: &Args) -> ExitCode {
    silence_stderr_if_it_is_the_client();
    let server = match load::load_server(args.config_dir.as_deref()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            // The client must hear something: a silent close looks like a network fault.
            qpsmtpd_core::log::write_stderr_line(&format!(
                "{} configuration error: {e}",
                std::process::id()
            ));
            let _ = std::io::stdout()
                .write_all(b"421 4.3.0 Service temporarily unavailable (configuration error), try again later\r\n");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let info = connection_info();
    let transport = FdTransport::new(std::io::stdin(), std::io::stdout());
    let transport = match shutdown_signals() {
        Some(fd) => transport.with_shutdown(Box::new(fd)),
        None => transport,
    };
    Session::new(server, info, Box::new(transport)).run();
    ExitCode::SUCCESS
}

/// xinetd (and inetd with some settings) hands the connection over as stdin, stdout *and*
/// stderr: log lines written to stderr would reach the client, breaking the protocol and
/// showing it our internals. Then stderr goes to /dev/null; logs need a logging plugin
/// (`config/logging`) or a wrapper that redirects stderr.
fn silence_stderr_if_it_is_the_client() {
    use nix::sys::stat::fstat;
    use std::os::fd::AsFd;
    let same = match (
        fstat(std::io::stdin().as_fd()),
        fstat(std::io::stderr().as_fd()),
    ) {
        (Ok(a), Ok(b)) => {
            a.st_dev == b.st_dev
                && a.st_ino == b.st_ino
                && (a.st_mode & libc::S_IFMT) == libc::S_IFSOCK
        }
        _ => false,
    };
    if same && let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// SIGTERM and SIGINT end the session at its next wait with a 421, instead of killing it
/// mid-reply.
pub fn shutdown_signals() -> Option<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().ok()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).ok()
}

/// Where the peer is.
fn connection_info() -> ConnectionInfo {
    let socket = socket_addrs();
    let mut info = ConnectionInfo::from_env(load::env)
        .or_else(|| {
            socket.map(|(peer, _)| ConnectionInfo {
                remote_ip: qpsmtpd_core::connection::strip_mapped(peer.ip()),
                remote_port: peer.port(),
                ..ConnectionInfo::default()
            })
        })
        .unwrap_or_default();
    if let Some((peer, local)) = socket {
        // xinetd gives only the peer's IP; the socket has the rest.
        if info.remote_port == 0
            && info.remote_ip == qpsmtpd_core::connection::strip_mapped(peer.ip())
        {
            info.remote_port = peer.port();
        }
        if info.local_ip.is_none() {
            info.local_ip = Some(qpsmtpd_core::connection::strip_mapped(local.ip()));
            info.local_port = local.port();
        }
    }
    info.env = std::env::vars().collect();
    info
}

/// `getpeername`/`getsockname` on fd 0, if it is a TCP socket.
fn socket_addrs() -> Option<(SocketAddr, SocketAddr)> {
    let peer: SockaddrStorage = getpeername(0).ok()?;
    let local: SockaddrStorage = getsockname(0).ok()?;
    Some((to_socket_addr(&peer)?, to_socket_addr(&local)?))
}

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()));
    }
    if let Some(v6) = s.as_sockaddr_in6() {
        return Some(SocketAddr::new(IpAddr::V6(v6.ip()), v6.port()));
    }
    let _ = s.family();
    None
}
