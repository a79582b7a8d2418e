//! How samples are shown: a block that redraws itself in place on a terminal, one line per sample
//! otherwise, one JSON object per line with `--json`. All on stdout: the samples are the command's
//! result.

use std::io::{self, IsTerminal, Write};

use super::sample::{Sample, Watched};

/// Where the samples go, and how many lines the block on the terminal took last time.
#[derive(Debug)]
pub struct Display {
    json: bool,
    terminal: bool,
    drawn: usize,
}

impl Display {
    /// A display; JSON lines if `json`, else a block on a terminal or plain lines.
    pub fn new(json: bool) -> Display {
        Display { json, terminal: io::stdout().is_terminal(), drawn: 0 }
    }

    /// Shows one sample.
    pub fn show(&mut self, watched: &Watched, sample: &Sample) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            writeln!(out, "{}", serde_json::to_string(sample).map_err(io::Error::other)?)?;
        } else if self.terminal {
            let block = block(watched, sample);
            // Back to the top of the last block, clearing it as the new one is written.
            if self.drawn > 0 {
                write!(out, "\x1b[{}F", self.drawn)?;
            }
            for line in &block {
                writeln!(out, "\x1b[2K{line}")?;
            }
            // A shorter block than the last leaves no stale lines below it.
            write!(out, "\x1b[J")?;
            self.drawn = block.len();
        } else {
            writeln!(out, "{}", line(sample))?;
        }
        out.flush()
    }

    /// Ends the display (nothing to undo: the last block stays on the terminal).
    pub fn finish(&self) -> io::Result<()> {
        io::stdout().flush()
    }
}

/// A figure, or "n/a".
fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| v.to_string())
}

/// The sockets in the states that have any, in the kernel's order.
fn states(sample: &Sample) -> String {
    match &sample.states {
        None => "n/a".to_owned(),
        Some(states) => {
            let some: Vec<String> =
                states.iter().filter(|(_, n)| **n > 0).map(|(state, n)| format!("{state} {n}")).collect();
            if some.is_empty() { "none".to_owned() } else { some.join("  ") }
        }
    }
}

fn queue(sample: &Sample) -> String {
    format!(
        "accept queue {} / backlog {}   ListenOverflows +{}  ListenDrops +{}",
        show(sample.accept_queue),
        show(sample.backlog),
        show(sample.listen_overflows),
        show(sample.listen_drops)
    )
}

fn process(sample: &Sample) -> Option<String> {
    let p = sample.process.as_ref()?;
    let mib = p.rss_kib.map_or_else(|| "n/a".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    Some(format!(
        "descriptors {} / {}   threads {}   RSS {mib}",
        show(p.fds),
        p.nofile_soft.map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
        show(p.threads)
    ))
}

/// The block a terminal shows.
fn block(watched: &Watched, sample: &Sample) -> Vec<String> {
    let who = watched.server.as_ref().map_or_else(|| "no server process found".to_owned(), |s| s.who());
    let mut lines = vec![
        format!("watching {} ({who})   {:.1} s", watched.listener, sample.t),
        format!("  sockets   {}", states(sample)),
        format!("  listener  {}", queue(sample)),
    ];
    lines.extend(process(sample).map(|p| format!("  server    {p}")));
    lines.extend(sample.unavailable.iter().map(|why| format!("  ({why})")));
    lines
}

/// The line a pipe or file gets.
fn line(sample: &Sample) -> String {
    let mut line = format!("{:.1}s  {} | {}", sample.t, states(sample), queue(sample));
    if let Some(p) = process(sample) {
        line += &format!(" | {p}");
    }
    for why in &sample.unavailable {
        line += &format!(" | ({why})");
    }
    line
}
