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

use crate::faults::{Fault, FaultKind, FaultPlan, Target, What};
use crate::options::RunOptions;
use crate::run::{boot_ms, RunReport};
use crate::workload::{ClientScript, OpSpec, Plan};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A scenario file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub description: String,
    /// The seed for the simulator's own choices.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub cluster: ClusterOptions,
    /// Planted bugs to switch on (see `sim --help`).
    #[serde(default)]
    pub bugs: Vec<String>,
    /// The chunkserver whose disk tears writes and rots bits (`csN`); implied by torn_write and
    /// bit_flip faults.
    pub faulty_disk: Option<String>,
    /// Files client 0 creates before the scripted operations start.
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default, rename = "op")]
    pub ops: Vec<ScriptedOp>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<ScriptedFault>,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterOptions {
    pub chunkservers: Option<u32>,
    pub replication: Option<u32>,
    pub chunk_size: Option<u64>,
    pub block_size: Option<u64>,
    pub lease_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub clients: Option<u32>,
    /// Length of the phase in which faults strike (default 5000).
    pub safety_ms: Option<u64>,
    /// Upper bound of a disk sync's latency, in microseconds (default 500).
    pub disk_latency_us: Option<u64>,
}

/// One client operation, `at_ms` after the cluster has booted (client 0 creates `files` right
/// then, which takes a few tens of milliseconds: start operations at 100 or later).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedOp {
    /// When, in ms after boot. Either this or `after_ms`, the same for all of a client's ops.
    pub at_ms: Option<u64>,
    /// Or: a pause after the client's previous operation completed (what generated workloads and
    /// shrunk scenarios use).
    pub after_ms: Option<u64>,
    pub client: u32,
    /// create, delete, list, read, write or append.
    pub op: String,
    pub path: Option<String>,
    pub offset: Option<u64>,
    /// Bytes to read, or (with `byte`) bytes to write.
    pub len: Option<u64>,
    /// Text to write or append.
    pub data: Option<String>,
    /// Or the bytes in hexadecimal.
    pub data_hex: Option<String>,
    /// Fill byte for a write or append of `len` bytes.
    pub byte: Option<u8>,
    /// For an append: wrap the data in a self-identifying record with this id
    /// ([`crate::records`]), so the checks can find every copy of it.
    pub record: Option<u32>,
}

/// One fault, `at_ms` after the cluster has booted (the same clock as operations).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedFault {
    pub at_ms: u64,
    /// A fault kind: crash, master_crash, pause, isolate, partition, one_way, delay, loss,
    /// torn_write, bit_flip.
    pub kind: String,
    /// `master`, `csN`, `clientN`, or `primary:/path#index` (the chunk's primary at that moment).
    pub node: Option<String>,
    /// For partition: the nodes on one side.
    pub side: Option<Vec<String>>,
    /// For one_way: the link's ends.
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub lasts_ms: u64,
    pub max_latency_ms: Option<u64>,
    pub percent: Option<u32>,
}

/// What must be observed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Every correctness check passes (default true).
    #[serde(default = "yes")]
    pub checks_pass: bool,
    /// The cluster converges after healing and serves every later operation (default true).
    #[serde(default = "yes")]
    pub converges: bool,
    /// Event kinds that must appear at least once.
    #[serde(default)]
    pub events: Vec<String>,
    /// Outcomes of scripted operations, by their 1-based number in the file.
    #[serde(default)]
    pub ops: Vec<ExpectOp>,
    /// Replica counts and versions of chunks at the end.
    #[serde(default)]
    pub chunks: Vec<ExpectChunk>,
    /// The check that must fail (a check's name, or `liveness`): for scenarios that capture a bug.
    pub fails: Option<String>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            checks_pass: true,
            converges: true,
            events: Vec::new(),
            ops: Vec::new(),
            chunks: Vec::new(),
            fails: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectOp {
    /// 1-based number of the `[[op]]` in the file.
    pub op: usize,
    /// `ok` or an error kind (`not_found`, `record_too_large`, ...).
    pub outcome: Option<String>,
    /// A region state (GFS Table 1, as the `table1` check judges it) among the regions the
    /// operation left: `defined`, `consistent`, `inconsistent`, `duplicate`, `padding`,
    /// `superseded`, `not landed` or `unknown offset`.
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectChunk {
    pub path: String,
    pub index: u64,
    pub replicas: Option<usize>,
    pub min_version: Option<u64>,
}

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
    let known = list(dir).join(", ");
    Err(format!(
        "no scenario named {name:?} in {} (known: {known})",
        dir.display()
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

fn parse_target(
    s: &str,
    opts: &RunOptions,
    primaries: &mut Vec<(String, u64)>,
) -> Result<Target, String> {
    if s == "master" {
        return Ok(Target::Master);
    }
    if let Some(rest) = s.strip_prefix("primary:") {
        let (path, index) = rest
            .rsplit_once('#')
            .ok_or_else(|| format!("node {s:?}: write primary:/path#chunk-index"))?;
        let index = index
            .parse()
            .map_err(|_| format!("node {s:?}: {index:?} is not a chunk index"))?;
        primaries.push((path.to_string(), index));
        return Ok(Target::PrimaryOf(primaries.len() as u32 - 1));
    }
    let numbered = |prefix: &str, count: u32| -> Option<Result<u32, String>> {
        let n = s.strip_prefix(prefix)?.parse::<u32>().ok()?;
        Some(if n < count {
            Ok(n)
        } else {
            Err(format!("node {s:?}: there are only {count} {prefix} nodes"))
        })
    };
    if let Some(n) = numbered("cs", opts.chunkservers) {
        return n.map(Target::Chunkserver);
    }
    if let Some(n) = numbered("client", opts.clients) {
        return n.map(Target::Client);
    }
    Err(format!(
        "unknown node {s:?} (master, csN, clientN or primary:/path#index)"
    ))
}

fn op_spec(o: &ScriptedOp) -> Result<OpSpec, String> {
    let path = || {
        o.path
            .clone()
            .ok_or_else(|| format!("{} needs `path`", o.op))
    };
    let data = || -> Result<Vec<u8>, String> {
        if let Some(hex) = &o.data_hex {
            if o.data.is_some() || o.byte.is_some() {
                return Err("give one of `data`, `data_hex`, or `byte` and `len`".into());
            }
            return (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
                .filter(|_| hex.len() % 2 == 0)
                .ok_or_else(|| "`data_hex` is not an even number of hex digits".to_string());
        }
        match (&o.data, o.byte, o.len) {
            (Some(d), None, None) => Ok(d.as_bytes().to_vec()),
            (None, Some(b), Some(n)) if n <= 1 << 20 => Ok(vec![b; n as usize]),
            (None, Some(_), Some(_)) => Err("`len` above 1 MiB".into()),
            _ => Err(format!("{} needs `data`, or `byte` and `len`", o.op)),
        }
    };
    Ok(match o.op.as_str() {
        "create" => OpSpec::Create { path: path()? },
        "delete" => OpSpec::Delete { path: path()? },
        "list" => OpSpec::List,
        "read" => OpSpec::Read {
            path: path()?,
            offset: o.offset.unwrap_or(0),
            len: o.len.ok_or("read needs `len`")?,
        },
        "write" => OpSpec::Write {
            path: path()?,
            offset: o.offset.ok_or("write needs `offset`")?,
            data: data()?,
        },
        "append" => OpSpec::Append {
            path: path()?,
            data: match o.record {
                Some(id) if id > crate::records::MAX_ID => {
                    return Err(format!(
                        "`record` id {id} is above {}",
                        crate::records::MAX_ID
                    ))
                }
                Some(id) => crate::records::encode(id, &data()?),
                None => data()?,
            },
        },
        other => {
            return Err(format!(
                "unknown op {other:?} (create, delete, list, read, write, append)"
            ))
        }
    })
}

/// Reads, checks and prepares a scenario file. Errors are one line naming the file and the field.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let scenario: Scenario = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| line_col(&text, s.start));
        let msg = e.message().lines().next().unwrap_or_default().to_string();
        match at {
            Some((l, c)) => format!("{file}:{l}:{c}: {msg}"),
            None => format!("{file}: {msg}"),
        }
    })?;
    let c = &scenario.cluster;
    let d = RunOptions::default();
    let options = RunOptions {
        chunkservers: c.chunkservers.unwrap_or(d.chunkservers),
        replication: c.replication.unwrap_or(d.replication),
        chunk_size_bytes: c.chunk_size.unwrap_or(d.chunk_size_bytes),
        block_size_bytes: c.block_size.unwrap_or(d.block_size_bytes),
        lease_ms: c.lease_ms.unwrap_or(d.lease_ms),
        heartbeat_ms: c.heartbeat_ms.unwrap_or(d.heartbeat_ms),
        clients: c.clients.unwrap_or(d.clients),
        // Only the generated workload needs files; a script names its own.
        files: (scenario.files.len() as u32).max(1),
        safety_ms: c.safety_ms.unwrap_or(d.safety_ms),
        disk_latency_us: c.disk_latency_us.unwrap_or(d.disk_latency_us),
        faults: "none".parse().expect("valid"),
        bugs: scenario
            .bugs
            .iter()
            .map(|b| b.parse::<node::Bug>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{file}: bugs: {e}"))?,
        ..d
    };
    options
        .validate()
        .map_err(|e| format!("{file}: [cluster]: {e}"))?;
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
        let spec = op_spec(o).map_err(|e| format!("{file}: op #{n}: {e}"))?;
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
        Some(name) => match parse_target(name, &options, &mut Vec::new()) {
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
        let kind: FaultKind = f.kind.parse().map_err(at)?;
        let node = |name: &Option<String>,
                    field: &str,
                    prims: &mut Vec<(String, u64)>|
         -> Result<Target, String> {
            let name = name.as_ref().ok_or(format!("{} needs `{field}`", f.kind))?;
            parse_target(name, &options, prims)
        };
        let what = match kind {
            FaultKind::Crash | FaultKind::TornWrite => What::Crash {
                node: node(&f.node, "node", &mut primaries).map_err(at)?,
            },
            FaultKind::MasterCrash => What::Crash {
                node: Target::Master,
            },
            FaultKind::Pause => What::Pause {
                node: node(&f.node, "node", &mut primaries).map_err(at)?,
            },
            FaultKind::Isolate => What::Isolate {
                node: node(&f.node, "node", &mut primaries).map_err(at)?,
            },
            FaultKind::BitFlip => What::BitFlip {
                node: node(&f.node, "node", &mut primaries).map_err(at)?,
            },
            FaultKind::OneWay => What::OneWay {
                from: node(&f.from, "from", &mut primaries).map_err(at)?,
                to: node(&f.to, "to", &mut primaries).map_err(at)?,
            },
            FaultKind::Partition => {
                let names = f
                    .side
                    .as_ref()
                    .ok_or("partition needs `side`".to_string())
                    .map_err(at)?;
                let side = names
                    .iter()
                    .map(|n| parse_target(n, &options, &mut primaries))
                    .collect::<Result<_, _>>()
                    .map_err(at)?;
                What::Partition { side }
            }
            FaultKind::Delay => What::Delay {
                max_latency_ms: f.max_latency_ms.unwrap_or(100),
            },
            FaultKind::Loss => What::Loss {
                percent: f.percent.unwrap_or(20).min(100),
            },
        };
        if crate::faults::needs_faulty_disk(kind) {
            match what {
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
        faults.push(Fault {
            at_ms: boot + f.at_ms,
            lasts_ms: f.lasts_ms,
            kind,
            what,
        });
    }
    faults.sort_by_key(|f| f.at_ms);
    let fault_plan = FaultPlan {
        rates: BTreeMap::new(),
        faulty_disk,
        faults,
        start_ms: boot,
        end_ms: boot + options.safety_ms,
        primary_of: primaries,
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
        if e.outcome.is_none() && e.region.is_none() {
            return Err(format!(
                "{file}: [expect] op {}: give `outcome`, `region` or both",
                e.op
            ));
        }
    }
    let plan = Plan {
        files: scenario.files.clone(),
        clients: scripts,
    };
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario")
        .to_string();
    Ok(Loaded {
        name,
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
                "the cluster converges ({})",
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
    for x in &e.ops {
        let o = &loaded.scenario.ops[x.op - 1];
        let nth = loaded.plan.clients[o.client as usize]
            .steps
            .iter()
            .position(|(at, spec)| {
                Some(*at) == o.at_ms.or(o.after_ms) && Some(spec) == op_spec(o).ok().as_ref()
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
    }
    let state = report.final_state.as_ref();
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
/// without lease extensions, which only say that time passes. Messages and disk operations stay
/// out, so a snapshot is small enough to read and changes only when the protocol's story does.
pub fn snapshot_timeline(report: &RunReport) -> String {
    timeline(report, &[])
}

/// [`snapshot_timeline`] with the groups in `show` (messages, disk operations) put back.
pub fn timeline(report: &RunReport, show: &[crate::trace::Shown]) -> String {
    let lines: Vec<_> = crate::trace::shown(&crate::trace::lines(report), show)
        .into_iter()
        .filter(|l| l.kind != "lease_extended")
        .collect();
    crate::trace::timeline(&lines, &crate::trace::nodes(report))
}
