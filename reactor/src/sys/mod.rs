//! Platform specifics, one door each.

mod fd_limit;
#[cfg(target_os = "linux")]
mod proc_net;
mod readiness;
mod socket;
mod socket_io;

pub use fd_limit::{FdLimit, fd_limit, raise_fd_limit};
#[cfg(target_os = "linux")]
pub use proc_net::{
    ListenCounters, TcpStates, listen_counters, local_port_range, sysctl, sysctl_u64, tcp_states, udp_drops,
};
pub(crate) use readiness::{SHORT_READ_DRAINS, STREAM_INTEREST, urgent_data};
pub(crate) use socket::connect_nonblocking;
pub(crate) use socket_io::{Sender, recv, send};
