//! Whether a load run made the connections it was asked for; if not, one line that says how many it
//! missed and why. A run that falls short exits non-zero unless the user said that was expected.

use crate::report::Report;

/// How `report` fell short of the connections asked for, or `None` if it did not: for `echo` and
/// `connect`, connections never established; for `churn` (which connects again and again), connects
/// that failed.
pub fn shortfall(report: &Report) -> Option<String> {
    let failed: u64 = report.connect_errors.values().sum();
    let causes = report.connect_errors.iter().map(|(name, n)| format!("{name}: {n}")).collect::<Vec<_>>();
    if report.command == "churn" {
        let attempts = report.established + failed;
        return (failed > 0)
            .then(|| format!("{failed} of {attempts} connects failed ({})", causes.join(", ")));
    }
    let missing = report.connections_requested.saturating_sub(report.established);
    if missing == 0 {
        return None;
    }
    // Connections neither made nor failed: still connecting, or never begun, when the run ended.
    let unfinished = missing.saturating_sub(failed);
    let why = match (causes.is_empty(), unfinished) {
        (true, _) => format!("{unfinished} not made before the run ended"),
        (false, 0) => causes.join(", "),
        (false, _) => format!("{}; {unfinished} not made before the run ended", causes.join(", ")),
    };
    Some(format!("{missing} of {} connections could not be made ({why})", report.connections_requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(command: &str, requested: u64, established: u64, errors: &[(&str, u64)]) -> Report {
        Report {
            command: command.to_owned(),
            connections_requested: requested,
            established,
            connect_errors: errors.iter().map(|&(k, v)| (k.parse().unwrap(), v)).collect(),
            ..Report::default()
        }
    }

    #[test]
    fn the_line_names_how_many_connections_were_missed_and_why() {
        assert_eq!(shortfall(&report("echo", 20, 20, &[])), None);
        assert_eq!(
            shortfall(&report("echo", 20, 10, &[("EADDRNOTAVAIL", 10)])).unwrap(),
            "10 of 20 connections could not be made (EADDRNOTAVAIL: 10)"
        );
        assert_eq!(
            shortfall(&report("connect", 20, 5, &[("EMFILE", 12)])).unwrap(),
            "15 of 20 connections could not be made (EMFILE: 12; 3 not made before the run ended)"
        );
        assert_eq!(
            shortfall(&report("echo", 20, 18, &[])).unwrap(),
            "2 of 20 connections could not be made (2 not made before the run ended)"
        );
        assert_eq!(shortfall(&report("churn", 4, 900, &[])), None);
        assert_eq!(
            shortfall(&report("churn", 4, 900, &[("ECONNREFUSED", 100)])).unwrap(),
            "100 of 1000 connects failed (ECONNREFUSED: 100)"
        );
    }
}
