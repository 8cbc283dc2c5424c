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
    PluginSpec {
        name: "hosts_allow",
        factory: hosts_allow::new,
    },
    PluginSpec {
        name: "relay",
        factory: relay::new,
    },
    PluginSpec {
        name: "rcpt_ok",
        factory: rcpt_ok::new,
    },
    PluginSpec {
        name: "queue/maildir",
        factory: queue::maildir::new,
    },
    PluginSpec {
        name: "queue/qmail-queue",
        factory: queue::qmail_queue::new,
    },
    PluginSpec {
        name: "queue/smtp-forward",
        factory: queue::smtp_forward::new,
    },
    PluginSpec {
        name: "logging/warn",
        factory: logging::warn::new,
    },
];
