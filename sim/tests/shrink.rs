//! Shrinking turns a failing seed into a small scenario that fails the same check, and the found
//! scenarios under `scenarios/found/` keep failing the way they were found (with their timelines).

use std::path::Path;

#[test]
fn a_failing_seed_shrinks_to_a_small_scenario_that_fails_the_same_check() {
    let opts = sim::options::RunOptions {
        bugs: vec!["early_lease".parse().unwrap()],
        ..Default::default()
    };
    let s = sim::shrink::shrink(0, &opts, 500, |_| {}).unwrap();
    assert_eq!(s.check, "single_primary");
    assert!(
        s.after.faults <= s.before.faults && s.after.ops < s.before.ops,
        "{} -> {}",
        s.before,
        s.after
    );
    assert!(
        s.after.ops <= 5 && s.after.faults <= 2,
        "not small: {}",
        s.after
    );
    let dir = std::env::temp_dir().join(format!("gfs-sim-shrink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("found.toml");
    std::fs::write(&path, sim::shrink::to_scenario(0, &opts, &s)).unwrap();
    let loaded = sim::scenario::load(&path).unwrap();
    let report = sim::scenario::run(&loaded);
    assert_eq!(
        report.failure().map(|f| f.check).as_deref(),
        Some("single_primary")
    );
    // Without the bug the same scenario passes: the bug, not the scenario, is the failure.
    let mut honest = loaded.options.clone();
    honest.bugs.clear();
    let r = sim::run::run_plan(
        loaded.scenario.seed,
        &honest,
        loaded.plan.clone(),
        loaded.faults.clone(),
        node::trace::Detail::Protocol,
    );
    assert!(r.passed(), "{:?}", r.failure_line());
    let _ = std::fs::remove_dir_all(&dir);
    // A passing seed has nothing to shrink.
    let err = sim::shrink::shrink(0, &sim::options::RunOptions::default(), 10, |_| {})
        .err()
        .unwrap();
    assert!(err.contains("passes"), "{err}");
}

#[test]
fn found_scenarios_still_fail_their_check_and_match_their_timelines() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/found"));
    let names = sim::scenario::list(dir);
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        let loaded = sim::scenario::load(&dir.join(format!("{name}.toml"))).unwrap();
        assert!(
            loaded.scenario.expect.fails.is_some(),
            "{name}: a found scenario names the check it fails"
        );
        let report = sim::scenario::run(&loaded);
        for (held, what) in sim::scenario::check(&loaded, &report) {
            assert!(held, "{name}: {what}");
        }
        let timeline = sim::scenario::snapshot_timeline(&report);
        let file = dir.join(format!("{name}.timeline.txt"));
        if std::env::var("INSTA_UPDATE").as_deref() == Ok("always") {
            std::fs::write(&file, &timeline).unwrap();
        }
        let stored = std::fs::read_to_string(&file).unwrap();
        assert!(
            stored == timeline,
            "{name}: the timeline changed (`just bless` accepts it)"
        );
    }
}
