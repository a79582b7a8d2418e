//! Reports: medians, ratios, JSON and Markdown files under `target/bench-report/`.

use std::path::PathBuf;

use serde_json::{Value, json};

/// `target/bench-report/`, created on first use.
pub fn report_dir() -> PathBuf {
    let dir = crate::servers::target_dir().join("bench-report");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Writes `value` as pretty JSON to `target/bench-report/NAME` and says where.
pub fn write_json(name: &str, value: &Value) {
    let path = report_dir().join(name);
    match serde_json::to_string_pretty(value).map(|text| std::fs::write(&path, text + "\n")) {
        Ok(Ok(())) => println!("wrote {}", path.display()),
        Ok(Err(e)) => eprintln!("note: cannot write {}: {e}", path.display()),
        Err(e) => eprintln!("note: cannot encode {name}: {e}"),
    }
}

/// Writes a Markdown fragment to `target/bench-report/NAME` (for the README's Performance section).
pub fn write_markdown(name: &str, text: &str) {
    let path = report_dir().join(name);
    match std::fs::write(&path, text) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("note: cannot write {}: {e}", path.display()),
    }
}

/// The machine and the moment, for every report.
pub fn machine() -> Value {
    json!({
        "kernel": hostinfo::sysctl("kernel.osrelease").unwrap_or_else(|| "unknown".into()),
        // The whole machine's: this process is pinned to one core, so `available_parallelism` says 1.
        "cpus": hostinfo::cpus(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "date": date(),
        "quick": crate::Settings::from_env().quick,
    })
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
pub fn date() -> String {
    hostinfo::utc::date(std::time::SystemTime::now())
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] })
}

/// `a / b`, or `None` when either is missing or `b` is zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// A number for a table cell with `digits` decimals, or `–` when absent.
pub fn cell(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

/// A Markdown table from a header and rows.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn date_is_a_civil_date() {
        let d = date();
        assert_eq!(d.len(), 10, "{d}");
        assert!(d.starts_with("20"), "{d}");
    }
}
