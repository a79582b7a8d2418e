//! Linux's view of its sockets from `/proc/net`: TCP socket states per port, a listener's accept queue,
//! listen-queue overflow counters, and the datagrams dropped at full UDP receive buffers.
//!
//! Everything here reads text files and never fails on their content: a field that is missing or
//! malformed (another kernel, a container without `/proc/net/netstat`) reads as absent, not as an error.
//!
//! Only Linux has these files. Elsewhere the readers answer "not available on this OS" (`None`, or an
//! [`io::ErrorKind::Unsupported`] error that says so) rather than zeros that would look measured, and
//! do not look for files of the same name (FreeBSD's linprocfs imitates some). The BSDs tell a
//! listener's queue only to the process that owns it (`SO_LISTENQLEN` on FreeBSD), and these readers
//! look at other processes' sockets, so they have no source there.

/// Where the files exist.
const HERE: bool = cfg!(target_os = "linux");

use std::fmt;
use std::io;

/// The TCP states as `/proc/net/tcp` numbers them (`include/net/tcp_states.h`), with their names.
const STATES: [(u8, &str); 11] = [
    (0x01, "ESTABLISHED"),
    (0x02, "SYN_SENT"),
    (0x03, "SYN_RECV"),
    (0x04, "FIN_WAIT1"),
    (0x05, "FIN_WAIT2"),
    (0x06, "TIME_WAIT"),
    (0x07, "CLOSE"),
    (0x08, "CLOSE_WAIT"),
    (0x09, "LAST_ACK"),
    (0x0A, "LISTEN"),
    (0x0B, "CLOSING"),
];

/// How many TCP sockets (IPv4 and IPv6) are in each state, counting those whose local or remote port
/// is the one asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpStates {
    counts: [u64; STATES.len()],
    /// Of the LISTEN sockets counted, the connections waiting in their accept queues (completed by the
    /// kernel, not yet accepted), summed.
    pub accept_queue: u64,
}

impl TcpStates {
    /// Sockets in the state named as the kernel names it (`"ESTABLISHED"`, `"TIME_WAIT"`); 0 for an
    /// unknown name.
    pub fn count(&self, state: &str) -> u64 {
        STATES.iter().position(|(_, name)| *name == state).map_or(0, |i| self.counts[i])
    }

    /// Every state with its count, in the kernel's order, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        STATES.iter().zip(self.counts.iter()).map(|((_, name), count)| (*name, *count))
    }

    /// All sockets counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Counts one socket in the state numbered `state` as the kernel numbers it; a listener's accept
    /// queue is added to [`TcpStates::accept_queue`]. For sock_diag's answers, which only Linux has.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn add(&mut self, state: u8, listener_queue: u64) {
        let Some(index) = STATES.iter().position(|(code, _)| *code == state) else { return };
        self.counts[index] += 1;
        if STATES[index].1 == "LISTEN" {
            self.accept_queue += listener_queue;
        }
    }

    /// Counts the lines of a `/proc/net/tcp{,6}` after its header, one at a time: with a million
    /// connections the file is hundreds of megabytes, which a reader must not hold at once.
    fn add_lines(&mut self, text: impl std::io::BufRead, port: u16) {
        text.lines().skip(1).map_while(Result::ok).for_each(|line| self.add_line(&line, port));
    }

    fn add_line(&mut self, line: &str, port: u16) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx_queue:rx_queue ...
        let (Some(local), Some(remote), Some(state), Some(queues)) =
            (fields.get(1), fields.get(2), fields.get(3), fields.get(4))
        else {
            return;
        };
        if port_of(local) != Some(port) && port_of(remote) != Some(port) {
            return;
        }
        let Ok(state) = u8::from_str_radix(state, 16) else { return };
        let Some(index) = STATES.iter().position(|(code, _)| *code == state) else { return };
        self.counts[index] += 1;
        if STATES[index].1 == "LISTEN" && port_of(local) == Some(port) {
            // For a listener the kernel prints its accept-queue length as rx_queue.
            let rx = queues.split(':').nth(1).and_then(|q| u64::from_str_radix(q, 16).ok());
            self.accept_queue += rx.unwrap_or(0);
        }
    }
}

impl fmt::Display for TcpStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, count) in self.iter().filter(|(_, count)| *count > 0) {
            write!(f, "{}{name} {count}", if first { "" } else { ", " })?;
            first = false;
        }
        if first {
            f.write_str("no sockets")?;
        }
        Ok(())
    }
}

/// Datagrams the kernel dropped for UDP sockets bound to local `port` because their receive buffers
/// were full, from the `drops` column of `/proc/net/udp` and `/proc/net/udp6`. The loop cannot see
/// these drops any other way: they happen before the datagram reaches the socket. Linux only: elsewhere
/// an [`io::ErrorKind::Unsupported`] error.
pub fn udp_drops(port: u16) -> io::Result<u64> {
    udp_drops_on(&[port])
}

/// [`udp_drops`] summed over the sockets bound to any of `ports` (one read of each file however many
/// ports: a client with many sockets asks once).
pub fn udp_drops_on(ports: &[u16]) -> io::Result<u64> {
    if !HERE {
        return Err(crate::not_available(&format!("UDP drops on ports {ports:?} (/proc/net/udp)")));
    }
    let mut drops = 0;
    let mut read_any = None;
    for path in ["/proc/net/udp", "/proc/net/udp6"] {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                read_any = Some(Ok(()));
                drops += drops_in(&text, ports);
            }
            Err(e) => {
                read_any.get_or_insert(Err(e));
            }
        }
    }
    read_any.unwrap_or(Ok(())).map(|()| drops)
}

/// The `drops` column (the last) of the lines of a `/proc/net/udp` text whose local port is one of
/// `ports`, summed.
fn drops_in(text: &str, ports: &[u16]) -> u64 {
    let mut drops = 0;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1).and_then(|f| port_of(f)).is_some_and(|p| ports.contains(&p)) {
            drops += fields.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    drops
}

/// The port of an `ADDRESS:PORT` field of `/proc/net/tcp` (both in hex).
fn port_of(field: &str) -> Option<u16> {
    u16::from_str_radix(field.rsplit(':').next()?, 16).ok()
}

/// Counts the TCP sockets whose local or remote port is `port`: from the kernel's sock_diag interface
/// where it answers (the kernel filters by port, so the cost follows the port, not the machine's
/// sockets: `/proc/net/tcp` lists them all, hundreds of megabytes at a million connections), else from
/// `/proc/net/tcp` and `/proc/net/tcp6`. Fails only when neither can be read, and on every OS but
/// Linux ([`io::ErrorKind::Unsupported`]).
pub fn tcp_states(port: u16) -> io::Result<TcpStates> {
    crate::sock_diag::port_sockets(port).map(|(states, _)| states).or_else(|_| tcp_states_from_proc(port))
}

/// [`tcp_states`] from `/proc/net/tcp{,6}` alone.
pub(crate) fn tcp_states_from_proc(port: u16) -> io::Result<TcpStates> {
    if !HERE {
        return Err(crate::not_available(&format!("TCP socket states on port {port} (/proc/net/tcp)")));
    }
    let mut states = TcpStates::default();
    let mut read_any = None;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::File::open(path) {
            Ok(file) => {
                read_any = Some(Ok(()));
                states.add_lines(std::io::BufReader::new(file), port);
            }
            Err(e) => {
                read_any.get_or_insert(Err(e));
            }
        }
    }
    read_any.unwrap_or(Ok(())).map(|()| states)
}

/// The kernel's listen-queue counters from `/proc/net/netstat` (`TcpExt`), for the whole machine (or
/// network namespace). A rise during a run means SYNs or completed handshakes were dropped because an
/// accept queue was full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenCounters {
    /// Times a completed connection found its listener's accept queue full.
    pub overflows: u64,
    /// Connection requests dropped at a listener, for any reason (overflows included).
    pub drops: u64,
}

/// Reads [`ListenCounters`]; `None` where `/proc/net/netstat` or its fields are missing, and on every
/// OS but Linux.
pub fn listen_counters() -> Option<ListenCounters> {
    if !HERE {
        return None;
    }
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines();
    // The file pairs a header line of names with a line of values, both starting "TcpExt:".
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let pairs: Vec<(&str, u64)> = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .filter_map(|(n, v)| Some((n, v.parse().ok()?)))
            .collect();
        let find = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        return Some(ListenCounters { overflows: find("ListenOverflows")?, drops: find("ListenDrops")? });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_both_ends_and_reads_the_accept_queue() {
        let mut states = TcpStates::default();
        // A listener on 127.0.0.1:8080 with 3 queued, a client to it, and an unrelated socket.
        states.add_line("0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000 0", 8080);
        states.add_line("1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 0", 8080);
        states.add_line("2: 0100007F:9C41 0100007F:0050 06 00000000:00000000 00:00000000 00000000 0", 8080);
        states.add_line("garbage", 8080);
        assert_eq!(states.count("LISTEN"), 1);
        assert_eq!(states.count("ESTABLISHED"), 1);
        assert_eq!(states.count("TIME_WAIT"), 0);
        assert_eq!(states.accept_queue, 3);
        assert_eq!(states.to_string(), "ESTABLISHED 1, LISTEN 1");
    }

    #[test]
    fn sums_the_drops_of_the_ports_asked_for() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                    4877: 0100007F:D18F 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 46929 2 0000000053d0e7fb 12\n\
                    5022: 0100007F:9220 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 46928 2 0000000091cc5946 5\n\
                    5023: 0100007F:9221 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 46928 2 0000000091cc5946 100\n";
        assert_eq!(drops_in(text, &[0xD18F, 0x9220]), 17);
        assert_eq!(drops_in(text, &[1]), 0);
    }

    #[test]
    fn a_file_is_counted_line_by_line_after_its_header() {
        let text = "  sl  local_address rem_address   st\n\
                    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0\n\
                    1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 0\n";
        let mut states = TcpStates::default();
        states.add_lines(text.as_bytes(), 8080);
        assert_eq!((states.count("LISTEN"), states.count("ESTABLISHED")), (1, 1));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_a_listener_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(tcp_states(port).unwrap().count("LISTEN"), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_netstat() {
        assert!(listen_counters().is_some());
    }
}
