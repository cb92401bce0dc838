//! Self-identifying records: the format the workload's record appends use, and the reader built
//! on it.
//!
//! GFS record append is at-least-once: a retried append may leave a duplicate, a failed attempt a
//! fragment on some replicas, and a record that does not fit the chunk leaves padding (GFS §3.3).
//! The paper's answer is in the application: "writers ... include checksums ... [and] unique
//! identifiers", so that "readers can identify and discard extra padding and record fragments"
//! and filter duplicates (GFS §2.7.2). This module is that application layer.
//!
//! A record is, byte by byte:
//!
//! ```text
//! 'G' | length (2 bytes) | id (4 bytes) | payload | checksum (4 bytes)
//! ```
//!
//! Every field byte carries 7 bits with the high bit set, so no byte of a record is ever zero:
//! zeros in a file are holes or padding, never data (the checks rely on that). The length is the
//! whole record's (at most 16383 bytes), the id is unique within a run (28 bits), and the checksum
//! is CRC-32 of the length, id and payload bytes, cut to 28 bits. A record therefore needs
//! [`OVERHEAD_BYTES`]; with chunks too small for one, the workload appends raw bytes instead and the
//! record checks have nothing to read.
//!
//! [`scan`] reads a byte string the way such a reader would: at each position it tries to decode a
//! record; if the checksum holds it yields it and jumps past it, otherwise it skips one byte (a
//! fragment) or a run of zeros (padding). A duplicate is a record whose id was already read.

use node::sparse::SparseBytes;
use std::collections::BTreeSet;

/// The first byte of every record.
pub const MAGIC: u8 = b'G';
/// Bytes a record needs besides its payload.
pub const OVERHEAD_BYTES: usize = 1 + 2 + 4 + 4;
/// The longest record the length field can describe.
pub const MAX_RECORD_BYTES: usize = (1 << 14) - 1;
/// Ids fit in 28 bits.
pub const MAX_ID: u32 = (1 << 28) - 1;

/// `value`'s low `7 * n` bits as `n` bytes, most significant first, each with the high bit set.
fn put7(out: &mut Vec<u8>, value: u32, n: usize) {
    for i in (0..n).rev() {
        out.push(0x80 | ((value >> (7 * i)) & 0x7f) as u8);
    }
}

/// The inverse of [`put7`]; `None` if a byte lacks its high bit.
fn get7(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        (b & 0x80 != 0).then_some((acc << 7) | (b & 0x7f) as u32)
    })
}

fn checksum(covered: &[u8]) -> u32 {
    crc32fast::hash(covered) & MAX_ID
}

/// Encodes record `id` with `payload`. Panics if the id or the length is out of range (the
/// workload picks both).
pub fn encode(id: u32, payload: &[u8]) -> Vec<u8> {
    assert!(id <= MAX_ID, "record id {id} needs more than 28 bits");
    let len = payload.len() + OVERHEAD_BYTES;
    assert!(len <= MAX_RECORD_BYTES, "record of {len} bytes is too long");
    let mut out = Vec::with_capacity(len);
    out.push(MAGIC);
    put7(&mut out, len as u32, 2);
    put7(&mut out, id, 4);
    out.extend_from_slice(payload);
    let sum = checksum(&out[1..]);
    put7(&mut out, sum, 4);
    out
}

/// The record starting at `bytes[0]`, if there is a whole, intact one: (id, its length).
pub fn decode(bytes: &[u8]) -> Option<(u32, usize)> {
    if bytes.len() < OVERHEAD_BYTES || bytes[0] != MAGIC {
        return None;
    }
    let len = get7(&bytes[1..3])? as usize;
    if !(OVERHEAD_BYTES..=bytes.len()).contains(&len) {
        return None;
    }
    let id = get7(&bytes[3..7])?;
    let sum = get7(&bytes[len - 4..len])?;
    (sum == checksum(&bytes[1..len - 4])).then_some((id, len))
}

/// The id of `data` if it is exactly one record (what an append of the workload carries).
pub fn id_of(data: &[u8]) -> Option<u32> {
    decode(data).and_then(|(id, len)| (len == data.len()).then_some(id))
}

/// `data` as exactly one record: its id and payload (what a scenario file writes for an append).
pub fn whole(data: &[u8]) -> Option<(u32, &[u8])> {
    let id = id_of(data)?;
    Some((id, &data[1 + 2 + 4..data.len() - 4]))
}

/// One record a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: u64,
    pub id: u32,
    pub len: usize,
}

/// What a reader saw in a byte string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Every intact record, in file order, duplicates included.
    pub records: Vec<Found>,
    /// Records whose id an earlier record already had.
    pub duplicates: u64,
    /// Zero bytes skipped: padding (or holes).
    pub padding_bytes: u64,
    /// Non-zero bytes that are not part of an intact record: fragments, torn or overwritten
    /// records, or data a plain write put there.
    pub fragment_bytes: u64,
}

impl Scan {
    /// The distinct records in file order, first copy of each id.
    pub fn distinct(&self) -> Vec<Found> {
        let mut seen = std::collections::BTreeSet::new();
        self.records
            .iter()
            .copied()
            .filter(|f| seen.insert(f.id))
            .collect()
    }
}

/// Reads `bytes` as a sequence of records, padding and fragments (see the module comment).
pub fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    scan_region(bytes, 0, &mut out, &mut BTreeSet::new());
    out
}

/// [`scan`] of a sparse file: its stored regions are scanned, its unstored bytes are padding.
/// The same result as scanning every byte, since a record holds no zero byte and so never spans
/// an unstored gap.
pub fn scan_sparse(data: &SparseBytes) -> Scan {
    let mut out = Scan::default();
    let mut seen = BTreeSet::new();
    let mut stored = 0;
    for (at, region) in data.regions() {
        stored += region.len() as u64;
        scan_region(&region, at, &mut out, &mut seen);
    }
    out.padding_bytes += data.len() - stored;
    out
}

/// Scans `bytes`, which start at file offset `base`, into `out`; `seen` holds the ids already
/// found earlier in the file.
fn scan_region(bytes: &[u8], base: u64, out: &mut Scan, seen: &mut BTreeSet<u32>) {
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == 0 {
            out.padding_bytes += 1;
            at += 1;
        } else if let Some((id, len)) = decode(&bytes[at..]) {
            out.records.push(Found {
                offset: base + at as u64,
                id,
                len,
            });
            if !seen.insert(id) {
                out.duplicates += 1;
            }
            at += len;
        } else {
            out.fragment_bytes += 1;
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_never_contain_zero() {
        for (id, payload) in [(0u32, &b""[..]), (7, b"hello"), (MAX_ID, &[0xff; 300][..])] {
            let r = encode(id, payload);
            assert_eq!(r.len(), payload.len() + OVERHEAD_BYTES);
            assert!(r.iter().all(|&b| b != 0), "{r:?}");
            assert_eq!(decode(&r), Some((id, r.len())));
            assert_eq!(id_of(&r), Some(id));
            assert_eq!(&r[7..7 + payload.len()], payload);
        }
        // Not a record: raw bytes, a record with trailing bytes.
        assert_eq!(id_of(b"plain bytes"), None);
        let mut r = encode(3, b"xy");
        r.push(1);
        assert_eq!(id_of(&r), None);
    }

    #[test]
    fn damaged_records_are_rejected() {
        let r = encode(42, b"payload");
        for i in 0..r.len() {
            let mut bad = r.clone();
            bad[i] ^= 0x01;
            assert_eq!(decode(&bad), None, "flipping byte {i} went unnoticed");
        }
        // Cut short: not a record.
        assert_eq!(decode(&r[..r.len() - 1]), None);
    }

    #[test]
    fn a_sparse_file_reads_as_its_bytes_do() {
        let (a, b) = (encode(1, b"first"), encode(2, b"second"));
        let mut file = SparseBytes::default();
        file.write(3, &a);
        file.write(3 + a.len() as u64, &b[..4]); // a fragment right after: one region
        file.zero(40, 200);
        file.write(100, &b);
        file.write(180, &a); // a duplicate
        assert_eq!(scan_sparse(&file), scan(&file.to_vec()));
        assert_eq!(scan_sparse(&file).duplicates, 1);
    }

    #[test]
    fn the_reader_skips_padding_fragments_and_duplicates() {
        let a = encode(1, b"first");
        let b = encode(2, b"second");
        let mut file = Vec::new();
        file.extend_from_slice(&a);
        file.extend_from_slice(&b[..6]); // a fragment of a failed attempt
        file.extend_from_slice(&[0; 9]); // padding
        file.extend_from_slice(&b);
        file.extend_from_slice(&a); // a duplicate from a retry
        file.extend_from_slice(b"raw");
        let s = scan(&file);
        let ids: Vec<u32> = s.records.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![1, 2, 1]);
        assert_eq!(s.records[1].offset, (a.len() + 6 + 9) as u64);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.padding_bytes, 9);
        assert_eq!(s.fragment_bytes, 6 + 3);
        let distinct: Vec<u32> = s.distinct().iter().map(|f| f.id).collect();
        assert_eq!(distinct, vec![1, 2]);
    }
}
