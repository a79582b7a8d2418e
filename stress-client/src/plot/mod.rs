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
