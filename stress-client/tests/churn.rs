//! `churn`: one message and one latency sample per connect-echo-close cycle, and books that balance.

mod util;

use util::{Fault, TestServer, run};

#[test]
fn churn_counts_one_message_and_one_latency_sample_per_cycle() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!("churn --target {} --connections 4 --duration 0.5 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    let established = r["established"].as_u64().unwrap();
    assert!(established > 4, "connections were opened again and again: {r}");
    assert_eq!(r["messages"], r["established"], "one message per cycle: {r}");
    assert_eq!(r["latency_us"]["count"], r["messages"], "one latency sample per message: {r}");
    // Each cycle's latency runs from the start of its connect, so it is never below its connect time.
    assert!(r["latency_us"]["p50"].as_u64() >= r["connect_us"]["p50"].as_u64(), "{r}");
    assert_eq!(r["bytes_sent"], r["bytes_received"], "{r}");
    assert_eq!(r["bytes_received"].as_u64().unwrap(), established * 64, "{r}");
}
