//! The DATA decoder: finds the end of the message, removes dot-stuffing and turns CRLF line
//! ends into LF, streaming, in constant memory.
//!
//! Only `<CRLF>.<CRLF>` ends the data (RFC 5321 §4.1.1.4). The decoder never normalises
//! anything before it looks for the terminator, so `<LF>.<CRLF>`, `<CR>.<CR>` and friends
//! (the "SMTP smuggling" sequences) cannot end a message early. Every bare CR or bare LF is
//! recorded instead; the session refuses such a message once the real terminator arrives,
//! so the bytes after a smuggled terminator can never become a second message.
//!
//! ```text
//!  state      byte    action                          next
//!  LineStart  '.'     (drop the dot)                  Dot
//!  LineStart  other   like Middle
//!  Middle     '\r'                                    Cr
//!  Middle     '\n'    bare LF: flag, emit '\n'        Middle
//!  Middle     other   emit                            Middle
//!  Cr         '\n'    emit '\n'                       LineStart
//!  Cr         other   bare CR: flag, emit '\r'        reprocess in Middle
//!  Dot        '\r'                                    DotCr
//!  Dot        other   (dot-stuffing removed)          reprocess in Middle
//!  DotCr      '\n'    end of data
//!  DotCr      other   like Cr after the dropped dot
//! ```

/// Where the decoder is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Just after a CRLF (or at the very start of the data).
    LineStart,
    /// Inside a line.
    Middle,
    /// After a CR inside a line.
    Cr,
    /// After a `.` at the start of a line.
    Dot,
    /// After `.` CR at the start of a line.
    DotCr,
}

/// Streaming DATA decoder. Feed it input as it arrives; it calls the sink with decoded
/// (LF-terminated, dot-unstuffed) bytes and tells when the terminator has been seen.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    bare_cr: usize,
    bare_lf: usize,
}

impl Default for DataDecoder {
    fn default() -> Self {
        DataDecoder::new()
    }
}

impl DataDecoder {
    pub fn new() -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            bare_cr: 0,
            bare_lf: 0,
        }
    }

    /// True if a CR or LF appeared anywhere other than in a CRLF pair.
    pub fn saw_bare_line_end(&self) -> bool {
        self.bare_cr + self.bare_lf > 0
    }

    pub fn bare_cr_count(&self) -> usize {
        self.bare_cr
    }

    pub fn bare_lf_count(&self) -> usize {
        self.bare_lf
    }

    /// Decodes `input`. Returns `Some(n)` when the terminator ends at `input[n - 1]`: the
    /// bytes from `n` on belong to the next command. Returns `None` when all of `input` was
    /// consumed and the message goes on.
    pub fn feed(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::LineStart | State::Middle => {
                    if self.state == State::LineStart && input[i] == b'.' {
                        self.state = State::Dot;
                        i += 1;
                        continue;
                    }
                    // Fast path: copy the run up to the next CR or LF in one go.
                    let run = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                    if run > 0 {
                        sink(&input[i..i + run]);
                        i += run;
                        self.state = State::Middle;
                        continue;
                    }
                    if input[i] == b'\r' {
                        self.state = State::Cr;
                    } else {
                        self.bare_lf += 1;
                        sink(b"\n");
                        self.state = State::Middle;
                    }
                    i += 1;
                }
                State::Cr | State::DotCr => {
                    if input[i] == b'\n' {
                        i += 1;
                        if self.state == State::DotCr {
                            self.state = State::LineStart;
                            return Some(i);
                        }
                        sink(b"\n");
                        self.state = State::LineStart;
                    } else {
                        // A CR not followed by LF. Leave the byte for the Middle state.
                        self.bare_cr += 1;
                        sink(b"\r");
                        self.state = State::Middle;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // A dot-stuffed line: the leading dot is gone, the rest is ordinary.
                        self.state = State::Middle;
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `chunk` bytes; returns (decoded, end offset, bare).
    fn decode(input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>, bool) {
        let mut d = DataDecoder::new();
        let mut out = Vec::new();
        let mut offset = 0;
        for piece in input.chunks(chunk.max(1)) {
            if let Some(n) = d.feed(piece, &mut |b| out.extend_from_slice(b)) {
                return (out, Some(offset + n), d.saw_bare_line_end());
            }
            offset += piece.len();
        }
        (out, None, d.saw_bare_line_end())
    }

    #[test]
    fn table() {
        // input, decoded output, end offset, bare line end seen
        type Case = (&'static [u8], &'static [u8], Option<usize>, bool);
        let cases: &[Case] = &[
            (b".\r\n", b"", Some(3), false),
            (b"a\r\n.\r\n", b"a\n", Some(6), false),
            (b"a\r\n.\r\nMAIL", b"a\n", Some(6), false),
            (
                b"Subject: x\r\n\r\nbody\r\n.\r\n",
                b"Subject: x\n\nbody\n",
                Some(23),
                false,
            ),
            (
                b"..leading dot\r\n.\r\n",
                b".leading dot\n",
                Some(18),
                false,
            ),
            (b".x\r\n.\r\n", b"x\n", Some(7), false),
            (b"...\r\n.\r\n", b"..\n", Some(8), false),
            // Smuggling: none of these end the data, all are flagged.
            (
                b"a\n.\r\nMAIL FROM:<x>\r\n",
                b"a\n.\nMAIL FROM:<x>\n",
                None,
                true,
            ),
            (b"a\r\n.\nb\r\n", b"a\n\nb\n", None, true),
            (b"a\r.\r\n", b"a\r.\n", None, true),
            (b"a\r\n.\rb\r\n", b"a\n\rb\n", None, true),
            (b"a\n.\n", b"a\n.\n", None, true),
            // ...and the real terminator afterwards still ends it.
            (b"a\n.\r\nb\r\n.\r\n", b"a\n.\nb\n", Some(11), true),
            (b"bare\rcr\r\n.\r\n", b"bare\rcr\n", Some(12), true),
            (b"x\r\r\n.\r\n", b"x\r\n", Some(7), true),
            (b"no end", b"no end", None, false),
        ];
        for (input, output, end, bare) in cases {
            for chunk in [1, 2, 3, 7, input.len()] {
                let got = decode(input, chunk);
                assert_eq!(
                    got,
                    (output.to_vec(), *end, *bare),
                    "input {:?} chunk {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn counts_bare_line_ends() {
        let mut d = DataDecoder::new();
        d.feed(b"a\nb\rc\r\n", &mut |_| {});
        assert_eq!((d.bare_lf_count(), d.bare_cr_count()), (1, 1));
    }
}
