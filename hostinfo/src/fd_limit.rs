//! RLIMIT_NOFILE: how many descriptors (and so sockets) this process may hold, and raising it.
//!
//! Every connection is a descriptor, so this limit, not memory, is usually the first one a server or a
//! load generator meets (EMFILE). The soft limit may be raised to the hard one by anyone; the hard one
//! only with CAP_SYS_RESOURCE, and on Linux at most to `fs.nr_open`.

use std::fmt;
use std::io;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// This process's descriptor limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit: what `open`, `socket` and `accept` are held to now (EMFILE beyond it).
    pub soft: u64,
    /// The hard limit: the ceiling the soft limit may be raised to without privilege.
    pub hard: u64,
}

impl fmt::Display for FdLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "soft {} / hard {}", show(self.soft), show(self.hard))
    }
}

fn show(limit: u64) -> String {
    if limit == nix::libc::RLIM_INFINITY { "unlimited".to_owned() } else { limit.to_string() }
}

/// Reads RLIMIT_NOFILE.
pub fn fd_limit() -> io::Result<FdLimit> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    Ok(FdLimit { soft, hard })
}

/// Raises the soft RLIMIT_NOFILE to the hard one and returns `(before, after)`. Raising the hard limit
/// itself needs CAP_SYS_RESOURCE, which containers often withhold; past the hard limit the way on is
/// more processes.
pub fn raise_fd_limit() -> io::Result<(FdLimit, FdLimit)> {
    let before = fd_limit()?;
    if before.soft < before.hard {
        setrlimit(Resource::RLIMIT_NOFILE, before.hard, before.hard).map_err(io::Error::from)?;
    }
    Ok((before, fd_limit()?))
}

/// Raises both limits to `ceiling` where the hard limit is below it, and returns the limits now; it
/// never lowers either. Past the hard limit this needs CAP_SYS_RESOURCE (and `ceiling` at most
/// `fs.nr_open`): without it the call fails with EPERM and the limits stand.
pub fn raise_hard_fd_limit(ceiling: u64) -> io::Result<FdLimit> {
    let now = fd_limit()?;
    if now.hard < ceiling {
        setrlimit(Resource::RLIMIT_NOFILE, ceiling, ceiling).map_err(io::Error::from)?;
        return fd_limit();
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (before, after) = raise_fd_limit().unwrap();
        assert_eq!(after.soft, after.hard);
        assert_eq!(after.hard, before.hard);
    }

    #[test]
    fn raising_the_hard_limit_never_lowers_it() {
        let before = fd_limit().unwrap();
        let after = raise_hard_fd_limit(0).unwrap();
        assert_eq!(after.hard, before.hard);
        assert!(after.soft >= before.soft);
    }
}
