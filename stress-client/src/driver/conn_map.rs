//! Which planned slot each live connection fills. Looked up on every echoed message, so it is a `Vec`
//! indexed by the connection's place in the loop's table rather than a hash map.

use reactor::ConnId;

/// Live connections and the slot index each one fills.
#[derive(Debug, Default)]
pub(super) struct ConnMap {
    /// At `conn.index()`: that connection and its slot. The full id is kept because the loop reuses a
    /// table index once its connection is gone.
    entries: Vec<Option<(ConnId, usize)>>,
}

impl ConnMap {
    /// Records that `conn` fills `slot`.
    pub(super) fn insert(&mut self, conn: ConnId, slot: usize) {
        let at = conn.index();
        if at >= self.entries.len() {
            self.entries.resize(at + 1, None);
        }
        self.entries[at] = Some((conn, slot));
    }

    /// The slot `conn` fills, if it is still live.
    pub(super) fn get(&self, conn: ConnId) -> Option<usize> {
        match self.entries.get(conn.index()) {
            Some(&Some((live, slot))) if live == conn => Some(slot),
            _ => None,
        }
    }

    /// Forgets `conn`, returning the slot it filled.
    pub(super) fn remove(&mut self, conn: ConnId) -> Option<usize> {
        let slot = self.get(conn)?;
        self.entries[conn.index()] = None;
        Some(slot)
    }
}
