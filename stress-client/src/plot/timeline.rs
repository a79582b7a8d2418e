//! A run's story over time, as the picture will show it: panels of named series sharing one time axis,
//! marks where something happened, and labelled lines for the limits that were met. Every series is
//! bounded: past [`MOST_POINTS`] it keeps every other point, so a run of any length costs the same.

/// Points one series keeps at most.
pub const MOST_POINTS: usize = 2048;

/// One named series of `(seconds since the start, value)` points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The name the legend shows.
    pub name: String,
    /// The points, in time order.
    pub points: Vec<(f64, f64)>,
    /// Drawn even if it stays at zero (where zero is the news: an accept queue that never filled).
    pub kept: bool,
}

impl Series {
    fn push(&mut self, t: f64, value: f64) {
        if self.points.len() >= MOST_POINTS {
            // Halving keeps the whole run in view, at half the resolution.
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.points.push((t, value));
    }

    /// Whether every value is zero (such a series says nothing and is left out of the picture).
    pub fn all_zero(&self) -> bool {
        self.points.iter().all(|&(_, v)| v == 0.0)
    }

    /// The largest value.
    pub fn max(&self) -> f64 {
        self.points.iter().map(|&(_, v)| v).fold(0.0, f64::max)
    }
}

/// A limit met or approached: a horizontal line with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// What the line stands for.
    pub label: String,
    /// Where it is on the panel's axis.
    pub value: f64,
}

/// One chart of the picture: series in the same unit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    /// What the vertical axis counts.
    pub unit: String,
    /// Lines.
    pub lines: Vec<Series>,
    /// Events drawn as marks at their moment and value (errors, by kind).
    pub marks: Vec<Series>,
    /// Labelled horizontal lines.
    pub limits: Vec<Limit>,
}

impl Panel {
    /// An empty panel counting `unit`.
    pub fn new(unit: &str) -> Panel {
        Panel { unit: unit.to_owned(), ..Panel::default() }
    }

    /// Adds a point to the line `name`, starting it if new.
    pub fn line(&mut self, name: &str, t: f64, value: f64) {
        find(&mut self.lines, name).push(t, value);
    }

    /// Adds a point to the line `name`, which is drawn even if it stays at zero.
    pub fn kept_line(&mut self, name: &str, t: f64, value: f64) {
        let series = find(&mut self.lines, name);
        series.kept = true;
        series.push(t, value);
    }

    /// Adds a mark to the marks named `name`.
    pub fn mark(&mut self, name: &str, t: f64, value: f64) {
        find(&mut self.marks, name).push(t, value);
    }

    /// Adds a labelled horizontal line.
    pub fn limit(&mut self, label: String, value: f64) {
        self.limits.push(Limit { label, value });
    }

    /// Drops the lines that stayed at zero; `true` if anything is left to draw.
    pub fn prune(&mut self) -> bool {
        self.lines.retain(|s| s.kept || !s.all_zero());
        !self.lines.is_empty() || !self.marks.is_empty() || !self.limits.is_empty()
    }

    /// The largest value drawn, limits included.
    pub fn max(&self) -> f64 {
        let series = self.lines.iter().chain(&self.marks).map(Series::max);
        series.chain(self.limits.iter().map(|l| l.value)).fold(0.0, f64::max)
    }
}

fn find<'a>(series: &'a mut Vec<Series>, name: &str) -> &'a mut Series {
    match series.iter().position(|s| s.name == name) {
        Some(i) => &mut series[i],
        None => {
            series.push(Series { name: name.to_owned(), ..Series::default() });
            series.last_mut().expect("just pushed")
        }
    }
}

/// The whole picture: a title and its panels, top to bottom.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// What ran, against what.
    pub title: String,
    /// The charts.
    pub panels: Vec<Panel>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_past_its_bound_keeps_every_other_point() {
        let mut panel = Panel::new("connections");
        for i in 0..=MOST_POINTS {
            panel.line("open", i as f64, 1.0);
        }
        let points = &panel.lines[0].points;
        assert_eq!(points.len(), MOST_POINTS / 2 + 1);
        assert_eq!(points.first(), Some(&(0.0, 1.0)));
        assert_eq!(points.last(), Some(&(MOST_POINTS as f64, 1.0)));
    }

    #[test]
    fn lines_at_zero_are_pruned_and_limits_count_in_the_scale() {
        let mut panel = Panel::new("sockets");
        panel.line("SYN_SENT", 0.0, 0.0);
        panel.line("TIME_WAIT", 0.0, 5.0);
        panel.limit("ephemeral ports".into(), 9.0);
        assert!(panel.prune());
        assert_eq!(panel.lines.len(), 1);
        assert_eq!(panel.max(), 9.0);
        let mut empty = Panel::new("msgs/s");
        empty.line("msgs/s", 0.0, 0.0);
        assert!(!empty.prune());
        let mut queue = Panel::new("accept queue");
        queue.kept_line("accept queue", 0.0, 0.0);
        assert!(queue.prune());
    }
}
