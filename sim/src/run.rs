//! One seeded run: build the cluster, play the workload, read everything back, check.
//!
//! The run is a single madsim runtime seeded with the run's seed. The master and chunkservers are
//! nodes with an `init` future, so madsim can restart them (the faults issue will); clients are
//! nodes running their scripts. The run has three phases, all in simulated time:
//!
//! 1. **Boot.** Servers start; the workload waits out the master's grace period (during which it
//!    grants no leases) so that the first operations do not all retry.
//! 2. **Workload.** Client 0 creates the files, then every client plays its script concurrently.
//!    Every invocation and completion goes into the [`History`].
//! 3. **Read back.** After a few heartbeats of quiet, a fresh client lists and reads every file, the
//!    master's chunk table is dumped and every listed replica is read straight from its chunkserver.
//!
//! A run that does not finish its workload within [`WORKLOAD_LIMIT`] of simulated time is a
//! liveness failure, reported apart from a correctness violation.

use crate::checks::{self, FinalState, Inputs, Violation};
use crate::history::{History, OpRecord, OpResult};
use crate::options::RunOptions;
use crate::workload::{self, OpSpec, Plan};
use madsim::runtime::{Handle, Runtime};
use madsim::task::NodeId;
use node::client::{Client, ClientStats};
use node::msg::{DumpChunks, ReadReplica};
use node::rpc::{call, call_result};
use node::trace::{self, Event};
use node::types::addr;
use node::{chunkserver, master, ClusterConfig, ServerId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Simulated time the workload may take before the run counts as stuck.
pub const WORKLOAD_LIMIT: Duration = Duration::from_secs(600);

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub options: RunOptions,
    pub history: Vec<OpRecord>,
    pub events: Vec<Event>,
    pub violations: Vec<Violation>,
    /// What the read-back phase saw (None if the run never got there).
    pub final_state: Option<FinalState>,
    /// The workload did not finish in time (liveness), with what was still running.
    pub stuck: Option<String>,
    /// A node or the harness panicked: a broken invariant.
    pub panic: Option<String>,
    pub messages: u64,
    pub sim_time_ns: u64,
    pub client: ClientStats,
    /// Real time the run took. Outside the simulation, so it is not part of the record.
    pub wall: Duration,
}

/// One line of a run's record, for byte-for-byte comparison of two runs.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RecordLine<'a> {
    Event(&'a Event),
    Op(&'a OpRecord),
    Verdict { check: &'a str, report: &'a str },
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.stuck.is_none() && self.panic.is_none()
    }

    /// The first reason the run failed, in one line.
    pub fn failure_line(&self) -> Option<String> {
        if let Some(p) = &self.panic {
            return Some(format!("panic: {}", p.lines().next().unwrap_or_default()));
        }
        if let Some(s) = &self.stuck {
            return Some(format!("liveness: {s}"));
        }
        self.violations.first().map(|v| {
            format!(
                "{}: {}",
                v.check,
                v.report.lines().next().unwrap_or_default()
            )
        })
    }

    /// The run's record as JSON Lines: protocol events, then operations, then verdicts. The same
    /// seed and options must give the same bytes.
    pub fn record(&self) -> String {
        let mut out = String::new();
        let mut line = |l: RecordLine| {
            out.push_str(&serde_json::to_string(&l).expect("record serializes"));
            out.push('\n');
        };
        self.events.iter().for_each(|e| line(RecordLine::Event(e)));
        self.history.iter().for_each(|o| line(RecordLine::Op(o)));
        for v in &self.violations {
            line(RecordLine::Verdict {
                check: v.check,
                report: &v.report,
            });
        }
        out
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

/// Starts the master and every chunkserver as restartable nodes; returns their node ids.
pub fn start_servers(handle: &Handle, cfg: &ClusterConfig) -> (NodeId, Vec<NodeId>) {
    let c = cfg.clone();
    let master = handle
        .create_node()
        .name("master")
        .ip(addr::master_ip())
        .init(move || master::run(c.clone()))
        .build()
        .id();
    let chunkservers = (0..cfg.chunkservers)
        .map(|i| {
            let (id, c) = (ServerId(i), cfg.clone());
            handle
                .create_node()
                .name(id.to_string())
                .ip(addr::chunkserver_ip(id))
                .init(move || chunkserver::run(id, c.clone()))
                .build()
                .id()
        })
        .collect();
    (master, chunkservers)
}

/// Plays every client's script; returns the clients' combined counters.
async fn play(handle: &Handle, cfg: &ClusterConfig, plan: Plan, history: &History) -> ClientStats {
    let boot = Duration::from_millis(cfg.master_grace_ms() + cfg.heartbeat_ms);
    let nodes: Vec<_> = plan
        .clients
        .iter()
        .map(|script| {
            handle
                .create_node()
                .name(format!("client{}", script.client))
                .ip(addr::client_ip(script.client))
                .build()
        })
        .collect();
    // Setup: once the cluster has booted, client 0 creates the files. The concurrent phase starts
    // when it is done. (No tokio Barrier here: its wake-up order depends on a process-wide counter
    // in tokio, which would make a run depend on the runs before it in the same process.)
    let (c, h, files) = (cfg.clone(), history.clone(), plan.files.clone());
    let mut total = nodes[0]
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
        .zip(&nodes)
        .map(|(script, node)| {
            let (cfg, history) = (cfg.clone(), history.clone());
            node.spawn(async move {
                let me = script.client;
                let client = Client::new(me, cfg)
                    .await
                    .expect("client binds its address");
                for (think_ms, op) in script.steps {
                    madsim::time::sleep(Duration::from_millis(think_ms)).await;
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

/// Phase 3: read every file through a fresh client and every replica directly.
async fn read_back(handle: &Handle, cfg: &ClusterConfig, checker_id: u32) -> FinalState {
    let node = handle
        .create_node()
        .name("checker")
        .ip(addr::client_ip(checker_id))
        .build();
    let cfg = cfg.clone();
    node.spawn(async move {
        // Let heartbeats settle locations and garbage before looking.
        madsim::time::sleep(Duration::from_millis(3 * cfg.heartbeat_ms)).await;
        let client = Client::new(checker_id, cfg.clone())
            .await
            .expect("checker binds");
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
        let ep = madsim::net::Endpoint::bind((addr::client_ip(checker_id), addr::PORT + 1))
            .await
            .expect("checker binds a second port");
        let timeout = cfg.rpc_timeout_ms;
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
        state
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
        .filter(|e| e.kind == "mutation_partial");
    Inputs {
        history: &report.history,
        state,
        chunk_size_bytes: report.options.chunk_size_bytes,
        replication: report.options.replication,
        partial_mutations: partial.count() as u64,
    }
}

/// Runs `seed` with `opts` (which must be valid) and checks it.
///
/// The run gets an OS thread of its own. std's `HashMap` draws its hash keys once per thread and
/// then increments them for every map; madsim makes them a function of the seed only when its
/// runtime is the first thing on the thread to create a map. Madsim's internals do iterate such
/// maps, so a run on a reused thread would not be repeatable.
pub fn run_seed(seed: u64, opts: &RunOptions) -> RunReport {
    let opts = opts.clone();
    // This thread is outside any simulation; it only hosts one.
    let runner = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || run_on_fresh_thread(seed, &opts))
        .expect("spawn a thread for the run");
    runner
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn run_on_fresh_thread(seed: u64, opts: &RunOptions) -> RunReport {
    // Created before anything else on this thread touches a HashMap (see `run_seed`).
    let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    // Wall-clock measurement of the whole run, outside the simulated world.
    let wall_start = std::time::Instant::now();
    let cfg = opts.cluster();
    cfg.validate().expect("options were validated");
    let plan = workload::generate(seed, opts);
    let history = History::default();
    trace::install();
    let h = history.clone();
    let opts2 = opts.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            let handle = Handle::current();
            start_servers(&handle, &cfg);
            let played = madsim::time::timeout(WORKLOAD_LIMIT, play(&handle, &cfg, plan, &h)).await;
            let state = match played {
                Ok(_) => Some(read_back(&handle, &cfg, opts2.clients).await),
                Err(_) => None,
            };
            let stats = played.unwrap_or_default();
            let messages = madsim::net::NetSim::current().stat().msg_count;
            (state, stats, messages, node::now_ns())
        })
    }));
    let events = trace::take();
    let history = history.snapshot();
    let mut report = RunReport {
        seed,
        options: opts.clone(),
        history,
        events,
        violations: Vec::new(),
        final_state: None,
        stuck: None,
        panic: None,
        messages: 0,
        sim_time_ns: 0,
        client: ClientStats::default(),
        wall: Duration::ZERO,
    };
    match outcome {
        Err(payload) => report.panic = Some(panic_text(payload.as_ref())),
        Ok((state, stats, messages, sim_ns)) => {
            report.client = stats;
            report.messages = messages;
            report.sim_time_ns = sim_ns;
            match state {
                None => {
                    let pending = report
                        .history
                        .iter()
                        .filter(|o| o.outcome.is_none())
                        .count();
                    report.stuck = Some(format!(
                        "workload not finished after {} s of simulated time; {pending} operations still pending",
                        WORKLOAD_LIMIT.as_secs()
                    ));
                }
                Some(state) => {
                    report.violations = checks::run_all(&check_inputs(&report, &state));
                    report.final_state = Some(state);
                }
            }
        }
    }
    report.wall = wall_start.elapsed();
    report
}
