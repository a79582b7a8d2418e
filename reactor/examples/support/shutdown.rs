//! SIGINT and SIGTERM as a graceful shutdown of the loop, shared by the examples: listeners close,
//! every connection is flushed and closed (for at most [`SHUTDOWN_TIMEOUT`]), then `run` returns and
//! the process exits 0.

use std::fmt;
use std::io;
use std::time::Duration;

use reactor::mio::Interest;
use reactor::{Context, SourceId};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

/// How long a shutdown may spend flushing what connections have queued before it closes them as they
/// are.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// SIGINT and SIGTERM, caught and registered with a loop as one of its sources.
pub struct ShutdownSignals {
    signals: Signals,
    id: SourceId,
}

impl ShutdownSignals {
    /// Catches SIGINT and SIGTERM from now on, instead of dying by them, and registers them with the
    /// loop. Call it before saying that the server listens: a signal sent as soon as the line is read
    /// must find the handler in place.
    pub fn register(ctx: &mut Context<'_>) -> io::Result<ShutdownSignals> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let id = ctx.register(&mut signals, Interest::READABLE)?;
        Ok(ShutdownSignals { signals, id })
    }

    /// For [`Handler::on_source_ready`](reactor::Handler::on_source_ready): if `source` is ours, begins
    /// the graceful shutdown for each signal that arrived (the first one counts; more change nothing).
    pub fn on_ready(&mut self, ctx: &mut Context<'_>, source: SourceId) {
        if source != self.id {
            return;
        }
        // Edge-triggered: take every pending signal now.
        for signal in self.signals.pending() {
            log::info!("signal {signal}: shutting down, flushing for up to {SHUTDOWN_TIMEOUT:?}");
            ctx.shutdown(SHUTDOWN_TIMEOUT);
        }
    }

    /// Removes the signals from the loop, once it has stopped.
    pub fn deregister(mut self, ctx: &mut Context<'_>) -> io::Result<()> {
        ctx.deregister(&mut self.signals, self.id)
    }
}

impl fmt::Debug for ShutdownSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownSignals").field("id", &self.id).finish_non_exhaustive()
    }
}
