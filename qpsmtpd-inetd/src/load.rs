//! Building the server from the configuration.

use qpsmtpd_core::{Config, ConfigDirs, ConfigError, Server};
use std::path::Path;

/// The process environment, as plugins and config lookup read it.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// This machine's host name, the default for `me`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Reads the configuration and loads the plugins.
pub fn load_server(config_dir: Option<&Path>) -> Result<Server, ConfigError> {
    let config = Config::new(ConfigDirs::standard(config_dir, env));
    Server::load(config, qpsmtpd_plugins::CATALOGUE, &hostname(), &env)
}
