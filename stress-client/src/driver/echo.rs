//! Echo scheduling and verification: closed loop (send again as each echo returns), a pipeline of
//! messages in flight, or a fixed rate whose latency counts from the intended send time.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reactor::Context;

use super::{Driver, Phase, Slot, TAG_SEND, Work};
use crate::message::Mismatch;
use crate::pace;
use crate::tally::{self, Ending};

impl Driver {
    /// Sends what this connection may send now: up to the pipeline, and at a fixed rate only what is
    /// due (arming a timer for the next one).
    pub(super) fn send_due(&mut self, ctx: &mut Context<'_>, index: usize) {
        let Work::Echo { pipeline, rate, .. } = self.plan.work else { return };
        let interval = rate.map(|r| pace::interval(self.plan.connections, r));
        let slot = &mut self.slots[index];
        let (Some(conn), Some(opened_at)) = (slot.conn, slot.opened_at) else { return };
        while self.phase == Phase::Running && slot.stream.in_flight() < pipeline {
            let Some(stamp) = send_stamp(ctx, slot, index, opened_at, interval) else { break };
            slot.stream.next_message(&mut self.message);
            if ctx.send(conn, &self.message).is_err() {
                // The connection is closing; on_close will say why.
                slot.stream.unsend();
                break;
            }
            slot.sent_at.push_back(stamp);
            self.tally.bytes_sent += self.message.len() as u64;
        }
    }

    /// The fixed-rate send timer of slot `index` fired.
    pub(super) fn send_timer_fired(&mut self, ctx: &mut Context<'_>, index: usize) {
        self.slots[index].send_timer = false;
        self.send_due(ctx, index);
    }

    /// Verifies `data` echoed on slot `index` at `now`, recording the latency of each message it
    /// completes; returns how many it completed. Only bytes that matched count as received.
    pub(super) fn receive(&mut self, now: Instant, index: usize, data: &[u8]) -> Result<u64, Mismatch> {
        let slot = &mut self.slots[index];
        let (tally, measure_from) = (&mut self.tally, self.measure_from);
        let before = slot.stream.received();
        let mut completed = 0u64;
        let result = slot.stream.receive(data, |_| {
            completed += 1;
            let sent = slot.sent_at.pop_front().unwrap_or(now);
            if now >= measure_from {
                tally.messages += 1;
                tally::record(&mut tally.latency, now.saturating_duration_since(sent));
            }
        });
        tally.bytes_received += slot.stream.received() - before;
        result.map(|()| completed)
    }

    /// Echoes came back on slot `index`: sends the next ones, and ends the drain once none is left.
    pub(super) fn echoes_returned(&mut self, ctx: &mut Context<'_>, index: usize) {
        self.send_due(ctx, index);
        self.check_drained(ctx);
    }

    /// Any open connection still waits for an echo.
    pub(super) fn in_flight(&self) -> bool {
        self.slots.iter().any(|s| s.is_open() && s.stream.in_flight() > 0)
    }

    /// The echo on slot `index` did not match what was sent: counted, the connection's books settled
    /// (what it still owed is lost), and every loop winds down.
    pub(super) fn mismatched(&mut self, ctx: &mut Context<'_>, index: usize, mismatch: &Mismatch) {
        self.tally.verify_failed(mismatch.to_string());
        self.settle(
            index,
            Ending::Client("the echo did not match what was sent; the client closed the connection"),
        );
        self.abort.store(true, Ordering::Relaxed);
        self.end(ctx);
    }
}

/// The time the next message of `slot` counts from: now in a closed loop; at a fixed rate its due time,
/// or `None` (arming the slot's send timer) while it is not due yet.
fn send_stamp(
    ctx: &mut Context<'_>,
    slot: &mut Slot,
    index: usize,
    opened_at: Instant,
    interval: Option<Duration>,
) -> Option<Instant> {
    let Some(interval) = interval else { return Some(Instant::now()) };
    // Too far to represent: not due within any run.
    let due = pace::due(opened_at, interval, slot.stream.next_send)?;
    if due > ctx.now() {
        if !slot.send_timer {
            slot.send_timer = true;
            ctx.set_timer(due - ctx.now(), TAG_SEND | index as u64);
        }
        return None;
    }
    // Latency counts from when the message should have gone, not when it could.
    Some(due)
}
