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

use super::{chunks_by_position, context, describe, Inputs, Violation};
use crate::history::{OpRecord, OpResult};
use crate::records;
use crate::workload::OpSpec;
use node::msg::ChunkDump;
use node::GfsError;
use node::ServerId;
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
    /// Another whole copy, on every replica, of a record appended at least once (GFS §3.3).
    Duplicate,
    /// The zeros a primary wrote to fill a chunk a record did not fit in (GFS §3.3).
    Padding,
    Superseded,
    /// A failed record append whose record is on no current replica: nothing of it landed.
    NotLanded,
    /// A failed record append that cannot be located: raw bytes rather than a record, or its
    /// file was deleted or re-created after it began.
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
    pub const ALL: [State; 8] = [
        State::Defined,
        State::Consistent,
        State::Inconsistent,
        State::Duplicate,
        State::Padding,
        State::Superseded,
        State::NotLanded,
        State::Unknown,
    ];

    /// The state named `name` (as [`State::name`] spells it).
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Defined => "defined",
            State::Consistent => "consistent",
            State::Inconsistent => "inconsistent",
            State::Duplicate => "duplicate",
            State::Padding => "padding",
            State::Superseded => "superseded",
            State::NotLanded => "not landed",
            State::Unknown => "unknown offset",
        }
    }
}

/// Whether the paper allows `state` for the region a mutation was told it wrote, in cell (`row`,
/// `col`). The other regions a record append leaves (duplicates, failed attempts' leftovers,
/// padding) are allowed anywhere in its column: "defined interspersed with inconsistent".
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
    let j = judge_all(inputs);
    (j.table, j.forbidden)
}

/// Every judgement of a run.
#[derive(Debug, Default)]
pub struct Judged {
    pub table: Table,
    pub forbidden: Vec<String>,
    /// The regions each mutation left (its own, its record's other copies, its padding), by the
    /// operation's id in the history.
    pub by_op: BTreeMap<usize, Vec<(Row, Column, State)>>,
}

impl Judged {
    fn add(&mut self, op: usize, row: Row, col: Column, state: State) {
        *self.table.entry((row, col, state)).or_default() += 1;
        self.by_op.entry(op).or_default().push((row, col, state));
    }
}

/// [`judge`], keeping which mutation left which region (scenario expectations name them).
pub fn judge_all(inputs: &Inputs) -> Judged {
    let mut placed = Vec::new();
    let mut failed_appends = Vec::new();
    let mut out = Judged::default();
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
            (OpSpec::Append { .. }, _) if failed => failed_appends.push(rec),
            _ => {}
        }
    }
    let cs = inputs.chunk_size_bytes;
    let chunks = chunks_by_position(inputs.state);
    let locations = record_locations(inputs);
    // Judged only if no create or delete of the file was in flight after the mutation began: the
    // file it wrote to must be the one read at the end.
    let namespace_later = |rec: &OpRecord, path: &str| {
        inputs.history.iter().any(|o| {
            super::model::changes_namespace(o) && o.op.path() == Some(path) && !o.precedes(rec)
        })
    };
    // Whether a write that may have come after `rec` began covers part of `path[lo..hi]`.
    let overwritten = |rec: &OpRecord, path: &str, lo: u64, hi: u64| {
        placed.iter().any(|o| {
            o.col == Column::Write
                && o.path == path
                && o.offset < hi
                && lo < o.end()
                && o.until() > rec.invoke_ns
        })
    };
    // The state of a record's copy at `loc` (`holders` of `replicas` current replicas have it whole).
    let copy_state = |rec: &OpRecord, path: &str, loc: &Location, whole: State| {
        let lo = loc.index * cs + loc.within;
        if overwritten(rec, path, lo, lo + loc.len) {
            State::Superseded
        } else if loc.holders == loc.replicas && loc.replicas > 0 {
            whole
        } else {
            State::Inconsistent
        }
    };
    let mut rows = BTreeMap::new();
    let mut forbidden = Vec::new();
    for m in &placed {
        if namespace_later(m.rec, m.path) || m.data.is_empty() {
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
        out.add(m.rec.id, row, m.col, state);
        rows.insert(m.rec.id, row);
        // The record's other copies: duplicates, or leftovers of failed attempts (GFS §3.3).
        if let Some(id) = (m.col == Column::RecordAppend)
            .then(|| records::id_of(m.data))
            .flatten()
        {
            let own = (m.offset / cs, m.offset % cs);
            for loc in locations.get(&(m.path, id)).into_iter().flatten() {
                if (loc.index, loc.within) != own {
                    let state = copy_state(m.rec, m.path, loc, State::Duplicate);
                    out.add(m.rec.id, row, m.col, state);
                }
            }
        }
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
    // Failed record appends, located by their record ids: each copy found is a region.
    for rec in failed_appends {
        let OpSpec::Append { path, data } = &rec.op else {
            unreachable!("only appends are collected");
        };
        // The client refuses an oversized record unsent (GFS §3.3): nothing of it can land.
        let refused = matches!(
            &rec.outcome,
            Some(OpResult::Err {
                error: GfsError::RecordTooLarge { .. }
            })
        );
        if refused {
            out.add(rec.id, Row::Failure, Column::RecordAppend, State::NotLanded);
            continue;
        }
        let id = records::id_of(data).filter(|_| !namespace_later(rec, path));
        let Some(id) = id else {
            out.add(rec.id, Row::Failure, Column::RecordAppend, State::Unknown);
            continue;
        };
        let copies = locations.get(&(path.as_str(), id));
        if copies.is_none_or(|c| c.is_empty()) {
            out.add(rec.id, Row::Failure, Column::RecordAppend, State::NotLanded);
        }
        for loc in copies.into_iter().flatten() {
            let state = copy_state(rec, path, loc, State::Defined);
            out.add(rec.id, Row::Failure, Column::RecordAppend, state);
        }
    }
    // Padding, judged on every current replica, in the row of the append that caused it.
    for (rec, path, dump, from) in padding(inputs) {
        let row = if rec.outcome.as_ref().is_none_or(|o| o.is_failure()) {
            Row::Failure
        } else if let Some(row) = rows.get(&rec.id) {
            *row
        } else {
            continue; // its append was not judged (its file changed after it began)
        };
        if namespace_later(rec, path) {
            continue;
        }
        let lo = dump.index * cs + from;
        let state = if overwritten(rec, path, lo, (dump.index + 1) * cs) {
            State::Superseded
        } else {
            let region = |s: &ServerId| match inputs.state.replicas.get(&(dump.handle, *s)) {
                Some(Ok(r)) => r.data.get(from as usize..cs as usize),
                _ => None,
            };
            let regions: Vec<Option<&[u8]>> = dump.replicas.iter().map(region).collect();
            let first = regions.first().copied().flatten();
            if regions.is_empty() || first.is_none() || regions.iter().any(|r| *r != first) {
                State::Inconsistent
            } else if first.is_some_and(|b| b.iter().all(|&x| x == 0)) {
                State::Padding
            } else {
                State::Consistent
            }
        };
        out.add(rec.id, row, Column::RecordAppend, state);
    }
    out.forbidden = forbidden;
    out
}

/// Where a record lies on a chunk's current replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    /// Chunk index in the file and offset within the chunk.
    index: u64,
    within: u64,
    len: u64,
    /// How many of the chunk's current replicas hold the record whole there, and how many it has.
    holders: usize,
    replicas: usize,
}

/// Every record found on the current replicas, by (file, record id): the reader of
/// [`crate::records`] run over each replica's bytes.
fn record_locations<'a>(inputs: &'a Inputs) -> BTreeMap<(&'a str, u32), Vec<Location>> {
    let mut found: BTreeMap<(&str, u32, u64, u64), Location> = BTreeMap::new();
    for chunk in &inputs.state.chunks {
        for s in &chunk.replicas {
            let Some(Ok(r)) = inputs.state.replicas.get(&(chunk.handle, *s)) else {
                continue;
            };
            for f in records::scan(&r.data).records {
                let key = (chunk.path.as_str(), f.id, chunk.index, f.offset);
                found
                    .entry(key)
                    .or_insert(Location {
                        index: chunk.index,
                        within: f.offset,
                        len: f.len as u64,
                        holders: 0,
                        replicas: chunk.replicas.len(),
                    })
                    .holders += 1;
            }
        }
    }
    let mut out: BTreeMap<(&str, u32), Vec<Location>> = BTreeMap::new();
    for ((path, id, _, _), loc) in found {
        out.entry((path, id)).or_default().push(loc);
    }
    out
}

/// Every `chunk_padded` event whose chunk is still in the master's table, with the append that
/// caused it (the one its client had in flight then; a client runs one operation at a time) and
/// the offset the padding starts at.
fn padding<'a>(inputs: &'a Inputs) -> Vec<(&'a OpRecord, &'a str, &'a ChunkDump, u64)> {
    let by_handle: BTreeMap<node::ChunkHandle, &ChunkDump> =
        inputs.state.chunks.iter().map(|c| (c.handle, c)).collect();
    let mut out = Vec::new();
    for e in inputs.events {
        let node::trace::Event::ChunkPadded { chunk, from, data } = e.event else {
            continue;
        };
        let Some(dump) = by_handle.get(&chunk) else {
            continue;
        };
        let op = inputs.history.iter().find(|o| {
            o.client == data.client
                && matches!(&o.op, OpSpec::Append { path, .. } if *path == dump.path)
                && o.invoke_ns <= e.time_ns
                && o.complete_ns.is_none_or(|c| c >= e.time_ns)
        });
        if let Some(op) = op {
            out.push((op, dump.path.as_str(), *dump, from));
        }
    }
    out
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
            let state = state_with(replicas);
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
