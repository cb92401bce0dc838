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
//!    [`converge_limit`]; then a fresh client issues operations that must all succeed.
//! 4. **Read back.** The fresh client lists and reads every file, the master's chunk table is
//!    dumped and every listed replica is read straight from its chunkserver; the checks judge it.
//!
//! A run that does not finish its workload within [`workload_limit`], or does not converge, is a
//! liveness failure, reported apart from correctness violations.
//!
//! One file per phase: `cluster` (boot), `play` (safety phase), `check_phase` (liveness and
//! read back), and `report` (what a run produced and the counters read off it). This file hosts
//! a run on its own thread and puts the phases in order.

mod check_phase;
mod cluster;
mod play;
mod report;

pub use cluster::{boot_ms, start_cluster, World};
pub use report::RunReport;

use crate::checks::{self, FinalState, Inputs};
use crate::faults;
use crate::history::History;
use crate::nemesis;
use crate::options::RunOptions;
use crate::workload::{self, Plan};
use madsim::runtime::{Handle, Runtime};
use node::client::ClientStats;
use node::trace::{self, Detail, Event};
use node::ClusterConfig;
use std::sync::Arc;
use std::time::Duration;

/// Simulated time the workload may take before the run counts as stuck: ten minutes, or, for slow
/// timing options, two recovery windows (see `ClusterConfig::client_retry_window_ms`) per
/// operation of a client and one for the setup.
pub fn workload_limit(opts: &RunOptions) -> Duration {
    let window_ms = opts.cluster().client_retry_window_ms();
    let ops = opts.ops_per_client as u64 + 1;
    Duration::from_millis(window_ms.saturating_mul(2 * ops).max(600_000))
}

/// Simulated time the cluster has, after healing, to converge: a minute, or four recovery windows
/// for slow timing options.
pub fn converge_limit(cfg: &ClusterConfig) -> Duration {
    Duration::from_millis(cfg.client_retry_window_ms().saturating_mul(4).max(60_000))
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
        gc_delay_ms: report.options.cluster().gc_delay_ms,
        lease_ms: report.options.lease_ms,
        lease_slack_ns: checks::lease_budget::slack_ns(
            report.options.heartbeat_ms,
            report.options.rpc_timeout_ms,
        ),
        rpc_timeout_ms: report.options.rpc_timeout_ms,
        location_cache_ms: report.options.cluster().location_cache_ms,
        copy_rules: checks::copies_prompt::CopyRules::of(&report.options.cluster()),
        end_ns: report.sim_time_ns,
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
        // The seed's own bounds; the report keeps the options as given (the seed redraws them).
        let cfg = opts.for_seed(seed).cluster();
        run_on_fresh_thread(seed, &opts, cfg, plan, fault_plan, detail)
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
        run_on_fresh_thread(seed, &opts, opts.cluster(), plan, fault_plan, detail)
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
    cfg: node::ClusterConfig,
    plan: Plan,
    fault_plan: faults::FaultPlan,
    detail: Detail,
) -> RunReport {
    // Created before anything else on this thread touches a HashMap (see `run_seed`).
    let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    // Wall-clock measurement of the whole run, outside the simulated world.
    let wall_start = std::time::Instant::now(); // real time, outside the simulated world
    cfg.validate().expect("options were validated");
    let history = History::default();
    trace::install(detail);
    node::coverage::install();
    if fault_plan.points {
        node::points::install(None);
    }
    let h = history.clone();
    let opts2 = opts.clone();
    let limit = workload_limit(opts);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            let handle = Handle::current();
            let world = Arc::new(start_cluster(&handle, &cfg, &opts2, fault_plan.faulty_disk));
            let files = plan.files.clone();
            let nemesis = madsim::task::spawn(nemesis::run(world.clone(), fault_plan));
            let played = madsim::time::timeout(limit, play::play(&world, &cfg, plan, &h)).await;
            let _ = nemesis.await;
            let checked = match played {
                Ok(_) => {
                    Some(check_phase::check_phase(&handle, &cfg, opts2.clients, files, &h).await)
                }
                Err(_) => None,
            };
            let stats = played.unwrap_or_default();
            let messages = madsim::net::NetSim::current().stat().msg_count;
            let end_ns = node::now_ns();
            world.shut_down().await;
            (checked, stats, messages, end_ns)
        })
    }));
    let events = trace::take();
    let coverage = node::coverage::take();
    let points = node::points::take();
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
        coverage,
        points,
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
                        workload_limit(opts).as_secs()
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
