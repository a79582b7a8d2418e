//! The reactor's callbacks, routed by slot to the work of the plan and by timer tag to what the timer
//! was set for.

use reactor::{AfterEof, CloseReason, ConnId, Context, Handler, Next, Origin, TimerId};

use super::{
    Driver, Phase, SLOT_MASK, TAG_CONNECT, TAG_DRAINED, TAG_END, TAG_SEND, TAG_START, TAG_TICK, Work,
};

impl Handler for Driver {
    type Message = ();

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: Origin) {
        let Some(index) = self.by_conn.get(conn) else { return };
        self.opened(ctx, index);
        match self.plan.work {
            Work::Echo { .. } => self.send_due(ctx, index),
            Work::Churn { .. } => self.send_cycle_message(ctx, index, conn),
            Work::Hold { .. } => {}
        }
    }

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        let Some(index) = self.by_conn.get(conn) else { return Next::Close };
        if self.slots[index].conn != Some(conn) {
            // Settled already (closing): its books are closed, and late bytes are not counted.
            return Next::Continue;
        }
        let completed = match self.receive(ctx.now(), index, data) {
            Ok(completed) => completed,
            Err(mismatch) => {
                self.mismatched(ctx, index, &mismatch);
                return Next::Close;
            }
        };
        match self.plan.work {
            Work::Echo { .. } if completed > 0 => self.echoes_returned(ctx, index),
            Work::Churn { .. } if completed > 0 => self.complete_cycle(ctx, index, conn),
            Work::Hold { .. } if completed > 0 => self.samples_returned(ctx, completed),
            _ => {}
        }
        Next::Continue
    }

    fn on_eof(&mut self, _: &mut Context<'_>, conn: ConnId) -> AfterEof {
        self.server_eof(conn);
        AfterEof::Close
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let Some(index) = self.by_conn.remove(conn) else { return };
        let (was_open, ours) = self.release(ctx, index);
        let connect_failed = self.count_close(index, reason);
        if was_open && ours {
            self.ended_unsettled(index, reason);
        }
        self.check_sustained_failure();
        self.next_cycle(ctx, index, connect_failed);
        self.check_drained(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, tag: u64) {
        let index = (tag & SLOT_MASK) as usize;
        match tag & !SLOT_MASK {
            TAG_START => self.start(ctx),
            TAG_TICK => self.on_tick(ctx),
            TAG_END => self.hold_ended(ctx),
            TAG_DRAINED if self.phase == Phase::Draining => self.drained(ctx),
            TAG_CONNECT => self.connect_timed_out(ctx, index),
            TAG_SEND => self.send_timer_fired(ctx, index),
            _ => {}
        }
    }
}
