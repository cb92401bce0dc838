//! The client library's decisions as plain data: how a byte range splits into chunks, what the
//! client trusts from its caches, and when it tries again.
//!
//! Nothing here sleeps, sends or draws randomness. The cache takes the current simulated time
//! (`now_ns`) and the retry policy takes the jitter the async shell (`client/mod.rs`) drew, so unit
//! tests drive both directly and a run's random draws stay where they were.

use crate::types::GfsError;
use std::collections::BTreeMap;
use std::ops::Range;

/// The part of a byte range that falls in one chunk. Files are split into fixed-size chunks
/// (GFS §2.5), and every read or write of a range becomes one request per chunk it touches, so a
/// write across a chunk boundary is several mutations, not one atomic one (GFS §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The chunk's index in the file.
    pub index: u64,
    /// Where the piece starts inside the chunk.
    pub chunk_offset: u64,
    pub len_bytes: u64,
    /// Where the piece sits in the caller's buffer (the write's data, the read's result).
    pub data: Range<usize>,
}

/// Splits `[offset, offset + len_bytes)` into its chunk pieces, in file order. The caller has
/// checked that the range ends within the largest file, so nothing here overflows.
pub fn pieces(offset: u64, len_bytes: u64, chunk_size_bytes: u64) -> Pieces {
    Pieces {
        start: offset,
        pos: offset,
        end: offset + len_bytes,
        chunk_size_bytes,
    }
}

/// The iterator [`pieces`] returns: a read of many chunks need not hold all its pieces at once.
#[derive(Debug, Clone)]
pub struct Pieces {
    start: u64,
    pos: u64,
    end: u64,
    chunk_size_bytes: u64,
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.pos >= self.end {
            return None;
        }
        let (index, chunk_offset) = (
            self.pos / self.chunk_size_bytes,
            self.pos % self.chunk_size_bytes,
        );
        let len_bytes = (self.chunk_size_bytes - chunk_offset).min(self.end - self.pos);
        let at = (self.pos - self.start) as usize;
        self.pos += len_bytes;
        Some(Piece {
            index,
            chunk_offset,
            len_bytes,
            data: at..at + len_bytes as usize,
        })
    }
}

/// What the client knows about chunks, by (path, chunk index), each entry trusted until its
/// expiry. GFS §2.7.1: a cached location can be stale, and expiry bounds how long a client may
/// read from a replica that missed mutations; the client also forgets an entry as soon as using it
/// fails. Used for chunk locations and for primaries.
#[derive(Debug, Clone)]
pub struct ChunkCache<V> {
    /// path -> chunk index -> (value, expiry): one lookup by `&str`, and forgetting a file drops
    /// its one entry.
    paths: BTreeMap<String, BTreeMap<u64, (V, u64)>>,
}

impl<V> Default for ChunkCache<V> {
    fn default() -> Self {
        ChunkCache {
            paths: BTreeMap::new(),
        }
    }
}

impl<V> ChunkCache<V> {
    /// The entry for chunk `index` of `path`, unless it expired at or before `now_ns`.
    pub fn get(&self, path: &str, index: u64, now_ns: u64) -> Option<&V> {
        match self.paths.get(path)?.get(&index) {
            Some((value, until_ns)) if *until_ns > now_ns => Some(value),
            _ => None,
        }
    }

    /// Remembers `value` for chunk `index` of `path` until `until_ns` (exclusive).
    pub fn insert(&mut self, path: &str, index: u64, value: V, until_ns: u64) {
        let chunks = match self.paths.get_mut(path) {
            Some(chunks) => chunks,
            None => self.paths.entry(path.to_string()).or_default(),
        };
        chunks.insert(index, (value, until_ns));
    }

    /// Forgets chunk `index` of `path`: using the entry just failed.
    pub fn forget(&mut self, path: &str, index: u64) {
        if let Some(chunks) = self.paths.get_mut(path) {
            chunks.remove(&index);
            if chunks.is_empty() {
                self.paths.remove(path);
            }
        }
    }

    /// Forgets every chunk of `path`: the file is being deleted.
    pub fn forget_path(&mut self, path: &str) {
        self.paths.remove(path);
    }
}

/// One failed attempt of an operation, with how its step treats a final error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A final error (`!is_retryable()`) is the operation's answer at once; any other is retried.
    Checked(GfsError),
    /// Retried whatever it is. `list` treats every error this way, and a read every error from
    /// the replicas (one replica's final answer, say a bad range, need not be another's). Kept as
    /// it always was: making these `Checked` would change which runs retry.
    Any(GfsError),
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Back off and try again.
    Retry,
    /// The attempts are used up: `RetriesExhausted` carrying the last attempt's error.
    GiveUp(GfsError),
    /// A final answer: return this error as it is.
    Return(GfsError),
}

/// The client's one bounded retry policy. An operation gets at least `max_attempts` attempts, and
/// keeps retrying while it is younger than `window_ms` (long enough for the cluster to recover
/// from a lost chunkserver: see `ClusterConfig::client_retry_window_ms`), but never more than
/// `max_attempts` plus one per backoff step the window holds (each retry waits at least a step,
/// so the bound never cuts the window short). Before every attempt but the first it waits a
/// backoff that grows linearly up to four steps, plus jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    /// The backoff grows by this much per attempt, and the jitter is at most this much.
    step_ms: u64,
    window_ms: u64,
}

impl RetryPolicy {
    /// The backoff stops growing after this many steps.
    const MAX_STEPS: u64 = 4;

    /// `max_attempts` is positive (the cluster configuration is validated); the backoff step is a
    /// quarter of an RPC timeout, so a few retries outlast a short network fault.
    pub fn new(max_attempts: u32, rpc_timeout_ms: u64, window_ms: u64) -> RetryPolicy {
        assert!(max_attempts > 0, "a client makes at least one attempt");
        RetryPolicy {
            max_attempts,
            step_ms: rpc_timeout_ms / 4 + 1,
            window_ms,
        }
    }

    /// The largest jitter (inclusive) the shell draws for [`RetryPolicy::backoff_ms`].
    pub fn max_jitter_ms(&self) -> u64 {
        self.step_ms
    }

    /// The wait before attempt number `attempt` (0-based, so at least 1 here): linear in the
    /// attempt up to four steps, plus the jitter drawn, so clients that failed together do not
    /// retry together.
    pub fn backoff_ms(&self, attempt: u32, jitter_ms: u64) -> u64 {
        self.step_ms * (attempt as u64).min(Self::MAX_STEPS) + jitter_ms
    }

    /// The most attempts an operation ever gets.
    pub fn hard_cap(&self) -> u32 {
        let steps = (self.window_ms / self.step_ms).min(u32::MAX as u64 / 2) as u32;
        self.max_attempts.saturating_add(steps)
    }

    /// After attempt number `attempt` (0-based) failed with `failure`, `elapsed_ms` after the
    /// operation began: retry, give up, or answer.
    pub fn decide(&self, attempt: u32, elapsed_ms: u64, failure: Failure) -> Verdict {
        let error = match failure {
            Failure::Checked(e) if !e.is_retryable() => return Verdict::Return(e),
            Failure::Checked(e) | Failure::Any(e) => e,
        };
        let made = attempt + 1;
        let guaranteed = made < self.max_attempts;
        let in_window = elapsed_ms < self.window_ms && made < self.hard_cap();
        if guaranteed || in_window {
            Verdict::Retry
        } else {
            Verdict::GiveUp(GfsError::RetriesExhausted {
                attempts: made,
                last: Box::new(error),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_at_chunk_boundaries() {
        // (offset, len) over 64-byte chunks -> pieces as (index, chunk offset, len, data range)
        type Want = &'static [(u64, u64, u64, Range<usize>)];
        let cases: [(u64, u64, Want); 9] = [
            (10, 0, &[]),                                        // empty
            (0, 10, &[(0, 0, 10, 0..10)]),                       // at offset 0
            (0, 64, &[(0, 0, 64, 0..64)]),                       // one whole chunk
            (64, 1, &[(1, 0, 1, 0..1)]),                         // starts on a boundary
            (60, 10, &[(0, 60, 4, 0..4), (1, 0, 6, 4..10)]),     // crosses one boundary
            (32, 96, &[(0, 32, 32, 0..32), (1, 0, 64, 32..96)]), // ends on a boundary
            (63, 2, &[(0, 63, 1, 0..1), (1, 0, 1, 1..2)]),       // one byte each side
            (
                10,
                150,
                &[
                    (0, 10, 54, 0..54),
                    (1, 0, 64, 54..118),
                    (2, 0, 32, 118..150),
                ],
            ),
            ((1 << 40) - 1, 1, &[((1 << 34) - 1, 63, 1, 0..1)]), // the last byte of 1 TiB
        ];
        for (offset, len, want) in cases {
            let got: Vec<Piece> = pieces(offset, len, 64).collect();
            let want: Vec<Piece> = want
                .iter()
                .map(|(index, chunk_offset, len_bytes, data)| Piece {
                    index: *index,
                    chunk_offset: *chunk_offset,
                    len_bytes: *len_bytes,
                    data: data.clone(),
                })
                .collect();
            assert_eq!(got, want, "offset {offset} len {len}");
        }
    }

    #[test]
    fn cache_entries_expire_at_their_instant_and_are_forgotten_by_key_or_path() {
        enum Op {
            Forget(&'static str, u64),
            ForgetPath(&'static str),
        }
        struct Case {
            name: &'static str,
            op: Option<Op>,
            /// Looked up: (path, index, now) -> hit?
            lookups: &'static [(&'static str, u64, u64, bool)],
        }
        let cases = [
            Case {
                name: "live until the instant before expiry",
                op: None,
                lookups: &[
                    ("/a", 0, 0, true),
                    ("/a", 0, 99, true),
                    ("/a", 0, 100, false),
                ],
            },
            Case {
                name: "unknown keys miss",
                op: None,
                lookups: &[("/a", 2, 0, false), ("/c", 0, 0, false)],
            },
            Case {
                name: "forgetting one key keeps the others",
                op: Some(Op::Forget("/a", 0)),
                lookups: &[("/a", 0, 0, false), ("/a", 1, 0, true), ("/b", 0, 0, true)],
            },
            Case {
                name: "forgetting a path keeps other paths",
                op: Some(Op::ForgetPath("/a")),
                lookups: &[("/a", 0, 0, false), ("/a", 1, 0, false), ("/b", 0, 0, true)],
            },
        ];
        for c in cases {
            let mut cache = ChunkCache::default();
            cache.insert("/a", 0, "a0", 100);
            cache.insert("/a", 1, "a1", 200);
            cache.insert("/b", 0, "b0", 100);
            match c.op {
                Some(Op::Forget(path, index)) => cache.forget(path, index),
                Some(Op::ForgetPath(path)) => cache.forget_path(path),
                None => {}
            }
            for &(path, index, now_ns, hit) in c.lookups {
                let got = cache.get(path, index, now_ns);
                assert_eq!(got.is_some(), hit, "{}: {path} {index} at {now_ns}", c.name);
            }
        }
        // A new entry replaces the old one, expiry included.
        let mut cache = ChunkCache::default();
        cache.insert("/a", 0, 1, 100);
        cache.insert("/a", 0, 2, 50);
        assert_eq!(cache.get("/a", 0, 49), Some(&2));
        assert_eq!(cache.get("/a", 0, 50), None);
    }

    #[test]
    fn retry_decisions_by_error_class_and_attempt() {
        let net = || GfsError::Network("timeout".into());
        let gone = || GfsError::NotFound("/f".into());
        let exhausted = |attempts, last| {
            Verdict::GiveUp(GfsError::RetriesExhausted {
                attempts,
                last: Box::new(last),
            })
        };
        // (max attempts, attempt that failed, ms since the operation began, failure, verdict),
        // with a retry window of 1 000 ms
        let cases = [
            (3, 0, 0, Failure::Checked(net()), Verdict::Retry),
            (3, 1, 2_000, Failure::Checked(net()), Verdict::Retry), // guaranteed attempts
            (3, 2, 1_000, Failure::Checked(net()), exhausted(3, net())), // last, window over
            (3, 2, 999, Failure::Checked(net()), Verdict::Retry),   // past max, inside the window
            (3, 14, 10, Failure::Checked(net()), Verdict::Retry),   // the cap's last retry
            (3, 15, 10, Failure::Checked(net()), exhausted(16, net())), // cap: 3 + 1000 / 76
            (3, 0, 0, Failure::Checked(gone()), Verdict::Return(gone())),
            (
                3,
                2,
                5_000,
                Failure::Checked(gone()),
                Verdict::Return(gone()),
            ), // final beats exhausted
            (3, 0, 0, Failure::Any(gone()), Verdict::Retry),
            (3, 2, 1_000, Failure::Any(gone()), exhausted(3, gone())),
            (
                3,
                0,
                0,
                Failure::Checked(GfsError::ChunkFull),
                Verdict::Retry,
            ),
            (
                3,
                0,
                0,
                Failure::Checked(GfsError::NotPrimary),
                Verdict::Retry,
            ),
            (
                3,
                0,
                0,
                Failure::Checked(GfsError::Ambiguous("create".into())),
                Verdict::Return(GfsError::Ambiguous("create".into())),
            ),
            (
                3,
                0,
                0,
                Failure::Checked(GfsError::NoSuchChunk),
                Verdict::Return(GfsError::NoSuchChunk),
            ),
            (1, 0, 1_000, Failure::Checked(net()), exhausted(1, net())), // a single attempt
        ];
        for (max_attempts, attempt, elapsed_ms, failure, want) in cases {
            let policy = RetryPolicy::new(max_attempts, 300, 1_000);
            let what = format!(
                "attempt {attempt} of {max_attempts} failed after {elapsed_ms} ms with {failure:?}"
            );
            assert_eq!(policy.decide(attempt, elapsed_ms, failure), want, "{what}");
        }
        // A window too long to count in attempts caps them near u32::MAX / 2, never at a number
        // wrapped around to a small one: 76 ms steps, (2^32 + 5) steps in the window.
        let endless = RetryPolicy::new(3, 300, 76 * ((1u64 << 32) + 5));
        assert_eq!(endless.hard_cap(), 3 + u32::MAX / 2);
    }

    #[test]
    fn backoff_grows_linearly_to_four_steps_plus_jitter() {
        // (rpc timeout, attempt, jitter) -> (max jitter, backoff), all in ms
        let cases = [
            (300, 1, 0, 76, 76),
            (300, 1, 76, 76, 152),
            (300, 4, 3, 76, 307),
            (300, 5, 3, 76, 307), // no longer growing
            (300, 20, 0, 76, 304),
            (1, 1, 0, 1, 1),
            (1, 3, 1, 1, 4),
            (3, 2, 0, 1, 2),
        ];
        for (rpc_timeout_ms, attempt, jitter_ms, max_jitter_ms, want_ms) in cases {
            let policy = RetryPolicy::new(6, rpc_timeout_ms, 0);
            assert_eq!(
                policy.max_jitter_ms(),
                max_jitter_ms,
                "timeout {rpc_timeout_ms}"
            );
            assert_eq!(
                policy.backoff_ms(attempt, jitter_ms),
                want_ms,
                "attempt {attempt}"
            );
        }
    }
}
