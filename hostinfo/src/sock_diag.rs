//! One port's TCP sockets as the kernel's socket-diagnostics netlink interface (`NETLINK_SOCK_DIAG`,
//! what `ss` reads) tells them, for two things `/proc/net/tcp` cannot give:
//!
//! - a listener's backlog: for a LISTEN socket `/proc/net/tcp` prints the accept queue as `rx_queue`,
//!   but its `tx_queue` is the unsent-bytes count of a connection (always 0 for a listener), not the
//!   backlog. Here, for a listener, `idiag_rqueue` is the accept queue and `idiag_wqueue` the backlog it
//!   was given (already capped at `somaxconn`), as `ss -lnt` shows them;
//! - a cost that follows the port, not the machine: the kernel filters the sockets by port before
//!   answering, where `/proc/net/tcp` formats every socket of the machine as text (seconds, with
//!   hundreds of thousands of TIME_WAITs), so that watching a port every 250 ms stays cheap.
//!
//! One request per address family, one dump back; nothing is held open. Linux only (the parser is
//! compiled everywhere, so that its tests run everywhere).
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::TcpStates;

/// One listening socket's queue as the kernel keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenQueue {
    /// The address it listens on.
    pub local: SocketAddr,
    /// Connections completed by the kernel and not accepted yet.
    pub queued: u64,
    /// The backlog it listens with (the `listen` argument, capped at `somaxconn`): the queue holds at
    /// most one more than this.
    pub backlog: u64,
}

/// The TCP listeners on local `port` (IPv4 and IPv6) with their accept queues and backlogs. Linux
/// only: elsewhere an [`io::ErrorKind::Unsupported`] error.
pub fn listen_queues(port: u16) -> io::Result<Vec<ListenQueue>> {
    Ok(port_sockets(port)?.1)
}

/// The TCP sockets (IPv4 and IPv6) whose local or remote port is `port`, counted by state as
/// [`crate::tcp_states`] counts them, with the listeners on `port` and their queues. Linux only:
/// elsewhere an [`io::ErrorKind::Unsupported`] error.
pub fn port_sockets(port: u16) -> io::Result<(TcpStates, Vec<ListenQueue>)> {
    #[cfg(target_os = "linux")]
    {
        let mut sockets = linux::dump(linux::AF_INET, port)?;
        // A kernel without IPv6 refuses the second family; the IPv4 sockets still stand.
        sockets.extend(linux::dump(linux::AF_INET6, port).unwrap_or_default());
        let mut states = TcpStates::default();
        let mut listeners = Vec::new();
        for socket in sockets {
            let listening = socket.state == LISTEN && socket.local.port() == port;
            states.add(socket.state, if listening { socket.rqueue } else { 0 });
            if listening {
                listeners.push(ListenQueue {
                    local: socket.local,
                    queued: socket.rqueue,
                    backlog: socket.wqueue,
                });
            }
        }
        Ok((states, listeners))
    }
    #[cfg(not(target_os = "linux"))]
    Err(crate::not_available(&format!("the TCP sockets and listeners of port {port} (sock_diag)")))
}

/// The kernel's number for LISTEN.
const LISTEN: u8 = 10;

/// One socket of a dump: state, local address, and the two queues (for a listener: accept queue and
/// backlog).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DiagSocket {
    state: u8,
    local: SocketAddr,
    rqueue: u64,
    wqueue: u64,
}

/// Bytes of a netlink message header.
const NLMSG_HEADER: usize = 16;
/// Bytes of `struct inet_diag_msg`, the answer's body.
const DIAG_MSG: usize = 72;
/// `NLMSG_ERROR` and `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// Reads the sockets out of one datagram of a dump: `Ok(true)` when the dump is done.
fn parse(datagram: &[u8], into: &mut Vec<DiagSocket>) -> io::Result<bool> {
    let mut rest = datagram;
    while rest.len() >= NLMSG_HEADER {
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
        if len < NLMSG_HEADER || len > rest.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a truncated sock_diag message"));
        }
        let body = &rest[NLMSG_HEADER..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = body.get(0..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                return Err(io::Error::from_raw_os_error(-code));
            }
            _ => into.extend(parse_msg(body)),
        }
        // Messages are aligned to 4 bytes.
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Ok(false)
}

/// One `struct inet_diag_msg`: family, state, timer, retrans, the socket id (ports big-endian, then
/// addresses), expires, rqueue, wqueue, uid, inode.
fn parse_msg(body: &[u8]) -> Option<DiagSocket> {
    if body.len() < DIAG_MSG {
        return None;
    }
    let port = u16::from_be_bytes([body[4], body[5]]);
    let ip = match body[0] {
        2 => IpAddr::V4(Ipv4Addr::new(body[8], body[9], body[10], body[11])),
        10 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&body[8..24]).ok()?)),
        _ => return None,
    };
    let word = |at: usize| u64::from(u32::from_ne_bytes(body[at..at + 4].try_into().expect("4 bytes")));
    Some(DiagSocket { state: body[1], local: SocketAddr::new(ip, port), rqueue: word(56), wqueue: word(60) })
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, socket};

    use super::{DiagSocket, NLMSG_HEADER, parse};

    pub const AF_INET: u8 = 2;
    pub const AF_INET6: u8 = 10;
    /// `SOCK_DIAG_BY_FAMILY`.
    const REQUEST: u16 = 20;
    /// `NLM_F_REQUEST | NLM_F_DUMP`.
    const FLAGS: u16 = 0x1 | 0x300;
    /// Bytes of `struct inet_diag_req_v2`.
    const REQ: usize = 56;
    /// Datagrams one dump may take before it is given up on: a dump of listeners only is a few.
    const MOST_DATAGRAMS: usize = 10_000;

    /// Every TCP socket of one address family whose local or remote port is `port`.
    pub fn dump(family: u8, port: u16) -> io::Result<Vec<DiagSocket>> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        let filter = filter(port);
        let length = NLMSG_HEADER + REQ + filter.len();
        let mut request = Vec::with_capacity(length);
        request.extend((length as u32).to_ne_bytes());
        request.extend(REQUEST.to_ne_bytes());
        request.extend(FLAGS.to_ne_bytes());
        request.extend(1u32.to_ne_bytes()); // sequence
        request.extend(0u32.to_ne_bytes()); // port id: the kernel's
        request.extend([family, 6, 0, 0]); // family, IPPROTO_TCP, no extensions, padding
        request.extend(u32::MAX.to_ne_bytes()); // every state
        request.resize(NLMSG_HEADER + REQ, 0); // any socket id
        request.extend(filter);
        send(fd.as_raw_fd(), &request, MsgFlags::empty())?;
        let mut found = Vec::new();
        let mut buffer = vec![0u8; 32 * 1024];
        for _ in 0..MOST_DATAGRAMS {
            let n = recv(fd.as_raw_fd(), &mut buffer, MsgFlags::empty())?;
            if n == 0 || parse(&buffer[..n], &mut found)? {
                return Ok(found);
            }
        }
        Err(io::Error::other("the sock_diag dump did not end"))
    }

    /// The `INET_DIAG_REQ_BYTECODE` attribute that keeps the sockets whose local or remote port is
    /// `port`. Each op is `{code, yes, no}`, jumps in bytes from the op; a port test is followed by an
    /// op whose `no` holds the port. Reaching the end exactly accepts, 4 bytes past it rejects, and the
    /// kernel requires every op to lie on the chain of `yes` jumps: hence `ss`'s shape for "A or B",
    /// "A (yes: on to JMP; no: to B), JMP (always on to the end), B (yes: the end; no: reject)".
    fn filter(port: u16) -> Vec<u8> {
        /// `INET_DIAG_BC_JMP`, `INET_DIAG_BC_S_EQ`, `INET_DIAG_BC_D_EQ`, and the attribute's type.
        const JMP: u8 = 1;
        const S_EQ: u8 = 11;
        const D_EQ: u8 = 12;
        const BYTECODE: u16 = 1;
        let op = |code: u8, yes: u8, no: u16| {
            let mut op = vec![code, yes];
            op.extend(no.to_ne_bytes());
            op
        };
        let program =
            [op(S_EQ, 8, 12), op(0, 0, port), op(JMP, 4, 12), op(D_EQ, 8, 12), op(0, 0, port)].concat();
        let mut attribute = ((4 + program.len()) as u16).to_ne_bytes().to_vec();
        attribute.extend(BYTECODE.to_ne_bytes());
        attribute.extend(program);
        attribute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((NLMSG_HEADER + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0; 10]);
        m.extend(body);
        m
    }

    #[test]
    fn a_dump_gives_address_queue_and_backlog() {
        let mut body = vec![2, LISTEN, 0, 0, 0x1F, 0x90, 0, 0, 127, 0, 0, 1];
        body.resize(56, 0);
        body.extend(3u32.to_ne_bytes());
        body.extend(128u32.to_ne_bytes());
        body.resize(DIAG_MSG, 0);
        let mut datagram = message(20, &body);
        datagram.extend(message(NLMSG_DONE, &[0; 4]));
        let mut found = Vec::new();
        assert!(parse(&datagram, &mut found).unwrap());
        let local = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(found, [DiagSocket { state: LISTEN, local, rqueue: 3, wqueue: 128 }]);
        let error = message(NLMSG_ERROR, &(-13i32).to_ne_bytes());
        assert_eq!(parse(&error, &mut found).unwrap_err().raw_os_error(), Some(13));
        assert!(parse(&datagram[..20], &mut found).is_err(), "truncated");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_the_backlog_of_a_listener_of_this_process() {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
        socket.listen(7).unwrap();
        let local = socket.local_addr().unwrap().as_socket().unwrap();
        let _client = std::net::TcpStream::connect(local).unwrap();
        // The handshake's last ACK may still be on its way through loopback: wait for it, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut queues = listen_queues(local.port()).unwrap();
        while queues.first().is_some_and(|q| q.queued == 0) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
            queues = listen_queues(local.port()).unwrap();
        }
        assert_eq!(queues, [ListenQueue { local, queued: 1, backlog: 7 }]);
        // Both ends of the connection, and the listener; not another port's listener.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (states, _) = port_sockets(local.port()).unwrap();
        assert_eq!(port_sockets(other.local_addr().unwrap().port()).unwrap().0.count("LISTEN"), 1);
        assert_eq!(states, crate::proc_net::tcp_states_from_proc(local.port()).unwrap());
        assert_eq!((states.count("ESTABLISHED"), states.count("LISTEN"), states.accept_queue), (2, 1, 1));
    }
}
