//! Every scripted scenario under `scenarios/` runs, its expectations hold, and its timeline matches
//! the snapshot under `traces/snapshots/`. A changed timeline fails the test; `just bless` (or
//! `cargo insta review`) accepts an intended change.

use std::path::Path;

fn scenarios_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"))
}

#[test]
fn every_scenario_holds_its_expectations_and_matches_its_snapshot() {
    let names = sim::scenario::list(scenarios_dir());
    assert!(
        names.len() >= 8,
        "expected at least eight scenarios, found {names:?}"
    );
    for name in names {
        let path = sim::scenario::locate(scenarios_dir(), &name).unwrap();
        let loaded = sim::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let report = sim::scenario::run(&loaded);
        let failed: Vec<String> = sim::scenario::check(&loaded, &report)
            .into_iter()
            .filter(|(held, _)| !held)
            .map(|(_, what)| what)
            .collect();
        assert!(failed.is_empty(), "scenario {name}: {failed:?}");
        // Same scenario, same bytes.
        assert_eq!(
            report.record(),
            sim::scenario::run(&loaded).record(),
            "scenario {name} is not repeatable"
        );
        insta::with_settings!({
            snapshot_path => "../../traces/snapshots",
            prepend_module_to_snapshot => false,
            description => loaded.scenario.description.clone(),
        }, {
            insta::assert_snapshot!(name.clone(), sim::scenario::snapshot_timeline(&report));
        });
    }
}

#[test]
fn malformed_scenarios_get_one_line_errors_naming_file_and_field() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-scenarios-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "typo",
            "description = \"x\"\n[[op]]\nat_msec = 1\nclient = 0\nop = \"list\"\n",
            "typo.toml:3:1: unknown field `at_msec`",
        ),
        (
            "missing",
            "description = \"x\"\n[[op]]\nclient = 0\nop = \"list\"\n",
            "op #1: give exactly one of `at_ms` and `after_ms`",
        ),
        (
            "badop",
            "description = \"x\"\n[[op]]\nat_ms = 1\nclient = 0\nop = \"frob\"\n",
            "op #1: unknown op \"frob\"",
        ),
        (
            "badnode",
            "description = \"x\"\n[[fault]]\nat_ms = 1\nkind = \"crash\"\nnode = \"cs9\"\n",
            "fault #1: node \"cs9\": there are only 5 cs nodes",
        ),
        (
            "badkind",
            "description = \"x\"\n[[fault]]\nat_ms = 1\nkind = \"meteor\"\n",
            "fault #1: unknown fault kind \"meteor\"",
        ),
        (
            "badcluster",
            "description = \"x\"\n[cluster]\nreplication = 9\n",
            "[cluster]: replication must be between 1 and 5, got 9",
        ),
        (
            "scriptedfaults",
            "description = \"x\"\n[cluster]\nfaults = \"all\"\n",
            "[cluster]: `faults` does not apply to a scenario",
        ),
        (
            "badoption",
            "description = \"x\"\n[cluster]\nchunk_sise = 8\n",
            "badoption.toml:3:1: unknown field `chunk_sise`",
        ),
        (
            "badexpect",
            "description = \"x\"\n[expect]\nops = [{ op = 3, outcome = \"ok\" }]\n",
            "[expect]: op 3 but the file has 0 ops",
        ),
        (
            "badregion",
            "description = \"x\"\n[[op]]\nat_ms = 1\nclient = 0\nop = \"list\"\n[expect]\nops = [{ op = 1, region = \"shiny\" }]\n",
            "[expect] op 1: unknown region \"shiny\"",
        ),
        (
            "stalewrite",
            "description = \"x\"\n[[op]]\nat_ms = 1\nclient = 0\nop = \"list\"\n[expect]\nops = [{ op = 1, stale = true }]\n",
            "[expect] op 1: `stale` is for reads",
        ),
        (
            "badevent",
            "description = \"x\"\n[expect]\nevents = [\"lease_grnated\"]\n",
            "[expect] events: unknown event kind \"lease_grnated\"",
        ),
        (
            "badrecord",
            "description = \"x\"\n[[op]]\nat_ms = 1\nclient = 0\nop = \"append\"\npath = \"/a\"\ndata = \"x\"\nrecord = 999999999\n",
            "op #1: `record` id 999999999 is above",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let err = match sim::scenario::load(&path) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e,
        };
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}.toml")),
            "{name}: the error names the file: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
    let unknown = sim::scenario::locate(&dir, "nope").unwrap_err();
    assert!(
        unknown.contains("no scenario named \"nope\"") && unknown.contains("typo"),
        "{unknown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A region expectation is checked against what `table1` judged: the duplicate the crashed
/// primary's retry leaves holds, and claiming the same append left an inconsistent region fails.
#[test]
fn region_expectations_are_checked() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"));
    let mut loaded = sim::scenario::load(&dir.join("primary_crash_during_append.toml")).unwrap();
    let report = sim::scenario::run(&loaded);
    let held = |loaded: &sim::scenario::Loaded| -> Vec<(bool, String)> {
        sim::scenario::check(loaded, &report)
            .into_iter()
            .filter(|(_, what)| what.contains("region"))
            .collect()
    };
    let lines = held(&loaded);
    assert!(
        lines
            .iter()
            .any(|(ok, what)| *ok && what.contains("left a duplicate region")),
        "{lines:?}"
    );
    loaded.scenario.expect.ops[1].region = Some("inconsistent".into());
    let lines = held(&loaded);
    assert!(
        lines
            .iter()
            .any(|(ok, what)| !*ok && what.contains("left a inconsistent region")),
        "{lines:?}"
    );
}

/// The `records_once` expectation counts what the record reader finds: the hundred appenders'
/// records each appear once, and a duplicated record (what a retried append leaves) fails it.
#[test]
fn records_once_expectation_is_checked() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"));
    let loaded = sim::scenario::load(&dir.join("hundred_appenders_one_chunk.toml")).unwrap();
    let mut report = sim::scenario::run(&loaded);
    let once = |report: &sim::run::RunReport| -> (bool, String) {
        sim::scenario::check(&loaded, report)
            .into_iter()
            .find(|(_, what)| what.contains("exactly once"))
            .expect("the expectation is checked")
    };
    let (held, what) = once(&report);
    assert!(held, "{what}");
    let state = report.final_state.as_mut().unwrap();
    let log = state.files.get_mut("/log").unwrap().as_mut().unwrap();
    let first = sim::records::scan_sparse(log).records[0];
    let copy = log.read(first.offset, first.len as u64);
    let end = log.len();
    log.write(end, &copy);
    let (held, what) = once(&report);
    assert!(
        !held && what.contains(&format!("{} x2", first.id)),
        "{what}"
    );
}
