//! The mutation gate: the project's judgement of a change to `node/`, in seconds.
//!
//! `cargo mutants` (see `.cargo/mutants.toml` and the README's "Mutation testing") builds each
//! mutant of the protocol and runs this test (with the unit tests of `gfs-node` and `sim`): a mutant is caught
//! when the cluster it builds breaks a rule a check judges. So the gate judges a mutant the way
//! the project judges code, by what nodes did, never by how they print it: seeded sweeps of every
//! workload profile with swarm faults and without faults (where every operation must succeed),
//! every scripted scenario's expectations and every found scenario's failure, and one explored
//! fault at each fault point of the protocol scenarios. No timeline or snapshot comparison: a
//! mutant that only changes what a trace line says is not a mistake the checks should catch.
//!
//! Everything runs even after a failure, and the report names each part that failed, so a
//! survivor's triage starts from what did run.

use std::path::Path;

use sim::explore::{self, Options};
use sim::faults::FaultSpec;
use sim::options::RunOptions;
use sim::sweep::sweep;
use sim::workload::Workload;

const JOBS: usize = 2;

fn scenarios_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"))
}

/// One part of the gate: its name and what failed in it (empty: it passed).
type Part = (String, Vec<String>);

fn sweep_part(name: &str, seeds: std::ops::Range<u64>, opts: RunOptions) -> Part {
    let s = sweep(seeds.clone(), JOBS, &opts, |_, _| {});
    let mut failed: Vec<String> = s.failure_report().lines().map(str::to_string).collect();
    if s.seeds != seeds.end - seeds.start {
        failed.push(format!(
            "ran {} of {} seeds",
            s.seeds,
            seeds.end - seeds.start
        ));
    }
    (format!("sweep {name} {seeds:?}{}", opts.flags()), failed)
}

fn sweeps() -> Vec<Part> {
    let mut parts = vec![
        sweep_part("mixed, swarm faults", 0..300, RunOptions::default()),
        sweep_part(
            "mixed, no faults",
            0..150,
            RunOptions {
                faults: FaultSpec::Kinds(Default::default()),
                ..RunOptions::default()
            },
        ),
    ];
    for workload in [
        Workload::Hot,
        Workload::Log,
        Workload::Large,
        Workload::SmallFiles,
    ] {
        for faults in [FaultSpec::Swarm, FaultSpec::Kinds(Default::default())] {
            let opts = RunOptions {
                workload,
                faults,
                ..RunOptions::default()
            };
            parts.push(sweep_part("profile", 0..40, opts));
        }
    }
    parts
}

/// Scripted scenarios hold their expectations; found scenarios still fail their check.
fn scenarios() -> Vec<Part> {
    let mut parts = Vec::new();
    for dir in [scenarios_dir().to_path_buf(), scenarios_dir().join("found")] {
        for name in sim::scenario::list(&dir) {
            let path = dir.join(format!("{name}.toml"));
            let failed = match sim::scenario::load(&path) {
                Err(e) => vec![e],
                Ok(loaded) => {
                    let report = sim::scenario::run(&loaded);
                    sim::scenario::check(&loaded, &report)
                        .into_iter()
                        .filter(|(held, _)| !held)
                        .map(|(_, what)| what)
                        .collect()
                }
            };
            parts.push((format!("scenario {}", path.display()), failed));
        }
    }
    parts
}

/// One fault at each fault point of each protocol scenario: every schedule passes.
fn exploration() -> Vec<Part> {
    let opts = Options {
        depth: 1,
        max_schedules: 1_000,
        jobs: JOBS,
        no_prune: false,
    };
    let mut parts = Vec::new();
    for name in explore::PROTOCOL_SCENARIOS {
        let path = scenarios_dir().join(format!("{name}.toml"));
        let loaded = sim::scenario::load(&path).expect("a protocol scenario loads");
        let s = explore::explore(&loaded, &opts, &|_, _| {});
        let mut failed: Vec<String> = s
            .failing()
            .iter()
            .map(|r| format!("{:?}: {}", r.failure, explore::describe(&r.schedule)))
            .collect();
        if let Some(f) = &s.baseline_failure {
            failed.push(format!("unexplored run fails: {f:?}"));
        }
        parts.push((format!("explore {name} --depth 1"), failed));
    }
    parts
}

#[test]
fn gate() {
    let parts: Vec<Part> = [sweeps(), scenarios(), exploration()].concat();
    assert!(parts.len() > 40, "the gate lost parts: {}", parts.len());
    let failed: Vec<String> = parts
        .iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(name, f)| format!("{name}:\n  {}", f.join("\n  ")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} parts failed:\n{}",
        failed.len(),
        parts.len(),
        failed.join("\n")
    );
}
