//! The foundation's promise: thousands of seeded runs of the full cluster, every check on every
//! seed, all passing. A failure lists each failing seed with the command that reproduces it.

use sim::options::RunOptions;
use sim::sweep::{sweep, SweepSummary};

fn assert_all_pass(what: &str, s: &SweepSummary) {
    assert!(
        s.failures.is_empty(),
        "{what}: {} of {} seeds failed:\n{}",
        s.failures.len(),
        s.seeds,
        s.failure_report()
    );
}

fn count(s: &SweepSummary, kind: &str, outcome: &str) -> u64 {
    s.outcomes
        .get(&(kind.to_string(), outcome.to_string()))
        .copied()
        .unwrap_or(0)
}

#[test]
fn two_thousand_seeds_of_the_default_workload_pass() {
    let opts = RunOptions::default();
    let s = sweep(0..2000, 2, &opts, |_, _| {});
    assert_eq!(s.seeds, 2000, "every seed ran exactly once");
    assert_all_pass("default workload", &s);
    // The sweep really exercised the protocol: every kind of operation succeeded many times,
    // record appends were refused when too large, and namespace races happened.
    for kind in ["create", "delete", "list", "read", "write", "append"] {
        assert!(
            count(&s, kind, "ok") > 1000,
            "too few successful {kind}s: {:?}",
            s.outcomes
        );
    }
    assert!(count(&s, "append", "record_too_large") > 100);
    assert!(count(&s, "create", "already_exists") > 100);
    // Every defensive path the project declares reachable (see node::coverage) runs in this
    // sweep, so the checks judge it; the seeds that draw tight bounds reach the bounds. A change
    // that leaves one unreached must say why, or make a seed reach it again.
    use node::coverage::{Probe, LOST_STATE_ONLY};
    for probe in Probe::ALL.iter().filter(|p| !LOST_STATE_ONLY.contains(p)) {
        let n = s.counters.get(&format!("coverage {}", probe.name()));
        assert!(n.is_some_and(|&n| n > 0), "{probe:?} never ran: {n:?}");
    }
}

#[test]
fn tiny_chunks_small_clusters_and_many_clients_pass() {
    let configs = [
        RunOptions {
            chunk_size_bytes: 8,
            block_size_bytes: 8,
            ..RunOptions::default()
        },
        RunOptions {
            chunkservers: 3,
            replication: 3,
            chunk_size_bytes: 32,
            block_size_bytes: 5,
            ..RunOptions::default()
        },
        RunOptions {
            chunkservers: 2,
            replication: 1,
            ..RunOptions::default()
        },
        RunOptions {
            clients: 8,
            files: 2,
            ops_per_client: 20,
            ..RunOptions::default()
        },
    ];
    for opts in configs {
        let s = sweep(0..150, 2, &opts, |_, _| {});
        assert_all_pass(&format!("options{}", opts.flags()), &s);
        assert!(count(&s, "write", "ok") > 0 && count(&s, "append", "ok") > 0);
    }
}

#[test]
fn paper_sized_chunks_work() {
    let opts = RunOptions {
        chunk_size_bytes: 64 << 20,
        block_size_bytes: 64 << 10,
        ops_per_client: 4,
        ..RunOptions::default()
    };
    let s = sweep(0..2, 2, &opts, |_, _| {});
    assert_all_pass("64 MiB chunks", &s);
}

#[test]
fn hundreds_of_chunkservers_heartbeat_without_loss() {
    // 400 chunkservers heartbeat 2,000 times a simulated second. madsim delays each message a
    // node receives by a millisecond in the loop that took it, so one receive loop per request
    // kind capped the master at 1,000 heartbeats a second: heartbeats timed out, live servers were
    // declared dead, and their chunks were copied and trimmed without end.
    let opts = RunOptions {
        chunkservers: 400,
        faults: "none".parse().unwrap(),
        ..RunOptions::default()
    };
    let r = sim::run::run_seed_detailed(3, &opts, node::trace::Detail::Full);
    assert!(r.passed(), "{:?}", r.failure_line());
    let lines = sim::trace::lines(&r);
    let count = |kind: &str| lines.iter().filter(|l| l.kind == kind).count();
    assert!(count("server_joined") >= 400, "every server joined");
    assert_eq!(count("server_dead"), 0, "no live server declared dead");
    assert_eq!(count("msg_dropped"), 0, "no message lost without a fault");
}

#[test]
fn a_range_at_the_top_of_the_seeds_runs_exactly_its_seeds() {
    // The seed counter used to wrap past u64::MAX and sweep seeds 0, 1, 2, ... forever.
    let top = u64::MAX - 3..u64::MAX;
    let opts = RunOptions {
        faults: "none".parse().unwrap(),
        ops_per_client: 2,
        ..RunOptions::default()
    };
    let s = sweep(top.clone(), 2, &opts, |done, _| {
        assert!(done <= 3, "swept past the range: {done} seeds");
    });
    assert_eq!(s.seeds, 3);
    assert_all_pass("top of the range", &s);
    let h = sim::sweep::hunt(top, 2, &opts, |tried| {
        assert!(tried <= 3, "hunted past the range: {tried} seeds");
    });
    assert_eq!((h.tried, h.found.is_none()), (3, true));
}
