//! Check `divergence_explained`: wherever the current replicas of a chunk differ, a mutation that
//! did not complete on every replica covered those bytes.
//!
//! Must always hold. GFS §2.7.1 and §3.1 step 7: a failed mutation may leave its region
//! inconsistent, and nothing else may. `replicas_identical` demands identical replicas only of
//! runs in which nothing failed, which leaves out most runs with faults; this check judges every
//! run, byte by byte. The regions a mutation may have left behind are known from what primaries
//! did: each `mutation_ordered` says which bytes the mutation covers; it is *incomplete* if its
//! primary then reported a secondary failing it (`mutation_partial`), or if its primary was killed
//! (a crash or torn write) within [`SETTLE_TIMEOUTS`] RPC timeouts after ordering it, before it
//! could hear from every secondary. Any byte where two current replicas differ (in content, or
//! because one is longer), outside every incomplete mutation's region of that chunk (under any
//! version), is divergence nothing explains; except zeros where the other replica ends, before an
//! incomplete mutation's region (a write past a replica's end fills the gap with zeros). Replicas that fail their checksums are left to
//! `acked_on_replicas`.

use super::{context, Inputs, Violation};
use node::trace::{Event, FaultOn, NodeName};
use node::{ChunkHandle, ServerId};
use std::collections::{BTreeMap, BTreeSet};

pub const NAME: &str = "divergence_explained";

/// How many RPC timeouts a primary may take from ordering a mutation to hearing every secondary:
/// its local write, then the forwards, each bounded by one timeout, with margin.
pub const SETTLE_TIMEOUTS: u64 = 3;

/// Each chunk's byte ranges that an incomplete mutation covered, merged and sorted.
pub fn incomplete_regions(inputs: &Inputs) -> BTreeMap<ChunkHandle, Vec<(u64, u64)>> {
    let window_ns = SETTLE_TIMEOUTS * inputs.rpc_timeout_ms * 1_000_000;
    let mut ordered: Vec<(ServerId, u64, ChunkHandle, u64, u64, u64, u64)> = Vec::new();
    let mut partial: BTreeSet<(ChunkHandle, u64, u64)> = BTreeSet::new();
    let mut kills: BTreeMap<ServerId, Vec<u64>> = BTreeMap::new();
    for e in inputs.events {
        match &e.event {
            Event::MutationOrdered {
                chunk,
                version,
                serial,
                offset,
                len,
            } => {
                if let NodeName::Cs(s) = e.node {
                    ordered.push((s, e.time_ns, *chunk, *version, *serial, *offset, *len));
                }
            }
            Event::MutationPartial {
                chunk,
                version,
                serial,
                ..
            } => {
                partial.insert((*chunk, *version, *serial));
            }
            Event::FaultInjected {
                fault,
                on: FaultOn::Node(NodeName::Cs(s)),
                ..
            } if fault.kills_node() => kills.entry(*s).or_default().push(e.time_ns),
            Event::WriteTorn {
                node: NodeName::Cs(s),
            } => kills.entry(*s).or_default().push(e.time_ns),
            _ => {}
        }
    }
    let mut out: BTreeMap<ChunkHandle, Vec<(u64, u64)>> = BTreeMap::new();
    for (server, t, chunk, version, serial, offset, len) in ordered {
        let killed = kills
            .get(&server)
            .is_some_and(|ks| ks.iter().any(|&k| k >= t && k <= t + window_ns));
        if len > 0 && (killed || partial.contains(&(chunk, version, serial))) {
            out.entry(chunk).or_default().push((offset, offset + len));
        }
    }
    for spans in out.values_mut() {
        spans.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
        for &(lo, hi) in spans.iter() {
            match merged.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        *spans = merged;
    }
    out
}

/// The first byte of `[lo, hi)` of `bytes` that is not zero.
fn first_nonzero(bytes: &node::sparse::SparseBytes, lo: u64, hi: u64) -> Option<u64> {
    bytes
        .slice(lo, hi - lo)
        .runs()
        .find_map(|(at, run)| run.iter().position(|&b| b != 0).map(|i| lo + at + i as u64))
}

pub fn check(inputs: &Inputs) -> Option<Violation> {
    let taint = incomplete_regions(inputs);
    let none = Vec::new();
    let mut findings = Vec::new();
    for chunk in &inputs.state.chunks {
        if chunk.version == 0 || node::master::state::is_hidden(&chunk.path) {
            continue;
        }
        let readable: Vec<(ServerId, &node::sparse::SparseBytes)> = chunk
            .replicas
            .iter()
            .filter_map(|s| match inputs.state.replicas.get(&(chunk.handle, *s)) {
                Some(Ok(r)) if r.checksums_ok => Some((*s, &r.data)),
                _ => None,
            })
            .collect();
        let Some(&(first_server, first)) = readable.first() else {
            continue;
        };
        let spans = taint.get(&chunk.handle).unwrap_or(&none);
        for &(server, data) in &readable[1..] {
            let mut from = 0;
            while let Some(d) = first
                .slice(from, u64::MAX)
                .first_difference(&data.slice(from, u64::MAX))
                .map(|d| d + from)
            {
                // Zeros on one replica where the other ends: a write or pad past a replica's end
                // fills the gap from that end with zeros, so a mutation that reached one replica
                // and not the other explains a zero gap anywhere before its region too.
                let gap = matches!(
                    (first.get(d), data.get(d)),
                    (None, Some(0)) | (Some(0), None)
                );
                let span = spans.iter().find(|&&(lo, hi)| d < hi && (lo <= d || gap));
                // Before the region, the gap must hold only zeros; its first other byte is a
                // difference of its own.
                let stray = span.and_then(|&(lo, _)| {
                    let longer = if first.len() > data.len() {
                        first
                    } else {
                        data
                    };
                    (lo > d).then(|| first_nonzero(longer, d, lo)).flatten()
                });
                let d = stray.unwrap_or(d);
                match span.filter(|_| stray.is_none()) {
                    Some(&(_, hi)) => from = hi,
                    None => {
                        findings.push(format!(
                            "chunk {} ({} #{} v{}): {first_server} and {server} differ at byte {d} (lengths {} and {}), where no incomplete mutation reached{}\n    {first_server}: {}\n    {server}: {}",
                            chunk.handle,
                            chunk.path,
                            chunk.index,
                            chunk.version,
                            first.len(),
                            data.len(),
                            if spans.is_empty() {
                                String::new()
                            } else {
                                let covered: Vec<String> =
                                    spans.iter().map(|(lo, hi)| format!("{lo}..{hi}")).collect();
                                format!(
                                    " (incomplete mutations covered bytes {})",
                                    covered.join(", ")
                                )
                            },
                            context(first, d),
                            context(data, d)
                        ));
                        break;
                    }
                }
            }
        }
    }
    if findings.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} replica pairs differ where no failed or unfinished mutation could have left them apart:",
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
    use node::trace::{Entry, FaultKind};

    fn ordered(t_ms: u64, serial: u64, offset: u64, len: u64) -> Entry {
        Entry {
            time_ns: t_ms * 1_000_000,
            node: NodeName::Cs(ServerId(0)),
            event: Event::MutationOrdered {
                chunk: ChunkHandle(1),
                version: 1,
                serial,
                offset,
                len,
            },
        }
    }

    fn partial(serial: u64) -> Entry {
        Entry {
            time_ns: 0,
            node: NodeName::Cs(ServerId(0)),
            event: Event::MutationPartial {
                chunk: ChunkHandle(1),
                version: 1,
                serial,
                failed: Vec::new(),
            },
        }
    }

    fn judge(events: &[Entry], replicas: &[&[u8]]) -> Option<Violation> {
        let state = one_chunk_state(replicas);
        let mut inputs = test_inputs(&[], &state, 64, 2, 0);
        inputs.events = events;
        check(&inputs)
    }

    #[test]
    fn replicas_may_differ_only_where_an_incomplete_mutation_reached() {
        // Serial 1 wrote bytes 0..4 everywhere; serial 2 (bytes 4..8) failed at a secondary.
        let events = [ordered(10, 1, 0, 4), ordered(20, 2, 4, 4), partial(2)];
        assert_eq!(judge(&events, &[b"aaaabbbb", b"aaaabbbb"]), None);
        assert_eq!(
            judge(&events, &[b"aaaabbbb", b"aaaa"]),
            None,
            "missing serial 2"
        );
        assert_eq!(judge(&events, &[b"aaaabbbb", b"aaaaBBBB"]), None);
        // A difference in serial 1's bytes is not explained.
        let v = judge(&events, &[b"aaaabbbb", b"aXaabbbb"]).expect("caught");
        assert!(
            v.report
                .contains("cs0 and cs1 differ at byte 1 (lengths 8 and 8), where no incomplete mutation reached (incomplete mutations covered bytes 4..8)"),
            "{}",
            v.report
        );
        // Without the partial report, serial 2 completed: its bytes must agree too.
        assert!(judge(&events[..2], &[b"aaaabbbb", b"aaaaBBBB"]).is_some());
        // A write past a replica's end zero-fills the gap: zeros against nothing before an
        // incomplete region are explained, other bytes against nothing are not.
        let far = [ordered(10, 1, 6, 2), partial(1)];
        assert_eq!(judge(&far, &[b"\0\0\0\0\0\0cc", b""]), None);
        assert!(judge(&far, &[b"\0\0\x01\0\0\0cc", b""]).is_some());
        // A primary killed soon after ordering may have left the mutation anywhere.
        let crash = Entry {
            time_ns: 30 * 1_000_000,
            node: NodeName::Nemesis,
            event: Event::FaultInjected {
                fault: FaultKind::Crash,
                on: FaultOn::Node(NodeName::Cs(ServerId(0))),
                unsynced_writes_lost: Some(0),
            },
        };
        let killed = [ordered(10, 1, 0, 4), ordered(20, 2, 4, 4), crash.clone()];
        assert_eq!(judge(&killed, &[b"aaaabbbb", b"aaaa"]), None);
        // ... but not one killed long after it heard from everyone.
        let mut late = crash;
        late.time_ns = 60_000 * 1_000_000;
        let settled = [ordered(10, 1, 0, 4), ordered(20, 2, 4, 4), late];
        assert!(judge(&settled, &[b"aaaabbbb", b"aaaa"]).is_some());
    }
}
