//! Why a connection failed, as a run counts it. Inside the client it is an [`ErrorKind`]; it becomes
//! text only where people and other programs read it: the kernel's name for the error ("EMFILE",
//! "ECONNREFUSED") as a key of a report's JSON, and in the readable summary.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::str::FromStr;

use nix::libc;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Failures counted by kind.
pub type ErrorCounts = BTreeMap<ErrorKind, u64>;

/// A kind of failure. Each kind has one name and each name one kind, so counts by kind and counts by
/// name are the same thing: [`ErrorKind::of`] and parsing keep it that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An error the kernel reported, by its errno: only one with a name of its own, and never
    /// ETIMEDOUT (that is [`ErrorKind::TimedOut`]).
    Errno(i32),
    /// The kernel's ETIMEDOUT, or a connect not complete within `--connect-timeout`.
    TimedOut,
    /// The server closed connections it had accepted: what may stop an `--until-failure` ramp.
    ClosedByServer,
    /// An error without an errno, or with one that has no name here.
    Other,
}

/// Errnos are below this on every kernel we run on (Linux's own bound is 4095).
const ERRNO_END: i32 = 4096;

impl ErrorKind {
    /// The kind of `error`.
    pub fn of(error: &io::Error) -> ErrorKind {
        match error.raw_os_error() {
            Some(libc::ETIMEDOUT) => ErrorKind::TimedOut,
            // socket2's connect_timeout reports its own timeout without an errno.
            None if error.kind() == io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            Some(code) if errno_name(code) != OTHER => ErrorKind::Errno(code),
            _ => ErrorKind::Other,
        }
    }

    /// The name reports use: the kernel's for an errno.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Errno(code) => errno_name(code),
            ErrorKind::TimedOut => "ETIMEDOUT",
            ErrorKind::ClosedByServer => "closed_by_server",
            ErrorKind::Other => OTHER,
        }
    }

    /// Tells apart kinds of the same name, which [`ErrorKind::of`] never makes.
    fn rank(self) -> (u8, i32) {
        match self {
            ErrorKind::Errno(code) => (0, code),
            ErrorKind::TimedOut => (1, 0),
            ErrorKind::ClosedByServer => (2, 0),
            ErrorKind::Other => (3, 0),
        }
    }
}

/// What [`hostinfo::errno_name`] calls an errno it has no name for.
const OTHER: &str = "OTHER";

fn errno_name(code: i32) -> &'static str {
    hostinfo::errno_name(&io::Error::from_raw_os_error(code))
}

/// By name, so that counts list (and reports write them) in the order of their names.
impl Ord for ErrorKind {
    fn cmp(&self, other: &ErrorKind) -> Ordering {
        self.name().cmp(other.name()).then_with(|| self.rank().cmp(&other.rank()))
    }
}

impl PartialOrd for ErrorKind {
    fn partial_cmp(&self, other: &ErrorKind) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The inverse of [`ErrorKind::name`], for reading reports back (`merge`).
impl FromStr for ErrorKind {
    type Err = String;

    fn from_str(name: &str) -> Result<ErrorKind, String> {
        match name {
            "ETIMEDOUT" => Ok(ErrorKind::TimedOut),
            "closed_by_server" => Ok(ErrorKind::ClosedByServer),
            OTHER => Ok(ErrorKind::Other),
            _ => (1..ERRNO_END)
                .map(ErrorKind::Errno)
                .find(|kind| kind.name() == name)
                .ok_or_else(|| format!("{name:?} is not an error name")),
        }
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ErrorKind, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name_and_reads_back_from_it() {
        let mut kinds: Vec<ErrorKind> = (0..ERRNO_END + 10)
            .map(|code| ErrorKind::of(&io::Error::from_raw_os_error(code)))
            .chain([ErrorKind::ClosedByServer, ErrorKind::of(&io::Error::other("no errno"))])
            .collect();
        kinds.sort();
        kinds.dedup();
        let mut names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        names.dedup();
        assert_eq!(names.len(), kinds.len(), "two kinds share a name: {kinds:?}");
        for kind in kinds {
            assert_eq!(kind.name().parse(), Ok(kind));
        }
    }

    #[test]
    fn timeouts_are_one_kind_whoever_noticed_them() {
        let kernel = io::Error::from_raw_os_error(libc::ETIMEDOUT);
        let socket2 = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
        assert_eq!(ErrorKind::of(&kernel), ErrorKind::TimedOut);
        assert_eq!(ErrorKind::of(&socket2), ErrorKind::TimedOut);
        assert_eq!(ErrorKind::TimedOut.to_string(), "ETIMEDOUT");
    }

    #[test]
    fn counts_list_in_the_order_of_their_names() {
        let refused = ErrorKind::Errno(libc::ECONNREFUSED);
        let counts: ErrorCounts =
            [(ErrorKind::TimedOut, 1), (ErrorKind::Other, 2), (refused, 3), (ErrorKind::ClosedByServer, 4)]
                .into();
        let json = serde_json::to_string(&counts).unwrap();
        assert_eq!(json, r#"{"ECONNREFUSED":3,"ETIMEDOUT":1,"OTHER":2,"closed_by_server":4}"#);
        assert_eq!(serde_json::from_str::<ErrorCounts>(&json).unwrap(), counts);
        assert!("EWHATEVER".parse::<ErrorKind>().is_err());
    }
}
