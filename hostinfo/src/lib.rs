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
//! | `proc_net` | [`tcp_states`], [`listen_counters`], [`udp_drops`] from `/proc/net` | Linux |
//! | `machine` | [`sysctl`], [`local_port_range`], [`cpus`] from `/proc/sys`, `/proc/cpuinfo` | Linux |
//! | [`process`] | memory, threads, CPU time, descriptors of one process from `/proc/PID` | Linux |
//!
//! Readers of text files never fail on their content: a missing or malformed field (another kernel, a
//! container that hides part of `/proc`) reads as absent. They describe; callers decide what an absent
//! figure means for them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod errno;
mod fd_limit;
#[cfg(target_os = "linux")]
mod machine;
#[cfg(target_os = "linux")]
mod proc_net;
#[cfg(target_os = "linux")]
pub mod process;

pub use errno::errno_name;
pub use fd_limit::{FdLimit, fd_limit, raise_fd_limit, raise_hard_fd_limit};
#[cfg(target_os = "linux")]
pub use machine::{cpus, local_port_range, sysctl, sysctl_u64};
#[cfg(target_os = "linux")]
pub use proc_net::{ListenCounters, TcpStates, listen_counters, tcp_states, udp_drops};
