//! # NAME
//!
//! uribl - (being written)

use qpsmtpd_core::{ConfigError, Plugin, PluginSpec, Setup};

pub const SPEC: PluginSpec = PluginSpec {
    name: "uribl",
    factory: new,
    args: &[],
    rejects: false,
    example: "",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    Err(setup.error("not implemented yet"))
}
