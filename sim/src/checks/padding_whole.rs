//! Check `padding_whole`: a chunk that a record append padded is padded to its end on every
//! current replica: the replica is as long as a chunk, and holds zeros from where the padding
//! began, except for bytes a later `write` could have put there.
//!
//! Must always hold. GFS §3.3: when a record does not fit, the primary pads the chunk to its
//! maximum size, tells the secondaries to do the same, and sends the client to the next chunk; the
//! padding is part of what every replica holds. The check takes each `chunk_padded` the primary
//! emitted (only once every secondary applied the pad) for a chunk still in the master's table, and
//! reads the bytes of every current replica. The client fills short chunks with zeros when it
//! reads, so a pad that stops short, or a replica of the wrong length, is invisible to every
//! check that reads through a client.

use super::{context, Inputs, Violation};
use crate::workload::OpSpec;
use node::msg::ChunkDump;
use std::collections::BTreeMap;

pub const NAME: &str = "padding_whole";

pub fn check(inputs: &Inputs) -> Option<Violation> {
    let cs = inputs.chunk_size_bytes;
    let by_handle: BTreeMap<node::ChunkHandle, &ChunkDump> =
        inputs.state.chunks.iter().map(|c| (c.handle, c)).collect();
    let mut findings = Vec::new();
    for (i, e) in inputs.events.iter().enumerate() {
        let node::trace::Event::ChunkPadded { chunk, from, .. } = e.event else {
            continue;
        };
        let Some(dump) = by_handle.get(&chunk) else {
            continue; // deleted since: nothing left to judge
        };
        // The chunk's bytes any write of its file may have reached (whatever its outcome).
        let base = dump.index * cs;
        let written: Vec<(u64, u64)> = inputs
            .history
            .iter()
            .filter_map(|op| match &op.op {
                OpSpec::Write { path, offset, data } if *path == dump.path => {
                    let (lo, hi) = (*offset, offset + data.len() as u64);
                    (lo < base + cs && hi > base)
                        .then(|| (lo.max(base) - base, hi.min(base + cs) - base))
                }
                _ => None,
            })
            .collect();
        let where_ = |s: &node::ServerId| {
            format!(
                "chunk {chunk} ({} #{}) on {s}, padded from {from} at {:.3} ms (event #{i})",
                dump.path,
                dump.index,
                e.time_ns as f64 / 1e6
            )
        };
        for s in &dump.replicas {
            let Some(Ok(r)) = inputs.state.replicas.get(&(chunk, *s)) else {
                continue; // unread replicas are `acked_on_replicas`' to report
            };
            if r.data.len() != cs {
                findings.push(format!(
                    "{}: the replica is {} bytes long, not the chunk's {cs}",
                    where_(s),
                    r.data.len()
                ));
                continue;
            }
            let stray = r.data.runs().find_map(|(at, bytes)| {
                bytes.iter().enumerate().find_map(|(k, &b)| {
                    let off = at + k as u64;
                    let judged =
                        off >= from && !written.iter().any(|&(lo, hi)| off >= lo && off < hi);
                    (judged && b != 0).then_some(off)
                })
            });
            if let Some(off) = stray {
                findings.push(format!(
                    "{}: byte {off} is not padding; {}",
                    where_(s),
                    context(&r.data, off)
                ));
            }
        }
    }
    if findings.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} replicas of padded chunks are not padded to the chunk's end:",
            findings.len()
        ),
        findings.len(),
        findings,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{one_chunk_state, test_inputs};
    use super::*;
    use crate::checks::model::tests::{rec, write};
    use crate::history::OpResult;
    use node::trace::{Entry, Event, NodeName};

    #[test]
    fn short_or_dirty_padding_is_caught_and_later_writes_are_not() {
        // Chunk 0 of /f (64 bytes) padded from byte 60 by an append.
        let events = [Entry {
            time_ns: 5_000_000,
            node: NodeName::Cs(node::ServerId(0)),
            event: Event::ChunkPadded {
                chunk: node::ChunkHandle(1),
                from: 60,
                data: node::types::DataId { client: 0, seq: 0 },
            },
        }];
        let judge = |history: &[crate::history::OpRecord], replicas: &[&[u8]]| {
            let state = one_chunk_state(replicas);
            let mut inputs = test_inputs(history, &state, 64, 2, 0);
            inputs.events = &events;
            check(&inputs)
        };
        let padded = [vec![7u8; 60], vec![0; 4]].concat();
        assert_eq!(judge(&[], &[&padded, &padded]), None);

        // One replica stops a byte short: its length gives it away.
        let short = &padded[..63];
        let v = judge(&[], &[&padded, short]).expect("short pad caught");
        assert!(
            v.report.contains("on cs1, padded from 60 at 5.000 ms (event #0): the replica is 63 bytes long, not the chunk's 64"),
            "{}",
            v.report
        );
        // Bytes in the padding that no write explains.
        let mut dirty = padded.clone();
        dirty[62] = 0x55;
        let v = judge(&[], &[&dirty, &padded]).expect("dirty pad caught");
        assert!(
            v.report.contains("on cs0") && v.report.contains("byte 62 is not padding"),
            "{}",
            v.report
        );
        // ... which a write over them does explain, whatever it returned.
        let over = [write(0, 61, b"\x55\x55", (10, 20), OpResult::Ok)];
        assert_eq!(judge(&over, &[&dirty, &dirty]), None);
        // Bytes before the padding are not its business.
        let mut before = padded.clone();
        before[59] = 1;
        assert_eq!(judge(&[], &[&before, &padded]), None);
        // A chunk no longer in the master's table is not judged.
        let gone = rec(0, OpSpec::List, (0, 1), OpResult::Ok);
        let state = crate::checks::FinalState::default();
        let mut inputs = test_inputs(std::slice::from_ref(&gone), &state, 64, 2, 0);
        inputs.events = &events;
        assert_eq!(check(&inputs), None);
    }
}
