//! `sim`: run one seed, or sweep many, of the GFS simulation.

mod cli;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sim::failure::FailureClass;
use sim::options::RunOptions;
use sim::run::run_seed;
use sim::sweep::{
    parse_duration, parse_seeds, parse_shard, sweep_set_until, HuntResult, SeedSet, SweepResult,
    SweepSummary,
};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "sim",
    version,
    about = "Deterministic simulation testbed for the Google File System",
    long_about = "Runs a GFS cluster (master, chunkservers, clients) inside the madsim simulator under \
an explicit seed, plays a random workload, and checks that every acknowledged write survives. The \
same seed and options always give the same run. The main job: `sim sweep --seeds 0..10000`.\n\nExit \
codes: 0 every run passed (a hunt: the bug was caught), 1 a check was violated (also: a scenario's \
expectation or a shrink failed, a hunt caught nothing, traces differ), 2 bad input, 3 a liveness failure (no progress, no \
convergence), 4 a node panicked on a broken invariant. A sweep exits with its most severe failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed and print its summary: operations by kind and outcome, messages, times, verdict.
    Run {
        /// The seed to run, as `replay` and `shrink` take it (`--seed SEED` works too: reproduce
        /// lines print it so).
        #[arg(value_name = "SEED", required_unless_present = "seed_flag")]
        seed: Option<u64>,
        /// The seed to run (the same as SEED).
        #[arg(long = "seed", value_name = "SEED", conflicts_with = "seed")]
        seed_flag: Option<u64>,
        #[command(flatten)]
        opts: RunOptions,
        /// Also print every operation of the history.
        #[arg(long)]
        history: bool,
        /// Also print every protocol event (lease grants, version bumps, ...).
        #[arg(long)]
        events: bool,
    },
    /// Re-run one seed, write its whole trace (messages and disk operations included) to
    /// DIR/seed-SEED.jsonl and print its timeline (one column per node), then the summary and
    /// verdict.
    Replay {
        /// The seed to replay.
        seed: u64,
        #[command(flatten)]
        opts: RunOptions,
        /// Directory for the trace file.
        #[arg(long, default_value = "traces")]
        out: std::path::PathBuf,
        /// Also show these in the timeline (comma-separated): `messages` (every RPC sent,
        /// delivered, answered or dropped), `disk` (page-cache writes, syncs, lost writes). The
        /// trace file holds them either way.
        #[arg(long, value_enum, value_delimiter = ',')]
        show: Vec<sim::trace::Shown>,
        #[command(flatten)]
        diagram: DiagramArgs,
    },
    /// Run a scripted scenario (scenarios/NAME.toml or a path): print its timeline, its summary,
    /// and whether each of its expectations held.
    Scenario {
        /// The scenario's name under --dir, or a path to a .toml file. Omit to list them.
        name: Option<String>,
        /// Where scenarios live.
        #[arg(long, default_value = "scenarios")]
        dir: std::path::PathBuf,
        /// Also show these in the timeline (comma-separated): `messages`, `disk` (see `replay`).
        #[arg(long, value_enum, value_delimiter = ',')]
        show: Vec<sim::trace::Shown>,
        #[command(flatten)]
        diagram: DiagramArgs,
    },
    /// Explore a scenario systematically: run it once to find every fault point (each message
    /// sent, each disk sync), then run it with a fault at each point (a lost or late message, a
    /// lost answer, a crash before a send or before or after a sync, a pause longer than a lease
    /// at a heartbeat or lease offer), and with two at depth 2; judge every run with all checks
    /// and write every failing schedule as a scenario file with its timeline.
    Explore {
        /// The scenario's name under --dir, or a path to a .toml file.
        name: String,
        /// Faults per schedule: 1 or 2.
        #[arg(long, default_value_t = 1)]
        depth: u32,
        /// Most schedules to run; the rest are counted and named as not run.
        #[arg(long, default_value_t = 20_000)]
        max_schedules: usize,
        /// Worker threads; defaults to the number of cores.
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Planted bug to switch on (repeatable), as in the scenario's `[cluster] bug`.
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<node::Bug>,
        /// Run the schedules pruning would skip too (to measure what pruning saves).
        #[arg(long)]
        no_prune: bool,
        /// Where scenarios live.
        #[arg(long, default_value = "scenarios")]
        dir: std::path::PathBuf,
        /// Where to write failing schedules as scenarios.
        #[arg(long, default_value = "scenarios/found")]
        out: std::path::PathBuf,
    },
    /// Sweep seeds in order until one fails; say how many it took and which check caught it.
    /// Usually with --bug NAME, to measure how fast the testbed finds a planted bug.
    Hunt {
        /// Seeds to try, in order, as A..B.
        #[arg(long, value_parser = parse_seeds, default_value = "0..1000")]
        seeds: std::ops::Range<u64>,
        /// Also write the result as JSON to FILE: options, seeds, seeds tried, the failure found.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Worker threads; defaults to the number of cores.
        #[arg(long, short)]
        jobs: Option<usize>,
        #[command(flatten)]
        opts: RunOptions,
    },
    /// Shrink a failing seed to the smallest run that fails the same check, and write it as a
    /// scenario file (with its timeline beside it) that `sim scenario` replays.
    Shrink {
        /// The failing seed.
        seed: u64,
        #[command(flatten)]
        opts: RunOptions,
        /// Where to write the scenario.
        #[arg(long, default_value = "scenarios/found")]
        out: std::path::PathBuf,
        /// Most candidate runs to try.
        #[arg(long, default_value_t = 2000)]
        max_runs: u64,
        /// Replace a scenario of the same name (they are tracked: `scenarios/found/` is replayed
        /// by the tests).
        #[arg(long)]
        force: bool,
    },
    /// Compare two trace files and show the first line where they differ.
    Diff {
        /// The first trace (JSON Lines).
        a: std::path::PathBuf,
        /// The second trace.
        b: std::path::PathBuf,
    },
    /// Run a sweep and print GFS Table 1 (paper §2.7) as observed: for each row (serial success,
    /// concurrent successes, failure) and column (write, record append), the region states its
    /// mutations left, with counts. Exits non-zero if any mutation left a state the paper forbids.
    Table {
        /// Seeds to run, as A..B (B excluded).
        #[arg(long, value_parser = parse_seeds, default_value = "0..1000")]
        seeds: std::ops::Range<u64>,
        /// Also write the result as JSON to FILE, the table included (as `sim sweep --json`).
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Worker threads; defaults to the number of cores.
        #[arg(long, short)]
        jobs: Option<usize>,
        #[command(flatten)]
        opts: RunOptions,
    },
    /// Run every seed of a range and report each failing seed with the command that reproduces it.
    Sweep {
        /// Seeds to run, as A..B (B excluded), for example 0..10000. Without it, madsim's own
        /// convention: MADSIM_TEST_SEED (the first seed) and MADSIM_TEST_NUM (how many, default 1).
        #[arg(long, value_parser = parse_seeds)]
        seeds: Option<std::ops::Range<u64>>,
        /// Run only part K of N of the seeds (K from 0): the seeds A+K, A+K+N, A+K+2N, ... so that
        /// N machines running parts 0 to N-1 run every seed once. `auto/N` takes K from
        /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), SLURM_ARRAY_TASK_ID (a Slurm array) or
        /// SIM_SHARD_INDEX (set it in a CI matrix), the first one set.
        #[arg(long, value_name = "K/N", conflicts_with = "for_")]
        shard: Option<String>,
        /// Keep sweeping for this long (real time: 90s, 10m, 2h, 1d), from the first seed of
        /// --seeds up to its end, or without --seeds from a starting seed taken from the clock
        /// and printed; then report as any sweep does. For nightly runs.
        #[arg(long = "for", id = "for_", value_name = "DURATION", value_parser = parse_duration)]
        for_: Option<std::time::Duration>,
        /// Also write the result as JSON to FILE: options, seeds, version, every failure (class,
        /// check, reproduce command) and the totals. `sim merge` combines the files of shards.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Worker threads; defaults to the number of cores.
        #[arg(long, short)]
        jobs: Option<usize>,
        #[command(flatten)]
        opts: RunOptions,
    },
    /// Run a sweep and print every coverage probe (the protocol's rare and defensive paths:
    /// refusals, version adoption, bounds) with how often the runs passed through it, and which
    /// were never hit, so no check judged them. `sim explore` prints the same table.
    Coverage {
        /// Seeds to run, as A..B (B excluded).
        #[arg(long, value_parser = parse_seeds, default_value = "0..2000")]
        seeds: std::ops::Range<u64>,
        /// Worker threads; defaults to the number of cores.
        #[arg(long, short)]
        jobs: Option<usize>,
        #[command(flatten)]
        opts: RunOptions,
    },
    /// Combine the JSON results of the shards of one sweep (`sim sweep --shard K/N --json FILE`)
    /// into one report: every failure with its reproduce command, the totals, and the exit code of
    /// the most severe failure. Refuses results of different options or versions, or shards that
    /// overlap.
    Merge {
        /// The shards' result files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Also write the merged result as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell), for example
    /// `sim completions bash > ~/.local/share/bash-completion/completions/sim`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Where and what of a run to draw as a space-time diagram.
#[derive(clap::Args, Debug, Clone, Default)]
struct DiagramArgs {
    /// Also write a space-time diagram to FILE: a self-contained HTML page (inline SVG) with a
    /// column per node, an arrow per message, faults, leases and operations; hover for details.
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
    /// Also write the trace to FILE in ShiViz's log format, with vector clocks: paste it into
    /// ShiViz (bestchai.bitbucket.io/shiviz) with the parser `(?<event>.*)\n(?<host>\S*) (?<clock>{.*})`.
    #[arg(long, value_name = "FILE")]
    shiviz: Option<std::path::PathBuf>,
    /// Draw only from this simulated time on (milliseconds).
    #[arg(long, value_name = "MS")]
    from_ms: Option<u64>,
    /// Draw only up to this simulated time (milliseconds).
    #[arg(long, value_name = "MS")]
    to_ms: Option<u64>,
    /// Draw only the lines about this chunk, file or node (`c4`, `/f1`, `cs2`), with the faults
    /// and verdicts.
    #[arg(long, value_name = "NAME")]
    only: Option<String>,
}

/// The seeds madsim's test macro would run: MADSIM_TEST_SEED, then MADSIM_TEST_NUM - 1 more.
fn seeds_from_env() -> Result<std::ops::Range<u64>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let number = |name: &str, v: String| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("{name}={v:?} is not a non-negative integer"))
    };
    let Some(seed) = var("MADSIM_TEST_SEED") else {
        return Err("sweep needs --seeds A..B, or MADSIM_TEST_SEED (and MADSIM_TEST_NUM)".into());
    };
    let start = number("MADSIM_TEST_SEED", seed)?;
    let count = match var("MADSIM_TEST_NUM") {
        Some(n) => number("MADSIM_TEST_NUM", n)?,
        None => 1,
    };
    if count == 0 {
        return Err("MADSIM_TEST_NUM=0 runs no seed".into());
    }
    let end = start
        .checked_add(count)
        .ok_or_else(|| format!("MADSIM_TEST_SEED + MADSIM_TEST_NUM passes {}", u64::MAX))?;
    Ok(start..end)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// Whether a panic is expected and reported another way: a node's broken invariant inside a sweep,
/// hunt or shrink is that seed's failure, so its message would only clutter stderr.
static QUIET_PANICS: AtomicBool = AtomicBool::new(false);

/// Panics print as Rust's default hook prints them, but for two cases: quiet ones (see
/// [`QUIET_PANICS`]), and stdout closed by its reader (`sim replay 42 | head -1`), where the tool
/// stops quietly with success, as a shell tool killed by the broken pipe would stop.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        if !QUIET_PANICS.load(Ordering::Relaxed) {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    // No subcommand: the help, as clap does for a required one (exit 2: nothing was asked).
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        let _ = Cli::command().print_long_help();
        return ExitCode::from(2);
    };
    match command {
        Command::Run {
            seed,
            seed_flag,
            opts,
            history,
            events,
        } => {
            let seed = seed.or(seed_flag).expect("clap requires a seed");
            if let Err(e) = opts.validate() {
                return fail(&e);
            }
            run_one(seed, &opts, history, events)
        }
        Command::Replay {
            seed,
            opts,
            out,
            show,
            diagram,
        } => {
            if let Err(e) = opts.validate() {
                return fail(&e);
            }
            replay(seed, &opts, &in_repository(&out), &show, &diagram)
        }
        Command::Diff { a, b } => diff(&a, &b),
        Command::Shrink {
            seed,
            opts,
            out,
            max_runs,
            force,
        } => {
            if let Err(e) = opts.validate() {
                return fail(&e);
            }
            shrink(seed, &opts, &in_repository(&out), max_runs, force)
        }
        Command::Hunt {
            seeds,
            json,
            jobs,
            opts,
        } => {
            let jobs = match sweep_jobs(jobs, &opts) {
                Ok(jobs) => jobs,
                Err(e) => return fail(&e),
            };
            if let Err(e) = writable(json.as_deref()) {
                return fail(&e);
            }
            QUIET_PANICS.store(true, Ordering::Relaxed);
            eprintln!(
                "hunting over seeds {}..{}{}",
                seeds.start,
                seeds.end,
                opts.flags()
            );
            let h = sim::sweep::hunt(seeds.clone(), jobs, &opts, |_| {});
            QUIET_PANICS.store(false, Ordering::Relaxed);
            if let Some(path) = &json {
                if let Err(e) = write_json(path, &HuntResult::of(seeds, &opts, &h)) {
                    return fail(&e);
                }
            }
            match &h.found {
                Some(f) => {
                    println!(
                        "caught after {} seed{} by {}: seed {}: {}",
                        h.tried,
                        if h.tried == 1 { "" } else { "s" },
                        f.check,
                        f.seed,
                        f.reason
                    );
                    println!("reproduce: {}", f.command);
                    ExitCode::SUCCESS
                }
                _ => {
                    println!("not caught in {} seeds", h.tried);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Scenario {
            name,
            dir,
            show,
            diagram,
        } => scenario(name.as_deref(), &in_repository(&dir), &show, &diagram),
        Command::Explore {
            name,
            depth,
            max_schedules,
            jobs,
            bugs,
            no_prune,
            dir,
            out,
        } => {
            let jobs = match sweep_jobs(jobs, &RunOptions::default()) {
                Ok(j) => j,
                Err(e) => return fail(&e),
            };
            let opts = sim::explore::Options {
                depth,
                max_schedules,
                jobs,
                no_prune,
            };
            QUIET_PANICS.store(true, Ordering::Relaxed);
            cli::explore::run(
                &name,
                &bugs,
                &in_repository(&dir),
                &in_repository(&out),
                &opts,
                fail,
            )
        }
        Command::Sweep {
            seeds,
            shard,
            for_,
            json,
            jobs,
            opts,
        } => {
            if let Some(duration) = for_ {
                return match sweep_jobs(jobs, &opts) {
                    Ok(jobs) => run_for(duration, seeds, jobs, &opts, json.as_deref()),
                    Err(e) => fail(&e),
                };
            }
            let seeds = match seeds.map_or_else(seeds_from_env, Ok) {
                Ok(seeds) => seeds,
                Err(e) => return fail(&e),
            };
            let set = match shard.as_deref() {
                None => SeedSet::all(seeds),
                Some(s) => match parse_shard(s, |v| std::env::var(v).ok()) {
                    Ok((k, n)) => SeedSet::part(seeds, k, n),
                    Err(e) => return fail(&e),
                },
            };
            match sweep_jobs(jobs, &opts) {
                Ok(jobs) => run_sweep(set, jobs, &opts, json.as_deref()),
                Err(e) => fail(&e),
            }
        }
        Command::Coverage { seeds, jobs, opts } => {
            let jobs = match sweep_jobs(jobs, &opts) {
                Ok(j) => j,
                Err(e) => return fail(&e),
            };
            let summary = sweep_with_progress(SeedSet::all(seeds.clone()), jobs, &opts);
            let counts = cli::coverage::from_counters(&summary.counters);
            print!(
                "{}",
                cli::coverage::table(
                    &counts,
                    &format!(
                        "seeds {}..{} ({} seeds)",
                        seeds.start, seeds.end, summary.seeds
                    )
                )
            );
            if summary.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                println!(
                    "{} seeds failed (run `sim sweep` with the same options for the list)",
                    summary.failures.len()
                );
                failed_with(summary.failures.iter().map(|f| f.class))
            }
        }
        Command::Table {
            seeds,
            json,
            jobs,
            opts,
        } => match sweep_jobs(jobs, &opts).and_then(|j| writable(json.as_deref()).map(|()| j)) {
            Ok(jobs) => table(seeds, jobs, &opts, json.as_deref()),
            Err(e) => fail(&e),
        },
        Command::Merge { files, json } => merge(&files, json.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "sim", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// A relative path (`scenarios`, `traces`, `scenarios/found`) taken from the repository's root
/// when `sim` runs in a directory below it (`cargo run` from `sim/`), so that scenarios are found
/// and traces land where the README says. The root is the nearest directory up from here with a
/// `Cargo.toml` and a `scenarios/` directory; outside the repository the path stays as given.
fn in_repository(path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let Ok(here) = std::env::current_dir() else {
        return path.to_path_buf();
    };
    here.ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("scenarios").is_dir())
        .map_or_else(
            || path.to_path_buf(),
            |root| {
                if root == here {
                    path.to_path_buf() // keep relative paths relative in what is printed
                } else {
                    root.join(path)
                }
            },
        )
}

/// What a timeline left out, and the flag that shows it.
fn say_hidden(lines: &[sim::trace::TraceLine], show: &[sim::trace::Shown]) {
    let hidden = sim::trace::hidden_counts(lines, show);
    if hidden.is_empty() {
        return;
    }
    let what: Vec<String> = hidden
        .iter()
        .map(|(g, n)| {
            let what = match g {
                sim::trace::Shown::Messages => "message",
                sim::trace::Shown::Disk => "disk",
            };
            format!("{n} {what} lines")
        })
        .collect();
    let names: Vec<&str> = hidden.iter().map(|(g, _)| g.name()).collect();
    println!(
        "not shown: {} (see them with --show {})",
        what.join(", "),
        names.join(",")
    );
}

fn replay(
    seed: u64,
    opts: &RunOptions,
    dir: &std::path::Path,
    show: &[sim::trace::Shown],
    diagram: &DiagramArgs,
) -> ExitCode {
    // Full detail changes what is recorded, not the run: the reproduce command stays the same.
    let report = sim::run::run_seed_detailed(seed, opts, node::trace::Detail::Full);
    let lines = sim::trace::lines(&report);
    let path = dir.join(format!("seed-{seed}.jsonl"));
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| {
        let text = sim::trace::meta_line(seed, opts) + &sim::trace::to_jsonl(&lines);
        std::fs::write(&path, text)
    }) {
        return fail(&format!(
            "cannot write the trace to {}: {e}",
            path.display()
        ));
    }
    print!(
        "{}",
        sim::trace::timeline(
            &sim::trace::shown(&lines, show),
            &sim::trace::nodes(&report)
        )
    );
    println!("trace: {} ({} lines)", path.display(), lines.len());
    say_hidden(&lines, show);
    {
        let title = format!("seed {seed}{}", opts.flags());
        if let Err(e) = write_diagram(diagram, &title, &report) {
            return fail(&e);
        }
    }
    summarize(seed, opts, &report, &opts.reproduce_command(seed))
}

/// Writes a run's space-time diagram ([`sim::diagram`]) to `path`, the failing check's operations
/// outlined.
fn write_diagram(
    args: &DiagramArgs,
    title: &str,
    report: &sim::run::RunReport,
) -> Result<(), String> {
    if args.html.is_none() && args.shiviz.is_none() {
        if args.from_ms.is_some() || args.to_ms.is_some() || args.only.is_some() {
            return Err("--from-ms, --to-ms and --only choose what --html or --shiviz draws: give one of them".into());
        }
        return Ok(());
    }
    let lines = sim::diagram::select(
        sim::trace::lines(report),
        args.from_ms,
        args.to_ms,
        args.only.as_deref(),
    );
    if let Some(path) = &args.shiviz {
        std::fs::write(path, sim::diagram::shiviz(&lines))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("ShiViz log written to {}", path.display());
    }
    let Some(path) = &args.html else {
        return Ok(());
    };
    let reports: Vec<&str> = report
        .violations
        .iter()
        .map(|v| v.report.as_str())
        .collect();
    let page = sim::diagram::html(
        title,
        &lines,
        &sim::trace::nodes(report),
        &sim::diagram::named_ops(&reports),
    );
    std::fs::write(path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("diagram written to {}", path.display());
    Ok(())
}

fn scenario(
    name: Option<&str>,
    dir: &std::path::Path,
    show: &[sim::trace::Shown],
    diagram: &DiagramArgs,
) -> ExitCode {
    let Some(name) = name else {
        for n in sim::scenario::list(dir) {
            println!("{n}");
        }
        return ExitCode::SUCCESS;
    };
    let loaded = match sim::scenario::locate(dir, name).and_then(|p| sim::scenario::load(&p)) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let report = sim::scenario::run(&loaded);
    {
        let title = format!("scenario {}: {}", loaded.name, loaded.scenario.description);
        if let Err(e) = write_diagram(diagram, &title, &report) {
            return fail(&e);
        }
    }
    print!("{}", sim::scenario::timeline(&report, show));
    say_hidden(&sim::trace::lines(&report), show);
    println!("scenario {}: {}", loaded.name, loaded.scenario.description);
    // A scenario's run is its script, not a seeded workload: it replays through `scenario`.
    let mut reproduce = format!("cargo run --release -p sim -- scenario {name}");
    if dir != std::path::Path::new("scenarios") {
        reproduce.push_str(&format!(" --dir {}", dir.display()));
    }
    let verdict = summarize(report.seed, &loaded.options, &report, &reproduce);
    let results = sim::scenario::check(&loaded, &report);
    println!("expectations:");
    for (held, what) in &results {
        println!("  [{}] {what}", if *held { "ok" } else { "FAILED" });
    }
    let _ = verdict;
    if results.iter().all(|(held, _)| *held) {
        println!("scenario {}: every expectation held", loaded.name);
        ExitCode::SUCCESS
    } else {
        println!("scenario {}: expectations failed", loaded.name);
        ExitCode::FAILURE
    }
}

fn shrink(
    seed: u64,
    opts: &RunOptions,
    dir: &std::path::Path,
    max_runs: u64,
    force: bool,
) -> ExitCode {
    let bugs: Vec<&str> = opts.bugs.iter().map(|b| b.name()).collect();
    let name = if bugs.is_empty() {
        format!("seed-{seed}")
    } else {
        format!("seed-{seed}-{}", bugs.join("-"))
    };
    let path = dir.join(format!("{name}.toml"));
    if path.exists() && !force {
        return fail(&format!("{} exists; --force replaces it", path.display()));
    }
    QUIET_PANICS.store(true, Ordering::Relaxed);
    let result = sim::shrink::shrink(seed, opts, max_runs, |line| eprintln!("shrink: {line}"));
    QUIET_PANICS.store(false, Ordering::Relaxed);
    let s = match result {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let text = sim::shrink::to_scenario(seed, opts, &s);
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, &text)) {
        return fail(&format!("cannot write {}: {e}", path.display()));
    }
    // Replay the file it wrote: it must fail the same check.
    let loaded = match sim::scenario::load(&path) {
        Ok(l) => l,
        Err(e) => return fail(&format!("the written scenario does not load: {e}")),
    };
    let report = sim::scenario::run(&loaded);
    let timeline = sim::scenario::snapshot_timeline(&report);
    let timeline_path = dir.join(format!("{name}.timeline.txt"));
    if let Err(e) = std::fs::write(&timeline_path, &timeline) {
        return fail(&format!("cannot write {}: {e}", timeline_path.display()));
    }
    let held = sim::scenario::check(&loaded, &report)
        .iter()
        .all(|(ok, _)| *ok);
    println!("before: {}", s.before);
    println!("after:  {} ({} runs)", s.after, s.runs);
    println!(
        "scenario: {} (timeline: {})",
        path.display(),
        timeline_path.display()
    );
    if held {
        println!("replaying it fails {} as the seed did", s.check);
        ExitCode::SUCCESS
    } else {
        println!(
            "error: the scenario does not reproduce the failure of {}",
            s.check
        );
        ExitCode::FAILURE
    }
}

fn diff(a: &std::path::Path, b: &std::path::Path) -> ExitCode {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read trace {}: {e}", p.display()))
    };
    let (ta, tb) = match (read(a), read(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    match sim::trace::first_difference(&ta, &tb) {
        None if ta == tb => {
            println!("identical: {} lines", ta.lines().count());
            ExitCode::SUCCESS
        }
        None => {
            // Line by line the same, byte by byte not: say what differs rather than "identical".
            let why = if ta.ends_with('\n') != tb.ends_with('\n') {
                "one ends with a newline and the other does not"
            } else {
                "in their line endings"
            };
            println!(
                "the same {} lines, but the files differ: {why}",
                ta.lines().count()
            );
            ExitCode::FAILURE
        }
        Some((line, x, y)) => {
            println!("first difference at line {}:", line + 1);
            println!("< {x}");
            println!("> {y}");
            ExitCode::FAILURE
        }
    }
}

fn run_one(seed: u64, opts: &RunOptions, show_history: bool, show_events: bool) -> ExitCode {
    let report = run_seed(seed, opts);
    if show_events {
        for e in &report.events {
            println!(
                "{:>12.3} ms  {:<8} {:<20} {}",
                e.time_ns as f64 / 1e6,
                e.node.to_string(),
                e.event.kind(),
                e.event
            );
        }
    }
    if show_history {
        for op in &report.history {
            println!("{}", sim::checks::describe(op));
        }
    }
    summarize(seed, opts, &report, &opts.reproduce_command(seed))
}

/// The summary of a run: operations, faults and recoveries, messages, times, verdict.
/// Prints a run's summary and verdict; a failure ends with `reproduce`, the command that replays it.
fn summarize(
    seed: u64,
    opts: &RunOptions,
    report: &sim::run::RunReport,
    reproduce: &str,
) -> ExitCode {
    println!("seed {seed}{}", opts.flags());
    println!("operations by kind and outcome:");
    for ((kind, outcome), n) in report.outcomes() {
        println!("  {kind:<8} {outcome:<18} {n:>5}");
    }
    println!(
        "client attempts {} ({} failed and retried)",
        report.client.attempts, report.client.failed_attempts
    );
    println!("latency (simulated) and retries per operation:");
    print!(
        "{}",
        sim::latency::render(&sim::latency::of_history(&report.history))
    );
    print_counters(&report.counters());
    println!("messages {}", report.messages);
    println!("simulated time {:.3} s", report.sim_time_ns as f64 / 1e9);
    println!("wall time {:.1} ms", report.wall.as_secs_f64() * 1e3);
    if report.passed() {
        println!("verdict: PASS");
        return ExitCode::SUCCESS;
    }
    for f in report.failures() {
        match f.class {
            FailureClass::Violation => println!("verdict: FAIL ({})\n{}", f.check, f.report),
            _ => println!("verdict: FAIL ({}: {})", f.check, f.report),
        }
    }
    println!("reproduce: {reproduce}");
    failed_with(report.failures().iter().map(|f| f.class))
}

/// The exit code of a command that saw failures of these classes: that of the most severe.
fn failed_with(classes: impl IntoIterator<Item = FailureClass>) -> ExitCode {
    let worst = FailureClass::worst(classes).expect("called only on failures");
    ExitCode::from(worst.exit_code())
}

/// Validates a sweep's options and resolves its thread count.
fn sweep_jobs(jobs: Option<usize>, opts: &RunOptions) -> Result<usize, String> {
    opts.validate()?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 || jobs > 256 {
        return Err(format!("--jobs must be between 1 and 256, got {jobs}"));
    }
    Ok(jobs)
}

fn run_sweep(
    seeds: SeedSet,
    jobs: usize,
    opts: &RunOptions,
    json: Option<&std::path::Path>,
) -> ExitCode {
    if let Err(e) = writable(json) {
        return fail(&e);
    }
    let summary = sweep_with_progress(seeds, jobs, opts);
    let ran = if interrupted() {
        seeds.prefix(summary.seeds)
    } else {
        seeds
    };
    finish_sweep(ran, &summary, opts, json)
}

/// Set by Ctrl-C (SIGINT): sweeps stop taking seeds, finish those under way and report.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Makes Ctrl-C end a sweep early with its summary instead of losing it. A second Ctrl-C (or a
/// handler that cannot be installed) leaves the default: the process ends at once.
fn stop_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprintln!("interrupted: finishing the runs under way, then the summary (Ctrl-C again to quit now)");
    });
}

/// Prints a sweep's summary, writes its JSON result if asked, and picks the exit code.
fn finish_sweep(
    seeds: SeedSet,
    summary: &SweepSummary,
    opts: &RunOptions,
    json: Option<&std::path::Path>,
) -> ExitCode {
    print_summary(summary);
    if interrupted() {
        println!("interrupted: ran seeds {seeds} only");
    }
    if let Some(path) = json {
        if let Err(e) = write_json(path, &SweepResult::of(seeds, opts, summary)) {
            return fail(&e);
        }
    }
    if !summary.failures.is_empty() {
        failed_with(summary.failures.iter().map(|f| f.class))
    } else if interrupted() {
        ExitCode::from(130) // the shell's code for a process ended by SIGINT
    } else {
        ExitCode::SUCCESS
    }
}

/// `sim sweep --for DURATION`: seeds in order from `seeds`' start (or a starting seed from the
/// clock) until the time is up.
fn run_for(
    duration: Duration,
    seeds: Option<std::ops::Range<u64>>,
    jobs: usize,
    opts: &RunOptions,
    json: Option<&std::path::Path>,
) -> ExitCode {
    let range = seeds.unwrap_or_else(|| {
        // The one place a seed comes from outside: the wall clock picks where a nightly run
        // starts, and it is printed, so every seed it runs is still explicit and replayable.
        let now = std::time::SystemTime::now() // real time, outside the simulation: picks the start seed
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let start = now.wrapping_mul(1_000_003) % (1 << 48);
        start..u64::MAX
    });
    eprintln!(
        "sweeping for {} s from seed {} (repeat with --seeds {}..END)",
        duration.as_secs(),
        range.start,
        range.start
    );
    let until = std::time::Instant::now() + duration; // real time: the CLI's own deadline, outside the simulation
    let summary = sweep_with_progress_until(SeedSet::all(range.clone()), Some(until), jobs, opts);
    if interrupted() {
        eprintln!("interrupted before the time was up");
    }
    let ran = SeedSet::all(range.start..range.start + summary.seeds);
    println!("ran seeds {ran}");
    finish_sweep(ran, &summary, opts, json)
}

/// Checks that a result file can be written, before the work that fills it.
fn writable(json: Option<&std::path::Path>) -> Result<(), String> {
    match json {
        Some(path) => {
            std::fs::write(path, "").map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => Ok(()),
    }
}

/// Writes a result as pretty JSON and says where.
fn write_json(path: &std::path::Path, result: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(result).expect("results serialize");
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("result written to {}", path.display());
    Ok(())
}

/// How many failing seeds each check (or class) caught first: `failures by check: acked_readback
/// 3, divergence_explained 2`. Nothing when every seed passed.
fn print_failures_by_check(failures: &[sim::sweep::FailedSeed]) {
    let mut by: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for f in failures {
        *by.entry(f.check.as_str()).or_default() += 1;
    }
    if !by.is_empty() {
        let parts: Vec<String> = by.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!("failures by check: {}", parts.join(", "));
    }
}

/// `sim merge`: the shards' results as one report.
fn merge(files: &[std::path::PathBuf], json: Option<&std::path::Path>) -> ExitCode {
    let mut parts = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => return fail(&format!("cannot read {}: {e}", f.display())),
        };
        match serde_json::from_str::<SweepResult>(&text) {
            Ok(r) => parts.push(r),
            Err(e) => {
                return fail(&format!(
                    "{} is not a sweep result (sim sweep --json): {e}",
                    f.display()
                ))
            }
        }
    }
    let merged = match SweepResult::merge(parts) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let sets: Vec<String> = merged.seeds.iter().map(|s| s.to_string()).collect();
    println!("merged {} results: seeds {}", files.len(), sets.join(", "));
    for f in &merged.failures {
        println!(
            "FAIL seed {}: {}\n  reproduce: {}",
            f.seed, f.reason, f.command
        );
    }
    print_failures_by_check(&merged.failures);
    print_counters(&merged.counters);
    println!(
        "messages {}\nsimulated time {:.1} s, {:.1} s of wall time over all shards",
        merged.messages,
        merged.sim_time_ns as f64 / 1e9,
        merged.wall_seconds
    );
    println!("{} passed, {} failed", merged.passed, merged.failures.len());
    if let Some(path) = json {
        if let Err(e) = write_json(path, &merged) {
            return fail(&e);
        }
    }
    if merged.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        failed_with(merged.failures.iter().map(|f| f.class))
    }
}

fn table(
    seeds: std::ops::Range<u64>,
    jobs: usize,
    opts: &RunOptions,
    json: Option<&std::path::Path>,
) -> ExitCode {
    let set = SeedSet::all(seeds);
    let summary = sweep_with_progress(set, jobs, opts);
    if let Some(path) = json {
        if let Err(e) = write_json(path, &SweepResult::of(set, opts, &summary)) {
            return fail(&e);
        }
    }
    println!(
        "GFS Table 1 as observed over {} seeds (mutations per region state):",
        summary.seeds
    );
    print!("{}", sim::checks::table1::render(&summary.table1));
    if summary.table1_forbidden == 0 {
        println!("no mutation left a state the paper forbids");
    } else {
        println!(
            "{} mutations left a state the paper forbids",
            summary.table1_forbidden
        );
    }
    // A run that failed any check is reported too: the table counts only what runs reached.
    for f in &summary.failures {
        println!(
            "FAIL seed {}: {}\n  reproduce: {}",
            f.seed, f.reason, f.command
        );
    }
    if interrupted() {
        println!(
            "interrupted: the table counts the {} seeds that ran",
            summary.seeds
        );
    }
    if summary.failures.is_empty() && summary.table1_forbidden == 0 {
        if interrupted() {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        }
    } else {
        println!(
            "{} of {} seeds failed",
            summary.failures.len(),
            summary.seeds
        );
        // A forbidden state is a violation; failed runs may add a more severe class.
        let forbidden = (summary.table1_forbidden > 0).then_some(FailureClass::Violation);
        failed_with(summary.failures.iter().map(|f| f.class).chain(forbidden))
    }
}

/// Runs a sweep with a progress bar on a terminal, plain progress lines otherwise.
fn sweep_with_progress(seeds: SeedSet, jobs: usize, opts: &RunOptions) -> SweepSummary {
    eprintln!(
        "sweeping seeds {seeds} ({} seeds) on {jobs} threads{}",
        seeds.count(),
        opts.flags()
    );
    sweep_with_progress_until(seeds, None, jobs, opts)
}

/// [`sweep_with_progress`] that stops taking seeds at `until` (then the number of seeds is not
/// known ahead: progress counts up).
fn sweep_with_progress_until(
    seeds: SeedSet,
    until: Option<std::time::Instant>, // real time: when the CLI stops taking seeds, outside the simulation
    jobs: usize,
    opts: &RunOptions,
) -> SweepSummary {
    let total = if until.is_some() { 0 } else { seeds.count() };
    let stop = || interrupted() || until.is_some_and(|u| std::time::Instant::now() >= u); // real time, outside the simulation
    stop_on_interrupt();
    // Panics inside a run are caught and reported as that seed's failure; keep stderr readable.
    QUIET_PANICS.store(true, Ordering::Relaxed);
    let summary = if std::io::stderr().is_terminal() {
        let bar = if total > 0 {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} seeds  {per_sec}  eta {eta}  {msg}",
                )
                .expect("valid template"),
            );
            bar
        } else {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {pos} seeds  {per_sec}  {elapsed}  {msg}")
                    .expect("valid template"),
            );
            bar
        };
        let s = sweep_set_until(
            seeds,
            &stop,
            jobs,
            opts,
            |done, failed| {
                bar.set_position(done);
                if failed > 0 {
                    bar.set_message(format!("{failed} failed"));
                }
            },
            |f| bar.println(found_line(f)),
        );
        bar.finish_and_clear();
        s
    } else {
        // No terminal (CI): a plain line every tenth of the way (every 1,000 seeds when the
        // number is not known ahead).
        let step = if total > 0 {
            (total / 10).max(1)
        } else {
            1_000
        };
        sweep_set_until(
            seeds,
            &stop,
            jobs,
            opts,
            |done, failed| {
                if done % step == 0 || done == total {
                    if total > 0 {
                        eprintln!("progress: {done}/{total} seeds, {failed} failed");
                    } else {
                        eprintln!("progress: {done} seeds, {failed} failed");
                    }
                }
            },
            |f| eprintln!("{}", found_line(f)),
        )
    };
    QUIET_PANICS.store(false, Ordering::Relaxed);
    summary
}

/// A failure as the sweep finds it (on stderr; the summary on stdout lists them all again, in seed
/// order): an interrupted sweep loses none.
fn found_line(f: &sim::sweep::FailedSeed) -> String {
    format!("found: seed {} fails {}: {}", f.seed, f.check, f.command)
}

/// The fault table: how often each fault kind struck and each recovery path ran.
fn print_counters(counters: &std::collections::BTreeMap<String, u64>) {
    if counters.is_empty() {
        return;
    }
    println!(
        "faults injected, recoveries run, defensive paths reached (coverage), reads, records:"
    );
    let width = counters
        .keys()
        .map(|k| k.split_once(' ').map_or(k.len(), |(_, name)| name.len()))
        .max()
        .unwrap_or(0);
    for (k, n) in counters {
        let (group, name) = k.split_once(' ').unwrap_or(("", k));
        println!("  {group:<9} {name:<width$} {n:>8}");
    }
    let never: Vec<&str> = counters
        .iter()
        .filter(|(k, n)| **n == 0 && k.starts_with("coverage "))
        .map(|(k, _)| &k["coverage ".len()..])
        .collect();
    let lost_state_only = |name: &&str| {
        node::coverage::Probe::by_name(name)
            .is_some_and(|p| node::coverage::LOST_STATE_ONLY.contains(&p))
    };
    let (defences, reachable): (Vec<&str>, Vec<&str>) =
        never.into_iter().partition(lost_state_only);
    if !reachable.is_empty() {
        println!(
            "coverage: {} defensive paths never ran, so no check judged them: {}",
            reachable.len(),
            reachable.join("; ")
        );
    }
    if !defences.is_empty() {
        println!(
            "coverage: {} more never ran that only a disk losing synced state could reach (no \
             fault here does): {}",
            defences.len(),
            defences.join("; ")
        );
    }
}

fn print_summary(s: &SweepSummary) {
    println!("operations by kind and outcome:");
    for ((kind, outcome), n) in &s.outcomes {
        println!("  {kind:<8} {outcome:<18} {n:>8}");
    }
    println!("latency (simulated) and retries per operation:");
    print!("{}", sim::latency::render(&s.latency));
    print_counters(&s.counters);
    println!("messages {}", s.messages);
    println!(
        "simulated time {:.1} s in {:.1} s of wall time ({:.0}x)",
        s.sim_time_ns as f64 / 1e9,
        s.wall.as_secs_f64(),
        s.sim_time_ns as f64 / 1e9 / s.wall.as_secs_f64().max(1e-9)
    );
    for f in &s.failures {
        println!(
            "FAIL seed {}: {}\n  reproduce: {}",
            f.seed, f.reason, f.command
        );
    }
    print_failures_by_check(&s.failures);
    println!(
        "{} passed, {} failed ({:.1} seeds/s over {:.1} s)",
        s.passed,
        s.failures.len(),
        s.seeds_per_second(),
        s.wall.as_secs_f64()
    );
    let _ = Duration::ZERO;
}
