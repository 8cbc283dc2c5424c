//! The built-in plugins of qpsmtpd-rs, one file each, grouped and named as in qpsmtpd so
//! that `config/plugins` lines carry over unchanged (`queue/qmail-queue`, `logging/warn`).
//!
//! Every plugin file starts with its manual page (NAME, DESCRIPTION, CONFIGURATION, SEE
//! ALSO) as a `//!` comment, and ends with its unit tests, which drive its hooks through
//! [`qpsmtpd_core::testing::Harness`].

use qpsmtpd_core::PluginSpec;

pub mod badmailfrom;
pub mod badmailfromto;
pub mod badrcptto;
pub mod bogus_bounce;
pub mod connection_time;
pub mod content_log;
pub mod count_unrecognized_commands;
pub mod dkim;
pub mod dmarc;
pub mod dns_whitelist_soft;
pub mod dnsbl;
pub mod domainkeys;
pub mod dont_require_anglebrackets;
pub mod earlytalker;
pub mod fcrdns;
pub mod headers;
pub mod helo;
pub mod help;
pub mod hosts_allow;
pub mod loadcheck;
pub mod logging;
pub mod r#loop;
pub mod naughty;
pub mod noop_counter;
pub mod parse_addr_withhelo;
mod program;
pub mod queue;
pub mod quit_fortune;
pub mod random_error;
pub mod rcpt_map;
pub mod rcpt_ok;
pub mod rcpt_regexp;
pub mod relay;
pub mod resolvable_fromhost;
pub mod rhsbl;
pub mod sender_permitted_from;
#[cfg(test)]
mod test_support;
pub mod uribl;
pub mod user_config;
pub mod virus;
pub mod whitelist;

/// Every plugin that `config/plugins` (or `config/logging`) can name.
pub const CATALOGUE: &[PluginSpec] = &[
    // connection
    hosts_allow::SPEC,
    connection_time::SPEC,
    loadcheck::SPEC,
    earlytalker::SPEC,
    relay::SPEC,
    whitelist::SPEC,
    dns_whitelist_soft::SPEC,
    fcrdns::SPEC,
    dnsbl::SPEC,
    naughty::SPEC,
    random_error::SPEC,
    // commands
    helo::SPEC,
    count_unrecognized_commands::SPEC,
    noop_counter::SPEC,
    help::SPEC,
    quit_fortune::SPEC,
    // envelope
    dont_require_anglebrackets::SPEC,
    parse_addr_withhelo::SPEC,
    badmailfrom::SPEC,
    rhsbl::SPEC,
    resolvable_fromhost::SPEC,
    sender_permitted_from::SPEC,
    badmailfromto::SPEC,
    badrcptto::SPEC,
    rcpt_map::SPEC,
    rcpt_regexp::SPEC,
    rcpt_ok::SPEC,
    user_config::SPEC,
    // content
    headers::SPEC,
    uribl::SPEC,
    dkim::SPEC,
    domainkeys::SPEC,
    dmarc::SPEC,
    r#loop::SPEC,
    bogus_bounce::SPEC,
    content_log::SPEC,
    virus::klez_filter::SPEC,
    // queue
    queue::maildir::SPEC,
    queue::qmail_queue::SPEC,
    queue::smtp_forward::SPEC,
    // logging
    logging::warn::SPEC,
    logging::file::SPEC,
    logging::syslog::SPEC,
    logging::adaptive::SPEC,
    logging::devnull::SPEC,
    logging::connection_id::SPEC,
    logging::transaction_id::SPEC,
];
