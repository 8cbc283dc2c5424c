//! What a plugin sees while one of its hooks runs: the connection, the transaction,
//! configuration, logging, its own per-session state, and the few requests it may make of
//! the wire. Plugins never hold the socket.

use crate::config::Config;
use crate::connection::Connection;
use crate::core_config::CoreConfig;
use crate::hook::{Hook, Verdict};
use crate::log::{Level, LogRecord};
use crate::protocol::Address;
use crate::server::Server;
use crate::session::State;
use crate::transaction::Transaction;
use std::any::{Any, TypeId};
use std::fmt::Display;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

/// A plugin's view of the session during one hook call.
pub struct Context<'a> {
    pub(crate) st: &'a mut State,
    pub(crate) server: &'a Server,
    /// Index of the running plugin in the chain; `None` while the core itself logs.
    pub(crate) plugin: Option<usize>,
    pub(crate) hook: Hook,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        st: &'a mut State,
        server: &'a Server,
        plugin: Option<usize>,
        hook: Hook,
    ) -> Self {
        Context {
            st,
            server,
            plugin,
            hook,
        }
    }

    /// The hook being run.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The running plugin's name as shown in logs (`queue::maildir`).
    pub fn plugin_name(&self) -> &str {
        self.plugin
            .map(|i| self.server.chain.entry(i).name.as_str())
            .unwrap_or("core")
    }

    pub fn connection(&self) -> &Connection {
        &self.st.conn
    }

    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.st.conn
    }

    pub fn transaction(&self) -> &Transaction {
        &self.st.txn
    }

    pub fn transaction_mut(&mut self) -> &mut Transaction {
        &mut self.st.txn
    }

    /// The core settings (`me`, `databytes`, ...).
    pub fn core(&self) -> &CoreConfig {
        &self.server.core
    }

    /// The control files, read directly.
    pub fn config(&self) -> &Config {
        &self.server.config
    }

    /// The lines of a control file, asking `config` hooks first. Errors are logged and
    /// read as an empty file.
    pub fn config_lines(&self, name: &str) -> Vec<String> {
        match self.server.config_lines(name) {
            Ok(lines) => lines,
            Err(e) => {
                self.log(Level::Error, format!("error: {e}"));
                Vec::new()
            }
        }
    }

    /// A per-recipient setting: the `user_config` hooks are asked first, then the
    /// server-wide control file.
    pub fn user_config(&mut self, rcpt: &Address, name: &str) -> Vec<String> {
        match self.user_config_own(rcpt, name) {
            Some(values) => values,
            None => self.config_lines(name),
        }
    }

    /// What the `user_config` hooks say of a recipient's setting; `None` when none of them
    /// has a value of its own for this recipient (or no such hook is loaded).
    pub fn user_config_own(&mut self, rcpt: &Address, name: &str) -> Option<Vec<String>> {
        let server = self.server;
        for &i in server.chain.hooked(Hook::UserConfig) {
            let plugin = &server.chain.entry(i).plugin;
            let mut cx = Context::new(self.st, server, Some(i), Hook::UserConfig);
            if let Ok(Some(values)) =
                catch_unwind(AssertUnwindSafe(|| plugin.user_config(&mut cx, rcpt, name)))
            {
                return Some(values);
            }
        }
        None
    }

    /// Logs a message under the running plugin's name, adjusted by its `loglevel`.
    pub fn log(&self, level: Level, message: impl Display) {
        let (plugin, level) = match self.plugin {
            Some(i) => {
                let e = self.server.chain.entry(i);
                (Some(e.name.as_str()), e.log_adjust.apply(level))
            }
            None => (None, level),
        };
        if !self.server.logs_at(level) {
            return;
        }
        let message = message.to_string();
        self.server.log(&LogRecord {
            level,
            hook: Some(self.hook),
            plugin,
            session: Some(&self.st.session_id),
            transaction: self.st.transaction_number,
            message: &message,
        });
    }

    /// This connection's id, as in every log line (`<time>.<pid>.<n>`).
    pub fn session_id(&self) -> &str {
        &self.st.session_id
    }

    /// The current transaction's number within the session (0 before the first MAIL).
    pub fn transaction_number(&self) -> u32 {
        self.st.transaction_number
    }

    /// The current transaction's id: `<session id>.<n>`, n counting from 0 before the
    /// first MAIL.
    pub fn transaction_id(&self) -> String {
        format!("{}.{}", self.st.session_id, self.st.transaction_number)
    }

    /// The summary line of a check that passed: `pass: <msg>` at INFO.
    pub fn pass(&self, message: impl Display) {
        self.log(Level::Info, format!("pass: {message}"));
    }

    /// The summary line of a check that failed: `fail: <msg>` at INFO.
    pub fn fail(&self, message: impl Display) {
        self.log(Level::Info, format!("fail: {message}"));
    }

    /// The summary line of a check that did not apply: `skip: <msg>` at INFO.
    pub fn skip(&self, message: impl Display) {
        self.log(Level::Info, format!("skip: {message}"));
    }

    /// The summary line of a check that could not be done: `error: <msg>` at ERROR.
    pub fn error(&self, message: impl Display) {
        self.log(Level::Error, format!("error: {message}"));
    }

    /// This plugin's private state for this session, created with `Default` on first use.
    pub fn state<T: Default + Send + 'static>(&mut self) -> &mut T {
        let key = (self.plugin.unwrap_or(usize::MAX), TypeId::of::<T>());
        let slot = self
            .st
            .plugin_state
            .entry(key)
            .or_insert_with(|| Box::new(T::default()) as Box<dyn Any + Send>);
        match slot.downcast_mut::<T>() {
            Some(t) => t,
            None => unreachable!("plugin state is keyed by its type"),
        }
    }

    /// Adds a keyword to the EHLO reply being built (call it from the `ehlo` hook).
    pub fn advertise(&mut self, keyword: &str) {
        let keyword = crate::header::clean_header_text(keyword);
        if !self.st.capabilities.contains(&keyword) {
            self.st.capabilities.push(keyword);
        }
    }

    /// Waits up to `timeout` for the client to send something; true if it has (already
    /// buffered input counts). This is how earlytalker looks for clients that talk first.
    pub fn wait_readable(&mut self, timeout: Duration) -> bool {
        self.st.io.wait_readable(timeout)
    }

    /// Adds `delta` to this connection's score (the `karma` connection note) and returns
    /// the new score. Plugins record good and bad signs here; the `karma` plugin keeps the
    /// score across connections.
    pub fn adjust_karma(&mut self, delta: i64) -> i64 {
        self.st.conn.notes.add_int("karma", delta)
    }

    /// The connection's score so far (0 when nothing adjusted it).
    pub fn karma(&self) -> i64 {
        self.st.conn.notes.get_int("karma").unwrap_or(0)
    }

    /// The deferred rejection stored with `reject naughty`, if any: the reply text (naming
    /// the plugin that stored it) and the reject type that plugin asked for, if it said.
    pub fn naughty(&self) -> Option<(String, Option<crate::reject::RejectType>)> {
        let notes = &self.st.conn.notes;
        let text = notes.get_str("naughty")?.to_string();
        let kind = notes
            .get_str("naughty_reject_type")
            .and_then(crate::reject::RejectType::parse);
        Some((text, kind))
    }

    /// The DNS service (for mail-auth checks; plain lookups go through [`Context::resolve`]).
    pub fn dns(&self) -> Result<std::sync::Arc<crate::dns::Dns>, crate::dns::DnsError> {
        self.server.dns()
    }

    /// One DNS query, answered from this session's cache when it was asked before; waits
    /// at most `dns_timeout`.
    pub fn resolve(&mut self, query: &crate::dns::Query) -> crate::dns::DnsResult {
        self.resolve_all(std::slice::from_ref(query), None)
            .remove(0)
    }

    /// Several DNS queries at once (as long as the slowest, at most `timeout`, default
    /// `dns_timeout`), answered from the session's cache where possible. Same order.
    pub fn resolve_all(
        &mut self,
        queries: &[crate::dns::Query],
        timeout: Option<Duration>,
    ) -> Vec<crate::dns::DnsResult> {
        let missing: Vec<crate::dns::Query> = queries
            .iter()
            .filter(|q| !self.st.dns_cache.contains_key(q))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let pending = self.start_lookups(missing, timeout);
            self.collect_lookups(pending);
        }
        queries
            .iter()
            .map(|q| {
                self.st
                    .dns_cache
                    .get(q)
                    .cloned()
                    .unwrap_or(Err(crate::dns::DnsError::Failed("no answer".into())))
            })
            .collect()
    }

    /// Starts DNS queries that run while the session goes on; keep the handle (in
    /// [`Context::state`]) and hand it to [`Context::collect_lookups`] later. Queries
    /// already answered in this session are not sent again.
    pub fn start_lookups(
        &mut self,
        queries: Vec<crate::dns::Query>,
        timeout: Option<Duration>,
    ) -> Lookups {
        let missing: Vec<crate::dns::Query> = queries
            .iter()
            .filter(|q| !self.st.dns_cache.contains_key(q))
            .cloned()
            .collect();
        let pending = match self.dns() {
            Ok(dns) if !missing.is_empty() => {
                let timeout = timeout.unwrap_or_else(|| dns.timeout());
                Some(dns.start(missing, timeout))
            }
            Ok(_) => None,
            Err(e) => {
                for q in &missing {
                    self.st.dns_cache.insert(q.clone(), Err(e.clone()));
                }
                None
            }
        };
        Lookups { queries, pending }
    }

    /// Waits for queries started with [`Context::start_lookups`]; the answers in the
    /// order the queries were given, and in this session's cache from now on.
    pub fn collect_lookups(&mut self, lookups: Lookups) -> Vec<crate::dns::DnsResult> {
        if let Some(pending) = lookups.pending {
            let asked = pending.queries().to_vec();
            let answers = match self.dns() {
                Ok(dns) => pending.wait(&dns),
                Err(e) => vec![Err(e); asked.len()],
            };
            for (q, a) in asked.into_iter().zip(answers) {
                self.st.dns_cache.insert(q, a);
            }
        }
        lookups
            .queries
            .iter()
            .map(|q| {
                self.st
                    .dns_cache
                    .get(q)
                    .cloned()
                    .unwrap_or(Err(crate::dns::DnsError::Failed("no answer".into())))
            })
            .collect()
    }

    /// Adds a result to this message's Authentication-Results header (`spf=pass
    /// smtp.mailfrom=example.com`); it ends with the transaction.
    pub fn add_auth_result(&mut self, result: &str) {
        self.st.txn.notes.push(AUTH_RESULTS_NOTE, result);
    }

    /// Adds a result that holds for every message of the connection (`iprev=pass
    /// policy.iprev=192.0.2.1`).
    pub fn add_connection_auth_result(&mut self, result: &str) {
        self.st.conn.notes.push(AUTH_RESULTS_NOTE, result);
    }

    /// Relay clients, authenticated users and whitelisted hosts or senders are immune to
    /// content rejections.
    pub fn is_immune(&self) -> bool {
        let c = &self.st.conn;
        c.relay_client
            || c.auth.is_some()
            || c.notes.is_true("whitelisthost")
            || self.st.txn.notes.is_true("whitelistsender")
    }
}

/// The note, on the connection and on the transaction, that holds results for the
/// Authentication-Results header.
pub const AUTH_RESULTS_NOTE: &str = "authentication_results";

/// DNS queries under way (see [`Context::start_lookups`]).
#[derive(Debug)]
pub struct Lookups {
    queries: Vec<crate::dns::Query>,
    pending: Option<crate::dns::Pending>,
}

impl Lookups {
    /// The queries, in the order their answers will come.
    pub fn queries(&self) -> &[crate::dns::Query] {
        &self.queries
    }
}

/// What the `pre-connection` hook sees: the forkserver has accepted a connection and not
/// forked yet.
pub struct PreConnection<'a> {
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub local_ip: Option<IpAddr>,
    pub local_port: u16,
    /// `--max-from-ip`; 0 means no limit.
    pub max_conn_ip: usize,
    /// The peers of the connections being served right now (one entry per child).
    pub child_addrs: &'a [IpAddr],
    pub(crate) server: &'a Server,
    pub(crate) plugin: usize,
}

impl PreConnection<'_> {
    /// Logs under the running plugin's name.
    pub fn log(&self, level: Level, message: impl Display) {
        let e = self.server.chain.entry(self.plugin);
        let level = e.log_adjust.apply(level);
        if self.server.logs_at(level) {
            let message = message.to_string();
            self.server.log(&LogRecord {
                level,
                hook: Some(Hook::PreConnection),
                plugin: Some(&e.name),
                session: None,
                transaction: 0,
                message: &message,
            });
        }
    }

    pub fn config(&self) -> &Config {
        &self.server.config
    }

    /// How many current connections come from `remote_ip`, this one included.
    pub fn connections_from_remote(&self) -> usize {
        1 + self
            .child_addrs
            .iter()
            .filter(|&&ip| ip == self.remote_ip)
            .count()
    }
}

/// The facts of a connection waiting for the `pre-connection` hook.
#[derive(Clone, Debug)]
pub struct PreConnectionFacts {
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub local_ip: Option<IpAddr>,
    pub local_port: u16,
    pub max_conn_ip: usize,
}

/// Runs the `pre-connection` hooks. Returns the reply to send before closing, or `None`
/// when the connection may go ahead.
pub fn run_pre_connection(
    server: &Server,
    facts: &PreConnectionFacts,
    child_addrs: &[IpAddr],
) -> Option<crate::protocol::Reply> {
    for &i in server.chain.hooked(Hook::PreConnection) {
        let pc = PreConnection {
            remote_ip: facts.remote_ip,
            remote_port: facts.remote_port,
            local_ip: facts.local_ip,
            local_port: facts.local_port,
            max_conn_ip: facts.max_conn_ip,
            child_addrs,
            server,
            plugin: i,
        };
        let plugin = &server.chain.entry(i).plugin;
        let verdict =
            catch_unwind(AssertUnwindSafe(|| plugin.pre_connection(&pc))).unwrap_or_else(|_| {
                pc.log(Level::Crit, "FATAL PLUGIN ERROR: panic in pre-connection");
                plugin.on_failure(Hook::PreConnection)
            });
        match crate::respond::respond(&crate::respond::PRE_CONNECTION, &verdict, &[]) {
            crate::respond::Response::Proceed(_) if verdict == Verdict::Declined => continue,
            crate::respond::Response::Proceed(_) => return None,
            crate::respond::Response::Reply(reply, _) => return Some(reply),
        }
    }
    None
}
