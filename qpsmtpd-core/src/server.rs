//! The server: configuration and plugin chain, built once and shared read-only by every
//! session of the process (forked children, or threads in the nginx module).

use crate::chain::Chain;
use crate::config::{Config, ConfigError};
use crate::core_config::CoreConfig;
use crate::dns::{Dns, DnsError};
use crate::hook::{Hook, Verdict};
use crate::log::{Level, LogRecord, write_stderr_line};
use crate::plugin::PluginSpec;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The version shown in the banner, the Received header and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug)]
pub struct Server {
    pub config: Config,
    pub core: CoreConfig,
    pub chain: Chain,
    /// Sessions started so far (for session ids).
    sessions: AtomicU64,
    /// The DNS service, made on first use, with the process that made it (a forked child
    /// must make its own: the runtime's threads stay in the parent).
    dns: Mutex<Option<(u32, Arc<Dns>)>>,
}

impl Server {
    /// Reads the core files and loads the plugins. `hostname` is the default for `me`;
    /// `env` reads the process environment for plugins that use it.
    pub fn load(
        config: Config,
        catalogue: &[PluginSpec],
        hostname: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Server, ConfigError> {
        let core = CoreConfig::load(&config, hostname)?;
        core.prepare_spool_dir()?;
        let chain = Chain::load(&config, &core, catalogue, env)?;
        Ok(Server::new(config, core, chain))
    }

    /// A server from parts already built.
    pub fn new(config: Config, core: CoreConfig, chain: Chain) -> Server {
        Server {
            config,
            core,
            chain,
            sessions: AtomicU64::new(0),
            dns: Mutex::new(None),
        }
    }

    /// The DNS service of this process, started on first use.
    pub fn dns(&self) -> Result<Arc<Dns>, DnsError> {
        let pid = std::process::id();
        let mut slot = self.dns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((owner, dns)) = slot.as_ref()
            && *owner == pid
        {
            return Ok(dns.clone());
        }
        let dns = Arc::new(Dns::new(&self.core.dns)?);
        if let Some((_, inherited)) = slot.replace((pid, dns.clone())) {
            // A runtime inherited through fork has no threads here; dropping it would
            // wait for them forever.
            std::mem::forget(inherited);
        }
        Ok(dns)
    }

    /// Logs one record: through the logging plugins when any is loaded, else to stderr if
    /// the level passes `config/loglevel`.
    pub fn log(&self, record: &LogRecord<'_>) {
        let loggers = self.chain.hooked(Hook::Logging);
        if loggers.is_empty() {
            if record.level <= self.core.loglevel {
                write_stderr_line(&record.format_line(std::process::id()));
            }
            return;
        }
        for &i in loggers {
            let plugin = &self.chain.entry(i).plugin;
            // A logger that panics must not take the session down with it.
            match catch_unwind(AssertUnwindSafe(|| plugin.logging(record))) {
                Ok(Verdict::Declined) => continue,
                Ok(_) => break,
                Err(_) => write_stderr_line(&record.format_line(std::process::id())),
            }
        }
    }

    /// Logs a message of the core (no plugin).
    pub fn log_core(&self, level: Level, hook: Option<Hook>, message: &str) {
        self.log(&LogRecord {
            level,
            hook,
            plugin: None,
            session: None,
            transaction: 0,
            message,
        });
    }

    /// A new session id, unique across processes and over time:
    /// `<unix time, hex>.<pid, hex>.<sessions started by this server>`.
    pub fn next_session_id(&self) -> String {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{secs:x}.{:x}.{n}", std::process::id())
    }

    /// Would a record at `level` from the core be written anywhere? Saves formatting work.
    pub fn logs_at(&self, level: Level) -> bool {
        self.chain.has_hook(Hook::Logging) || level <= self.core.loglevel
    }

    /// Runs the `post-fork` hooks: in a forkserver child, before its session starts.
    pub fn run_post_fork(&self) {
        for &i in self.chain.hooked(Hook::PostFork) {
            let entry = self.chain.entry(i);
            if catch_unwind(AssertUnwindSafe(|| entry.plugin.post_fork())).is_err() {
                let message = format!("FATAL PLUGIN ERROR [{}]: panic in post-fork", entry.name);
                self.log_core(Level::Crit, Some(Hook::PostFork), &message);
            }
        }
    }

    /// The lines of a control file, asking the `config` hooks first.
    pub fn config_lines(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        for &i in self.chain.hooked(Hook::Config) {
            let plugin = &self.chain.entry(i).plugin;
            if let Ok(Some(values)) = catch_unwind(AssertUnwindSafe(|| plugin.config(name))) {
                return Ok(values);
            }
        }
        Ok(self
            .config
            .lines(name)?
            .into_iter()
            .map(|l| l.text)
            .collect())
    }
}
