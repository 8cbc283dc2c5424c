//! The control files the core itself reads, with their defaults: one table, so the manual
//! page and the code cannot drift apart. They are read once, when the server is built.

use crate::config::{Config, ConfigError};
use crate::log::Level;
use std::path::PathBuf;
use std::time::Duration;

/// One core control file.
#[derive(Clone, Copy, Debug)]
pub struct CoreFile {
    pub name: &'static str,
    /// The default, as it would be written in the file (or a description of it).
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every control file the core reads. Plugins document their own files.
pub const CORE_FILES: &[CoreFile] = &[
    CoreFile {
        name: "me",
        default: "the host name",
        meaning: "this server's name: banner, HELO/EHLO reply, Received header, QUIT text",
    },
    CoreFile {
        name: "me-auth-results",
        default: "the value of me",
        meaning: "authserv-id of the Authentication-Results header; `none` adds no header",
    },
    CoreFile {
        name: "smtpgreeting",
        default: "<me> ESMTP qpsmtpd <version> ready; send us your mail, but not your spam.",
        meaning: "the banner text after 220; \" ESMTP\" is added when the text lacks it",
    },
    CoreFile {
        name: "databytes",
        default: "0",
        meaning: "largest message accepted, in bytes (LF line ends); 0 means no limit. Advertised as SIZE",
    },
    CoreFile {
        name: "size_threshold",
        default: "0",
        meaning: "message bytes kept in memory before the body is spooled to a file in spool_dir",
    },
    CoreFile {
        name: "spool_dir",
        default: "$TMPDIR or /tmp",
        meaning: "directory for spooled message bodies (created mode 0700 if missing)",
    },
    CoreFile {
        name: "timeoutsmtpd",
        default: "the value of timeout",
        meaning: "seconds to wait for a command line (qmail-smtpd's name; wins over timeout)",
    },
    CoreFile {
        name: "timeout",
        default: "1200",
        meaning: "seconds to wait for a command line, and for each read during DATA",
    },
    CoreFile {
        name: "loglevel",
        default: "4",
        meaning: "level (0-7) of messages written to stderr when no logging plugin is loaded",
    },
    CoreFile {
        name: "max_recipients",
        default: "100",
        meaning: "recipients accepted per message; more get 452 4.5.3",
    },
    CoreFile {
        name: "max_header_size",
        default: "102400",
        meaning: "largest header block accepted, in bytes; a larger one gets 552 5.3.4",
    },
    CoreFile {
        name: "dns_servers",
        default: "the nameservers of /etc/resolv.conf",
        meaning: "nameservers for DNS checks, one `ip` or `ip:port` per line ([ip]:port for IPv6)",
    },
    CoreFile {
        name: "dns_timeout",
        default: "5",
        meaning: "seconds to wait for a DNS answer, unless a plugin sets its own (decimals allowed)",
    },
    CoreFile {
        name: "plugins",
        default: "none",
        meaning: "the plugins to load, one per line, in hook order: `name [args...]`",
    },
    CoreFile {
        name: "logging",
        default: "none",
        meaning: "logging plugins, loaded before all others; same syntax as plugins",
    },
];

/// The parsed core configuration.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub me: String,
    /// `None` when `me-auth-results` is `none`.
    pub auth_results_id: Option<String>,
    pub greeting: Option<String>,
    pub databytes: u64,
    pub size_threshold: usize,
    pub spool_dir: PathBuf,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub loglevel: Level,
    pub max_recipients: usize,
    pub max_header_size: usize,
    pub dns: crate::dns::DnsSettings,
}

impl CoreConfig {
    /// Reads the core files. `hostname` is the default for `me`.
    pub fn load(config: &Config, hostname: &str) -> Result<CoreConfig, ConfigError> {
        let me = config
            .first("me")?
            .map(|l| l.text)
            .unwrap_or_else(|| hostname.to_string());
        let auth_results_id = match config.first("me-auth-results")? {
            Some(l) if l.text.eq_ignore_ascii_case("none") => None,
            Some(l) => Some(l.text),
            None => Some(me.clone()),
        };
        let timeout: u64 = config.value("timeout", 1200)?;
        let command_timeout: u64 = config.value("timeoutsmtpd", timeout)?;
        let loglevel = match config.first("loglevel")? {
            Some(l) => Level::parse(&l.text).ok_or_else(|| l.error("loglevel must be 0-7"))?,
            None => Level::Warn,
        };
        let spool_dir = match config.first("spool_dir")? {
            Some(l) => PathBuf::from(l.text),
            None => std::env::temp_dir(),
        };
        Ok(CoreConfig {
            me,
            auth_results_id,
            greeting: config.first("smtpgreeting")?.map(|l| l.text),
            databytes: config.value("databytes", 0)?,
            size_threshold: config.value("size_threshold", 0)?,
            spool_dir,
            command_timeout: Duration::from_secs(command_timeout.max(1)),
            data_timeout: Duration::from_secs(timeout.max(1)),
            loglevel,
            max_recipients: config.value("max_recipients", 100)?,
            max_header_size: config.value("max_header_size", 102_400)?,
            dns: dns_settings(config)?,
        })
    }

    /// Makes sure the spool directory exists (mode 0700 when created).
    pub fn prepare_spool_dir(&self) -> Result<(), ConfigError> {
        use std::os::unix::fs::DirBuilderExt;
        if self.spool_dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.spool_dir)
            .map_err(|e| ConfigError::new(format!("spool_dir {}: {e}", self.spool_dir.display())))
    }
}

/// `dns_servers` and `dns_timeout`.
fn dns_settings(config: &Config) -> Result<crate::dns::DnsSettings, ConfigError> {
    let mut servers = Vec::new();
    for line in config.lines("dns_servers")? {
        let addr = crate::dns::parse_server(&line.text)
            .ok_or_else(|| line.error(format!("{:?} is not an ip or ip:port", line.text)))?;
        servers.push(addr);
    }
    let timeout = match config.first("dns_timeout")? {
        None => 5.0,
        Some(l) => l
            .text
            .parse::<f64>()
            .ok()
            .filter(|t| (0.01..=3600.0).contains(t))
            .ok_or_else(|| l.error("dns_timeout must be a number of seconds"))?,
    };
    Ok(crate::dns::DnsSettings {
        servers,
        timeout: Duration::from_secs_f64(timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDirs;

    #[test]
    fn defaults_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::new(ConfigDirs::only(vec![dir.path().into()]));
        let core = CoreConfig::load(&c, "host.example").unwrap();
        assert_eq!(core.me, "host.example");
        assert_eq!(core.auth_results_id.as_deref(), Some("host.example"));
        assert_eq!(core.command_timeout, Duration::from_secs(1200));
        assert_eq!(core.max_recipients, 100);
        assert_eq!(core.loglevel, Level::Warn);

        std::fs::write(dir.path().join("me"), "mx.example\n").unwrap();
        std::fs::write(dir.path().join("timeout"), "30\n").unwrap();
        std::fs::write(dir.path().join("timeoutsmtpd"), "10\n").unwrap();
        std::fs::write(dir.path().join("me-auth-results"), "none\n").unwrap();
        let core = CoreConfig::load(&c, "host.example").unwrap();
        assert_eq!(core.me, "mx.example");
        assert_eq!(core.auth_results_id, None);
        assert_eq!(core.command_timeout, Duration::from_secs(10));
        assert_eq!(core.data_timeout, Duration::from_secs(30));

        std::fs::write(dir.path().join("loglevel"), "loud\n").unwrap();
        let err = CoreConfig::load(&c, "h").unwrap_err().to_string();
        assert!(err.ends_with("loglevel:1: loglevel must be 0-7"), "{err}");
    }

    #[test]
    fn table_names_are_unique() {
        let mut names: Vec<_> = CORE_FILES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CORE_FILES.len());
    }
}
