//! What the main thread waits for while servers run, and how it reports.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use reactor::{AcceptErrorKind, CloseKind, Counters};

/// How long past `--shutdown-timeout` a loop thread or a worker process may take to end before it
/// counts as stuck. The timeout bounds the flush only: after it, a loop still closes what is left and
/// returns, and a worker still has to exit and be reaped. Two seconds covers that on a loaded machine,
/// while a server that really hangs is still stopped (with a failure) soon after the timeout.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Something the main thread must react to.
#[derive(Debug)]
pub enum Event {
    /// SIGINT or SIGTERM arrived.
    Signal(i32),
    /// A server thread ended, with its result.
    Ended { index: usize, result: io::Result<()> },
}

/// Prints the line scripts wait for, once per address, and flushes it.
pub fn print_listening(addr: &dyn std::fmt::Display) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()
}

/// The same for the UDP socket, marked as such so that scripts taking the first line get TCP.
pub fn print_listening_udp(addr: SocketAddr) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr} (udp)")?;
    stdout.flush()
}

/// Sums the counters of several loops.
pub fn total(counters: impl IntoIterator<Item = Counters>) -> Counters {
    counters.into_iter().fold(Counters::default(), |mut sum, c| {
        sum.add(&c);
        sum
    })
}

/// One line of counters for the `--stats` report.
pub fn describe(c: &Counters) -> String {
    let mut line = format!(
        "active {} accepted {} closed {} in {:.1} MB out {:.1} MB",
        c.active,
        c.accepted,
        c.closed_total(),
        c.bytes_in as f64 / 1e6,
        c.bytes_out as f64 / 1e6
    );
    if c.bytes_discarded > 0 {
        line += &format!(" discarded {:.1} MB", c.bytes_discarded as f64 / 1e6);
    }
    for kind in CloseKind::ALL {
        if c.closed(kind) > 0 && kind != CloseKind::PeerClosed {
            line += &format!(" {}={}", kind.name(), c.closed(kind));
        }
    }
    for kind in AcceptErrorKind::ALL {
        if c.accept_errors(kind) > 0 {
            line += &format!(" accept_{}={}", kind.name(), c.accept_errors(kind));
        }
    }
    if c.datagrams_in + c.datagrams_truncated > 0 {
        line += &format!(
            " datagrams in {} out {} refused {}",
            c.datagrams_in, c.datagrams_out, c.datagrams_refused
        );
        // Rare, and each a datagram lost here: shown only when they happened.
        if c.datagrams_truncated > 0 {
            line += &format!(" truncated {}", c.datagrams_truncated);
        }
        if c.datagrams_failed > 0 {
            line += &format!(" failed {}", c.datagrams_failed);
        }
    }
    if c.accept_paused_at_cap > 0 {
        line += &format!(" paused_at_cap={}", c.accept_paused_at_cap);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_losses_are_shown_when_they_happened() {
        let mut c = Counters::default();
        (c.datagrams_in, c.datagrams_out) = (5, 5);
        assert!(describe(&c).ends_with(" datagrams in 5 out 5 refused 0"), "{}", describe(&c));
        (c.datagrams_truncated, c.datagrams_failed) = (2, 1);
        assert!(describe(&c).ends_with(" refused 0 truncated 2 failed 1"), "{}", describe(&c));
        // Datagrams cut short are reported even when none was delivered.
        let mut cut = Counters::default();
        (cut.datagrams_truncated, cut.datagrams_out) = (3, 0);
        assert!(describe(&cut).contains(" datagrams in 0 out 0 refused 0 truncated 3"), "{}", describe(&cut));
    }
}
