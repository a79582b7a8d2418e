//! A listener's backlog, which `/proc/net/tcp` does not print: for a LISTEN socket its `rx_queue` is the
//! accept queue, but its `tx_queue` is the unsent-bytes count of a connection (always 0 for a listener),
//! not the backlog. The kernel tells the backlog through its socket-diagnostics netlink interface
//! (`NETLINK_SOCK_DIAG`, what `ss -lnt` shows as Send-Q): for a listener, `idiag_rqueue` is the accept
//! queue and `idiag_wqueue` the backlog it was given (already capped at `somaxconn`).
//!
//! One request per address family, one dump of the listeners back; nothing is held open. Linux only.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
    #[cfg(target_os = "linux")]
    {
        let mut all = linux::dump(linux::AF_INET)?;
        // A kernel without IPv6 refuses the second family; the IPv4 listeners still stand.
        all.extend(linux::dump(linux::AF_INET6).unwrap_or_default());
        Ok(all.into_iter().filter(|q| q.local.port() == port).collect())
    }
    #[cfg(not(target_os = "linux"))]
    Err(crate::not_available(&format!("the backlog of listeners on port {port} (sock_diag)")))
}

/// Bytes of a netlink message header.
const NLMSG_HEADER: usize = 16;
/// Bytes of `struct inet_diag_msg`, the answer's body.
const DIAG_MSG: usize = 72;
/// `NLMSG_ERROR` and `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// Reads the listeners out of one datagram of a dump: `Ok(true)` when the dump is done.
fn parse(datagram: &[u8], into: &mut Vec<ListenQueue>) -> io::Result<bool> {
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
fn parse_msg(body: &[u8]) -> Option<ListenQueue> {
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
    Some(ListenQueue { local: SocketAddr::new(ip, port), queued: word(56), backlog: word(60) })
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, socket};

    use super::{ListenQueue, NLMSG_HEADER, parse};

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

    /// Every TCP listener of one address family.
    pub fn dump(family: u8) -> io::Result<Vec<ListenQueue>> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        let mut request = Vec::with_capacity(NLMSG_HEADER + REQ);
        request.extend(((NLMSG_HEADER + REQ) as u32).to_ne_bytes());
        request.extend(REQUEST.to_ne_bytes());
        request.extend(FLAGS.to_ne_bytes());
        request.extend(1u32.to_ne_bytes()); // sequence
        request.extend(0u32.to_ne_bytes()); // port id: the kernel's
        request.extend([family, 6, 0, 0]); // family, IPPROTO_TCP, no extensions, padding
        request.extend((1u32 << 10).to_ne_bytes()); // states: LISTEN (10) only
        request.resize(NLMSG_HEADER + REQ, 0); // any socket id
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
        let mut body = vec![2, 10, 0, 0, 0x1F, 0x90, 0, 0, 127, 0, 0, 1];
        body.resize(56, 0);
        body.extend(3u32.to_ne_bytes());
        body.extend(128u32.to_ne_bytes());
        body.resize(DIAG_MSG, 0);
        let mut datagram = message(20, &body);
        datagram.extend(message(NLMSG_DONE, &[0; 4]));
        let mut found = Vec::new();
        assert!(parse(&datagram, &mut found).unwrap());
        assert_eq!(
            found,
            [ListenQueue { local: "127.0.0.1:8080".parse().unwrap(), queued: 3, backlog: 128 }]
        );
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
    }
}
