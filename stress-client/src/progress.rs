//! The live line on stderr, once a second: connections up, messages per second and errors; for `udp`,
//! sockets, datagrams back per second, and datagrams lost.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crate::error_kind::ErrorCounts;
use crate::plot::Recorder;
use crate::target_process::Sampler;

/// Counters one loop or thread publishes for the progress line (absolute values, relaxed).
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections established so far.
    pub established: AtomicU64,
    /// Messages echoed so far.
    pub messages: AtomicU64,
    /// Failures so far.
    pub errors: AtomicU64,
    /// `udp`: datagrams lost so far (in the measured interval).
    pub lost: AtomicU64,
    /// Those failures by kind, updated when `errors` changes (rarely: failures are the exception).
    pub kinds: Mutex<ErrorCounts>,
}

impl Counters {
    /// Counts one more failure of `kind`.
    pub fn failed(&self, kind: crate::error_kind::ErrorKind) {
        *self.kinds.lock().unwrap_or_else(PoisonError::into_inner).entry(kind).or_default() += 1;
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes the failures counted so far, if they changed.
    pub fn publish_errors(&self, counts: &ErrorCounts) {
        let total = counts.values().sum();
        if self.errors.load(Ordering::Relaxed) != total {
            counts.clone_into(&mut self.kinds.lock().unwrap_or_else(PoisonError::into_inner));
            self.errors.store(total, Ordering::Relaxed);
        }
    }
}

/// Everything the workers of one process share: their counters and the flag that ends the run early.
#[derive(Debug, Default)]
pub struct Progress {
    /// One entry per loop or thread.
    pub counters: Vec<Arc<Counters>>,
    /// Set on the first verification failure: every worker winds down.
    pub abort: Arc<AtomicBool>,
}

impl Progress {
    /// Progress for `workers` loops or threads.
    pub fn new(workers: usize) -> Progress {
        Progress {
            counters: (0..workers).map(|_| Arc::new(Counters::default())).collect(),
            abort: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Open, established, messages and errors, summed over the workers.
    pub fn totals(&self) -> [u64; 4] {
        let sum = |f: fn(&Counters) -> &AtomicU64| {
            self.counters.iter().map(|c| f(c).load(Ordering::Relaxed)).sum::<u64>()
        };
        [sum(|c| &c.open), sum(|c| &c.established), sum(|c| &c.messages), sum(|c| &c.errors)]
    }

    /// The failures by kind, summed over the workers.
    pub fn kinds(&self) -> ErrorCounts {
        let mut all = ErrorCounts::new();
        for counters in &self.counters {
            for (&kind, &n) in counters.kinds.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                *all.entry(kind).or_default() += n;
            }
        }
        all
    }
}

/// Prints a progress line once a second while a run lasts: overwriting itself on a terminal, one line
/// per interval otherwise. Quiet for the first two seconds, so short runs print nothing. The thread
/// that ticks also samples the server, when it runs here, and records the run's timeline for `--plot`.
#[derive(Debug)]
pub struct Ticker<'a> {
    started: Instant,
    last: Instant,
    last_messages: u64,
    terminal: bool,
    prefix: String,
    printed: bool,
    datagrams: bool,
    sampler: Option<&'a mut Sampler>,
    recorder: Option<&'a mut Recorder>,
}

impl<'a> Ticker<'a> {
    /// A ticker; `prefix` tells child processes apart; `sampler` samples the server as it ticks.
    pub fn new(prefix: String, sampler: Option<&'a mut Sampler>) -> Ticker<'a> {
        let now = Instant::now();
        Ticker {
            started: now,
            last: now,
            last_messages: 0,
            terminal: std::io::stderr().is_terminal(),
            prefix,
            printed: false,
            datagrams: false,
            sampler,
            recorder: None,
        }
    }

    /// The same ticker, for `udp`: its line counts sockets, datagrams back and datagrams lost.
    pub fn datagrams(self) -> Ticker<'a> {
        Ticker { datagrams: true, ..self }
    }

    /// The same ticker, recording the run's timeline into `recorder` as it ticks.
    pub fn recording(self, recorder: Option<&'a mut Recorder>) -> Ticker<'a> {
        Ticker { recorder, ..self }
    }

    /// How long to wait before the next tick: the next line, or the next sample of the server.
    pub fn interval(&self) -> Duration {
        let line = Duration::from_secs(1).saturating_sub(self.last.elapsed());
        let line = self.sampler.as_ref().map_or(line, |s| line.min(s.due_in()));
        self.recorder.as_ref().map_or(line, |r| line.min(r.due_in()))
    }

    /// Samples the server and records a point if due; prints a line if a second has passed.
    pub fn tick(&mut self, progress: &Progress) {
        if let Some(sampler) = self.sampler.as_mut() {
            sampler.poll();
        }
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.poll(progress);
        }
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(990) {
            return;
        }
        let [open, established, messages, errors] = progress.totals();
        let rate = (messages - self.last_messages.min(messages)) as f64
            / now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.last_messages = messages;
        if self.started.elapsed() < Duration::from_secs(2) {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let line = if self.datagrams {
            let lost: u64 = progress.counters.iter().map(|c| c.lost.load(Ordering::Relaxed)).sum();
            format!(
                "{}{seconds:>4.0}s  sockets {open}  {rate:.0} datagrams/s back  received {messages}  lost {lost}  errors {errors}",
                self.prefix
            )
        } else {
            format!(
                "{}{seconds:>4.0}s  open {open}  established {established}  {rate:.0} msg/s  errors {errors}",
                self.prefix
            )
        };
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
        self.printed = true;
    }

    /// Ends the live line on a terminal, and the timeline with a last point: the run as it ended.
    pub fn finish(&mut self, progress: &Progress) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.last_point(progress);
        }
        if self.terminal && self.printed {
            eprintln!();
        }
    }
}

/// Waits until `workers` threads have each sent once on `finished` (or all senders are gone), ticking
/// the progress line meanwhile, then ends it. Returns the most threads the process had while waiting.
pub fn wait_for_workers(
    finished: &mpsc::Receiver<()>,
    workers: usize,
    progress: &Progress,
    ticker: &mut Ticker<'_>,
) -> u64 {
    let mut peak_threads = crate::usage::threads();
    let mut running = workers;
    while running > 0 {
        match finished.recv_timeout(ticker.interval()) {
            Ok(()) => running -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        peak_threads = peak_threads.max(crate::usage::threads());
        ticker.tick(progress);
    }
    ticker.finish(progress);
    peak_threads
}
