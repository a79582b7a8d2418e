//! `--source-ips`: the local addresses outgoing connections are bound to, round-robin.

use std::net::{IpAddr, Ipv4Addr};

/// The most source addresses one run may name (a /16).
const MAX_ADDRESSES: usize = 65_536;

/// The parsed `--source-ips` (one value to clap, many addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceIps(pub Vec<IpAddr>);

/// [`parse`] for clap.
pub fn parse_arg(text: &str) -> Result<SourceIps, String> {
    parse(text).map(SourceIps)
}

/// Parses `127.0.0.1-127.0.0.8`, `127.0.0.2`, or a comma-separated list of either.
pub fn parse(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut all = Vec::new();
    for part in text.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((first, last)) => {
                let first: Ipv4Addr = first.trim().parse().map_err(|_| format!("bad address {first:?}"))?;
                let last: Ipv4Addr = last.trim().parse().map_err(|_| format!("bad address {last:?}"))?;
                let (a, b) = (u32::from(first), u32::from(last));
                if a > b {
                    return Err(format!("range {part} runs backwards"));
                }
                if (b - a) as usize >= MAX_ADDRESSES {
                    return Err(format!("range {part} is longer than {MAX_ADDRESSES} addresses"));
                }
                all.extend((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
            }
            None => all.push(part.parse().map_err(|_| format!("bad address {part:?}"))?),
        }
        if all.len() > MAX_ADDRESSES {
            return Err(format!("more than {MAX_ADDRESSES} source addresses"));
        }
    }
    Ok(all)
}

/// The addresses as a comma-separated list that [`parse`] reads back.
pub fn to_list(ips: &[IpAddr]) -> String {
    ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists() {
        assert_eq!(parse("127.0.0.1-127.0.0.3").unwrap().len(), 3);
        assert_eq!(parse("127.0.0.1,127.0.0.5-127.0.0.6").unwrap().len(), 3);
        let ips = parse("127.0.0.9-127.0.1.2").unwrap();
        assert_eq!(parse(&to_list(&ips)).unwrap(), ips);
        assert!(parse("127.0.0.3-127.0.0.1").is_err());
        assert!(parse("127.0.0").is_err());
        assert!(parse("10.0.0.0-10.2.0.0").is_err());
    }
}
