//! Logging plugins (hook `logging`), loaded from `config/logging` before all others.

pub mod warn;
