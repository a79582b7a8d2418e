//! What a loop is asked to do ([`Plan`], [`Work`]) and what it hands back ([`Outcome`]); the blocking
//! model reads the same plan.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error_kind::ErrorKind;
use crate::tally::Tally;

/// What each connection does once open.
#[derive(Clone, Debug)]
pub enum Work {
    /// Echo messages until `duration`.
    Echo {
        /// Bytes per message.
        size: usize,
        /// Messages in flight per connection.
        pipeline: u64,
        /// This loop's share of a fixed total rate (messages per second), or closed loop.
        rate: Option<f64>,
        /// Excluded from the statistics.
        warmup: Duration,
        /// Whole run.
        duration: Duration,
    },
    /// Stay idle for `hold` once every connection is up (or, until failure, once the ramp stopped).
    Hold {
        /// How long.
        hold: Duration,
        /// Keep opening until the first sustained failure.
        until_failure: bool,
        /// `--echo-every K`: as the hold ends, every Kth connection (by id) echoes one message.
        echo_every: Option<u64>,
    },
    /// Connect, echo one message of `size`, close, again, until `duration`.
    Churn {
        /// Bytes of the message.
        size: usize,
        /// Whole run.
        duration: Duration,
    },
}

/// What one loop must do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server, TCP or Unix.
    pub target: reactor::Address,
    /// Connection id of this loop's first connection (ids are unique across loops and processes).
    pub first_id: u64,
    /// Connections this loop opens.
    pub connections: u64,
    /// This loop's share of the connect rate, or all at once.
    pub ramp: Option<f64>,
    /// Source addresses to bind to, round-robin (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    /// A connect not complete after this long is aborted and counted as ETIMEDOUT.
    pub connect_timeout: Duration,
    /// What each connection does.
    pub work: Work,
    /// `--start-at`: where the measured interval begins (connections open and warm up before it);
    /// `None`: as the run starts (after `--warmup`).
    pub start_at: Option<Instant>,
}

/// What a loop found.
#[derive(Debug)]
pub struct Outcome {
    /// The counts.
    pub tally: Tally,
    /// The interval the statistics cover.
    pub measured: Duration,
    /// Where it began.
    pub from: Instant,
    /// For `--until-failure`: the failure that stopped the ramp.
    pub stopped_by: Option<ErrorKind>,
    /// The process's usage where the measured interval began and ended.
    pub usage: crate::usage::Window,
}
