//! The predicates that the drain-until-`WouldBlock` rule is written with.

use std::io;

/// The operation would block: readiness is used up until the next event. Control flow, not failure.
pub(crate) fn would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call: retry it at once.
pub(crate) fn interrupted(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Interrupted
}
