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

/// Parses a duration such as `90s`, `10m`, `2h` or `1d` (a number and a unit) for `--for`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
        format!("duration {s:?} must be a positive number and a unit: 90s, 10m, 2h, 1d")
    })?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "duration {s:?}: unknown unit {unit:?}; use s, m, h or d (90s, 10m, 2h, 1d)"
            ))
        }
    };
    n.checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

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

/// A sweep's seeds: every seed of `start..end`, or, sharded, the `shard`-th of `shards`
/// interleaved parts of it (the seeds `start + shard`, `start + shard + shards`, ...), so that
/// `shards` machines each running one part run every seed exactly once between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedSet {
    pub start: u64,
    pub end: u64,
    pub shard: u64,
    pub shards: u64,
}

impl SeedSet {
    /// Every seed of `range`.
    pub fn all(range: Range<u64>) -> SeedSet {
        SeedSet {
            start: range.start,
            end: range.end,
            shard: 0,
            shards: 1,
        }
    }

    /// Part `shard` of `shards` of `range` (`shard < shards` and `shards > 0`, see
    /// [`parse_shard`]).
    pub fn part(range: Range<u64>, shard: u64, shards: u64) -> SeedSet {
        assert!(shards > 0 && shard < shards, "shard {shard}/{shards}");
        SeedSet {
            start: range.start,
            end: range.end,
            shard,
            shards,
        }
    }

    /// How many seeds the set holds.
    pub fn count(&self) -> u64 {
        let span = self.end.saturating_sub(self.start);
        if self.shard >= span {
            0
        } else {
            (span - self.shard - 1) / self.shards + 1
        }
    }

    /// The `i`-th seed of the set (`i < count()`).
    pub fn nth(&self, i: u64) -> u64 {
        self.start + self.shard + i * self.shards
    }

    /// The first `n` seeds of the set (all of it if it has fewer), as a set of the same shard.
    pub fn prefix(&self, n: u64) -> SeedSet {
        if n >= self.count() {
            return *self;
        }
        let end = if n == 0 {
            self.start
        } else {
            self.nth(n - 1) + 1
        };
        SeedSet { end, ..*self }
    }

    pub fn contains(&self, seed: u64) -> bool {
        (self.start..self.end).contains(&seed) && (seed - self.start) % self.shards == self.shard
    }
}

impl std::fmt::Display for SeedSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)?;
        if self.shards > 1 {
            write!(f, " shard {}/{}", self.shard, self.shards)?;
        }
        Ok(())
    }
}

/// The environment variables batch runners set to a job's index, read by `--shard auto/N`: a
/// Kubernetes Indexed Job, a Slurm array, and a variable of one's own for CI matrices.
pub const SHARD_INDEX_VARS: [&str; 3] = [
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "SIM_SHARD_INDEX",
];

/// Parses `K/N` (part K of N, K from 0) into (K, N); `auto/N` takes K from the first of
/// [`SHARD_INDEX_VARS`] that `env` finds.
pub fn parse_shard(s: &str, env: impl Fn(&str) -> Option<String>) -> Result<(u64, u64), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("shard {s:?} must look like K/N, for example 0/8 or auto/8"))?;
    let n: u64 = n.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| {
        format!("shard {s:?}: the number of shards {n:?} is not a positive integer")
    })?;
    let (k, from) = if k.trim() == "auto" {
        let found = SHARD_INDEX_VARS
            .iter()
            .find_map(|v| env(v).map(|value| (value, *v)))
            .ok_or_else(|| {
                format!(
                    "shard {s:?}: none of {} is set",
                    SHARD_INDEX_VARS.join(", ")
                )
            })?;
        found
    } else {
        (k.to_string(), "the shard")
    };
    let k: u64 = k
        .trim()
        .parse()
        .map_err(|_| format!("shard {s:?}: {from} index {k:?} is not a non-negative integer"))?;
    if k >= n {
        return Err(format!(
            "shard {s:?}: {from} index {k} is not below the number of shards {n}"
        ));
    }
    Ok((k, n))
}

/// What a sweep keeps of each failing run: its first failure, in one line, and how to replay it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    progress: impl FnMut(u64, u64),
    found: impl FnMut(&FailedSeed),
) -> SweepSummary {
    sweep_set(SeedSet::all(seeds), jobs, opts, progress, found)
}

/// [`sweep_reporting`] over a [`SeedSet`] (a whole range or one shard of it).
pub fn sweep_set(
    seeds: SeedSet,
    jobs: usize,
    opts: &RunOptions,
    progress: impl FnMut(u64, u64),
    found: impl FnMut(&FailedSeed),
) -> SweepSummary {
    sweep_set_until(seeds, &|| false, jobs, opts, progress, found)
}

/// [`sweep_set`] that starts no new seed once `stop()` says so (the runs under way finish): the
/// seeds that ran are the first [`SweepSummary::seeds`] of the set, in order
/// ([`SeedSet::prefix`]). For sweeps that run for a given time (`sim sweep --for 10m`) or are
/// interrupted.
pub fn sweep_set_until(
    seeds: SeedSet,
    stop: &(dyn Fn() -> bool + Sync),
    jobs: usize,
    opts: &RunOptions,
    mut progress: impl FnMut(u64, u64),
    mut found: impl FnMut(&FailedSeed),
) -> SweepSummary {
    let start = std::time::Instant::now(); // real time: the sweep's wall clock, outside the simulation

    // Seeds are handed out as offsets into the set: a counter of seeds themselves would wrap past
    // u64::MAX at the top of the range and start again from seed 0.
    let next = AtomicU64::new(0);
    let count = seeds.count();
    let (tx, rx) = mpsc::sync_channel::<SeedResult>(jobs * 4);
    let mut summary = SweepSummary::default();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let (tx, next) = (tx.clone(), &next);
            // Worker threads sit outside any simulation; each runs one runtime at a time.
            scope.spawn(move || loop {
                if stop() {
                    break;
                }
                let offset = next.fetch_add(1, Ordering::Relaxed);
                if offset >= count {
                    break;
                }
                let seed = seeds.nth(offset);
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

/// A sweep's result as a file (`sim sweep --json FILE`), for machines: what ran (options, seeds,
/// project version), every failure with its class, check and reproduce command, and the totals.
/// Seeds not listed among the failures passed. `sim merge` combines the files of a sharded sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepResult {
    /// The file format's version.
    pub format: u32,
    /// The `sim` version that ran the sweep.
    pub version: String,
    pub options: RunOptions,
    /// The seed sets that ran (one per shard merged in).
    pub seeds: Vec<SeedSet>,
    /// How many seeds ran, and how many passed.
    pub ran: u64,
    pub passed: u64,
    /// Every failing seed, in seed order.
    pub failures: Vec<FailedSeed>,
    /// Operations by "kind outcome", and the fault, recovery and coverage counters.
    pub outcomes: BTreeMap<String, u64>,
    pub counters: BTreeMap<String, u64>,
    pub messages: u64,
    pub sim_time_ns: u64,
    /// GFS Table 1 as observed: mutations per "row | column | state", and how many mutations left
    /// a state the paper forbids.
    pub table1: BTreeMap<String, u64>,
    pub table1_forbidden: u64,
    /// Real seconds the sweep took (summed over merged shards).
    pub wall_seconds: f64,
}

/// A hunt's result as a file (`sim hunt --json FILE`): what ran, how many seeds it took, and the
/// failure it found, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HuntResult {
    pub format: u32,
    pub version: String,
    pub options: RunOptions,
    pub seeds: SeedSet,
    pub tried: u64,
    pub found: Option<FailedSeed>,
}

impl HuntResult {
    pub fn of(seeds: Range<u64>, opts: &RunOptions, h: &Hunt) -> HuntResult {
        HuntResult {
            format: RESULT_FORMAT,
            version: env!("CARGO_PKG_VERSION").to_string(),
            options: opts.clone(),
            seeds: SeedSet::all(seeds),
            tried: h.tried,
            found: h.found.clone(),
        }
    }
}

/// The format [`SweepResult`] files are written in.
pub const RESULT_FORMAT: u32 = 1;

impl SweepResult {
    pub fn of(seeds: SeedSet, opts: &RunOptions, s: &SweepSummary) -> SweepResult {
        SweepResult {
            format: RESULT_FORMAT,
            version: env!("CARGO_PKG_VERSION").to_string(),
            options: opts.clone(),
            seeds: vec![seeds],
            ran: s.seeds,
            passed: s.passed,
            failures: s.failures.clone(),
            outcomes: s
                .outcomes
                .iter()
                .map(|((kind, outcome), n)| (format!("{kind} {outcome}"), *n))
                .collect(),
            counters: s.counters.clone(),
            messages: s.messages,
            sim_time_ns: s.sim_time_ns,
            table1: s
                .table1
                .iter()
                .map(|((row, column, state), n)| {
                    (
                        format!("{} | {} | {}", row.name(), column.name(), state.name()),
                        *n,
                    )
                })
                .collect(),
            table1_forbidden: s.table1_forbidden,
            wall_seconds: s.wall.as_secs_f64(),
        }
    }

    /// Combines the results of parts of one sweep: the same options and version, seed sets that
    /// share no seed. Counts add up; failures are listed in seed order.
    pub fn merge(parts: Vec<SweepResult>) -> Result<SweepResult, String> {
        let mut parts = parts.into_iter();
        let mut out = parts.next().ok_or("nothing to merge")?;
        for p in parts {
            if p.format != out.format || p.version != out.version {
                return Err(format!(
                    "results of different sim versions or formats: {} (format {}) and {} (format {})",
                    out.version, out.format, p.version, p.format
                ));
            }
            if p.options != out.options {
                return Err(format!(
                    "results of different options:{} and{}",
                    out.options.flags(),
                    p.options.flags()
                ));
            }
            for a in &out.seeds {
                for b in &p.seeds {
                    if overlap(a, b) {
                        return Err(format!("seed sets {a} and {b} share seeds"));
                    }
                }
            }
            out.seeds.extend(p.seeds);
            out.ran += p.ran;
            out.passed += p.passed;
            out.failures.extend(p.failures);
            for (k, n) in p.outcomes {
                *out.outcomes.entry(k).or_default() += n;
            }
            for (k, n) in p.counters {
                *out.counters.entry(k).or_default() += n;
            }
            for (k, n) in p.table1 {
                *out.table1.entry(k).or_default() += n;
            }
            out.table1_forbidden += p.table1_forbidden;
            out.messages += p.messages;
            out.sim_time_ns += p.sim_time_ns;
            out.wall_seconds += p.wall_seconds;
        }
        out.failures.sort_by_key(|f| f.seed);
        Ok(out)
    }
}

/// Whether two seed sets share a seed (by walking the smaller: sets are sweeps, so this is bounded
/// by the seeds that ran).
fn overlap(a: &SeedSet, b: &SeedSet) -> bool {
    let (small, big) = if a.count() <= b.count() {
        (a, b)
    } else {
        (b, a)
    };
    (0..small.count()).any(|i| big.contains(small.nth(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_a_range_into_interleaved_disjoint_parts() {
        let whole: Vec<u64> = (10..23).collect();
        let mut seen = Vec::new();
        for k in 0..4 {
            let part = SeedSet::part(10..23, k, 4);
            let seeds: Vec<u64> = (0..part.count()).map(|i| part.nth(i)).collect();
            assert!(seeds.iter().all(|&s| part.contains(s)));
            assert!(seeds.windows(2).all(|w| w[1] - w[0] == 4));
            seen.extend(seeds);
        }
        seen.sort_unstable();
        assert_eq!(seen, whole);
        // A prefix keeps the shard and holds exactly the first seeds.
        let part = SeedSet::part(10..23, 1, 4);
        let first = part.prefix(2);
        assert_eq!((first.count(), first.nth(0), first.nth(1)), (2, 11, 15));
        assert_eq!(part.prefix(99), part);
        assert_eq!(part.prefix(0).count(), 0);
        // More shards than seeds: the extra shards are empty.
        assert_eq!(SeedSet::part(0..2, 3, 5).count(), 0);
        assert!(!overlap(
            &SeedSet::part(0..9, 0, 2),
            &SeedSet::part(0..9, 1, 2)
        ));
        assert!(overlap(&SeedSet::all(0..9), &SeedSet::part(5..20, 1, 2)));
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        for bad in ["10", "m", "0s", "5y", "-1m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shard_arguments_are_parsed_or_refused_in_one_line() {
        let none = |_: &str| None;
        assert_eq!(parse_shard("2/8", none), Ok((2, 8)));
        let k8s = |v: &str| (v == "JOB_COMPLETION_INDEX").then(|| "5".to_string());
        assert_eq!(parse_shard("auto/8", k8s), Ok((5, 8)));
        let slurm = |v: &str| (v == "SLURM_ARRAY_TASK_ID").then(|| "9".to_string());
        let e = parse_shard("auto/8", slurm).unwrap_err();
        assert!(
            e.contains("SLURM_ARRAY_TASK_ID index 9 is not below"),
            "{e}"
        );
        for (bad, why) in [
            ("8/8", "not below"),
            ("1/0", "not a positive integer"),
            ("3", "must look like K/N"),
            ("x/4", "not a non-negative integer"),
            ("auto/4", "none of JOB_COMPLETION_INDEX"),
        ] {
            let e = parse_shard(bad, none).unwrap_err();
            assert!(e.contains(why) && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
