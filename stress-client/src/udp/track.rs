//! One socket's record of the datagrams it sent, by sequence number: what became of each (back, lost,
//! back late), so that every echo is classified once and every datagram ends in exactly one of
//! `received` and `lost` (see [`counts`](super::counts) for what each count means).
//!
//! The record is a bounded window of sequence numbers. A datagram's entry stays while it is
//! outstanding, and for a while after it is settled, so that a late copy or a duplicate is recognised;
//! the oldest settled entries are recycled when the window is full or when they are older than the
//! loss timeout plus [`KEEP`]. A socket whose oldest entry is still outstanding when the window is full
//! sends nothing until that entry is settled (back, or lost at its timeout).

use std::collections::VecDeque;
use std::time::Duration;

use super::counts::Counts;

/// How long after its loss timeout a settled datagram is remembered, to recognise late copies and
/// duplicates of it.
pub const KEEP: Duration = Duration::from_secs(1);

/// What became of one datagram so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Sent, not back yet, its timeout not passed.
    Outstanding,
    /// Back intact within its timeout.
    Received,
    /// Not back within its timeout.
    Lost,
    /// Lost, then back intact after its timeout.
    Late,
}

/// One datagram sent.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// When it was handed to the kernel, ns since the loop started.
    sent: u64,
    /// The time its header carries (its intended send time), ns since the loop started.
    stamp: u64,
    state: State,
    /// Sent in the measured interval: counted.
    counted: bool,
}

/// A datagram that came back intact in time, and was sent in the measured interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnTime {
    /// From its intended send time to now, ns.
    pub latency_ns: u64,
    /// From its actual send time to now, ns: its transit, for the jitter.
    pub transit_ns: u64,
}

/// What an echoed copy was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Counted (or, sent in the warm-up, deliberately not), and if it was a measured datagram back in
    /// time, its times.
    Known(Option<OnTime>),
    /// A copy that names no datagram this socket remembers sending (an altered header, or a sequence
    /// number never sent): the caller counts it as corrupted.
    Unknown,
    /// An intact copy of a datagram whose record was recycled: the caller counts it as too old.
    Recycled,
}

/// The record of one socket.
#[derive(Debug)]
pub struct Sequence {
    /// Sequence number of `entries[0]`.
    base: u64,
    entries: VecDeque<Entry>,
    /// No datagram below this is outstanding.
    first_open: u64,
    outstanding: usize,
    /// Highest sequence number received so far.
    highest: Option<u64>,
    capacity: usize,
    timeout_ns: u64,
    keep_ns: u64,
}

impl Sequence {
    /// A record of at most `capacity` datagrams, each lost if not back within `timeout`.
    pub fn new(capacity: usize, timeout: Duration) -> Sequence {
        Sequence {
            base: 0,
            entries: VecDeque::new(),
            first_open: 0,
            outstanding: 0,
            highest: None,
            capacity: capacity.max(1),
            timeout_ns: nanos(timeout),
            keep_ns: nanos(timeout).saturating_add(nanos(KEEP)),
        }
    }

    /// The sequence number the next datagram gets.
    pub fn next(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Datagrams sent and not yet settled.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Whether the record has room for one more datagram at `now` (recycling old settled entries).
    pub fn has_room(&mut self, now: u64) -> bool {
        while let Some(front) = self.entries.front() {
            let old = now.saturating_sub(front.sent) > self.keep_ns;
            if front.state == State::Outstanding || !(old || self.entries.len() >= self.capacity) {
                break;
            }
            self.entries.pop_front();
            self.base += 1;
        }
        self.first_open = self.first_open.max(self.base);
        self.entries.len() < self.capacity
    }

    /// Records datagram [`next`](Self::next) as sent at `now` with header time `stamp`.
    pub fn sent(&mut self, now: u64, stamp: u64, counted: bool, counts: &mut Counts) {
        self.entries.push_back(Entry { sent: now, stamp, state: State::Outstanding, counted });
        self.outstanding += 1;
        counts.sent += u64::from(counted);
    }

    /// Settles as lost every datagram whose timeout has passed at `now`; returns how many.
    pub fn expire(&mut self, now: u64, counts: &mut Counts) -> usize {
        let mut expired = 0;
        while self.first_open < self.next() {
            let entry = &mut self.entries[(self.first_open - self.base) as usize];
            if entry.state == State::Outstanding {
                // Sent in order, so their timeouts pass in order: the first one still running ends it.
                if now.saturating_sub(entry.sent) <= self.timeout_ns {
                    break;
                }
                entry.state = State::Lost;
                counts.lost += u64::from(entry.counted);
                self.outstanding -= 1;
                expired += 1;
            }
            self.first_open += 1;
        }
        expired
    }

    /// Classifies a copy of datagram `seq` with header time `stamp` that arrived at `now`, `intact` or
    /// not, and counts it.
    pub fn arrive(&mut self, seq: u64, stamp: u64, intact: bool, now: u64, counts: &mut Counts) -> Arrival {
        if seq >= self.next() {
            return Arrival::Unknown;
        }
        if seq < self.base {
            return if intact { Arrival::Recycled } else { Arrival::Unknown };
        }
        let entry = &mut self.entries[(seq - self.base) as usize];
        if entry.stamp != stamp {
            return Arrival::Unknown;
        }
        let counted = u64::from(entry.counted);
        if !intact {
            counts.corrupted += counted;
            return Arrival::Known(None);
        }
        match entry.state {
            State::Outstanding if now.saturating_sub(entry.sent) > self.timeout_ns => {
                // Its timeout passed before the loss was noticed: lost, and late.
                entry.state = State::Late;
                self.outstanding -= 1;
                counts.lost += counted;
                counts.late += counted;
                Arrival::Known(None)
            }
            State::Outstanding => {
                entry.state = State::Received;
                self.outstanding -= 1;
                counts.received += counted;
                let reordered = self.highest.is_some_and(|h| h > seq);
                counts.reordered += u64::from(reordered) * counted;
                self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
                let times = OnTime {
                    latency_ns: now.saturating_sub(entry.stamp),
                    transit_ns: now.saturating_sub(entry.sent),
                };
                Arrival::Known(entry.counted.then_some(times))
            }
            State::Lost => {
                entry.state = State::Late;
                counts.late += counted;
                Arrival::Known(None)
            }
            State::Received | State::Late => {
                counts.duplicated += counted;
                Arrival::Known(None)
            }
        }
    }
}

/// RFC 3550's interarrival jitter (§6.4.1, A.8), as iperf3 reports it: a running estimate of the mean
/// difference between the transit times of consecutive datagrams, smoothed by 1/16.
#[derive(Clone, Copy, Debug, Default)]
pub struct Jitter {
    last_transit: Option<u64>,
    /// The estimate, ns.
    jitter_ns: f64,
    /// Transit times seen.
    samples: u64,
}

impl Jitter {
    /// Takes the transit time of the next datagram received.
    pub fn add(&mut self, transit_ns: u64) {
        if let Some(last) = self.last_transit {
            let d = transit_ns.abs_diff(last) as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_transit = Some(transit_ns);
        self.samples += 1;
    }

    /// The estimate in µs, once two datagrams gave a difference.
    pub fn us(&self) -> Option<f64> {
        (self.samples >= 2).then_some(self.jitter_ns / 1000.0)
    }
}

/// `d` in ns, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn record() -> (Sequence, Counts) {
        (Sequence::new(8, Duration::from_millis(10)), Counts::default())
    }

    #[test]
    fn every_datagram_ends_received_or_lost_and_copies_are_counted_once() {
        let (mut s, mut c) = record();
        for i in 0..5 {
            assert!(s.has_room(i * MS));
            s.sent(i * MS, i * MS, true, &mut c);
        }
        // 1 back, 0 back after it (reordered), 1 again (duplicate), 3 corrupted.
        assert!(matches!(s.arrive(1, MS, true, 2 * MS, &mut c), Arrival::Known(Some(_))));
        assert!(matches!(s.arrive(0, 0, true, 3 * MS, &mut c), Arrival::Known(Some(_))));
        assert_eq!(s.arrive(1, MS, true, 3 * MS, &mut c), Arrival::Known(None));
        assert_eq!(s.arrive(3, 3 * MS, false, 4 * MS, &mut c), Arrival::Known(None));
        // A wrong time or a sequence number never sent names no datagram.
        assert_eq!(s.arrive(2, 7, true, 4 * MS, &mut c), Arrival::Unknown);
        assert_eq!(s.arrive(9, 0, true, 4 * MS, &mut c), Arrival::Unknown);
        // 2's timeout passes unseen, then it comes back: lost and late. 3 and 4 expire.
        assert_eq!(s.arrive(2, 2 * MS, true, 13 * MS, &mut c), Arrival::Known(None));
        assert_eq!(s.expire(15 * MS, &mut c), 2);
        assert_eq!(s.outstanding(), 0);
        // 4 comes back after its loss was counted: late, once; then a duplicate.
        s.arrive(4, 4 * MS, true, 16 * MS, &mut c);
        s.arrive(4, 4 * MS, true, 16 * MS, &mut c);
        let expected = Counts {
            sent: 5,
            received: 2,
            lost: 3,
            late: 2,
            duplicated: 2,
            reordered: 1,
            corrupted: 1,
            ..Counts::default()
        };
        assert_eq!(c, expected);
        assert_eq!(c.sent, c.received + c.lost);
    }

    #[test]
    fn warm_up_datagrams_are_recognised_but_not_counted() {
        let (mut s, mut c) = record();
        s.sent(0, 0, false, &mut c);
        s.sent(MS, MS, true, &mut c);
        assert_eq!(s.arrive(0, 0, true, MS, &mut c), Arrival::Known(None));
        s.arrive(0, 0, true, MS, &mut c);
        assert_eq!(s.expire(20 * MS, &mut c), 1);
        assert_eq!(c, Counts { sent: 1, lost: 1, ..Counts::default() });
    }

    #[test]
    fn a_full_record_waits_for_its_oldest_and_recycles_settled_entries() {
        let (mut s, mut c) = record();
        for i in 0..8 {
            assert!(s.has_room(0));
            s.sent(0, i, true, &mut c);
        }
        assert!(!s.has_room(0));
        s.arrive(0, 0, true, MS, &mut c);
        assert!(s.has_room(MS));
        s.sent(MS, 8, true, &mut c);
        // Seq 0's record is gone: a copy of it can no longer be told late from duplicate.
        assert_eq!(s.arrive(0, 0, true, MS, &mut c), Arrival::Recycled);
        assert_eq!(s.next(), 9);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let mut j = Jitter::default();
        j.add(1000);
        assert_eq!(j.us(), None);
        j.add(2600);
        assert_eq!(j.us(), Some(0.1));
    }
}
