//! Transports: how a session's bytes reach the client.
//!
//! The session never touches a socket. It asks its transport to read (with a deadline),
//! to write, and to answer the few questions plugins may have about the wire (did the
//! client send anything yet?). One transport per driver:
//! - [`FdTransport`]: stdin/stdout under tcpserver, inetd, xinetd and systemd, or an
//!   accepted socket in the forkserver; reads and writes with `poll` deadlines;
//! - [`MemoryTransport`]: scripted input and captured output for transcript and plugin
//!   tests.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The outcome of a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes were read.
    Data(usize),
    /// The client closed its side.
    Eof,
    /// Nothing arrived before the deadline.
    Timeout,
    /// The server is shutting down (the forkserver got SIGTERM).
    Shutdown,
}

/// The wire, as the session sees it.
pub trait Transport: Send {
    /// Reads what is available into `buf`, waiting at most until `deadline`.
    fn read(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<ReadOutcome>;

    /// Writes all of `data`, or fails once `deadline` has passed.
    fn write_all(&mut self, data: &[u8], deadline: Instant) -> io::Result<()>;

    /// Waits up to `timeout` for input to arrive; true if some has (earlytalker asks this).
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool>;
}

/// A transport over file descriptors: `input` is read, `output` is written. Both may be the
/// same socket. An optional `shutdown` descriptor (a signalfd) ends any wait when readable.
pub struct FdTransport<I: AsFd + Send, O: AsFd + Send> {
    input: I,
    output: O,
    shutdown: Option<Box<dyn AsFd + Send>>,
}

impl<I: AsFd + Send, O: AsFd + Send> FdTransport<I, O> {
    pub fn new(input: I, output: O) -> Self {
        FdTransport {
            input,
            output,
            shutdown: None,
        }
    }

    /// Reads become [`ReadOutcome::Shutdown`] once `fd` is readable.
    pub fn with_shutdown(mut self, fd: Box<dyn AsFd + Send>) -> Self {
        self.shutdown = Some(fd);
        self
    }

    /// Polls `input` for reading (or `output` for writing) until the deadline. Returns
    /// `Ok(None)` on timeout, `Ok(Some(true))` when ready, `Ok(Some(false))` on shutdown.
    fn wait(&self, for_write: bool, deadline: Instant) -> io::Result<Option<bool>> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let ms = remaining.as_millis().min(i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            let mut fds = Vec::with_capacity(2);
            if for_write {
                fds.push(PollFd::new(self.output.as_fd(), PollFlags::POLLOUT));
            } else {
                fds.push(PollFd::new(self.input.as_fd(), PollFlags::POLLIN));
            }
            if let Some(s) = &self.shutdown {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(0) if Instant::now() >= deadline => return Ok(None),
                Ok(0) => continue,
                Ok(_) => {}
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            if fds.len() > 1 && ready(&fds[1]) {
                return Ok(Some(false));
            }
            if ready(&fds[0]) {
                return Ok(Some(true));
            }
        }
    }
}

impl<I: AsFd + Send, O: AsFd + Send> Transport for FdTransport<I, O> {
    fn read(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<ReadOutcome> {
        loop {
            match self.wait(false, deadline)? {
                None => return Ok(ReadOutcome::Timeout),
                Some(false) => return Ok(ReadOutcome::Shutdown),
                Some(true) => {}
            }
            match nix::unistd::read(self.input.as_fd(), buf) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => return Ok(ReadOutcome::Data(n)),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(nix::errno::Errno::ECONNRESET) => return Ok(ReadOutcome::Eof),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            // Shutting down (Some(false)) does not stop a reply that is already going out.
            if self.wait(true, deadline)?.is_none() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
            }
            match nix::unistd::write(self.output.as_fd(), data) {
                Ok(n) => data = &data[n..],
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        Ok(self.wait(false, Instant::now() + timeout)? == Some(true))
    }
}

#[derive(Debug, Default)]
struct Pipe {
    input: VecDeque<u8>,
    output: Vec<u8>,
    /// Largest read handed out at once (to exercise input split across reads).
    max_read: Option<usize>,
}

/// An in-memory transport. Keep the [`MemoryHandle`] to feed input and collect output while
/// the session owns the transport.
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport(Arc<Mutex<Pipe>>);

/// The test side of a [`MemoryTransport`].
#[derive(Debug, Clone)]
pub struct MemoryHandle(Arc<Mutex<Pipe>>);

impl MemoryTransport {
    pub fn new() -> (MemoryTransport, MemoryHandle) {
        let t = MemoryTransport::default();
        let h = MemoryHandle(t.0.clone());
        (t, h)
    }
}

impl MemoryHandle {
    /// Queues bytes for the session to read.
    pub fn push(&self, data: &[u8]) {
        self.0.lock().unwrap().input.extend(data);
    }

    /// Takes everything the session has written so far.
    pub fn take_output(&self) -> String {
        let out = std::mem::take(&mut self.0.lock().unwrap().output);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Bytes queued but not yet read by the session.
    pub fn pending_input(&self) -> usize {
        self.0.lock().unwrap().input.len()
    }

    /// Hands out at most `n` bytes per read.
    pub fn set_max_read(&self, n: usize) {
        self.0.lock().unwrap().max_read = Some(n.max(1));
    }
}

impl Transport for MemoryTransport {
    fn read(&mut self, buf: &mut [u8], _deadline: Instant) -> io::Result<ReadOutcome> {
        let mut p = self.0.lock().unwrap();
        if p.input.is_empty() {
            // A scripted client that has nothing more to send has hung up.
            return Ok(ReadOutcome::Eof);
        }
        let n = buf
            .len()
            .min(p.input.len())
            .min(p.max_read.unwrap_or(usize::MAX));
        for (slot, byte) in buf.iter_mut().zip(p.input.drain(..n)) {
            *slot = byte;
        }
        Ok(ReadOutcome::Data(n))
    }

    fn write_all(&mut self, data: &[u8], _deadline: Instant) -> io::Result<()> {
        self.0.lock().unwrap().output.extend_from_slice(data);
        Ok(())
    }

    fn wait_readable(&mut self, _timeout: Duration) -> io::Result<bool> {
        Ok(!self.0.lock().unwrap().input.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_transport_round_trip() {
        let (mut t, h) = MemoryTransport::new();
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(!t.wait_readable(Duration::ZERO).unwrap());
        h.push(b"EHLO x\r\n");
        h.set_max_read(3);
        assert!(t.wait_readable(Duration::ZERO).unwrap());
        let mut buf = [0u8; 16];
        assert_eq!(t.read(&mut buf, deadline).unwrap(), ReadOutcome::Data(3));
        assert_eq!(&buf[..3], b"EHL");
        t.write_all(b"250 ok\r\n", deadline).unwrap();
        assert_eq!(h.take_output(), "250 ok\r\n");
        assert_eq!(h.pending_input(), 5);
    }

    #[test]
    fn fd_transport_reads_writes_and_times_out() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut t = FdTransport::new(a.try_clone().unwrap(), a);
        let mut peer = b;
        let soon = Instant::now() + Duration::from_millis(50);
        let mut buf = [0u8; 8];
        assert_eq!(t.read(&mut buf, soon).unwrap(), ReadOutcome::Timeout);
        use std::io::{Read, Write};
        peer.write_all(b"hi").unwrap();
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(t.read(&mut buf, later).unwrap(), ReadOutcome::Data(2));
        t.write_all(b"ok", later).unwrap();
        let mut got = [0u8; 2];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        drop(peer);
        assert_eq!(t.read(&mut buf, later).unwrap(), ReadOutcome::Eof);
    }
}
