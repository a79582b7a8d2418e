//! Bad input gets one clear line and a non-zero exit.

mod util;

#[track_caller]
fn fails_with(args: &[&str], code: i32, says: &str) {
    // Bounded: an input wrongly accepted starts a server, which is killed and fails the test.
    let (status, stderr) = util::run_within(args, std::time::Duration::from_secs(10));
    assert_eq!(status.code(), Some(code), "{args:?}: {status}: {stderr}");
    assert!(stderr.contains(says), "{args:?} should say {says:?}, said: {stderr}");
}

#[test]
fn an_unparsable_address_is_refused() {
    fails_with(&["--addr", "localhost:port"], 2, "invalid socket address");
}

#[test]
fn a_name_that_does_not_resolve_is_refused_naming_it() {
    fails_with(&["--addr", "no-such-host.invalid:1"], 2, "cannot resolve no-such-host.invalid");
}

/// `--addr` takes a name as well as an address: the server listens on the first address it resolves to
/// and says which.
#[test]
fn a_name_is_resolved_and_the_address_named_on_the_first_line() {
    let server = testkit::ServerProcess::start(util::command(&["--addr", "localhost:0"]));
    assert!(server.addr.ip().is_loopback() && server.addr.port() != 0, "{}", server.addr);
    let echoed = testkit::echo_once(server.addr, b"by name", std::time::Duration::from_secs(5));
    assert_eq!(echoed.ok().as_deref(), Some(&b"by name"[..]));
}

#[test]
fn a_zero_backlog_is_refused() {
    fails_with(&["--addr", "127.0.0.1:0", "--backlog", "0"], 2, "--backlog");
}

/// A negative value is refused by its flag's own check, which names the flag and its range, rather than
/// taken for an unknown flag ("unexpected argument '-1'"); every range reads the same.
#[test]
fn a_negative_value_names_its_flag_and_range() {
    let cases = [
        ("--backlog", "-1", "a whole number from 1 to 4294967295"),
        ("--max-conns", "-1", "a whole number from 1 to 18446744073709551615"),
        ("--threads", "-2", "a whole number from 1 to 256"),
        ("--workers", "0", "a whole number from 1 to 256"),
        ("--idle-timeout", "-1", "seconds from 0.001 to 31536000 (one year)"),
        ("--stats", "soon", "seconds from 0.001 to 31536000 (one year)"),
    ];
    for (flag, value, range) in cases {
        let says = format!("invalid value '{value}' for '{flag} <");
        fails_with(&["--addr", "127.0.0.1:0", flag, value], 2, &says);
        fails_with(&["--addr", "127.0.0.1:0", flag, value], 2, &format!("': expected {range}"));
    }
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(&["--addr", &addr], 1, &format!("cannot bind {addr}"));
    fails_with(&["--addr", &addr, "--mode", "blocking"], 1, &format!("cannot bind {addr}"));
}

/// SO_REUSEPORT lets our own loops share a port; it must not let a second, unrelated server join them
/// and take half the traffic.
#[test]
fn a_second_instance_cannot_share_a_served_port() {
    let first = util::start(&["--threads", "2"]);
    let addr = first.addr.to_string();
    for extra in [&["--threads", "2"][..], &["--workers", "2"], &["--threads", "2", "--workers", "2"]] {
        let mut args = vec!["--addr", addr.as_str()];
        args.extend_from_slice(extra);
        let (status, stderr) = util::run_within(&args, std::time::Duration::from_secs(10));
        assert_eq!(status.code(), Some(1), "{args:?} started on a served port: {status}, said: {stderr}");
        assert!(stderr.contains(&format!("cannot bind {addr}")), "{args:?} said: {stderr}");
        assert!(stderr.to_lowercase().contains("in use"), "{args:?} said: {stderr}");
    }
    for round in 0..8 {
        let data = testkit::payload(round, 1024);
        let echoed = testkit::echo_once(first.addr, &data, std::time::Duration::from_secs(5));
        assert!(echoed.is_ok_and(|e| e == data), "the first server stopped echoing");
    }
}

/// The check above must not mistake the connections a stopped server left in TIME_WAIT for a server.
#[test]
fn loops_restart_on_a_port_with_connections_in_time_wait() {
    use std::io::Read;
    let mut first = util::start(&["--threads", "2", "--idle-timeout", "0.1"]);
    let addr = first.addr;
    for _ in 0..3 {
        // The server closes first (idle timeout), so its side of each connection goes to TIME_WAIT.
        let mut peer = std::net::TcpStream::connect(addr).unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        assert_eq!(peer.read_to_end(&mut rest).expect("closed by the server"), 0);
    }
    first.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(first.wait_exit(std::time::Duration::from_secs(10)).is_some_and(|s| s.success()));
    let second =
        testkit::ServerProcess::start(util::command(&["--threads", "2", "--addr", &addr.to_string()]));
    assert_eq!(second.addr, addr);
}

/// Flags that only the reactor serves are bad input with `--mode blocking`: exit 2, as clap's own errors.
#[test]
fn reactor_flags_with_blocking_mode_are_refused_as_bad_input() {
    for (flag, value) in [("--threads", Some("2")), ("--workers", Some("2")), ("--udp", None)] {
        let mut args = vec!["--addr", "127.0.0.1:0", "--mode", "blocking", flag];
        args.extend(value);
        fails_with(&args, 2, flag);
        fails_with(&args, 2, "Usage:");
    }
}

/// Every flag that takes seconds refuses zero, negatives, NaN, infinity and absurd sizes as bad input
/// (exit 2), before the server starts.
#[test]
fn bad_durations_are_refused_as_bad_input() {
    for flag in ["--idle-timeout", "--shutdown-timeout", "--stats"] {
        for value in ["0", "-1", "nan", "NaN", "inf", "-inf", "1e300", "0.0000001", "soon", ""] {
            let says = format!("invalid value '{value}' for '{flag}");
            fails_with(&["--addr", "127.0.0.1:0", &format!("{flag}={value}")], 2, &says);
        }
        // A negative number as a separate word is taken as the value, not as an unknown flag.
        fails_with(&["--addr", "127.0.0.1:0", flag, "-1"], 2, &format!("invalid value '-1' for '{flag}"));
    }
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
        // The descriptor count (from /proc) goes into the failure message.
        #[cfg(target_os = "linux")]
        let fds = testkit::open_fds(server.pid()).to_string();
        #[cfg(not(target_os = "linux"))]
        let fds = "?";
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
