//! Draws a [`Timeline`] as one SVG: a panel per unit, stacked, sharing the time axis.

use std::error::Error;
use std::io;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::timeline::{Panel, Timeline};

/// Width of the picture, and height of each panel, in pixels.
const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 340;
/// The series' colours (Okabe and Ito's, told apart by most colour-blind readers), without red, which
/// is the limits', and yellow, which white paper washes out.
const SERIES_COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(150, 150, 150),
];
/// Series with at most this many points are drawn with a dot at each.
const DOTS_UP_TO: usize = 120;

/// Writes `timeline` to `path` as SVG. Panels with nothing to draw are left out; a timeline with
/// nothing at all still gives a picture (an empty chart says the run had nothing to show).
pub fn svg(timeline: &Timeline, path: &Path) -> io::Result<()> {
    draw(timeline, path)
        .map_err(|e| io::Error::other(format!("{}: cannot draw the plot: {e}", path.display())))
}

fn draw(timeline: &Timeline, path: &Path) -> Result<(), Box<dyn Error>> {
    let mut panels: Vec<Panel> =
        timeline.panels.iter().cloned().filter_map(|mut p| p.prune().then_some(p)).collect();
    if panels.is_empty() {
        panels.push(Panel::new("nothing recorded"));
    }
    let end = panels
        .iter()
        .flat_map(|p| p.lines.iter().chain(&p.marks))
        .filter_map(|s| s.points.last().map(|&(t, _)| t))
        .fold(1.0, f64::max);
    let height = PANEL_HEIGHT * panels.len() as u32 + 40;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&timeline.title, ("sans-serif", 24))?;
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(&panels) {
        draw_panel(area, panel, end)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    end: f64,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    let top = (panel.max() * 1.15).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..top)?;
    let whole = |v: &f64| format!("{v:.0}");
    let tenths = |v: &f64| format!("{v:.1}");
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(panel.unit.as_str())
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .y_label_formatter(if top >= 10.0 { &whole } else { &tenths })
        .draw()?;
    let mut colour = 0;
    let mut next = || {
        colour += 1;
        SERIES_COLOURS[(colour - 1) % SERIES_COLOURS.len()]
    };
    for series in &panel.lines {
        let c = next();
        chart
            .draw_series(LineSeries::new(series.points.iter().copied(), c.stroke_width(2)))?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        // Where samples are few, dots show where they were taken: the lines between are guesses.
        if series.points.len() <= DOTS_UP_TO {
            chart.draw_series(series.points.iter().map(|&p| Circle::new(p, 2, c.filled())))?;
        }
    }
    for marks in &panel.marks {
        let c = next();
        chart
            .draw_series(marks.points.iter().map(|&p| Cross::new(p, 6, c.stroke_width(2))))?
            .label(marks.name.as_str())
            .legend(move |(x, y)| Cross::new((x + 10, y), 6, c.stroke_width(2)));
    }
    for limit in &panel.limits {
        // Labelled on the line itself rather than in the legend, which stays narrow: just above the
        // line at its right end, clear of the legend, so that the line does not strike it through.
        let line = DashedLineSeries::new([(0.0, limit.value), (end, limit.value)], 8, 5, RED.stroke_width(2));
        chart.draw_series(line)?;
        let style = ("sans-serif", 16).into_font().color(&RED).pos(Pos::new(HPos::Right, VPos::Bottom));
        let label = Text::new(limit.label.clone(), (-4, -4), style);
        chart.draw_series(std::iter::once(EmptyElement::at((end, limit.value)) + label))?;
    }
    if panel.lines.is_empty() && panel.marks.is_empty() {
        // Nothing for a legend to name (limits are labelled on their line).
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
