//! The load itself, as a reactor [`Handler`](reactor::Handler): opens connections (ramped, bound
//! round-robin to source addresses, each bounded by a connect timeout), drives echo messages
//! closed-loop or at a fixed rate, verifies every echoed byte, and counts every failure by its kind.
//!
//! The [`Driver`] is one type; its methods are spread over modules by job: `connect` opens and ramps,
//! `close` settles the books of a connection that ended and names why, `conn_map` finds the slot a
//! connection fills, `echo` schedules and verifies echoes, `churn` runs connect-echo-close cycles,
//! `sample` echoes a sample of held connections as a hold ends, `run_phase` moves the run from start
//! through drain to close, and `handler` routes the reactor's callbacks to them.

mod churn;
mod close;
mod conn_map;
mod connect;
mod echo;
mod handler;
mod plan;
mod run_phase;
mod sample;
mod slot;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use reactor::Context;

use crate::error_kind::ErrorKind;
use crate::progress::Counters;
use crate::tally::Tally;
use crate::usage::Window;

use conn_map::ConnMap;
pub use plan::{Outcome, Plan, Work};
pub use sample::{SAMPLE_DRAIN, SAMPLE_SIZE};
use slot::Slot;

/// How often the driver ramps, publishes progress and checks for an early end.
const TICK: Duration = Duration::from_millis(10);
/// How long the end of a run waits for echoes still in flight; what has not come back by then is counted
/// as in flight at the end.
pub const DRAIN: Duration = Duration::from_secs(2);
/// How long the loop's shutdown waits for connections closed at the end to finish closing (their books
/// are settled by then: this only bounds the wait for the server's FIN).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

// Timer tags: the kind in the top bits, a slot index below.
const KIND_SHIFT: u32 = 56;
const TAG_TICK: u64 = 1 << KIND_SHIFT;
const TAG_END: u64 = 2 << KIND_SHIFT;
const TAG_DRAINED: u64 = 3 << KIND_SHIFT;
const TAG_CONNECT: u64 = 4 << KIND_SHIFT;
const TAG_SEND: u64 = 5 << KIND_SHIFT;
const TAG_START: u64 = 6 << KIND_SHIFT;
const SLOT_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// Where the run is: sending, waiting for the last echoes, or shutting the loop down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Closing,
}

/// The reactor handler that runs a [`Plan`].
#[derive(Debug)]
pub struct Driver {
    plan: Plan,
    counters: Arc<Counters>,
    abort: Arc<AtomicBool>,
    slots: Vec<Slot>,
    by_conn: ConnMap,
    tally: Tally,
    phase: Phase,
    open_now: u64,
    started: Instant,
    measure_from: Instant,
    measure_to: Option<Instant>,
    usage: Window,
    consecutive_failures: u64,
    last_failure: Option<ErrorKind>,
    stopped_by: Option<ErrorKind>,
    hold_armed: bool,
    message: Vec<u8>,
    /// Sample echoes sent as the hold ended and not yet back (see `sample`).
    samples_owed: u64,
}

impl Driver {
    /// A driver for `plan`, publishing progress to `counters`, winding down when `abort` is set.
    pub fn new(plan: Plan, counters: Arc<Counters>, abort: Arc<AtomicBool>) -> Driver {
        let now = Instant::now();
        let size = match plan.work {
            Work::Echo { size, .. } | Work::Churn { size, .. } => size,
            Work::Hold { echo_every, .. } => sample::size(echo_every),
        };
        Driver {
            plan,
            counters,
            abort,
            slots: Vec::new(),
            by_conn: ConnMap::default(),
            tally: Tally::default(),
            phase: Phase::Running,
            open_now: 0,
            started: now,
            measure_from: now,
            measure_to: None,
            usage: Window::default(),
            consecutive_failures: 0,
            last_failure: None,
            stopped_by: None,
            hold_armed: false,
            message: vec![0; size],
            samples_owed: 0,
        }
    }

    /// Arranges for the run to start on the loop's first turn.
    pub fn schedule_start(ctx: &mut Context<'_>) {
        ctx.set_timer(Duration::ZERO, TAG_START);
    }

    /// What the run found.
    pub fn outcome(self) -> Outcome {
        let end = self.measure_to.unwrap_or_else(Instant::now);
        Outcome {
            measured: end.saturating_duration_since(self.measure_from),
            from: self.measure_from,
            tally: self.tally,
            stopped_by: self.stopped_by,
            usage: self.usage,
        }
    }
}
