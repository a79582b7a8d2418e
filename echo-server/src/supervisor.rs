//! Reactor mode's main thread once the loops run: it waits for signals, for loops that end and for the
//! next `--stats` line, and takes every loop down when asked to or when one of them fails.

use std::io;
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use log::{error, info};
use reactor::{Counters, Handle};

use crate::served::{self, Event, SHUTDOWN_GRACE};

/// Watches the running loops through their handles.
#[derive(Debug)]
pub struct Supervisor {
    handles: Vec<Handle<()>>,
    shutdown_timeout: Duration,
    /// `--stats`: how often to log the counters, and when next.
    stats: Option<(Duration, Instant)>,
    running: usize,
    failed: bool,
    /// Set once the loops were told to shut down: they must all have ended by then.
    deadline: Option<Instant>,
}

impl Supervisor {
    /// A supervisor of the loops behind `handles`, all of them running.
    pub fn new(handles: Vec<Handle<()>>, shutdown_timeout: Duration, stats: Option<Duration>) -> Supervisor {
        Supervisor {
            running: handles.len(),
            handles,
            shutdown_timeout,
            stats: stats.map(|every| (every, Instant::now() + every)),
            failed: false,
            deadline: None,
        }
    }

    /// Runs until every loop has ended, or until they overrun their shutdown. Fails when the order to
    /// shut down cannot reach a loop.
    pub fn run(mut self, events: &Receiver<Event>) -> io::Result<ExitCode> {
        while self.running > 0 {
            let event = match self.next_wake() {
                Some(at) => events.recv_timeout(at.saturating_duration_since(Instant::now())).ok(),
                None => events.recv().ok(),
            };
            match event {
                Some(Event::Signal(signal)) => self.signalled(signal)?,
                Some(Event::Ended { index, result }) => self.ended(index, result)?,
                None => {
                    if self.deadline.is_some_and(|d| Instant::now() >= d) {
                        error!("{} event loop(s) did not finish their shutdown in time", self.running);
                        return Ok(ExitCode::FAILURE);
                    }
                    self.log_stats_when_due();
                }
            }
        }
        info!("stopped: {}", served::describe(&self.total()));
        Ok(if self.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    }

    /// The earlier of the next stats line and the shutdown deadline; `None`: wait for events alone.
    fn next_wake(&self) -> Option<Instant> {
        match (self.stats.map(|(_, at)| at), self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// SIGINT or SIGTERM: a graceful shutdown, once.
    fn signalled(&mut self, signal: i32) -> io::Result<()> {
        if self.deadline.is_none() {
            info!("signal {signal}: shutting down, flushing for up to {:?}", self.shutdown_timeout);
            self.shut_down()?;
        }
        Ok(())
    }

    /// Loop `index` ended. Unasked, or with an error, that is a failure; unasked, it takes the others
    /// down too.
    fn ended(&mut self, index: usize, result: io::Result<()>) -> io::Result<()> {
        self.running -= 1;
        if let Err(e) = result {
            error!("event loop {index} failed: {e}");
            self.failed = true;
        }
        if self.deadline.is_none() {
            self.failed = true;
            self.shut_down()?;
        }
        Ok(())
    }

    /// Tells every loop to shut down gracefully, and sets the time by which all must have ended.
    fn shut_down(&mut self) -> io::Result<()> {
        for handle in &self.handles {
            handle.shutdown(self.shutdown_timeout)?;
        }
        self.deadline = Some(Instant::now() + self.shutdown_timeout + SHUTDOWN_GRACE);
        Ok(())
    }

    fn log_stats_when_due(&mut self) {
        if let Some((every, at)) = self.stats
            && Instant::now() >= at
        {
            info!("{}", served::describe(&self.total()));
            self.stats = Some((every, at + every));
        }
    }

    /// The counters of every loop, added up.
    fn total(&self) -> Counters {
        served::total(self.handles.iter().map(|h| h.stats()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use reactor::{Config, EventLoop};

    use super::*;
    use crate::echo::{Echo, start};

    fn loops(n: usize) -> Vec<EventLoop<Echo>> {
        let config = Config { raise_fd_limit: false, ..Config::default() };
        (0..n).map(|_| EventLoop::new(config.clone(), Echo).expect("a loop")).collect()
    }

    /// A loop that stops without being asked leaves the server short of a loop: the others are shut
    /// down too, and the exit says it failed.
    #[test]
    fn a_loop_that_ends_unasked_takes_the_others_down_with_a_failure() {
        let (events, waiting) = mpsc::channel();
        let handles = start(loops(3), &events).expect("threads");
        handles[1].stop().expect("stop one loop");
        let supervisor = Supervisor::new(handles, Duration::from_secs(1), None);
        assert_eq!(supervisor.run(&waiting).expect("ran"), ExitCode::FAILURE);
    }

    #[test]
    fn a_signal_shuts_every_loop_down_cleanly() {
        let (events, waiting) = mpsc::channel();
        let handles = start(loops(2), &events).expect("threads");
        events.send(Event::Signal(15)).expect("queued");
        let supervisor = Supervisor::new(handles, Duration::from_secs(1), Some(Duration::from_millis(1)));
        assert_eq!(supervisor.run(&waiting).expect("ran"), ExitCode::SUCCESS);
    }
}
