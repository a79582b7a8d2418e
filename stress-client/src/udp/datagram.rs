//! What one datagram of `udp` carries, and how an echoed one is checked.
//!
//! A datagram is a 24-byte header and a payload:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `SCU1` |
//! | 4..8 | socket id (unique across the loops and processes of a run), little-endian |
//! | 8..16 | sequence number on that socket, from 0, little-endian |
//! | 16..24 | intended send time, ns since the loop started, little-endian |
//! | 24.. | payload: bytes that follow from socket id and sequence number alone |
//!
//! The header names the datagram; the sender's record of what it sent under that name checks the
//! header (the time must be the one recorded), and the payload is checked byte by byte. So a datagram
//! altered anywhere is caught: in the header, its name or time no longer match a datagram sent; in the
//! payload, a byte differs.

/// The first four bytes of every datagram.
const MAGIC: [u8; 4] = *b"SCU1";
/// Bytes before the payload.
pub const HEADER: usize = 24;
/// Largest datagram: the most a UDP/IPv4 datagram carries.
pub const MAX_SIZE: usize = 65_507;

/// The header of a datagram as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Socket id.
    pub socket: u32,
    /// Sequence number on that socket.
    pub seq: u64,
    /// Intended send time, ns since the loop started.
    pub stamp: u64,
}

/// Writes datagram `header` into `out`, whose length (at least [`HEADER`]) is the datagram's size.
pub fn write(out: &mut [u8], header: Header) {
    out[0..4].copy_from_slice(&MAGIC);
    out[4..8].copy_from_slice(&header.socket.to_le_bytes());
    out[8..16].copy_from_slice(&header.seq.to_le_bytes());
    out[16..24].copy_from_slice(&header.stamp.to_le_bytes());
    let seed = seed(header.socket, header.seq);
    for (i, chunk) in out[HEADER..].chunks_mut(8).enumerate() {
        let word = mix(seed.wrapping_add(i as u64)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// The header of `data`, if it is long enough and starts with the magic.
pub fn header(data: &[u8]) -> Option<Header> {
    if data.len() < HEADER || data[0..4] != MAGIC {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    Some(Header {
        socket: u32::from_le_bytes(data[4..8].try_into().expect("4 bytes")),
        seq: u64_at(8),
        stamp: u64_at(16),
    })
}

/// The first offset at which the payload of `data` differs from what datagram (`socket`, `seq`) carries,
/// with the byte found and the byte expected; `None` when every byte matches.
pub fn first_bad_byte(data: &[u8], socket: u32, seq: u64) -> Option<(usize, u8, u8)> {
    let seed = seed(socket, seq);
    for (i, chunk) in data.get(HEADER..)?.chunks(8).enumerate() {
        let word = mix(seed.wrapping_add(i as u64)).to_le_bytes();
        if chunk != &word[..chunk.len()] {
            let j = chunk.iter().zip(word).position(|(a, b)| *a != b).expect("a byte differs");
            return Some((HEADER + i * 8 + j, chunk[j], word[j]));
        }
    }
    None
}

/// Where a datagram's payload sequence starts: distinct for every socket and sequence number.
fn seed(socket: u32, seq: u64) -> u64 {
    mix(u64::from(socket) << 40 ^ seq)
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reads_back_and_any_altered_payload_byte_is_found() {
        let header = Header { socket: 7, seq: 123_456, stamp: 99 };
        for size in [HEADER, HEADER + 1, 64, 1000] {
            let mut d = vec![0; size];
            write(&mut d, header);
            assert_eq!(super::header(&d), Some(header));
            assert_eq!(first_bad_byte(&d, 7, 123_456), None);
            for at in HEADER..size {
                let mut bad = d.clone();
                bad[at] ^= 0x10;
                assert_eq!(first_bad_byte(&bad, 7, 123_456).map(|b| b.0), Some(at), "size {size}");
            }
        }
        let mut d = vec![0; 64];
        write(&mut d, header);
        // Another datagram's payload does not pass for this one's.
        assert!(first_bad_byte(&d, 7, 123_457).is_some());
        assert!(first_bad_byte(&d, 8, 123_456).is_some());
        d[0] = b'X';
        assert_eq!(super::header(&d), None);
        assert_eq!(super::header(&d[..HEADER - 1]), None);
    }
}
