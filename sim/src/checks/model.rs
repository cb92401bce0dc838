//! What the final bytes of a file may be, byte by byte, given the history.
//!
//! An acknowledged write or record append must still be readable at the end of the run unless
//! something that may have come after it overwrote it. For each byte an acknowledged mutation `W`
//! wrote, the set of acceptable final values is:
//!
//! - `W`'s own byte, and
//! - the byte of every other mutation at that offset that did not finish before `W` began: writes
//!   whatever their outcome (a failed write may have reached some replicas, GFS §3.1 step 7), and
//!   acknowledged record appends at the offset they returned.
//!
//! A byte is not judged for `W` when an acknowledged mutation that began after `W` finished covers
//! it (that one is judged instead), nor when a create or delete of the file was not over before `W`
//! began (the file `W` wrote to may be gone). Record appends that failed have no known offset, but
//! they cannot land on bytes an acknowledged mutation holds: the primary appends at its own end of
//! the chunk, which is past every byte all replicas acknowledged (GFS §3.3), and pads only there.

use crate::history::{OpRecord, OpResult};
use crate::workload::OpSpec;
use node::GfsError;
use std::collections::BTreeMap;

/// One byte an acknowledged mutation wrote and the final values that keep the promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub path: String,
    pub offset: u64,
    /// The acknowledged mutation that wrote it (index into the history).
    pub op: usize,
    /// Acceptable final values, sorted; the first is never zero (payloads are non-zero).
    pub allowed: Vec<u8>,
}

/// A mutation with a known file offset.
struct Placed<'a> {
    rec: &'a OpRecord,
    offset: u64,
    data: &'a [u8],
    acked: bool,
}

impl Placed<'_> {
    fn byte_at(&self, b: u64) -> Option<u8> {
        (b >= self.offset && b < self.offset + self.data.len() as u64)
            .then(|| self.data[(b - self.offset) as usize])
    }
}

fn placed(rec: &OpRecord) -> Option<Placed<'_>> {
    match (&rec.op, &rec.outcome) {
        (OpSpec::Write { offset, data, .. }, outcome) => Some(Placed {
            rec,
            offset: *offset,
            data,
            acked: matches!(outcome, Some(OpResult::Ok)),
        }),
        (OpSpec::Append { data, .. }, Some(OpResult::Offset { offset })) => Some(Placed {
            rec,
            offset: *offset,
            data,
            acked: true,
        }),
        _ => None,
    }
}

/// Creates and deletes that may have changed the namespace (a refused one changed nothing).
pub fn changes_namespace(rec: &OpRecord) -> bool {
    matches!(rec.op, OpSpec::Create { .. } | OpSpec::Delete { .. })
        && !matches!(
            &rec.outcome,
            Some(OpResult::Err {
                error: GfsError::AlreadyExists(_) | GfsError::NotFound(_)
            })
        )
}

/// Every judged byte of every acknowledged mutation in `history`.
pub fn expectations(history: &[OpRecord]) -> Vec<Expectation> {
    let mut by_path: BTreeMap<&str, Vec<&OpRecord>> = BTreeMap::new();
    for rec in history {
        if let Some(p) = rec.op.path() {
            by_path.entry(p).or_default().push(rec);
        }
    }
    let mut out = Vec::new();
    for (path, recs) in by_path {
        let namespace: Vec<&OpRecord> = recs
            .iter()
            .copied()
            .filter(|r| changes_namespace(r))
            .collect();
        let muts: Vec<Placed> = recs.iter().filter_map(|r| placed(r)).collect();
        for w in muts.iter().filter(|m| m.acked) {
            if !namespace.iter().all(|n| n.precedes(w.rec)) {
                continue;
            }
            for (i, &byte) in w.data.iter().enumerate() {
                let b = w.offset + i as u64;
                let overwritten = muts.iter().any(|later| {
                    later.acked && w.rec.precedes(later.rec) && later.byte_at(b).is_some()
                });
                if overwritten {
                    continue;
                }
                let mut allowed = vec![byte];
                for other in &muts {
                    if other.rec.id != w.rec.id && !other.rec.precedes(w.rec) {
                        allowed.extend(other.byte_at(b));
                    }
                }
                allowed.sort_unstable();
                allowed.dedup();
                out.push(Expectation {
                    path: path.to_string(),
                    offset: b,
                    op: w.rec.id,
                    allowed,
                });
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn rec(id: usize, op: OpSpec, t: (u64, u64), outcome: OpResult) -> OpRecord {
        OpRecord {
            id,
            client: 0,
            op,
            invoke_ns: t.0,
            complete_ns: Some(t.1),
            outcome: Some(outcome),
            after_heal: false,
            retries: 0,
        }
    }

    pub fn write(
        id: usize,
        offset: u64,
        data: &[u8],
        t: (u64, u64),
        outcome: OpResult,
    ) -> OpRecord {
        let op = OpSpec::Write {
            path: "/f".into(),
            offset,
            data: data.to_vec(),
        };
        rec(id, op, t, outcome)
    }

    #[test]
    fn later_writes_replace_earlier_and_concurrent_ones_widen_the_choice() {
        let create = rec(
            0,
            OpSpec::Create { path: "/f".into() },
            (0, 1),
            OpResult::Ok,
        );
        let a = write(1, 0, &[1, 1, 1, 1], (10, 20), OpResult::Ok);
        let b = write(2, 2, &[2, 2], (30, 40), OpResult::Ok); // after a: replaces bytes 2..4
        let c = write(
            3,
            0,
            &[3],
            (35, 45),
            OpResult::from_err(&node::GfsError::Network(String::new())),
        );
        let exps = expectations(&[create, a, b, c]);
        let get = |op, off| {
            exps.iter()
                .find(|e| e.op == op && e.offset == off)
                .map(|e| e.allowed.clone())
        };
        assert_eq!(
            get(1, 0),
            Some(vec![1, 3]),
            "a failed write after a may have landed"
        );
        assert_eq!(get(1, 1), Some(vec![1]));
        assert_eq!(get(1, 2), None, "b replaced it");
        assert_eq!(get(2, 2), Some(vec![2]));
        assert_eq!(exps.len(), 4);
    }

    #[test]
    fn a_concurrent_delete_suspends_judgement() {
        let create = rec(
            0,
            OpSpec::Create { path: "/f".into() },
            (0, 1),
            OpResult::Ok,
        );
        let w = write(1, 0, &[7], (10, 20), OpResult::Ok);
        let del = rec(
            2,
            OpSpec::Delete { path: "/f".into() },
            (15, 30),
            OpResult::Ok,
        );
        assert!(expectations(&[create.clone(), w.clone(), del]).is_empty());
        let refused = rec(
            2,
            OpSpec::Create { path: "/f".into() },
            (15, 30),
            OpResult::from_err(&node::GfsError::AlreadyExists(String::new())),
        );
        assert_eq!(expectations(&[create, w, refused]).len(), 1);
    }
}
