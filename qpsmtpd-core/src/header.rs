//! The message header block, as fields that plugins can read, add, remove and rename.
//!
//! Fields are kept byte-for-byte as received (LF line ends), so a message that no plugin
//! touches goes out exactly as it came in. Only the split into fields is done here (a line
//! starting with a blank continues the previous field); for decoded values, dates and
//! addresses, plugins hand [`Header::as_bytes`] to `mail-parser` (re-exported by this
//! crate).

use std::io::{self, Write};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    /// The field name as written (case preserved). Empty for a malformed line without a
    /// colon, which is kept as it is.
    name: String,
    /// The whole field: name, colon, value and folded continuation lines, ending in `\n`.
    raw: Vec<u8>,
}

/// A header block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    fields: Vec<Field>,
}

impl Header {
    /// Splits a header block (LF-terminated lines, without the blank line that ends it).
    pub fn parse(block: &[u8]) -> Header {
        let mut fields: Vec<Field> = Vec::new();
        for line in block.split_inclusive(|&b| b == b'\n') {
            let continues = matches!(line.first(), Some(b' ' | b'\t'));
            match fields.last_mut() {
                Some(last) if continues => last.raw.extend_from_slice(line),
                _ => {
                    let name = match line.iter().position(|&b| b == b':') {
                        Some(colon) => String::from_utf8_lossy(&line[..colon])
                            .trim_end()
                            .to_string(),
                        None => String::new(),
                    };
                    let mut raw = line.to_vec();
                    if raw.last() != Some(&b'\n') {
                        raw.push(b'\n');
                    }
                    fields.push(Field { name, raw });
                }
            }
        }
        Header { fields }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All `(name, unfolded value)` pairs, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, String)> {
        self.fields
            .iter()
            .filter(|f| !f.name.is_empty())
            .map(|f| (f.name.as_str(), unfolded_value(f)))
    }

    /// The first value of a field (case-insensitive name), unfolded and trimmed.
    pub fn get(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(unfolded_value)
    }

    /// Every value of a field, in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(unfolded_value)
            .collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// Appends a field at the end.
    pub fn add(&mut self, name: &str, value: &str) {
        let f = make_field(name, value);
        self.fields.push(f);
    }

    /// Adds a field at the top (trace fields such as Received go there).
    pub fn prepend(&mut self, name: &str, value: &str) {
        let f = make_field(name, value);
        self.fields.insert(0, f);
    }

    /// Removes every field with this name; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| !f.name.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// Renames every field called `from` to `to`, keeping its value; renamed fields move
    /// to the end (qpsmtpd does the same with old Authentication-Results).
    pub fn rename(&mut self, from: &str, to: &str) -> usize {
        self.rename_where(from, to, |_| true)
    }

    /// Renames the fields called `from` whose value satisfies `which`; renamed fields move
    /// to the end. Returns how many were renamed.
    pub fn rename_where(&mut self, from: &str, to: &str, which: impl Fn(&str) -> bool) -> usize {
        let (moved, kept): (Vec<Field>, Vec<Field>) = std::mem::take(&mut self.fields)
            .into_iter()
            .partition(|f| f.name.eq_ignore_ascii_case(from) && which(&unfolded_value(f)));
        self.fields = kept;
        let n = moved.len();
        for f in moved {
            let colon = f.raw.iter().position(|&b| b == b':').unwrap_or(0);
            let mut raw = to.as_bytes().to_vec();
            raw.extend_from_slice(&f.raw[colon..]);
            self.fields.push(Field {
                name: to.to_string(),
                raw,
            });
        }
        n
    }

    /// The block as bytes, LF line ends, without the blank line that ends it.
    pub fn as_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.fields.iter().map(|f| f.raw.len()).sum());
        for f in &self.fields {
            out.extend_from_slice(&f.raw);
        }
        out
    }

    /// Writes the block, LF line ends, without the blank line.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        for f in &self.fields {
            w.write_all(&f.raw)?;
        }
        Ok(())
    }
}

fn unfolded_value(f: &Field) -> String {
    let raw = String::from_utf8_lossy(&f.raw);
    let value = match raw.find(':') {
        Some(colon) if !f.name.is_empty() => &raw[colon + 1..],
        _ => &raw[..],
    };
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        if i > 0 && !line.is_empty() {
            out.push(' ');
        }
        out.push_str(line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r'));
    }
    out.trim().to_string()
}

/// Builds `Name: value\n`. Embedded line breaks become folded continuation lines; any other
/// control character (and a CR) is replaced, so a value can never end the header early.
fn make_field(name: &str, value: &str) -> Field {
    let name = clean_header_text(name).replace([':', ' '], "-");
    let mut raw = format!("{name}:");
    for (i, line) in value.split('\n').enumerate() {
        let line = clean_header_text(line);
        if i == 0 {
            if !line.is_empty() {
                raw.push(' ');
            }
            raw.push_str(&line);
        } else if !line.trim().is_empty() {
            raw.push('\n');
            if !line.starts_with([' ', '\t']) {
                raw.push('\t');
            }
            raw.push_str(&line);
        }
    }
    raw.push('\n');
    Field {
        name,
        raw: raw.into_bytes(),
    }
}

/// Makes a string safe inside one header line: CR, LF and other control characters (tab
/// excepted) become `?`. Use it on anything a client supplied (HELO name, addresses).
pub fn clean_header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &[u8] = b"Received: from a\n\tby b\nSubject: hello\n  world\nFrom: x@y\nnot a field\nsubject: again\n";

    #[test]
    fn parses_and_round_trips() {
        let h = Header::parse(BLOCK);
        assert_eq!(h.len(), 5);
        assert_eq!(h.as_bytes(), BLOCK);
        assert_eq!(h.get("SUBJECT").as_deref(), Some("hello world"));
        assert_eq!(h.get_all("subject"), ["hello world", "again"]);
        assert_eq!(h.get("received").as_deref(), Some("from a by b"));
        assert_eq!(h.count("Subject"), 2);
        assert_eq!(h.get("missing"), None);
    }

    #[test]
    fn edits() {
        let mut h = Header::parse(b"From: x@y\nAuthentication-Results: evil; pass\nTo: z\n");
        h.prepend("Received", "from c\nby d; date");
        h.add("X-Test", "1");
        assert_eq!(
            h.rename("authentication-results", "Original-Authentication-Results"),
            1
        );
        assert_eq!(
            String::from_utf8(h.as_bytes()).unwrap(),
            "Received: from c\n\tby d; date\nFrom: x@y\nTo: z\nX-Test: 1\nOriginal-Authentication-Results: evil; pass\n"
        );
        assert_eq!(h.remove("x-test"), 1);
        assert_eq!(h.count("X-Test"), 0);
    }

    #[test]
    fn values_cannot_inject_fields() {
        let mut h = Header::default();
        h.add("X-Helo", "evil\r\nBcc: victim@example.com");
        h.add("X-Ctl", "a\u{1}b\u{0}c");
        let text = String::from_utf8(h.as_bytes()).unwrap();
        assert_eq!(
            text,
            "X-Helo: evil?\n\tBcc: victim@example.com\nX-Ctl: a?b?c\n"
        );
        assert_eq!(Header::parse(text.as_bytes()).len(), 2);
    }

    #[test]
    fn missing_final_newline() {
        let h = Header::parse(b"Subject: x");
        assert_eq!(h.as_bytes(), b"Subject: x\n");
    }
}
