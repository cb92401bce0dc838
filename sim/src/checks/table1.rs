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
//! Record appends that failed have no known offset and are counted, not judged.
//!
//! What the paper promises (forbidden otherwise): a serial successful write is defined; concurrent
//! successful writes are consistent (defined or not); a successful record append is defined at
//! the offset it returned. Failures may leave anything. The paper is silent on a write racing a
//! record append over the same bytes; such an append is held to the concurrent-write rule.

use super::{chunks_by_position, context, describe, Inputs, Violation};
use crate::history::{OpRecord, OpResult};
use crate::workload::OpSpec;
use std::collections::BTreeMap;
use std::fmt::Write;

pub const NAME: &str = "table1";

/// Table 1's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    SerialSuccess,
    ConcurrentSuccesses,
    Failure,
}

/// Table 1's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    Write,
    RecordAppend,
}

/// What a region was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Defined,
    Consistent,
    Inconsistent,
    Superseded,
    /// A failed record append: its offset is unknown.
    Unknown,
}

impl Row {
    pub fn name(self) -> &'static str {
        match self {
            Row::SerialSuccess => "serial success",
            Row::ConcurrentSuccesses => "concurrent successes",
            Row::Failure => "failure",
        }
    }
}

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::Write => "write",
            Column::RecordAppend => "record append",
        }
    }
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Defined => "defined",
            State::Consistent => "consistent",
            State::Inconsistent => "inconsistent",
            State::Superseded => "superseded",
            State::Unknown => "unknown offset",
        }
    }
}

/// Whether the paper allows `state` in cell (`row`, `col`).
pub fn allowed(row: Row, col: Column, state: State) -> bool {
    match (row, col, state) {
        (_, _, State::Superseded) => true,
        (Row::Failure, _, _) => true,
        (Row::SerialSuccess, Column::Write, s) => s == State::Defined,
        (Row::ConcurrentSuccesses, Column::Write, s) => {
            matches!(s, State::Defined | State::Consistent)
        }
        (_, Column::RecordAppend, s) => s == State::Defined,
    }
}

/// Counts per cell and state.
pub type Table = BTreeMap<(Row, Column, State), u64>;

struct Placed<'a> {
    rec: &'a OpRecord,
    path: &'a str,
    offset: u64,
    data: &'a [u8],
    col: Column,
    failed: bool,
}

impl Placed<'_> {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
    fn overlaps(&self, other: &Placed) -> bool {
        self.path == other.path && self.offset < other.end() && other.offset < self.end()
    }
    /// When it may last have had an effect.
    fn until(&self) -> u64 {
        if self.failed {
            u64::MAX
        } else {
            self.rec.complete_ns.unwrap_or(u64::MAX)
        }
    }
}

/// Judges every mutation of the run; returns the table and the forbidden findings.
pub fn judge(inputs: &Inputs) -> (Table, Vec<String>) {
    let mut placed = Vec::new();
    let mut table = Table::new();
    for rec in inputs.history {
        let failed = rec.outcome.as_ref().is_none_or(|o| o.is_failure());
        match (&rec.op, &rec.outcome) {
            (OpSpec::Write { path, offset, data }, o)
                if failed || matches!(o, Some(OpResult::Ok)) =>
            {
                placed.push(Placed {
                    rec,
                    path,
                    offset: *offset,
                    data,
                    col: Column::Write,
                    failed,
                });
            }
            (OpSpec::Append { path, data }, Some(OpResult::Offset { offset })) => {
                placed.push(Placed {
                    rec,
                    path,
                    offset: *offset,
                    data,
                    col: Column::RecordAppend,
                    failed: false,
                });
            }
            (OpSpec::Append { .. }, _) if failed => {
                *table
                    .entry((Row::Failure, Column::RecordAppend, State::Unknown))
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    let cs = inputs.chunk_size_bytes;
    let chunks = chunks_by_position(inputs.state);
    let mut forbidden = Vec::new();
    for m in &placed {
        // Judged only if no create or delete of the file was in flight after it began: the file
        // it wrote to must be the one read at the end.
        let namespace_later = inputs.history.iter().any(|o| {
            matches!(&o.op, OpSpec::Create { path } | OpSpec::Delete { path } if path == m.path)
                && o.outcome.as_ref().is_none_or(|r| !matches!(r, OpResult::Err { kind, .. } if kind == "already_exists" || kind == "not_found"))
                && !o.precedes(m.rec)
        });
        if namespace_later || m.data.is_empty() {
            continue;
        }
        // Writes race only where their regions overlap; record appends to one file race for its
        // end whatever the offsets they were given (GFS §3.3), so any overlap in time counts.
        let concurrent = placed.iter().any(|o| {
            o.rec.id != m.rec.id
                && (o.overlaps(m) || (m.col == Column::RecordAppend && o.path == m.path))
                && o.rec.invoke_ns < m.until()
                && m.rec.invoke_ns < o.until()
        });
        let row = if m.failed {
            Row::Failure
        } else if concurrent {
            Row::ConcurrentSuccesses
        } else {
            Row::SerialSuccess
        };
        let superseded = placed
            .iter()
            .any(|o| o.rec.id != m.rec.id && o.overlaps(m) && o.rec.invoke_ns > m.until());
        // Bytes a failed mutation in flight alongside may have landed on only some replicas
        // (GFS §2.7.1: "a failed mutation makes the region inconsistent") are not judged.
        let tainted: Vec<&Placed> = placed
            .iter()
            .filter(|o| {
                o.failed && o.rec.id != m.rec.id && o.overlaps(m) && m.rec.invoke_ns < o.until()
            })
            .collect();
        let (state, first_bad) = if superseded {
            (State::Superseded, None)
        } else {
            region_state(m, &tainted, cs, &chunks, inputs)
        };
        // A write in flight over an append's bytes may mix into them, as concurrent writes do.
        let raced_by_write = m.col == Column::RecordAppend
            && placed.iter().any(|o| {
                o.col == Column::Write
                    && o.overlaps(m)
                    && o.rec.invoke_ns < m.until()
                    && m.rec.invoke_ns < o.until()
            });
        let rule = if raced_by_write { Column::Write } else { m.col };
        *table.entry((row, m.col, state)).or_default() += 1;
        if !allowed(row, rule, state) {
            let mut finding = format!(
                "  {} {} left {}: {}",
                row.name(),
                m.col.name(),
                state.name(),
                describe(m.rec)
            );
            if let Some(b) = first_bad {
                let (index, within) = (b / cs, (b % cs) as usize);
                let _ = write!(
                    finding,
                    "\n    first bad byte: file offset {b} (chunk {index}, offset {within}); it wrote {:#04x}",
                    m.data[(b - m.offset) as usize]
                );
                if let Some(chunk) = chunks.get(&(m.path, index)) {
                    for s in &chunk.replicas {
                        let bytes = match inputs.state.replicas.get(&(chunk.handle, *s)) {
                            Some(Ok(r)) => context(&r.data, within),
                            Some(Err(e)) => format!("unreadable: {e}"),
                            None => "not read".into(),
                        };
                        let _ = write!(finding, "\n    server {} {bytes}", s.0);
                    }
                }
            }
            forbidden.push(finding);
        }
    }
    (table, forbidden)
}

/// The state of `m`'s region across the current replicas of the chunks it touches.
fn region_state(
    m: &Placed,
    tainted: &[&Placed],
    cs: u64,
    chunks: &BTreeMap<(&str, u64), &node::msg::ChunkDump>,
    inputs: &Inputs,
) -> (State, Option<u64>) {
    let mut consistent = true;
    let mut defined = true;
    let mut judged = 0;
    // The first byte where the replicas differ, and the first where they agree on other bytes.
    let (mut first_split, mut first_other) = (None, None);
    // The current chunk's index and its replicas' bytes (None: unreadable), looked up once.
    let mut replicas: Option<(u64, Vec<Option<&[u8]>>)> = None;
    for b in m.offset..m.end() {
        if tainted.iter().any(|t| t.offset <= b && b < t.end()) {
            continue;
        }
        judged += 1;
        let (index, within) = (b / cs, (b % cs) as usize);
        if replicas.as_ref().is_none_or(|(i, _)| *i != index) {
            let Some(chunk) = chunks.get(&(m.path, index)) else {
                return (State::Inconsistent, None);
            };
            let bytes = chunk
                .replicas
                .iter()
                .map(|s| match inputs.state.replicas.get(&(chunk.handle, *s)) {
                    Some(Ok(r)) => Some(r.data.as_slice()),
                    _ => None,
                })
                .collect();
            replicas = Some((index, bytes));
        }
        let values = replicas.as_ref().map_or(&[][..], |(_, v)| v.as_slice());
        let value = |r: &Option<&[u8]>| r.and_then(|d| d.get(within).copied());
        let first = values.first().and_then(value);
        if values.is_empty() || values.iter().any(|r| value(r) != first) || first.is_none() {
            consistent = false;
            first_split.get_or_insert(b);
        }
        if first != Some(m.data[(b - m.offset) as usize]) {
            defined = false;
            first_other.get_or_insert(b);
        }
    }
    if judged == 0 {
        return (State::Superseded, None);
    }
    let state = match (consistent, defined) {
        (false, _) => State::Inconsistent,
        (true, true) => State::Defined,
        (true, false) => State::Consistent,
    };
    (state, first_split.or(first_other))
}

pub fn check(inputs: &Inputs) -> Option<Violation> {
    let (_, forbidden) = judge(inputs);
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

/// Renders a table like the paper's, each cell listing the states seen with their counts.
pub fn render(table: &Table) -> String {
    let mut out = String::new();
    let cell = |row: Row, col: Column| -> String {
        let parts: Vec<String> = table
            .iter()
            .filter(|((r, c, _), _)| *r == row && *c == col)
            .map(|((_, _, s), n)| format!("{} {n}", s.name()))
            .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    };
    let _ = writeln!(out, "| | write | record append |");
    let _ = writeln!(out, "| --- | --- | --- |");
    for row in [Row::SerialSuccess, Row::ConcurrentSuccesses, Row::Failure] {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            row.name(),
            cell(row, Column::Write),
            cell(row, Column::RecordAppend)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::write;
    use super::super::{test_inputs, FinalState};
    use super::*;
    use crate::history::OpResult;
    use node::msg::{ChunkDump, ReplicaContent};
    use node::{ChunkHandle, ServerId};

    fn state_with(replicas: &[&[u8]]) -> FinalState {
        let mut state = FinalState::default();
        let servers: Vec<ServerId> = (0..replicas.len() as u32).map(ServerId).collect();
        state.chunks.push(ChunkDump {
            path: "/f".into(),
            index: 0,
            handle: ChunkHandle(1),
            version: 1,
            issued: 1,
            replicas: servers.clone(),
        });
        for (s, data) in servers.iter().zip(replicas) {
            let r = ReplicaContent {
                version: 1,
                data: data.to_vec(),
                checksums_ok: true,
            };
            state.replicas.insert((ChunkHandle(1), *s), Ok(r));
        }
        state
    }

    fn judged(history: &[OpRecord], replicas: &[&[u8]]) -> (Table, Vec<String>) {
        let state = state_with(replicas);
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
        OpResult::Err {
            kind: "retries_exhausted".into(),
            message: String::new(),
        }
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
