//! `connect --echo-every K`: as the hold ends, every Kth held connection echoes one verified message,
//! in one process or split over several, and a server that corrupts it fails the run.

mod util;

use util::{Fault, TestServer, assert_books, run};

#[test]
fn every_kth_held_connection_echoes_one_verified_message_in_one_or_several_processes() {
    let server = TestServer::start(Fault::None);
    // Ids 0..10, every 3rd: 0, 3, 6, 9. Split over processes and loops, the sample is the same.
    for flags in ["", "--threads 2", "--processes 3"] {
        let out = run(&format!(
            "connect --target {} --connections 10 --hold 0.1 --echo-every 3 --json {flags}",
            server.addr
        ));
        assert_eq!(out.code, Some(0), "{flags}: {out:?}");
        let r = out.json();
        assert_books(&r, flags);
        assert_eq!(r["established"], 10, "{flags}: {r}");
        assert_eq!(r["messages"], 4, "{flags}: {r}");
        assert_eq!(r["message_size"], 32, "{flags}: {r}");
        assert_eq!(r["bytes_received"], 4 * 32, "{flags}: {r}");
        assert_eq!(r["verify_failures"], 0, "{flags}: {r}");
    }
}

#[test]
fn without_the_flag_a_connect_sends_nothing() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!("connect --target {} --connections 4 --hold 0 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!((r["messages"].as_u64(), r["bytes_sent"].as_u64()), (Some(0), Some(0)), "{r}");
}

#[test]
fn a_corrupted_sample_echo_fails_the_run_naming_the_connection() {
    let server = TestServer::start(Fault::FlipByteAt(5));
    let out = run(&format!("connect --target {} --connections 4 --hold 0 --echo-every 2", server.addr));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stdout.contains("byte offset 5"), "{}", out.stdout);
}

#[test]
fn the_sample_is_refused_with_the_blocking_model() {
    let out = run("connect --target 127.0.0.1:9 --blocking --echo-every 2");
    assert_eq!(out.code, Some(2), "{out:?}");
}
