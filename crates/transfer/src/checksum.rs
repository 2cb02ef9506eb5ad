//! The checksums a transfer computes while it streams a file (and again over the copy when it verifies):
//! MD5 (Globus's default), SHA1, SHA256, SHA512, ADLER32, CRC32C, and BLAKE3, Ferry's default when the client
//! names none — on this kind of CPU it is the fastest of them (several GB/s on one core) and a strong hash.
//!
//! BLAKE3, CRC32C and ADLER32 can hash the ranges of one file separately (in parallel, in any order, and after a
//! restart only the missing ones) and combine the range digests into the whole file's checksum; the others need
//! the bytes in order.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};
use md5::Digest as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
    Adler32,
    Crc32c,
    Blake3,
}

const ALL: [Algorithm; 7] = [
    Algorithm::Md5,
    Algorithm::Sha1,
    Algorithm::Sha256,
    Algorithm::Sha512,
    Algorithm::Adler32,
    Algorithm::Crc32c,
    Algorithm::Blake3,
];

impl Algorithm {
    /// Ferry's choice when the client names none.
    pub const DEFAULT: Algorithm = Algorithm::Blake3;

    /// Case-insensitive; `SHA-256` and `SHA256` alike.
    pub fn parse(s: &str) -> Option<Algorithm> {
        let s = s.trim().to_ascii_uppercase().replace('-', "");
        ALL.into_iter().find(|a| a.name() == s)
    }

    /// The name on the wire (`checksum_algorithm`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
            Algorithm::Adler32 => "ADLER32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Blake3 => "BLAKE3",
        }
    }

    pub fn all() -> &'static [Algorithm] {
        &ALL
    }

    /// Whether ranges of one file can be hashed independently and combined.
    pub fn combinable(self) -> bool {
        matches!(
            self,
            Algorithm::Blake3 | Algorithm::Crc32c | Algorithm::Adler32
        )
    }

    /// Hex digits in a digest.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 | Algorithm::Blake3 => 64,
            Algorithm::Sha512 => 128,
            Algorithm::Adler32 | Algorithm::Crc32c => 8,
        }
    }

    /// Whether a client's `external_checksum` has this algorithm's form (hex of the right length).
    pub fn valid_digest(self, hex: &str) -> bool {
        hex.len() == self.hex_len() && hex.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChecksumError {
    #[error("{0} checksums cannot be computed by ranges")]
    NotCombinable(&'static str),
    #[error("ranges do not cover the file: {0}")]
    BadRanges(String),
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

// ---- ADLER32 (RFC 1950), written from its definition ----

const ADLER_MOD: u32 = 65521;
/// The most bytes that can be summed before the 32-bit sums could overflow.
const ADLER_NMAX: usize = 5552;

fn adler_update(state: u32, data: &[u8]) -> u32 {
    let (mut a, mut b) = (state & 0xffff, state >> 16);
    for block in data.chunks(ADLER_NMAX) {
        for &x in block {
            a += x as u32;
            b += a;
        }
        a %= ADLER_MOD;
        b %= ADLER_MOD;
    }
    (b << 16) | a
}

/// The ADLER32 of A‖B from those of A and B and B's length: A's sums shift by B's length.
fn adler_combine(first: u32, second: u32, len2: u64) -> u32 {
    let m = ADLER_MOD as u64;
    let rem = len2 % m;
    let (a1, b1) = ((first & 0xffff) as u64, (first >> 16) as u64);
    let (a2, b2) = ((second & 0xffff) as u64, (second >> 16) as u64);
    // a = a1 + a2 - 1; b = b1 + b2 + rem·(a1 - 1)  (mod m)
    let a = (a1 + a2 + m - 1) % m;
    let b = (b1 + b2 + rem * ((a1 + m - 1) % m)) % m;
    ((b << 16) | a) as u32
}

// ---- whole files ----

enum State {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Adler32(u32),
    Crc32c(u32),
    Blake3(Box<blake3::Hasher>),
}

/// A checksum over a whole file, fed in order.
pub struct Hasher(State);

impl Hasher {
    pub fn new(alg: Algorithm) -> Self {
        Hasher(match alg {
            Algorithm::Md5 => State::Md5(md5::Md5::new()),
            Algorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
            Algorithm::Adler32 => State::Adler32(1),
            Algorithm::Crc32c => State::Crc32c(0),
            Algorithm::Blake3 => State::Blake3(Box::new(blake3::Hasher::new())),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            State::Md5(h) => h.update(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
            State::Sha512(h) => h.update(data),
            State::Adler32(s) => *s = adler_update(*s, data),
            State::Crc32c(s) => *s = crc32c::crc32c_append(*s, data),
            State::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// Lowercase hex; ADLER32 and CRC32C as the 32-bit value's 8 hex digits.
    pub fn finalize(self) -> String {
        match self.0 {
            State::Md5(h) => hex(&h.finalize()),
            State::Sha1(h) => hex(&h.finalize()),
            State::Sha256(h) => hex(&h.finalize()),
            State::Sha512(h) => hex(&h.finalize()),
            State::Adler32(s) | State::Crc32c(s) => format!("{s:08x}"),
            State::Blake3(h) => h.finalize().to_hex().to_string(),
        }
    }
}

// ---- ranges ----

/// The digest of one range `[offset, offset + len)` of a file. For BLAKE3 it is the range's chaining value
/// (and, for a range at offset 0, also its root hash, in case it turns out to be the whole file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeDigest {
    pub offset: u64,
    pub len: u64,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

enum RangeState {
    Adler32(u32),
    Crc32c(u32),
    Blake3(Box<blake3::Hasher>),
}

/// Hashes one range of a file for [`combine`].
pub struct RangeHasher {
    offset: u64,
    len: u64,
    state: RangeState,
}

impl RangeHasher {
    /// A range starting at `offset`. For BLAKE3 the ranges given to [`combine`] must all have one size, a power of
    /// two number of 1 KiB chunks (the last range may be shorter), so that each is a whole subtree.
    pub fn new(alg: Algorithm, offset: u64) -> Result<Self, ChecksumError> {
        let state = match alg {
            Algorithm::Adler32 => RangeState::Adler32(1),
            Algorithm::Crc32c => RangeState::Crc32c(0),
            Algorithm::Blake3 => {
                if !offset.is_multiple_of(blake3::CHUNK_LEN as u64) {
                    return Err(ChecksumError::BadRanges(format!(
                        "a BLAKE3 range must start at a multiple of {} bytes, not {offset}",
                        blake3::CHUNK_LEN
                    )));
                }
                let mut h = blake3::Hasher::new();
                h.set_input_offset(offset);
                RangeState::Blake3(Box::new(h))
            }
            other => return Err(ChecksumError::NotCombinable(other.name())),
        };
        Ok(Self {
            offset,
            len: 0,
            state,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        match &mut self.state {
            RangeState::Adler32(s) => *s = adler_update(*s, data),
            RangeState::Crc32c(s) => *s = crc32c::crc32c_append(*s, data),
            RangeState::Blake3(h) => {
                h.update(data);
            }
        }
    }

    pub fn finish(self) -> RangeDigest {
        let (value, root) = match self.state {
            RangeState::Adler32(s) | RangeState::Crc32c(s) => (format!("{s:08x}"), None),
            RangeState::Blake3(h) => {
                // An empty range is only ever the whole (empty) file: it has a root hash and no subtree.
                let cv = if self.len == 0 {
                    String::new()
                } else {
                    hex(&h.finalize_non_root())
                };
                let root = (self.offset == 0).then(|| h.finalize().to_hex().to_string());
                (cv, root)
            }
        };
        RangeDigest {
            offset: self.offset,
            len: self.len,
            value,
            root,
        }
    }
}

fn parse_u32(d: &RangeDigest) -> Result<u32, ChecksumError> {
    u32::from_str_radix(&d.value, 16)
        .map_err(|_| ChecksumError::BadRanges(format!("'{}' is not a 32-bit digest", d.value)))
}

fn parse_cv(d: &RangeDigest) -> Result<ChainingValue, ChecksumError> {
    let bad = || ChecksumError::BadRanges(format!("'{}' is not a BLAKE3 chaining value", d.value));
    if d.value.len() != 64 {
        return Err(bad());
    }
    let mut cv = [0u8; 32];
    for (i, b) in cv.iter_mut().enumerate() {
        *b = u8::from_str_radix(&d.value[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(cv)
}

/// The chaining value of `ranges` (consecutive, equal power-of-two sizes but the last), split as BLAKE3's tree
/// splits: the left subtree holds the largest power of two of chunks less than the whole.
fn blake3_subtree(
    ranges: &[RangeDigest],
    root: bool,
) -> Result<Option<blake3::Hash>, ChecksumError> {
    if ranges.len() == 1 {
        return Ok(None);
    }
    let start = ranges[0].offset;
    let total: u64 = ranges.iter().map(|r| r.len).sum();
    let left_len = blake3::hazmat::left_subtree_len(total);
    let split = ranges
        .iter()
        .position(|r| r.offset - start == left_len)
        .ok_or_else(|| {
            ChecksumError::BadRanges("BLAKE3 ranges must all be one power-of-two size".into())
        })?;
    let (l, r) = ranges.split_at(split);
    let cv = |part: &[RangeDigest]| -> Result<ChainingValue, ChecksumError> {
        match blake3_subtree(part, false)? {
            Some(h) => Ok(*h.as_bytes()),
            None => parse_cv(&part[0]),
        }
    };
    let (lcv, rcv) = (cv(l)?, cv(r)?);
    Ok(Some(if root {
        merge_subtrees_root(&lcv, &rcv, Mode::Hash)
    } else {
        blake3::Hash::from(merge_subtrees_non_root(&lcv, &rcv, Mode::Hash))
    }))
}

/// The whole file's checksum from the digests of ranges that cover `[0, total)` exactly, in order.
pub fn combine(
    alg: Algorithm,
    total: u64,
    ranges: &[RangeDigest],
) -> Result<String, ChecksumError> {
    if !alg.combinable() {
        return Err(ChecksumError::NotCombinable(alg.name()));
    }
    let mut at = 0;
    for r in ranges {
        if r.offset != at {
            return Err(ChecksumError::BadRanges(format!(
                "expected a range at {at}, found one at {}",
                r.offset
            )));
        }
        at += r.len;
    }
    if at != total {
        return Err(ChecksumError::BadRanges(format!(
            "the ranges cover {at} bytes of {total}"
        )));
    }
    match alg {
        Algorithm::Adler32 | Algorithm::Crc32c => {
            let mut acc = if alg == Algorithm::Adler32 { 1 } else { 0 };
            for r in ranges {
                let v = parse_u32(r)?;
                acc = if alg == Algorithm::Adler32 {
                    adler_combine(acc, v, r.len)
                } else {
                    crc32c::crc32c_combine(acc, v, r.len as usize)
                };
            }
            Ok(format!("{acc:08x}"))
        }
        _ => match ranges {
            [] => Ok(blake3::hash(b"").to_hex().to_string()),
            [only] => only.root.clone().ok_or_else(|| {
                ChecksumError::BadRanges("the single range has no root hash".into())
            }),
            _ => Ok(blake3_subtree(ranges, true)?
                .map(|h| h.to_hex().to_string())
                .unwrap_or_default()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(alg: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(alg);
        h.update(data);
        h.finalize()
    }

    #[test]
    fn known_answers() {
        let fox = b"The quick brown fox jumps over the lazy dog";
        let cases: &[(Algorithm, &[u8], &str)] = &[
            (Algorithm::Md5, b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (Algorithm::Md5, fox, "9e107d9d372bb6826bd81d3542a419d6"),
            (
                Algorithm::Sha1,
                b"abc",
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                Algorithm::Sha256,
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algorithm::Sha512,
                b"abc",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            (Algorithm::Adler32, b"", "00000001"),
            (Algorithm::Adler32, b"Wikipedia", "11e60398"),
            (Algorithm::Crc32c, b"123456789", "e3069283"),
            (
                Algorithm::Blake3,
                b"",
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            ),
        ];
        for (alg, input, want) in cases {
            assert_eq!(whole(*alg, input), *want, "{}", alg.name());
            assert!(alg.valid_digest(want));
        }
        // Fed in pieces, the same.
        let mut h = Hasher::new(Algorithm::Md5);
        for piece in fox.chunks(5) {
            h.update(piece);
        }
        assert_eq!(h.finalize(), "9e107d9d372bb6826bd81d3542a419d6");
    }

    #[test]
    fn names_round_trip() {
        for a in Algorithm::all() {
            assert_eq!(Algorithm::parse(a.name()), Some(*a));
            assert_eq!(Algorithm::parse(&a.name().to_lowercase()), Some(*a));
        }
        assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("crc99"), None);
        assert!(!Algorithm::Md5.valid_digest("xyz"));
        assert!(!Algorithm::Md5.valid_digest(&"g".repeat(32)));
    }

    fn by_ranges(alg: Algorithm, data: &[u8], size: usize) -> String {
        let mut digests = Vec::new();
        let mut off = 0;
        while off < data.len() || (off == 0 && data.is_empty() && digests.is_empty()) {
            let end = (off + size).min(data.len());
            let mut h = RangeHasher::new(alg, off as u64).unwrap();
            h.update(&data[off..end]);
            digests.push(h.finish());
            if data.is_empty() {
                break;
            }
            off = end;
        }
        // Ranges are finished in any order; combine takes them in file order.
        combine(alg, data.len() as u64, &digests).unwrap()
    }

    #[test]
    fn ranges_combine_to_the_whole_file_checksum() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for alg in [Algorithm::Blake3, Algorithm::Crc32c, Algorithm::Adler32] {
            for size in [4096usize, 8192] {
                for len in [
                    0,
                    1,
                    1023,
                    1024,
                    1025,
                    4095,
                    4096,
                    4097,
                    8192,
                    8193,
                    3 * 8192,
                    65_537,
                    70_000,
                ] {
                    let d = &data[..len];
                    assert_eq!(
                        by_ranges(alg, d, size),
                        whole(alg, d),
                        "{} {size} {len}",
                        alg.name()
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_size_combines(len in 0usize..40_000, seed in any::<u8>(), pow in 10u32..14) {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            for alg in [Algorithm::Blake3, Algorithm::Crc32c, Algorithm::Adler32] {
                prop_assert_eq!(by_ranges(alg, &data, 1 << pow), whole(alg, &data));
            }
        }
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert_eq!(
            RangeHasher::new(Algorithm::Md5, 0).err(),
            Some(ChecksumError::NotCombinable("MD5"))
        );
        assert!(RangeHasher::new(Algorithm::Blake3, 100).is_err());
        let mut h = RangeHasher::new(Algorithm::Crc32c, 0).unwrap();
        h.update(b"abcd");
        let d = h.finish();
        assert!(
            combine(Algorithm::Crc32c, 5, std::slice::from_ref(&d)).is_err(),
            "short"
        );
        let mut gap = d.clone();
        gap.offset = 8;
        assert!(
            combine(Algorithm::Crc32c, 12, &[d.clone(), gap]).is_err(),
            "gap"
        );
        assert!(combine(Algorithm::Md5, 4, &[d]).is_err());
    }
}
