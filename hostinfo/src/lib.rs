//! Host facts: what the kernel says about this machine, its sockets and its processes.
//!
//! The workspace's binaries, tests and benches all ask the same questions — how many sockets to a port
//! are in TIME_WAIT, did a listener's accept queue overflow, what is the ephemeral port range, how much
//! memory does the server hold, may this process open 20,000 descriptors — and this crate is the one
//! place that answers them. The event loop takes only the descriptor limit and errno names from here.
//!
//! | module | reads | where |
//! |---|---|---|
//! | `errno` | [`errno_name`]: `EMFILE`, `ECONNREFUSED`… | every Unix |
//! | `fd_limit` | [`FdLimit`]: RLIMIT_NOFILE, and raising it | every Unix |
//! | `proc_net` | [`tcp_states`], [`listen_counters`], [`udp_drops`] from `/proc/net` | Linux only |
//! | `udp_counters` | [`udp_counters`]: `InErrors`, `RcvbufErrors`, `SndbufErrors` from `/proc/net/snmp` | Linux only |
//! | `machine` | [`sysctl`], [`somaxconn`], [`file_max`], [`local_port_range`], [`cpus`]… | every Unix |
//! | `sock_diag` | [`port_sockets`], [`listen_queues`]: a port's sockets and its listeners' backlogs, over netlink | Linux only |
//! | `resolve` | [`resolve`]: the addresses of `HOST:PORT` | every Unix |
//! | [`process`] | memory, threads, CPU time, descriptors of one process from `/proc/PID` | Linux only |
//! | [`kernel_memory`] | slab memory and the TCP line of `/proc/net/sockstat` | Linux only |
//! | [`utc`] | the wall clock as UTC dates (reports' dates, `--start-at`): conversions, no reading | everywhere |
//!
//! Readers of text files never fail on their content: a missing or malformed field (another kernel, a
//! container that hides part of `/proc`) reads as absent. They describe; callers decide what an absent
//! figure means for them. "Linux only" readers exist everywhere but answer "not available on this OS"
//! elsewhere: `None`, or an [`io::ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported) error whose
//! message names the fact, never a zero that looks measured ([`process`] is compiled on Linux alone:
//! only Linux tests and benches read other processes).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod errno;
mod fd_limit;
#[cfg(target_os = "linux")]
pub mod kernel_memory;
mod machine;
mod proc_net;
#[cfg(target_os = "linux")]
pub mod process;
mod resolve;
mod sock_diag;
mod udp_counters;
pub mod utc;

pub use errno::errno_name;
pub use fd_limit::{FdLimit, fd_limit, raise_fd_limit, raise_hard_fd_limit};
pub use machine::{cpus, file_max, kernel_release, local_port_range, somaxconn, sysctl, sysctl_u64};
pub use proc_net::{ListenCounters, TcpStates, listen_counters, tcp_states, udp_drops, udp_drops_on};
pub use resolve::resolve;
pub use sock_diag::{ListenQueue, listen_queues, port_sockets};
pub use udp_counters::{UdpCounters, udp_counters};

/// The error of a reader whose source this OS does not have: `what` names the fact.
fn not_available(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Unsupported, format!("{what}: not available on this OS"))
}
