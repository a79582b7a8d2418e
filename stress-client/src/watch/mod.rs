//! `watch`: a live view of one port and the server listening on it. Every `--interval` it samples the
//! port's TCP sockets by state, the listener's accept queue and backlog, the machine's
//! ListenOverflows and ListenDrops since the watch began, and the server process's descriptors,
//! threads and memory; it shows them as a block that redraws itself on a terminal, one line per sample
//! otherwise, or one JSON object per sample with `--json`. It stops after `--duration`, or on Ctrl-C
//! (SIGINT), and then draws the `--plot` picture if one was asked for.
//!
//! Linux shows everything; elsewhere each sample names what this OS does not show.

mod args;
mod process;
mod sample;
mod show;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use args::WatchArgs;

use sample::Watched;
use show::Display;

/// Longest wait between two looks at the stop flag: how quickly Ctrl-C ends a watch.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Runs the watch until `--duration` has passed or SIGINT arrives.
pub fn run(args: &WatchArgs) -> io::Result<()> {
    if let Some(path) = &args.plot {
        crate::plot::check_writable(path)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    // The first Ctrl-C ends the watch cleanly (the picture is drawn); a second one still kills it.
    signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 1, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    let mut watched = Watched::new(args)?;
    let mut display = Display::new(args.json);
    let started = Instant::now();
    let end = args.duration.map(|d| started + d);
    let mut next = started;
    loop {
        let sample = watched.sample(started.elapsed());
        display.show(&watched, &sample)?;
        next += args.interval;
        // A sample that took longer than the interval is not made up for: the next is due now.
        next = next.max(Instant::now());
        if end.is_some_and(|end| next > end) {
            break;
        }
        if !wait_until(next, &stop) {
            break;
        }
    }
    display.finish()?;
    if let Some(path) = &args.plot {
        crate::plot::svg(&watched.finish(), path)?;
    }
    Ok(())
}

/// Waits until `at`; `false` if the stop flag was raised meanwhile.
fn wait_until(at: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}
