//! Support for the fault-injection suite in `tests/`: the binaries under test, network namespaces
//! that a test creates and always removes, and how long a run is.
//!
//! Every test in the suite names a fault, says how it was produced on this machine, and prints the
//! numbers that held (connections, bytes verified, peak RSS, CPU while over a limit, recovery time).
//! The default counts are scaled down to keep `cargo test --workspace` short; `FAULTS_LONG=1` runs the
//! full sizes the reliability table quotes. Cases that need root and `ip` (namespaces, `tc`, blackhole
//! routes) report themselves as skipped where they cannot run, and fail instead when `CI` is set.
//!
//! Linux only, as a whole: namespaces, `tc`, `/proc` and the kernel's own counters are what the suite
//! is made of. Elsewhere the crate and its tests are empty.
#![cfg(target_os = "linux")]
#![deny(missing_docs)]

pub mod binaries;
pub mod netns;
pub mod scale;

pub use binaries::{echo_server, stress_client};
pub use netns::{Lan, Namespace, namespaces_unavailable, skip};
pub use scale::{long, scaled};
