//! The books of a report: the invariants every `echo`, `connect`, `churn` and `merge` report must keep
//! before it is printed, checked here and nowhere else. Every byte sent came back, was still in flight
//! when the run ended, or was lost with its connection and reason named; every message has one latency
//! sample; every connection made ended one way. A report whose books do not balance says which
//! invariant failed and by how much, and the run exits [`EXIT_BOOKS`](crate::EXIT_BOOKS).

use crate::report::Report;

/// What a warning about the books starts with.
const PREFIX: &str = "books do not balance";

/// The invariants `report` breaks, one sentence each (empty: its books balance).
pub fn check(report: &Report) -> Vec<String> {
    let r = report;
    let mut broken = Vec::new();
    let mut expect = |holds: bool, what: String| {
        if !holds {
            broken.push(what);
        }
    };
    let accounted = r.bytes_received + r.bytes_in_flight_at_end + r.bytes_lost;
    expect(
        accounted == r.bytes_sent,
        format!(
            "bytes_received + bytes_in_flight_at_end + bytes_lost = {} + {} + {} = {accounted}, but \
             bytes_sent = {}",
            r.bytes_received, r.bytes_in_flight_at_end, r.bytes_lost, r.bytes_sent
        ),
    );
    expect(
        r.latency_us.count == r.messages,
        format!("latency_us.count = {}, but messages = {}", r.latency_us.count, r.messages),
    );
    expect(
        r.connect_us.count == r.established,
        format!("connect_us.count = {}, but established = {}", r.connect_us.count, r.established),
    );
    let ended = r.closed_by_client + r.closed_by_server + r.open_at_end;
    expect(
        ended == r.established,
        format!(
            "closed_by_client + closed_by_server + open_at_end = {} + {} + {} = {ended}, but \
             established = {}",
            r.closed_by_client, r.closed_by_server, r.open_at_end, r.established
        ),
    );
    expect(
        r.messages.saturating_mul(r.message_size) <= r.bytes_received,
        format!(
            "messages × message_size = {} × {} is more than bytes_received = {}",
            r.messages, r.message_size, r.bytes_received
        ),
    );
    // A connect sends only its `--echo-every` sample, whose messages have a size.
    if r.command == "connect" && r.message_size == 0 {
        expect(
            r.bytes_sent == 0 && r.messages == 0,
            format!("connect sends nothing, but bytes_sent = {} and messages = {}", r.bytes_sent, r.messages),
        );
    }
    let listed: u64 = r.losses.iter().map(|l| l.bytes).sum();
    let losses = r.losses.len() as u64 + r.losses_not_listed;
    expect(
        (losses > 0) == (r.bytes_lost > 0)
            && if r.losses_not_listed == 0 { listed == r.bytes_lost } else { listed < r.bytes_lost },
        format!(
            "bytes_lost = {}, but the losses name {listed} bytes in {} and {} more are counted",
            r.bytes_lost,
            r.losses.len(),
            r.losses_not_listed
        ),
    );
    expect(
        r.peak_concurrent <= r.established,
        format!("peak_concurrent = {} is more than established = {}", r.peak_concurrent, r.established),
    );
    // The measured interval is `duration_s` long (to its rounding to the ms); a merge's common interval
    // is no longer than its longest part.
    if let (Some(Some(start)), Some(Some(end))) = (r.interval_start, r.interval_end) {
        expect(
            start <= end && end - start <= r.duration_s + 0.001,
            format!(
                "interval_end - interval_start = {end} - {start} = {:.6} s, but duration_s = {}",
                end - start,
                r.duration_s
            ),
        );
    }
    for (kind, &n) in &r.connect_errors {
        let all = r.errors.get(kind).copied().unwrap_or(0);
        expect(n <= all, format!("connect_errors.{kind} = {n} is more than errors.{kind} = {all}"));
    }
    if let Some(udp) = &r.udp {
        broken.extend(udp.books(r));
    }
    broken
}

/// Checks the books of `report` and of the `parts` it was merged from (children of `--processes`, or
/// the files given to `merge`, each named by `part_name`), and says in the report's warnings what does
/// not balance; returns whether everything did.
pub fn audit(report: &mut Report, parts: &[Report], part_name: impl Fn(usize) -> String) -> bool {
    let mut broken: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        broken.extend(check(part).into_iter().map(|b| format!("{PREFIX} in {}: {b}", part_name(i))));
    }
    broken.extend(check(report).into_iter().map(|b| format!("{PREFIX}: {b}")));
    for line in &broken {
        if !report.warnings.contains(line) {
            report.warnings.push(line.clone());
        }
    }
    broken.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Loss;
    use crate::report::Latency;

    /// An echo report whose books balance: 9 messages of 8 B measured after a warm-up of one, on 2
    /// connections, one of which the server closed with 8 B owed, the other still open at the end with
    /// 8 B in flight.
    fn balanced() -> Report {
        Report {
            command: "echo".into(),
            message_size: 8,
            established: 2,
            peak_concurrent: 2,
            messages: 9,
            bytes_sent: 96,
            bytes_received: 80,
            bytes_in_flight_at_end: 8,
            bytes_lost: 8,
            losses: vec![Loss { connection: 1, offset: 40, bytes: 8, why: "closed".into() }],
            closed_by_server: 1,
            open_at_end: 1,
            latency_us: Latency { count: 9, ..Latency::default() },
            connect_us: Latency { count: 2, ..Latency::default() },
            duration_s: 2.0,
            interval_start: Some(Some(100.0)),
            interval_end: Some(Some(101.9995)),
            ..Report::default()
        }
    }

    #[test]
    fn a_report_whose_every_byte_and_connection_is_accounted_for_balances() {
        assert_eq!(check(&balanced()), Vec::<String>::new());
        assert_eq!(check(&Report { command: "connect".into(), ..Report::default() }), Vec::<String>::new());
    }

    #[test]
    fn each_invariant_names_itself_and_its_numbers_when_broken() {
        /// A change that breaks one invariant, and what the check must then say.
        type Case = (fn(&mut Report), &'static str);
        let cases: [Case; 10] = [
            (|r| r.bytes_received -= 1, "= 95, but bytes_sent = 96"),
            (|r| r.messages += 1, "latency_us.count = 9, but messages = 10"),
            (|r| r.connect_us.count = 3, "connect_us.count = 3, but established = 2"),
            (|r| r.open_at_end = 0, "= 1, but established = 2"),
            (|r| r.message_size = 9, "messages × message_size = 9 × 9 is more than bytes_received = 80"),
            (|r| r.losses.clear(), "bytes_lost = 8, but the losses name 0 bytes in 0"),
            (|r| r.peak_concurrent = 3, "peak_concurrent = 3 is more than established = 2"),
            (
                |r| {
                    r.connect_errors.insert(crate::error_kind::ErrorKind::TimedOut, 1);
                },
                "connect_errors.ETIMEDOUT = 1 is more than errors.ETIMEDOUT = 0",
            ),
            (
                |r| (r.interval_start, r.interval_end) = (Some(Some(100.0)), Some(Some(102.5))),
                "= 2.500000 s, but duration_s = 2",
            ),
            (
                |r| (r.interval_start, r.interval_end) = (Some(Some(100.0)), Some(Some(99.0))),
                "= -1.000000 s, but duration_s = 2",
            ),
        ];
        for (breaks, says) in cases {
            let mut r = balanced();
            breaks(&mut r);
            let broken = check(&r);
            assert_eq!(broken.len(), 1, "{says}: {broken:?}");
            assert!(broken[0].contains(says), "{says:?} not in {broken:?}");
        }
    }

    #[test]
    fn an_audit_names_the_part_that_does_not_balance_and_warns_once() {
        let mut part = balanced();
        part.peak_concurrent = 5;
        let mut merged = balanced();
        assert!(!audit(&mut merged, &[balanced(), part], |i| format!("process {i}")));
        assert_eq!(merged.warnings.len(), 1, "{:?}", merged.warnings);
        assert!(
            merged.warnings[0].starts_with("books do not balance in process 1: "),
            "{:?}",
            merged.warnings
        );
        assert!(audit(&mut balanced(), &[balanced()], |i| format!("process {i}")));
    }
}
