//! The liveness judgement `converged`: after every fault is healed, the cluster must reach, within a
//! bounded simulated time, a state where every chunk of every file has the target number of
//! replicas at its current version, and no stale, orphan or excluded replica and no deleted file
//! past its grace period remains.
//!
//! Eventually holds. GFS §4.3 (re-replication), §4.4 (garbage collection), §4.5 (stale replica
//! removal). The harness polls this after healing; a seed that never gets there fails as a
//! liveness failure, distinct from a correctness failure.

use node::master::state::is_hidden;
use node::msg::{ChunkDump, ReplicaSummary};
use node::ServerId;
use std::collections::BTreeMap;

pub const NAME: &str = "converged";

/// Everything still wrong, one line each; empty once converged.
pub fn issues(
    chunks: &[ChunkDump],
    held: &BTreeMap<ServerId, Result<Vec<ReplicaSummary>, String>>,
    replication: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    let by_handle: BTreeMap<_, _> = chunks.iter().map(|c| (c.handle, c)).collect();
    for c in chunks {
        if is_hidden(&c.path) {
            out.push(format!(
                "deleted file {} still holds chunk {}",
                c.path, c.handle
            ));
        } else if c.version > 0 && c.replicas.len() != replication as usize {
            out.push(format!(
                "chunk {} ({} #{}) has {} replicas {:?}, target {replication}",
                c.handle,
                c.path,
                c.index,
                c.replicas.len(),
                c.replicas
            ));
        }
    }
    for (server, replicas) in held {
        let replicas = match replicas {
            Ok(r) => r,
            Err(e) => {
                out.push(format!("{server} did not answer: {e}"));
                continue;
            }
        };
        for r in replicas {
            match by_handle.get(&r.handle) {
                None => out.push(format!(
                    "{server} holds orphan chunk {} v{}",
                    r.handle, r.version
                )),
                Some(c) if r.version < c.version || r.version > c.issued.max(c.version) => out
                    .push(format!(
                        "{server} holds stale chunk {} v{} (current v{})",
                        r.handle, r.version, c.version
                    )),
                Some(_) if !r.healthy => out.push(format!(
                    "{server} holds chunk {} v{} with a block failing its checksum",
                    r.handle, r.version
                )),
                Some(c) if !c.replicas.contains(server) => out.push(format!(
                    "{server} holds chunk {} v{} the master does not count",
                    r.handle, r.version
                )),
                Some(_) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::ChunkHandle;

    #[test]
    fn finds_under_replication_stale_orphans_and_unreclaimed_files() {
        let dump = |replicas: Vec<u32>| ChunkDump {
            path: "/f".into(),
            index: 0,
            handle: ChunkHandle(1),
            version: 2,
            issued: 2,
            replicas: replicas.into_iter().map(ServerId).collect(),
        };
        let summary = |h, v| ReplicaSummary {
            handle: ChunkHandle(h),
            version: v,
            len_bytes: 0,
            healthy: true,
        };
        let mut held = BTreeMap::new();
        for s in 0..3 {
            held.insert(ServerId(s), Ok(vec![summary(1, 2)]));
        }
        assert!(issues(&[dump(vec![0, 1, 2])], &held, 3).is_empty());
        assert!(issues(&[dump(vec![0, 1])], &held, 3)
            .iter()
            .any(|i| i.contains("2 replicas")));
        held.insert(ServerId(3), Ok(vec![summary(1, 1), summary(9, 1)]));
        let found = issues(&[dump(vec![0, 1, 2])], &held, 3);
        assert!(
            found.iter().any(|i| i.contains("stale chunk c1 v1")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|i| i.contains("orphan chunk c9")),
            "{found:?}"
        );
        held.remove(&ServerId(3));
        let rotten = ReplicaSummary {
            healthy: false,
            ..summary(1, 2)
        };
        held.insert(ServerId(2), Ok(vec![rotten]));
        assert!(issues(&[dump(vec![0, 1, 2])], &held, 3)
            .iter()
            .any(|i| i.contains("checksum")));
        held.insert(ServerId(2), Ok(vec![summary(1, 2)]));
        let mut hidden = dump(vec![0, 1, 2]);
        hidden.path = "/.deleted/7/f".into();
        assert!(issues(&[hidden], &held, 3)
            .iter()
            .any(|i| i.contains("deleted file")));
    }
}
