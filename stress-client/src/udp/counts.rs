//! What a `udp` run counts, per loop while it runs, then added over loops, processes and reports.
//!
//! Every datagram is counted by the interval it was *sent* in: those sent during the warm-up (or before
//! `--start-at`) are tracked like the others, so that their echoes are recognised, but appear in no
//! count, no latency and no jitter; those sent in the measured interval appear in all of them, even
//! when their echo, their loss or their duplicate comes after its end. Datagrams that cannot be told
//! apart by name (a header that names no datagram sent) are counted as corrupted when they arrive in
//! the measured interval or after it.
//!
//! The counters, per datagram sent in the measured interval:
//! - `sent`: handed to the kernel (a send it refused is not sent: see `send_refused`).
//! - `received`: an intact copy came back within `--loss-timeout` of its send. Counted once.
//! - `lost`: no intact copy came back within `--loss-timeout`. Datagrams still missing when sending
//!   stops are waited for, each up to its own timeout, so that none is left "in flight":
//!   `sent == received + lost`, exactly.
//! - `late` (a part of `lost`): lost, and an intact copy came back after the timeout all the same.
//!   Counted once; it stays lost.
//! - `duplicated`: intact copies of a datagram that had already come back (received or late), one
//!   per extra copy. Not in `received`.
//! - `reordered` (a part of `received`): received while a higher sequence number of the same socket
//!   had already been received.
//! - `corrupted`: copies that came back altered (header or payload). A datagram that only ever came
//!   back corrupted is lost; the copy is counted here.
//! - `too_old`: intact copies of a datagram sent so long before that its record was recycled: a late
//!   arrival or a duplicate, which cannot be told. In no other count.
//! - `send_refused`: sends the kernel refused (`EAGAIN`, `ENOBUFS`): not sent, tried again.

use serde::{Deserialize, Serialize};

/// The counts of one loop, process or merge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Datagrams sent (measured interval).
    pub sent: u64,
    /// Of them, back intact within the loss timeout.
    pub received: u64,
    /// Of them, not back intact within the loss timeout.
    pub lost: u64,
    /// Of the lost, back intact after it.
    pub late: u64,
    /// Extra intact copies of datagrams already back.
    pub duplicated: u64,
    /// Of the received, received after a higher sequence number of their socket.
    pub reordered: u64,
    /// Copies that came back altered.
    pub corrupted: u64,
    /// Copies of datagrams whose record was already recycled: late or duplicate, not known which.
    pub too_old: u64,
    /// Sends the kernel refused (not sent).
    pub send_refused: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.received += other.received;
        self.lost += other.lost;
        self.late += other.late;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
        self.too_old += other.too_old;
        self.send_refused += other.send_refused;
    }

    /// Datagrams that went somewhere UDP lets them go (lost, duplicated, reordered), which fail a run
    /// unless `--allow-loss`.
    pub fn anomalies(&self) -> u64 {
        self.lost + self.duplicated + self.reordered + self.too_old
    }
}
