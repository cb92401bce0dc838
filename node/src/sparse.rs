//! Byte strings that store only what was written: the rest reads as zeros.
//!
//! A GFS chunk is 64 MiB (GFS §2.5), and most of many chunks is nothing: record-append padding
//! (§3.3) fills a chunk's tail with zeros, and a write past a chunk's end leaves a hole. Holding
//! such a chunk as 64 MiB of memory made one simulated run of the paper's configuration cost
//! gigabytes. A [`SparseBytes`] holds a length and the *runs* of bytes actually written; reading
//! materializes only the window asked for. Runs share their buffers ([`Arc`]), so copying a
//! replica, a message or a cached page costs the runs, not the bytes.
//!
//! Runs never overlap; adjacent runs stay separate (merging would copy). Two values with the same
//! bytes are equal ([`SparseBytes::same_bytes`]), however their runs fall.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One stored run: `data[from..to]`, shared.
#[derive(Debug, Clone)]
struct Run {
    data: Arc<Vec<u8>>,
    from: usize,
    to: usize,
}

impl Run {
    fn bytes(&self) -> &[u8] {
        &self.data[self.from..self.to]
    }
    fn len(&self) -> u64 {
        (self.to - self.from) as u64
    }
    /// The part of this run (which starts at `start`) inside `[lo, hi)`, with its new start.
    fn clip(&self, start: u64, lo: u64, hi: u64) -> Option<(u64, Run)> {
        let (a, b) = (start.max(lo), (start + self.len()).min(hi));
        (a < b).then(|| {
            let from = self.from + (a - start) as usize;
            let to = from + (b - a) as usize;
            (
                a,
                Run {
                    data: self.data.clone(),
                    from,
                    to,
                },
            )
        })
    }
}

/// A byte string of [`SparseBytes::len`] bytes, of which only the stored runs are held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(into = "Wire", from = "Wire")]
pub struct SparseBytes {
    len: u64,
    /// Start offset -> run; runs lie within `len` and do not overlap.
    runs: BTreeMap<u64, Run>,
}

/// How a [`SparseBytes`] is serialized: its length and its runs, copied. (Messages travel as
/// values inside the simulator, so this is only for tools that write them out.)
#[derive(Serialize, Deserialize)]
struct Wire {
    len: u64,
    runs: Vec<(u64, Vec<u8>)>,
}

impl From<SparseBytes> for Wire {
    fn from(s: SparseBytes) -> Wire {
        Wire {
            len: s.len,
            runs: s.runs().map(|(at, b)| (at, b.to_vec())).collect(),
        }
    }
}

impl From<Wire> for SparseBytes {
    fn from(w: Wire) -> SparseBytes {
        let mut s = SparseBytes::zeros(w.len);
        for (at, bytes) in w.runs {
            s.write(at, &bytes);
        }
        s.set_len(w.len);
        s
    }
}

impl PartialEq for SparseBytes {
    fn eq(&self, other: &Self) -> bool {
        self.same_bytes(other)
    }
}

impl Eq for SparseBytes {}

impl From<Vec<u8>> for SparseBytes {
    fn from(v: Vec<u8>) -> Self {
        let mut s = SparseBytes::default();
        s.write_shared(0, Arc::new(v));
        s
    }
}

impl From<&[u8]> for SparseBytes {
    fn from(v: &[u8]) -> Self {
        SparseBytes::from(v.to_vec())
    }
}

impl SparseBytes {
    /// `len` zero bytes, nothing stored.
    pub fn zeros(len: u64) -> SparseBytes {
        SparseBytes {
            len,
            runs: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held in memory (what a copy of this value costs to make from scratch).
    pub fn stored_bytes(&self) -> u64 {
        self.runs.values().map(Run::len).sum()
    }

    /// The stored runs in order, as (offset, bytes).
    pub fn runs(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.runs.iter().map(|(at, r)| (*at, r.bytes()))
    }

    /// Drops whatever is stored in `[lo, hi)`, keeping the parts of runs outside it.
    fn cut(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        let first = self
            .runs
            .range(..lo)
            .next_back()
            .filter(|(at, r)| *at + r.len() > lo)
            .map(|(at, _)| *at)
            .unwrap_or(lo);
        let touched: Vec<u64> = self.runs.range(first..hi).map(|(at, _)| *at).collect();
        for at in touched {
            let run = self.runs.remove(&at).expect("listed");
            for (start, piece) in [run.clip(at, 0, lo), run.clip(at, hi, u64::MAX)]
                .into_iter()
                .flatten()
            {
                self.runs.insert(start, piece);
            }
        }
    }

    /// Writes `data` at `offset`, growing the string if it ends past it.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        self.write_shared(offset, Arc::new(data.to_vec()));
    }

    /// [`SparseBytes::write`] without copying: the buffer is shared.
    pub fn write_shared(&mut self, offset: u64, data: Arc<Vec<u8>>) {
        let end = offset + data.len() as u64;
        self.len = self.len.max(end);
        if data.is_empty() {
            return;
        }
        self.cut(offset, end);
        let to = data.len();
        self.runs.insert(offset, Run { data, from: 0, to });
    }

    /// Writes the whole of `other` (zeros included) at `offset`.
    pub fn write_sparse(&mut self, offset: u64, other: &SparseBytes) {
        self.zero(offset, offset + other.len);
        for (at, run) in &other.runs {
            self.runs.insert(offset + at, run.clone());
        }
    }

    /// Zeros `[from, to)`, growing the string to `to` if it is shorter: stores nothing.
    pub fn zero(&mut self, from: u64, to: u64) {
        self.len = self.len.max(to);
        self.cut(from, to);
    }

    /// Truncates or extends (with zeros) to `len` bytes.
    pub fn set_len(&mut self, len: u64) {
        self.cut(len, u64::MAX);
        self.len = len;
    }

    /// The bytes of `[offset, offset + len)`, short at the end of the string.
    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        let end = offset.saturating_add(len).min(self.len);
        if offset >= end {
            return Vec::new();
        }
        let mut out = vec![0; (end - offset) as usize];
        for (at, piece) in self.window_runs(offset, end) {
            let lo = (at - offset) as usize;
            out[lo..lo + piece.len() as usize].copy_from_slice(piece.bytes());
        }
        out
    }

    /// `[offset, offset + len)` as a sparse value of its own (sharing the runs).
    pub fn slice(&self, offset: u64, len: u64) -> SparseBytes {
        let end = offset.saturating_add(len).min(self.len);
        let mut out = SparseBytes::zeros(end.saturating_sub(offset));
        for (at, piece) in self.window_runs(offset, end) {
            out.runs.insert(at - offset, piece);
        }
        out
    }

    /// The runs clipped to `[lo, hi)`, with their offsets.
    fn window_runs(&self, lo: u64, hi: u64) -> Vec<(u64, Run)> {
        let first = self
            .runs
            .range(..lo)
            .next_back()
            .map(|(at, _)| *at)
            .unwrap_or(lo);
        self.runs
            .range(first..hi)
            .filter_map(|(at, r)| r.clip(*at, lo, hi))
            .collect()
    }

    /// Whether any byte of `[lo, hi)` is stored (a block with none is all zeros).
    pub fn stores_any(&self, lo: u64, hi: u64) -> bool {
        !self.window_runs(lo, hi).is_empty()
    }

    /// The byte at `offset` (zero past the end).
    pub fn byte_at(&self, offset: u64) -> u8 {
        self.get(offset).unwrap_or(0)
    }

    /// The byte at `offset`, or `None` past the end.
    pub fn get(&self, offset: u64) -> Option<u8> {
        if offset >= self.len {
            return None;
        }
        let stored = self
            .runs
            .range(..=offset)
            .next_back()
            .filter(|(at, r)| offset < *at + r.len())
            .map(|(at, r)| r.bytes()[(offset - at) as usize]);
        Some(stored.unwrap_or(0))
    }

    /// Whether every byte is zero (nothing stored, or only zeros stored).
    pub fn all_zero(&self) -> bool {
        self.runs
            .values()
            .all(|r| r.bytes().iter().all(|&b| b == 0))
    }

    /// All the bytes. Only for strings known to be small.
    pub fn to_vec(&self) -> Vec<u8> {
        self.read(0, self.len)
    }

    /// The stored regions: maximal spans covered by adjacent runs, as (offset, bytes). Bytes
    /// outside them are zeros.
    pub fn regions(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        for (at, run) in &self.runs {
            match out.last_mut() {
                Some((start, bytes)) if *start + bytes.len() as u64 == *at => {
                    bytes.extend_from_slice(run.bytes())
                }
                _ => out.push((*at, run.bytes().to_vec())),
            }
        }
        out
    }

    /// Whether two values hold the same bytes, however their runs fall. Costs the stored bytes.
    pub fn same_bytes(&self, other: &SparseBytes) -> bool {
        if self.len != other.len {
            return false;
        }
        let covered = |a: &SparseBytes, b: &SparseBytes| {
            a.runs
                .iter()
                .all(|(at, r)| b.read(*at, r.len()) == r.bytes())
        };
        covered(self, other) && covered(other, self)
    }

    /// The first offset where two values differ, if any (`len` if one is a prefix of the other).
    pub fn first_difference(&self, other: &SparseBytes) -> Option<u64> {
        let mut candidates: Vec<u64> = self
            .runs
            .iter()
            .chain(other.runs.iter())
            .map(|(at, _)| *at)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for at in candidates {
            let hi = [self, other]
                .iter()
                .filter_map(|s| s.runs.get(&at).map(|r| at + r.len()))
                .max()
                .unwrap_or(at);
            let (a, b) = (self.read(at, hi - at), other.read(at, hi - at));
            if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
                return Some(at + i as u64);
            }
        }
        (self.len != other.len).then_some(self.len.min(other.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on a plain vector, for comparison.
    fn plain_write(v: &mut Vec<u8>, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if v.len() < end {
            v.resize(end, 0);
        }
        v[offset as usize..end].copy_from_slice(data);
    }

    #[test]
    fn behaves_like_a_vector_of_bytes() {
        enum Op {
            Write(u64, &'static [u8]),
            Zero(u64, u64),
            SetLen(u64),
        }
        let ops = [
            Op::Write(10, b"hello"),
            Op::Write(12, b"XY"),         // inside a run: splits it
            Op::Write(8, b"abcdefghijk"), // over a whole run and both sides
            Op::Zero(9, 11),              // a hole in the middle of a run
            Op::Write(40, b"far"),        // leaves a gap
            Op::Zero(60, 100),            // padding: grows, stores nothing
            Op::Write(99, b"!"),          // the last byte
            Op::SetLen(42),               // cuts a run short
            Op::SetLen(50),               // grows with zeros
            Op::Write(41, b"zz"),         // adjacent to the cut run
        ];
        let mut s = SparseBytes::default();
        let mut v: Vec<u8> = Vec::new();
        for op in ops {
            match op {
                Op::Write(at, d) => {
                    s.write(at, d);
                    plain_write(&mut v, at, d);
                }
                Op::Zero(from, to) => {
                    s.zero(from, to);
                    if v.len() < to as usize {
                        v.resize(to as usize, 0);
                    }
                    v[from as usize..to as usize].fill(0);
                }
                Op::SetLen(n) => {
                    s.set_len(n);
                    v.resize(n as usize, 0);
                }
            }
            assert_eq!(s.len(), v.len() as u64);
            assert_eq!(s.to_vec(), v);
            for (at, n) in [(0, 5), (9, 4), (39, 5), (41, 100), (200, 1)] {
                let want: Vec<u8> = v.iter().skip(at).take(n).copied().collect();
                assert_eq!(s.read(at as u64, n as u64), want, "read {at} {n}");
                assert_eq!(
                    s.slice(at as u64, n as u64).to_vec(),
                    want,
                    "slice {at} {n}"
                );
            }
        }
        assert!(s.stored_bytes() < v.len() as u64, "zeros are not stored");
    }

    #[test]
    fn padding_a_huge_string_stores_nothing_and_equality_is_by_bytes() {
        let mut a = SparseBytes::default();
        a.write(0, b"record");
        a.zero(6, 64 << 20);
        assert_eq!((a.len(), a.stored_bytes()), (64 << 20, 6));
        assert_eq!(a.byte_at((64 << 20) - 1), 0);
        assert!(!a.stores_any(64, 128));
        // The same bytes, stored in other runs, are equal; one byte different is not.
        let mut b = SparseBytes::zeros(64 << 20);
        b.write(0, b"rec");
        b.write(3, b"ord");
        assert_eq!(a, b);
        assert_eq!(a.first_difference(&b), None);
        b.write(1000, &[7]);
        assert_ne!(a, b);
        assert_eq!(a.first_difference(&b), Some(1000));
        // Explicit zeros equal implicit ones.
        let mut c = a.clone();
        c.write(100, &[0, 0, 0]);
        assert_eq!(a, c);
        // A prefix differs at its end.
        let short = a.slice(0, 10);
        assert_eq!(short.first_difference(&a.slice(0, 12)), Some(10));
    }

    #[test]
    fn regions_join_adjacent_runs() {
        let mut s = SparseBytes::default();
        s.write(0, b"ab");
        s.write(2, b"cd");
        s.write(10, b"ef");
        assert_eq!(
            s.regions(),
            vec![(0, b"abcd".to_vec()), (10, b"ef".to_vec())]
        );
        let mut t = SparseBytes::zeros(4);
        t.write_sparse(1, &s.slice(1, 2));
        assert_eq!(t.to_vec(), b"\0bc\0");
    }
}
