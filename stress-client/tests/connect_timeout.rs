//! `--connect-timeout` times the handshake, not the client's own loop: a connect the kernel completed
//! while the loop was busy with thousands of others is made, not timed out.

mod util;

use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};
use util::run;

/// Listeners sharing one port (SO_REUSEPORT) that never accept: their queues hold the connections the
/// kernel completed, `backlog` each.
fn listeners(count: usize, backlog: i32) -> (Vec<Socket>, SocketAddr) {
    let mut addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sockets = (0..count)
        .map(|_| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            socket.set_reuse_port(true).unwrap();
            socket.bind(&addr.into()).unwrap();
            socket.listen(backlog).unwrap();
            addr = socket.local_addr().unwrap().as_socket().unwrap();
            socket
        })
        .collect();
    (sockets, addr)
}

#[test]
fn connects_the_kernel_completed_are_not_counted_as_timed_out_while_the_loop_catches_up() {
    // On loopback a handshake completes inside connect(2) while an accept queue has room; 4 queues of
    // 4,096 hold 10,000. Opening them all at once takes the loop far longer than the 1 ms timeout, and
    // it reads their completions 4,096 events a turn: the rest are made but not yet seen.
    let (_listeners, addr) = listeners(4, 4096);
    let out =
        run(&format!("connect --target {addr} --connections 10000 --connect-timeout 1 --hold 0 --json"));
    let r = out.json();
    assert_eq!(r["errors"], serde_json::json!({}), "{}", r["errors"]);
    assert_eq!(r["established"], 10000, "{}", r["established"]);
    assert_eq!(out.code, Some(0), "{:?}", out.code);
}
