//! The kernel's names for errors (`EMFILE`, `ECONNREFUSED`), so that reports and logs count and name
//! failures the way the man pages do rather than by their localized descriptions.

use std::io;

/// The kernel's name for an error (`"EMFILE"`, `"ECONNREFUSED"`), for counting and reports; `"OTHER"`
/// where the error carries no errno, or one outside the set that sockets and descriptor limits produce.
pub fn errno_name(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc_name(),
        None => "OTHER",
    }
}

trait DescName {
    fn desc_name(self) -> &'static str;
}

impl DescName for nix::errno::Errno {
    fn desc_name(self) -> &'static str {
        // `Errno`'s Debug form is the C name; keep the common ones static without allocating.
        use nix::errno::Errno::*;
        match self {
            EMFILE => "EMFILE",
            ENFILE => "ENFILE",
            ENOBUFS => "ENOBUFS",
            ENOMEM => "ENOMEM",
            ECONNABORTED => "ECONNABORTED",
            ECONNREFUSED => "ECONNREFUSED",
            ECONNRESET => "ECONNRESET",
            ETIMEDOUT => "ETIMEDOUT",
            EADDRNOTAVAIL => "EADDRNOTAVAIL",
            EADDRINUSE => "EADDRINUSE",
            EHOSTUNREACH => "EHOSTUNREACH",
            ENETUNREACH => "ENETUNREACH",
            EPIPE => "EPIPE",
            EINTR => "EINTR",
            EAGAIN => "EAGAIN",
            EINPROGRESS => "EINPROGRESS",
            EPERM => "EPERM",
            EACCES => "EACCES",
            EINVAL => "EINVAL",
            // A Unix socket path with nothing at it, and one that is not a socket.
            ENOENT => "ENOENT",
            ENOTSOCK => "ENOTSOCK",
            _ => "OTHER",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_errors_the_way_the_kernel_does() {
        assert_eq!(errno_name(&io::Error::from_raw_os_error(nix::libc::EMFILE)), "EMFILE");
        assert_eq!(errno_name(&io::Error::other("x")), "OTHER");
    }
}
