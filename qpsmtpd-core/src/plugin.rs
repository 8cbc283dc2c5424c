//! The plugin API: the [`Plugin`] trait, with one method per hook, and [`Setup`], what a
//! plugin gets when it is built from its `config/plugins` line.
//!
//! A plugin is built once per process (or per reload) and shared by every session, so it
//! must be `Send + Sync` and keeps no per-session data in itself: per-session data goes in
//! notes or in [`Context::state`]. Every hook method has a default that declines, so a
//! plugin implements only what it lists in [`Plugin::hooks`].

use crate::config::{Config, ConfigError, Origin};
use crate::context::{Context, PreConnection};
use crate::core_config::CoreConfig;
use crate::hook::{Hook, Verdict};
use crate::log::{LogAdjust, LogRecord};
use crate::protocol::{Address, Params, PathArgs};

/// A hook a plugin acts on, with its priority: lower runs earlier; plugins of equal
/// priority run in `config/plugins` order. The default priority is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    pub hook: Hook,
    pub priority: i32,
}

impl Registration {
    pub fn with_priority(hook: Hook, priority: i32) -> Registration {
        Registration { hook, priority }
    }
}

impl From<Hook> for Registration {
    fn from(hook: Hook) -> Registration {
        Registration { hook, priority: 0 }
    }
}

/// One SMTP AUTH attempt, as the auth hooks see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthAttempt {
    /// Lower-case mechanism name (`plain`, `login`, `cram-md5`).
    pub mechanism: String,
    pub user: String,
    /// The clear-text password (PLAIN, LOGIN).
    pub password: Option<String>,
    /// The client's digest (CRAM-MD5).
    pub digest: Option<String>,
    /// The challenge the digest answers (CRAM-MD5).
    pub ticket: Option<String>,
}

/// A plugin. Implement [`Plugin::hooks`] and the methods of those hooks.
#[allow(unused_variables)]
pub trait Plugin: Send + Sync {
    /// The hooks this plugin acts on.
    fn hooks(&self) -> Vec<Registration>;

    /// The verdict that stands for this plugin when it panics inside `hook`. The default
    /// fails closed with a temporary error, so a broken plugin can delay mail but never let
    /// through what it should have stopped. A purely informational plugin may return
    /// `Verdict::Declined` here to fail open.
    fn on_failure(&self, hook: Hook) -> Verdict {
        Verdict::deny_soft("4.3.0 Internal error, please try again later")
    }

    /// `logging`: receives every log record; `Ok` stops later loggers.
    fn logging(&self, record: &LogRecord<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `config`: supplies the lines of a control file in place of the file.
    fn config(&self, name: &str) -> Option<Vec<String>> {
        None
    }
    /// `user_config`: supplies a per-recipient value.
    fn user_config(&self, cx: &mut Context<'_>, rcpt: &Address, name: &str) -> Option<Vec<String>> {
        None
    }
    /// `pre-connection`: in the forkserver, after accept() and before fork().
    fn pre_connection(&self, pc: &PreConnection<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `post-fork`: in a forkserver child, right after fork().
    fn post_fork(&self) {}
    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `helo_parse`: `Ok` with `words` filled (host first) replaces the core's parsing; a
    /// deny answers 501.
    fn helo_parse(&self, cx: &mut Context<'_>, line: &str, words: &mut Vec<String>) -> Verdict {
        Verdict::Declined
    }
    fn helo(&self, cx: &mut Context<'_>, host: &str, extra: &[String]) -> Verdict {
        Verdict::Declined
    }
    fn ehlo_parse(&self, cx: &mut Context<'_>, line: &str, words: &mut Vec<String>) -> Verdict {
        Verdict::Declined
    }
    /// `ehlo`: may also add EHLO keywords with [`Context::advertise`].
    fn ehlo(&self, cx: &mut Context<'_>, host: &str, extra: &[String]) -> Verdict {
        Verdict::Declined
    }
    fn auth_parse(&self, cx: &mut Context<'_>, line: &str, words: &mut Vec<String>) -> Verdict {
        Verdict::Declined
    }
    fn auth_plain(&self, cx: &mut Context<'_>, attempt: &AuthAttempt) -> Verdict {
        Verdict::Declined
    }
    fn auth_login(&self, cx: &mut Context<'_>, attempt: &AuthAttempt) -> Verdict {
        Verdict::Declined
    }
    fn auth_cram_md5(&self, cx: &mut Context<'_>, attempt: &AuthAttempt) -> Verdict {
        Verdict::Declined
    }
    /// `auth`: the generic hook, run when the mechanism's own hook declined.
    fn auth(&self, cx: &mut Context<'_>, attempt: &AuthAttempt) -> Verdict {
        Verdict::Declined
    }
    /// `mail_parse`: `Ok` with `args` filled replaces the core's parsing of `MAIL FROM:`.
    fn mail_parse(&self, cx: &mut Context<'_>, line: &str, args: &mut PathArgs) -> Verdict {
        Verdict::Declined
    }
    /// `mail_pre`: may rewrite the path (e.g. add missing angle brackets).
    fn mail_pre(&self, cx: &mut Context<'_>, path: &mut String, params: &mut Params) -> Verdict {
        Verdict::Declined
    }
    fn mail(&self, cx: &mut Context<'_>, sender: &Address, params: &Params) -> Verdict {
        Verdict::Declined
    }
    fn rcpt_parse(&self, cx: &mut Context<'_>, line: &str, args: &mut PathArgs) -> Verdict {
        Verdict::Declined
    }
    fn rcpt_pre(&self, cx: &mut Context<'_>, path: &mut String, params: &mut Params) -> Verdict {
        Verdict::Declined
    }
    /// `rcpt`: some plugin must say `Ok` for a recipient to be accepted.
    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, params: &Params) -> Verdict {
        Verdict::Declined
    }
    fn data(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `data_headers_end`: the header block has arrived; the body is still coming.
    fn data_headers_end(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `data_post_headers`: after the terminator, before Received and
    /// Authentication-Results are added. The verdict is ignored.
    fn data_post_headers(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `received_line`: `Ok(Some(text))` replaces the Received header's value.
    fn received_line(
        &self,
        cx: &mut Context<'_>,
        protocol: &str,
        auth: &str,
        tls: &str,
    ) -> Verdict {
        Verdict::Declined
    }
    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    fn queue_pre(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `queue`: hand the message over. `Ok` only once it is durably stored.
    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    fn queue_post(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    fn vrfy(&self, cx: &mut Context<'_>, arg: &str) -> Verdict {
        Verdict::Declined
    }
    fn noop(&self, cx: &mut Context<'_>, arg: &str) -> Verdict {
        Verdict::Declined
    }
    fn help(&self, cx: &mut Context<'_>, arg: &str) -> Verdict {
        Verdict::Declined
    }
    /// `unrecognized_command`: `verb` is lower-cased; empty for an empty or malformed line.
    fn unrecognized_command(&self, cx: &mut Context<'_>, verb: &str, rest: &str) -> Verdict {
        Verdict::Declined
    }
    fn quit(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    fn reset_transaction(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    fn disconnect(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    fn post_connection(&self, cx: &mut Context<'_>) -> Verdict {
        Verdict::Declined
    }
    /// `deny`: another plugin (`plugin`) just denied.
    fn deny(&self, cx: &mut Context<'_>, plugin: &str, verdict: &Verdict) -> Verdict {
        Verdict::Declined
    }
    /// `ok`: another plugin just returned something other than a deny.
    fn ok(&self, cx: &mut Context<'_>, plugin: &str, verdict: &Verdict) -> Verdict {
        Verdict::Declined
    }
}

/// What a plugin's constructor gets: its line of `config/plugins` and the configuration.
pub struct Setup<'a> {
    /// The name as written, without an instance suffix (`queue/maildir`).
    pub name: &'a str,
    /// What the catalogue says about this plugin.
    pub spec: &'a PluginSpec,
    /// The words after the name (`loglevel` already taken out by the core).
    pub args: &'a [String],
    /// The `config/plugins` line.
    pub origin: &'a Origin,
    /// The `loglevel` argument (already applied by the core to the plugin's own messages;
    /// a logging plugin may also take it as its threshold).
    pub loglevel: LogAdjust,
    pub config: &'a Config,
    pub core: &'a CoreConfig,
    /// Reads the process environment (`QMAILQUEUE`, `QMAIL`); tests pass a fixed map.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Setup<'_> {
    /// An error about this plugin's line: `config/plugins:7: queue/maildir: message`.
    pub fn error(&self, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::at(self.origin.clone(), format!("{}: {message}", self.name))
    }

    /// The arguments as `key value` pairs, refusing keys the spec does not list.
    pub fn pairs(&self) -> Result<Pairs, ConfigError> {
        Pairs::parse(self.args, &self.spec.keys()).map_err(|e| self.error(e))
    }

    /// Arguments of the form `[MAX] [key value ...]`: an optional leading count (at least
    /// 1, `default` when absent), then the spec's `key value` arguments.
    pub fn count_then_pairs(&self, default: u32) -> Result<(u32, Pairs), ConfigError> {
        let (max, rest) = match self.args.first() {
            Some(first) if first.bytes().all(|b| b.is_ascii_digit()) => {
                let max = first
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| self.error(format!("MAX must be at least 1, not {first:?}")))?;
                (max, &self.args[1..])
            }
            _ => (default, self.args),
        };
        let pairs = Pairs::parse(rest, &self.spec.keys()).map_err(|e| self.error(e))?;
        Ok((max, pairs))
    }

    /// The `reject` and `reject_type` arguments, with this plugin's defaults.
    pub fn reject(
        &self,
        pairs: &Pairs,
        mode: crate::reject::RejectMode,
        kind: crate::reject::RejectType,
    ) -> Result<crate::reject::Reject, ConfigError> {
        crate::reject::Reject::from_pairs(pairs, mode, kind).map_err(|e| self.error(e))
    }

    /// Fails if there are arguments (for plugins that take none).
    pub fn no_args(&self) -> Result<(), ConfigError> {
        match self.args.first() {
            None => Ok(()),
            Some(a) => Err(self.error(format!("takes no arguments (got {a:?})"))),
        }
    }
}

/// `key value` arguments, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs(Vec<(String, String)>);

impl Pairs {
    pub fn parse(args: &[String], known: &[&str]) -> Result<Pairs, String> {
        if !args.len().is_multiple_of(2) {
            return Err(format!(
                "arguments must be key value pairs; {:?} has no value",
                args[args.len() - 1]
            ));
        }
        let mut pairs = Vec::new();
        for kv in args.chunks(2) {
            let key = kv[0].to_ascii_lowercase();
            if !known.contains(&key.as_str()) {
                return Err(format!(
                    "unknown argument {:?} (known: {})",
                    kv[0],
                    known.join(", ")
                ));
            }
            pairs.push((key, kv[1].clone()));
        }
        Ok(Pairs(pairs))
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean argument: `1`/`yes`/`true`/`on` or `0`/`no`/`false`/`off`.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_flag(v).ok_or_else(|| format!("{key} must be 0 or 1, not {v:?}")),
        }
    }

    /// A number of seconds (decimals allowed, more than 0, at most an hour), such as a
    /// plugin's `timeout`; `None` when not given.
    pub fn seconds(&self, key: &str) -> Result<Option<std::time::Duration>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.01 && *s <= 3600.0)
                .map(|s| Some(std::time::Duration::from_secs_f64(s)))
                .ok_or_else(|| {
                    format!("{key} must be a number of seconds (0.01 to 3600), not {v:?}")
                }),
        }
    }

    /// A value parsed with `FromStr`.
    pub fn value<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("invalid {key} {v:?}")),
        }
    }
}

/// `1`/`yes`/`true`/`on` → true; `0`/`no`/`false`/`off` → false.
pub fn parse_flag(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// A plugin's constructor.
pub type Factory = fn(&Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError>;

/// A plugin that can be named in `config/plugins`, with the facts about it that tests and
/// documentation check.
#[derive(Clone, Copy)]
pub struct PluginSpec {
    /// The name used in `config/plugins` (`relay`, `queue/maildir`).
    pub name: &'static str,
    pub factory: Factory,
    /// The arguments it accepts, spelled as its manual heads them: `key value` arguments
    /// in lower case (`only`, `reject`), positional ones in upper case (`DIR`, `MAX`).
    /// `loglevel` is not listed: the core takes it for every plugin.
    pub args: &'static [&'static str],
    /// True for a plugin whose failed check rejects the client (it then takes `reject`
    /// and `reject_type`).
    pub rejects: bool,
    /// A valid argument line, for tests; `{dir}` stands for a scratch directory.
    pub example: &'static str,
}

impl PluginSpec {
    /// The `key value` arguments (the lower-case entries of [`PluginSpec::args`]).
    pub fn keys(&self) -> Vec<&'static str> {
        self.args
            .iter()
            .copied()
            .filter(|a| a.chars().any(|c| c.is_ascii_lowercase()))
            .collect()
    }
}

impl std::fmt::Debug for PluginSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn pairs() {
        let p = Pairs::parse(&words("only 1 timeout 30"), &["only", "timeout"]).unwrap();
        assert_eq!(p.flag("only", false), Ok(true));
        assert_eq!(p.value("timeout", 5u32), Ok(30));
        assert_eq!(p.value("missing", 5u32), Ok(5));
        assert!(
            Pairs::parse(&words("only"), &["only"])
                .unwrap_err()
                .contains("no value")
        );
        assert!(
            Pairs::parse(&words("bogus 1"), &["only"])
                .unwrap_err()
                .contains("unknown argument")
        );
        let p = Pairs::parse(&words("only maybe"), &["only"]).unwrap();
        assert!(p.flag("only", false).is_err());
    }
}
