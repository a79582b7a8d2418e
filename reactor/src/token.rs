//! Identifiers handed to the application, and the generation-tagged `mio::Token`s behind them.
//!
//! A slab key alone is not a safe token: when an entry is closed while events for it are still waiting
//! in the current batch, and a new entry takes the freed slot in that same batch, the stale events
//! would reach the newcomer. Every entry therefore gets a generation when it is inserted, and its token
//! packs `(generation, slot)`. Looking an event up compares the generation stored in the slot with the
//! one in the token; a mismatch means the event belongs to a source that no longer exists, and it is
//! dropped (and counted in [`Counters::stale_events`](crate::Counters::stale_events)).

use std::fmt;

use mio::Token;

/// Bits of a token that hold the slab slot; the rest hold the generation.
const SLOT_BITS: u32 = usize::BITS / 2;
const SLOT_MASK: usize = (1 << SLOT_BITS) - 1;
/// Generations wrap below this so that no packed token can ever equal [`WAKER`].
const GENERATION_LIMIT: u64 = (1 << (usize::BITS - SLOT_BITS - 1)) - 1;

/// The token of the loop's `mio::Waker`: outside every packed value, since generations never use the
/// top bit.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// The most entries (connections, listeners, sources) one loop can hold at once.
pub(crate) const MAX_SLOTS: usize = SLOT_MASK;

/// A slot plus the generation it was given when its entry was inserted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) slot: usize,
    pub(crate) generation: u32,
}

impl Key {
    pub(crate) fn token(self) -> Token {
        Token(((self.generation as usize) << SLOT_BITS) | self.slot)
    }

    pub(crate) fn from_token(token: Token) -> Key {
        Key { slot: token.0 & SLOT_MASK, generation: (token.0 >> SLOT_BITS) as u32 }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.slot, self.generation)
    }
}

/// Hands out generations: one counter per loop, so a slot's next occupant always differs from its last
/// (until the counter wraps, after billions of insertions).
#[derive(Debug, Default)]
pub(crate) struct Generations {
    next: u64,
}

impl Generations {
    pub(crate) fn next(&mut self) -> u32 {
        self.next = (self.next + 1) % GENERATION_LIMIT;
        self.next as u32
    }
}

/// The id of an entry that owns a socket with an address of its own: [`ConnId`], [`ListenerId`] or
/// [`UdpId`], for [`Context::local_addr`](crate::Context::local_addr). Implemented by those three only.
pub trait SocketId: Copy + fmt::Display + sealed::Sealed {}

pub(crate) mod sealed {
    /// Keeps [`SocketId`](super::SocketId) to this crate's ids, and gives the loop their key.
    pub trait Sealed {
        /// The entry's token, from which the loop finds it in its table.
        fn token(&self) -> mio::Token;
        /// What asking about the entry says once it is gone.
        fn gone(&self) -> std::io::Error;
    }
}

macro_rules! socket_id {
    ($name:ident, $gone:expr) => {
        impl SocketId for $name {}
        impl sealed::Sealed for $name {
            fn token(&self) -> Token {
                self.0.token()
            }
            fn gone(&self) -> std::io::Error {
                std::io::Error::new($gone, format!("{self} is closed"))
            }
        }
    };
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub(crate) Key);

        impl $name {
            /// A number that is unique among the loop's live entries; useful for logs and maps. It is
            /// not an index the application can use for anything else.
            pub fn as_u64(self) -> u64 {
                self.0.token().0 as u64
            }

            /// The slot this entry holds in the loop's table: small and dense (below the most entries
            /// the loop has held at once), so per-entry state can live in a `Vec` indexed by it rather
            /// than in a hash map. A slot is reused once its entry is gone: keep the full id beside the
            /// state and compare it, since an old id never equals the new occupant's.
            pub fn index(self) -> usize {
                self.0.slot
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "({:?})"), self.0)
            }
        }

        /// `conn 12.3`: the slot, then the generation, so that two entries that held the same slot
        /// at different times never log alike.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, " {}.{}"), self.0.slot, self.0.generation)
            }
        }
    };
}

id_type!(
    /// A TCP connection owned by the loop, accepted or outbound. Stale ids (of connections already
    /// closed) are recognised and refused with `io::ErrorKind::NotConnected`, even after the slot has
    /// been reused.
    ConnId,
    "conn"
);
id_type!(
    /// A listening socket owned by the loop.
    ListenerId,
    "listener"
);
id_type!(
    /// A UDP socket owned by the loop.
    UdpId,
    "udp"
);
id_type!(
    /// A source the application registered itself (a signal pipe, a channel's receiver, ...).
    SourceId,
    "source"
);

socket_id!(ConnId, std::io::ErrorKind::NotConnected);
socket_id!(ListenerId, std::io::ErrorKind::NotFound);
socket_id!(UdpId, std::io::ErrorKind::NotFound);

/// A timer set through [`Context::set_timer`](crate::Context::set_timer); cancel it with
/// [`Context::cancel_timer`](crate::Context::cancel_timer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) Key);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_token_round_trips_and_never_hits_the_waker() {
        let mut generations = Generations { next: GENERATION_LIMIT - 2 };
        for _ in 0..4 {
            let key = Key { slot: MAX_SLOTS - 1, generation: generations.next() };
            assert_eq!(Key::from_token(key.token()), key);
            assert_ne!(key.token(), WAKER);
        }
    }

    #[test]
    fn ids_display_with_their_generation() {
        let first = ConnId(Key { slot: 12, generation: 3 });
        let reused = ConnId(Key { slot: 12, generation: 4 });
        assert_eq!(first.to_string(), "conn 12.3");
        assert_ne!(first.to_string(), reused.to_string(), "a reused slot must not log alike");
        assert_eq!(ListenerId(Key { slot: 0, generation: 1 }).to_string(), "listener 0.1");
    }

    #[test]
    fn a_slot_reused_gets_a_different_token() {
        let mut generations = Generations::default();
        let first = Key { slot: 7, generation: generations.next() };
        let second = Key { slot: 7, generation: generations.next() };
        assert_ne!(first.token(), second.token());
    }
}
