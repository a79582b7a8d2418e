//! `--processes P`: the same command in P child processes (this executable, run again), each with a
//! share of the connections, the rates and the source addresses; their JSON reports are merged. This
//! is how one run goes past one process's descriptor limit.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cli::LoadArgs;
use crate::report::Report;
use crate::target_process::Sampler;

/// Options the parent rewrites for each child; everything else passes through unchanged.
const SPLIT: [&str; 8] = [
    "--processes",
    "--connections",
    "--source-ips",
    "--rate",
    "--ramp",
    "--id-offset",
    "--child-index",
    "--target",
];

/// The command-line arguments without the options in `split` (and `--json`, which children always get).
pub(crate) fn passed_through(args: impl Iterator<Item = OsString>, split: &[&str]) -> Vec<OsString> {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--json" {
            continue;
        }
        if let Some(flag) = split.iter().find(|f| text.starts_with(*f)) {
            skip_value = text.len() == flag.len();
            continue;
        }
        kept.push(arg);
    }
    kept
}

/// One child's share of `total` (the first `total % parts` get one more).
pub(crate) fn share(total: u64, parts: u64, index: u64) -> u64 {
    total / parts + u64::from(index < total % parts)
}

/// `total` (a rate) in the proportion of `n` of `connections`: what a child with `n` connections is
/// given.
fn part_of(total: f64, n: u64, connections: u64) -> f64 {
    total * (n as f64 / connections as f64)
}

/// The smallest part of `total` (a rate) any of the children of a run over `processes` processes gets:
/// each child parses its part as it would `--rate` or `--ramp`, so this must be a value they accept.
pub fn smallest_part(total: f64, connections: u64, processes: u32) -> f64 {
    let parts = u64::from(processes).min(connections).max(1);
    part_of(total, share(connections, parts, parts - 1), connections)
}

/// Runs the children and returns their reports; fails if one of them produced no report.
pub fn run(
    load: &LoadArgs,
    connections: u64,
    rate: Option<f64>,
    mut sampler: Option<&mut Sampler>,
) -> io::Result<Vec<Report>> {
    let parts = u64::from(load.processes).min(connections);
    let base = passed_through(std::env::args_os().skip(1), &SPLIT);
    let exe = std::env::current_exe()?;
    let sources = load.source_ips.clone().map(|s| s.0).unwrap_or_default();
    let mut children = Vec::new();
    let mut offset = load.id_offset;
    for i in 0..parts {
        let n = share(connections, parts, i);
        let mut command = Command::new(&exe);
        command.args(&base).arg("--json").stdin(Stdio::null()).stdout(Stdio::piped());
        command.args(["--connections", &n.to_string(), "--id-offset", &offset.to_string()]);
        command.args(["--child-index", &i.to_string()]);
        // The address the parent chose, so that no child resolves the name again or picks another.
        command.args(["--target", &load.target.address().to_string()]);
        if let Some(rate) = rate {
            command.args(["--rate", &part_of(rate, n, connections).to_string()]);
        }
        if let Some(ramp) = load.ramp {
            command.args(["--ramp", &part_of(ramp, n, connections).to_string()]);
        }
        if !sources.is_empty() {
            // Each child its own addresses where there are enough; otherwise all of them.
            let mine: Vec<_> = if sources.len() as u64 >= parts {
                sources.iter().skip(i as usize).step_by(parts as usize).copied().collect()
            } else {
                sources.clone()
            };
            command.args(["--source-ips", &crate::source_ips::to_list(&mine)]);
        }
        offset += n;
        children.push(command.spawn()?);
    }
    collect_reports(children, || {
        // Sample the server while the children run.
        if let Some(sampler) = sampler.as_mut() {
            sampler.poll();
            Some(sampler.due_in().clamp(Duration::from_millis(1), Duration::from_millis(50)))
        } else {
            None
        }
    })
}

/// Reads every child's JSON report, each on its own thread so that no child blocks on a full pipe;
/// while any child still runs, calls `meanwhile` and sleeps as long as it asks (`None`: just wait).
/// Fails if a child produced no report.
pub(crate) fn collect_reports(
    mut children: Vec<Child>,
    mut meanwhile: impl FnMut() -> Option<Duration>,
) -> io::Result<Vec<Report>> {
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let mut out = c.stdout.take().expect("stdout is piped");
            std::thread::spawn(move || {
                let mut text = String::new();
                out.read_to_string(&mut text).map(|_| text)
            })
        })
        .collect();
    while readers.iter().any(|r| !r.is_finished()) {
        let Some(pause) = meanwhile() else { break };
        std::thread::sleep(pause);
    }
    let mut reports = Vec::new();
    for (i, (mut child, reader)) in children.into_iter().zip(readers).enumerate() {
        let text = reader.join().map_err(|_| io::Error::other("a reader thread panicked"))??;
        let status = child.wait()?;
        let report: Report = serde_json::from_str(&text)
            .map_err(|e| io::Error::other(format!("child process {i} ({status}) wrote no report: {e}")))?;
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_options_are_removed_in_both_spellings() {
        let args = ["echo", "--target", "x", "--connections", "9", "--processes=3", "--json", "--size", "8"];
        let kept = passed_through(args.iter().map(OsString::from), &SPLIT);
        assert_eq!(kept, ["echo", "--size", "8"].map(OsString::from));
    }

    #[test]
    fn shares_add_up() {
        assert_eq!((0..4).map(|i| share(10, 4, i)).collect::<Vec<_>>(), [3, 3, 2, 2]);
    }
}
