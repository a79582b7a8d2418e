//! Option values: every one out of range is a usage error (exit 2) that names the range, never a
//! panic, and the extremes of each range are accepted.

mod util;

use util::{Fault, TestServer, run};

/// Runs the client with `args` against a faithful server, so that a value that slipped through would
/// reach the code that uses it.
fn run_against_server(args: &str) -> util::Run {
    let server = TestServer::start(Fault::None);
    run(&args.replace("TARGET", &server.addr.to_string()))
}

#[test]
fn out_of_range_durations_rates_and_counts_are_usage_errors_not_panics() {
    // (arguments, what the error must say about the allowed range)
    let cases = [
        ("echo --target TARGET --duration 1e20", "seconds from 0.001 to 31536000"),
        ("echo --target TARGET --duration 1e19", "seconds from 0.001 to 31536000"),
        ("echo --target TARGET --duration 31536000.5", "seconds from 0.001 to 31536000"),
        ("echo --target TARGET --duration 0", "seconds from 0.001 to 31536000"),
        ("echo --target TARGET --duration NaN", "seconds from 0.001 to 31536000"),
        ("echo --target TARGET --duration inf", "seconds from 0.001 to 31536000"),
        ("echo --target TARGET --duration 0.3 --warmup 1e20", "seconds from 0 to 31536000"),
        ("echo --target TARGET --duration 0.3 --warmup=-1", "seconds from 0 to 31536000"),
        ("echo --target TARGET --duration 0.3 --rate 1e-20", "a rate per second from 0.001 to 1000000000"),
        ("echo --target TARGET --duration 0.3 --rate 1e10", "a rate per second from 0.001 to 1000000000"),
        ("echo --target TARGET --duration 0.3 --ramp 1e-20", "a rate per second from 0.001 to 1000000000"),
        ("echo --target TARGET --duration 0.3 --ramp 1e300", "a rate per second from 0.001 to 1000000000"),
        (
            "echo --target TARGET --duration 0.3 --connections 2 --blocking --ramp 1e-20",
            "a rate per second from 0.001",
        ),
        (
            "echo --target TARGET --duration 0.3 --connections 2 --processes 2 --rate 0.001",
            "least accepted (0.001)",
        ),
        (
            "echo --target TARGET --duration 0.3 --connections 1 --id-offset 18446744073709551615",
            "a whole number from 0 to 10000000",
        ),
        ("echo --target TARGET --duration 0.3 --connect-timeout 0", "a whole number from 1 to 600000"),
        ("echo --target TARGET --duration 0.3 --pipeline 0", "a whole number from 1 to 4096"),
        ("connect --target TARGET --hold 1e20", "seconds from 0 to 31536000"),
        ("connect --target TARGET --hold 1e19", "seconds from 0 to 31536000"),
        ("connect --target TARGET --hold 0 --ramp 0", "a rate per second from 0.001 to 1000000000"),
        ("connect --target TARGET --hold 0 --connections 10000001", "a whole number from 1 to 10000000"),
        ("churn --target TARGET --duration 1e20", "seconds from 0.001 to 31536000"),
        ("churn --target TARGET --duration 0.3 --ramp=-5", "a rate per second from 0.001 to 1000000000"),
        ("backlog --target TARGET --connect-timeout 0", "a whole number from 1 to 60000"),
        ("backlog --target TARGET --max 0", "a whole number from 1 to 100000"),
        // Negative values reach the flag's own check, which names the flag, instead of passing for a
        // flag of their own.
        ("backlog --target TARGET --backlog -1", "a whole number from 0 to 4294967295"),
        ("echo --target TARGET --connections -5", "a whole number from 1 to 10000000"),
        ("echo --target TARGET --duration -1", "seconds from 0.001 to 31536000"),
        ("echo --target TARGET --duration 0.3 --size -64", "a size in bytes from 1 to 1048576"),
        ("churn --target TARGET --duration 0.3 --ramp -5", "a rate per second from 0.001 to 1000000000"),
        ("sockets --port -1", "a whole number from 0 to 65535"),
    ];
    for (args, range) in cases {
        let out = run_against_server(args);
        assert!(!out.stderr.contains("panicked"), "{args}: panicked: {}", out.stderr);
        assert_eq!(out.code, Some(2), "{args}: {out:?}");
        if range.starts_with("least accepted") {
            // Not one flag's range but a rate shared out over processes: said in its own words.
            assert!(out.stderr.contains(range), "{args}: {}", out.stderr);
            continue;
        }
        // Every range reads the same: the flag, the value, then "expected ... from MIN to MAX".
        let flag = args.split_whitespace().rev().find(|a| a.starts_with("--")).unwrap();
        let flag = flag.split('=').next().unwrap();
        assert!(
            out.stderr.contains(&format!("for '{flag} <")),
            "{args}: does not name {flag}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("': expected {range}")),
            "{args}: the error does not name the range {range:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn the_extremes_of_rate_and_ramp_are_accepted() {
    // 0.001 msg/s over 2 connections: one message each at once, the next 2000 s later (past the end).
    let out = run_against_server(
        "echo --target TARGET --connections 2 --rate 0.001 --ramp 1e9 --warmup 0 --duration 0.3 --json",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["established"], 2, "{r}");
    assert_eq!(r["verify_failures"], 0, "{r}");
}
