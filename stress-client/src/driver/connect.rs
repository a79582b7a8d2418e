//! Opening connections: the ramp, source addresses taken round-robin, the connect timeout, and the
//! count of consecutive failures that stops an `--until-failure` ramp.

use std::net::SocketAddr;
use std::time::Instant;

use reactor::{ConnectOptions, Context};

use super::{Driver, Phase, Slot, TAG_CONNECT, Work};
use crate::error_kind::ErrorKind;
use crate::tally;

/// Consecutive failed connects that count as a sustained failure for `--until-failure`.
const SUSTAINED: u64 = 20;

impl Driver {
    /// Opens as many new connections as the ramp allows by now.
    pub(super) fn ramp(&mut self, ctx: &mut Context<'_>) {
        if self.phase != Phase::Running || self.stopped_by.is_some() {
            return;
        }
        let target = self.ramp_target(ctx.now()).min(self.plan.connections);
        while (self.slots.len() as u64) < target && self.stopped_by.is_none() {
            let index = self.slots.len();
            let id = self.plan.first_id + index as u64;
            self.slots.push(Slot::new(id, self.message.len(), ctx.now()));
            self.open(ctx, index);
            self.check_sustained_failure();
        }
    }

    /// How many connections the ramp allows by `now` (unbounded without a ramp).
    fn ramp_target(&self, now: Instant) -> u64 {
        match self.plan.ramp {
            Some(rate) => ((now.duration_since(self.started).as_secs_f64() * rate) as u64).saturating_add(1),
            None => u64::MAX,
        }
    }

    /// Starts a connect for slot `index`, bounded by the connect timeout.
    pub(super) fn open(&mut self, ctx: &mut Context<'_>, index: usize) {
        let options =
            ConnectOptions { addr: self.plan.target.clone(), bind: self.source_for(index), nodelay: true };
        let slot = &mut self.slots[index];
        slot.connect_started = Instant::now();
        slot.timed_out = false;
        slot.retry = false;
        match ctx.connect_with(&options) {
            Ok(conn) => {
                slot.conn = Some(conn);
                slot.connect_timer =
                    Some(ctx.set_timer(self.plan.connect_timeout, TAG_CONNECT | index as u64));
                self.by_conn.insert(conn, index);
            }
            Err(e) => {
                // Churn tries the slot again on the next tick rather than spinning on an error.
                slot.retry = matches!(self.plan.work, Work::Churn { .. });
                self.failed(ErrorKind::of(&e));
            }
        }
    }

    /// The address slot `index` binds to: the sources taken round-robin by connection id, so that
    /// loops and processes spread over them too (`None`: the kernel chooses).
    fn source_for(&self, index: usize) -> Option<SocketAddr> {
        match self.plan.sources.len() {
            0 => None,
            n => Some(SocketAddr::new(self.plan.sources[(self.plan.first_id as usize + index) % n], 0)),
        }
    }

    /// The connect of slot `index` completed: cancels its timeout and counts it.
    pub(super) fn opened(&mut self, ctx: &mut Context<'_>, index: usize) {
        let slot = &mut self.slots[index];
        if let Some(timer) = slot.connect_timer.take() {
            ctx.cancel_timer(timer);
        }
        slot.opened_at = Some(ctx.now());
        tally::record(&mut self.tally.connect, ctx.now().saturating_duration_since(slot.connect_started));
        self.tally.established += 1;
        self.open_now += 1;
        self.tally.peak_concurrent = self.tally.peak_concurrent.max(self.open_now);
        self.consecutive_failures = 0;
    }

    /// The connect timeout of slot `index` fired: a connect still pending is aborted, and its close
    /// counted as ETIMEDOUT. One the kernel completed while this loop was busy elsewhere (thousands of
    /// connects per process, on cores shared with the server) is made, and only its event is waiting its
    /// turn: it is left to open, its connect time showing the wait.
    pub(super) fn connect_timed_out(&mut self, ctx: &mut Context<'_>, index: usize) {
        let slot = &mut self.slots[index];
        slot.connect_timer = None;
        if let (Some(conn), None) = (slot.conn, slot.opened_at) {
            if ctx.peer_address(conn).is_ok() {
                return;
            }
            slot.timed_out = true;
            let _ = ctx.abort(conn);
        }
    }

    /// Counts a failed connect, and why it failed.
    pub(super) fn failed(&mut self, kind: ErrorKind) {
        self.tally.connect_failed(kind);
        self.consecutive_failures += 1;
        self.last_failure = Some(kind);
    }

    /// `--until-failure`: stops the ramp once connects keep failing or the server keeps closing.
    pub(super) fn check_sustained_failure(&mut self) {
        if let Work::Hold { until_failure: true, .. } = self.plan.work
            && self.stopped_by.is_none()
        {
            if self.consecutive_failures >= SUSTAINED {
                self.stopped_by = self.last_failure;
            } else if self.tally.closed_by_server >= SUSTAINED {
                self.stopped_by = Some(ErrorKind::ClosedByServer);
            }
        }
    }
}
