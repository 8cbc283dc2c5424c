//! The transaction: one message's envelope, notes, header and body. A new one starts with
//! every MAIL, RSET, and after every message.

use crate::header::Header;
use crate::notes::Notes;
use crate::protocol::{Address, Params};
use crate::spool::Spool;
use std::io::{self, Read, Write};
use std::path::Path;

#[derive(Debug, Default)]
pub struct Transaction {
    /// Typed values one plugin leaves for another (mail-auth's SPF result for dmarc, say),
    /// one per type; gone with the transaction. Plain data for everyone goes in `notes`.
    extensions: Extensions,
    pub sender: Option<Address>,
    pub mail_params: Params,
    pub recipients: Vec<Address>,
    pub notes: Notes,
    /// The header block (set once DATA has delivered it).
    pub header: Header,
    /// The body after the blank line that ends the header.
    pub(crate) body: Option<Spool>,
    /// Bytes received after DATA, header included, with LF line ends.
    pub data_size: u64,
    /// The smallest per-recipient `databytes` of the accepted recipients, if any set one
    /// (through `user_config`); the message may not be larger.
    pub databytes: Option<u64>,
}

/// A map from type to one value of that type.
#[derive(Default)]
struct Extensions(std::collections::HashMap<std::any::TypeId, Box<dyn std::any::Any + Send>>);

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extensions({})", self.0.len())
    }
}

impl Transaction {
    /// Leaves a typed value for other plugins (replacing one of the same type).
    pub fn set_extension<T: Send + 'static>(&mut self, value: T) {
        self.extensions
            .0
            .insert(std::any::TypeId::of::<T>(), Box::new(value));
    }

    /// A typed value another plugin left, if any.
    pub fn extension<T: 'static>(&self) -> Option<&T> {
        self.extensions
            .0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<T>())
    }

    /// Adds a recipient (plugins that expand aliases use this).
    pub fn add_recipient(&mut self, rcpt: Address) {
        self.recipients.push(rcpt);
    }

    /// Removes every recipient with the same `user@host` (case-insensitive).
    pub fn remove_recipient(&mut self, rcpt: &Address) {
        let target = rcpt.address().to_ascii_lowercase();
        self.recipients
            .retain(|r| r.address().to_ascii_lowercase() != target);
    }

    /// The body length in bytes (LF line ends).
    pub fn body_len(&self) -> u64 {
        self.body.as_ref().map_or(0, Spool::len)
    }

    /// A reader over the body (after the header), from its start.
    pub fn body_reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        match &mut self.body {
            Some(b) => b.reader(),
            None => Ok(Box::new(io::empty())),
        }
    }

    /// The body as a file (for scanners that want a path); spools it to disk if needed.
    pub fn body_path(&mut self) -> io::Result<Option<&Path>> {
        match &mut self.body {
            Some(b) => b.path().map(Some),
            None => Ok(None),
        }
    }

    /// The whole message, header then blank line then body, LF line ends.
    pub fn message_reader(&mut self) -> io::Result<impl Read + Send + '_> {
        let mut head = self.header.as_bytes();
        head.push(b'\n');
        Ok(io::Cursor::new(head).chain(self.body_reader()?))
    }

    /// Writes the whole message with LF line ends; returns the bytes written.
    pub fn write_message(&mut self, w: &mut impl Write) -> io::Result<u64> {
        io::copy(&mut self.message_reader()?, w)
    }

    /// The `Message-Id` header value, if any.
    pub fn message_id(&self) -> Option<String> {
        self.header.get("Message-Id")
    }
}
