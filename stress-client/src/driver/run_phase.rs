//! The run's course: start, a tick that ramps and publishes progress, the end, the drain of echoes
//! still in flight, and the shutdown of the loop.

use std::sync::atomic::Ordering;

use reactor::Context;

use crate::tally::Ending;
use crate::usage::Usage;

use super::{Driver, Phase, SHUTDOWN_GRACE, TAG_DRAINED, TAG_END, TAG_TICK, TICK, Work};

impl Driver {
    /// Starts the run: the first connections, the tick, the end of the run.
    pub(super) fn start(&mut self, ctx: &mut Context<'_>) {
        self.started = ctx.now();
        // With --start-at, the time before it is the warm-up, and the run measures --duration from it.
        let start_at = self.plan.start_at.map(|at| at.max(self.started));
        self.measure_from = start_at.unwrap_or(self.started);
        let until_start = self.measure_from - self.started;
        match self.plan.work {
            Work::Echo { duration, warmup, .. } => {
                if start_at.is_none() {
                    self.measure_from = self.started + warmup;
                }
                ctx.set_timer(until_start + duration, TAG_END);
            }
            Work::Churn { duration, .. } => {
                ctx.set_timer(until_start + duration, TAG_END);
            }
            Work::Hold { .. } => {}
        }
        ctx.set_timer(TICK, TAG_TICK);
        self.read_usage_edges(ctx);
        self.ramp(ctx);
    }

    /// Reads the process's usage as measuring begins (within a tick) and ends.
    fn read_usage_edges(&mut self, ctx: &Context<'_>) {
        if self.usage.from.is_none() && ctx.now() >= self.measure_from {
            self.usage.from = Some(Usage::now());
        }
        if self.usage.to.is_none() && self.measure_to.is_some() {
            self.usage.to = Some(Usage::now());
        }
    }

    /// Every [`TICK`]: publishes progress, winds down on abort, ramps, and sees whether the run is
    /// complete.
    pub(super) fn on_tick(&mut self, ctx: &mut Context<'_>) {
        self.publish();
        self.read_usage_edges(ctx);
        if self.phase == Phase::Closing {
            return;
        }
        ctx.set_timer(TICK, TAG_TICK);
        if self.abort.load(Ordering::Relaxed) {
            self.end(ctx);
            return;
        }
        self.ramp(ctx);
        self.retry_failed_connects(ctx);
        self.check_complete(ctx);
    }

    /// Once every connection was attempted and has settled: a hold starts its timer; an echo run with
    /// no connection left ends early.
    fn check_complete(&mut self, ctx: &mut Context<'_>) {
        let attempted = self.slots.len() as u64 == self.plan.connections || self.stopped_by.is_some();
        let settled = self.slots.iter().all(|s| s.is_settled());
        match self.plan.work {
            Work::Hold { hold, .. } if attempted && settled && !self.hold_armed => {
                self.hold_armed = true;
                // Held from --start-at, if the connections were up before it.
                let until_start = self.measure_from.saturating_duration_since(ctx.now());
                ctx.set_timer(until_start + hold, TAG_END);
            }
            // Nothing left to wait for: every connection failed or was closed.
            Work::Echo { .. } if attempted && ctx.connections() == 0 => self.end(ctx),
            _ => {}
        }
    }

    /// Stops sending and starting connections; closes everything once the echoes in flight are back
    /// (or the drain passed: [`DRAIN`](super::DRAIN), or a sample's longer one). Connects still under way are abandoned: they never carried a message.
    pub(super) fn end(&mut self, ctx: &mut Context<'_>) {
        if self.phase != Phase::Running {
            return;
        }
        self.measure_to.get_or_insert(ctx.now());
        self.read_usage_edges(ctx);
        self.phase = Phase::Draining;
        for slot in &self.slots {
            if let (Some(conn), None) = (slot.conn, slot.opened_at) {
                let _ = ctx.abort(conn);
            }
        }
        if self.in_flight() {
            ctx.set_timer(self.drain(), TAG_DRAINED);
        } else {
            self.close_all(ctx);
        }
    }

    /// While draining: once no echo is owed, closes everything.
    pub(super) fn check_drained(&mut self, ctx: &mut Context<'_>) {
        if self.phase == Phase::Draining && !self.in_flight() {
            self.close_all(ctx);
        }
    }

    /// The drain passed after the end: what has not come back by now was in flight when the run ended.
    pub(super) fn drained(&mut self, ctx: &mut Context<'_>) {
        self.close_all(ctx);
    }

    /// Settles every connection still open as open at the end (what it still owed, in flight), closes
    /// it — at once where echoes are owed, so that nothing waits on them — and shuts the loop down.
    pub(super) fn close_all(&mut self, ctx: &mut Context<'_>) {
        self.phase = Phase::Closing;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let Some(conn) = slot.conn else { continue };
            if slot.opened_at.is_none() {
                let _ = ctx.abort(conn);
                continue;
            }
            let owed = slot.stream.outstanding() > 0;
            self.settle(index, Ending::RunEnd);
            let _ = if owed { ctx.abort(conn) } else { ctx.close(conn) };
        }
        self.publish();
        ctx.shutdown(SHUTDOWN_GRACE);
    }

    /// Stores the counts the progress line reads.
    fn publish(&self) {
        let c = &self.counters;
        c.open.store(self.open_now, Ordering::Relaxed);
        c.established.store(self.tally.established, Ordering::Relaxed);
        c.messages.store(self.tally.messages, Ordering::Relaxed);
        c.publish_errors(&self.tally.errors);
    }
}
