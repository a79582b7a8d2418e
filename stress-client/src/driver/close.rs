//! The end of a connection: freeing its slot, and naming why it ended — a failed or timed-out connect,
//! or the server closing or resetting a connection we still used.

use nix::libc::ECONNRESET;
use reactor::{CloseKind, CloseReason, ConnId, Context};

use super::{Driver, Phase};
use crate::error_kind::ErrorKind;

impl Driver {
    /// The server sent EOF on `conn`: unless we are closing anyway, the server closed it on us.
    pub(super) fn server_eof(&mut self, conn: ConnId) {
        if let Some(index) = self.by_conn.get(conn)
            && self.slots[index].conn == Some(conn)
            && self.phase != Phase::Closing
        {
            self.tally.closed_by_server += 1;
            if self.slots[index].stream.outstanding() > 0 {
                self.lost(index, "the server closed the connection");
            }
            self.slots[index].conn = None;
        }
    }

    /// Empties slot `index` after its connection closed; returns whether the connection was still ours
    /// (not already closed by us or given up on).
    pub(super) fn release(&mut self, ctx: &mut Context<'_>, index: usize) -> bool {
        let slot = &mut self.slots[index];
        let was_open = slot.opened_at.take().is_some();
        let ours = slot.conn.take().is_some();
        if let Some(timer) = slot.connect_timer.take() {
            ctx.cancel_timer(timer);
        }
        if was_open {
            self.open_now -= 1;
        }
        ours
    }

    /// Counts why the connection of slot `index` closed; returns whether its connect failed.
    pub(super) fn count_close(&mut self, index: usize, reason: &CloseReason, ours: bool) -> bool {
        let timed_out = self.slots[index].timed_out;
        let failed = reason.kind() == CloseKind::ConnectFailed || timed_out;
        match (reason.kind(), reason.error()) {
            (CloseKind::ConnectFailed, Some(e)) => self.failed(ErrorKind::of(e)),
            (CloseKind::Aborted, _) if timed_out => self.failed(ErrorKind::TimedOut),
            (CloseKind::Reset | CloseKind::Error, _) if ours && self.phase != Phase::Closing => {
                self.server_reset(index, reason)
            }
            _ => {}
        }
        failed
    }

    /// The server reset (or the kernel failed) a connection we still used.
    fn server_reset(&mut self, index: usize, reason: &CloseReason) {
        let kind = match (reason.kind(), reason.error()) {
            (CloseKind::Error, Some(e)) => ErrorKind::of(e),
            _ => ErrorKind::Errno(ECONNRESET),
        };
        self.tally.error(kind);
        self.tally.closed_by_server += 1;
        if self.slots[index].stream.outstanding() > 0 {
            self.lost(index, "the server reset the connection");
        }
    }
}
