//! Runs plans on reactor loops, one thread each, while the calling thread prints progress.

use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use reactor::{Config, EventLoop};

use crate::driver::{Driver, Outcome, Plan};
use crate::error_kind::ErrorKind;
use crate::progress::{Progress, Ticker};
use crate::tally::Tally;

/// What all loops found together.
#[derive(Debug, Default)]
pub struct Combined {
    /// Their counts, added.
    pub tally: Tally,
    /// The longest interval measured.
    pub measured: Duration,
    /// Where it began (`None` before any outcome was added).
    pub from: Option<Instant>,
    /// The first loop's reason to stop ramping (`--until-failure`).
    pub stopped_by: Option<ErrorKind>,
    /// Most threads the process had while the loops ran.
    pub threads: u64,
    /// The process's usage at the edges of the measured interval.
    pub usage: crate::usage::Window,
}

impl Combined {
    /// Adds one loop's (or thread's) outcome.
    pub fn add(&mut self, outcome: Outcome) {
        self.tally.add(&outcome.tally);
        if self.from.is_none() || outcome.measured > self.measured {
            (self.measured, self.from) = (outcome.measured, Some(outcome.from));
        }
        self.stopped_by = self.stopped_by.take().or(outcome.stopped_by);
        self.usage.cover(outcome.usage);
    }
}

/// The loop settings of a client: the in-flight cap per connection stays below the high watermark, so
/// that back-pressure never pauses the reading of echoes.
fn config() -> Config {
    Config {
        raise_fd_limit: false,
        high_watermark: 2 * crate::cli::MAX_IN_FLIGHT_BYTES,
        low_watermark: crate::cli::MAX_IN_FLIGHT_BYTES,
        max_output: 2 * crate::cli::MAX_IN_FLIGHT_BYTES + 64 * 1024,
        read_buffer: 64 * 1024,
        events_capacity: 4096,
        ..Config::default()
    }
}

/// Runs each plan on its own loop and thread; returns once every loop has finished.
pub fn run(plans: Vec<Plan>, progress: &Progress, ticker: &mut Ticker<'_>) -> io::Result<Combined> {
    let (done, finished) = mpsc::channel();
    let mut threads = Vec::new();
    for (i, plan) in plans.into_iter().enumerate() {
        let (counters, abort, done) = (progress.counters[i].clone(), progress.abort.clone(), done.clone());
        let thread = thread::Builder::new().name(format!("loop-{i}")).spawn(move || {
            let result = (|| {
                let mut event_loop = EventLoop::new(config(), Driver::new(plan, counters, abort))?;
                Driver::schedule_start(&mut event_loop.context());
                event_loop.run()?;
                Ok(event_loop.into_handler().outcome())
            })();
            let _ = done.send(());
            result
        })?;
        threads.push(thread);
    }
    drop(done);
    let peak_threads = crate::progress::wait_for_workers(&finished, threads.len(), progress, ticker);
    let mut combined = Combined { threads: peak_threads, ..Combined::default() };
    for thread in threads {
        let outcome: io::Result<Outcome> =
            thread.join().map_err(|_| io::Error::other("a loop thread panicked"))?;
        combined.add(outcome?);
    }
    Ok(combined)
}
