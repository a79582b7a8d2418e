//! `--addr`: where the server listens, as an address (`127.0.0.1:7878`, `[::1]:7878`), a name
//! (`localhost:7878`) or a Unix socket path (`unix:/run/echo.sock`).
//!
//! A name is resolved once, while the command line is parsed, so that one that does not resolve is a
//! usage error (exit 2) naming it. A server listens on one address: of several that a name resolves to
//! (`localhost` may give `::1` and `127.0.0.1`), the first, which the listening line then shows.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address: as given, or the first one its name resolved to.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

/// How an address is written, for error messages.
const FORM: &str = "expected HOST:PORT (127.0.0.1:7878, [::1]:7878 or localhost:7878) or unix:PATH";

impl ListenAddr {
    /// Parses `ADDRESS:PORT` or `unix:PATH`, or resolves `NAME:PORT`; clap's value parser for `--addr`.
    pub fn parse(text: &str) -> Result<ListenAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!(
                    "invalid socket address {text:?}: unix: needs a path, as in unix:/tmp/echo.sock"
                ));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        hostinfo::resolve(text, FORM).map(|addrs| ListenAddr::Tcp(addrs[0]))
    }

    /// The TCP address to bind, for the modes that serve TCP only (the command line refuses them with
    /// a Unix address first; this says so again rather than guess an address).
    pub fn tcp(&self) -> std::io::Result<SocketAddr> {
        match self {
            ListenAddr::Tcp(addr) => Ok(*addr),
            ListenAddr::Unix(path) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("unix:{}: this mode serves TCP only", path.display()),
            )),
        }
    }

    /// The address for the reactor's listener.
    pub fn reactor(&self) -> reactor::Address {
        match self {
            ListenAddr::Tcp(addr) => reactor::Address::Ip(*addr),
            ListenAddr::Unix(path) => reactor::Address::Unix(path.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_parse() {
        let tcp = |text| ListenAddr::parse(text).map(|a| a.tcp().unwrap());
        assert_eq!(ListenAddr::parse("unix:/tmp/e.sock"), Ok(ListenAddr::Unix("/tmp/e.sock".into())));
        assert_eq!(tcp("127.0.0.1:0"), Ok("127.0.0.1:0".parse().unwrap()));
        assert_eq!(tcp("[::1]:7878"), Ok("[::1]:7878".parse().unwrap()));
        let local = tcp("localhost:7878").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 7878, "{local}");
    }

    #[test]
    fn what_cannot_be_an_address_says_why() {
        let error = |text| ListenAddr::parse(text).unwrap_err();
        assert!(error("no-such-host.invalid:1").starts_with("cannot resolve no-such-host.invalid: "));
        assert!(error("localhost:port").starts_with("invalid socket address"));
        assert!(error("7878").contains("expected HOST:PORT"));
        assert!(error("unix:").contains("needs a path"));
    }
}
