//! The built-in plugins of qpsmtpd-rs, one file each, grouped and named as in qpsmtpd so
//! that `config/plugins` lines carry over unchanged (`queue/qmail-queue`, `logging/warn`).
//!
//! Every plugin file starts with its manual page (NAME, DESCRIPTION, CONFIGURATION, SEE
//! ALSO) as a `//!` comment, and ends with its unit tests, which drive its hooks through
//! [`qpsmtpd_core::testing::Harness`].

use qpsmtpd_core::PluginSpec;

pub mod hosts_allow;
pub mod logging;
pub mod queue;
pub mod rcpt_ok;
pub mod relay;

/// Every plugin that `config/plugins` (or `config/logging`) can name.
pub const CATALOGUE: &[PluginSpec] = &[
    hosts_allow::SPEC,
    relay::SPEC,
    rcpt_ok::SPEC,
    queue::maildir::SPEC,
    queue::qmail_queue::SPEC,
    queue::smtp_forward::SPEC,
    logging::warn::SPEC,
];
