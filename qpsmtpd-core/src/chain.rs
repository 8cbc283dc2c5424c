//! The plugin chain: every loaded plugin, and for each hook the plugins that act on it, in
//! the order they run. Built from `config/logging` and `config/plugins` once per process
//! (or reload) and shared read-only by all sessions.
//!
//! `config/plugins` syntax, as qpsmtpd's: one plugin per line, `name [args...]`. A name may
//! have a group (`queue/maildir`) and an instance suffix (`rcpt_regexp:2`) to load the same
//! plugin twice with different arguments. `loglevel N` anywhere in the arguments sets that
//! plugin's log level (absolute `0`-`7`, or `+N`/`-N`) and is not passed to the plugin.

use crate::config::{Config, ConfigError, ConfigLine};
use crate::core_config::CoreConfig;
use crate::hook::Hook;
use crate::log::LogAdjust;
use crate::plugin::{Plugin, PluginSpec, Setup};

/// A loaded plugin.
pub struct Entry {
    /// The name shown in logs and used for notes: `queue::maildir`, `rcpt_regexp:2`.
    pub name: String,
    pub plugin: Box<dyn Plugin>,
    pub log_adjust: LogAdjust,
}

/// All loaded plugins, indexed by hook.
#[derive(Default)]
pub struct Chain {
    entries: Vec<Entry>,
    by_hook: Vec<Vec<usize>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.name))
            .finish()
    }
}

impl Chain {
    /// Builds the chain from `config/logging` then `config/plugins`.
    pub fn load(
        config: &Config,
        core: &CoreConfig,
        catalogue: &[PluginSpec],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Chain, ConfigError> {
        let mut lines = config.lines("logging")?;
        lines.extend(config.lines("plugins")?);
        let mut entries = Vec::with_capacity(lines.len());
        for line in &lines {
            entries.push(load_line(line, config, core, catalogue, env)?);
        }
        Ok(Chain::from_entries(entries))
    }

    /// A chain of already-built plugins (tests, embedders).
    pub fn from_entries(entries: Vec<Entry>) -> Chain {
        let mut by_hook: Vec<Vec<(i32, usize)>> = vec![Vec::new(); Hook::COUNT];
        for (i, e) in entries.iter().enumerate() {
            for r in e.plugin.hooks() {
                let list = &mut by_hook[r.hook.index()];
                if !list.iter().any(|&(_, j)| j == i) {
                    list.push((r.priority, i));
                }
            }
        }
        let by_hook = by_hook
            .into_iter()
            .map(|mut list| {
                // Stable: equal priorities keep config order.
                list.sort_by_key(|&(prio, _)| prio);
                list.into_iter().map(|(_, i)| i).collect()
            })
            .collect();
        Chain { entries, by_hook }
    }

    /// The plugins acting on `hook`, in running order (indexes into [`Chain::entry`]).
    pub fn hooked(&self, hook: Hook) -> &[usize] {
        self.by_hook.get(hook.index()).map_or(&[], Vec::as_slice)
    }

    pub fn has_hook(&self, hook: Hook) -> bool {
        !self.hooked(hook).is_empty()
    }

    pub fn entry(&self, index: usize) -> &Entry {
        &self.entries[index]
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Takes the plugins back out (to rebuild a chain with more).
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Builds one plugin from its config line.
fn load_line(
    line: &ConfigLine,
    config: &Config,
    core: &CoreConfig,
    catalogue: &[PluginSpec],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Entry, ConfigError> {
    if let Some(bad) = line
        .text
        .chars()
        .find(|c| !(' '..='~').contains(c) && *c != '\t')
    {
        return Err(line.error(format!("unsafe character {bad:?} in plugin line")));
    }
    let mut words = line.text.split_whitespace().map(String::from);
    let full_name = words.next().unwrap_or_default();
    let mut args: Vec<String> = words.collect();
    let (name, instance) = match full_name.split_once(':') {
        Some((n, i)) if !i.is_empty() && i.chars().all(|c| c.is_ascii_alphanumeric()) => {
            (n, Some(i))
        }
        Some(_) => return Err(line.error(format!("bad plugin instance name {full_name:?}"))),
        None => (full_name.as_str(), None),
    };
    let spec = catalogue
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| line.error(format!("unknown plugin {name:?}")))?;
    let log_adjust = take_loglevel(&mut args).map_err(|e| line.error(format!("{name}: {e}")))?;
    let setup = Setup {
        name,
        spec,
        args: &args,
        origin: &line.origin,
        loglevel: log_adjust,
        config,
        core,
        env,
    };
    let plugin = (spec.factory)(&setup)?;
    let mut display = name.replace('/', "::");
    if let Some(i) = instance {
        display = format!("{display}:{i}");
    }
    Ok(Entry {
        name: display,
        plugin,
        log_adjust,
    })
}

/// Removes `loglevel VALUE` from the arguments.
fn take_loglevel(args: &mut Vec<String>) -> Result<LogAdjust, String> {
    let Some(pos) = args.iter().position(|a| a == "loglevel") else {
        return Ok(LogAdjust::None);
    };
    let value = args.get(pos + 1).ok_or("loglevel needs a value")?;
    let adjust = LogAdjust::parse(value).ok_or_else(|| format!("bad loglevel {value:?}"))?;
    args.drain(pos..pos + 2);
    Ok(adjust)
}
