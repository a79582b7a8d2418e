//! The loop's settings, and the errors for settings that cannot work.

use std::fmt;
use std::time::Duration;

/// How an [`EventLoop`](crate::EventLoop) behaves. Every buffer and queue it keeps is bounded by one of
/// these numbers.
///
/// ```
/// use std::time::Duration;
/// let config = reactor::Config {
///     max_connections: 10_000,
///     idle_timeout: Some(Duration::from_secs(30)),
///     ..reactor::Config::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Accepted connections held at once. At the cap the loop stops accepting: further peers wait in the
    /// kernel's accept queue (bounded by the listen backlog) and are taken as soon as a connection closes.
    pub max_connections: usize,
    /// Close a connection after this long without reading or writing a byte (also bounds a connect that
    /// never completes). A century or more (`Duration::MAX` included) is in effect `None`.
    pub idle_timeout: Option<Duration>,
    /// Size of the one read buffer the loop shares between all connections. Also the largest datagram
    /// a UDP socket delivers (at most 64 KiB): on Linux the loop's receive batch has 64 slots of this
    /// size (4 MiB by default, allocated at the first datagram, touched only where datagrams land).
    pub read_buffer: usize,
    /// Work a connection may cause in one loop turn before it yields to the others, in bytes: what was
    /// read from it plus what the callbacks for that data wrote to sockets. The rest is read on the next
    /// turn. Keeps one flooding peer, or one whose data fans out to many, from starving the rest.
    pub read_budget: usize,
    /// Queued output above which the loop stops reading from that peer (back-pressure).
    pub high_watermark: usize,
    /// Queued output below which a peer paused by back-pressure is read again; 0 reads again once the
    /// queue is empty.
    pub low_watermark: usize,
    /// Hard cap on one connection's queued output: [`Context::send`](crate::Context::send) refuses
    /// (with `WouldBlock`) data that would go past it.
    pub max_output: usize,
    /// Connections a listener may accept in one loop turn before it yields to the connections already
    /// open; the rest of its queue is accepted on the next turn. Keeps a connect flood from holding a
    /// turn.
    pub accept_budget: usize,
    /// Events taken from the OS per poll.
    pub events_capacity: usize,
    /// Messages that [`Handle::send`](crate::Handle::send) may have waiting at once.
    pub message_capacity: usize,
    /// First delay before accepting again after the process or system ran out of descriptors or memory;
    /// doubled on each failure up to [`accept_backoff_max`](Self::accept_backoff_max). A closing
    /// connection resumes accepting sooner.
    pub accept_backoff: Duration,
    /// Longest delay between two accept attempts while resources are exhausted.
    pub accept_backoff_max: Duration,
    /// Raise this process's soft RLIMIT_NOFILE to its hard limit when the loop is created.
    pub raise_fd_limit: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_connections: 1 << 20,
            idle_timeout: None,
            read_buffer: 64 * 1024,
            read_budget: 256 * 1024,
            high_watermark: 256 * 1024,
            low_watermark: 64 * 1024,
            max_output: 4 * 1024 * 1024,
            accept_budget: 128,
            events_capacity: 1024,
            message_capacity: 4096,
            accept_backoff: Duration::from_millis(50),
            accept_backoff_max: Duration::from_secs(1),
            raise_fd_limit: true,
        }
    }
}

impl Config {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_connections", self.max_connections),
            ("read_buffer", self.read_buffer),
            ("read_budget", self.read_budget),
            ("accept_budget", self.accept_budget),
            ("events_capacity", self.events_capacity),
            ("message_capacity", self.message_capacity),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero(name));
        }
        if self.max_connections > crate::token::MAX_SLOTS {
            return Err(ConfigError::TooManyConnections { asked: self.max_connections });
        }
        if self.low_watermark >= self.high_watermark {
            return Err(ConfigError::Watermarks { low: self.low_watermark, high: self.high_watermark });
        }
        if self.high_watermark + self.read_buffer > self.max_output {
            return Err(ConfigError::OutputCap {
                max_output: self.max_output,
                needed: self.high_watermark + self.read_buffer,
            });
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::Zero("idle_timeout"));
        }
        Ok(())
    }
}

/// A [`Config`] that cannot work, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting that must be positive is zero.
    Zero(&'static str),
    /// The low watermark must sit below the high one, or a paused peer would never resume.
    Watermarks {
        /// The low watermark given.
        low: usize,
        /// The high watermark given.
        high: usize,
    },
    /// The output cap must leave room for one read's worth of reply above the high watermark, or an echo
    /// of a full read could be refused.
    OutputCap {
        /// The cap given.
        max_output: usize,
        /// `high_watermark + read_buffer`.
        needed: usize,
    },
    /// More connections than a token can address.
    TooManyConnections {
        /// The number asked for.
        asked: usize,
    },
    /// A listen backlog of zero: the kernel would refuse or queue nothing useful.
    ZeroBacklog,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero(name) => write!(f, "{name} must be greater than zero"),
            ConfigError::Watermarks { low, high } => {
                write!(f, "low watermark ({low} B) must be below the high watermark ({high} B)")
            }
            ConfigError::OutputCap { max_output, needed } => write!(
                f,
                "max_output ({max_output} B) must be at least high_watermark + read_buffer ({needed} B)"
            ),
            ConfigError::TooManyConnections { asked } => write!(
                f,
                "max_connections {asked} is above the {} entries a loop can address",
                crate::token::MAX_SLOTS
            ),
            ConfigError::ZeroBacklog => write!(f, "a listen backlog must be at least 1"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for std::io::Error {
    fn from(error: ConfigError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn inverted_watermarks_are_refused() {
        let config = Config { low_watermark: 10, high_watermark: 10, ..Config::default() };
        assert!(matches!(config.validate(), Err(ConfigError::Watermarks { .. })));
    }

    #[test]
    fn zero_sizes_are_refused() {
        let config = Config { read_buffer: 0, ..Config::default() };
        assert_eq!(config.validate(), Err(ConfigError::Zero("read_buffer")));
    }
}
