//! Check `reads_not_invented`: every byte a successful read returned (of a file, or of a deleted
//! copy under its hidden name) was written at that offset by some mutation of the file invoked
//! before the read completed, or is padding (zeros); never invented.
//!
//! GFS §2.7.1 lets a reader see stale data through a cached location, and §2.7.2 lets it see
//! padding and duplicates, but nothing promises less than this: a replica only ever holds bytes a
//! client sent (checksums catch what the disk makes up, §5.2). Writes name their offset, so their
//! bytes are matched exactly. A record append's offset is the primary's choice, and a failed or
//! retried attempt may have landed at an offset the client never learned, so the bytes no write
//! explains must be tiled by records of appends invoked before the read completed, each whole or
//! cut on one side (by the read's range, or by a later record or write laid over it); only a run
//! that is one piece may be a record cut on both sides.

use super::{context, describe, Violation};
use crate::history::{OpRecord, OpResult};
use crate::workload::OpSpec;
use node::GfsError;
use std::fmt::Write;

pub const NAME: &str = "reads_not_invented";

pub fn check(history: &[OpRecord]) -> Option<Violation> {
    let mut report = String::new();
    let mut bad = 0;
    for read in history {
        // A deleted copy's bytes are the file's bytes from before its deletion (GFS §4.4).
        let (
            OpSpec::Read { path, offset, .. } | OpSpec::ReadDeleted { path, offset, .. },
            Some(OpResult::Data { data }),
        ) = (&read.op, &read.outcome)
        else {
            continue;
        };
        // Mutations of this path that may have taken effect before the read returned; writes
        // only where they overlap the read (a read of a whole 64 MiB chunk stays cheap).
        let before = |o: &&OpRecord| read.complete_ns.is_none_or(|end| o.invoke_ns < end);
        let read_end = offset + data.len() as u64;
        let writes: Vec<(u64, &[u8])> = history
            .iter()
            .filter(before)
            .filter_map(|o| match &o.op {
                OpSpec::Write {
                    path: p,
                    offset: at,
                    data,
                } if p == path && *at < read_end && *offset < at + data.len() as u64 => {
                    Some((*at, data.as_slice()))
                }
                _ => None,
            })
            .collect();
        // An append the client refused as too large was never sent (GFS §3.3): its bytes explain
        // nothing, so if they land anyway they read as invented.
        let records: Vec<&[u8]> = history
            .iter()
            .filter(before)
            .filter_map(|o| match (&o.op, &o.outcome) {
                (
                    _,
                    Some(OpResult::Err {
                        error: GfsError::RecordTooLarge { .. },
                    }),
                ) => None,
                (OpSpec::Append { path: p, data }, _) if p == path && !data.is_empty() => {
                    Some(data.as_slice())
                }
                _ => None,
            })
            .collect();
        // Which bytes a write explains, marked write by write (the overlaps' total length, not
        // bytes x writes).
        let mut by_write: Vec<bool> = data.iter().map(|&b| b == 0).collect();
        for (o, d) in &writes {
            let lo = (*o).max(*offset);
            let hi = (o + d.len() as u64).min(read_end);
            for at in lo..hi {
                let i = (at - *offset) as usize;
                by_write[i] |= d[(at - o) as usize] == data[i];
            }
        }
        let explained = |i: usize| by_write[i];
        // Maximal runs of bytes no write explains; each must be tiled by append records.
        let mut i = 0;
        while i < data.len() {
            if explained(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < data.len() && !explained(i) {
                i += 1;
            }
            if !tiled_by_records(&data[start..i], &records) {
                bad += 1;
                let _ = writeln!(
                    report,
                    "  {describe}\n    returned bytes at file offset {}..{} that no mutation wrote there\n    read {}",
                    offset + start as u64,
                    offset + i as u64,
                    context(data, start as u64),
                    describe = describe(read),
                );
                break;
            }
        }
    }
    (bad > 0).then(|| Violation {
        check: NAME,
        report: format!("{bad} reads returned bytes no mutation wrote:\n{report}"),
    })
}

/// Counts successful reads, and the stale ones among them: a read is stale if at some byte it did
/// not return what the latest write or acknowledged append there wrote, although that mutation
/// completed before the read began and nothing else touching the byte was in flight from that
/// mutation's start to the read's end. GFS allows this (§2.7.1: a client may read a stale replica
/// through a cached location); the count is for the teaching notes, never a failure.
pub fn stale_reads(history: &[OpRecord]) -> (u64, u64) {
    let (reads, stale) = stale_read_list(history);
    (reads, stale.len() as u64)
}

/// A stale read (see [`stale_reads`]): the read, the latest mutation it missed, and when that
/// mutation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale<'a> {
    pub read: &'a OpRecord,
    pub missed: &'a OpRecord,
    pub missed_done_ns: u64,
}

/// Successful reads, and each stale one with the mutation it missed (the first such byte's).
pub fn stale_read_list(history: &[OpRecord]) -> (u64, Vec<Stale<'_>>) {
    // Every mutation with a known region; failures and unreturned ones may land any time later,
    // and so may a refused one (a write refused `not_found` on its second chunk may have written
    // its first): only a success completed.
    let placed: Vec<(&OpRecord, &str, u64, &[u8], u64)> = history
        .iter()
        .filter_map(|o| {
            let until = match &o.outcome {
                Some(r) if r.error().is_none() => o.complete_ns?,
                _ => u64::MAX,
            };
            match (&o.op, &o.outcome) {
                (OpSpec::Write { path, offset, data }, _) => {
                    Some((o, path.as_str(), *offset, data.as_slice(), until))
                }
                (OpSpec::Append { path, data }, Some(OpResult::Offset { offset })) => {
                    Some((o, path.as_str(), *offset, data.as_slice(), until))
                }
                _ => None,
            }
        })
        .collect();
    let (mut reads, mut stale) = (0, Vec::new());
    for read in history {
        let (OpSpec::Read { path, offset, .. }, Some(OpResult::Data { data }), Some(end)) =
            (&read.op, &read.outcome, read.complete_ns)
        else {
            continue;
        };
        reads += 1;
        // A delete (and re-create) may rightly have emptied the file.
        let recreated = history
            .iter()
            .any(|o| matches!(&o.op, OpSpec::Delete { path: p } if p == path) && o.invoke_ns < end);
        if recreated {
            continue;
        }
        // Only bytes some mutation covers can be stale: walk those, not the whole read.
        let read_end = offset + data.len() as u64;
        let relevant: Vec<_> = placed
            .iter()
            .filter(|(_, p, o, d, _)| p == path && *o < read_end && *offset < o + d.len() as u64)
            .collect();
        let mut spans: Vec<(u64, u64)> = relevant
            .iter()
            .map(|(_, _, o, d, _)| ((*o).max(*offset), (o + d.len() as u64).min(read_end)))
            .collect();
        spans.sort_unstable();
        let mut covered = Vec::new();
        let mut next = *offset;
        for (lo, hi) in spans {
            if lo.max(next) < hi {
                covered.push(lo.max(next)..hi);
            }
            next = next.max(hi);
        }
        let missed = covered.into_iter().flatten().find_map(|at| {
            let got = data[(at - offset) as usize];
            let covering = relevant
                .iter()
                .copied()
                .filter(|(_, _, o, d, _)| *o <= at && at < o + d.len() as u64);
            // The last mutation of this byte to complete before the read began.
            let latest = covering
                .clone()
                .filter(|(_, _, _, _, until)| *until < read.invoke_ns)
                .max_by_key(|(_, _, _, _, until)| *until)?;
            // Every other mutation of the byte began after the read ended, or succeeded before
            // the latest one began (its `until` is infinite if it failed).
            let alone = covering.clone().all(|(o, _, _, _, until)| {
                o.id == latest.0.id || o.invoke_ns >= end || *until < latest.0.invoke_ns
            });
            (alone && got != latest.3[(at - latest.2) as usize]).then_some(Stale {
                read,
                missed: latest.0,
                missed_done_ns: latest.4,
            })
        });
        stale.extend(missed);
    }
    (reads, stale)
}

/// Whether `run` is a sequence of `records`, each whole, or cut on its left (a suffix) or right (a
/// prefix); or, alone, any piece of one record.
///
/// Linear in the run and the records: a read of a long stretch of records must not cost their
/// length squared. The longest match of each record at every position of the run, forwards (a
/// prefix starting there) and backwards (a suffix ending there), comes from the Z-function; any
/// shorter prefix or suffix then matches too, so the best record at a position stands for all.
fn tiled_by_records(run: &[u8], records: &[&[u8]]) -> bool {
    let n = run.len();
    if records.iter().any(|r| occurs_in(run, r)) {
        return true;
    }
    // prefix[p]: the longest record prefix that starts the run at p; suffix[e]: the longest
    // record suffix that ends the run at e.
    let mut prefix = vec![0usize; n];
    let mut suffix = vec![0usize; n + 1];
    let reversed: Vec<u8> = run.iter().rev().copied().collect();
    for r in records {
        let forward = matches_at(r, run);
        let rev_r: Vec<u8> = r.iter().rev().copied().collect();
        let backward = matches_at(&rev_r, &reversed);
        for p in 0..n {
            prefix[p] = prefix[p].max(forward[p]);
            // The run read backwards from its end e = n - q.
            suffix[n - p] = suffix[n - p].max(backward[p]);
        }
    }
    // reach[p]: the bytes run[..p] are tiled. A prefix from a reached p reaches up to p +
    // prefix[p] (`frontier`); a suffix ending at e reaches e from any of the suffix[e] positions
    // before it (counted in `reached_before`).
    let mut reach = vec![false; n + 1];
    let mut reached_before = vec![0usize; n + 2]; // reached_before[i]: reached positions < i
    reach[0] = true;
    let mut frontier = 0;
    for e in 0..=n {
        if e > 0 {
            let from = e - suffix[e];
            let by_suffix = suffix[e] > 0 && reached_before[e] > reached_before[from];
            reach[e] = e <= frontier || by_suffix;
        }
        reached_before[e + 1] = reached_before[e] + usize::from(reach[e]);
        if reach[e] && e < n {
            frontier = frontier.max(e + prefix[e]);
        }
    }
    reach[n]
}

/// Whether `needle` occurs anywhere in `hay`.
fn occurs_in(needle: &[u8], hay: &[u8]) -> bool {
    needle.len() <= hay.len() && matches_at(needle, hay).contains(&needle.len())
}

/// For each position of `text`, how many bytes of `pattern` match from there (at most its
/// length): the Z-function of `pattern`, a separator no byte equals, then `text`.
fn matches_at(pattern: &[u8], text: &[u8]) -> Vec<usize> {
    let s: Vec<u16> = pattern
        .iter()
        .map(|&b| u16::from(b))
        .chain(std::iter::once(256))
        .chain(text.iter().map(|&b| u16::from(b)))
        .collect();
    let mut z = vec![0usize; s.len()];
    let (mut l, mut r) = (0, 0);
    for i in 1..s.len() {
        if i < r {
            z[i] = z[i - l].min(r - i);
        }
        while i + z[i] < s.len() && s[z[i]] == s[i + z[i]] {
            z[i] += 1;
        }
        if i + z[i] > r {
            l = i;
            r = i + z[i];
        }
    }
    z.split_off(pattern.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::{rec, write};
    use super::*;

    fn read(id: usize, offset: u64, data: &[u8], t: (u64, u64)) -> OpRecord {
        let op = OpSpec::Read {
            path: "/f".into(),
            offset,
            len: data.len() as u64,
        };
        rec(
            id,
            op,
            t,
            OpResult::Data {
                data: data.to_vec(),
            },
        )
    }

    fn append(id: usize, data: &[u8], t: (u64, u64)) -> OpRecord {
        let op = OpSpec::Append {
            path: "/f".into(),
            data: data.to_vec(),
        };
        let failed = OpResult::from_err(&node::GfsError::RetriesExhausted {
            attempts: 6,
            last: Box::new(node::GfsError::Network(String::new())),
        });
        rec(id, op, t, failed)
    }

    #[test]
    fn written_bytes_padding_and_records_are_explained() {
        let h = [
            write(0, 2, b"abc", (0, 10), OpResult::Ok),
            append(1, b"RECORD", (0, 10)),
            append(2, b"xy", (0, 10)),
            read(3, 0, b"\0\0abc\0CORDxyRECORDxyRExyORD", (20, 30)),
        ];
        assert_eq!(check(&h), None);
    }

    #[test]
    fn stale_reads_are_counted_not_failed() {
        let w = write(0, 0, b"ab", (0, 10), OpResult::Ok);
        // The old (empty) content after the write completed: stale, yet no violation.
        let h = [w.clone(), read(1, 0, b"\0\0", (20, 30))];
        assert_eq!(stale_reads(&h), (1, 1));
        assert_eq!(check(&h), None);
        // The written bytes: fresh.
        assert_eq!(
            stale_reads(&[w.clone(), read(1, 0, b"ab", (20, 30))]),
            (1, 0)
        );
        // Another write of the bytes in flight: either value is fresh.
        let h = [
            w.clone(),
            write(2, 1, b"c", (15, 40), OpResult::Ok),
            read(1, 0, b"a\0", (20, 30)),
        ];
        assert_eq!(stale_reads(&h), (1, 0));
        // An older write that the latest one superseded does not excuse its bytes.
        let h = [
            write(2, 0, b"zz", (0, 5), OpResult::Ok),
            write(0, 0, b"ab", (6, 10), OpResult::Ok),
            read(1, 0, b"zz", (20, 30)),
        ];
        assert_eq!(stale_reads(&h), (1, 1));
    }

    #[test]
    fn invented_bytes_are_rejected() {
        // A byte no write put at that offset.
        let h = [
            write(0, 2, b"abc", (0, 10), OpResult::Ok),
            read(1, 2, b"aXc", (20, 30)),
        ];
        let v = check(&h).expect("invented byte caught");
        assert!(v.report.contains("file offset 3..4"), "{}", v.report);
        assert!(v.report.contains("|aXc|"), "{}", v.report);
        // The right bytes at the wrong offset.
        let h = [
            write(0, 2, b"abc", (0, 10), OpResult::Ok),
            read(1, 3, b"abc", (20, 30)),
        ];
        assert!(check(&h).is_some());
        // Bytes of a write invoked only after the read completed.
        let h = [
            read(0, 0, b"ab", (0, 10)),
            write(1, 0, b"ab", (20, 30), OpResult::Ok),
        ];
        assert!(check(&h).is_some());
        // A record cut on both sides, between two others: not how appends land.
        let h = [
            append(0, b"RECORD", (0, 10)),
            append(1, b"xy", (0, 10)),
            read(2, 0, b"xyECOxy", (20, 30)),
        ];
        assert!(check(&h).is_some());
    }

    /// The definition, checked position by position (quadratic): what `tiled_by_records` must
    /// agree with.
    fn tiled_slowly(run: &[u8], records: &[&[u8]]) -> bool {
        if records
            .iter()
            .any(|r| r.windows(run.len()).any(|w| w == run))
        {
            return true;
        }
        let mut reach = vec![false; run.len() + 1];
        reach[0] = true;
        for p in 0..run.len() {
            if !reach[p] {
                continue;
            }
            for r in records {
                for k in 0..r.len() {
                    // r[k..] as a piece (a suffix, or the whole record at k = 0)
                    if run[p..].starts_with(&r[k..]) {
                        reach[p + r.len() - k] = true;
                    }
                }
                for j in 1..=r.len().min(run.len() - p) {
                    if run[p..p + j] == r[..j] {
                        reach[p + j] = true; // a prefix
                    }
                }
            }
        }
        reach[run.len()]
    }

    #[test]
    fn tiling_agrees_with_its_definition_on_random_runs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut tiled, mut not) = (0, 0);
        for _ in 0..3000 {
            // A small alphabet makes many partial matches.
            let records: Vec<Vec<u8>> = (0..rng.gen_range(1..4))
                .map(|_| {
                    (0..rng.gen_range(1..7))
                        .map(|_| rng.gen_range(1..4))
                        .collect()
                })
                .collect();
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            let mut run = Vec::new();
            for _ in 0..rng.gen_range(1..5) {
                let r = &records[rng.gen_range(0..records.len())];
                let (a, b) = (rng.gen_range(0..r.len()), rng.gen_range(0..=r.len()));
                run.extend_from_slice(&r[a.min(b)..a.max(b)]);
                if rng.gen_bool(0.2) {
                    run.push(rng.gen_range(1..5));
                }
            }
            if run.is_empty() {
                continue;
            }
            let want = tiled_slowly(&run, &refs);
            assert_eq!(
                tiled_by_records(&run, &refs),
                want,
                "{run:?} by {records:?}"
            );
            if want {
                tiled += 1;
            } else {
                not += 1;
            }
        }
        assert!(
            tiled > 300 && not > 300,
            "both answers exercised: {tiled} / {not}"
        );
    }
}
