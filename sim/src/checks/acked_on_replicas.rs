//! Check `acked_on_replicas`: every acknowledged write and record append is present on every
//! current replica of its chunk, read directly from the chunkservers.
//!
//! Must always hold. GFS §3.1 step 7: the primary reports success only when every secondary
//! applied the mutation, and §3.3: a successful record append is written at the same offset on all
//! replicas. A chunk holding acknowledged bytes must also still have at least one current replica,
//! and every replica must pass its checksums (§5.2).

use super::model::Expectation;
use super::{chunks_by_position, context, render_mismatches, Inputs, Violation};

pub const NAME: &str = "acked_on_replicas";

pub fn check(inputs: &Inputs, exps: &[Expectation]) -> Option<Violation> {
    let cs = inputs.chunk_size_bytes;
    let chunks = chunks_by_position(inputs.state);
    let mut mismatches = Vec::new();
    for e in exps {
        let (index, within) = (e.offset / cs, (e.offset % cs) as usize);
        let Some(chunk) = chunks.get(&(e.path.as_str(), index)) else {
            mismatches.push((
                e.op,
                format!("{} has no chunk {index} at the master", e.path),
            ));
            continue;
        };
        if chunk.replicas.is_empty() {
            mismatches.push((
                e.op,
                format!(
                    "chunk {} ({} #{index}) has no current replica",
                    chunk.handle, e.path
                ),
            ));
        }
        for server in &chunk.replicas {
            // Formatted only for a mismatch: a sweep checks millions of bytes that match.
            let where_ = || format!("{} ({} #{index}) on {server}", chunk.handle, e.path);
            match inputs.state.replicas.get(&(chunk.handle, *server)) {
                None => mismatches.push((e.op, format!("{}: replica was not read", where_()))),
                Some(Err(why)) => {
                    mismatches.push((e.op, format!("{}: read failed: {why}", where_())))
                }
                Some(Ok(r)) if !r.checksums_ok => {
                    mismatches.push((e.op, format!("{}: a block fails its checksum", where_())))
                }
                Some(Ok(r)) => {
                    let found = r.data.get(within as u64);
                    if !found.is_some_and(|b| e.allowed.contains(&b)) {
                        let found = found.map_or("end of replica".into(), |b| format!("{b:#04x}"));
                        mismatches.push((
                            e.op,
                            format!(
                                "{} @{within} (file @{}): {found}, expected one of {:02x?}; {}",
                                where_(),
                                e.offset,
                                e.allowed,
                                context(&r.data, within as u64)
                            ),
                        ));
                    }
                }
            }
        }
    }
    (!mismatches.is_empty()).then(|| Violation {
        check: NAME,
        report: format!(
            "{} acknowledged bytes are missing from current replicas:\n{}",
            mismatches.len(),
            render_mismatches(inputs.history, &mismatches, 5)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::{expectations, tests::write};
    use super::super::{test_inputs, FinalState};
    use super::*;
    use crate::history::OpResult;
    use node::msg::{ChunkDump, ReplicaContent};
    use node::{ChunkHandle, ServerId};

    #[test]
    fn catches_a_replica_that_lacks_an_acknowledged_byte() {
        // 8-byte chunks; the write covers the end of chunk 0 and the start of chunk 1.
        let history = vec![write(0, 6, b"wxyz", (0, 10), OpResult::Ok)];
        let exps = expectations(&history);
        let mut state = FinalState::default();
        for (index, handle) in [(0, ChunkHandle(5)), (1, ChunkHandle(6))] {
            let replicas = vec![ServerId(0), ServerId(1)];
            state.chunks.push(ChunkDump {
                path: "/f".into(),
                index,
                handle,
                version: 1,
                issued: 1,
                replicas,
            });
        }
        let good = |data: &[u8]| {
            Ok(ReplicaContent {
                version: 1,
                data: data.to_vec().into(),
                checksums_ok: true,
            })
        };
        for s in [ServerId(0), ServerId(1)] {
            state
                .replicas
                .insert((ChunkHandle(5), s), good(b"\0\0\0\0\0\0wx"));
            state.replicas.insert((ChunkHandle(6), s), good(b"yz"));
        }
        assert_eq!(check(&test_inputs(&history, &state, 8, 2, 0), &exps), None);
        // One replica of the second chunk never got the mutation.
        state
            .replicas
            .insert((ChunkHandle(6), ServerId(1)), good(b""));
        let v = check(&test_inputs(&history, &state, 8, 2, 0), &exps).expect("caught");
        assert!(
            v.report
                .contains("c6 (/f #1) on cs1 @0 (file @8): end of replica"),
            "{}",
            v.report
        );
        // A rotten replica is reported as such.
        state.replicas.insert(
            (ChunkHandle(6), ServerId(1)),
            Ok(ReplicaContent {
                version: 1,
                data: b"yz".to_vec().into(),
                checksums_ok: false,
            }),
        );
        assert!(check(&test_inputs(&history, &state, 8, 2, 0), &exps)
            .unwrap()
            .report
            .contains("checksum"));
    }
}
