//! `sim explore SCENARIO --depth N`: every fault schedule of a scenario up to N faults
//! ([`sim::explore`]), with a progress bar, a summary, and every failing schedule written as a
//! scenario file with its timeline.

use indicatif::{ProgressBar, ProgressStyle};
use sim::explore::{self, Explored, Options};
use sim::failure::FailureClass;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs the exploration of scenario `name`, with `bugs` switched on besides its own, and reports
/// it; exit 0 if every schedule passed, 1 if one failed a check (3 for liveness, 4 for a panic,
/// as sweeps), 2 for bad input.
pub fn run(
    name: &str,
    bugs: &[node::Bug],
    dir: &Path,
    out: &Path,
    opts: &Options,
    fail: impl Fn(&str) -> ExitCode,
) -> ExitCode {
    if opts.depth == 0 || opts.depth > explore::MAX_DEPTH {
        return fail(&format!(
            "--depth must be 1 or {}, got {}",
            explore::MAX_DEPTH,
            opts.depth
        ));
    }
    if opts.max_schedules == 0 {
        return fail("--max-schedules must be at least 1");
    }
    let mut loaded = match sim::scenario::locate(dir, name).and_then(|p| sim::scenario::load(&p)) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    for bug in bugs {
        if !loaded.options.bugs.contains(bug) {
            loaded.options.bugs.push(*bug);
            loaded.scenario.cluster.bugs.push(*bug);
        }
    }
    eprintln!(
        "exploring scenario {} to depth {} on {} threads (at most {} schedules)",
        loaded.name, opts.depth, opts.jobs, opts.max_schedules
    );
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let summary = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} schedules  {per_sec}  {msg}")
                .expect("valid template"),
        );
        let progress = |e: &Explored, known: usize| {
            bar.set_length(known as u64);
            bar.set_position(done.fetch_add(1, Ordering::Relaxed) as u64 + 1);
            if let Some((check, _, _)) = &e.failure {
                let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
                bar.set_message(format!("{n} failed"));
                bar.println(format!("FAIL {check}: {}", explore::describe(&e.schedule)));
            }
        };
        let s = explore::explore(&loaded, opts, &progress);
        bar.finish_and_clear();
        s
    } else {
        // No terminal (CI): a plain line every 100 schedules, and each failure.
        let progress = |e: &Explored, known: usize| {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some((check, _, _)) = &e.failure {
                eprintln!("FAIL {check}: {}", explore::describe(&e.schedule));
            }
            if n.is_multiple_of(100) {
                eprintln!("{n}/{known} schedules");
            }
        };
        explore::explore(&loaded, opts, &progress)
    };
    if let Some(f) = &summary.baseline_failure {
        println!("the scenario fails without any explored fault: {f}");
        println!("fix the scenario (or run it with `sim scenario {name}`) before exploring it");
        return ExitCode::from(1);
    }
    println!("scenario {}: depth {}", loaded.name, opts.depth);
    println!(
        "  fault points reached in the safety phase: {}",
        summary.points
    );
    println!(
        "  schedules: {} run ({} with one fault), {} pruned as equivalent ({} same standing, {} \
         after a fault that changed nothing, {} after a run seen before)",
        summary.runs.len(),
        summary.candidates.min(summary.runs.len()),
        summary.pruned(),
        summary.pruned_standing,
        summary.pruned_no_change,
        summary.pruned_seen
    );
    println!(
        "  distinct outcomes: {} (verdict and every operation's result)",
        summary.distinct_outcomes()
    );
    let never = summary
        .runs
        .iter()
        .filter(|r| r.struck < r.schedule.len())
        .count();
    if never > 0 {
        println!(
            "  schedules whose every fault did not strike (the point was not reached): {never}"
        );
    }
    println!("  wall time: {:.1} s", summary.wall.as_secs_f64());
    print!(
        "{}",
        super::coverage::table(
            &summary.coverage,
            &format!("the {} explored runs", summary.runs.len())
        )
    );
    if summary.over_bound > 0 {
        println!(
            "stopped at the bound: {} more schedules were not run; raise --max-schedules to run \
             them",
            summary.over_bound
        );
    }
    let failing = summary.failing();
    let mut by_check: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in &failing {
        *by_check
            .entry(r.failure.as_ref().expect("failing").0.as_str())
            .or_default() += 1;
    }
    if failing.is_empty() {
        println!("every schedule passed every check");
        return ExitCode::SUCCESS;
    }
    let counts: Vec<String> = by_check.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!("{} schedules failed: {}", failing.len(), counts.join(", "));
    // Every failing schedule as a scenario with its timeline: the first of each check as
    // explore-SCENARIO-CHECK, the next ones numbered from 2.
    let mut written: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &failing {
        let (check, line, _) = r.failure.as_ref().expect("failing");
        println!("  {check}: {} ({line})", explore::describe(&r.schedule));
        let n = written.entry(check.clone()).or_default();
        *n += 1;
        match write_found(&loaded, &r.schedule, check, *n, opts.depth, out) {
            Ok(path) => println!("    written: {path}"),
            Err(e) => println!("    error: {e}"),
        }
    }
    let worst = FailureClass::worst(
        failing
            .iter()
            .map(|r| r.failure.as_ref().expect("failing").2),
    )
    .expect("some schedule failed");
    ExitCode::from(worst.exit_code())
}

/// Writes the `nth` failing schedule of `check` as `OUT/explore-SCENARIO-CHECK[-N].toml` with its
/// timeline beside it, after replaying the file to see that it fails the same check.
fn write_found(
    loaded: &sim::scenario::Loaded,
    schedule: &explore::Schedule,
    check: &str,
    nth: usize,
    depth: u32,
    out: &Path,
) -> Result<String, String> {
    let bugs: Vec<&str> = loaded.options.bugs.iter().map(|b| b.name()).collect();
    let mut name = format!("explore-{}", loaded.name);
    if !bugs.is_empty() {
        name = format!("{name}-{}", bugs.join("-"));
    }
    let name = if nth == 1 {
        format!("{name}-{check}")
    } else {
        format!("{name}-{check}-{nth}")
    };
    let path = out.join(format!("{name}.toml"));
    let text = explore::to_scenario(loaded, schedule, check, depth);
    std::fs::create_dir_all(out)
        .and_then(|_| std::fs::write(&path, &text))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let again = sim::scenario::load(&path)
        .map_err(|e| format!("the written scenario does not load: {e}"))?;
    let report = sim::scenario::run(&again);
    let timeline_path = out.join(format!("{name}.timeline.txt"));
    std::fs::write(&timeline_path, sim::scenario::snapshot_timeline(&report))
        .map_err(|e| format!("cannot write {}: {e}", timeline_path.display()))?;
    let held = sim::scenario::check(&again, &report)
        .iter()
        .all(|(ok, _)| *ok);
    if !held {
        return Err(format!(
            "{} does not fail {check} when replayed: exploration is not repeatable here",
            path.display()
        ));
    }
    Ok(format!(
        "{} (timeline: {})",
        path.display(),
        timeline_path.display()
    ))
}
