//! Scripted scenarios: one protocol path, written down as a TOML file under `scenarios/`.
//!
//! A scenario fixes what a seed would otherwise draw: the cluster's options, each client's
//! operations at given simulated times, and the faults at given times, including "the current
//! primary of chunk N of a file" as a target. It also says what must be observed: checks passing,
//! operations' outcomes and the region states they left (GFS Table 1), protocol events that must
//! appear, replica counts and versions at the end.
//! The seed still drives what the simulator chooses (scheduling, latencies, placement), so a
//! scenario is as repeatable as any run; its timeline is snapshot-tested under `traces/`.
//!
//! ```toml
//! description = "the primary crashes during a record append; the retry leaves a duplicate"
//! files = ["/log"]
//! [cluster]
//! chunk_size = 64
//! [[op]]
//! at_ms = 0
//! client = 0
//! op = "append"
//! path = "/log"
//! data = "record-1"
//! [[fault]]
//! at_ms = 5
//! kind = "crash"
//! node = "primary:/log#0"
//! lasts_ms = 1500
//! [expect]
//! events = ["fault_injected", "version_bumped"]
//! ops = [{ op = 1, outcome = "ok", region = "defined" }]
//! ```

use crate::faults::{FaultPlan, Target, What};
use crate::options::RunOptions;
use crate::run::{boot_ms, RunReport};
use crate::workload::{ClientScript, Plan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod schema;

pub use schema::{Expect, ExpectChunk, ExpectOp, Scenario, ScriptedFault, ScriptedOp};

/// A scenario ready to run.
pub struct Loaded {
    pub name: String,
    pub scenario: Scenario,
    pub options: RunOptions,
    pub plan: Plan,
    pub faults: FaultPlan,
}

/// Finds `name` under `dir` (`name`, `name.toml`) or takes it as a path.
pub fn locate(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let direct = PathBuf::from(name);
    if name.ends_with(".toml") && direct.is_file() {
        return Ok(direct);
    }
    let in_dir = dir.join(format!("{}.toml", name.trim_end_matches(".toml")));
    if in_dir.is_file() {
        return Ok(in_dir);
    }
    let known = list(dir);
    if !dir.is_dir() {
        return Err(format!(
            "no scenario named {name:?}: there is no directory {} (run sim in the repository, or \
             give --dir, or a path to a .toml file)",
            dir.display()
        ));
    }
    Err(format!(
        "no scenario named {name:?} in {} (known: {})",
        dir.display(),
        known.join(", ")
    ))
}

/// Names of the scenarios in `dir`, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let p = e.ok()?.path();
                (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_string))?
            })
            .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Reads, checks and prepares a scenario file. Errors are one line naming the file and the field.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario")
        .to_string();
    parse(&name, &file, &text)
}

/// Parses and prepares scenario text (from `file`, for error messages).
pub fn parse(name: &str, file: &str, text: &str) -> Result<Loaded, String> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| line_col(text, s.start));
        let msg = e.message().lines().next().unwrap_or_default().to_string();
        match at {
            Some((l, c)) => format!("{file}:{l}:{c}: {msg}"),
            None => format!("{file}: {msg}"),
        }
    })?;
    prepare(name, file, scenario)
}

/// An options error names the flag (`--chunk-size ...`); in a file, name the key (`chunk_size`).
fn flag_as_key(error: &str) -> String {
    match error.strip_prefix("--").and_then(|e| e.split_once(' ')) {
        Some((flag, rest)) => format!("{} {rest}", flag.replace('-', "_")),
        None => error.to_string(),
    }
}

/// Checks a scenario and turns it into the plans a run executes.
pub fn prepare(name: &str, file: &str, scenario: Scenario) -> Result<Loaded, String> {
    let c = &scenario.cluster;
    let d = RunOptions::default();
    // A script replaces the generated workload and the fault plan: their options have no say.
    for (key, set) in [
        ("workload", c.workload != d.workload),
        ("files", c.files != d.files),
        ("ops", c.ops_per_client != d.ops_per_client),
        ("faults", c.faults != d.faults),
        ("rate", !c.rates.is_empty()),
    ] {
        if set {
            return Err(format!(
                "{file}: [cluster]: `{key}` does not apply to a scenario, which scripts its \
                 files, operations and faults"
            ));
        }
    }
    let options = RunOptions {
        // Only the generated workload needs files; a script names its own.
        files: (scenario.files.len() as u32).max(1),
        faults: "none".parse().expect("valid"),
        ..c.clone()
    };
    options
        .validate()
        .map_err(|e| format!("{file}: [cluster]: {}", flag_as_key(&e)))?;
    let mut scripts: Vec<ClientScript> = (0..options.clients)
        .map(|client| ClientScript {
            client,
            steps: Vec::new(),
            absolute: true,
        })
        .collect();
    let mut relative = vec![None::<bool>; options.clients as usize];
    for (i, o) in scenario.ops.iter().enumerate() {
        let n = i + 1;
        if o.client >= options.clients {
            return Err(format!(
                "{file}: op #{n}: client {} but the cluster has {} clients",
                o.client, options.clients
            ));
        }
        let (ms, rel) = match (o.at_ms, o.after_ms) {
            (Some(at), None) => (at, false),
            (None, Some(after)) => (after, true),
            _ => {
                return Err(format!(
                    "{file}: op #{n}: give exactly one of `at_ms` and `after_ms`"
                ))
            }
        };
        let mode = &mut relative[o.client as usize];
        if mode.is_some_and(|m| m != rel) {
            return Err(format!(
                "{file}: op #{n}: a client's ops use either `at_ms` or `after_ms`, not both"
            ));
        }
        *mode = Some(rel);
        let spec = o.spec().map_err(|e| format!("{file}: op #{n}: {e}"))?;
        let script = &mut scripts[o.client as usize];
        script.absolute = !rel;
        script.steps.push((ms, spec));
    }
    for s in &mut scripts {
        if s.absolute {
            s.steps.sort_by_key(|(at, _)| *at); // stable: equal times keep file order
        }
    }
    let boot = boot_ms(&options.cluster());
    let mut primaries = Vec::new();
    let mut faults = Vec::new();
    let mut faulty_disk = match &scenario.faulty_disk {
        None => None,
        Some(name) => match schema::parse_target(name, &options, &mut Vec::new()) {
            Ok(Target::Chunkserver(n)) => Some(n),
            _ => {
                return Err(format!(
                    "{file}: faulty_disk: {name:?} is not a chunkserver (csN)"
                ))
            }
        },
    };
    for (i, f) in scenario.faults.iter().enumerate() {
        let at = |e: String| format!("{file}: fault #{}: {e}", i + 1);
        let fault = f.fault(&options, boot, &mut primaries).map_err(at)?;
        if crate::faults::needs_faulty_disk(fault.kind) {
            match fault.what {
                What::Crash {
                    node: Target::Chunkserver(n),
                }
                | What::BitFlip {
                    node: Target::Chunkserver(n),
                } => {
                    if faulty_disk.is_some_and(|d| d != n) {
                        return Err(at("only one chunkserver may have a faulty disk".into()));
                    }
                    faulty_disk = Some(n);
                }
                _ => return Err(at(format!("{} needs a chunkserver `node` (csN)", f.kind))),
            }
        }
        faults.push(fault);
    }
    faults.sort_by_key(|f| f.at_ms);
    let points = faults.iter().any(|f| f.point.is_some());
    let fault_plan = FaultPlan {
        rates: BTreeMap::new(),
        faulty_disk,
        faults,
        start_ms: boot,
        end_ms: boot + options.safety_ms,
        primary_of: primaries,
        points,
    };
    for kind in &scenario.expect.events {
        if !node::trace::Event::KINDS.contains(&kind.as_str()) {
            return Err(format!(
                "{file}: [expect] events: unknown event kind {kind:?} (known: {})",
                node::trace::Event::KINDS.join(", ")
            ));
        }
    }
    for e in &scenario.expect.ops {
        if e.op == 0 || e.op > scenario.ops.len() {
            return Err(format!(
                "{file}: [expect]: op {} but the file has {} ops",
                e.op,
                scenario.ops.len()
            ));
        }
        if let Some(r) = &e.region {
            if crate::checks::table1::State::parse(r).is_none() {
                return Err(format!(
                    "{file}: [expect] op {}: unknown region {r:?} (defined, consistent, \
                     inconsistent, duplicate, padding, superseded, not landed, unknown offset)",
                    e.op
                ));
            }
        }
        if e.outcome.is_none() && e.region.is_none() && e.stale.is_none() {
            return Err(format!(
                "{file}: [expect] op {}: give `outcome`, `region` or `stale`",
                e.op
            ));
        }
        if e.stale.is_some() && scenario.ops[e.op - 1].op != "read" {
            return Err(format!(
                "{file}: [expect] op {}: `stale` is for reads",
                e.op
            ));
        }
    }
    let plan = Plan {
        files: scenario.files.clone(),
        clients: scripts,
    };
    Ok(Loaded {
        name: name.to_string(),
        options,
        plan,
        faults: fault_plan,
        scenario,
    })
}

/// Runs a loaded scenario, recording everything (messages and disk operations too): a scenario is
/// run to be read.
pub fn run(loaded: &Loaded) -> RunReport {
    crate::run::run_plan(
        loaded.scenario.seed,
        &loaded.options,
        loaded.plan.clone(),
        loaded.faults.clone(),
        node::trace::Detail::Full,
    )
}

/// Checks the scenario's expectations against its run; returns one line per expectation, each
/// with whether it held.
pub fn check(loaded: &Loaded, report: &RunReport) -> Vec<(bool, String)> {
    let e = &loaded.scenario.expect;
    let mut out = Vec::new();
    let checks_ok = report.violations.is_empty() && report.panic.is_none();
    if let Some(check) = &e.fails {
        let failed = report.failure().map(|f| f.check);
        out.push((
            failed.as_deref() == Some(check.as_str()),
            format!("check {check} fails (first failure: {failed:?})"),
        ));
    } else if e.checks_pass {
        let failed: Vec<&str> = report.violations.iter().map(|v| v.check).collect();
        out.push((
            checks_ok,
            format!("every check passes (failed: {failed:?})"),
        ));
    } else {
        out.push((!checks_ok, "some check fails".to_string()));
    }
    if e.converges && e.fails.is_none() {
        out.push((
            report.liveness.is_none(),
            format!(
                "the cluster converges: replica counts and versions settle ({})",
                report.liveness.as_deref().unwrap_or("it did")
            ),
        ));
    }
    for kind in &e.events {
        let n = report
            .events
            .iter()
            .filter(|ev| ev.event.kind() == kind)
            .count();
        out.push((n > 0, format!("event {kind} appears ({n} times)")));
    }
    // The n-th scripted op of a client is that client's n-th non-after-heal operation in the
    // history, after the setup creates of client 0.
    let setup = loaded.scenario.files.len();
    let regions = match &report.final_state {
        Some(state) => crate::checks::table1::judge_all(&crate::run::check_inputs(report, state)),
        None => Default::default(),
    };
    let (_, stale) = crate::checks::reads_not_invented::stale_read_list(&report.history);
    for x in &e.ops {
        let o = &loaded.scenario.ops[x.op - 1];
        let nth = loaded.plan.clients[o.client as usize]
            .steps
            .iter()
            .position(|(at, spec)| {
                Some(*at) == o.at_ms.or(o.after_ms) && Some(spec) == o.spec().ok().as_ref()
            })
            .unwrap_or(usize::MAX);
        let rec = report
            .history
            .iter()
            .filter(|r| r.client == o.client && !r.after_heal)
            .skip(if o.client == 0 { setup } else { 0 })
            .nth(nth);
        if let Some(want) = &x.outcome {
            let got = rec
                .and_then(|r| r.outcome.as_ref())
                .map_or("pending".to_string(), |r| r.outcome_name().to_string());
            out.push((
                got == *want,
                format!("op #{} ({}) ends {want} (got {got})", x.op, o.op),
            ));
        }
        if let Some(want) = &x.region {
            let got: Vec<&str> = rec
                .and_then(|r| regions.by_op.get(&r.id))
                .map(|v| v.iter().map(|(_, _, s)| s.name()).collect())
                .unwrap_or_default();
            out.push((
                got.contains(&want.as_str()),
                format!("op #{} ({}) left a {want} region (got {got:?})", x.op, o.op),
            ));
        }
        if let Some(want) = x.stale {
            let missed = rec.and_then(|r| stale.iter().find(|s| s.read.id == r.id));
            let got = match missed {
                Some(s) => format!(
                    "stale: it missed the {} completed at {:.3} ms",
                    s.missed.op.kind(),
                    s.missed_done_ns as f64 / 1e6
                ),
                None => "not stale".to_string(),
            };
            out.push((
                missed.is_some() == want,
                format!(
                    "op #{} ({}) is {} (got {got})",
                    x.op,
                    o.op,
                    if want { "stale" } else { "not stale" }
                ),
            ));
        }
    }
    let state = report.final_state.as_ref();
    if e.records_once {
        // How many times the record reader finds each record id in the files read back.
        let mut found: BTreeMap<u32, u64> = BTreeMap::new();
        for bytes in state.iter().flat_map(|s| s.files.values()).flatten() {
            for r in crate::records::scan_sparse(bytes).records {
                *found.entry(r.id).or_default() += 1;
            }
        }
        let acked: Vec<u32> = report
            .history
            .iter()
            .filter(|o| matches!(o.outcome, Some(crate::history::OpResult::Offset { .. })))
            .filter_map(|o| match &o.op {
                crate::workload::OpSpec::Append { data, .. } => crate::records::id_of(data),
                _ => None,
            })
            .collect();
        let wrong: Vec<String> = acked
            .iter()
            .filter(|id| found.get(id) != Some(&1))
            .map(|id| format!("{id} x{}", found.get(id).copied().unwrap_or(0)))
            .collect();
        out.push((
            !acked.is_empty() && wrong.is_empty(),
            format!(
                "each of {} acknowledged records is read back exactly once (not: {wrong:?})",
                acked.len()
            ),
        ));
    }
    for c in &e.chunks {
        let dump = state.and_then(|s| {
            s.chunks
                .iter()
                .find(|d| d.path == c.path && d.index == c.index)
        });
        if let Some(want) = c.replicas {
            let got = dump.map(|d| d.replicas.len());
            out.push((
                got == Some(want),
                format!("{}#{} has {want} replicas (got {got:?})", c.path, c.index),
            ));
        }
        if let Some(min) = c.min_version {
            let got = dump.map(|d| d.version);
            out.push((
                got.is_some_and(|v| v >= min),
                format!(
                    "{}#{} is at version >= {min} (got {got:?})",
                    c.path, c.index
                ),
            ));
        }
    }
    out
}

/// The timeline a scenario's snapshot holds: protocol events, faults, operations and verdicts,
/// without lease extensions and renewals, which only say that time passes. Messages and disk operations stay
/// out, so a snapshot is small enough to read and changes only when the protocol's story does.
pub fn snapshot_timeline(report: &RunReport) -> String {
    timeline(report, &[])
}

/// [`snapshot_timeline`] with the groups in `show` (messages, disk operations) put back.
pub fn timeline(report: &RunReport, show: &[crate::trace::Shown]) -> String {
    let lines: Vec<_> = crate::trace::shown(&crate::trace::lines(report), show)
        .into_iter()
        .filter(|l| l.kind != "lease_extended" && l.kind != "lease_renewed")
        .collect();
    crate::trace::timeline(&lines, &crate::trace::nodes(report))
}
