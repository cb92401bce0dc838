//! Check `gc_after_grace`: a deleted file's chunks keep their current replicas until the garbage
//! collector's grace period has passed since the delete.
//!
//! Must always hold. GFS §4.4: a deleted file is only renamed to a hidden name; it can still be
//! read (and undeleted) under that name until the master removes it, after a configurable delay,
//! and only then do its chunks become orphans whose replicas chunkservers erase. A collector that
//! reclaims early loses data a user could still have wanted back; nothing else notices, since the
//! file is gone from every listing either way. This check judges the act: each `replica_deleted` a
//! chunkserver performed, against the `file_deleted` the master logged for the file that owned the
//! chunk (from `chunk_allocated`), counted from the earliest request that can have caused it.
//! Replicas the master had reason to drop at any time are not
//! judged: stale ones (below the chunk's current version, from `version_bumped` and
//! `version_adopted`), and those it excluded from a lease, trimmed as extra, or found corrupt.
//! (The other side of the grace period, reclaiming eventually, is part of `converged`.)

use super::Violation;
use crate::history::OpRecord;
use crate::workload::OpSpec;
use node::trace::{Entry, Event, NodeName};
use node::{ChunkHandle, ServerId};
use std::collections::{BTreeMap, BTreeSet};

pub const NAME: &str = "gc_after_grace";

/// When the delete the master logged at `logged_ns` (its `file_deleted`) began at the latest:
/// the earliest invocation among the deletes of `path` still in flight then. The master stamps the
/// deletion when it decides, before its log is synced and the event emitted, so the event's own
/// instant is too late a start for the grace period; the client's request that caused it was
/// already in flight when it decided.
fn delete_began(history: &[OpRecord], path: &str, logged_ns: u64) -> u64 {
    history
        .iter()
        .filter(|o| matches!(&o.op, OpSpec::Delete { path: p } if p == path))
        .filter(|o| o.invoke_ns <= logged_ns && o.complete_ns.is_none_or(|c| c >= logged_ns))
        .map(|o| o.invoke_ns)
        .min()
        .unwrap_or(logged_ns)
}

pub fn check(history: &[OpRecord], events: &[Entry], gc_delay_ms: u64) -> Option<Violation> {
    let grace_ns = gc_delay_ms * 1_000_000;
    // Chunks of each live path, in allocation order, until the path is deleted.
    let mut live: BTreeMap<&str, Vec<ChunkHandle>> = BTreeMap::new();
    // Each deleted chunk: its file and when (and at which event) the file was deleted.
    let mut deleted: BTreeMap<ChunkHandle, (&str, u64, usize)> = BTreeMap::new();
    let mut version: BTreeMap<ChunkHandle, u64> = BTreeMap::new();
    let mut droppable: BTreeSet<(ChunkHandle, ServerId)> = BTreeSet::new();
    let mut early = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match &e.event {
            Event::ChunkAllocated { path, chunk, .. } => {
                live.entry(path.as_str()).or_default().push(*chunk)
            }
            Event::FileDeleted { path, .. } => {
                let began = delete_began(history, path, e.time_ns);
                for chunk in live.remove(path.as_str()).unwrap_or_default() {
                    deleted.insert(chunk, (path.as_str(), began, i));
                }
            }
            Event::VersionBumped { chunk, version: v }
            | Event::VersionAdopted {
                chunk, version: v, ..
            } => {
                let cur = version.entry(*chunk).or_default();
                *cur = (*cur).max(*v);
            }
            Event::ReplicaExcluded { chunk, server, .. }
            | Event::ReplicaTrimmed { chunk, server }
            | Event::ReplicaCorrupt { chunk, server, .. } => {
                droppable.insert((*chunk, *server));
            }
            Event::ReplicaDeleted { chunk, version: v } => {
                let NodeName::Cs(server) = e.node else {
                    continue;
                };
                let Some(&(path, at_ns, at)) = deleted.get(chunk) else {
                    continue;
                };
                let stale = *v < version.get(chunk).copied().unwrap_or(0);
                if e.time_ns < at_ns + grace_ns && !stale && !droppable.contains(&(*chunk, server))
                {
                    early.push(format!(
                        "{server} erased chunk {chunk} (v{v}) of {path} at {:.3} ms (event #{i}), {:.3} ms after the delete (event #{at}) was requested; the grace period is {gc_delay_ms} ms",
                        e.time_ns as f64 / 1e6,
                        (e.time_ns - at_ns) as f64 / 1e6
                    ));
                }
            }
            _ => {}
        }
    }
    if early.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} current replicas of deleted files were erased before the grace period ended:",
            early.len()
        ),
        early.len(),
        early,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::event_at_ms as ev;

    fn erased(t_ms: u64, server: u32, version: u64) -> Entry {
        ev(
            t_ms,
            NodeName::Cs(ServerId(server)),
            Event::ReplicaDeleted {
                chunk: ChunkHandle(4),
                version,
            },
        )
    }

    #[test]
    fn erasing_a_deleted_files_chunk_early_is_caught() {
        let m = NodeName::Master;
        let history = vec![
            ev(
                0,
                m,
                Event::ChunkAllocated {
                    path: "/a".into(),
                    index: 0,
                    chunk: ChunkHandle(4),
                },
            ),
            ev(
                10,
                m,
                Event::VersionBumped {
                    chunk: ChunkHandle(4),
                    version: 2,
                },
            ),
            ev(
                100,
                m,
                Event::FileDeleted {
                    path: "/a".into(),
                    live_leases: 0,
                },
            ),
        ];
        let with = |extra: &[Entry]| {
            let mut all = history.clone();
            all.extend_from_slice(extra);
            check(&[], &all, 2_000)
        };
        // After the grace period: fine; a stale replica: any time.
        assert_eq!(with(&[erased(2_100, 1, 2)]), None);
        assert_eq!(with(&[erased(150, 1, 1)]), None);
        // A current replica erased before the grace period ended.
        let v = with(&[erased(2_099, 1, 2)]).expect("early erasure caught");
        assert!(
            v.report.contains(
                "cs1 erased chunk c4 (v2) of /a at 2099.000 ms (event #3), 1999.000 ms after the delete (event #2) was requested"
            ),
            "{}",
            v.report
        );
        // ... unless the master had dropped that replica for a reason of its own.
        let trimmed = ev(
            120,
            m,
            Event::ReplicaTrimmed {
                chunk: ChunkHandle(4),
                server: ServerId(1),
            },
        );
        assert_eq!(with(&[trimmed.clone(), erased(150, 1, 2)]), None);
        assert!(
            with(&[trimmed, erased(150, 2, 2)]).is_some(),
            "another server"
        );
        // The grace period runs from the request that caused the delete (the master stamps it
        // before its log sync), not from the event after the sync.
        let request = crate::checks::model::tests::rec(
            0,
            OpSpec::Delete { path: "/a".into() },
            (80_000_000, 120_000_000),
            crate::history::OpResult::Ok,
        );
        let mut all = history.clone();
        all.push(erased(2_090, 1, 2));
        assert!(check(&[], &all, 2_000).is_some());
        assert_eq!(check(std::slice::from_ref(&request), &all, 2_000), None);
        all.push(erased(2_079, 2, 2));
        assert!(check(&[request], &all, 2_000).is_some_and(|v| v.report.starts_with("1 current")));
        // A chunk of a file re-created under the same name is not the deleted file's.
        let again = ev(
            200,
            m,
            Event::ChunkAllocated {
                path: "/a".into(),
                index: 0,
                chunk: ChunkHandle(5),
            },
        );
        let other = ev(
            300,
            NodeName::Cs(ServerId(1)),
            Event::ReplicaDeleted {
                chunk: ChunkHandle(5),
                version: 1,
            },
        );
        assert_eq!(with(&[again, other]), None);
    }
}
