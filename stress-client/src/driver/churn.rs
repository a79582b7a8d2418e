//! Churn: each slot connects, echoes one message, closes, and starts over on a fresh connection. A
//! cycle is one message and one latency sample, measured from the start of its connect to the last
//! byte of its echo (connect + echo).

use reactor::{ConnId, Context};

use super::{Driver, Phase, Work};
use crate::tally::Ending;

impl Driver {
    /// The connect of slot `index` completed: sends the cycle's one message, timed from the connect's
    /// start.
    pub(super) fn send_cycle_message(&mut self, ctx: &mut Context<'_>, index: usize, conn: ConnId) {
        let slot = &mut self.slots[index];
        slot.stream.next_message(&mut self.message);
        if ctx.send(conn, &self.message).is_ok() {
            self.tally.bytes_sent += self.message.len() as u64;
            slot.sent_at.push_back(slot.connect_started);
        } else {
            // The connection is closing; on_close will say why.
            slot.stream.unsend();
        }
    }

    /// The cycle's echo came back (and was counted as a message): counts the cycle and closes its
    /// connection.
    pub(super) fn complete_cycle(&mut self, ctx: &mut Context<'_>, index: usize, conn: ConnId) {
        if ctx.now() >= self.measure_from {
            self.tally.cycles += 1;
        }
        // Our close: an EOF or reset that follows is the end we asked for, not the server's doing.
        self.settle(index, Ending::Client("the client closed the connection"));
        let _ = ctx.close(conn);
        self.check_drained(ctx);
    }

    /// The connection of slot `index` closed: starts the slot's next cycle while the run lasts.
    pub(super) fn next_cycle(&mut self, ctx: &mut Context<'_>, index: usize, connect_failed: bool) {
        if !matches!(self.plan.work, Work::Churn { .. }) || self.phase != Phase::Running {
            return;
        }
        // Start the slot's next cycle on a fresh connection; after a failure, on the next tick
        // rather than at once, so that a refusing server does not make the loop spin.
        self.slots[index].sent_at.clear();
        if connect_failed {
            self.slots[index].retry = true;
        } else {
            self.open(ctx, index);
        }
    }

    /// Opens again the slots whose connect failed since the last tick.
    pub(super) fn retry_failed_connects(&mut self, ctx: &mut Context<'_>) {
        if !matches!(self.plan.work, Work::Churn { .. }) || self.phase != Phase::Running {
            return;
        }
        for index in 0..self.slots.len() {
            if self.slots[index].retry {
                self.open(ctx, index);
            }
        }
    }
}
