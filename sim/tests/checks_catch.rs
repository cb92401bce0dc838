//! The checks catch broken final states of real runs: take a passing run, damage what it read
//! back in one way, and the matching check must name the damage.

use sim::checks::{self, FinalState};
use sim::history::OpResult;
use sim::options::RunOptions;
use sim::run::{check_inputs, run_seed, RunReport};
use sim::workload::OpSpec;

/// A passing run with at least one acknowledged write or append whose bytes are all judged.
fn passing_run() -> (RunReport, FinalState, String, u64, u8) {
    for seed in 0..50 {
        let report = run_seed(seed, &RunOptions::default());
        assert!(
            report.passed(),
            "seed {seed} should pass: {:?}",
            report.failure_line()
        );
        let state = report.final_state.clone().unwrap();
        let exps = checks::model::expectations(&report.history);
        // A judged byte whose only acceptable value is the one the mutation wrote.
        if let Some(e) = exps
            .iter()
            .find(|e| e.allowed.len() == 1 && state.files.contains_key(&e.path))
        {
            let (path, offset, byte) = (e.path.clone(), e.offset, e.allowed[0]);
            return (report, state, path, offset, byte);
        }
    }
    panic!("no seed in 0..50 has an acknowledged byte to damage");
}

fn violated(report: &RunReport, state: &FinalState) -> Vec<&'static str> {
    checks::run_all(&check_inputs(report, state))
        .iter()
        .map(|v| v.check)
        .collect()
}

#[test]
fn a_flipped_byte_in_the_client_read_is_caught() {
    let (report, mut state, path, offset, byte) = passing_run();
    assert!(violated(&report, &state).is_empty());
    let bytes = state.files.get_mut(&path).unwrap().as_mut().unwrap();
    bytes.write(offset, &[byte ^ 0x5a]);
    assert_eq!(violated(&report, &state), vec!["acked_readback"]);
}

#[test]
fn a_lost_file_is_caught() {
    let (report, mut state, path, _, _) = passing_run();
    state.files.remove(&path);
    assert!(violated(&report, &state).contains(&"acked_readback"));
}

#[test]
fn a_replica_missing_an_acknowledged_byte_is_caught() {
    let (report, mut state, path, offset, byte) = passing_run();
    let cs = report.options.chunk_size_bytes;
    let chunk = state
        .chunks
        .iter()
        .find(|c| c.path == path && c.index == offset / cs)
        .unwrap()
        .clone();
    let server = chunk.replicas[0];
    let content = state
        .replicas
        .get_mut(&(chunk.handle, server))
        .unwrap()
        .as_mut()
        .unwrap();
    content.data.write(offset % cs, &[byte ^ 0x33]);
    let v = violated(&report, &state);
    assert!(v.contains(&"acked_on_replicas"), "{v:?}");
    // One replica now differs inside an acknowledged mutation's region: Table 1 forbids that
    // unless a failed mutation over the same bytes may explain it.
    let tainted = report.history.iter().any(|o| {
        o.outcome.as_ref().is_none_or(OpResult::is_failure)
            && matches!(&o.op, OpSpec::Write { path: p, .. } if *p == path)
    });
    if !tainted {
        assert!(v.contains(&"table1"), "{v:?}");
    }
    // If nothing failed in this run, diverging replicas are a violation of their own.
    let failed = report
        .history
        .iter()
        .any(|o| o.outcome.as_ref().is_none_or(OpResult::is_failure))
        || report.client.failed_attempts > 0;
    assert_eq!(v.contains(&"replicas_identical"), !failed, "{v:?}");
}

#[test]
fn a_chunk_with_no_current_replica_is_caught() {
    let (report, mut state, path, offset, _) = passing_run();
    let cs = report.options.chunk_size_bytes;
    let chunk = state
        .chunks
        .iter_mut()
        .find(|c| c.path == path && c.index == offset / cs)
        .unwrap();
    chunk.replicas.clear();
    assert!(violated(&report, &state).contains(&"acked_on_replicas"));
}

#[test]
fn the_history_records_every_operation_with_its_result() {
    let report = run_seed(3, &RunOptions::default());
    let opts = RunOptions::default();
    // Every planned step: `ops` per client, and reads of deleted copies after some deletes.
    let plan = sim::workload::generate(3, &opts);
    let steps: usize = plan.clients.iter().map(|c| c.steps.len()).sum();
    assert!(steps >= (opts.clients * opts.ops_per_client) as usize);
    let workload = report.history.iter().filter(|o| !o.after_heal).count();
    assert_eq!(workload, steps + opts.files as usize);
    // After healing: create, write, list and delete a probe file, then append to and read each file.
    let after_heal = report.history.iter().filter(|o| o.after_heal).count();
    assert_eq!(after_heal, 4 + 2 * opts.files as usize);
    for op in &report.history {
        let done = op.complete_ns.expect("every operation returned");
        assert!(done >= op.invoke_ns);
        if let (OpSpec::Append { data, .. }, Some(OpResult::Offset { offset })) =
            (&op.op, &op.outcome)
        {
            // A record never straddles a chunk boundary (GFS §3.3).
            let cs = opts.chunk_size_bytes;
            assert_eq!(offset / cs, (offset + data.len() as u64 - 1) / cs, "{op:?}");
        }
    }
}

#[test]
fn a_read_of_bytes_nobody_wrote_is_caught() {
    let (mut report, state, _, _, _) = passing_run();
    let read = report
        .history
        .iter_mut()
        .find_map(|o| match (&o.op, &mut o.outcome) {
            (OpSpec::Read { .. }, Some(OpResult::Data { data })) if data.len() >= 8 => Some(data),
            _ => None,
        })
        .expect("a run reads something back");
    // A pattern the workload's random data is vanishingly unlikely to hold at that offset.
    read.fill(0xee);
    read[0] = 0x11;
    let v = violated(&report, &state);
    assert!(v.contains(&"reads_not_invented"), "{v:?}");
}

/// The record reader (GFS §2.7.2) must return every acknowledged record: a record damaged in the
/// client's read is one it cannot return, and the check says which.
#[test]
fn a_damaged_record_is_caught_by_the_record_reader() {
    for seed in 0..50 {
        let report = run_seed(seed, &RunOptions::default());
        let mut state = report.final_state.clone().unwrap();
        assert!(violated(&report, &state).is_empty(), "seed {seed}");
        let exps = checks::model::expectations(&report.history);
        // An acknowledged record whose bytes are all still required.
        let found = report
            .history
            .iter()
            .find_map(|op| match (&op.op, &op.outcome) {
                (OpSpec::Append { path, data }, Some(OpResult::Offset { offset }))
                    if sim::records::id_of(data).is_some()
                        && exps
                            .iter()
                            .filter(|e| e.op == op.id && e.allowed.len() == 1)
                            .count()
                            == data.len()
                        && state.files.get(path).is_some_and(|f| f.is_ok()) =>
                {
                    Some((path.clone(), *offset, sim::records::id_of(data).unwrap()))
                }
                _ => None,
            });
        let Some((path, offset, id)) = found else {
            continue;
        };
        let bytes = state.files.get_mut(&path).unwrap().as_mut().unwrap();
        let old = bytes.byte_at(offset + 8);
        bytes.write(offset + 8, &[old ^ 0x01]); // a payload or checksum byte
        let v = checks::run_all(&check_inputs(&report, &state));
        let names: Vec<&str> = v.iter().map(|v| v.check).collect();
        assert!(
            names.contains(&"records_readable"),
            "seed {seed}: {names:?}"
        );
        let report_text = &v
            .iter()
            .find(|v| v.check == "records_readable")
            .unwrap()
            .report;
        assert!(
            report_text.contains(&format!("record id {id} ")),
            "{report_text}"
        );
        return;
    }
    panic!("no seed in 0..50 has an acknowledged record to damage");
}

/// A real broken build: a primary that acknowledges before its secondaries applied (a planted bug)
/// loses an acknowledged record, and the record reader notices; the same seed passes without it.
#[test]
fn the_record_reader_catches_a_record_lost_by_a_broken_primary() {
    let broken = RunOptions {
        bugs: vec![node::Bug::AckBeforeSecondaries],
        ..RunOptions::default()
    };
    for seed in 0..200 {
        let report = run_seed(seed, &broken);
        if report
            .violations
            .iter()
            .any(|v| v.check == "records_readable")
        {
            assert!(
                run_seed(seed, &RunOptions::default()).passed(),
                "seed {seed}"
            );
            return;
        }
    }
    panic!("no seed in 0..200 lost a record the reader noticed");
}
