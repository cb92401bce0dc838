//! Many seeds on several threads, every failure kept.
//!
//! The sweep owns its seeds: it is given a range and runs each seed in it exactly once, each in its
//! own madsim runtime on one of `jobs` worker threads (OS threads are fine here: they sit outside
//! any simulation, and each runtime is confined to the thread that runs it). Results come back to
//! the calling thread, which reports progress and, at the end, every failing seed with the command
//! that reproduces it.

use crate::checks::table1;
use crate::failure::FailureClass;
use crate::latency;
use crate::options::RunOptions;
use crate::run::{run_seed, RunReport};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Parses `A..B` (B exclusive) into a non-empty range.
pub fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("seed range {s:?} must look like A..B, for example 0..1000"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|_| format!("seed range {s:?}: {x:?} is not a non-negative integer"))
    };
    let (a, b) = (num(a)?, num(b)?);
    if a >= b {
        return Err(format!(
            "seed range {s:?} is empty: the end must be greater than the start"
        ));
    }
    Ok(a..b)
}

/// What a sweep keeps of each failing run: its first failure, in one line, and how to replay it.
#[derive(Debug, Clone)]
pub struct FailedSeed {
    pub seed: u64,
    pub class: FailureClass,
    /// The check that caught it (`panic` or `liveness` for those classes).
    pub check: String,
    /// The failure in one line (`check: first line of its report`).
    pub reason: String,
    pub command: String,
}

impl FailedSeed {
    /// The run's first failure, if it failed.
    pub fn of(report: &RunReport) -> Option<FailedSeed> {
        report.failure().map(|f| FailedSeed {
            seed: report.seed,
            class: f.class,
            reason: f.line(),
            check: f.check,
            command: report.options.reproduce_command(report.seed),
        })
    }
}

/// Totals over a sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepSummary {
    pub seeds: u64,
    pub passed: u64,
    pub failures: Vec<FailedSeed>,
    pub outcomes: BTreeMap<(String, String), u64>,
    /// Faults injected and recovery paths run, summed over seeds.
    pub counters: BTreeMap<String, u64>,
    pub messages: u64,
    pub sim_time_ns: u64,
    pub wall: Duration,
    /// GFS Table 1 as observed: mutations per (row, column, region state), over every seed that
    /// reached the read-back phase.
    pub table1: table1::Table,
    /// Mutations that left a state the paper's table forbids.
    pub table1_forbidden: u64,
    /// Operation latency (simulated) and retries, by kind, over every seed.
    pub latency: latency::ByKind,
}

impl SweepSummary {
    /// Every failure, two lines each (reason, then the command that reproduces it).
    pub fn failure_report(&self) -> String {
        let lines: Vec<String> = self
            .failures
            .iter()
            .map(|f| format!("  seed {}: {}\n    {}", f.seed, f.reason, f.command))
            .collect();
        lines.join("\n")
    }

    pub fn seeds_per_second(&self) -> f64 {
        self.seeds as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn add(&mut self, r: SeedResult) {
        self.seeds += 1;
        self.messages += r.messages;
        self.sim_time_ns += r.sim_time_ns;
        for (k, n) in r.outcomes {
            *self.outcomes.entry(k).or_default() += n;
        }
        for (k, n) in r.counters {
            *self.counters.entry(k).or_default() += n;
        }
        for (k, n) in r.table1 {
            *self.table1.entry(k).or_default() += n;
        }
        self.table1_forbidden += r.table1_forbidden;
        latency::merge(&mut self.latency, &r.latency);
        match r.failure {
            None => self.passed += 1,
            Some(f) => self.failures.push(f),
        }
    }
}

/// What a worker sends back for one seed: counts, not the full record.
struct SeedResult {
    failure: Option<FailedSeed>,
    outcomes: BTreeMap<(String, String), u64>,
    counters: BTreeMap<String, u64>,
    messages: u64,
    sim_time_ns: u64,
    table1: table1::Table,
    table1_forbidden: u64,
    latency: latency::ByKind,
}

impl SeedResult {
    fn of(report: &RunReport) -> Self {
        SeedResult {
            failure: FailedSeed::of(report),
            outcomes: report.outcomes(),
            counters: report.counters(),
            messages: report.messages,
            sim_time_ns: report.sim_time_ns,
            table1: report.table1.clone(),
            table1_forbidden: report.table1_forbidden,
            latency: latency::of_history(&report.history),
        }
    }
}

/// Runs every seed of `seeds` on `jobs` threads. `progress(done, failed)` is called on the calling
/// thread after each seed.
pub fn sweep(
    seeds: Range<u64>,
    jobs: usize,
    opts: &RunOptions,
    progress: impl FnMut(u64, u64),
) -> SweepSummary {
    sweep_reporting(seeds, jobs, opts, progress, |_| {})
}

/// [`sweep`], also handing each failing seed to `found` as soon as its run ends (in the order runs
/// end), so that a sweep cut short has already shown every failure it found.
pub fn sweep_reporting(
    seeds: Range<u64>,
    jobs: usize,
    opts: &RunOptions,
    mut progress: impl FnMut(u64, u64),
    mut found: impl FnMut(&FailedSeed),
) -> SweepSummary {
    let start = std::time::Instant::now(); // real time: the sweep's wall clock, outside any simulation
                                           // Seeds are handed out as offsets into the range: a counter of seeds themselves would wrap past
                                           // u64::MAX at the top of the range and start again from seed 0.
    let next = AtomicU64::new(0);
    let count = seeds.end.saturating_sub(seeds.start);
    let (tx, rx) = mpsc::sync_channel::<SeedResult>(jobs * 4);
    let mut summary = SweepSummary::default();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let (tx, next) = (tx.clone(), &next);
            // Worker threads sit outside any simulation; each runs one runtime at a time.
            scope.spawn(move || loop {
                let offset = next.fetch_add(1, Ordering::Relaxed);
                if offset >= count {
                    break;
                }
                let seed = seeds.start + offset;
                if tx.send(SeedResult::of(&run_seed(seed, opts))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for result in rx {
            if let Some(f) = &result.failure {
                found(f);
            }
            summary.add(result);
            progress(summary.seeds, summary.failures.len() as u64);
        }
    });
    summary.failures.sort_by_key(|f| f.seed);
    summary.wall = start.elapsed();
    summary
}

/// What a hunt found: the first failing seed, if any, and how many seeds it took.
#[derive(Debug, Clone)]
pub struct Hunt {
    pub tried: u64,
    pub found: Option<FailedSeed>,
}

/// Runs seeds of `seeds` in order until one fails (on `jobs` threads, in batches, so the first
/// failure in seed order is the one reported).
pub fn hunt(
    seeds: Range<u64>,
    jobs: usize,
    opts: &RunOptions,
    mut progress: impl FnMut(u64),
) -> Hunt {
    let jobs = jobs.max(1) as u64;
    let mut start = seeds.start;
    while start < seeds.end {
        let end = start.saturating_add(jobs).min(seeds.end);
        let reports: Vec<RunReport> = std::thread::scope(|scope| {
            let handles: Vec<_> = (start..end)
                .map(|seed| scope.spawn(move || run_seed(seed, opts)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("run thread"))
                .collect()
        });
        for r in reports {
            progress(r.seed - seeds.start + 1);
            if let Some(found) = FailedSeed::of(&r) {
                return Hunt {
                    tried: r.seed - seeds.start + 1,
                    found: Some(found),
                };
            }
        }
        start = end;
    }
    Hunt {
        tried: seeds.end - seeds.start,
        found: None,
    }
}
