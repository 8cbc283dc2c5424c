//! The session's buffered I/O over its transport: command lines with a length cap, raw
//! input for DATA, and replies batched until the session would wait for input (which is
//! what makes PIPELINING cheap, as in qmail's command table).

use crate::protocol::Reply;
use crate::transport::{ReadOutcome, Transport};
use std::time::{Duration, Instant};

/// Size of the input buffer: the most the session ever holds of unread client input.
pub(crate) const INPUT_BUFFER: usize = 64 * 1024;

/// How long a reply may take to be written before the client is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// The result of reading a command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line, without its line end.
    Text(Vec<u8>),
    /// The line was longer than allowed; it has been skipped up to its line end.
    TooLong,
    Closed(ReadOutcome),
}

pub(crate) struct Io {
    transport: Box<dyn Transport>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    /// Set once a write failed: the client is gone, nothing more is sent.
    pub(crate) broken: bool,
}

impl Io {
    pub(crate) fn new(transport: Box<dyn Transport>) -> Io {
        Io {
            transport,
            buf: vec![0; INPUT_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            out: Vec::with_capacity(1024),
            broken: false,
        }
    }

    /// Unread input.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes of [`Io::buffered`] as read.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more input, sending pending replies first (the client may be waiting for them).
    pub(crate) fn fill(&mut self, deadline: Instant) -> ReadOutcome {
        if self.flush().is_err() {
            return ReadOutcome::Eof;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Callers never let the buffer fill up; treat it as data already there.
            return ReadOutcome::Data(0);
        }
        match self.transport.read(&mut self.buf[self.end..], deadline) {
            Ok(ReadOutcome::Data(n)) => {
                self.end += n;
                ReadOutcome::Data(n)
            }
            Ok(other) => other,
            Err(_) => ReadOutcome::Eof,
        }
    }

    /// Reads one command line of at most `max` bytes including its line end. CRLF and bare
    /// LF both end a line. Longer lines are skipped up to their end and reported, never
    /// buffered whole.
    pub(crate) fn read_line(&mut self, max: usize, timeout: Duration) -> Line {
        let deadline = Instant::now() + timeout;
        let mut skipping = false;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', self.buffered()) {
                let len = pos + 1;
                if skipping || len > max {
                    self.consume(len);
                    return Line::TooLong;
                }
                let mut line = self.buffered()[..pos].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.consume(len);
                return Line::Text(line);
            }
            if self.buffered().len() >= max {
                // No line end within the limit: drop what we have and skip to the line end.
                skipping = true;
                self.start = 0;
                self.end = 0;
            }
            match self.fill(deadline) {
                ReadOutcome::Data(_) => {}
                other => return Line::Closed(other),
            }
        }
    }

    /// Queues a reply; it goes out with the next flush.
    pub(crate) fn send(&mut self, reply: &Reply) {
        if !self.broken {
            reply.render(&mut self.out);
        }
    }

    /// Writes queued replies.
    pub(crate) fn flush(&mut self) -> Result<(), ()> {
        if self.out.is_empty() || self.broken {
            self.out.clear();
            return if self.broken { Err(()) } else { Ok(()) };
        }
        let result = self
            .transport
            .write_all(&self.out, Instant::now() + WRITE_TIMEOUT);
        self.out.clear();
        if result.is_err() {
            self.broken = true;
            return Err(());
        }
        Ok(())
    }

    /// Reads and drops what the client has already sent (at most `max` bytes, for at most
    /// `timeout`). Closing a socket with unread input makes the kernel send a reset, which
    /// can destroy the last reply before the client has read it; after this it sends an
    /// orderly close.
    pub(crate) fn drain(&mut self, timeout: Duration, max: usize) {
        self.start = 0;
        self.end = 0;
        let deadline = Instant::now() + timeout;
        let mut dropped = 0;
        while dropped < max {
            match self.transport.read(&mut self.buf, deadline) {
                Ok(ReadOutcome::Data(n)) if n > 0 => dropped += n,
                _ => return,
            }
        }
    }

    /// True if input is already buffered or arrives within `timeout`.
    pub(crate) fn wait_readable(&mut self, timeout: Duration) -> bool {
        if !self.buffered().is_empty() {
            return true;
        }
        let _ = self.flush();
        self.transport.wait_readable(timeout).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::MemoryTransport;

    fn io_with(input: &[u8], max_read: usize) -> Io {
        let (t, h) = MemoryTransport::new();
        h.push(input);
        h.set_max_read(max_read);
        Io::new(Box::new(t))
    }

    #[test]
    fn lines_and_limits() {
        let long = format!("NOOP {}\r\n", "x".repeat(600));
        let input = format!("HELO a\r\nbare lf\n{long}QUIT\r\n");
        for max_read in [1, 7, 1000] {
            let mut io = io_with(input.as_bytes(), max_read);
            let t = Duration::from_secs(1);
            assert_eq!(io.read_line(512, t), Line::Text(b"HELO a".to_vec()));
            assert_eq!(io.read_line(512, t), Line::Text(b"bare lf".to_vec()));
            assert_eq!(io.read_line(512, t), Line::TooLong);
            assert_eq!(io.read_line(512, t), Line::Text(b"QUIT".to_vec()));
            assert_eq!(io.read_line(512, t), Line::Closed(ReadOutcome::Eof));
        }
    }

    #[test]
    fn exactly_at_the_limit() {
        let ok = format!("{}\r\n", "a".repeat(510));
        let too_long = format!("{}\r\n", "a".repeat(511));
        let mut io = io_with(format!("{ok}{too_long}").as_bytes(), 100);
        let t = Duration::from_secs(1);
        assert!(matches!(io.read_line(512, t), Line::Text(l) if l.len() == 510));
        assert_eq!(io.read_line(512, t), Line::TooLong);
    }

    #[test]
    fn endless_line_stays_bounded() {
        let input = vec![b'x'; 10 * INPUT_BUFFER];
        let mut io = io_with(&input, INPUT_BUFFER);
        assert_eq!(
            io.read_line(512, Duration::from_secs(1)),
            Line::Closed(ReadOutcome::Eof)
        );
    }
}
