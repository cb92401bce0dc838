//! Check `replicas_identical`: when no operation failed, every chunk has exactly the target number
//! of current replicas and they are byte-identical.
//!
//! Must always hold in a run without failures. GFS §2.7.1: a mutation that succeeds without
//! interference leaves every replica with the same bytes, and concurrent successful mutations are
//! applied in the same serial order on every replica (§3.1), so they stay consistent too. Only a
//! failed mutation may leave replicas that differ, so the check is skipped when an operation
//! failed or never returned, when any client attempt failed (an operation that succeeded on a
//! retry may have left a partial region behind), or when a primary saw a secondary fail.

use super::{context, Inputs, Violation};
use std::fmt::Write;

pub const NAME: &str = "replicas_identical";

pub fn check(inputs: &Inputs) -> Option<Violation> {
    let failed = inputs
        .history
        .iter()
        .any(|op| op.outcome.as_ref().is_none_or(|o| o.is_failure()));
    if failed || inputs.partial_mutations > 0 || inputs.failed_attempts > 0 {
        return None;
    }
    let mut report = String::new();
    let mut bad = 0;
    for chunk in &inputs.state.chunks {
        if chunk.version == 0 || node::master::state::is_hidden(&chunk.path) {
            continue; // never written, or deleted and awaiting garbage collection
        }
        let name = format!(
            "chunk {} ({} #{} v{})",
            chunk.handle, chunk.path, chunk.index, chunk.version
        );
        if chunk.replicas.len() != inputs.replication as usize {
            bad += 1;
            let _ = writeln!(
                report,
                "  {name}: {} current replicas {:?}, expected {}",
                chunk.replicas.len(),
                chunk.replicas,
                inputs.replication
            );
        }
        let contents: Vec<_> = chunk
            .replicas
            .iter()
            .filter_map(|s| match inputs.state.replicas.get(&(chunk.handle, *s)) {
                Some(Ok(r)) => Some((*s, &r.data)),
                _ => None,
            })
            .collect();
        let Some((first_server, first)) = contents.first() else {
            continue;
        };
        for (server, data) in &contents[1..] {
            if data != first {
                bad += 1;
                let at = first.first_difference(data).unwrap_or(0);
                let _ = writeln!(
                    report,
                    "  {name}: {first_server} and {server} differ from byte {at} (lengths {} and {})\n    {first_server}: {}\n    {server}: {}",
                    first.len(),
                    data.len(),
                    context(*first, at),
                    context(*data, at)
                );
            }
        }
    }
    (bad > 0).then(|| Violation {
        check: NAME,
        report: format!(
            "no operation failed, yet {bad} chunks have diverging or missing replicas:\n{report}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::write;
    use super::super::{test_inputs, FinalState};
    use super::*;
    use crate::history::OpResult;
    use node::msg::{ChunkDump, ReplicaContent};
    use node::{ChunkHandle, ServerId};

    #[test]
    fn catches_diverging_replicas_only_when_nothing_failed() {
        let mut history = vec![write(0, 0, b"ab", (0, 10), OpResult::Ok)];
        let mut state = FinalState::default();
        let replicas = vec![ServerId(0), ServerId(1)];
        state.chunks.push(ChunkDump {
            path: "/f".into(),
            index: 0,
            handle: ChunkHandle(1),
            version: 2,
            issued: 2,
            replicas,
        });
        let put = |state: &mut FinalState, s, data: &[u8]| {
            let r = ReplicaContent {
                version: 2,
                data: data.to_vec().into(),
                checksums_ok: true,
            };
            state.replicas.insert((ChunkHandle(1), ServerId(s)), Ok(r));
        };
        put(&mut state, 0, b"ab");
        put(&mut state, 1, b"ab");
        assert_eq!(check(&test_inputs(&history, &state, 64, 2, 0)), None);
        put(&mut state, 1, b"aB");
        let v = check(&test_inputs(&history, &state, 64, 2, 0)).expect("caught");
        assert!(
            v.report.contains("cs0 and cs1 differ from byte 1"),
            "{}",
            v.report
        );
        // A partial mutation, or a failed operation, excuses the difference.
        assert_eq!(check(&test_inputs(&history, &state, 64, 2, 1)), None);
        history.push(write(
            1,
            0,
            b"x",
            (0, 10),
            OpResult::from_err(&node::GfsError::Network(String::new())),
        ));
        assert_eq!(check(&test_inputs(&history, &state, 64, 2, 0)), None);
        // Too few replicas is caught too.
        history.pop();
        put(&mut state, 1, b"ab");
        state.chunks[0].replicas.pop();
        assert!(check(&test_inputs(&history, &state, 64, 2, 0))
            .unwrap()
            .report
            .contains("1 current replicas"));
    }
}
