//! `HOST:PORT` as the command lines take it: a socket address as written, or a name this host's
//! resolver turns into addresses.

use std::net::{SocketAddr, ToSocketAddrs};

/// The addresses `text` stands for, in the resolver's order and never empty: the address itself when
/// it is one (`127.0.0.1:7878`, `[::1]:7878`), else those of `NAME:PORT`. An error is one sentence
/// naming what was wrong (a missing or bad port, or the name that did not resolve); `form` says how an
/// address is written where the caller takes one.
pub fn resolve(text: &str, form: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("invalid socket address {text:?}: {form}"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("invalid socket address {text:?}: the port must be a number from 0 to 65535"));
    }
    if host.is_empty() {
        return Err(format!("invalid socket address {text:?}: {form}"));
    }
    let addrs: Vec<SocketAddr> = match text.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(format!("cannot resolve {host}: {e}")),
    };
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}: the name has no address"));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_names_and_mistakes() {
        assert_eq!(resolve("127.0.0.1:7", "F"), Ok(vec!["127.0.0.1:7".parse().unwrap()]));
        assert!(resolve("localhost:7", "F").is_ok_and(|a| !a.is_empty() && a.iter().all(|a| a.port() == 7)));
        assert_eq!(resolve("localhost", "F"), Err("invalid socket address \"localhost\": F".to_owned()));
        assert_eq!(resolve(":7", "F"), Err("invalid socket address \":7\": F".to_owned()));
        assert!(resolve("localhost:x", "F").is_err_and(|e| e.contains("port must be a number")));
        assert!(
            resolve("no-such-host.invalid:1", "F")
                .is_err_and(|e| e.starts_with("cannot resolve no-such-host.invalid"))
        );
    }
}
