//! The process serving the target, when it runs on this machine: found through `/proc` (the listening
//! socket's inode in `/proc/net/tcp{,6}`, then the process holding it in `/proc/PID/fd`), with its
//! descriptor limit (`/proc/PID/limits`) and, sampled while a run holds its connections, its resident
//! memory, threads and descriptors (`/proc/PID/status`, `/proc/PID/fd`). A limit the ramp meets may be
//! the server's rather than the client's: this is how a report can tell.
//!
//! Every reader here is Linux `/proc` and nothing else, so that the module can move as one piece.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Descriptors short of its RLIMIT_NOFILE at which a server counts as having run out of them.
const NEAR_LIMIT: u64 = 16;

/// How often a run samples the server while it lasts.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The server behind a target on this machine, as a report carries it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetServer {
    /// The processes holding a listening socket on the target (several for `echo-server --workers`);
    /// empty when none could be found.
    pub pids: Vec<u32>,
    /// The first one's name (`/proc/PID/comm`).
    pub name: String,
    /// Their RLIMIT_NOFILE soft limits, added up (`null`: unknown): about as many connections as they
    /// can hold.
    pub nofile_soft: Option<u64>,
    /// Their RLIMIT_NOFILE hard limits, added up.
    pub nofile_hard: Option<u64>,
    /// Resident memory, KiB, added up over the processes, in the sample with the most descriptors.
    pub rss_kib: Option<u64>,
    /// Threads, added up, in that sample.
    pub threads: Option<u64>,
    /// Open descriptors, added up, in that sample: the connections held, plus a few.
    pub fds: Option<u64>,
    /// The longest accept queue seen on the listening sockets: connections the kernel completed and the
    /// server had not accepted yet.
    pub accept_queue: Option<u64>,
    /// Why the process or some of its figures are unknown, if they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

impl TargetServer {
    /// The server behind `target` if `target` is an address of this machine (`None` otherwise): the
    /// processes listening there and their limits, or why they could not be found.
    pub fn find(target: SocketAddr) -> Option<TargetServer> {
        if !is_local(target.ip()) {
            return None;
        }
        let listeners = listening_inodes(target);
        if listeners.is_empty() {
            return Some(TargetServer::unknown(format!("no socket listens on {target} in /proc/net/tcp")));
        }
        let pids = owners(&listeners);
        if pids.is_empty() {
            return Some(TargetServer::unknown(format!(
                "no process readable here holds the socket listening on {target} (it may belong to \
                 another user, or to another namespace)"
            )));
        }
        let limits: Vec<Option<(u64, u64)>> = pids.iter().map(|&pid| nofile(pid)).collect();
        let sum = |pick: fn((u64, u64)) -> u64| {
            limits.iter().try_fold(0u64, |total, l| l.map(|l| total.saturating_add(pick(l))))
        };
        let server = TargetServer {
            name: fs::read_to_string(format!("/proc/{}/comm", pids[0])).unwrap_or_default().trim().to_owned(),
            nofile_soft: sum(|(soft, _)| soft),
            nofile_hard: sum(|(_, hard)| hard),
            unknown: limits
                .iter()
                .any(Option::is_none)
                .then(|| "a server process's limits are unreadable".into()),
            pids,
            ..TargetServer::default()
        };
        Some(server)
    }

    /// The process `pid`, given rather than found: its name and limits, or an error if there is no
    /// such process (on Linux; elsewhere it is taken on trust, and its figures are unknown).
    pub fn of_pid(pid: u32) -> std::io::Result<TargetServer> {
        if cfg!(target_os = "linux") && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no process {pid}")));
        }
        let limits = nofile(pid);
        Ok(TargetServer {
            pids: vec![pid],
            name: fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned(),
            nofile_soft: limits.map(|(soft, _)| soft),
            nofile_hard: limits.map(|(_, hard)| hard),
            unknown: limits.is_none().then(|| "the process's limits are unreadable".into()),
            ..TargetServer::default()
        })
    }

    fn unknown(why: String) -> TargetServer {
        TargetServer { unknown: Some(why), ..TargetServer::default() }
    }

    /// Whether the processes were found.
    pub fn found(&self) -> bool {
        !self.pids.is_empty()
    }

    /// Whether the server, at its busiest, held about as many descriptors as its limit allows.
    pub fn ran_out_of_descriptors(&self) -> bool {
        matches!((self.nofile_soft, self.fds), (Some(soft), Some(fds)) if fds + NEAR_LIMIT >= soft)
    }

    /// Who the server is, in a few words: `echo-server, pid 1234`.
    pub fn who(&self) -> String {
        match self.pids.as_slice() {
            [pid] => format!("{}, pid {pid}", self.name),
            pids => format!(
                "pids {} ({})",
                pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
                self.name
            ),
        }
    }

    /// Samples memory, threads, descriptors and the accept queue now, keeping the sample with the most
    /// descriptors and the longest accept queue.
    fn sample(&mut self, target: SocketAddr) {
        let mut total = (0u64, 0u64, 0u64);
        for &pid in &self.pids {
            let Some((rss, threads)) = status(pid) else { return };
            let Some(fds) = count_fds(pid) else { return };
            total = (total.0 + rss, total.1 + threads, total.2 + fds);
        }
        if self.fds.is_none_or(|most| total.2 >= most) {
            (self.rss_kib, self.threads, self.fds) = (Some(total.0), Some(total.1), Some(total.2));
        }
        let queued = accept_queue(target);
        self.accept_queue = self.accept_queue.max(queued);
    }
}

/// Samples a server while a run lasts, at most every [`SAMPLE_EVERY`] (see [`interval`]), from the threads that already
/// wait on the run (a thread of its own would show in the client's thread count).
#[derive(Debug)]
pub struct Sampler {
    server: TargetServer,
    target: SocketAddr,
    last: Option<Instant>,
    /// How long the last sample took.
    took: Duration,
}

impl Sampler {
    /// Samples `server`, found for `target`.
    pub fn new(server: TargetServer, target: SocketAddr) -> Sampler {
        Sampler { server, target, last: None, took: Duration::ZERO }
    }

    /// Samples if the [`interval`] has passed since the last sample.
    pub fn poll(&mut self) {
        if self.last.is_none_or(|at| at.elapsed() >= interval(self.took)) {
            let now = Instant::now();
            self.last = Some(now);
            self.server.sample(self.target);
            self.took = now.elapsed();
        }
    }

    /// How long until the next sample is due.
    pub fn due_in(&self) -> Duration {
        self.last.map_or(Duration::ZERO, |at| interval(self.took).saturating_sub(at.elapsed()))
    }

    /// The server with its busiest sample.
    pub fn finish(self) -> TargetServer {
        self.server
    }
}

/// The time between samples, of which sampling takes at most a tenth: at least [`SAMPLE_EVERY`], longer
/// when a sample took long (counting the descriptors of a server holding a million connections takes
/// a large part of a second, CPU the run itself needs).
fn interval(took: Duration) -> Duration {
    SAMPLE_EVERY.max(took.saturating_mul(10))
}

/// An address is this machine's when a socket can be bound to it.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// One socket of `/proc/net/tcp{,6}`: its local address, state and inode, and its receive queue (for a
/// listener: its accept queue).
#[derive(Debug, PartialEq, Eq)]
struct ProcSocket {
    local: SocketAddr,
    listening: bool,
    queued: u64,
    inode: u64,
}

/// Parses a line of `/proc/net/tcp` or `/proc/net/tcp6` (`None` for the header or a malformed line).
fn parse_line(line: &str) -> Option<ProcSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (address, port) = fields.get(1)?.split_once(':')?;
    let ip = parse_ip(address)?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let queued = u64::from_str_radix(fields.get(4)?.split_once(':')?.1, 16).ok()?;
    Some(ProcSocket {
        local: SocketAddr::new(ip, port),
        listening: *fields.get(3)? == "0A",
        queued,
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// An address as `/proc/net/tcp{,6}` prints it: 32-bit words in hex, each in the machine's byte order.
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<[u8; 4]>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok().map(u32::to_ne_bytes))
        .collect();
    match (hex.len(), words?.concat()) {
        (8, bytes) => Some(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
        (32, bytes) => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?))),
        _ => None,
    }
}

/// The listening sockets of this machine (or network namespace). The kernel lists them first in
/// `/proc/net/tcp{,6}`, before the connections (which can number in the hundreds of thousands, and take
/// the kernel a good part of a second to print): reading stops at the first socket that does not
/// listen, so that sampling stays cheap.
fn listening_sockets() -> Vec<ProcSocket> {
    let files = ["/proc/net/tcp", "/proc/net/tcp6"].into_iter().filter_map(|path| fs::File::open(path).ok());
    files.flat_map(|file| read_listening(BufReader::new(file))).collect()
}

/// The listening sockets at the head of one `/proc/net/tcp{,6}`, read no further than the first line
/// that is not one.
fn read_listening(text: impl BufRead) -> Vec<ProcSocket> {
    let lines = text.lines().skip(1).map_while(Result::ok);
    lines.map_while(|line| parse_line(&line).filter(|s| s.listening)).collect()
}

/// Whether a socket listening on `local` takes connections to `target`.
fn serves(local: SocketAddr, target: SocketAddr) -> bool {
    let ip = match local.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    local.port() == target.port() && (ip.is_unspecified() || ip == target.ip())
}

/// Inodes of the sockets listening on `target`.
fn listening_inodes(target: SocketAddr) -> BTreeSet<u64> {
    listening_sockets().into_iter().filter(|s| serves(s.local, target)).map(|s| s.inode).collect()
}

/// The longest accept queue of the sockets listening on `target`.
fn accept_queue(target: SocketAddr) -> Option<u64> {
    listening_sockets().into_iter().filter(|s| serves(s.local, target)).map(|s| s.queued).max()
}

/// The processes (other than this one) with a descriptor open on one of `inodes`.
fn owners(inodes: &BTreeSet<u64>) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    pids.filter(|&pid| pid != me && holds_any(pid, inodes)).collect()
}

fn holds_any(pid: u32, inodes: &BTreeSet<u64>) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok()).any(|link| {
        let link = link.to_string_lossy();
        let inode = link.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']'));
        inode.and_then(|i| i.parse().ok()).is_some_and(|i| inodes.contains(&i))
    })
}

/// A process's RLIMIT_NOFILE (soft, hard) from `/proc/PID/limits` ("unlimited" as `u64::MAX`).
fn nofile(pid: u32) -> Option<(u64, u64)> {
    parse_nofile(&fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

fn parse_nofile(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| match v {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    });
    Some((values.next()??, values.next()??))
}

/// A process's resident memory (KiB) and threads, from `/proc/PID/status`.
fn status(pid: u32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse::<u64>().ok()
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// A process's open descriptors.
fn count_fds(pid: u32) -> Option<u64> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines_give_address_state_queue_and_inode() {
        let v4 = "   0: 0100007F:1EC6 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 4242 1 0";
        let socket = parse_line(v4).unwrap();
        assert_eq!(
            socket,
            ProcSocket { local: "127.0.0.1:7878".parse().unwrap(), listening: true, queued: 3, inode: 4242 }
        );
        let v6 = "   1: 00000000000000000000000000000000:1EC6 00000000000000000000000000000000:0000 0A \
                  00000000:00000000 00:00000000 00000000  1000        0 77 1 0";
        assert_eq!(parse_line(v6).unwrap().local, "[::]:7878".parse().unwrap());
        assert_eq!(parse_line("  sl  local_address rem_address   st tx_queue rx_queue"), None);
    }

    /// The kernel lists listeners before connections; past the first connection nothing is read, so
    /// that a sample costs the listeners, not the machine's hundreds of thousands of TIME_WAITs.
    #[test]
    fn reading_the_listeners_stops_at_the_first_connection() {
        let listener = |inode| {
            format!(
                "   0: 0100007F:1EC6 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 {inode} 1 0"
            )
        };
        let text = [
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode".into(),
            listener(1),
            listener(2),
            "   2: 0100007F:1EC6 0100007F:9C40 06 00000000:00000000 03:00000F9B 00000000 0 0 0 3 0".into(),
            listener(3),
        ]
        .join("\n");
        let inodes: Vec<u64> = read_listening(text.as_bytes()).iter().map(|s| s.inode).collect();
        assert_eq!(inodes, [1, 2]);
    }

    #[test]
    fn a_listener_on_any_address_or_the_target_serves_it() {
        let target: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        for local in ["127.0.0.1:7878", "0.0.0.0:7878", "[::]:7878", "[::ffff:127.0.0.1]:7878"] {
            assert!(serves(local.parse().unwrap(), target), "{local}");
        }
        for local in ["127.0.0.2:7878", "127.0.0.1:7879"] {
            assert!(!serves(local.parse().unwrap(), target), "{local}");
        }
    }

    #[test]
    fn a_slow_sample_is_taken_less_often() {
        assert_eq!(interval(Duration::from_millis(1)), SAMPLE_EVERY);
        assert_eq!(interval(Duration::from_millis(300)), Duration::from_secs(3));
    }

    #[test]
    fn the_descriptor_limit_is_read_from_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63434                63434                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile(limits), Some((1024, 524288)));
        assert_eq!(parse_nofile("Max open files  unlimited unlimited files"), Some((u64::MAX, u64::MAX)));
    }

    /// The readers find this test's own listener and this process's figures (a run never takes itself
    /// for the server: finding another process is the integration tests' part).
    #[test]
    fn the_process_listening_on_a_local_target_is_found_with_its_limits() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let inodes = listening_inodes(target);
        assert_eq!(inodes.len(), 1, "{target}");
        assert!(holds_any(std::process::id(), &inodes));
        let (soft, hard) = nofile(std::process::id()).unwrap();
        assert!(soft > 0 && soft <= hard);
        let (rss, threads) = status(std::process::id()).unwrap();
        assert!(rss > 0 && threads >= 1);
        assert!(count_fds(std::process::id()).unwrap() >= 3);
        assert_eq!(TargetServer::find("192.0.2.1:80".parse().unwrap()), None, "not this machine's");
    }
}
