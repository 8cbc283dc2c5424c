//! After the message has arrived: trace headers, `data_post`, and the queue hooks. A 250
//! goes out only when a queue plugin says the message is durably handed over.

use super::{Flow, Session};
use crate::context::AUTH_RESULTS_NOTE;
use crate::header::clean_header_text;
use crate::hook::{Hook, Verdict};
use crate::log::Level;
use crate::protocol::Reply;
use crate::respond::{self, Response, Then};
use crate::server::VERSION;

impl Session {
    pub(super) fn deliver(&mut self) -> Flow {
        self.run_hook(Hook::DataPostHeaders, |p, cx| p.data_post_headers(cx));
        self.add_trace_headers();

        let verdict = self.run_hook(Hook::DataPost, |p, cx| p.data_post(cx));
        if let Response::Reply(reply, then) = respond::respond(&respond::DATA_POST, &verdict, &[]) {
            return self.conclude_message(reply, then);
        }
        let verdict = self.run_hook(Hook::QueuePre, |p, cx| p.queue_pre(cx));
        if let Response::Reply(reply, then) = respond::respond(&respond::QUEUE_PRE, &verdict, &[]) {
            return self.conclude_message(reply, then);
        }
        let verdict = self.run_hook(Hook::Queue, |p, cx| p.queue(cx));
        let (reply, then) = match respond::respond(&respond::QUEUE, &verdict, &[]) {
            Response::Reply(reply, then) => (reply, then),
            // Every queue row is a reply; this cannot happen, and must never become a 250.
            Response::Proceed(_) => (
                Reply::new(
                    451,
                    "4.3.0",
                    "Queuing declined or disabled; try again later",
                ),
                Then::Reset,
            ),
        };
        self.log_outcome(&reply);
        self.send(&reply);
        // The client hears the outcome before queue_post runs (it may be slow).
        self.flush();
        let verdict = self.run_hook(Hook::QueuePost, |p, cx| p.queue_post(cx));
        if !matches!(verdict, Verdict::Declined | Verdict::Ok(_)) {
            self.log(Level::Error, &format!("queue_post: {verdict}"));
        }
        self.end_transaction(then)
    }

    /// Answers a message that was not queued (refused after DATA, or lost on the way).
    pub(super) fn conclude_message(&mut self, reply: Reply, then: Then) -> Flow {
        self.log_outcome(&reply);
        self.send(&reply);
        self.end_transaction(then)
    }

    /// After the reply to a message the transaction is over, whatever the table said.
    fn end_transaction(&mut self, then: Then) -> Flow {
        match then {
            Then::Disconnect => {
                self.end();
                Flow::Close
            }
            Then::Reset | Then::Stay => {
                self.reset_transaction();
                Flow::Continue
            }
        }
    }

    /// The line the log summariser reads for a message's fate:
    /// `queued: from <s> to <r1>,<r2>: <reply>` or `not queued: ...`.
    pub(super) fn log_outcome(&self, reply: &Reply) {
        let (sender, rcpts) = self.envelope_for_log();
        let outcome = if reply.is_positive() {
            "queued"
        } else {
            "not queued"
        };
        self.log(
            Level::Info,
            &format!("{outcome}: from {sender} to {rcpts}: {reply}"),
        );
    }

    fn envelope_for_log(&self) -> (String, String) {
        let t = &self.st.txn;
        let sender = t.sender.as_ref().map(|a| a.format()).unwrap_or_default();
        let rcpts: Vec<String> = t.recipients.iter().map(|a| a.format()).collect();
        (sender, rcpts.join(","))
    }

    /// Renames Authentication-Results headers that claim our authserv-id (a sender must
    /// not forge our verdicts), then prepends Received and our own Authentication-Results,
    /// so the message reads: A-R, Received, original header.
    fn add_trace_headers(&mut self) {
        let auth_id = self.server.core.auth_results_id.clone();
        if let Some(id) = &auth_id
            && !dkim_signs_auth_results(&self.st.txn.header)
        {
            self.st.txn.header.rename_where(
                "Authentication-Results",
                "Original-Authentication-Results",
                |value| authserv_id(value).is_some_and(|v| v.eq_ignore_ascii_case(id)),
            );
        }
        let received = self.received_value();
        self.st.txn.header.prepend("Received", &received);
        if let Some(id) = auth_id {
            let value = self.authentication_results(&id);
            self.st.txn.header.prepend("Authentication-Results", &value);
        }
    }

    /// The Received value, from a `received_line` plugin or in qpsmtpd's format:
    /// `from <info> (HELO <helo>) (<ip>)\n\tby <me> (qpsmtpd/<version>) with <PROTO>; <date>`.
    fn received_value(&mut self) -> String {
        let conn = &self.st.conn;
        let protocol = conn.protocol_name();
        let auth = conn
            .auth
            .as_ref()
            .map(|a| format!("(smtp-auth username {}, mechanism {})", a.user, a.mechanism))
            .unwrap_or_default();
        let tls = conn
            .tls
            .as_ref()
            .map(|c| format!("({c} encrypted)"))
            .unwrap_or_default();
        let verdict = self.run_hook(Hook::ReceivedLine, |p, cx| {
            p.received_line(cx, &protocol, &auth, &tls)
        });
        if let Verdict::Ok(Some(text)) = verdict {
            return text;
        }
        let conn = &self.st.conn;
        let helo = conn.hello_host.as_deref().unwrap_or("");
        let date = chrono::Local::now().format("%a, %d %b %Y %H:%M:%S %z");
        let tls = if tls.is_empty() {
            tls
        } else {
            format!(" {tls}")
        };
        format!(
            "from {} (HELO {}) ({})\n\tby {} (qpsmtpd/{VERSION}) with {protocol}{tls}; {date}",
            clean_header_text(&conn.info.remote_info_display()),
            clean_header_text(helo),
            conn.info.remote_ip,
            self.server.core.me,
        )
    }

    /// `<authserv-id>; auth=none` or `auth=pass (<mech>) smtp.auth=<user>`, then what other
    /// plugins stored in the `authentication_results` connection note (SPF, DKIM, ...).
    fn authentication_results(&self, id: &str) -> String {
        let conn = &self.st.conn;
        let mut parts = vec![id.to_string()];
        parts.push(match &conn.auth {
            Some(a) => format!(
                "auth=pass ({}) smtp.auth={}",
                a.mechanism.to_ascii_lowercase(),
                clean_header_text(&a.user)
            ),
            None => "auth=none".to_string(),
        });
        // Connection-wide results (iprev) first, then this message's (spf, dkim, dmarc).
        for notes in [&conn.notes, &self.st.txn.notes] {
            if let Some(v) = notes.get(AUTH_RESULTS_NOTE) {
                match v.as_list() {
                    Some(list) => parts.extend(
                        list.iter()
                            .filter_map(|v| v.as_str().map(clean_header_text)),
                    ),
                    None => parts.extend(v.as_str().map(clean_header_text)),
                }
            }
        }
        parts.join(";\n\t")
    }
}

/// The authserv-id of an Authentication-Results value: the token before the first `;`
/// (RFC 8601 §2.2), without a version number or comment.
fn authserv_id(value: &str) -> Option<&str> {
    let id = value.split(';').next()?.split_whitespace().next()?;
    (!id.is_empty()).then_some(id)
}

/// True if a DKIM signature covers Authentication-Results (renaming it would break it).
fn dkim_signs_auth_results(header: &crate::header::Header) -> bool {
    header.get_all("DKIM-Signature").iter().any(|sig| {
        sig.split(';').any(|tag| {
            let tag = tag.trim();
            tag.strip_prefix("h=").is_some_and(|h| {
                h.split(':')
                    .any(|name| name.trim().eq_ignore_ascii_case("authentication-results"))
            })
        })
    })
}
