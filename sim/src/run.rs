//! One seeded run: build the cluster, play the workload under faults, heal, converge, check.
//!
//! The run is a single madsim runtime seeded with the run's seed. The master and chunkservers are
//! nodes with an `init` future, so the nemesis can crash and restart them; clients are nodes
//! running their scripts. All phases run in simulated time:
//!
//! 1. **Boot.** Servers start; the workload waits out the master's grace period.
//! 2. **Safety phase.** Client 0 creates the files, then every client plays its script while the
//!    [`nemesis`](crate::nemesis) injects the seed's faults. Every invocation and completion goes
//!    into the [`History`]. At the end of the phase every fault is healed.
//! 3. **Liveness phase.** The cluster must converge ([`checks::converged`]) within
//!    [`CONVERGE_LIMIT`]; then a fresh client issues operations that must all succeed.
//! 4. **Read back.** The fresh client lists and reads every file, the master's chunk table is
//!    dumped and every listed replica is read straight from its chunkserver; the checks judge it.
//!
//! A run that does not finish its workload within [`WORKLOAD_LIMIT`], or does not converge, is a
//! liveness failure, reported apart from correctness violations.

use crate::checks::{self, FinalState, Inputs, Violation};
use crate::failure::{Failure, FailureClass};
use crate::faults;
use crate::history::{History, OpRecord, OpResult};
use crate::nemesis::{self, World};
use crate::options::RunOptions;
use crate::workload::{self, OpSpec, Plan};
use madsim::runtime::{Handle, Runtime};
use node::client::{Client, ClientStats};
use node::disk::DiskFaults;
use node::msg::{DumpChunks, ListReplicas, ReadReplica};
use node::rpc::{call, call_result};
use node::trace::{self, Detail, Entry, Event, NodeName};
use node::types::addr;
use node::{chunkserver, master, ClusterConfig, ServerId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Simulated time the workload may take before the run counts as stuck.
pub const WORKLOAD_LIMIT: Duration = Duration::from_secs(600);
/// Simulated time the cluster has, after healing, to converge.
pub const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub options: RunOptions,
    pub history: Vec<OpRecord>,
    pub events: Vec<Entry>,
    /// How much of the run the events record: protocol events only, or messages and disk too.
    pub detail: Detail,
    pub violations: Vec<Violation>,
    /// Checks that ran and held, by name (empty if the run never reached its checks).
    pub passed_checks: Vec<&'static str>,
    /// GFS Table 1 as this run observed it, and how many mutations left a forbidden state
    /// (empty if the run never reached its checks).
    pub table1: checks::table1::Table,
    pub table1_forbidden: u64,
    /// What the read-back phase saw (None if the run never got there).
    pub final_state: Option<FinalState>,
    /// A liveness failure: the workload did not finish, or the cluster did not converge.
    pub liveness: Option<String>,
    /// A node or the harness panicked: a broken invariant.
    pub panic: Option<String>,
    pub messages: u64,
    pub sim_time_ns: u64,
    pub client: ClientStats,
    /// Real time the run took. Outside the simulation, so it is not part of the record.
    pub wall: Duration,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.liveness.is_none() && self.panic.is_none()
    }

    /// Every way the run failed, in order of precedence ([`FailureClass`]): a panic, then each
    /// violated check in the checks' order, then a liveness failure.
    pub fn failures(&self) -> Vec<Failure> {
        let mut out = Vec::new();
        if let Some(p) = &self.panic {
            out.push(Failure {
                class: FailureClass::Panic,
                check: "panic".into(),
                report: p.clone(),
            });
        }
        for v in &self.violations {
            out.push(Failure {
                class: FailureClass::Violation,
                check: v.check.to_string(),
                report: v.report.clone(),
            });
        }
        if let Some(l) = &self.liveness {
            out.push(Failure {
                class: FailureClass::Liveness,
                check: "liveness".into(),
                report: l.clone(),
            });
        }
        out
    }

    /// The first way the run failed (see [`RunReport::failures`]), if it did.
    pub fn failure(&self) -> Option<Failure> {
        self.failures().into_iter().next()
    }

    /// The first way the run failed, in one line.
    pub fn failure_line(&self) -> Option<String> {
        self.failure().map(|f| f.line())
    }

    /// The run's record: its trace as JSON Lines (see [`crate::trace`]). The same seed and
    /// options must give the same bytes.
    pub fn record(&self) -> String {
        crate::trace::to_jsonl(&crate::trace::lines(self))
    }

    /// How often each fault kind struck and each recovery path ran, from the events.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            let key = match &e.event {
                Event::FaultInjected { fault, .. } => format!("fault {fault}"),
                Event::WriteTorn { .. } => "fault writes actually torn".to_string(),
                Event::BitFlipped { .. } => "fault bits actually flipped".to_string(),
                Event::ReplicaCloned { .. } => "recovery re-replication".to_string(),
                Event::GarbageStale { .. } => "recovery stale replica removal".to_string(),
                Event::GarbageOrphan { .. } => "recovery orphan removal".to_string(),
                Event::ReplicaCorrupt { .. } => "recovery checksum repair".to_string(),
                Event::FileReclaimed { .. } => "recovery lazy gc".to_string(),
                Event::ReplicaTrimmed { .. } => "recovery excess replica removal".to_string(),
                Event::MasterRecovered { .. } => "recovery master restart".to_string(),
                _ => continue,
            };
            *out.entry(key).or_default() += 1;
        }
        for e in &self.events {
            if let Event::FaultInjected {
                unsynced_writes_lost: Some(n),
                ..
            } = e.event
            {
                *out.entry("fault unsynced writes lost".to_string())
                    .or_default() += n;
            }
        }
        let (reads, stale) = checks::reads_not_invented::stale_reads(&self.history);
        out.insert("reads successful".to_string(), reads);
        out.insert("reads stale (allowed, GFS §2.7.1)".to_string(), stale);
        // What the record reader (GFS §2.7.2) skipped to read every record back.
        if let Some(state) = &self.final_state {
            for bytes in state.files.values().flatten() {
                let scan = crate::records::scan(bytes);
                for (key, n) in [
                    ("records read back", scan.distinct().len() as u64),
                    ("records duplicates skipped", scan.duplicates),
                    ("records other bytes skipped", scan.fragment_bytes),
                    ("records zero bytes skipped", scan.padding_bytes),
                ] {
                    *out.entry(key.to_string()).or_default() += n;
                }
            }
        }
        out
    }

    /// The first line where two records differ: (line number, this line, that line).
    pub fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
        let (mut la, mut lb) = (a.lines(), b.lines());
        for i in 0.. {
            match (la.next(), lb.next()) {
                (None, None) => return None,
                (x, y) if x == y => continue,
                (x, y) => {
                    return Some((i, x.unwrap_or("<end>").into(), y.unwrap_or("<end>").into()))
                }
            }
        }
        None
    }

    /// Operations by kind and outcome (`write ok`, `append record_too_large`, ...).
    pub fn outcomes(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for op in &self.history {
            let outcome = op
                .outcome
                .as_ref()
                .map_or("pending", OpResult::outcome_name);
            *out.entry((op.op.kind().to_string(), outcome.to_string()))
                .or_default() += 1;
        }
        out
    }
}

async fn execute(client: &Client, op: &OpSpec) -> OpResult {
    let r = |e: &node::GfsError| OpResult::from_err(e);
    match op {
        OpSpec::Create { path } => client
            .create(path)
            .await
            .map_or_else(|e| r(&e), |_| OpResult::Ok),
        OpSpec::Delete { path } => client
            .delete(path)
            .await
            .map_or_else(|e| r(&e), |_| OpResult::Ok),
        OpSpec::List => client
            .list()
            .await
            .map_or_else(|e| r(&e), |files| OpResult::Files { files }),
        OpSpec::Read { path, offset, len } => client
            .read(path, *offset, *len)
            .await
            .map_or_else(|e| r(&e), |data| OpResult::Data { data }),
        OpSpec::Write { path, offset, data } => client
            .write(path, *offset, data)
            .await
            .map_or_else(|e| r(&e), |_| OpResult::Ok),
        OpSpec::Append { path, data } => client
            .append(path, data)
            .await
            .map_or_else(|e| r(&e), |offset| OpResult::Offset { offset }),
    }
}

/// Starts the master, every chunkserver (as restartable nodes, each with its own physical disk)
/// and the client nodes.
pub fn start_cluster(
    handle: &Handle,
    cfg: &ClusterConfig,
    opts: &RunOptions,
    faulty_disk: Option<u32>,
) -> World {
    let master_disk = DiskFaults::new(opts.disk_latency_us, false, "");
    let (c, d) = (cfg.clone(), master_disk.clone());
    let master = handle
        .create_node()
        .name("master")
        .ip(addr::master_ip())
        .init(move || master::run(c.clone(), d.clone()))
        .build()
        .id();
    let mut chunkservers = Vec::new();
    let mut chunkserver_disks = Vec::new();
    for i in 0..cfg.chunkservers {
        let id = ServerId(i);
        let faulty = faulty_disk == Some(i);
        // Only the faulty disk tears writes; bit flips are requested by the nemesis.
        let disk = DiskFaults::new(
            opts.disk_latency_us,
            faulty,
            if faulty { "chunks/" } else { "" },
        );
        disk.lies_about_sync
            .store(opts.lying_disks, std::sync::atomic::Ordering::Relaxed);
        let (c, d) = (cfg.clone(), disk.clone());
        let node = handle
            .create_node()
            .name(id.to_string())
            .ip(addr::chunkserver_ip(id))
            .init(move || chunkserver::run(id, c.clone(), d.clone()))
            .build();
        chunkservers.push(node.id());
        chunkserver_disks.push(disk);
    }
    let clients = (0..opts.clients)
        .map(|i| {
            handle
                .create_node()
                .name(format!("client{i}"))
                .ip(addr::client_ip(i))
                .build()
                .id()
        })
        .collect();
    World {
        handle: handle.clone(),
        master,
        chunkservers,
        clients,
        master_disk,
        chunkserver_disks,
    }
}

/// How long the cluster needs before the workload starts: the master's grace period.
pub fn boot_ms(cfg: &ClusterConfig) -> u64 {
    cfg.master_grace_ms() + cfg.heartbeat_ms
}

/// Phase 2: plays every client's script; returns the clients' combined counters.
async fn play(world: &World, cfg: &ClusterConfig, plan: Plan, history: &History) -> ClientStats {
    let boot = Duration::from_millis(boot_ms(cfg));
    let node = |i: u32| {
        world
            .handle
            .get_node(world.clients[i as usize])
            .expect("client node")
    };
    // Setup: once the cluster has booted, client 0 creates the files. The concurrent phase starts
    // when it is done. (No tokio Barrier here: its wake-up order depends on a process-wide counter
    // in tokio, which would make a run depend on the runs before it in the same process.)
    let (c, h, files) = (cfg.clone(), history.clone(), plan.files.clone());
    let mut total = node(0)
        .spawn(async move {
            let client = Client::new(0, c).await.expect("client binds its address");
            madsim::time::sleep(boot).await;
            for path in files {
                let op = OpSpec::Create { path };
                let id = h.invoke(0, op.clone());
                h.complete(id, execute(&client, &op).await);
            }
            client.stats()
        })
        .await
        .expect("setup task");
    let tasks: Vec<_> = plan
        .clients
        .into_iter()
        .map(|script| {
            let (cfg, history) = (cfg.clone(), history.clone());
            node(script.client).spawn(async move {
                let me = script.client;
                let client = Client::new(me, cfg)
                    .await
                    .expect("client binds its address");
                // Scripted steps are timed from the end of boot, like scripted faults.
                let sim_start = madsim::time::Instant::now() - Duration::from_nanos(node::now_ns());
                let workload_start = sim_start + boot;
                for (ms, op) in script.steps {
                    let wait = Duration::from_millis(ms);
                    if script.absolute {
                        madsim::time::sleep_until(workload_start + wait).await;
                    } else {
                        madsim::time::sleep(wait).await;
                    }
                    let id = history.invoke(me, op.clone());
                    let outcome = execute(&client, &op).await;
                    history.complete(id, outcome);
                }
                client.stats()
            })
        })
        .collect();
    for t in tasks {
        let s = t.await.expect("client task");
        total.attempts += s.attempts;
        total.failed_attempts += s.failed_attempts;
    }
    total
}

/// What the checker node saw in phases 3 and 4.
struct Checked {
    /// `Err`: the cluster did not converge, with what was still wrong.
    converged: Result<(), String>,
    state: FinalState,
}

/// Phases 3 and 4, on a node of their own: wait for convergence, issue the after-heal operations,
/// then read everything back.
async fn check_phase(
    handle: &Handle,
    cfg: &ClusterConfig,
    checker_id: u32,
    files: Vec<String>,
    history: &History,
) -> Checked {
    let node = handle
        .create_node()
        .name("checker")
        .ip(addr::client_ip(checker_id))
        .build();
    // The checker borrows the next client address; the trace should say who it is.
    trace::name_node(addr::client_ip(checker_id), NodeName::Checker);
    let (cfg, history) = (cfg.clone(), history.clone());
    node.spawn(async move {
        let ep = madsim::net::Endpoint::bind((addr::client_ip(checker_id), addr::PORT + 1))
            .await
            .expect("checker binds a second port");
        let timeout = cfg.rpc_timeout_ms;
        // Liveness: poll until the cluster has converged, or give up.
        let deadline = madsim::time::Instant::now() + CONVERGE_LIMIT;
        let converged = loop {
            madsim::time::sleep(Duration::from_millis(cfg.heartbeat_ms)).await;
            let chunks = call(&ep, addr::master(), DumpChunks, timeout).await;
            let mut held = BTreeMap::new();
            for i in 0..cfg.chunkservers {
                let s = ServerId(i);
                let r = call(&ep, addr::chunkserver(s), ListReplicas, timeout).await;
                held.insert(s, r.map_err(|e| e.to_string()));
            }
            let issues = match &chunks {
                Ok(chunks) => checks::converged::issues(chunks, &held, cfg.replication),
                Err(e) => vec![format!("master did not answer: {e}")],
            };
            if issues.is_empty() {
                break Ok(());
            }
            if madsim::time::Instant::now() >= deadline {
                let shown: Vec<String> = issues.iter().take(5).cloned().collect();
                break Err(format!(
                    "not converged {} s after healing: {}{}",
                    CONVERGE_LIMIT.as_secs(),
                    shown.join("; "),
                    if issues.len() > 5 {
                        format!("; and {} more", issues.len() - 5)
                    } else {
                        String::new()
                    }
                ));
            }
        };
        let client = Client::new(checker_id, cfg.clone())
            .await
            .expect("checker binds");
        if converged.is_ok() {
            // Every operation issued now must succeed: one append and one read per file, and a
            // file created, written across a chunk boundary, listed and deleted.
            let probe = "/after-heal".to_string();
            let cs = cfg.chunk_size_bytes;
            let mut ops = vec![
                OpSpec::Create {
                    path: probe.clone(),
                },
                OpSpec::Write {
                    path: probe.clone(),
                    offset: cs / 2,
                    data: vec![0xa5; cs as usize],
                },
                OpSpec::List,
                OpSpec::Delete { path: probe },
            ];
            for f in &files {
                let record = vec![0x5a; cfg.max_record_bytes().min(8) as usize];
                ops.push(OpSpec::Append {
                    path: f.clone(),
                    data: record,
                });
                ops.push(OpSpec::Read {
                    path: f.clone(),
                    offset: 0,
                    len: cs,
                });
            }
            for op in ops {
                // A workload file may have been deleted for good: that is a correct answer.
                let id = history.invoke_after_heal(checker_id, op.clone());
                history.complete(id, execute(&client, &op).await);
            }
        }
        let mut state = FinalState::default();
        match client.list().await {
            Ok(files) => {
                for f in files {
                    let bytes = client
                        .read(&f.path, 0, f.size_bytes)
                        .await
                        .map_err(|e| e.to_string());
                    state.files.insert(f.path, bytes);
                }
            }
            Err(e) => {
                state
                    .files
                    .insert("<list>".into(), Err(format!("final list failed: {e}")));
            }
        }
        state.chunks = call(&ep, addr::master(), DumpChunks, timeout)
            .await
            .unwrap_or_default();
        for c in &state.chunks {
            for &s in &c.replicas {
                let r = call_result(
                    &ep,
                    addr::chunkserver(s),
                    ReadReplica { handle: c.handle },
                    timeout,
                )
                .await;
                state
                    .replicas
                    .insert((c.handle, s), r.map_err(|e| e.to_string()));
            }
        }
        Checked { converged, state }
    })
    .await
    .expect("checker task")
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic".into()
    }
}

/// The checks' inputs for a finished run, for re-checking an altered final state.
pub fn check_inputs<'a>(report: &'a RunReport, state: &'a FinalState) -> Inputs<'a> {
    let partial = report
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::MutationPartial { .. }));
    Inputs {
        history: &report.history,
        state,
        chunk_size_bytes: report.options.chunk_size_bytes,
        replication: report.options.replication,
        partial_mutations: partial.count() as u64,
        events: &report.events,
        failed_attempts: report.client.failed_attempts,
    }
}

/// Runs `seed` with `opts` (which must be valid) and checks it, recording protocol events only
/// (what sweeps need; see [`run_seed_detailed`]).
pub fn run_seed(seed: u64, opts: &RunOptions) -> RunReport {
    run_seed_detailed(seed, opts, Detail::Protocol)
}

/// Runs `seed` with `opts` (which must be valid) and checks it, recording events at `detail`.
/// The detail changes only what is recorded, never the run: messages, disk operations and every
/// protocol event are the same either way.
///
/// The run gets an OS thread of its own. std's `HashMap` draws its hash keys once per thread and
/// then increments them for every map; madsim makes them a function of the seed only when its
/// runtime is the first thing on the thread to create a map. Madsim's internals do iterate such
/// maps, so a run on a reused thread would not be repeatable.
pub fn run_seed_detailed(seed: u64, opts: &RunOptions, detail: Detail) -> RunReport {
    let opts = opts.clone();
    on_own_thread(format!("seed-{seed}"), move || {
        let plan = workload::generate(seed, &opts);
        let fault_plan = faults::plan(seed, &opts, boot_ms(&opts.cluster()));
        run_on_fresh_thread(seed, &opts, plan, fault_plan, detail)
    })
}

/// Runs a given workload and fault plan (a scripted scenario) under `seed`, which still drives
/// every choice the simulator makes: scheduling, latencies, placement. Events are recorded at
/// `detail`.
pub fn run_plan(
    seed: u64,
    opts: &RunOptions,
    plan: Plan,
    fault_plan: faults::FaultPlan,
    detail: Detail,
) -> RunReport {
    let opts = opts.clone();
    on_own_thread(format!("scenario-{seed}"), move || {
        run_on_fresh_thread(seed, &opts, plan, fault_plan, detail)
    })
}

/// Runs `f` on a new OS thread named `name` and waits for it (see [`run_seed_detailed`] for why a
/// run needs a thread of its own). The thread is outside any simulation; it only hosts one.
fn on_own_thread(name: String, f: impl FnOnce() -> RunReport + Send + 'static) -> RunReport {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn a thread for the run")
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn run_on_fresh_thread(
    seed: u64,
    opts: &RunOptions,
    plan: Plan,
    fault_plan: faults::FaultPlan,
    detail: Detail,
) -> RunReport {
    // Created before anything else on this thread touches a HashMap (see `run_seed`).
    let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    // Wall-clock measurement of the whole run, outside the simulated world.
    let wall_start = std::time::Instant::now();
    let cfg = opts.cluster();
    cfg.validate().expect("options were validated");
    let history = History::default();
    trace::install(detail);
    let h = history.clone();
    let opts2 = opts.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            let handle = Handle::current();
            let world = Arc::new(start_cluster(&handle, &cfg, &opts2, fault_plan.faulty_disk));
            let files = plan.files.clone();
            let nemesis = madsim::task::spawn(nemesis::run(world.clone(), fault_plan));
            let played = madsim::time::timeout(WORKLOAD_LIMIT, play(&world, &cfg, plan, &h)).await;
            let _ = nemesis.await;
            let checked = match played {
                Ok(_) => Some(check_phase(&handle, &cfg, opts2.clients, files, &h).await),
                Err(_) => None,
            };
            let stats = played.unwrap_or_default();
            let messages = madsim::net::NetSim::current().stat().msg_count;
            (checked, stats, messages, node::now_ns())
        })
    }));
    let events = trace::take();
    let history = history.snapshot();
    let mut report = RunReport {
        seed,
        options: opts.clone(),
        history,
        events,
        detail,
        violations: Vec::new(),
        passed_checks: Vec::new(),
        table1: Default::default(),
        table1_forbidden: 0,
        final_state: None,
        liveness: None,
        panic: None,
        messages: 0,
        sim_time_ns: 0,
        client: ClientStats::default(),
        wall: Duration::ZERO,
    };
    match outcome {
        Err(payload) => report.panic = Some(panic_text(payload.as_ref())),
        Ok((checked, stats, messages, sim_ns)) => {
            report.client = stats;
            report.messages = messages;
            report.sim_time_ns = sim_ns;
            match checked {
                None => {
                    let pending = report
                        .history
                        .iter()
                        .filter(|o| o.outcome.is_none())
                        .count();
                    report.liveness = Some(format!(
                        "workload not finished after {} s of simulated time; {pending} operations still pending",
                        WORKLOAD_LIMIT.as_secs()
                    ));
                }
                Some(checked) => {
                    let verdicts = checks::run_each(&check_inputs(&report, &checked.state));
                    report.table1 = verdicts.table1;
                    report.table1_forbidden = verdicts.table1_forbidden;
                    for (name, violation) in verdicts.results {
                        match violation {
                            Some(v) => report.violations.push(v),
                            None => report.passed_checks.push(name),
                        }
                    }
                    if let Err(why) = checked.converged {
                        report.liveness = Some(why);
                    } else {
                        report.passed_checks.push(checks::converged::NAME);
                        match checks::after_heal::check(&report.history) {
                            Some(v) => {
                                report.liveness =
                                    Some(format!("{}: {}", v.check, v.report.trim_end()))
                            }
                            None => report.passed_checks.push(checks::after_heal::NAME),
                        }
                    }
                    report.final_state = Some(checked.state);
                }
            }
        }
    }
    report.wall = wall_start.elapsed();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_come_in_one_order_whatever_was_recorded_first() {
        let mut report = run_seed(0, &RunOptions::default());
        assert!(report.passed() && report.failure().is_none());
        report.liveness = Some("not converged 60 s after healing: c3 has 2 replicas".into());
        report.violations.push(Violation {
            check: checks::acked_readback::NAME,
            report: "1 acknowledged bytes do not read back\n  op #4 ...".into(),
        });
        let classes: Vec<FailureClass> = report.failures().iter().map(|f| f.class).collect();
        assert_eq!(classes, [FailureClass::Violation, FailureClass::Liveness]);
        assert_eq!(
            report.failure_line().unwrap(),
            "acked_readback: 1 acknowledged bytes do not read back"
        );
        report.panic = Some("versions only grow".into());
        let first = report.failure().unwrap();
        assert_eq!(
            (first.class, first.check.as_str()),
            (FailureClass::Panic, "panic")
        );
        assert_eq!(report.failures().len(), 3);
    }
}
