//! What a run counts while it runs: one `Tally` per loop or thread, added together at the end.

use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::error_kind::{ErrorCounts, ErrorKind};
use crate::loss::{Loss, Losses};
use crate::message::Stream;

/// Longest latency a histogram keeps (one hour, in µs); longer ones are recorded as this.
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in µs, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("constant bounds are valid")
}

/// Records `d` in µs (at least 1: the histogram's floor).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).clamp(1, HIGHEST_US));
}

/// A histogram as hex of its compressed HdrHistogram V2 encoding (readable by other HdrHistogram
/// implementations after hex-decoding).
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`encode`]; an empty string is an empty histogram.
pub fn decode(hex: &str) -> Result<Histogram<u64>, String> {
    if hex.is_empty() {
        return Ok(histogram());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or("a histogram is not valid hex")?;
    let decoded: Histogram<u64> =
        Deserializer::new().deserialize(&mut &bytes[..]).map_err(|e| format!("bad histogram: {e:?}"))?;
    let mut h = histogram();
    h.add(&decoded).map_err(|e| format!("histogram out of range: {e:?}"))?;
    Ok(h)
}

/// Counts and latencies of one loop, thread or process.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Message (or connect+echo) latency, µs.
    pub latency: Histogram<u64>,
    /// Connect latency, µs.
    pub connect: Histogram<u64>,
    /// Messages echoed and verified (after the warm-up).
    pub messages: u64,
    /// Bytes sent over the whole run, warm-up included.
    pub bytes_sent: u64,
    /// Bytes echoed and verified over the whole run, warm-up included.
    pub bytes_received: u64,
    /// Bytes sent on connections still open when the run ended, whose echo had not come back by then.
    pub bytes_in_flight_at_end: u64,
    /// Bytes sent on connections that ended before their echo came back; each loss is in `losses`.
    pub bytes_lost: u64,
    /// The losses behind `bytes_lost`, named.
    pub losses: Losses,
    /// Connections that completed their handshake.
    pub established: u64,
    /// Most connections open at once.
    pub peak_concurrent: u64,
    /// Connections the server closed or reset while we still wanted them.
    pub closed_by_server: u64,
    /// Connections the client closed before the run ended (churn: each cycle's; or after a mismatch).
    pub closed_by_client: u64,
    /// Connections still open when the run ended (then closed by the client).
    pub open_at_end: u64,
    /// Echoes that did not match (mismatch, loss, reorder).
    pub verify_failures: u64,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// The connects among `errors`: connections that could not be made.
    pub connect_errors: ErrorCounts,
    /// The first verification failure, in words.
    pub failure: Option<String>,
    /// Cycles completed (churn: connect, echo, close).
    pub cycles: u64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            latency: histogram(),
            connect: histogram(),
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            bytes_in_flight_at_end: 0,
            bytes_lost: 0,
            losses: Losses::default(),
            established: 0,
            peak_concurrent: 0,
            closed_by_server: 0,
            closed_by_client: 0,
            open_at_end: 0,
            verify_failures: 0,
            errors: ErrorCounts::new(),
            connect_errors: ErrorCounts::new(),
            failure: None,
            cycles: 0,
        }
    }
}

impl Tally {
    /// A tally for counts only, whose histograms take no memory to speak of: for a thread per
    /// connection, which sends its latencies elsewhere in batches.
    pub fn counts_only() -> Tally {
        let tiny = || Histogram::new_with_bounds(1, 2, 0).expect("constant bounds are valid");
        Tally { latency: tiny(), connect: tiny(), ..Tally::default() }
    }

    /// Counts one failure.
    pub fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Counts a connection that could not be made, and why.
    pub fn connect_failed(&mut self, kind: ErrorKind) {
        self.error(kind);
        *self.connect_errors.entry(kind).or_default() += 1;
    }

    /// Counts a verification failure, keeping the first one's words.
    pub fn verify_failed(&mut self, what: String) {
        self.verify_failures += 1;
        self.failure.get_or_insert(what);
    }

    /// Accounts for an established connection that ended: counts it by who ended it, and its bytes
    /// that did not come back as lost (with `ending`'s reason) or, if the run was ending, as in flight.
    /// Writes them off `stream`, which then owes nothing, so that no byte is counted twice. Returns the
    /// loss, if there was one.
    pub fn settle(&mut self, stream: &mut Stream, ending: Ending<'_>) -> Option<Loss> {
        let outstanding = stream.outstanding();
        let loss = Loss {
            connection: stream.conn,
            offset: stream.received(),
            bytes: outstanding,
            why: String::new(),
        };
        stream.write_off();
        let why = match ending {
            Ending::RunEnd => {
                self.open_at_end += 1;
                self.bytes_in_flight_at_end += outstanding;
                return None;
            }
            Ending::Server(why) => {
                self.closed_by_server += 1;
                why
            }
            Ending::Client(why) => {
                self.closed_by_client += 1;
                why
            }
        };
        if outstanding == 0 {
            return None;
        }
        let loss = Loss { why: why.to_owned(), ..loss };
        self.bytes_lost += outstanding;
        self.losses.push(loss.clone());
        Some(loss)
    }

    /// Adds another tally of a run that happened at the same time (peaks add up).
    pub fn add(&mut self, other: &Tally) {
        let _ = self.latency.add(&other.latency);
        let _ = self.connect.add(&other.connect);
        self.messages += other.messages;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.bytes_in_flight_at_end += other.bytes_in_flight_at_end;
        self.bytes_lost += other.bytes_lost;
        self.losses.add(&other.losses.listed, other.losses.not_listed);
        self.established += other.established;
        self.peak_concurrent += other.peak_concurrent;
        self.closed_by_server += other.closed_by_server;
        self.closed_by_client += other.closed_by_client;
        self.open_at_end += other.open_at_end;
        self.verify_failures += other.verify_failures;
        self.cycles += other.cycles;
        add_counts(&mut self.errors, &other.errors);
        add_counts(&mut self.connect_errors, &other.connect_errors);
        if self.failure.is_none() {
            self.failure.clone_from(&other.failure);
        }
    }
}

/// How an established connection ended, for the books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending<'a> {
    /// The server closed or reset it while the client still used it; why, in words.
    Server(&'a str),
    /// The client closed it before the run ended: its work was done (a churn cycle), or its echo did not
    /// match; why any bytes still owed will not come back.
    Client(&'a str),
    /// It was still open when the run ended: what it still owed was in flight.
    RunEnd,
}

/// Adds counts by kind.
pub fn add_counts(to: &mut ErrorCounts, from: &ErrorCounts) {
    for (&kind, count) in from {
        *to.entry(kind).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_through_hex() {
        let mut h = histogram();
        for v in [1, 50, 700, 123_456] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(decode("").unwrap().len(), 0);
        assert!(decode("zz").is_err());
    }
}
