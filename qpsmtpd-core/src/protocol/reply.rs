//! SMTP replies: a code, an enhanced status code (RFC 3463) and one or more lines of text.
//!
//! Every reply the server sends is built here, so the rules live in one place:
//! - each line carries the enhanced status code when the reply has one (RFC 2034 §4);
//! - text supplied by a plugin may start with its own enhanced code (`5.7.1 go away`),
//!   which then replaces the default one, with its class forced to match the reply code;
//! - no line of text can contain CR or LF, so a message can never inject a second reply.

use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enhanced {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    /// Parses `"5.7.1"`. Returns `None` for anything that is not three dot-separated numbers
    /// with a class of 2, 4 or 5.
    pub fn parse(s: &str) -> Option<Enhanced> {
        let mut parts = s.split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(Enhanced {
            class,
            subject,
            detail,
        })
    }
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply, possibly multi-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<Enhanced>,
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply with a default enhanced code (`"2.0.0"`, or `""` for none) and text that may
    /// span several lines (split on `\n`). If the text's first line starts with an enhanced
    /// code, that code wins over `enhanced`.
    pub fn new(code: u16, enhanced: &str, text: &str) -> Reply {
        let mut reply = Reply {
            code,
            enhanced: Enhanced::parse(enhanced),
            lines: Vec::new(),
        };
        reply.set_text(text);
        reply
    }

    /// A reply that must not carry an enhanced code: the 220 banner, the 354 go-ahead and
    /// the first line of an EHLO answer (RFC 2034 exempts them).
    pub fn plain(code: u16, text: &str) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: split_lines(text),
        }
    }

    /// Replaces the text; a leading enhanced code in the text replaces the reply's own.
    pub fn set_text(&mut self, text: &str) {
        let mut lines = split_lines(text);
        if let Some(first) = lines.first_mut()
            && let Some((code, rest)) = first.split_once(' ')
            && let Some(enh) = Enhanced::parse(code)
        {
            self.enhanced = Some(enh);
            *first = rest.to_string();
        }
        self.lines = lines;
    }

    /// The reply class: 2, 3, 4 or 5.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// The text of all lines joined by `"; "`, for log lines.
    pub fn text(&self) -> String {
        self.lines.join("; ")
    }

    /// Appends the wire form, CRLF-terminated, to `out`.
    pub fn render(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let code = self.code.clamp(200, 599);
        // The enhanced class must agree with the reply code (RFC 3463 §2).
        let enhanced = self.enhanced.and_then(|e| {
            let class = (code / 100) as u8;
            matches!(class, 2 | 4 | 5).then_some(Enhanced { class, ..e })
        });
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let _ = write!(out, "{code}{sep}");
            if let Some(e) = enhanced {
                let _ = write!(out, "{e}");
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a string (tests and logs).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.render(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl fmt::Display for Reply {
    /// The reply as it would be logged: `550 5.7.1 text; more text`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        write!(f, " {}", self.text())
    }
}

/// Splits text into reply lines. Lone CRs and other control characters are replaced by a
/// space so that nothing a plugin (or a client echoed through a plugin) writes can break the
/// framing of the reply.
fn split_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|l| {
            l.trim_end_matches('\r')
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_and_multi_line() {
        let cases: &[(Reply, &str)] = &[
            (Reply::new(250, "2.0.0", "OK"), "250 2.0.0 OK\r\n"),
            (
                Reply::new(214, "2.0.0", "a\nb"),
                "214-2.0.0 a\r\n214 2.0.0 b\r\n",
            ),
            (Reply::plain(354, "go ahead"), "354 go ahead\r\n"),
            (
                Reply::new(550, "5.7.1", "5.1.1 no such user"),
                "550 5.1.1 no such user\r\n",
            ),
            // A plugin's enhanced code of the wrong class is corrected.
            (
                Reply::new(451, "4.3.0", "5.7.1 try later"),
                "451 4.7.1 try later\r\n",
            ),
            (
                Reply::new(550, "5.7.1", "x\r\ny"),
                "550-5.7.1 x\r\n550 5.7.1 y\r\n",
            ),
            (Reply::new(550, "5.7.1", "bad\rcr"), "550 5.7.1 bad cr\r\n"),
            (Reply::new(250, "", "no code"), "250 no code\r\n"),
        ];
        for (reply, wire) in cases {
            assert_eq!(reply.to_wire(), *wire, "{reply:?}");
        }
    }

    #[test]
    fn parses_enhanced_codes() {
        assert_eq!(
            Enhanced::parse("4.7.1"),
            Some(Enhanced {
                class: 4,
                subject: 7,
                detail: 1
            })
        );
        for bad in ["3.0.0", "5.7", "5.7.1.1", "x.7.1", "", "5.7.1000"] {
            assert_eq!(Enhanced::parse(bad), None, "{bad}");
        }
    }
}
