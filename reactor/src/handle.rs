//! Reaching the loop from other threads.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::{Registry, Waker};

use crate::Counters;
use crate::stats::Stats;

/// What other threads asked for, read by the loop when its waker fires.
#[derive(Debug)]
pub(crate) struct Requests {
    waker: Waker,
    stop: AtomicBool,
    shutdown: Mutex<Option<Duration>>,
}

impl Requests {
    pub(crate) fn new(registry: &Registry) -> io::Result<Requests> {
        Ok(Requests {
            waker: Waker::new(registry, crate::token::WAKER)?,
            stop: AtomicBool::new(false),
            shutdown: Mutex::new(None),
        })
    }

    pub(crate) fn take_stop(&self) -> bool {
        self.stop.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn take_shutdown(&self) -> Option<Duration> {
        self.shutdown.lock().map(|mut s| s.take()).unwrap_or(None)
    }
}

/// A thread-safe handle to a running [`EventLoop`](crate::EventLoop): stop it, shut it down gracefully,
/// deliver messages, read its counters. Cheap to clone; each call wakes the loop through a
/// `mio::Waker`.
///
/// ```
/// # use reactor::{Config, ConnId, Context, EventLoop, Handler, Next};
/// struct Quiet;
/// impl Handler for Quiet {
///     type Message = ();
///     fn on_data(&mut self, _: &mut Context<'_>, _: ConnId, _: &[u8]) -> Next { Next::Continue }
/// }
/// let mut event_loop = EventLoop::new(Config::default(), Quiet)?;
/// let handle = event_loop.handle();
/// let thread = std::thread::spawn(move || event_loop.run());
/// handle.stop()?;
/// thread.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Handle<M> {
    requests: Arc<Requests>,
    messages: SyncSender<M>,
    stats: Arc<Stats>,
}

impl<M: Send> Handle<M> {
    pub(crate) fn new(
        requests: Arc<Requests>,
        stats: Arc<Stats>,
        capacity: usize,
    ) -> (Handle<M>, Receiver<M>) {
        let (messages, receiver) = sync_channel(capacity);
        (Handle { requests, messages, stats }, receiver)
    }

    /// Stops the loop at its next turn, without flushing or closing anything: `run` returns and the
    /// sockets close when the loop is dropped.
    pub fn stop(&self) -> io::Result<()> {
        self.requests.stop.store(true, Ordering::Release);
        self.requests.waker.wake()
    }

    /// Shuts the loop down gracefully: close the listeners, flush and close every connection, and stop
    /// once none are left or when `timeout` has passed (then the rest are closed as they are). A
    /// timeout of a century or more (`Duration::MAX` included) means none.
    pub fn shutdown(&self, timeout: Duration) -> io::Result<()> {
        if let Ok(mut shutdown) = self.requests.shutdown.lock() {
            *shutdown = Some(timeout);
        }
        self.requests.waker.wake()
    }

    /// Delivers a message to [`Handler::on_message`](crate::Handler::on_message). The queue is bounded
    /// by [`Config::message_capacity`](crate::Config::message_capacity): when it is full the message
    /// comes back as `TrySendError::Full`; when the loop is gone, as `Disconnected`.
    pub fn send(&self, message: M) -> Result<(), TrySendError<M>> {
        self.messages.try_send(message)?;
        // A failed wake means the loop's poller is gone; the message then goes unread, as if
        // disconnected, but the caller cannot have it back any more.
        let _ = self.requests.waker.wake();
        Ok(())
    }

    /// The loop's counters, as of the end of its last turn (the loop publishes them once a turn, so
    /// reading them costs the loop nothing).
    pub fn stats(&self) -> Counters {
        self.stats.snapshot()
    }
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Handle<M> {
        Handle { requests: self.requests.clone(), messages: self.messages.clone(), stats: self.stats.clone() }
    }
}

impl<M> fmt::Debug for Handle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

fn _assert_kinds() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Handle<String>>();
}
