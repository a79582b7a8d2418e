//! What a bench run covers, from the environment: the full pass or a quick one, and which servers.

use std::time::Duration;

use crate::ServerKind;

/// The knobs every bench reads once at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `BENCH_QUICK` is set (and not `0`): fewer cases, shorter runs.
    pub quick: bool,
    /// The servers to compare, in the order they are interleaved.
    pub servers: Vec<ServerKind>,
}

impl Settings {
    /// Reads `BENCH_QUICK` and `BENCH_SERVERS`. An unknown server name ends the bench with a note.
    pub fn from_env() -> Settings {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let servers = match std::env::var("BENCH_SERVERS") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|name| {
                    ServerKind::from_name(name.trim()).unwrap_or_else(|| {
                        crate::fail(format!(
                            "BENCH_SERVERS: unknown server {name:?}; known: {}",
                            ServerKind::ALL.map(ServerKind::name).join(", ")
                        ))
                    })
                })
                .collect(),
            _ => ServerKind::ALL.to_vec(),
        };
        Settings { quick, servers }
    }

    /// Picks the quick or the full value.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }

    /// Criterion settings shared by the throughput benches: short samples, few of them, flat sampling
    /// (each sample times many round trips already), so that the whole `cargo bench` fits its budget.
    pub fn criterion(&self) -> criterion::Criterion {
        criterion::Criterion::default()
            .sample_size(10)
            .warm_up_time(self.pick(Duration::from_millis(150), Duration::from_millis(250)))
            .measurement_time(self.pick(Duration::from_millis(400), Duration::from_millis(700)))
            // Fewer bootstrap resamples: on a busy 2-core machine the default 100,000 take longer than
            // the measurement itself.
            .nresamples(self.pick(5_000, 20_000))
            .configure_from_args()
    }
}
