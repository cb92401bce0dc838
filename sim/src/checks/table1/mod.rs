//! Check `table1`: every mutation's file region, judged against the consistency model of GFS §2.7
//! (the paper's Table 1), and the counts that reproduce that table from a sweep.
//!
//! After the liveness phase, every current replica of every chunk is read directly, and each
//! mutation is judged by the bytes of its region:
//!
//! - **inconsistent**: the replicas differ somewhere in it (or one is too short);
//! - **consistent**: they agree, but not on what the mutation wrote (another mutation mixed in);
//! - **defined**: they agree and hold exactly what the mutation wrote.
//!
//! Mutations are **serial** (no other mutation of overlapping bytes in flight during it),
//! **concurrent**, or **failed** (an error, or never returned); a failed mutation counts as in
//! flight from its start to the end of the run, since an attempt may still land late. A mutation
//! whose bytes a later one overwrote is **superseded** and not judged against the final state;
//! bytes that an overlapping failed mutation may have reached are not judged either, since that
//! failure may have landed on only some replicas (a region wholly covered counts as superseded).
//!
//! Record appends carry self-identifying records ([`crate::records`]), so every copy of a record
//! can be found on the replicas with the reader applications use. Besides the region at the offset
//! an append returned, each other copy is a region of its own: a **duplicate** when it is whole on
//! every replica, **inconsistent** when only some replicas have it (a failed attempt's leftover).
//! A failed append is judged by its copies too (**defined** where it landed everywhere,
//! **inconsistent** where it did not), or is **not landed** when no replica has it; raw-byte appends
//! that failed have an **unknown offset**. **Padding** (GFS §3.3) is a region of its own, in the row
//! of the append whose attempt caused it: zeros on every replica, or inconsistent.
//!
//! What the paper promises (forbidden otherwise): a serial successful write is defined; concurrent
//! successful writes are consistent (defined or not); a successful record append is defined at
//! the offset it returned, and its other regions may be anything ("defined interspersed with
//! inconsistent"). Failures may leave anything. The paper is silent on a write racing a
//! record append over the same bytes; such an append is held to the concurrent-write rule.

mod judge;
mod render;
mod taxonomy;

pub use judge::{judge, judge_all, Judged};
pub use render::render;
pub use taxonomy::{allowed, Column, Row, State, Table};

use super::{Inputs, Violation};
use std::fmt::Write;

pub const NAME: &str = "table1";

pub fn check(inputs: &Inputs) -> Option<Violation> {
    violation(&judge(inputs).1)
}

/// The check's verdict on what [`judge_all`] found forbidden.
pub fn violation(forbidden: &[String]) -> Option<Violation> {
    (!forbidden.is_empty()).then(|| {
        let mut report = format!(
            "{} mutations left a state GFS Table 1 forbids:\n",
            forbidden.len()
        );
        for f in forbidden.iter().take(8) {
            let _ = writeln!(report, "{f}");
        }
        Violation {
            check: NAME,
            report,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::write;
    use super::super::{one_chunk_state, test_inputs};
    use super::*;
    use crate::history::{OpRecord, OpResult};
    use crate::workload::OpSpec;
    use node::ServerId;

    fn judged(history: &[OpRecord], replicas: &[&[u8]]) -> (Table, Vec<String>) {
        let state = one_chunk_state(replicas);
        judge(&test_inputs(history, &state, 64, replicas.len() as u32, 0))
    }

    fn append(id: usize, data: &[u8], t: (u64, u64), offset: u64) -> OpRecord {
        let op = OpSpec::Append {
            path: "/f".into(),
            data: data.to_vec(),
        };
        super::super::model::tests::rec(id, op, t, OpResult::Offset { offset })
    }

    fn failed() -> OpResult {
        OpResult::from_err(&node::GfsError::RetriesExhausted {
            attempts: 6,
            last: Box::new(node::GfsError::Network(String::new())),
        })
    }

    #[test]
    fn one_history_per_cell_of_table_1() {
        let key = |r, c, s| (r, c, s);
        // Serial successful write: defined.
        let (t, bad) = judged(
            &[write(0, 0, b"ab", (0, 10), OpResult::Ok)],
            &[b"ab", b"ab"],
        );
        assert_eq!(
            t.get(&key(Row::SerialSuccess, Column::Write, State::Defined)),
            Some(&1)
        );
        assert!(bad.is_empty());
        // Concurrent successful writes: consistent but undefined (mixed bytes, same everywhere).
        let h = [
            write(0, 0, b"aa", (0, 10), OpResult::Ok),
            write(1, 1, b"bb", (5, 15), OpResult::Ok),
        ];
        let (t, bad) = judged(&h, &[b"abb", b"abb"]);
        assert_eq!(
            t.get(&key(
                Row::ConcurrentSuccesses,
                Column::Write,
                State::Consistent
            )),
            Some(&1)
        );
        assert_eq!(
            t.get(&key(
                Row::ConcurrentSuccesses,
                Column::Write,
                State::Defined
            )),
            Some(&1)
        );
        assert!(bad.is_empty());
        // A failed write may leave its region inconsistent.
        let (t, bad) = judged(&[write(0, 0, b"zz", (0, 10), failed())], &[b"zz", b"\0\0"]);
        assert_eq!(
            t.get(&key(Row::Failure, Column::Write, State::Inconsistent)),
            Some(&1)
        );
        assert!(bad.is_empty());
        // Successful record appends, serial and concurrent: defined at their offsets.
        let h = [
            append(0, b"r1", (0, 10), 0),
            append(1, b"r2", (20, 30), 2),
            append(2, b"r3", (25, 35), 4),
        ];
        let (t, bad) = judged(&h, &[b"r1r2r3", b"r1r2r3"]);
        assert_eq!(
            t.get(&key(
                Row::SerialSuccess,
                Column::RecordAppend,
                State::Defined
            )),
            Some(&1)
        );
        assert_eq!(
            t.get(&key(
                Row::ConcurrentSuccesses,
                Column::RecordAppend,
                State::Defined
            )),
            Some(&2)
        );
        assert!(bad.is_empty(), "{bad:?}");
        // A later write over an earlier one makes the earlier superseded.
        let h = [
            write(0, 0, b"aa", (0, 10), OpResult::Ok),
            write(1, 0, b"bb", (20, 30), OpResult::Ok),
        ];
        let (t, _) = judged(&h, &[b"bb", b"bb"]);
        assert_eq!(
            t.get(&key(Row::SerialSuccess, Column::Write, State::Superseded)),
            Some(&1)
        );
        // A failed append has no known offset.
        let op = OpSpec::Append {
            path: "/f".into(),
            data: b"x".to_vec(),
        };
        let h = [super::super::model::tests::rec(0, op, (0, 10), failed())];
        let (t, _) = judged(&h, &[b"", b""]);
        assert_eq!(
            t.get(&key(Row::Failure, Column::RecordAppend, State::Unknown)),
            Some(&1)
        );
        assert!(
            render(&t).contains("| failure | - | unknown offset 1 |"),
            "{}",
            render(&t)
        );
    }

    /// Record appends of self-identifying records: where their copies are and what they are.
    #[test]
    fn record_copies_duplicates_leftovers_and_padding_are_their_own_regions() {
        use crate::records::encode;
        let key = |r, s| (r, Column::RecordAppend, s);
        let (a, b) = (encode(1, b"a"), encode(2, b"b"));
        let n = a.len() as u64;
        let rec_append = |id, data: &[u8], t, outcome| {
            let op = OpSpec::Append {
                path: "/f".into(),
                data: data.to_vec(),
            };
            super::super::model::tests::rec(id, op, t, outcome)
        };
        // A failed append whose record landed whole on every replica, one that landed on one
        // replica only, and one that landed nowhere.
        let c = encode(3, b"c");
        let h = [
            rec_append(0, &a, (0, 10), failed()),
            rec_append(1, &b, (20, 30), failed()),
            rec_append(2, &c, (40, 50), failed()),
        ];
        let r0 = [&a[..], &b[..]].concat();
        let (t, bad) = judged(&h, &[&r0, &a]);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(t.get(&key(Row::Failure, State::Defined)), Some(&1));
        assert_eq!(t.get(&key(Row::Failure, State::Inconsistent)), Some(&1));
        assert_eq!(t.get(&key(Row::Failure, State::NotLanded)), Some(&1));
        // A serial append retried after a failed attempt left its record on one replica: its own
        // region is defined, the leftover inconsistent; a copy on both replicas is a duplicate.
        let h = [append(0, &a, (0, 10), n)];
        let (t, bad) = judged(
            &h,
            &[
                &[&a[..], &a[..]].concat(),
                &[&vec![0x55; a.len()][..], &a[..]].concat(),
            ],
        );
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(t.get(&key(Row::SerialSuccess, State::Defined)), Some(&1));
        assert_eq!(
            t.get(&key(Row::SerialSuccess, State::Inconsistent)),
            Some(&1)
        );
        let (t, _) = judged(
            &h,
            &[&[&a[..], &a[..]].concat(), &[&a[..], &a[..]].concat()],
        );
        assert_eq!(t.get(&key(Row::SerialSuccess, State::Duplicate)), Some(&1));
        // A later write over the leftover supersedes it.
        let h = [
            append(0, &a, (0, 10), n),
            write(1, 2, b"zz", (20, 30), OpResult::Ok),
        ];
        let (t, _) = judged(
            &h,
            &[
                &[&a[..], &a[..]].concat(),
                &[&vec![0x55; a.len()][..], &a[..]].concat(),
            ],
        );
        assert_eq!(t.get(&key(Row::SerialSuccess, State::Superseded)), Some(&1));
        // Padding the append's client caused (chunk 0 from byte 60), on every replica or on one.
        let state_of = |tail: &[u8]| {
            let mut full = vec![7u8; 60];
            full.extend_from_slice(tail);
            full
        };
        let padded = state_of(&[0; 4]);
        let events = [node::trace::Entry {
            time_ns: 5,
            node: node::trace::NodeName::Cs(ServerId(0)),
            event: node::trace::Event::ChunkPadded {
                chunk: node::ChunkHandle(1),
                from: 60,
                data: node::types::DataId { client: 0, seq: 0 },
            },
        }];
        let h = [rec_append(0, b"x", (0, 10), failed())];
        let judge_with = |replicas: &[&[u8]]| {
            let state = one_chunk_state(replicas);
            let mut inputs = test_inputs(&h, &state, 64, 2, 0);
            inputs.events = &events;
            judge(&inputs).0
        };
        let t = judge_with(&[&padded, &padded]);
        assert_eq!(t.get(&key(Row::Failure, State::Padding)), Some(&1));
        assert_eq!(t.get(&key(Row::Failure, State::Unknown)), Some(&1));
        let t = judge_with(&[&padded, &state_of(b"\x01\x01\x01\x01")]);
        assert_eq!(t.get(&key(Row::Failure, State::Inconsistent)), Some(&1));
        assert_eq!(t.get(&key(Row::Failure, State::Padding)), None);
    }

    #[test]
    fn forbidden_states_are_rejected() {
        let key = |r, c, s| (r, c, s);
        // A serial successful write left inconsistent.
        let (_, bad) = judged(
            &[write(0, 0, b"ab", (0, 10), OpResult::Ok)],
            &[b"ab", b"aX"],
        );
        assert!(
            bad[0].contains("serial success write left inconsistent"),
            "{bad:?}"
        );
        // The report shows where, and every replica's bytes around it.
        assert!(bad[0].contains("first bad byte: file offset 1"), "{bad:?}");
        assert!(bad[0].contains("server 0 bytes 0..2") && bad[0].contains("|ab|"));
        assert!(bad[0].contains("server 1 bytes 0..2") && bad[0].contains("|aX|"));
        // A serial successful write consistent but not what it wrote.
        let (_, bad) = judged(
            &[write(0, 0, b"ab", (0, 10), OpResult::Ok)],
            &[b"XY", b"XY"],
        );
        assert!(bad[0].contains("left consistent"), "{bad:?}");
        // Concurrent successful writes left inconsistent.
        let h = [
            write(0, 0, b"aa", (0, 10), OpResult::Ok),
            write(1, 1, b"bb", (5, 15), OpResult::Ok),
        ];
        let (_, bad) = judged(&h, &[b"abb", b"aab"]);
        assert!(
            bad.iter()
                .any(|b| b.contains("concurrent successes write left inconsistent")),
            "{bad:?}"
        );
        // A write racing an append may mix into it; the same bytes with no write are forbidden.
        let h = [
            append(0, b"r1", (0, 10), 0),
            write(1, 1, b"w", (5, 15), OpResult::Ok),
        ];
        let (t, bad) = judged(&h, &[b"rw", b"rw"]);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            t.get(&key(
                Row::ConcurrentSuccesses,
                Column::RecordAppend,
                State::Consistent
            )),
            Some(&1)
        );
        let (_, bad) = judged(&[append(0, b"r1", (0, 10), 0)], &[b"rw", b"rw"]);
        assert!(bad[0].contains("record append left consistent"), "{bad:?}");
        // A failed write overlapping a successful one may split the replicas on its bytes only.
        let h = [
            write(0, 0, b"ab", (0, 10), OpResult::Ok),
            write(1, 1, b"Z", (5, 15), failed()),
        ];
        assert!(judged(&h, &[b"aZ", b"ab"]).1.is_empty());
        assert!(!judged(&h, &[b"XZ", b"ab"]).1.is_empty());
        // An acknowledged append missing on one replica.
        let (_, bad) = judged(&[append(0, b"r1", (0, 10), 0)], &[b"r1", b""]);
        assert!(
            bad[0].contains("record append left inconsistent"),
            "{bad:?}"
        );
    }
}
