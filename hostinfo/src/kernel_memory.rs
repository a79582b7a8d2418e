//! What the kernel itself spends on sockets: slab memory from `/proc/meminfo` (the socket, inode, file
//! and epoll objects of every connection live there) and the TCP line of `/proc/net/sockstat` (sockets
//! in use, orphans, TIME_WAIT, and the pages of socket buffers that `net.ipv4.tcp_mem` bounds). A
//! server's resident memory leaves all of this out, and at hundreds of thousands of connections it is
//! most of the cost.
//!
//! Linux only, compiled there alone (as [`process`](crate::process) is): only Linux benches read it.

/// Slab memory from `/proc/meminfo`, KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slab {
    /// `Slab:` all of it.
    pub total_kib: u64,
    /// `SUnreclaim:` the part the kernel cannot drop under pressure (sockets are in it).
    pub unreclaimable_kib: u64,
}

/// The `TCP:` line of `/proc/net/sockstat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSockstat {
    /// `inuse`: TCP sockets in use (both ends of a loopback connection count).
    pub inuse: u64,
    /// `orphan`: closed by their process, not yet by the protocol.
    pub orphan: u64,
    /// `tw`: in TIME_WAIT.
    pub time_wait: u64,
    /// `alloc`: allocated sockets.
    pub alloc: u64,
    /// `mem`: pages of socket buffers, the figure `net.ipv4.tcp_mem` bounds.
    pub mem_pages: u64,
}

/// Reads [`Slab`]; `None` where `/proc/meminfo` or its fields are missing.
pub fn slab() -> Option<Slab> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// Reads [`TcpSockstat`]; `None` where `/proc/net/sockstat` or its TCP line is missing.
pub fn tcp_sockstat() -> Option<TcpSockstat> {
    parse_sockstat(&std::fs::read_to_string("/proc/net/sockstat").ok()?)
}

fn parse_meminfo(text: &str) -> Option<Slab> {
    let field = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse::<u64>().ok()
    };
    Some(Slab { total_kib: field("Slab:")?, unreclaimable_kib: field("SUnreclaim:")? })
}

fn parse_sockstat(text: &str) -> Option<TcpSockstat> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| {
        let at = words.iter().position(|w| *w == name)?;
        words.get(at + 1)?.parse::<u64>().ok()
    };
    Some(TcpSockstat {
        inuse: field("inuse")?,
        orphan: field("orphan").unwrap_or(0),
        time_wait: field("tw").unwrap_or(0),
        alloc: field("alloc").unwrap_or(0),
        mem_pages: field("mem")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_gives_slab_and_its_unreclaimable_part() {
        let text = "MemTotal:       24576000 kB\nSlab:             343260 kB\nSReclaimable:     296072 kB\n\
                    SUnreclaim:        47188 kB\n";
        assert_eq!(parse_meminfo(text), Some(Slab { total_kib: 343_260, unreclaimable_kib: 47_188 }));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn sockstat_gives_the_tcp_line() {
        let text =
            "sockets: used 38\nTCP: inuse 200017 orphan 3 tw 41 alloc 200018 mem 118\nUDP: inuse 7 mem 0\n";
        let tcp = parse_sockstat(text).unwrap();
        assert_eq!(
            tcp,
            TcpSockstat { inuse: 200_017, orphan: 3, time_wait: 41, alloc: 200_018, mem_pages: 118 }
        );
        assert_eq!(parse_sockstat("UDP: inuse 7 mem 0\n"), None);
    }
}
