//! `qpsmtpd summarize [FILE...]`: one row per connection from a qpsmtpd log, the
//! equivalent of the original's `log/summarize`.
//!
//! It reads log lines in the server's format (`<pid> <session>.<txn> [(<hook>) <plugin>:]
//! message`, with anything in front of it such as a multilog or logging/file time stamp)
//! and prints, for each connection as it ends: the client's IP, its HELO name, the
//! sender, the recipients (refused ones marked `!`), what each plugin said (`relay:pass
//! rcpt_ok:fail`), and what became of the mail. The server must log at INFO (loglevel 6)
//! for the rows to be complete: the core's connect/helo/mail/rcpt/queued/disconnect lines
//! and the plugins' pass/fail/skip/error summary lines are INFO.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};

/// What the log said about one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    pub session: String,
    pub ip: String,
    pub helo: String,
    pub sender: String,
    pub recipients: Vec<String>,
    /// `plugin:result`, in order, each plugin once per result.
    pub plugins: Vec<String>,
    pub queued: usize,
    /// The reply to the last message that was not queued, or to a refused recipient.
    pub refused: Option<String>,
    /// The last reply the client got (to tell a connection closed by a refusal).
    pub last_reply: Option<String>,
}

impl Connection {
    /// What became of the mail.
    pub fn disposition(&self) -> String {
        if self.queued > 0 {
            return match self.queued {
                1 => "queued".into(),
                n => format!("queued x{n}"),
            };
        }
        if let Some(r) = &self.refused {
            return format!("refused {r}");
        }
        match &self.last_reply {
            Some(r) if r.starts_with('4') || r.starts_with('5') => format!("closed {r}"),
            _ => "no mail".into(),
        }
    }
}

/// The parts of a log line that matter here.
#[derive(Debug, PartialEq, Eq)]
struct Line<'a> {
    session: &'a str,
    plugin: Option<&'a str>,
    message: &'a str,
}

/// Finds `<session>.<txn>` (four dot-separated parts: hex time, hex pid, two counters)
/// and splits off the optional `(<hook>) <plugin>: ` after it.
fn parse_line(line: &str) -> Option<Line<'_>> {
    let mut rest = line;
    let id = loop {
        let trimmed = rest.trim_start();
        let (token, after) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        if token.is_empty() {
            return None;
        }
        if is_transaction_id(token) {
            rest = after;
            break token;
        }
        rest = after;
    };
    let session = &id[..id.rfind('.')?];
    let (plugin, message) = match rest.strip_prefix('(') {
        Some(hooked) => {
            let (_hook, after) = hooked.split_once(") ")?;
            match after.split_once(": ") {
                Some((plugin, message)) if !plugin.contains(' ') => (Some(plugin), message),
                _ => (None, after),
            }
        }
        None => (None, rest),
    };
    Some(Line {
        session,
        plugin,
        message,
    })
}

fn is_transaction_id(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    // The time is 8 hex digits (until 2106), which keeps IPv4 addresses out.
    parts.len() == 4
        && parts[0].len() >= 8
        && parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
        && parts[2..]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The reply code (and enhanced code) at the end of an event line: `... : 550 5.7.1 text`.
fn reply_code(text: &str) -> String {
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Folds log lines into connections; a connection is handed to `done` when its
/// `disconnect` line is read, so memory stays bounded by the connections still open.
pub struct Summarizer {
    open: HashMap<String, Connection>,
    /// Sessions in the order they were first seen, for the ones never closed.
    order: Vec<String>,
}

impl Default for Summarizer {
    fn default() -> Self {
        Summarizer::new()
    }
}

impl Summarizer {
    pub fn new() -> Summarizer {
        Summarizer {
            open: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Reads one log line; returns the connection it completed, if any.
    pub fn feed(&mut self, line: &str) -> Option<Connection> {
        let l = parse_line(line)?;
        if !self.open.contains_key(l.session) {
            self.order.push(l.session.to_string());
            self.open.insert(
                l.session.to_string(),
                Connection {
                    session: l.session.to_string(),
                    ..Connection::default()
                },
            );
        }
        let c = self.open.get_mut(l.session)?;
        if let Some(plugin) = l.plugin {
            let result = l.message.split([':', ' ']).next().unwrap_or("");
            let result = if l.message.starts_with("fail, tolerated") {
                "tolerated"
            } else if l.message.starts_with("fail, naughty") {
                "naughty"
            } else {
                result
            };
            if matches!(
                result,
                "pass" | "fail" | "skip" | "error" | "tolerated" | "naughty"
            ) {
                let entry = format!("{plugin}:{result}");
                if !c.plugins.contains(&entry) {
                    c.plugins.push(entry);
                }
            }
            return None;
        }
        let m = l.message;
        if let Some(rest) = m.strip_prefix("connect from ") {
            c.ip = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(host) = m.strip_prefix("helo ").or_else(|| m.strip_prefix("ehlo ")) {
            c.helo = host.to_string();
        } else if let Some(sender) = m.strip_prefix("mail from ") {
            c.sender = sender.to_string();
        } else if let Some(rest) = m.strip_prefix("rcpt to ") {
            if let Some((addr, outcome)) = rest.split_once(": ") {
                if outcome == "accepted" {
                    c.recipients.push(addr.to_string());
                } else {
                    c.recipients.push(format!("!{addr}"));
                    let reply = outcome.strip_prefix("refused: ").unwrap_or(outcome);
                    c.refused = Some(reply_code(reply));
                }
            }
        } else if m.starts_with("queued: ") {
            c.queued += 1;
        } else if m.starts_with("not queued: ") {
            if let Some((_, reply)) = m.rsplit_once(": ") {
                c.refused = Some(reply_code(reply));
            }
        } else if m == "disconnect" {
            self.order.retain(|s| s != l.session);
            return self.open.remove(l.session);
        } else if m.len() > 4
            && m.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && m.as_bytes()[3] == b' '
        {
            c.last_reply = Some(reply_code(m));
        }
        None
    }

    /// The connections whose end was not in the log, in the order they started.
    pub fn unfinished(mut self) -> Vec<Connection> {
        let order = std::mem::take(&mut self.order);
        order
            .into_iter()
            .filter_map(|s| self.open.remove(&s))
            .collect()
    }
}

const HEADER: [&str; 7] = ["session", "ip", "helo", "from", "to", "plugins", "result"];

/// One output row, tab-separated (empty fields as `-`).
pub fn row(c: &Connection) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    [
        c.session.clone(),
        dash(&c.ip),
        dash(&c.helo),
        dash(&c.sender),
        dash(&c.recipients.join(",")),
        dash(&c.plugins.join(" ")),
        c.disposition(),
    ]
    .join("\t")
}

/// Reads `input` to the end and writes the table to `out`.
pub fn summarize(input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", HEADER.join("\t"))?;
    let mut s = Summarizer::new();
    for line in input.lines() {
        let line = match line {
            Ok(l) => l,
            // A log may hold bytes that are not UTF-8; such a line cannot be ours.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
            Err(e) => return Err(e),
        };
        if let Some(c) = s.feed(&line) {
            writeln!(out, "{}", row(&c))?;
        }
    }
    for c in s.unfinished() {
        writeln!(out, "{}", row(&c))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
@400000006740a1b2 4242 6740a1b2.1092.1.0 connect from 192.0.2.7 ([192.0.2.7])
4242 6740a1b2.1092.1.0 (connect) relay: skip: 192.0.2.7 is not a relay client
4242 6740a1b2.1092.1.0 220 mx.example ESMTP qpsmtpd 0.1.0 ready
4243 6740a1b2.1093.1.0 connect from 198.51.100.9 ([198.51.100.9])
4242 6740a1b2.1092.1.0 ehlo client.example
4242 6740a1b2.1092.1.1 mail from <a@sender.example>
4242 6740a1b2.1092.1.1 (rcpt) rcpt_ok: fail: <x@elsewhere.example> is not one of our domains
4242 6740a1b2.1092.1.1 rcpt to <x@elsewhere.example>: refused: 550 5.7.1 Relaying denied
4242 6740a1b2.1092.1.1 (rcpt) rcpt_ok: pass: example.com in rcpthosts
4242 6740a1b2.1092.1.1 rcpt to <b@example.com>: accepted
4242 6740a1b2.1092.1.1 (data_post) headers: fail, tolerated: no Date header
4242 6740a1b2.1092.1.1 queued: from <a@sender.example> to <b@example.com>: 250 2.0.0 Queued!
4242 6740a1b2.1092.1.2 disconnect
4243 6740a1b2.1093.1.0 (connect) dnsbl: fail: listed
4243 6740a1b2.1093.1.0 550 5.7.1 Connection from you denied, bye bye.
4243 6740a1b2.1093.1.0 disconnect
4244 6740a1b3.109c.1.0 connect from 203.0.113.5 ([203.0.113.5])
not a log line at all
";

    #[test]
    fn one_row_per_connection() {
        let mut out = Vec::new();
        summarize(LOG.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], "session\tip\thelo\tfrom\tto\tplugins\tresult");
        assert_eq!(
            rows[1],
            "6740a1b2.1092.1\t192.0.2.7\tclient.example\t<a@sender.example>\t\
             !<x@elsewhere.example>,<b@example.com>\trelay:skip rcpt_ok:fail rcpt_ok:pass \
             headers:tolerated\tqueued"
        );
        assert_eq!(
            rows[2],
            "6740a1b2.1093.1\t198.51.100.9\t-\t-\t-\tdnsbl:fail\tclosed 550 5.7.1"
        );
        assert_eq!(rows[3], "6740a1b3.109c.1\t203.0.113.5\t-\t-\t-\t-\tno mail");
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn refused_messages_and_recipients() {
        let mut s = Summarizer::new();
        for l in [
            "1 6740a1b2.b.1.1 rcpt to <x@y.example>: refused: 450 4.7.1 No plugin decided",
            "1 6740a1b2.b.1.1 not queued: from <s@t.example> to <x@y.example>: 554 5.5.2 Bare CR or LF",
        ] {
            assert!(s.feed(l).is_none());
        }
        let c = s.feed("1 6740a1b2.b.1.2 disconnect").unwrap();
        assert_eq!(c.disposition(), "refused 554 5.5.2");
    }

    #[test]
    fn recognises_ids() {
        assert!(is_transaction_id("6740a1b2.1092.1.0"));
        for bad in ["6740a1b2.1092.1", "x.1.1.1", "1.2.3.x", "....", "127.0.0.1"] {
            assert!(!is_transaction_id(bad), "{bad}");
        }
    }
}
