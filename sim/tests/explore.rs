//! Systematic exploration (`sim explore`): every schedule of one fault on a scenario finds planted
//! bugs that need a fault at one exact step, finds nothing on the correct code, is the same on
//! one thread and on two, and writes failing schedules as scenarios that fail again when replayed.

use node::Bug;
use sim::explore::{self, Options, Summary};
use sim::scenario::Loaded;
use std::path::Path;

fn happy_path(bugs: &[Bug]) -> Loaded {
    scenario("happy_path", bugs)
}

fn scenario(name: &str, bugs: &[Bug]) -> Loaded {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"));
    let mut loaded = sim::scenario::load(&dir.join(format!("{name}.toml"))).expect("loads");
    loaded.options.bugs.extend_from_slice(bugs);
    loaded.scenario.cluster.bugs.extend_from_slice(bugs);
    loaded
}

fn explore_depth_one(loaded: &Loaded, jobs: usize) -> Summary {
    let opts = Options {
        depth: 1,
        max_schedules: 10_000,
        jobs,
        no_prune: false,
    };
    explore::explore(loaded, &opts, &|_, _| {})
}

fn failing_checks(s: &Summary) -> Vec<String> {
    let mut checks: Vec<String> = s
        .failing()
        .iter()
        .map(|r| r.failure.clone().unwrap().0)
        .collect();
    checks.sort();
    checks.dedup();
    checks
}

#[test]
fn every_single_fault_on_the_happy_path_passes_and_is_the_same_on_any_number_of_threads() {
    let loaded = happy_path(&[]);
    let one = explore_depth_one(&loaded, 1);
    assert!(one.baseline_failure.is_none());
    assert!(one.points > 100, "{} points", one.points);
    assert!(
        one.runs.len() > one.points / 2,
        "{} schedules",
        one.runs.len()
    );
    assert_eq!(failing_checks(&one), Vec::<String>::new());
    // Every kind of action was tried, and the faults changed what clients saw.
    for action in ["lose ", "delay ", "crash ", "pause "] {
        assert!(
            one.runs
                .iter()
                .any(|r| explore::describe(&r.schedule).starts_with(action)),
            "no {action}schedule"
        );
    }
    assert!(one.distinct_outcomes() > 1);
    let two = explore_depth_one(&loaded, 2);
    let key = |s: &Summary| {
        s.runs
            .iter()
            .map(|r| (explore::describe(&r.schedule), r.signature, r.outcome))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&one), key(&two));
}

/// The eight protocol scenarios (all but the load and teaching ones) survive every one-fault
/// schedule: what exploration reports on them is the protocol's, not noise.
#[test]
fn every_single_fault_on_every_protocol_scenario_passes() {
    for name in explore::PROTOCOL_SCENARIOS {
        let s = explore_depth_one(&scenario(name, &[]), 2);
        assert!(s.baseline_failure.is_none(), "{name}");
        assert!(s.runs.len() > 100, "{name}: {} schedules", s.runs.len());
        let failing: Vec<String> = s
            .failing()
            .iter()
            .map(|r| format!("{:?}: {}", r.failure, explore::describe(&r.schedule)))
            .collect();
        assert!(failing.is_empty(), "{name}: {failing:#?}");
    }
}

/// Each of these bugs needs one fault at one step: a crash of the master between its answer and
/// a sync it skipped (`unsynced_log`), a replica that misses a mutation and keeps its version
/// (`no_version_bump`), a master that restarts while its leases run and grants new ones
/// (`no_grace_after_restart`). The happy path has no fault of its own; one explored fault shows
/// each. (`clone_from_stale` needs two faults since forwards expire with their lease: `bugs.rs`.)
#[test]
fn one_fault_at_the_right_step_finds_bugs_that_need_a_narrow_window() {
    for (name, bug, check) in [
        ("happy_path", Bug::UnsyncedLog, "acked_creates"),
        ("happy_path", Bug::NoVersionBump, "acked_on_replicas"),
        ("happy_path", Bug::NoGraceAfterRestart, "single_primary"),
    ] {
        let loaded = scenario(name, &[bug]);
        let summary = explore_depth_one(&loaded, 2);
        assert!(summary.baseline_failure.is_none(), "{bug:?}");
        let checks = failing_checks(&summary);
        assert!(
            checks.iter().any(|c| c == check),
            "{bug:?}: failing checks {checks:?}"
        );
        // The first failing schedule, written as a scenario, fails the same check again.
        let found = summary
            .failing()
            .into_iter()
            .find(|r| r.failure.as_ref().unwrap().0 == check)
            .unwrap();
        let text = explore::to_scenario(&loaded, &found.schedule, check, 1);
        assert!(text.contains("at_point = "), "{text}");
        let again = sim::scenario::parse("found", "found.toml", &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let report = sim::scenario::run(&again);
        assert_eq!(
            report.failure().map(|f| f.check).as_deref(),
            Some(check),
            "{bug:?} replayed:\n{text}"
        );
        assert!(
            sim::scenario::check(&again, &report)
                .iter()
                .all(|(ok, _)| *ok),
            "{text}"
        );
    }
}

#[test]
fn a_scenario_fault_at_a_point_that_is_not_a_point_is_refused_in_one_line() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/happy_path.toml"
    ))
    .unwrap();
    for (fault, says) in [
        (
            "kind = \"crash\"\nat_point = \"cs1 during sync #1 of x\"",
            "must look like",
        ),
        (
            "kind = \"loss\"\nat_point = \"cs1 after sync #1 of x\"",
            "only a message",
        ),
        (
            "kind = \"isolate\"\nat_point = \"cs1 after sync #1 of x\"",
            "cannot strike at a point",
        ),
        (
            "kind = \"master_crash\"\nat_point = \"cs1 after sync #1 of x\"",
            "master_crash the master",
        ),
    ] {
        // The [[fault]] goes before [expect], as a file would have it.
        let text = base.replacen("[expect]", &format!("[[fault]]\n{fault}\n\n[expect]"), 1);
        let err = match sim::scenario::parse("bad", "bad.toml", &text) {
            Err(e) => e,
            Ok(_) => panic!("{fault} was accepted"),
        };
        assert!(err.contains(says) && !err.contains('\n'), "{err}");
    }
}

/// Counting points is observing: the fault-free run exploration starts from is the scenario's own
/// run, event for event, though it records every point it passes.
#[test]
fn counting_points_changes_nothing_in_a_run() {
    let loaded = happy_path(&[]);
    let plain = sim::scenario::run(&loaded);
    let counted = explore::run_schedule(&loaded, &Vec::new());
    assert!(plain.points.is_empty());
    assert!(counted.points.len() > 100, "{}", counted.points.len());
    assert_eq!(plain.events, counted.events);
    assert_eq!(plain.history, counted.history);
}
