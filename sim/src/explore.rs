//! Systematic exploration: every fault schedule of a scenario up to a depth, not a sample.
//!
//! Random seeds find bugs whose windows are wide. A mistake that needs a crash between a sync and
//! the reply it allows, or a lost message at one step of a lease grant, shows up in a handful of
//! seeds per thousand, or never. Exploration takes a scripted scenario and:
//!
//! 1. runs it once, counting its **fault points** ([`node::points`]): each request a node sends,
//!    each sync a node makes (before and after), during the safety phase;
//! 2. turns each point into the faults that could matter there (the **candidates**): a request
//!    lost, or held until after its caller gave up, or served with its answer lost; the master or a chunkserver crashed just
//!    before or just after a sync, or just before it sends a request; a chunkserver paused for
//!    longer than a lease when it sends a heartbeat or is offered a lease (`set_version`);
//! 3. runs the scenario once per candidate (depth 1), and at depth 2 once per candidate of each of
//!    those runs that comes after its first fault (each schedule's second fault is drawn from
//!    the run the first one made, so it names points that run really reached);
//! 4. judges every run with all checks, and keeps each failing schedule as a scenario file.
//!
//! Healing follows the scenario's own faults: a crashed chunkserver restarts after
//! [`CRASH_LEASES`] leases (it was declared dead meanwhile), a crashed master after a quarter of
//! a lease (its leases still run), a pause lasts [`PAUSE_LEASES`] leases, and everything is
//! healed at the end of the safety phase; a held request arrives [`DELAY_LEASES`] leases after
//! its caller gave up.
//!
//! **Pruning.** Two schedules are run once when they must do the same:
//! - *same standing*: a crash or pause of one node at two points of one run between which nothing
//!   happened (no event recorded, at full detail, which includes every message delivered and
//!   every disk write; no message sent, no sync finished) is one candidate;
//! - *a fault that changed nothing*: a depth-1 run whose protocol events, operations' results and
//!   fault points are those of the fault-free run (times aside) gets no second fault: its
//!   schedules would be the depth-1 schedules of their second fault;
//! - *a run seen before*: a depth-1 run with the same protocol events, results and points as an
//!   earlier one gets no second faults either (the earlier run's are the same schedules).
//!
//! Order is deterministic (points in the order the run reached them, candidates in [`Action`]
//! order), whatever `jobs` is. A bound on schedules stops a run that would take too long and
//! says so.

use crate::faults::{Fault, FaultKind, Target, What};
use crate::run::RunReport;
use crate::scenario::{Loaded, Scenario, ScriptedFault};
use node::points::{Hit, Point, Site};
use node::trace::{Detail, NodeName};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The deepest exploration: two faults per schedule.
pub const MAX_DEPTH: u32 = 2;

/// The scenarios that tell protocol stories (all but the load and teaching ones): what `cargo
/// test` explores at depth 1, and what the mutation gate explores for each mutant.
pub const PROTOCOL_SCENARIOS: [&str; 8] = [
    "happy_path",
    "concurrent_writes_across_boundary",
    "corrupted_block_repair",
    "master_restart",
    "primary_crash_during_append",
    "primary_partitioned",
    "secondary_crash_during_write",
    "stale_replica_restart",
];
/// A chunkserver crashed at a point restarts after this many leases: long enough for the master
/// to declare it dead (`server_timeout_ms`, one lease by default) and copy its chunks, so its
/// replicas come back stale or superfluous (GFS §4.3, §4.5).
pub const CRASH_LEASES: u64 = 2;
/// A master crashed at a point restarts after this share of a lease (a quarter): while the leases
/// it granted before the crash still run, so that it must wait them out (GFS §4.5's grace).
pub const MASTER_CRASH_LEASE_DIVISOR: u64 = 4;
/// A pause at a point lasts this many leases: longer than one, so a primary wakes up with an
/// expired lease (the random nemesis's pauses are as long).
pub const PAUSE_LEASES: u64 = 2;
/// A held request reaches its handler this many leases after its caller gave up: late enough
/// that the caller has retried (or moved on) meanwhile.
pub const DELAY_LEASES: u64 = 1;

/// What one fault does at its point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The request sent at the point is lost.
    Lose,
    /// The request sent at the point arrives after its caller gave up.
    Delay,
    /// The request sent at the point is served, but its answer is lost.
    LoseReply,
    /// The node crashes at the point (master or chunkserver).
    Crash,
    /// The chunkserver named is paused for longer than a lease.
    Pause,
}

/// One fault of a schedule: an action at a point.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Step {
    pub point: Point,
    pub action: Action,
}

impl Step {
    /// The node the step crashes or pauses: the point's node, or for a pause at a lease offer,
    /// the chunkserver offered it.
    pub fn target(&self) -> NodeName {
        match (&self.action, &self.point.site) {
            (Action::Pause, Site::Send { kind, to }) if kind == "set_version" => *to,
            _ => self.point.node,
        }
    }

    /// The fault this step injects, for a run with lease `lease_ms`.
    pub fn fault(&self, lease_ms: u64) -> Fault {
        let target = match self.target() {
            NodeName::Master => Target::Master,
            NodeName::Cs(s) => Target::Chunkserver(s.0),
            NodeName::Client(c) => Target::Client(c),
            other => unreachable!("no candidate targets {other}"),
        };
        let (kind, what, lasts_ms) = match self.action {
            Action::Lose => (FaultKind::Loss, What::LoseMessage, 0),
            Action::LoseReply => (FaultKind::Loss, What::LoseReply, 0),
            Action::Delay => (
                FaultKind::Delay,
                What::DelayMessage {
                    ms: DELAY_LEASES * lease_ms,
                },
                0,
            ),
            Action::Crash if target == Target::Master => (
                FaultKind::MasterCrash,
                What::Crash { node: target },
                lease_ms / MASTER_CRASH_LEASE_DIVISOR,
            ),
            Action::Crash => (
                FaultKind::Crash,
                What::Crash { node: target },
                CRASH_LEASES * lease_ms,
            ),
            Action::Pause => (
                FaultKind::Pause,
                What::Pause { node: target },
                PAUSE_LEASES * lease_ms,
            ),
        };
        Fault {
            at_ms: 0,
            lasts_ms,
            kind,
            what,
            point: Some(self.point.clone()),
        }
    }
}

/// `lose client0 sends write_chunk #2 to cs1`, `crash cs2 after sync #3 of FILE`, `pause cs1 at
/// master sends set_version #4 to cs1`.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Lose => write!(f, "lose `{}`", self.point),
            Action::Delay => write!(f, "delay `{}` past its timeout", self.point),
            Action::LoseReply => write!(f, "lose the reply to `{}`", self.point),
            Action::Crash => write!(f, "crash {} at `{}`", self.target(), self.point),
            Action::Pause => write!(f, "pause {} at `{}`", self.target(), self.point),
        }
    }
}

/// A schedule: its steps in the order they strike.
pub type Schedule = Vec<Step>;

/// The schedule in one line.
pub fn describe(schedule: &Schedule) -> String {
    if schedule.is_empty() {
        return "no fault".to_string();
    }
    let steps: Vec<String> = schedule.iter().map(Step::to_string).collect();
    steps.join(", then ")
}

/// The faults that could matter at a point.
fn actions(point: &Point) -> Vec<Action> {
    match &point.site {
        // A heartbeat that is lost or late is repaired by the next one; what does harm is a
        // server that stops heartbeating for longer than a lease (GFS §4.5, §3.1).
        Site::Send { kind, .. } if kind == "heartbeat" => match point.node {
            NodeName::Cs(_) => vec![Action::Pause],
            _ => vec![],
        },
        Site::Send { kind, to } if kind == "set_version" && matches!(to, NodeName::Cs(_)) => {
            vec![
                Action::Lose,
                Action::Delay,
                Action::LoseReply,
                Action::Crash,
                Action::Pause,
            ]
        }
        // A server can also crash just before it sends: whatever it did in memory since its
        // last sync (or, if it never syncs, everything) is gone, and the message never leaves.
        Site::Send { .. } if matches!(point.node, NodeName::Master | NodeName::Cs(_)) => {
            vec![
                Action::Lose,
                Action::Delay,
                Action::LoseReply,
                Action::Crash,
            ]
        }
        Site::Send { .. } => vec![Action::Lose, Action::Delay, Action::LoseReply],
        Site::BeforeSync { .. } | Site::AfterSync { .. } => match point.node {
            NodeName::Master | NodeName::Cs(_) => vec![Action::Crash],
            _ => vec![],
        },
    }
}

/// The candidates of a run: every action at every point it reached during the safety phase,
/// after `after` hits (those before the previous fault struck), pruned by standing if `prune`.
/// Returns the candidates and how many were pruned.
pub fn candidates(
    hits: &[Hit],
    after: usize,
    window_ns: (u64, u64),
    prune: bool,
) -> (Vec<Step>, usize) {
    let mut out = Vec::new();
    let mut seen: BTreeSet<(Action, NodeName, usize, u64)> = BTreeSet::new();
    let mut pruned = 0;
    for hit in hits.iter().skip(after) {
        if hit.at_ns < window_ns.0 || hit.at_ns >= window_ns.1 {
            continue;
        }
        for action in actions(&hit.point) {
            let step = Step {
                point: hit.point.clone(),
                action,
            };
            if prune
                && matches!(action, Action::Crash | Action::Pause)
                && !seen.insert((action, step.target(), hit.events, hit.steps))
            {
                pruned += 1;
                continue;
            }
            out.push(step);
        }
    }
    (out, pruned)
}

/// What one explored run came to.
#[derive(Debug, Clone)]
pub struct Explored {
    pub schedule: Schedule,
    /// The check that failed first (or `panic`, `liveness`), its report's first line, and the
    /// failure's class (which sets the exit code).
    pub failure: Option<(String, String, crate::failure::FailureClass)>,
    /// Protocol events, results and points reached, times aside: runs with the same signature
    /// are the same run.
    pub signature: u64,
    /// The verdict and what every operation returned: distinct outcomes.
    pub outcome: u64,
    /// How many of the schedule's faults had their point reached (one never reached strikes
    /// nothing).
    pub struck: usize,
    pub coverage: Vec<(node::coverage::Probe, u64)>,
}

fn hash_of(f: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut h = DefaultHasher::new();
    f(&mut h);
    h.finish()
}

/// Events recorded only at full detail (messages, disk operations) and the nemesis's own: the
/// signature leaves them out, so that a fault's own traces and shifted timeouts do not make two
/// runs that did the same protocol steps look different.
fn in_signature(e: &node::trace::Entry) -> bool {
    let kind = e.event.kind();
    e.node != NodeName::Nemesis
        && !kind.starts_with("msg_")
        && !kind.starts_with("disk_")
        && kind != "reply_delivered"
}

/// The run's signature, given its [`outcome_text`].
fn signature(report: &RunReport, outcome: &str) -> u64 {
    hash_of(|h| {
        for e in report.events.iter().filter(|e| in_signature(e)) {
            e.node.hash(h);
            e.event.to_string().hash(h);
        }
        for hit in &report.points {
            hit.point.hash(h);
        }
        outcome.hash(h);
    })
}

fn outcome_text(report: &RunReport) -> String {
    let mut s = report
        .failure()
        .map_or("passed".to_string(), |f| f.check.clone());
    for o in &report.history {
        s.push('\n');
        s.push_str(&format!(
            "{} {} {}",
            o.client,
            o.op.kind(),
            o.outcome
                .as_ref()
                .map_or("never returned".into(), |r| r.plain())
        ));
    }
    s
}

/// Runs `loaded` with `schedule`'s faults added, at full detail, counting points.
pub fn run_schedule(loaded: &Loaded, schedule: &Schedule) -> RunReport {
    let mut faults = loaded.faults.clone();
    faults.points = true;
    faults
        .faults
        .extend(schedule.iter().map(|s| s.fault(loaded.options.lease_ms)));
    crate::run::run_plan(
        loaded.scenario.seed,
        &loaded.options,
        loaded.plan.clone(),
        faults,
        Detail::Full,
    )
}

/// The hits a schedule's children are drawn from: those after its last fault struck (the first
/// hit of that point), or none if it never struck.
fn struck_at(report: &RunReport, schedule: &Schedule) -> Option<usize> {
    let last = schedule.last()?;
    report.points.iter().position(|h| h.point == last.point)
}

/// Options of an exploration.
#[derive(Debug, Clone)]
pub struct Options {
    pub depth: u32,
    pub max_schedules: usize,
    pub jobs: usize,
    /// Run schedules the pruning rules would skip (to measure what pruning saves).
    pub no_prune: bool,
}

/// What an exploration found.
#[derive(Debug, Default)]
pub struct Summary {
    /// Points the fault-free run reached in the safety phase.
    pub points: usize,
    /// Candidates of the fault-free run (depth-1 schedules before the bound).
    pub candidates: usize,
    /// Schedules run, the fault-free run not counted.
    pub runs: Vec<Explored>,
    /// Schedules not run because a pruning rule said they do what another does: by rule.
    pub pruned_standing: usize,
    pub pruned_no_change: usize,
    pub pruned_seen: usize,
    /// Schedules left unrun because the bound was reached.
    pub over_bound: usize,
    /// The fault-free run's failure, if it failed (then nothing else runs).
    pub baseline_failure: Option<String>,
    pub coverage: BTreeMap<node::coverage::Probe, u64>,
    pub wall: std::time::Duration,
}

impl Summary {
    pub fn pruned(&self) -> usize {
        self.pruned_standing + self.pruned_no_change + self.pruned_seen
    }
    pub fn distinct_outcomes(&self) -> usize {
        let set: BTreeSet<u64> = self.runs.iter().map(|r| r.outcome).collect();
        set.len()
    }
    pub fn failing(&self) -> Vec<&Explored> {
        self.runs.iter().filter(|r| r.failure.is_some()).collect()
    }
}

/// One run's result, the points it reached (if its schedule is to be extended) and where its
/// last fault struck among them.
type Ran = (Explored, Vec<Hit>, Option<usize>);

/// Runs `schedules` on `jobs` threads; results in the schedules' order. `progress` is told each
/// finished run.
fn run_all(
    loaded: &Loaded,
    schedules: &[Schedule],
    jobs: usize,
    keep_hits: bool,
    progress: &(dyn Fn(&Explored) + Sync),
) -> Vec<Ran> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Ran>>> = Mutex::new(vec![None; schedules.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(schedule) = schedules.get(i) else {
                    break;
                };
                let report = run_schedule(loaded, schedule);
                let struck = schedule
                    .iter()
                    .filter(|s| report.points.iter().any(|h| h.point == s.point))
                    .count();
                let outcome = outcome_text(&report);
                let explored = Explored {
                    schedule: schedule.clone(),
                    failure: report.failure().map(|f| {
                        let first = f.report.lines().next().unwrap_or_default().to_string();
                        (f.check, first, f.class)
                    }),
                    signature: signature(&report, &outcome),
                    outcome: hash_of(|h| outcome.hash(h)),
                    struck,
                    coverage: report.coverage.clone(),
                };
                progress(&explored);
                let after = struck_at(&report, schedule);
                let hits = if keep_hits { report.points } else { Vec::new() };
                results.lock().unwrap()[i] = Some((explored, hits, after));
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every schedule ran"))
        .collect()
}

/// Explores `loaded` to `opts.depth` faults per schedule. `progress` hears of each run with the
/// number of schedules known so far.
pub fn explore(
    loaded: &Loaded,
    opts: &Options,
    progress: &(dyn Fn(&Explored, usize) + Sync),
) -> Summary {
    let start = std::time::Instant::now(); // real time: the exploration's wall clock, outside the simulation
    let mut summary = Summary::default();
    let window_ns = (
        loaded.faults.start_ms * 1_000_000,
        loaded.faults.end_ms * 1_000_000,
    );
    let baseline = run_schedule(loaded, &Vec::new());
    if let Some(f) = baseline.failure() {
        summary.baseline_failure = Some(f.line());
        summary.wall = start.elapsed();
        return summary;
    }
    summary.points = baseline
        .points
        .iter()
        .filter(|h| h.at_ns >= window_ns.0 && h.at_ns < window_ns.1)
        .count();
    let base_signature = signature(&baseline, &outcome_text(&baseline));
    let prune = !opts.no_prune;
    let (level_one, pruned) = candidates(&baseline.points, 0, window_ns, prune);
    summary.pruned_standing += pruned;
    summary.candidates = level_one.len();
    let mut todo: Vec<Schedule> = level_one.into_iter().map(|s| vec![s]).collect();
    let mut depth = 1;
    let mut signatures: BTreeSet<u64> = BTreeSet::new();
    while !todo.is_empty() {
        let room = opts.max_schedules.saturating_sub(summary.runs.len());
        if todo.len() > room {
            summary.over_bound += todo.len() - room;
            todo.truncate(room);
        }
        let known = summary.runs.len() + todo.len();
        let more = depth < opts.depth;
        let results = run_all(loaded, &todo, opts.jobs, more, &|e| progress(e, known));
        let mut next = Vec::new();
        for (explored, hits, after) in results {
            for (probe, n) in &explored.coverage {
                *summary.coverage.entry(*probe).or_default() += n;
            }
            if more {
                match after {
                    // Its fault never struck: it is the fault-free run.
                    None => {}
                    Some(after) => {
                        let (children, pruned) = candidates(&hits, after + 1, window_ns, prune);
                        if prune && explored.signature == base_signature {
                            summary.pruned_no_change += children.len();
                        } else if prune && !signatures.insert(explored.signature) {
                            summary.pruned_seen += children.len();
                        } else {
                            summary.pruned_standing += pruned;
                            next.extend(children.into_iter().map(|c| {
                                let mut s = explored.schedule.clone();
                                s.push(c);
                                s
                            }));
                        }
                    }
                }
            }
            summary.runs.push(explored);
        }
        todo = next;
        depth += 1;
    }
    summary.wall = start.elapsed();
    summary
}

/// A failing schedule as a scenario file: the scenario with the schedule's faults added, expected
/// to fail `check`, headed by a comment saying how it was found.
pub fn to_scenario(loaded: &Loaded, schedule: &Schedule, check: &str, depth: u32) -> String {
    let mut scenario: Scenario = loaded.scenario.clone();
    scenario.description = format!(
        "{} -- explored: {} fails {check}",
        loaded.name,
        describe(schedule)
    );
    scenario.faults.extend(schedule.iter().map(|s| {
        let f = s.fault(loaded.options.lease_ms);
        let mut out = ScriptedFault::from_fault(&f, &loaded.faults);
        // The pause of a chunkserver offered a lease is not the point's own node: name it.
        if s.target() != s.point.node {
            out.node = Some(s.target().to_string());
        }
        out
    }));
    scenario.expect = crate::scenario::Expect {
        fails: Some(check.to_string()),
        ..Default::default()
    };
    format!(
        "# Found by `sim explore {} --depth {depth}`: {}.\n{}",
        loaded.name,
        describe(schedule),
        scenario.to_toml()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::ServerId;

    fn hit(text: &str, at_ms: u64, events: usize, steps: u64) -> Hit {
        Hit {
            point: text.parse().unwrap(),
            at_ns: at_ms * 1_000_000,
            events,
            steps,
        }
    }

    #[test]
    fn candidates_follow_the_point_and_one_standing_gives_one_crash() {
        let hits = vec![
            hit("cs1 after sync #1 of f", 5, 10, 3), // before the window
            hit("cs1 before sync #2 of f", 20, 10, 3),
            hit("cs1 after sync #2 of f", 21, 11, 4),
            // Nothing happened since: the same standing, so crashing cs1 here is the same.
            hit("cs1 before sync #1 of g", 22, 11, 4),
            hit("cs2 sends heartbeat #3 to master", 23, 12, 4),
            hit("master sends set_version #1 to cs3", 24, 13, 5),
            hit("client0 sends write_chunk #1 to cs1", 25, 14, 6),
            hit("cs1 before sync #3 of f", 99, 20, 9), // after the window
        ];
        let (steps, pruned) = candidates(&hits, 0, (10_000_000, 90_000_000), true);
        let text: Vec<String> = steps.iter().map(Step::to_string).collect();
        assert_eq!(
            text,
            vec![
                "crash cs1 at `cs1 before sync #2 of f`",
                "crash cs1 at `cs1 after sync #2 of f`",
                "pause cs2 at `cs2 sends heartbeat #3 to master`",
                "lose `master sends set_version #1 to cs3`",
                "delay `master sends set_version #1 to cs3` past its timeout",
                "lose the reply to `master sends set_version #1 to cs3`",
                "crash master at `master sends set_version #1 to cs3`",
                "pause cs3 at `master sends set_version #1 to cs3`",
                "lose `client0 sends write_chunk #1 to cs1`",
                "delay `client0 sends write_chunk #1 to cs1` past its timeout",
                "lose the reply to `client0 sends write_chunk #1 to cs1`",
            ]
        );
        assert_eq!(pruned, 1, "the crash at `cs1 before sync #1 of g`");
        // Children start after the hit where the first fault struck.
        let (after, _) = candidates(&hits, 6, (10_000_000, 90_000_000), true);
        assert_eq!(after.len(), 3);
        // Each step's fault strikes its point, on the node the step names.
        let pause = &steps[7];
        assert_eq!(pause.target(), NodeName::Cs(ServerId(3)));
        let f = pause.fault(1_000);
        assert_eq!((f.kind, f.lasts_ms), (FaultKind::Pause, 2_000));
        assert_eq!(f.point.as_ref(), Some(&pause.point));
        let master = steps[6].fault(1_000);
        assert_eq!(
            (master.kind, master.lasts_ms),
            (FaultKind::MasterCrash, 250)
        );
    }
}
