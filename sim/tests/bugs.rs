//! Planted bugs: each classic GFS mistake is caught within a stated number of seeds, and the same
//! seeds pass with the switch off.

use node::Bug;
use sim::options::RunOptions;
use sim::sweep::{hunt, sweep};

/// Each bug, the options it is hunted with, and the most seeds it may take from seed 0.
fn cases() -> Vec<(Bug, RunOptions, u64)> {
    let with = |bug: Bug| RunOptions {
        bugs: vec![bug],
        ..RunOptions::default()
    };
    vec![
        (
            Bug::AckBeforeSecondaries,
            with(Bug::AckBeforeSecondaries),
            50,
        ),
        // Out-of-order application leaves replicas that differ although nothing failed; under
        // faults a failed attempt could explain the difference, so it is hunted without faults.
        (
            Bug::ArrivalOrder,
            RunOptions {
                faults: "none".parse().unwrap(),
                ..with(Bug::ArrivalOrder)
            },
            50,
        ),
        (Bug::NoVersionBump, with(Bug::NoVersionBump), 50),
        (Bug::EarlyLease, with(Bug::EarlyLease), 20),
        (
            Bug::StaleReplicasCurrent,
            with(Bug::StaleReplicasCurrent),
            20,
        ),
        (Bug::NoChecksumVerify, with(Bug::NoChecksumVerify), 50),
        (Bug::UnsyncedLog, with(Bug::UnsyncedLog), 50),
        (Bug::CloneFromStale, with(Bug::CloneFromStale), 150),
        (Bug::AppendNoPad, with(Bug::AppendNoPad), 50),
        (Bug::GcDeletesReferenced, with(Bug::GcDeletesReferenced), 50),
        (
            Bug::NoGraceAfterRestart,
            with(Bug::NoGraceAfterRestart),
            150,
        ),
    ]
}

#[test]
fn every_planted_bug_is_caught_within_its_bound_and_its_seeds_pass_without_it() {
    let mut all = node::bugs::ALL_BUGS.to_vec();
    for (bug, opts, bound) in cases() {
        all.retain(|b| *b != bug);
        let h = hunt(0..bound, 2, &opts, |_| {});
        let found = h
            .found
            .unwrap_or_else(|| panic!("{bug}: not caught in {bound} seeds"));
        let check = h.check.unwrap();
        eprintln!("{bug}: caught after {} seeds by {check}", h.tried);
        // The same seeds, switch off: every one passes.
        let honest = RunOptions {
            bugs: Vec::new(),
            ..opts.clone()
        };
        let s = sweep(0..found.seed + 1, 2, &honest, |_, _| {});
        assert!(
            s.failures.is_empty(),
            "{bug}: seeds fail without the bug too:\n{}",
            s.failure_report()
        );
        // The reproduce command carries the switch.
        assert!(
            found.command.contains(&format!("--bug {bug}")),
            "{}",
            found.command
        );
    }
    assert!(all.is_empty(), "bugs without a test: {all:?}");
}
