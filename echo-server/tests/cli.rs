//! Bad input gets one clear line and a non-zero exit.

mod util;

#[track_caller]
fn fails_with(args: &[&str], code: i32, says: &str) {
    let output = util::run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?} should say {says:?}, said: {stderr}");
}

#[test]
fn an_unparsable_address_is_refused() {
    fails_with(&["--addr", "localhost:port"], 2, "invalid socket address");
}

#[test]
fn a_zero_backlog_is_refused() {
    fails_with(&["--addr", "127.0.0.1:0", "--backlog", "0"], 2, "--backlog");
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(&["--addr", &addr], 1, &format!("cannot bind {addr}"));
    fails_with(&["--addr", &addr, "--mode", "blocking"], 1, &format!("cannot bind {addr}"));
}

#[test]
fn threads_with_blocking_mode_are_refused() {
    fails_with(&["--addr", "127.0.0.1:0", "--mode", "blocking", "--threads", "2"], 1, "--threads");
}

#[test]
fn the_first_line_names_the_real_port() {
    let server = util::start(&[]);
    assert_ne!(server.addr.port(), 0);
    assert!(server.addr.ip().is_loopback());
}

/// Scripts signal the server as soon as they read its first line; by then the handlers must be in
/// place, so the signal means a clean shutdown (exit 0) rather than the default action. The same goes
/// for the descriptor count: the process is fully set up when it says it listens.
#[track_caller]
fn signalled_right_after_the_first_line_exits_cleanly(args: &[&str]) {
    use nix::sys::signal::Signal;
    for round in 0..20 {
        let mut server = util::start(args);
        let fds = testkit::open_fds(server.pid());
        server.signal(Signal::SIGTERM);
        let status = server.wait_exit(std::time::Duration::from_secs(10)).expect("exit after SIGTERM");
        assert!(status.success(), "{args:?} round {round}: exit status {status} ({fds} fds when signalled)");
    }
}

#[test]
fn reactor_mode_is_ready_for_signals_when_it_says_it_listens() {
    signalled_right_after_the_first_line_exits_cleanly(&[]);
}

#[test]
fn blocking_mode_is_ready_for_signals_when_it_says_it_listens() {
    signalled_right_after_the_first_line_exits_cleanly(&["--mode", "blocking"]);
}
