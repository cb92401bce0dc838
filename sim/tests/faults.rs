//! The nemesis and recovery: every fault kind, alone, over many seeds, with every check passing
//! and the fault (and the recovery it calls for) shown to have actually happened. Runs under
//! faults are repeatable byte for byte like any other.

use sim::faults::ALL_KINDS;
use sim::options::RunOptions;
use sim::run::{run_seed, RunReport};
use sim::sweep::sweep;

fn count(counters: &std::collections::BTreeMap<String, u64>, key: &str) -> u64 {
    counters.get(key).copied().unwrap_or(0)
}

#[test]
fn every_fault_kind_alone_passes_and_its_recovery_runs() {
    for kind in ALL_KINDS {
        // A torn write needs a crash to land inside a sync, which is rare: strike more often.
        let rates = match kind.name() {
            "torn_write" => vec!["torn_write=8".parse().unwrap()],
            _ => Vec::new(),
        };
        let opts = RunOptions {
            faults: kind.name().parse().unwrap(),
            rates,
            ..RunOptions::default()
        };
        let s = sweep(0..150, 2, &opts, |_, _| {});
        assert!(
            s.failures.is_empty(),
            "--faults {kind}: {} failed:\n{}",
            s.failures.len(),
            s.failure_report()
        );
        let injected = count(&s.counters, &format!("fault {kind}"));
        assert!(
            injected > 50,
            "--faults {kind}: injected only {injected} times: {:?}",
            s.counters
        );
        // The recovery path each kind exercises ran too.
        let recovery = match kind.name() {
            "crash" | "pause" | "isolate" | "partition" => "recovery stale replica removal",
            "master_crash" => "recovery master restart",
            "bit_flip" => "recovery checksum repair",
            "torn_write" => "fault writes actually torn",
            _ => continue,
        };
        assert!(
            count(&s.counters, recovery) > 0,
            "--faults {kind}: no {recovery}: {:?}",
            s.counters
        );
    }
}

#[test]
fn re_replication_and_garbage_collection_run() {
    let opts = RunOptions {
        faults: "crash,bit_flip".parse().unwrap(),
        ..RunOptions::default()
    };
    let s = sweep(0..100, 2, &opts, |_, _| {});
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    for path in [
        "recovery re-replication",
        "recovery lazy gc",
        "recovery orphan removal",
    ] {
        assert!(
            count(&s.counters, path) > 0,
            "{path} never ran: {:?}",
            s.counters
        );
    }
}

#[test]
fn runs_under_swarm_faults_are_repeatable() {
    let opts = RunOptions {
        faults: "swarm".parse().unwrap(),
        ..RunOptions::default()
    };
    for seed in 0..40 {
        let (a, b) = (run_seed(seed, &opts), run_seed(seed, &opts));
        assert!(
            a.events
                .iter()
                .any(|e| matches!(e.event, node::trace::Event::FaultInjected { .. })),
            "seed {seed}: no fault struck"
        );
        if let Some((line, x, y)) = RunReport::first_difference(&a.record(), &b.record()) {
            panic!("seed {seed} under faults differs at line {line}:\n  {x}\n  {y}");
        }
        assert_eq!(a.failure_line(), b.failure_line());
    }
}

#[test]
fn a_disk_that_drops_synced_writes_is_caught() {
    // Chunkservers whose syncs never reach the disk lose acknowledged writes when they crash.
    let broken = RunOptions {
        faults: "crash".parse().unwrap(),
        lying_disks: true,
        ..RunOptions::default()
    };
    let s = sweep(0..60, 2, &broken, |_, _| {});
    assert!(
        s.failures.len() > 10,
        "only {} of 60 seeds caught the broken disk",
        s.failures.len()
    );
    // Acknowledged data is gone: the data checks name it (the report leads with the cluster's
    // failure to converge, as whole chunks vanished).
    let first = run_seed(s.failures[0].seed, &broken);
    let named: Vec<&str> = first.violations.iter().map(|v| v.check).collect();
    assert!(
        named.contains(&"acked_readback") || named.contains(&"acked_on_replicas"),
        "{named:?}"
    );
    // The same seeds pass with an honest disk.
    let honest = RunOptions {
        lying_disks: false,
        ..broken
    };
    let seeds: Vec<u64> = s.failures.iter().map(|f| f.seed).collect();
    for seed in seeds {
        let r = run_seed(seed, &honest);
        assert!(
            r.passed(),
            "seed {seed} fails even with an honest disk: {:?}",
            r.failure_line()
        );
    }
}

#[test]
fn every_fault_kind_at_once_passes() {
    let opts = RunOptions {
        faults: "all".parse().unwrap(),
        ..RunOptions::default()
    };
    let s = sweep(0..300, 2, &opts, |_, _| {});
    assert!(
        s.failures.is_empty(),
        "--faults all:\n{}",
        s.failure_report()
    );
    for kind in ALL_KINDS {
        assert!(
            count(&s.counters, &format!("fault {kind}")) > 0,
            "{kind} never struck"
        );
    }
}
