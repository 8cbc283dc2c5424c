//! (being written)

use qpsmtpd_core::{ConfigError, Plugin, Setup};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    Err(setup.error("not implemented yet"))
}
