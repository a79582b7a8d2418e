//! The end of a connection: freeing its slot, settling its books (who ended it, and what it still owed:
//! lost, or in flight when the run ended), and naming why it ended — a failed or timed-out connect, or
//! the server closing or resetting a connection we still used.

use std::sync::atomic::Ordering;

use nix::libc::ECONNRESET;
use reactor::{CloseKind, CloseReason, ConnId, Context};

use super::{Driver, Phase};
use crate::error_kind::ErrorKind;
use crate::tally::Ending;

impl Driver {
    /// Settles the connection of slot `index` (see [`Tally::settle`](crate::tally::Tally::settle)): from
    /// now on the slot's connection is no longer ours to count. Bytes the server made us lose fail the
    /// run, which winds down in every loop.
    pub(super) fn settle(&mut self, index: usize, ending: Ending<'_>) {
        let slot = &mut self.slots[index];
        slot.conn = None;
        slot.sent_at.clear();
        if let Some(loss) = self.tally.settle(&mut slot.stream, ending)
            && matches!(ending, Ending::Server(_))
        {
            self.tally.verify_failed(loss.to_string());
            self.abort.store(true, Ordering::Relaxed);
        }
    }

    /// The server sent EOF on `conn`: if we still used the connection, the server closed it on us.
    pub(super) fn server_eof(&mut self, conn: ConnId) {
        if let Some(index) = self.by_conn.get(conn)
            && self.slots[index].conn == Some(conn)
            && self.slots[index].opened_at.is_some()
        {
            self.settle(index, Ending::Server("the server closed the connection"));
        }
    }

    /// Empties slot `index` after its connection closed; returns whether the connection had been
    /// established, and whether it was still ours (not yet settled).
    pub(super) fn release(&mut self, ctx: &mut Context<'_>, index: usize) -> (bool, bool) {
        let slot = &mut self.slots[index];
        let was_open = slot.opened_at.take().is_some();
        let ours = slot.conn.take().is_some();
        if let Some(timer) = slot.connect_timer.take() {
            ctx.cancel_timer(timer);
        }
        if was_open {
            self.open_now -= 1;
        }
        (was_open, ours)
    }

    /// Counts a connect that failed or timed out; returns whether the connect failed.
    pub(super) fn count_close(&mut self, index: usize, reason: &CloseReason) -> bool {
        let timed_out = self.slots[index].timed_out;
        match (reason.kind(), reason.error()) {
            (CloseKind::ConnectFailed, Some(e)) => self.failed(ErrorKind::of(e)),
            (CloseKind::Aborted, _) if timed_out => self.failed(ErrorKind::TimedOut),
            _ => {}
        }
        reason.kind() == CloseKind::ConnectFailed || timed_out
    }

    /// An established connection of slot `index` closed while still ours: the server reset it (or the
    /// kernel failed it) during the run.
    pub(super) fn ended_unsettled(&mut self, index: usize, reason: &CloseReason) {
        if self.phase == Phase::Closing {
            self.settle(index, Ending::RunEnd);
            return;
        }
        let why = match (reason.kind(), reason.error()) {
            (CloseKind::Error, Some(e)) => {
                self.tally.error(ErrorKind::of(e));
                format!("the connection failed: {e}")
            }
            (CloseKind::Reset, _) => {
                self.tally.error(ErrorKind::Errno(ECONNRESET));
                "the server reset the connection".to_owned()
            }
            _ => format!("the connection closed ({reason})"),
        };
        self.settle(index, Ending::Server(&why));
    }
}
