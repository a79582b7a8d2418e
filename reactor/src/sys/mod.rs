//! The platform calls the loop itself makes (send and receive flags, SIGPIPE, readiness rules,
//! non-blocking connect), one door each. Facts about the host (descriptor limits, `/proc`, errno names) are the
//! `hostinfo` crate's, not part of this crate's API.

mod readiness;
mod socket;
mod socket_io;

pub(crate) use readiness::{SHORT_READ_DRAINS, STREAM_INTEREST, urgent_data};
pub(crate) use socket::{connect_nonblocking, no_sigpipe};
pub(crate) use socket_io::{Sender, recv, send};
