//! What travels on the wire, and checking that it all came back.
//!
//! Message `seq` of connection `conn` is a pure function of the two: its first 8 bytes are `conn`, the
//! next 8 are `seq` (little-endian, cut short for small messages), and the rest come from a counter
//! hash of `(conn, seq, position)`. Any byte of any message can be regenerated from its position alone,
//! so checking an echo needs no copy of what was sent, and a byte that arrives out of place (flipped,
//! lost, from another message) is caught at its exact offset.

/// Bytes a message starts with: its connection id and sequence number.
const HEADER: usize = 16;

/// The 8 bytes of `(conn, seq)` at word `word` of the message.
fn word(conn: u64, seq: u64, word: u64) -> u64 {
    match word {
        0 => conn,
        1 => seq,
        _ => {
            // splitmix64 over a mix of the three: cheap and position-addressable.
            let mut z = conn
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(seq.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
                .wrapping_add(word.wrapping_mul(0x1656_67B1_9E37_79F9));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }
}

/// Writes bytes `offset..offset + out.len()` of message `(conn, seq)` into `out`.
pub fn fill(out: &mut [u8], conn: u64, seq: u64, offset: usize) {
    // A word at a time, with fixed-size copies: the hash is the client's main per-byte cost, and it
    // must stay well below the kernel's so that the client measures the server rather than itself.
    let lead = ((8 - offset % 8) % 8).min(out.len());
    let (head, rest) = out.split_at_mut(lead);
    if lead > 0 {
        let start = offset % 8;
        head.copy_from_slice(&word(conn, seq, (offset / 8) as u64).to_le_bytes()[start..start + lead]);
    }
    let first = (offset + lead) / 8;
    let mut words = rest.chunks_exact_mut(8);
    let mut index = first as u64;
    for chunk in &mut words {
        chunk.copy_from_slice(&word(conn, seq, index).to_le_bytes());
        index += 1;
    }
    let tail = words.into_remainder();
    if !tail.is_empty() {
        let n = tail.len();
        tail.copy_from_slice(&word(conn, seq, index).to_le_bytes()[..n]);
    }
}

/// The index of the first byte of `data` that differs from bytes `offset..` of message `(conn, seq)`.
/// Regenerates the message a block at a time on the stack: no copy of what was sent is kept.
pub fn first_difference(data: &[u8], conn: u64, seq: u64, offset: usize) -> Option<usize> {
    let mut expected = [0u8; 256];
    let mut at = 0;
    while at < data.len() {
        let n = (data.len() - at).min(expected.len());
        fill(&mut expected[..n], conn, seq, offset + at);
        if expected[..n] != data[at..at + n] {
            return (0..n).find(|&i| expected[i] != data[at + i]).map(|i| at + i);
        }
        at += n;
    }
    None
}

/// A verification failure: where the echo stream went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The connection's id.
    pub conn: u64,
    /// Offset in the connection's echo stream of the first wrong byte.
    pub offset: u64,
    /// What went wrong, in words.
    pub detail: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection {}: byte offset {}: {}", self.conn, self.offset, self.detail)
    }
}

/// One connection's message stream in both directions: what to send next and what must come back.
#[derive(Clone, Debug)]
pub struct Stream {
    /// The connection's id (part of every message).
    pub conn: u64,
    size: usize,
    /// The next message to send.
    pub next_send: u64,
    /// The message being received.
    pub recv_seq: u64,
    recv_offset: usize,
}

impl Stream {
    /// A stream of `size`-byte messages for connection `conn`.
    pub fn new(conn: u64, size: usize) -> Stream {
        Stream { conn, size, next_send: 0, recv_seq: 0, recv_offset: 0 }
    }

    /// Writes the next message into `out` (which must be `size` long) and returns its sequence number.
    pub fn next_message(&mut self, out: &mut [u8]) -> u64 {
        let seq = self.next_send;
        fill(out, self.conn, seq, 0);
        self.next_send += 1;
        seq
    }

    /// Bytes per message.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Messages sent and not yet fully echoed.
    pub fn in_flight(&self) -> u64 {
        self.next_send - self.recv_seq
    }

    /// Offset in the echo stream of the next byte expected.
    pub fn received(&self) -> u64 {
        self.recv_seq * self.size as u64 + self.recv_offset as u64
    }

    /// Bytes sent and not yet echoed.
    pub fn outstanding(&self) -> u64 {
        self.next_send * self.size as u64 - self.received()
    }

    /// The message [`next_message`](Self::next_message) wrote last was not sent after all: it is owed
    /// no echo.
    pub fn unsend(&mut self) {
        self.next_send = self.next_send.saturating_sub(1).max(self.recv_seq);
    }

    /// Gives up on the echo of everything outstanding (the connection ended): the stream then owes
    /// nothing, and a reconnect on it starts with the next message.
    pub fn write_off(&mut self) {
        self.recv_seq = self.next_send;
        self.recv_offset = 0;
    }

    /// Checks echoed bytes against what was sent, calling `complete(seq)` for each message whose last
    /// byte arrived.
    pub fn receive(&mut self, mut data: &[u8], mut complete: impl FnMut(u64)) -> Result<(), Mismatch> {
        while !data.is_empty() {
            if self.recv_seq >= self.next_send {
                return Err(self.mismatch(0, format!("{} bytes arrived that were never sent", data.len())));
            }
            let n = data.len().min(self.size - self.recv_offset);
            if let Some(i) = first_difference(&data[..n], self.conn, self.recv_seq, self.recv_offset) {
                let detail = self.describe(i, data);
                return Err(self.mismatch(i, detail));
            }
            self.recv_offset += n;
            data = &data[n..];
            if self.recv_offset == self.size {
                complete(self.recv_seq);
                self.recv_seq += 1;
                self.recv_offset = 0;
            }
        }
        Ok(())
    }

    fn mismatch(&self, at: usize, detail: String) -> Mismatch {
        Mismatch { conn: self.conn, offset: self.received() + at as u64, detail }
    }

    /// Names the wrong byte, and where a whole header arrived in the wrong place, whose it is (a
    /// reorder or a crossed connection rather than a flipped byte).
    fn describe(&self, i: usize, data: &[u8]) -> String {
        let mut expected = [0];
        fill(&mut expected, self.conn, self.recv_seq, self.recv_offset + i);
        let expected = expected[0];
        let mut detail = format!(
            "message {} byte {}: expected {expected:#04x}, got {:#04x}",
            self.recv_seq,
            self.recv_offset + i,
            data[i]
        );
        if self.recv_offset == 0 && self.size >= HEADER && data.len() >= HEADER {
            let conn = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
            let seq = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
            if (conn, seq) != (self.conn, self.recv_seq) && seq < self.next_send + 1_000_000 {
                detail.push_str(&format!(" (the bytes there start like message {seq} of connection {conn})"));
            }
        }
        detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(stream: &mut Stream, count: usize, size: usize) -> Vec<u8> {
        let mut all = Vec::new();
        for _ in 0..count {
            let mut m = vec![0; size];
            stream.next_message(&mut m);
            all.extend_from_slice(&m);
        }
        all
    }

    /// The word-at-a-time fill agrees with the definition, byte by byte, at every offset and length.
    #[test]
    fn fill_matches_the_bytewise_definition_at_any_offset() {
        let whole: Vec<u8> = (0..64u64).flat_map(|w| word(5, 9, w).to_le_bytes()).collect();
        for offset in 0..40 {
            for len in 0..(whole.len() - offset) {
                let mut out = vec![0; len];
                fill(&mut out, 5, 9, offset);
                assert_eq!(out, whole[offset..offset + len], "offset {offset} len {len}");
            }
        }
    }

    /// The word-at-a-time check finds exactly the first wrong byte, at every offset and length.
    #[test]
    fn first_difference_names_the_first_wrong_byte() {
        let whole: Vec<u8> = (0..16u64).flat_map(|w| word(2, 4, w).to_le_bytes()).collect();
        for offset in 0..20 {
            for len in 0..(whole.len() - offset) {
                let right = &whole[offset..offset + len];
                assert_eq!(first_difference(right, 2, 4, offset), None, "offset {offset} len {len}");
                for wrong in 0..len {
                    let mut data = right.to_vec();
                    data[wrong] ^= 0x40;
                    if wrong + 1 < len {
                        data[len - 1] ^= 0x01;
                    }
                    assert_eq!(
                        first_difference(&data, 2, 4, offset),
                        Some(wrong),
                        "offset {offset} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_exact_echo_in_odd_pieces_passes() {
        let mut s = Stream::new(7, 100);
        let echo = sent(&mut s, 5, 100);
        let mut done = Vec::new();
        for piece in echo.chunks(37) {
            s.receive(piece, |seq| done.push(seq)).unwrap();
        }
        assert_eq!(done, vec![0, 1, 2, 3, 4]);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn a_flipped_byte_is_named_by_offset() {
        let mut s = Stream::new(3, 64);
        let mut echo = sent(&mut s, 2, 64);
        echo[70] ^= 1;
        let e = s.receive(&echo, |_| {}).unwrap_err();
        assert_eq!((e.conn, e.offset), (3, 70));
    }

    #[test]
    fn a_reordered_message_is_recognised() {
        let mut s = Stream::new(1, 32);
        let echo = sent(&mut s, 2, 32);
        let swapped = [&echo[32..], &echo[..32]].concat();
        let e = s.receive(&swapped, |_| {}).unwrap_err();
        assert!(e.detail.contains("message 1 of connection 1"), "{e}");
    }

    #[test]
    fn bytes_never_sent_are_refused() {
        let mut s = Stream::new(1, 8);
        assert!(s.receive(b"x", |_| {}).is_err());
    }
}

/// Fuzz-style checks of the decoder with seeded random input (the crate is a binary, so they live
/// here; each failure names its seed and round).
#[cfg(test)]
mod fuzz {
    use super::*;
    use testkit::Rng;

    /// Random peer bytes, in random pieces, never panic the decoder; a refusal names the first wrong
    /// byte exactly; acceptance means every byte was right.
    #[test]
    fn arbitrary_bytes_in_arbitrary_pieces_are_judged_exactly() {
        for seed in 1..=300u64 {
            let mut rng = Rng::new(seed);
            let size = rng.between(1, 300);
            let mut stream = Stream::new(seed, size);
            let messages = rng.between(0, 5);
            let mut sent = Vec::new();
            for _ in 0..messages {
                let mut m = vec![0; size];
                stream.next_message(&mut m);
                sent.extend_from_slice(&m);
            }
            // Start from the true echo, then corrupt, cut short or extend it at random.
            let mut echo = sent.clone();
            match rng.between(0, 3) {
                0 => {}
                1 if !echo.is_empty() => {
                    let at = rng.between(0, echo.len() - 1);
                    echo[at] ^= rng.between(1, 255) as u8;
                }
                2 => echo.truncate(rng.between(0, echo.len())),
                _ => echo.extend((0..rng.between(1, 64)).map(|_| rng.between(0, 255) as u8)),
            }
            let mut done = 0u64;
            let mut result = Ok(());
            let mut rest = &echo[..];
            while !rest.is_empty() && result.is_ok() {
                let n = rng.between(1, rest.len());
                result = stream.receive(&rest[..n], |_| done += 1);
                rest = &rest[n..];
            }
            let first_wrong = (0..echo.len()).find(|&i| sent.get(i) != Some(&echo[i]));
            match (result, first_wrong) {
                (Ok(()), None) => assert_eq!(done as usize, echo.len() / size, "seed {seed}"),
                (Err(e), Some(at)) => assert_eq!(e.offset, at as u64, "seed {seed}: {e}"),
                (r, w) => panic!("seed {seed}: decoder said {r:?}, first wrong byte {w:?}"),
            }
        }
    }

    /// Random garbage where a header is expected, including headers claiming huge sequence numbers,
    /// is refused without panicking.
    #[test]
    fn garbage_headers_are_refused_without_panic() {
        let mut rng = Rng::new(77);
        for round in 0..2_000 {
            let size = rng.between(16, 128);
            let mut stream = Stream::new(rng.between(0, 1 << 20) as u64, size);
            let mut m = vec![0; size];
            stream.next_message(&mut m);
            let garbage: Vec<u8> = (0..size).map(|_| rng.between(0, 255) as u8).collect();
            let result = stream.receive(&garbage, |_| {});
            assert_eq!(result.is_ok(), garbage == m, "round {round}");
        }
    }
}
