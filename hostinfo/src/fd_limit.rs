//! RLIMIT_NOFILE: how many descriptors (and so sockets) this process may hold, and raising it.
//!
//! Every connection is a descriptor, so this limit, not memory, is usually the first one a server or a
//! load generator meets (EMFILE). The soft limit may be raised to the hard one by anyone; the hard one
//! only with CAP_SYS_RESOURCE, and on Linux at most to `fs.nr_open`.
//!
//! `rlim_t` is unsigned on Linux and macOS and signed on FreeBSD, and each spells "unlimited" its own
//! way; [`FdLimit`] holds plain `u64`s with `u64::MAX` for "unlimited" everywhere.

use std::fmt;
use std::io;

use nix::libc::{RLIM_INFINITY, rlim_t};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// This process's descriptor limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit: what `open`, `socket` and `accept` are held to now (EMFILE beyond it).
    /// `u64::MAX` means unlimited.
    pub soft: u64,
    /// The hard limit: the ceiling the soft limit may be raised to without privilege. `u64::MAX` means
    /// unlimited.
    pub hard: u64,
}

impl fmt::Display for FdLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "soft {} / hard {}", show(self.soft), show(self.hard))
    }
}

fn show(limit: u64) -> String {
    if limit == u64::MAX { "unlimited".to_owned() } else { limit.to_string() }
}

/// A limit as the kernel gives it, in this module's terms.
// `rlim_t` is already `u64` on Linux and macOS; the conversion is for FreeBSD's `i64`.
#[allow(clippy::useless_conversion)]
fn from_rlim(value: rlim_t) -> u64 {
    if value == RLIM_INFINITY { u64::MAX } else { u64::try_from(value).unwrap_or(0) }
}

/// A limit in this module's terms, as the kernel takes it.
#[allow(clippy::useless_conversion)]
fn to_rlim(value: u64) -> rlim_t {
    if value == u64::MAX { RLIM_INFINITY } else { rlim_t::try_from(value).unwrap_or(RLIM_INFINITY) }
}

fn set(soft: u64, hard: u64) -> io::Result<()> {
    setrlimit(Resource::RLIMIT_NOFILE, to_rlim(soft), to_rlim(hard)).map_err(io::Error::from)
}

/// Reads RLIMIT_NOFILE.
pub fn fd_limit() -> io::Result<FdLimit> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    Ok(FdLimit { soft: from_rlim(soft), hard: from_rlim(hard) })
}

/// Raises the soft RLIMIT_NOFILE as far as the kernel allows without privilege (the hard limit; on
/// macOS at most `kern.maxfilesperproc`) and returns `(before, after)`. Raising the hard limit itself
/// needs CAP_SYS_RESOURCE, which containers often withhold; past the hard limit the way on is more
/// processes.
pub fn raise_fd_limit() -> io::Result<(FdLimit, FdLimit)> {
    let before = fd_limit()?;
    let target = soft_ceiling(before.hard);
    if before.soft < target {
        set(target, before.hard)?;
    }
    Ok((before, fd_limit()?))
}

/// The highest soft limit the kernel takes under the hard limit `hard`.
#[cfg(not(target_vendor = "apple"))]
fn soft_ceiling(hard: u64) -> u64 {
    hard
}

/// The highest soft limit the kernel takes under the hard limit `hard`. macOS refuses (EINVAL) a soft
/// RLIMIT_NOFILE above `kern.maxfilesperproc`, "unlimited" included, which is its usual hard limit;
/// where that sysctl cannot be read, `OPEN_MAX` (10240) is what setrlimit(2) promises to take.
#[cfg(target_vendor = "apple")]
fn soft_ceiling(hard: u64) -> u64 {
    const OPEN_MAX: u64 = 10_240;
    hard.min(crate::machine::sysctl_u64("kern.maxfilesperproc").unwrap_or(OPEN_MAX))
}

/// Raises both limits to `ceiling` where the hard limit is below it, and returns the limits now; it
/// never lowers either. Past the hard limit this needs CAP_SYS_RESOURCE (and `ceiling` at most
/// `fs.nr_open`): without it the call fails with EPERM and the limits stand.
pub fn raise_hard_fd_limit(ceiling: u64) -> io::Result<FdLimit> {
    let now = fd_limit()?;
    if now.hard < ceiling {
        set(ceiling, ceiling)?;
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
