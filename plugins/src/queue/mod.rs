//! Queue plugins (hook `queue`): hand an accepted message over. Each says `Ok` only once
//! the message is durably stored, so a 250 never goes out for a message that could be lost.

pub mod maildir;
#[path = "qmail-queue.rs"]
pub mod qmail_queue;
#[path = "smtp-forward.rs"]
pub mod smtp_forward;
