//! The platform calls the loop itself makes (send and receive flags, SIGPIPE, readiness rules,
//! non-blocking connect, batched datagram I/O on Linux), one door each. Facts about the host (descriptor limits, `/proc`, errno names) are the
//! `hostinfo` crate's, not part of this crate's API.

// The crate's only `unsafe`: the message headers of batched datagram I/O (see the module's docs).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod mmsg;
mod readiness;
#[cfg(not(target_os = "linux"))]
mod recv_datagram;
mod socket;
mod socket_io;

#[cfg(target_os = "linux")]
pub(crate) use mmsg::{BATCH as DATAGRAM_BATCH, RecvBatch, SendBatch, Slots};
#[cfg(not(target_os = "linux"))]
pub(crate) use recv_datagram::recv_datagram;

pub(crate) use readiness::{SHORT_READ_DRAINS, STREAM_INTEREST, urgent_data};
pub(crate) use socket::{connect_nonblocking, no_sigpipe};
pub(crate) use socket_io::{Sender, recv, send};
