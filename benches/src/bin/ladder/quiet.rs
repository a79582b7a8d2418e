//! Between rungs: wait until the previous rung's sockets are gone, so that the next rung's "before"
//! figures are the machine's own and not the tail of the last teardown.

use std::time::{Duration, Instant};

use hostinfo::kernel_memory;

/// TCP sockets in use that count as quiet: other programs on the machine hold some.
const QUIET_INUSE: u64 = 2_000;
/// Orphaned sockets (closed, still finishing) that count as quiet.
const QUIET_ORPHANS: u64 = 100;
/// TIME_WAIT sockets that count as quiet (other programs leave some): the last rung's expire within a
/// minute, and until then they hold slab memory the next rung's "before" would count.
const QUIET_TIME_WAIT: u64 = 10_000;
/// The longest wait.
const LIMIT: Duration = Duration::from_secs(180);

/// Waits (at most [`LIMIT`]) until few TCP sockets are in use, none is left finishing its close and the
/// last rung's TIME_WAIT sockets have expired;
/// returns what it saw, for the log.
pub fn wait_for_quiet() -> String {
    let start = Instant::now();
    loop {
        let Some(tcp) = kernel_memory::tcp_sockstat() else {
            return "no /proc/net/sockstat: not waiting".into();
        };
        let quiet =
            tcp.inuse <= QUIET_INUSE && tcp.orphan <= QUIET_ORPHANS && tcp.time_wait <= QUIET_TIME_WAIT;
        if quiet || start.elapsed() >= LIMIT {
            return format!(
                "{} after {:.1} s: TCP inuse {}, orphan {}, TIME_WAIT {}, mem {} pages",
                if quiet { "quiet" } else { "still busy" },
                start.elapsed().as_secs_f64(),
                tcp.inuse,
                tcp.orphan,
                tcp.time_wait,
                tcp.mem_pages
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
