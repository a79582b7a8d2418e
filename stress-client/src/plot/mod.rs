//! `--plot FILE.svg`: a run's story as one picture, time on the x-axis. Each command records its
//! [`Timeline`] while it runs (load runs through [`Recorder`], from the thread that ticks the progress
//! line; `backlog` and `watch` as they sample) and [`svg`] draws it with `plotters`.

mod draw;
mod probe;
mod record;
mod timeline;

pub use draw::svg;
pub use probe::ProbeRecorder;
pub use record::Recorder;
pub use timeline::{Panel, Timeline};

/// Fails now, before the run, if the picture could not be written at `path`, rather than after a run
/// whose report would then be lost.
pub fn check_writable(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::create(path).map(drop).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot write the plot to {}: {e}", path.display()))
    })
}
