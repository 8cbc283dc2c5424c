//! Receiving a message after `354`: the decoder finds the end, the collector splits the
//! header from the body, the body streams to the spool. Memory use is bounded by the input
//! buffer, `max_header_size` and `size_threshold`, whatever the message size.
//!
//! Whatever goes wrong while the message arrives (too big, bare line ends, a full disk, a
//! header plugin's deny), the data is read to its real end before the one reply, so the
//! session stays in step with the client.

use super::{Flow, Session};
use crate::header::Header;
use crate::hook::{Hook, Verdict};
use crate::log::Level;
use crate::protocol::{DataDecoder, Reply};
use crate::respond::{self, Response, Then};
use crate::spool::Spool;
use crate::transport::ReadOutcome;
use std::time::Instant;

/// Where decoded message bytes go: first the header collector, then the spool.
struct Collector {
    header: Vec<u8>,
    header_done: bool,
    header_just_done: bool,
    header_too_big: bool,
    max_header: usize,
    body: Spool,
    size: u64,
    databytes: u64,
    too_big: bool,
    write_error: Option<std::io::Error>,
}

impl Collector {
    fn push(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.databytes > 0 && self.size > self.databytes {
            self.too_big = true;
        }
        if self.too_big || self.header_too_big || self.write_error.is_some() {
            return; // read on to the end, keep nothing
        }
        if self.header_done {
            self.store(bytes);
            return;
        }
        let searched = self.header.len().saturating_sub(1);
        self.header.extend_from_slice(bytes);
        // The header ends at the first empty line; a message may also start with one.
        let end = if self.header.first() == Some(&b'\n') {
            Some(0)
        } else {
            memchr::memmem::find(&self.header[searched..], b"\n\n").map(|i| searched + i + 1)
        };
        match end {
            Some(end) => {
                let body = self.header.split_off(end + 1);
                self.header.truncate(end); // drop the empty line itself
                self.header_done = true;
                self.header_just_done = true;
                self.store(&body);
            }
            None if self.header.len() > self.max_header => {
                self.header_too_big = true;
                self.header = Vec::new();
            }
            None => {}
        }
    }

    fn store(&mut self, bytes: &[u8]) {
        if let Err(e) = self.body.write(bytes) {
            self.write_error = Some(e);
        }
    }
}

/// The message size limit: the server's `databytes` (0 = none) and the recipients' own.
fn effective_databytes(server: u64, recipients: Option<u64>) -> u64 {
    match (server, recipients) {
        (0, Some(r)) => r,
        (s, Some(r)) => s.min(r),
        (s, None) => s,
    }
}

impl Session {
    /// Reads the message after 354 and answers it.
    pub(super) fn receive_message(&mut self) -> Flow {
        let core = &self.server.core;
        let timeout = core.data_timeout;
        let mut decoder = DataDecoder::new();
        let mut c = Collector {
            header: Vec::new(),
            header_done: false,
            header_just_done: false,
            header_too_big: false,
            max_header: core.max_header_size,
            body: Spool::new(&core.spool_dir, core.size_threshold),
            size: 0,
            databytes: effective_databytes(core.databytes, self.st.txn.databytes),
            too_big: false,
            write_error: None,
        };
        let mut header_verdict = Verdict::Declined;
        loop {
            if self.st.io.buffered().is_empty() {
                match self.st.io.fill(Instant::now() + timeout) {
                    ReadOutcome::Data(_) => {}
                    how => return self.lost_in_data(how),
                }
            }
            let input = self.st.io.buffered();
            let end = decoder.feed(input, &mut |b| c.push(b));
            let used = end.unwrap_or(input.len());
            self.st.io.consume(used);
            if c.header_just_done && !decoder.saw_bare_line_end() {
                c.header_just_done = false;
                header_verdict = self.headers_arrived(&c.header);
                if matches!(
                    header_verdict,
                    Verdict::DenyDisconnect(_) | Verdict::DenySoftDisconnect(_)
                ) && let Response::Reply(reply, then) =
                    respond::respond(&respond::DATA_HEADERS_END, &header_verdict, &[])
                {
                    return self.conclude_message(reply, then);
                }
            }
            if end.is_some() {
                break;
            }
        }
        if !c.header_done && !c.header_too_big && !c.too_big && !decoder.saw_bare_line_end() {
            // No empty line: the whole message is header.
            header_verdict = self.headers_arrived(&c.header);
        }
        self.st.txn.data_size = c.size;
        self.log(
            Level::Debug,
            &format!(
                "data received: {} bytes, bare CR {} LF {}",
                c.size,
                decoder.bare_cr_count(),
                decoder.bare_lf_count()
            ),
        );

        let refusal = if decoder.saw_bare_line_end() {
            Some(Reply::new(
                554,
                "5.5.2",
                "Bare CR or LF in message, see RFC 5321 section 2.3.8",
            ))
        } else if c.too_big {
            Some(Reply::new(552, "5.3.4", "Message too big!"))
        } else if c.header_too_big {
            Some(Reply::new(552, "5.3.4", "Message header too big"))
        } else if let Some(e) = &c.write_error {
            self.log(
                Level::Error,
                &format!("error: cannot write spool file: {e}"),
            );
            Some(Reply::new(
                451,
                "4.3.0",
                "Error storing the message, try again later",
            ))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.conclude_message(reply, Then::Reset);
        }
        if let Response::Reply(reply, then) =
            respond::respond(&respond::DATA_HEADERS_END, &header_verdict, &[])
        {
            return self.conclude_message(reply, then);
        }
        if let Err(e) = c.body.flush() {
            self.log(
                Level::Error,
                &format!("error: cannot write spool file: {e}"),
            );
            return self.conclude_message(
                Reply::new(451, "4.3.0", "Error storing the message, try again later"),
                Then::Reset,
            );
        }
        self.st.txn.body = Some(c.body);
        self.deliver()
    }

    /// The header block is complete: store it and run `data_headers_end`.
    fn headers_arrived(&mut self, block: &[u8]) -> Verdict {
        self.st.txn.header = Header::parse(block);
        let verdict = self.run_hook(Hook::DataHeadersEnd, |p, cx| p.data_headers_end(cx));
        match respond::respond(&respond::DATA_HEADERS_END, &verdict, &[]) {
            Response::Proceed(_) => Verdict::Declined,
            Response::Reply(..) => verdict,
        }
    }

    /// The client hung up, went silent or the server is stopping in the middle of DATA.
    /// Nothing was accepted; the spool file is dropped with the transaction.
    fn lost_in_data(&mut self, how: ReadOutcome) -> Flow {
        if how == ReadOutcome::Eof {
            self.log(
                Level::Info,
                "client disconnected during DATA, message discarded",
            );
            let reply = Reply::new(451, "4.3.0", "Incomplete DATA");
            self.log_outcome(&reply);
            self.send(&reply);
        }
        self.lost(how)
    }
}
