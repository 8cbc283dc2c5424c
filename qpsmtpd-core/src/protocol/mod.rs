//! Pure, I/O-free pieces of SMTP: command lines, addresses, the DATA decoder and replies.
//! Each has table-driven tests beside it.

pub mod address;
pub mod command;
pub mod data;
pub mod reply;

pub use address::{Address, AddressError};
pub use command::{ArgError, CommandLine, Params, PathArgs};
pub use data::DataDecoder;
pub use reply::{Enhanced, Reply};
