//! What a load run is told before it starts, on stderr once and in its report's `preflight`: the
//! limits below what it asks for, sized to the run it will really make. A fixed run is warned about
//! each limit it would cross; `connect --until-failure`, which stops at the first sustained failure, is
//! told which limit it will meet first and about where — the client's, the machine's, or, when the
//! target runs here, the server's own.

use crate::environment::{DESCRIPTOR_RESERVE, Environment};
use crate::target_process::TargetServer;

/// Descriptors a server holds besides its connections (listener, poller, stdio, logs): an allowance.
const SERVER_RESERVE: u64 = 16;

/// What a run asks for.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    /// Connections (for `--until-failure`: the most it will try).
    pub connections: u64,
    /// Source addresses (0: the kernel chooses one).
    pub sources: u64,
    /// Client processes.
    pub processes: u64,
    /// `--until-failure`: the ramp, connections per second.
    pub until_failure: Option<f64>,
}

/// The pre-flight warnings of a run asking for `ask` on `env`, against `server` when it runs here.
pub fn warnings(env: &Environment, ask: &Ask, server: Option<&TargetServer>) -> Vec<String> {
    if let Some(ramp) = ask.until_failure {
        return vec![until_failure(env, ask, ramp, server)];
    }
    let mut warnings = env.warnings(ask.connections, ask.sources, ask.processes);
    if let Some(server) = server
        && let Some(capacity) = server_capacity(server)
        && ask.connections > capacity
    {
        warnings.push(format!(
            "the server ({}) has RLIMIT_NOFILE soft {}: it can hold about {capacity} of the {} connections \
             asked for; expect the rest to wait in its accept queue, and to time out past it",
            server.who(),
            server.nofile_soft.unwrap_or(0),
            ask.connections
        ));
    }
    warnings
}

/// About how many connections the server's descriptor limits let it hold.
fn server_capacity(server: &TargetServer) -> Option<u64> {
    let reserve = SERVER_RESERVE * server.pids.len() as u64;
    server.nofile_soft.map(|soft| soft.saturating_sub(reserve))
}

/// The one line `--until-failure` gets: where its ramp will stop, by the limits it meets on the way.
fn until_failure(env: &Environment, ask: &Ask, ramp: f64, server: Option<&TargetServer>) -> String {
    let mut limits: Vec<(u64, String)> = Vec::new();
    let processes = ask.processes.max(1);
    limits.push((
        env.nofile_soft.saturating_sub(DESCRIPTOR_RESERVE) * processes,
        format!("this client's RLIMIT_NOFILE (soft {} × {processes} process(es)): EMFILE", env.nofile_soft),
    ));
    if let Some(ports) = env.ephemeral_ports() {
        let sources = ask.sources.max(1);
        limits.push((
            ports * sources,
            format!("ephemeral ports ({ports} per source address × {sources}): EADDRNOTAVAIL"),
        ));
    }
    // Both ends of a loopback connection hold a descriptor of this machine.
    let ends = if server.is_some() { 2 } else { 1 };
    if let Some(file_max) = env.file_max {
        limits.push((file_max / ends, format!("fs.file-max {file_max} for the whole machine: ENFILE")));
    }
    if let Some(max) = env.nf_conntrack_max {
        limits.push((max, format!("nf_conntrack_max {max}: new connections dropped, connects time out")));
    }
    if let Some(server) = server
        && let Some(capacity) = server_capacity(server)
    {
        limits.push((
            capacity,
            format!(
                "the server's RLIMIT_NOFILE (soft {}, {}): it stops accepting, connects then fill its \
                 accept queue (its listen backlog, at most somaxconn {}) and time out past it",
                server.nofile_soft.unwrap_or(0),
                server.who(),
                env.somaxconn.map_or("unknown".to_owned(), |v| v.to_string())
            ),
        ));
    }
    limits.sort_by_key(|(n, _)| *n);
    let mut line = format!(
        "--until-failure ramps at {ramp} connections/s towards at most {} and stops at the first sustained \
         failure",
        ask.connections
    );
    match limits.iter().find(|(n, _)| *n < ask.connections) {
        Some((n, first)) => {
            line.push_str(&format!(": expect it near {n} connections, where it meets {first}"));
            if let Some((m, next)) = limits.iter().find(|(m, _)| m > n && *m < ask.connections) {
                line.push_str(&format!("; next, near {m}: {next}"));
            }
        }
        None => line.push_str(": no limit known here is below that"),
    }
    if let Some(why) = server.filter(|s| !s.found()).and_then(|s| s.unknown.as_deref()) {
        line.push_str(&format!("; the server runs here, but its own limits are unknown: {why}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            nofile_soft: 1024,
            nofile_hard: 20_000,
            file_max: Some(1_000_000),
            ip_local_port_range: Some((32768, 60999)),
            nf_conntrack_max: Some(262_144),
            ..Environment::default()
        }
    }

    fn until_failure(server: Option<&TargetServer>) -> Vec<String> {
        let ask = Ask { connections: 1_000_000, sources: 0, processes: 1, until_failure: Some(2000.0) };
        warnings(&env(), &ask, server)
    }

    #[test]
    fn until_failure_is_told_the_limit_it_will_meet_first_not_every_limit_of_a_million() {
        let lines = until_failure(None);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(
                "expect it near 1008 connections, where it meets this client's RLIMIT_NOFILE (soft 1024"
            ),
            "{lines:?}"
        );
        assert!(lines[0].contains("next, near 28232: ephemeral ports"), "{lines:?}");
        assert!(!lines[0].contains("fs.file-max") && !lines[0].contains("conntrack"), "{lines:?}");
    }

    #[test]
    fn a_server_running_here_with_fewer_descriptors_is_named_as_the_first_limit() {
        let server = TargetServer {
            pids: vec![42],
            name: "echo-server".into(),
            nofile_soft: Some(512),
            nofile_hard: Some(512),
            ..TargetServer::default()
        };
        let lines = until_failure(Some(&server));
        assert!(lines[0].contains("near 496 connections, where it meets the server's RLIMIT_NOFILE (soft 512, echo-server, pid 42)"),
            "{lines:?}");
        let fixed = Ask { connections: 600, sources: 0, processes: 1, until_failure: None };
        let lines = warnings(&env(), &fixed, Some(&server));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("the server (echo-server, pid 42) has RLIMIT_NOFILE soft 512"),
            "{lines:?}"
        );
        let unknown = TargetServer { unknown: Some("not readable".into()), ..TargetServer::default() };
        assert!(until_failure(Some(&unknown))[0].ends_with("its own limits are unknown: not readable"));
    }
}
