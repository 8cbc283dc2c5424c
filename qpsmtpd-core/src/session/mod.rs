//! One SMTP session: the state machine over a blocking [`Transport`].
//!
//! ```text
//!  driver ──bytes──▶ Io ──line──▶ dispatch ──▶ command handler ──▶ run_hook ──▶ plugins
//!                    ▲                                │                 │
//!                    └──────────── reply ◀── respond tables ◀── verdict ─┘
//! ```
//!
//! [`Session::run`] serves the whole connection; [`Session::start`] and [`Session::step`]
//! do it one command at a time, which is how transcript tests drive it.

mod commands;
mod data;
mod deliver;
pub(crate) mod io;

use crate::connection::{Connection, ConnectionInfo};
use crate::context::Context;
use crate::hook::{Hook, Verdict};
use crate::log::{Level, LogRecord};
use crate::plugin::Plugin;
use crate::protocol::Reply;
use crate::respond::{self, Response, Then};
use crate::server::Server;
use crate::transaction::Transaction;
use crate::transport::{ReadOutcome, Transport};
use io::{Io, Line};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// The longest command line accepted, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// How long, and how much, unread client input is read and dropped before the connection
/// closes (see `Io::drain`).
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(20);
const DRAIN_BYTES: usize = 1 << 20;

/// Whether the session goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// Everything a session owns; plugins reach it through [`Context`].
pub(crate) struct State {
    pub(crate) io: Io,
    pub(crate) conn: Connection,
    pub(crate) txn: Transaction,
    pub(crate) plugin_state: HashMap<(usize, TypeId), Box<dyn Any + Send>>,
    /// EHLO keywords added by plugins during the current EHLO.
    pub(crate) capabilities: Vec<String>,
    /// This connection's id in logs.
    pub(crate) session_id: String,
    /// Counts transactions: 0 until the first reset, one more at each.
    pub(crate) transaction_number: u32,
    /// DNS answers of this session.
    pub(crate) dns_cache: HashMap<crate::dns::Query, crate::dns::DnsResult>,
}

/// An SMTP session.
pub struct Session {
    server: Arc<Server>,
    st: State,
    ended: bool,
}

impl Session {
    pub fn new(
        server: Arc<Server>,
        info: ConnectionInfo,
        transport: Box<dyn Transport>,
    ) -> Session {
        let session_id = server.next_session_id();
        Session {
            server,
            st: State {
                io: Io::new(transport),
                conn: Connection::new(info),
                txn: Transaction::default(),
                plugin_state: HashMap::new(),
                capabilities: Vec::new(),
                session_id,
                transaction_number: 0,
                dns_cache: HashMap::new(),
            },
            ended: false,
        }
    }

    /// Serves the connection to its end.
    pub fn run(mut self) {
        let mut flow = self.start();
        while flow == Flow::Continue {
            flow = self.step();
        }
    }

    /// Runs the `connect` hooks and sends the banner (or the rejection).
    pub fn start(&mut self) -> Flow {
        let info = &self.st.conn.info;
        let event = format!(
            "connect from {} ({})",
            info.remote_ip,
            info.remote_info_display()
        );
        self.log(Level::Info, &event);
        let verdict = self.run_hook(Hook::Connect, |p, cx| p.connect(cx));
        match respond::respond(&respond::CONNECT, &verdict, &[]) {
            Response::Proceed(custom) => {
                let banner = custom.unwrap_or_else(|| self.banner());
                self.send(&banner);
                self.flush();
                Flow::Continue
            }
            Response::Reply(reply, then) => self.answer(reply, then),
        }
    }

    /// Reads and handles one command (a whole message, for DATA).
    pub fn step(&mut self) -> Flow {
        if self.ended {
            return Flow::Close;
        }
        let timeout = self.server.core.command_timeout;
        match self.st.io.read_line(MAX_COMMAND_LINE, timeout) {
            Line::Text(line) => self.dispatch(&line),
            Line::TooLong => {
                self.send(&Reply::new(500, "5.5.2", "Line too long"));
                Flow::Continue
            }
            Line::Closed(how) => self.lost(how),
        }
    }

    /// The connection as the session sees it now.
    pub fn connection(&self) -> &Connection {
        &self.st.conn
    }

    /// The current transaction.
    pub fn transaction(&self) -> &Transaction {
        &self.st.txn
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Sends replies still queued (the session batches them until it would wait for input).
    pub fn flush_replies(&mut self) {
        self.flush();
    }

    /// Bytes read from the client and not yet handled.
    pub fn buffered_input_len(&self) -> usize {
        self.st.io.buffered().len()
    }

    /// The banner: `220 <me> ESMTP qpsmtpd <version> ready; ...`, or `smtpgreeting`.
    fn banner(&self) -> Reply {
        let core = &self.server.core;
        let text = match &core.greeting {
            Some(g) if g.contains("ESMTP") => g.clone(),
            Some(g) => format!("{g} ESMTP"),
            None => format!(
                "{} ESMTP qpsmtpd {} ready; send us your mail, but not your spam.",
                core.me,
                crate::server::VERSION
            ),
        };
        Reply::plain(220, &text)
    }

    /// Sends a reply and does what `then` says.
    fn answer(&mut self, reply: Reply, then: Then) -> Flow {
        self.send(&reply);
        match then {
            Then::Stay => Flow::Continue,
            Then::Reset => {
                self.reset_transaction();
                Flow::Continue
            }
            Then::Disconnect => {
                self.end();
                Flow::Close
            }
        }
    }

    /// Answers by a table whose every row is a reply.
    fn answer_by(
        &mut self,
        table: &respond::Table,
        verdict: &Verdict,
        vars: &[(&str, &str)],
    ) -> Flow {
        match respond::respond(table, verdict, vars) {
            Response::Reply(reply, then) => self.answer(reply, then),
            Response::Proceed(Some(reply)) => {
                self.send(&reply);
                Flow::Continue
            }
            Response::Proceed(None) => Flow::Continue,
        }
    }

    fn send(&mut self, reply: &Reply) {
        if self.server.logs_at(Level::Info) {
            self.log(Level::Info, &reply.to_string());
        }
        self.st.io.send(reply);
    }

    fn flush(&mut self) {
        let _ = self.st.io.flush();
    }

    fn log(&self, level: Level, message: &str) {
        if self.server.logs_at(level) {
            self.server.log(&LogRecord {
                level,
                hook: None,
                plugin: None,
                session: Some(&self.st.session_id),
                transaction: self.st.transaction_number,
                message,
            });
        }
    }

    /// The client went away, went silent, or the server is shutting down.
    fn lost(&mut self, how: ReadOutcome) -> Flow {
        let me = self.server.core.me.clone();
        match how {
            ReadOutcome::Timeout => {
                self.log(Level::Info, "timeout, closing connection");
                self.send(&Reply::new(
                    421,
                    "4.4.2",
                    &format!("{me} Connection Timed Out"),
                ));
            }
            ReadOutcome::Shutdown => {
                self.send(&Reply::new(
                    421,
                    "4.3.2",
                    &format!("{me} Service shutting down, closing connection"),
                ));
            }
            ReadOutcome::Eof | ReadOutcome::Data(_) => {
                self.log(Level::Info, "client closed the connection")
            }
        }
        self.end();
        Flow::Close
    }

    /// Ends the session: `disconnect`, `reset_transaction`, `post-connection`, once.
    fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.flush();
        self.st.conn.notes.set("disconnected", true);
        self.run_hook(Hook::Disconnect, |p, cx| p.disconnect(cx));
        self.reset_transaction();
        self.run_hook(Hook::PostConnection, |p, cx| p.post_connection(cx));
        self.flush();
        self.st.io.drain(DRAIN_TIME, DRAIN_BYTES);
        // The last line of every session (the log summariser closes its row here).
        self.log(Level::Info, "disconnect");
    }

    /// Replaces the transaction with a new one; the old one's spool file goes with it.
    fn reset_transaction(&mut self) {
        self.run_hook(Hook::ResetTransaction, |p, cx| p.reset_transaction(cx));
        self.st.txn = Transaction::default();
        self.st.transaction_number += 1;
    }

    /// Runs a hook's plugins in order until one returns something other than `Declined`
    /// (all of them for hooks whose verdict is ignored, see [`Hook::runs_every_plugin`]).
    /// A plugin that panics is logged and stands for its [`Plugin::on_failure`] verdict.
    /// After each plugin the `deny` or `ok` meta-hook runs, as in qpsmtpd.
    pub(crate) fn run_hook(
        &mut self,
        hook: Hook,
        mut call: impl FnMut(&dyn Plugin, &mut Context<'_>) -> Verdict,
    ) -> Verdict {
        let server = self.server.clone();
        for &i in server.chain.hooked(hook) {
            let entry = server.chain.entry(i);
            let mut cx = Context::new(&mut self.st, &server, Some(i), hook);
            let verdict =
                match catch_unwind(AssertUnwindSafe(|| call(entry.plugin.as_ref(), &mut cx))) {
                    Ok(v) => v,
                    Err(panic) => {
                        let what = panic_message(&panic);
                        cx.log(
                            Level::Crit,
                            format!("FATAL PLUGIN ERROR [{}]: {what}", entry.name),
                        );
                        entry.plugin.on_failure(hook)
                    }
                };
            if !hook.is_special() {
                self.run_meta_hook(&server, &entry.name, &verdict);
            }
            if verdict != Verdict::Declined && !hook.runs_every_plugin() {
                if server.logs_at(Level::Debug) {
                    self.log(
                        Level::Debug,
                        &format!("{hook}: {} returned {verdict}", entry.name),
                    );
                }
                return verdict;
            }
        }
        Verdict::Declined
    }

    /// `deny` after a deny, `ok` after anything else.
    fn run_meta_hook(&mut self, server: &Server, plugin: &str, verdict: &Verdict) {
        let meta = if verdict.is_deny() {
            Hook::Deny
        } else {
            Hook::Ok
        };
        for &i in server.chain.hooked(meta) {
            let entry = server.chain.entry(i);
            let mut cx = Context::new(&mut self.st, server, Some(i), meta);
            let _ = catch_unwind(AssertUnwindSafe(|| {
                if meta == Hook::Deny {
                    entry.plugin.deny(&mut cx, plugin, verdict)
                } else {
                    entry.plugin.ok(&mut cx, plugin, verdict)
                }
            }));
        }
    }
}

impl Drop for Session {
    /// A session dropped early (a driver bug, a panic in the core) still runs its end
    /// hooks, so plugins can clean up; the spool file goes with the transaction.
    fn drop(&mut self) {
        if !self.ended && !std::thread::panicking() {
            self.end();
        }
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
