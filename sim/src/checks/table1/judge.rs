//! Judging a run against Table 1: place every mutation in the file (its returned offset, or its
//! record's copies found by the record reader, or its padding), decide its row, and read its
//! region on every current replica to decide its state (see the module above for the rules).

use super::taxonomy::{allowed, Column, Row, State, Table};
use crate::checks::{chunks_by_position, context, describe, Inputs};
use crate::history::{OpRecord, OpResult};
use crate::records;
use crate::workload::OpSpec;
use node::msg::ChunkDump;
use node::sparse::SparseBytes;
use node::GfsError;
use node::ServerId;
use std::collections::BTreeMap;
use std::fmt::Write;

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
            crate::checks::model::changes_namespace(o)
                && o.op.path() == Some(path)
                && !o.precedes(rec)
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
                            Some(Ok(r)) => context(&r.data, within as u64),
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
            // A replica shorter than the chunk has no whole padding region.
            let region = |s: &ServerId| match inputs.state.replicas.get(&(dump.handle, *s)) {
                Some(Ok(r)) if r.data.len() >= cs => Some(r.data.slice(from, cs - from)),
                _ => None,
            };
            let regions: Vec<Option<SparseBytes>> = dump.replicas.iter().map(region).collect();
            let first = regions.first().cloned().flatten();
            if regions.is_empty() || first.is_none() || regions.iter().any(|r| *r != first) {
                State::Inconsistent
            } else if first.as_ref().is_some_and(SparseBytes::all_zero) {
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
            for f in records::scan_sparse(&r.data).records {
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
    let mut replicas: Option<(u64, Vec<Option<&SparseBytes>>)> = None;
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
                    Some(Ok(r)) => Some(&r.data),
                    _ => None,
                })
                .collect();
            replicas = Some((index, bytes));
        }
        let values = replicas.as_ref().map_or(&[][..], |(_, v)| v.as_slice());
        let value = |r: &Option<&SparseBytes>| r.and_then(|d| d.get(within as u64));
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
