//! `echo`: every byte verified, faults caught with exit code 3, latency from intended send times.

mod util;

use std::time::Duration;

use util::{Fault, TestServer, run};

#[test]
fn a_faithful_server_passes_and_the_report_has_the_documented_fields() {
    let server = TestServer::start(Fault::None);
    let out =
        run(&format!("echo --target {} --connections 4 --duration 0.5 --pipeline 2 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["verify_failures"], 0);
    assert_eq!(r["established"], 4);
    assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(r["errors"].as_object().unwrap().is_empty());
    for field in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(r["latency_us"][field].is_number(), "latency_us.{field} missing: {r}");
    }
    for field in ["cpu_s", "peak_rss_kib", "threads"] {
        assert!(r["client"][field].is_number(), "client.{field} missing: {r}");
    }
    assert!(r["environment"]["somaxconn"].as_u64().unwrap() > 0);
    assert_eq!(r["sockets"]["LISTEN"], 1, "the target port's states are reported: {r}");
}

#[test]
fn a_corrupting_server_fails_the_run_naming_connection_and_offset() {
    let server = TestServer::start(Fault::FlipByteAt(100));
    let out = run(&format!("echo --target {} --connections 1 --duration 5 --size 64", server.addr));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stdout.contains("connection 0: byte offset 100"), "{}", out.stdout);
}

#[test]
fn a_truncating_server_fails_the_run_naming_connection_and_offset() {
    let server = TestServer::start(Fault::TruncateAfter(200));
    let out = run(&format!("echo --target {} --connections 2 --duration 5 --size 64 --json", server.addr));
    assert_eq!(out.code, Some(3), "{out:?}");
    let failure = out.json()["failure"].as_str().unwrap().to_owned();
    assert!(failure.contains("byte offset 200") && failure.contains("never echoed"), "{failure}");
    assert!(failure.starts_with("connection 0") || failure.starts_with("connection 1"), "{failure}");
}

#[test]
fn the_blocking_model_catches_corruption_too() {
    let server = TestServer::start(Fault::FlipByteAt(7));
    let out = run(&format!("echo --target {} --connections 1 --duration 5 --blocking", server.addr));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stdout.contains("connection 0: byte offset 7"), "{}", out.stdout);
}

#[test]
fn fixed_rate_latency_counts_a_server_stall_from_intended_send_times() {
    // 200 msg/s on one connection: a 200 ms stall holds back ~40 messages, each late by up to 200 ms
    // measured from when it should have gone. Closed-loop timing would charge the stall to one message.
    let stall = Duration::from_millis(200);
    let server = TestServer::start(Fault::StallAfter(64 * 50, stall));
    let out = run(&format!(
        "echo --target {} --connections 1 --size 64 --rate 200 --duration 1.5 --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    let p99 = r["latency_us"]["p99"].as_u64().unwrap();
    let p90 = r["latency_us"]["p90"].as_u64().unwrap();
    assert!(p99 >= 150_000, "the stall must show in p99 (µs): {}", r["latency_us"]);
    // At least 10% of the messages were held back by the stall.
    assert!(p90 >= 20_000, "the stall delayed many messages, not one: {}", r["latency_us"]);
    assert_eq!(r["rate_requested"], 200.0);
}

#[test]
fn blocking_mode_reports_a_thread_per_connection() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!("echo --target {} --connections 6 --duration 0.5 --blocking --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["model"], "blocking");
    assert!(r["client"]["threads"].as_u64().unwrap() >= 7, "{}", r["client"]);
    assert!(r["messages"].as_u64().unwrap() > 0);
}

#[test]
fn several_loops_and_processes_merge_into_one_report() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!(
        "echo --target {} --connections 6 --threads 2 --processes 2 --duration 0.5 \
         --source-ips 127.0.0.1-127.0.0.4 --json",
        server.addr
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["established"], 6);
    assert_eq!(r["client"]["processes"], 2);
    assert_eq!(r["latency_us"]["count"], r["messages"]);
}

#[test]
fn churn_reports_connections_per_second() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!("churn --target {} --connections 4 --duration 0.5 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert!(r["conns_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["established"].as_u64().unwrap() > 4, "connections were opened again and again: {r}");
    assert!(r["errors"].is_object());
}
