//! Platform specifics, one door each.

mod fd_limit;
mod socket;

pub use fd_limit::{FdLimit, fd_limit, raise_fd_limit};
pub(crate) use socket::connect_nonblocking;
