//! Bytes sent that never came back, and why: each loss names its connection, where in the echo stream
//! it began, how many bytes and the reason, so that no byte leaves a report's books in silence. A report
//! lists the first [`LISTED`] losses and counts the rest.

use serde::{Deserialize, Serialize};

/// Most losses a report names one by one.
pub const LISTED: usize = 10;

/// Bytes one connection sent that will never be echoed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    /// The connection's id.
    pub connection: u64,
    /// Offset in the connection's echo stream of the first byte that did not come back.
    pub offset: u64,
    /// How many bytes.
    pub bytes: u64,
    /// Why they will not come back.
    pub why: String,
}

/// As a report's `failure` names it.
impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection {}: byte offset {}: {} bytes sent were never echoed ({})",
            self.connection, self.offset, self.bytes, self.why
        )
    }
}

/// The losses of a run: the first [`LISTED`] named, the rest counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// The first losses, in the order they happened (within one loop or process).
    pub listed: Vec<Loss>,
    /// Losses past the first [`LISTED`].
    pub not_listed: u64,
}

impl Losses {
    /// Records one loss.
    pub fn push(&mut self, loss: Loss) {
        if self.listed.len() < LISTED {
            self.listed.push(loss);
        } else {
            self.not_listed += 1;
        }
    }

    /// Adds the losses of another loop, thread or process.
    pub fn add(&mut self, listed: &[Loss], not_listed: u64) {
        for loss in listed {
            self.push(loss.clone());
        }
        self.not_listed += not_listed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_listed_ones_losses_are_counted() {
        let mut losses = Losses::default();
        for connection in 0..(LISTED as u64 + 3) {
            losses.push(Loss { connection, offset: 0, bytes: 1, why: "gone".into() });
        }
        assert_eq!((losses.listed.len(), losses.not_listed), (LISTED, 3));
        let mut merged = Losses::default();
        merged.add(&losses.listed[..2], 0);
        merged.add(&losses.listed, losses.not_listed);
        assert_eq!((merged.listed.len(), merged.not_listed), (LISTED, 5));
    }
}
