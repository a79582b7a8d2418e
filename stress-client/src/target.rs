//! `--target`: the server, as an address (`127.0.0.1:7878`, `[::1]:7878`), a name (`localhost:7878`)
//! or a Unix socket path (`unix:/run/echo.sock`, for the load commands).
//!
//! A name is resolved once, while the command line is parsed, so that one that does not resolve is a
//! usage error (exit 2) naming it. A name may resolve to several addresses (`localhost` to `::1` and
//! `127.0.0.1`, a server with IPv4 and IPv6 records); a load run then uses, of those, the first that
//! accepts a connection, and its report names the one used.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// A server given on the command line: what was written, and either the TCP addresses it stands for,
/// in the resolver's order (never empty), or a Unix socket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    text: String,
    addrs: Vec<SocketAddr>,
    unix: Option<PathBuf>,
}

/// How a target is written, for error messages.
const FORM: &str = "expected HOST:PORT (127.0.0.1:7878, [::1]:7878 or localhost:7878) or unix:PATH";

impl Target {
    /// Parses `ADDRESS:PORT` or `unix:PATH`, or resolves `NAME:PORT`; clap's value parser for the load
    /// commands' `--target`.
    pub fn parse(text: &str) -> Result<Target, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!(
                    "invalid socket address {text:?}: unix: needs a path, as in unix:/tmp/echo.sock"
                ));
            }
            return Ok(Target { text: text.to_owned(), addrs: Vec::new(), unix: Some(PathBuf::from(path)) });
        }
        Target::parse_tcp(text)
    }

    /// Parses `ADDRESS:PORT` or resolves `NAME:PORT`: for `backlog`, which probes a TCP accept queue.
    pub fn parse_tcp(text: &str) -> Result<Target, String> {
        if text.starts_with("unix:") {
            return Err(format!("{text:?}: this command probes a TCP listener, not a Unix socket"));
        }
        let addrs = hostinfo::resolve(text, FORM)?;
        Ok(Target { text: text.to_owned(), addrs, unix: None })
    }

    /// The TCP address connections go to: the first the name resolved to, or, once [`Target::choose`]
    /// has picked one, that one. None for a Unix socket.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }

    /// Where connections go, TCP or Unix, as the reactor takes it.
    pub fn address(&self) -> reactor::Address {
        match (&self.unix, self.addr()) {
            (Some(path), _) => reactor::Address::Unix(path.clone()),
            (None, Some(addr)) => reactor::Address::Ip(addr),
            (None, None) => reactor::Address::UnixUnnamed,
        }
    }

    /// A Unix domain socket: no ports, no source addresses.
    pub fn is_unix(&self) -> bool {
        self.unix.is_some()
    }

    /// The port the target was given with; None for a Unix socket.
    pub fn port(&self) -> Option<u16> {
        self.addr().map(|a| a.port())
    }

    /// The same target with only the address the run will use: the one address there is, or of
    /// several, the first that accepts a connection within `timeout`, tried in order (that connection is
    /// closed at once). With one address nothing is tried here: the run's own connects report what
    /// goes wrong, error by error.
    pub fn choose(&self, timeout: Duration) -> io::Result<Target> {
        if self.addrs.len() <= 1 {
            return Ok(self.clone());
        }
        let (_, addr) =
            self.connect_in_order(|addr| TcpStream::connect_timeout(&addr, timeout)).map_err(|tried| {
                let tried: Vec<String> = tried
                    .iter()
                    .map(|(addr, e)| format!("{addr}: {}", crate::error_kind::ErrorKind::of(e)))
                    .collect();
                io::Error::other(format!(
                    "no address of {} accepted a connection ({})",
                    self.text,
                    tried.join(", ")
                ))
            })?;
        Ok(Target { text: self.text.clone(), addrs: vec![addr], unix: None })
    }

    /// Calls `connect` with each address in order until one succeeds; returns its result and the
    /// address, or every address with its error.
    pub fn connect_in_order<T>(
        &self,
        mut connect: impl FnMut(SocketAddr) -> io::Result<T>,
    ) -> Result<(T, SocketAddr), Vec<(SocketAddr, io::Error)>> {
        let mut tried = Vec::new();
        for &addr in &self.addrs {
            match connect(addr) {
                Ok(connected) => return Ok((connected, addr)),
                Err(e) => tried.push((addr, e)),
            }
        }
        Err(tried)
    }
}

impl fmt::Display for Target {
    /// As it was written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn addresses_parse_without_the_resolver() {
        let v4 = Target::parse("127.0.0.1:7878").unwrap();
        assert_eq!(
            (v4.addr(), v4.to_string()),
            (Some("127.0.0.1:7878".parse().unwrap()), "127.0.0.1:7878".into())
        );
        assert_eq!(Target::parse("[::1]:7878").unwrap().addr(), Some("[::1]:7878".parse().unwrap()));
        let unix = Target::parse("unix:/tmp/e.sock").unwrap();
        assert_eq!((unix.address().to_string(), unix.port()), ("unix:/tmp/e.sock".into(), None));
        assert!(Target::parse("unix:").is_err());
        assert!(Target::parse_tcp("unix:/tmp/e.sock").unwrap_err().contains("TCP listener"));
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let target = Target::parse("localhost:7878").unwrap();
        assert!(target.addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 7878), "{target:?}");
        assert_eq!(target.to_string(), "localhost:7878");
    }

    #[test]
    fn what_cannot_be_a_target_says_why() {
        let error = |text| Target::parse(text).unwrap_err();
        assert!(error("no-such-host.invalid:1").starts_with("cannot resolve no-such-host.invalid: "));
        assert!(error("localhost").contains("expected HOST:PORT"), "{}", error("localhost"));
        assert!(error("localhost:port").contains("port must be a number"));
        assert!(error(":7878").contains("expected HOST:PORT"));
    }

    /// Of several addresses, the first that accepts is used, and only that one is kept.
    #[test]
    fn the_first_address_that_accepts_is_chosen() {
        let refusing = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let accepting = listener.local_addr().unwrap();
        let target = Target { text: "both".into(), addrs: vec![refusing, accepting], unix: None };
        let chosen = target.choose(Duration::from_secs(5)).unwrap();
        assert_eq!((chosen.addrs, chosen.text), (vec![accepting], "both".to_owned()));

        let none = Target { text: "none".into(), addrs: vec![refusing, refusing], unix: None };
        let error = none.choose(Duration::from_secs(5)).unwrap_err().to_string();
        assert!(error.starts_with("no address of none accepted a connection"), "{error}");
        assert!(error.contains(&format!("{refusing}: ECONNREFUSED")), "{error}");
    }
}
