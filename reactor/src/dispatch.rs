//! Turning readiness into I/O and callbacks: accept until `WouldBlock`, read until drained, finish
//! outbound connects, fire timers, close what was scheduled to close.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use log::{debug, warn};
use mio::event::Event;

use crate::connection::{self, Ending};
use crate::core::{Core, Entry};
use crate::handle::Requests;
use crate::handler::CloseReason;
use crate::listener;
use crate::timer::TimerKind;
use crate::token::Key;
use crate::{Context, Handler, SourceId, TimerId};

/// Everything a turn works on except the poller and its event buffer, which the turn iterates.
pub(crate) struct Inner<H: Handler> {
    pub(crate) core: Core,
    pub(crate) handler: H,
    pub(crate) read_buffer: Box<[u8]>,
    pub(crate) requests: Arc<Requests>,
    pub(crate) messages: Receiver<H::Message>,
}

impl<H: Handler> Inner<H> {
    pub(crate) fn new(
        core: Core,
        handler: H,
        requests: Arc<Requests>,
        messages: Receiver<H::Message>,
    ) -> Self {
        let read_buffer = vec![0; core.config().read_buffer].into_boxed_slice();
        Inner { core, handler, read_buffer, requests, messages }
    }

    /// Closes what callbacks scheduled to close.
    pub(crate) fn close_scheduled(&mut self) {
        connection::close_scheduled(&mut self.core, &mut self.handler);
    }

    fn ctx(&mut self) -> (&mut H, Context<'_>) {
        (&mut self.handler, Context { core: &mut self.core })
    }

    /// Routes one event to its entry; events for entries that no longer exist are counted and dropped.
    pub(crate) fn dispatch(&mut self, event: &Event) {
        let key = Key::from_token(event.token());
        match self.core.entry(key) {
            Some(Entry::Connection(_)) => {
                connection::read::on_event(
                    &mut self.core,
                    &mut self.handler,
                    &mut self.read_buffer,
                    key,
                    event,
                );
                self.close_scheduled();
            }
            Some(Entry::Listener(_)) => listener::accept(&mut self.core, &mut self.handler, key),
            Some(Entry::Udp(_)) => self.datagram_event(key, event),
            Some(Entry::Source) => {
                let (handler, mut ctx) = self.ctx();
                handler.on_source_ready(&mut ctx, SourceId(key), event);
                self.close_scheduled();
            }
            None => self.core.counters_mut().stale_events += 1,
        }
    }

    /// Works through the first `count` entries of the ready list: those left over from earlier turns.
    /// Entries parked during this turn wait for the next, so a flooding peer gets one budget per turn.
    pub(crate) fn run_ready(&mut self, count: usize) {
        for _ in 0..count {
            let Some(key) = self.core.pop_ready() else { break };
            match self.core.entry(key) {
                Some(Entry::Connection(_)) => {
                    connection::read::read_parked(
                        &mut self.core,
                        &mut self.handler,
                        &mut self.read_buffer,
                        key,
                    );
                    self.close_scheduled();
                }
                Some(Entry::Listener(_)) => listener::accept_queued(&mut self.core, &mut self.handler, key),
                Some(Entry::Udp(datagram)) => {
                    datagram.queued = false;
                    self.read_datagrams(key);
                }
                _ => {}
            }
        }
    }

    /// Fires the timers that were due when the phase began (a timer set meanwhile waits for the next
    /// turn, so a callback that re-arms a zero-length timer cannot trap the loop).
    pub(crate) fn fire_timers(&mut self) {
        let now = self.core.now();
        for _ in 0..self.core.timers_len() {
            let Some((timer, kind)) = self.core.pop_expired_timer(now) else { break };
            match kind {
                TimerKind::User(tag) => {
                    let (handler, mut ctx) = self.ctx();
                    handler.on_timer(&mut ctx, TimerId(timer), tag);
                }
                TimerKind::Idle(key) => connection::idle_timer_fired(&mut self.core, key),
                TimerKind::AcceptRetry(key) => {
                    listener::retry_timer_fired(&mut self.core, &mut self.handler, key)
                }
                TimerKind::Linger(key) => connection::write::linger_expired(&mut self.core, key),
                TimerKind::ShutdownDeadline => self.abandon_all(),
            }
            self.close_scheduled();
        }
    }

    /// Takes requests from other threads: stop, shutdown, messages (at most the queue's capacity per
    /// turn, so a flood of messages cannot starve the sockets).
    pub(crate) fn take_requests(&mut self) {
        if self.requests.take_stop() {
            self.core.stop();
        }
        if let Some(deadline) = self.requests.take_shutdown() {
            self.core.request_shutdown(deadline);
        }
        for _ in 0..self.core.config().message_capacity {
            let Ok(message) = self.messages.try_recv() else { break };
            let (handler, mut ctx) = self.ctx();
            handler.on_message(&mut ctx, message);
            self.close_scheduled();
        }
    }

    /// Starts a graceful shutdown if one was asked for, and ends the loop once it is complete.
    pub(crate) fn progress_shutdown(&mut self) {
        if let Some(deadline) = self.core.begin_draining() {
            for key in self.core.keys(|e| matches!(e, Entry::Listener(_))) {
                self.core.remove(key);
            }
            for key in self.core.keys(|e| matches!(e, Entry::Connection(_))) {
                let _ = connection::write::close(&mut self.core, key, Ending::Shutdown);
            }
            self.core.set_timer(deadline, TimerKind::ShutdownDeadline);
            debug!("shutting down: {} connections to flush within {deadline:?}", self.core.counters().active);
            let (handler, mut ctx) = self.ctx();
            handler.on_shutdown(&mut ctx);
            self.close_scheduled();
        }
        self.core.stop_if_drained();
    }

    /// The shutdown deadline passed: close what is left as it is.
    fn abandon_all(&mut self) {
        let keys = self.core.keys(|e| matches!(e, Entry::Connection(_)));
        if !keys.is_empty() {
            warn!("shutdown deadline passed: closing {} connections with output still queued", keys.len());
        }
        for key in keys {
            self.core.schedule_close(key, CloseReason::Shutdown);
        }
    }
}
