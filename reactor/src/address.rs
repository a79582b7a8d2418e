//! Where a stream socket lives: an IP socket address or a Unix socket path.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The address of a listener or of either end of a connection: TCP over IP, or a Unix domain socket.
///
/// Written and parsed as `127.0.0.1:7878`, `[::1]:7878` or `unix:/run/echo.sock`.
///
/// ```
/// use reactor::Address;
/// let tcp: Address = "127.0.0.1:7878".parse().unwrap();
/// let unix: Address = "unix:/tmp/echo.sock".parse().unwrap();
/// assert_eq!(tcp.ip(), Some("127.0.0.1:7878".parse().unwrap()));
/// assert_eq!(unix.to_string(), "unix:/tmp/echo.sock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP socket address.
    Ip(SocketAddr),
    /// A Unix domain socket bound to this path.
    Unix(PathBuf),
    /// A Unix domain socket with no path: the usual client end of a Unix connection, which connects
    /// without binding (and a Linux abstract-namespace name, which this crate does not bind).
    UnixUnnamed,
}

impl Address {
    /// The IP socket address, if this is one.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Address::Ip(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The Unix socket path, if this is a named Unix socket.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Address::Unix(path) => Some(path),
            _ => None,
        }
    }

    /// A Unix domain socket, named or not.
    pub fn is_unix(&self) -> bool {
        !matches!(self, Address::Ip(_))
    }

    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Address {
        match addr.as_pathname() {
            Some(path) => Address::Unix(path.to_path_buf()),
            None => Address::UnixUnnamed,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Ip(addr)
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Address {
        Address::Unix(path)
    }
}

impl From<&Path> for Address {
    fn from(path: &Path) -> Address {
        Address::Unix(path.to_path_buf())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(addr) => addr.fmt(f),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::UnixUnnamed => f.write_str("unix:(unnamed)"),
        }
    }
}

/// Why a string is not an [`Address`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressParseError(String);

impl fmt::Display for AddressParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressParseError {}

impl FromStr for Address {
    type Err = AddressParseError;

    /// `unix:PATH` (a non-empty path), or an IP socket address (`IP:PORT`, `[IPv6]:PORT`); host names
    /// are not resolved here.
    fn from_str(s: &str) -> Result<Address, AddressParseError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddressParseError(format!(
                    "{s:?}: a Unix socket address needs a path, as in unix:/tmp/echo.sock"
                )));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(Address::Ip).map_err(|e| {
            AddressParseError(format!("{s:?}: {e} (expected IP:PORT, [IPv6]:PORT or unix:/path)"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_both_kinds() {
        for text in ["127.0.0.1:80", "[::1]:7878", "unix:/tmp/x.sock", "unix:relative.sock"] {
            let addr: Address = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        assert!("unix:".parse::<Address>().is_err());
        assert!("localhost".parse::<Address>().is_err());
    }
}
