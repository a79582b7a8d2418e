//! How big a run is: the default suite is scaled down to fit in a normal `cargo test`; `FAULTS_LONG=1`
//! asks for the full sizes.

/// True when `FAULTS_LONG` is set to anything but `0` or empty: run the long variants.
pub fn long() -> bool {
    std::env::var("FAULTS_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `full` under `FAULTS_LONG=1`, `default` otherwise; prints which one the test uses and why, so that
/// a scaled-down figure is never read as the full one.
pub fn scaled<T: std::fmt::Display + Copy>(what: &str, default: T, full: T) -> T {
    if long() {
        println!("{what}: {full} (FAULTS_LONG)");
        full
    } else {
        println!("{what}: {default} (scaled down from {full}; FAULTS_LONG=1 runs the full size)");
        default
    }
}
