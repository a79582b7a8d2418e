//! How many connections the descriptor limit leaves room for, and the one warning when `--max-conns`
//! asks for more.

use crate::cli::Cli;

/// Descriptors a serving process holds besides its connections: stdio, each loop's poller, waker and
/// listener, the UDP socket, the signal pipe. Sixteen covers them for a few loops. The room left is an
/// estimate for the warning (hence its `~`), not a cap the server enforces: past it, accepts fail with
/// EMFILE and back off.
pub const DESCRIPTOR_RESERVE: u64 = 16;

/// Warns when `--max-conns` is above what a soft descriptor limit of `soft` allows across the server's
/// processes.
pub fn warn_if_short(cli: &Cli, soft: u64) {
    if let Some(warning) = warning(cli, soft) {
        log::warn!("{warning}");
    }
}

/// The warning [`warn_if_short`] logs, if any. A worker has none of its own: it inherits the limit its
/// supervisor raised, with its share of `--max-conns`, so the supervisor has already warned for all.
fn warning(cli: &Cli, soft: u64) -> Option<String> {
    if cli.worker_of.is_some() {
        return None;
    }
    let room = soft.saturating_sub(DESCRIPTOR_RESERVE) * u64::from(cli.workers);
    let max = cli.max_conns.filter(|&max| max > room)?;
    Some(format!(
        "--max-conns {max} is above what the descriptor limit allows (~{room} with {} process(es)); \
         past that, accepts fail with EMFILE and back off: add --workers to go further",
        cli.workers
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn cli(args: &str) -> Cli {
        Cli::try_parse_from(format!("echo-server {args}").split_whitespace()).expect("valid flags")
    }

    #[test]
    fn max_conns_beyond_the_descriptor_limit_is_named_with_the_room_there_is() {
        let said = warning(&cli("--max-conns 2000"), 1040).expect("a warning");
        assert!(said.contains("--max-conns 2000") && said.contains("~1024 with 1 process(es)"), "{said}");
        let said = warning(&cli("--max-conns 5000 --workers 4"), 1040).expect("a warning");
        assert!(said.contains("~4096 with 4 process(es)"), "{said}");
        assert_eq!(warning(&cli("--max-conns 1024"), 1040), None);
        assert_eq!(warning(&cli(""), 16), None);
    }

    /// The supervisor speaks for its workers; each saying the same again would repeat it N times.
    #[test]
    fn a_worker_leaves_the_warning_to_its_supervisor() {
        assert!(warning(&cli("--max-conns 5000 --workers 2"), 1040).is_some());
        assert_eq!(warning(&cli("--max-conns 2500 --worker-of 1"), 1040), None);
    }
}
