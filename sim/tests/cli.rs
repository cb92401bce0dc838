//! The `sim` command: clear one-line errors and a non-zero exit for bad input, a verdict otherwise.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("sim runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_input_gets_a_one_line_error_and_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["sweep", "--seeds", "5..3"], "is empty"),
        (&["sweep", "--seeds", "abc"], "must look like A..B"),
        (&["sweep", "--seeds", "0..x"], "not a non-negative integer"),
        (&["sweep", "--seeds", "0..10", "--jobs", "0"], "--jobs"),
        (
            &["sweep", "--seeds", "0..10", "--shard", "3/3"],
            "index 3 is not below the number of shards 3",
        ),
        (
            &["sweep", "--seeds", "0..10", "--shard", "1"],
            "must look like K/N",
        ),
        (
            &[
                "sweep",
                "--seeds",
                "0..1",
                "--json",
                "/nonexistent/dir/r.json",
            ],
            "cannot write /nonexistent/dir/r.json",
        ),
        (
            &["merge", "/nonexistent.json"],
            "cannot read /nonexistent.json",
        ),
        (&["sweep", "--for", "10"], "unknown unit"),
        (
            &["sweep", "--for", "0s"],
            "must be a positive number and a unit",
        ),
        (&["table", "--seeds", "7..7"], "is empty"),
        (
            &["table", "--seeds", "0..5", "--replication", "9"],
            "--replication must be between 1 and 5, got 9",
        ),
        (
            &["run", "--seed", "1", "--replication", "9"],
            "--replication must be between 1 and 5, got 9",
        ),
        (
            &["run", "--seed", "1", "--chunk-size", "0"],
            "--chunk-size must be between 8 and 67108864, got 0",
        ),
        (
            &["run", "--seed", "1", "--block-size", "100"],
            "--block-size must be between 1 and 64, got 100",
        ),
        (
            &["run", "--seed", "1", "--lease-ms", "1"],
            "--lease-ms must be between 200 and 600000, got 1",
        ),
        (
            &["run", "--seed", "1", "--rpc-timeout-ms", "10"],
            "--rpc-timeout-ms must be between 80 and 60000",
        ),
        (
            &["run", "--seed", "1", "--heartbeat-ms", "100000"],
            "--heartbeat-ms must be between 1 and 60000",
        ),
        (
            &[
                "run",
                "--seed",
                "1",
                "--heartbeat-ms",
                "3689348814741910324",
            ],
            "--heartbeat-ms must be between 1 and 60000",
        ),
        (
            &["run", "--seed", "1", "--disk-latency-us", "1000000"],
            "--disk-latency-us must be between 0 and 130000",
        ),
        (
            &["run", "--seed", "1", "--ops", "100000"],
            "--ops must be between 0 and 10000",
        ),
        (
            &[
                "run",
                "--seed",
                "1",
                "--faults",
                "partition",
                "--rate",
                "crash=5",
            ],
            "--rate crash=5: crash is not among --faults partition",
        ),
        (
            &[
                "run",
                "--seed",
                "1",
                "--replication",
                "1",
                "--faults",
                "bit_flip",
            ],
            "--faults bit_flip needs --replication 2 or more",
        ),
        (
            &["run", "--seed", "1", "--faults", ""],
            "write none for no faults",
        ),
        (&["run", "--seed", "-4"], "error"),
        (&["frobnicate"], "error"),
        (
            &["explore", "happy_path", "--depth", "3"],
            "--depth must be 1 or 2, got 3",
        ),
        (
            &["explore", "happy_path", "--max-schedules", "0"],
            "--max-schedules must be at least 1",
        ),
        (&["explore", "no_such_scenario"], "no scenario named"),
        (&["coverage", "--seeds", "5..3"], "is empty"),
    ];
    for (args, expected) in cases {
        let out = sim(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let first_error_lines = err.lines().filter(|l| l.starts_with("error")).count();
        assert_eq!(first_error_lines, 1, "{args:?}: {err}");
    }
}

#[test]
fn run_prints_a_summary_and_a_verdict() {
    let out = sim(&["run", "--seed", "5"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for part in [
        "operations by kind and outcome",
        "messages",
        "simulated time",
        "wall time",
        "verdict: PASS",
    ] {
        assert!(stdout.contains(part), "missing {part:?} in:\n{stdout}");
    }
}

#[test]
fn sweep_reports_counts_and_speed_without_a_terminal() {
    let out = sim(&[
        "sweep",
        "--seeds",
        "0..40",
        "--jobs",
        "2",
        "--chunk-size",
        "32",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("40 passed, 0 failed"), "{stdout}");
    // Stale reads are counted for the report, next to every successful read.
    assert!(
        stdout.contains("reads     stale (allowed, GFS §2.7.1)"),
        "{stdout}"
    );
    assert!(stdout.contains("reads     successful"), "{stdout}");
    assert!(stdout.contains("seeds/s"), "{stdout}");
    // No terminal here: progress comes as plain lines, not a redrawn bar.
    assert!(
        stderr.contains("progress: 40/40 seeds, 0 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--chunk-size 32"),
        "the options are echoed: {stderr}"
    );
}

#[test]
fn the_printed_command_reproduces_the_run_options_included() {
    use sim::options::RunOptions;
    let opts = RunOptions {
        chunk_size_bytes: 32,
        block_size_bytes: 8,
        clients: 4,
        faults: "crash,partition".parse().unwrap(),
        rates: vec!["crash=2".parse().unwrap()],
        ..RunOptions::default()
    };
    let report = sim::run::run_seed(17, &opts);
    let command = opts.reproduce_command(17);
    let args: Vec<&str> = command
        .split(" -- ")
        .nth(1)
        .expect("a cargo run command")
        .split(' ')
        .collect();
    let out = sim(&args);
    let stdout = text(&out.stdout);
    // The replayed run has the same operations, messages and simulated time.
    assert!(
        stdout.contains(&format!("messages {}\n", report.messages)),
        "{command}\n{stdout}"
    );
    let sim_s = format!("simulated time {:.3} s", report.sim_time_ns as f64 / 1e9);
    assert!(stdout.contains(&sim_s), "{command}\n{stdout}");
    for ((kind, outcome), n) in report.outcomes() {
        let line = format!("  {kind:<8} {outcome:<18} {n:>5}");
        assert!(stdout.contains(&line), "missing {line:?} in\n{stdout}");
    }
}

#[test]
fn replay_writes_a_trace_and_diff_compares_two() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-replay-test-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let out = sim(&["replay", "11", "--out", d]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // The header: client columns are named downwards (`c` over `0`), then the field names.
    let header: Vec<&str> = stdout.lines().take(2).collect();
    assert!(
        header[0].trim() == "c c c" && header[1].contains("time (ms)   M 0 1 2 3 4 0 1 2 K N"),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    let first = dir.join("seed-11.jsonl");
    let copy = dir.join("copy.jsonl");
    std::fs::copy(&first, &copy).unwrap();
    let again = sim(&["replay", "11", "--out", d]);
    assert!(again.status.success());
    let same = sim(&["diff", first.to_str().unwrap(), copy.to_str().unwrap()]);
    assert!(same.status.success(), "{}", text(&same.stdout));
    assert!(text(&same.stdout).starts_with("identical"));
    // The file says what it is a trace of, and how to make it again.
    let meta: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&first)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["meta"]["seed"], 11);
    assert_eq!(
        meta["meta"]["replay"],
        "cargo run --release -p sim -- replay 11"
    );
    let faultless = dir.join("faultless");
    let f = faultless.to_str().unwrap();
    assert!(sim(&["replay", "11", "--faults", "none", "--out", f])
        .status
        .success());
    let text_of = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let first_line = |p: &std::path::Path| text_of(p).lines().next().unwrap().to_string();
    assert!(
        first_line(&faultless.join("seed-11.jsonl")).contains("\"options\":\"--faults none\""),
        "{}",
        first_line(&faultless.join("seed-11.jsonl"))
    );
    let other = dir.join("seed-12.jsonl");
    assert!(sim(&["replay", "12", "--out", d]).status.success());
    let differ = sim(&["diff", first.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(differ.status.code(), Some(1));
    assert!(text(&differ.stdout).contains("first difference at line"));
    // Byte-exact: a trace that lost its final newline is not "identical".
    let cut = dir.join("cut.jsonl");
    let whole = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&cut, whole.trim_end_matches('\n')).unwrap();
    let cut_diff = sim(&["diff", first.to_str().unwrap(), cut.to_str().unwrap()]);
    assert_eq!(
        cut_diff.status.code(),
        Some(1),
        "{}",
        text(&cut_diff.stdout)
    );
    assert!(
        text(&cut_diff.stdout).contains("newline"),
        "{}",
        text(&cut_diff.stdout)
    );
    let missing = sim(&["diff", "/no/such/trace", first.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read trace /no/such/trace"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_seed_of_a_broken_build_replays_to_the_same_verdict_and_trace() {
    // The sweep prints the failing seed's command with its switches; replay runs it twice.
    let sweep = sim(&[
        "sweep",
        "--seeds",
        "0..20",
        "--jobs",
        "2",
        "--bug",
        "no_version_bump",
    ]);
    assert_eq!(sweep.status.code(), Some(1));
    let stdout = text(&sweep.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL seed "))
        .expect("a failing seed");
    let seed = line["FAIL seed ".len()..]
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let reason = line.split(": ").nth(1).unwrap().to_string();
    assert!(
        stdout.contains(&format!("run --seed {seed} --bug no_version_bump")),
        "{stdout}"
    );
    let dir = std::env::temp_dir().join(format!("gfs-sim-broken-{}", std::process::id()));
    let mut traces = Vec::new();
    for round in 0..2 {
        let out_dir = dir.join(round.to_string());
        let out = sim(&[
            "replay",
            &seed,
            "--bug",
            "no_version_bump",
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "the replay fails too");
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!("verdict: FAIL ({reason})")),
            "{reason}\n{stdout}"
        );
        traces.push(std::fs::read_to_string(out_dir.join(format!("seed-{seed}.jsonl"))).unwrap());
    }
    assert_eq!(traces[0], traces[1], "byte-identical traces");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn table_prints_gfs_table_1_and_fails_on_a_forbidden_state() {
    let out = sim(&["table", "--seeds", "0..20", "--jobs", "1"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for row in [
        "| serial success |",
        "| concurrent successes |",
        "| failure |",
    ] {
        assert!(stdout.contains(row), "{stdout}");
    }
    assert!(stdout.contains("defined "), "{stdout}");
    // Secondaries applying in arrival order split replicas under concurrent writers (seed 8).
    let args = ["table", "--seeds", "8..9", "--faults", "none"];
    let out = sim(&[&args[..], &["--bug", "arrival_order"]].concat());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| concurrent successes |"))
        .unwrap_or_default();
    assert!(row.contains("inconsistent 2"), "{stdout}");
    assert!(stdout.contains("FAIL seed 8: "), "{stdout}");
    assert!(
        stdout.contains("2 mutations left a state the paper forbids"),
        "{stdout}"
    );
    // Every failing run is reported, whichever check caught it (not only table1's).
    let out = sim(&["table", "--seeds", "0..3", "--bug", "early_lease"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL seed 0: single_primary"), "{stdout}");
    assert!(stdout.contains("3 of 3 seeds failed"), "{stdout}");
}

#[test]
fn replay_shows_messages_and_disk_only_when_asked_but_always_writes_them() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-show-test-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let out = sim(&["replay", "7", "--out", d]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let jsonl = std::fs::read_to_string(dir.join("seed-7.jsonl")).unwrap();
    let in_file = |kind: &str| jsonl.matches(&format!("\"kind\":\"{kind}\"")).count();
    assert!(in_file("msg_sent") > 0 && in_file("disk_write") > 0);
    assert!(!stdout.contains(" msg_sent ") && !stdout.contains(" disk_write "));
    assert!(stdout.contains(" check_passed "), "{stdout}");
    let messages = [
        "msg_sent",
        "msg_delivered",
        "reply_delivered",
        "msg_dropped",
    ];
    let n: usize = messages.iter().map(|k| in_file(k)).sum();
    assert!(
        stdout.contains(&format!("not shown: {n} message lines, "))
            && stdout.contains("(see them with --show messages,disk)"),
        "{stdout}"
    );
    let out = sim(&["replay", "7", "--out", d, "--show", "messages"]);
    let shown = text(&out.stdout);
    assert!(out.status.success());
    assert_eq!(shown.matches(" msg_sent ").count(), in_file("msg_sent"));
    assert!(!shown.contains(" disk_write "));
    assert!(shown.contains("(see them with --show disk)"), "{shown}");
    // The flag changes the printing, not the run: the file is the same.
    assert_eq!(
        std::fs::read_to_string(dir.join("seed-7.jsonl")).unwrap(),
        jsonl
    );
    let bad = sim(&["replay", "7", "--out", d, "--show", "packets"]);
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    // `sim run --seed 1 --events ... | head -1`: stdout closes after one line (of 190 KB, more than
    // a pipe holds, so the writer does meet the closed pipe).
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "run",
            "--seed",
            "1",
            "--events",
            "--clients",
            "20",
            "--ops",
            "40",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sim runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("chunkserver_started"), "{first}");
    // The reader is gone now (its end of the pipe dropped with the BufReader).
    let out = child.wait_with_output().expect("sim ends");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn version_and_one_seed_syntax() {
    let out = sim(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("sim {}", env!("CARGO_PKG_VERSION"))
    );
    // `run` takes its seed as `replay` and `shrink` do, and as reproduce lines print it.
    let without_wall = |o: &Output| {
        text(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("wall time"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let positional = sim(&["run", "3", "--faults", "none"]);
    let flag = sim(&["run", "--seed", "3", "--faults", "none"]);
    assert!(positional.status.success() && flag.status.success());
    assert_eq!(without_wall(&positional), without_wall(&flag));
    assert!(without_wall(&positional).starts_with("seed 3"));
    let both = sim(&["run", "3", "--seed", "4"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
}

#[test]
fn shrink_does_not_replace_a_scenario_without_force() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-shrink-force-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("seed-0-early_lease.toml");
    std::fs::write(&file, "# mine\n").unwrap();
    let d = dir.to_str().unwrap();
    let refused = sim(&["shrink", "0", "--bug", "early_lease", "--out", d]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("--force"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# mine\n",
        "untouched"
    );
    let forced = sim(&["shrink", "0", "--bug", "early_lease", "--out", d, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("early_lease"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scenario_prints_the_command_that_replays_the_scenario() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");
    let out = sim(&["scenario", "found/seed-0-early_lease", "--dir", dir]);
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("reproduce: "))
        .unwrap_or_else(|| panic!("no reproduce line: {stdout}"));
    let args: Vec<&str> = line
        .split(" -- ")
        .nth(1)
        .expect("cargo run ... -- ARGS")
        .split_whitespace()
        .collect();
    assert_eq!(
        args,
        ["scenario", "found/seed-0-early_lease", "--dir", dir],
        "{line}"
    );
    let again = sim(&args);
    let verdict = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("verdict:"))
            .map(str::to_owned)
    };
    assert_eq!(verdict(&text(&again.stdout)), verdict(&stdout));
    assert!(
        verdict(&stdout).unwrap().contains("single_primary"),
        "{stdout}"
    );
}

#[test]
fn scenarios_are_found_from_a_directory_below_the_repository_root() {
    // `cargo test` and `cargo run` from `sim/` start there; the scenarios live one level up.
    let below = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["scenario", "happy_path"])
        .current_dir(below)
        .output()
        .expect("sim runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("every expectation held"));
    // Outside any repository, the error says where it looked.
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["scenario", "happy_path"])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("sim runs");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("there is no directory scenarios"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_sweep_shows_each_failure_as_it_finds_it() {
    // A sweep stopped early (here killed once it has found two) has already shown them. (Short
    // enough that, were failures shown only at the end, it would end with none shown, and fail.)
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "sweep",
            "--seeds",
            "0..300",
            "--jobs",
            "1",
            "--bug",
            "early_lease",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sim runs");
    let mut found = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("found: ") {
            found.push(line);
            if found.len() == 2 {
                break;
            }
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("found: seed 0 fails single_primary: cargo run"),
        "{found:?}"
    );
    assert!(
        found[0].ends_with("run --seed 0 --bug early_lease"),
        "{found:?}"
    );
}

#[test]
fn exit_codes_follow_the_most_severe_failure_class() {
    // Seed 422 of stale_replicas_current fails only liveness; seed 421 violates checks. (Seeds 46
    // and 47 did too, until `copies_prompt` and then `placement_spread`'s judging of trims saw
    // the master act on a stale replica it counted as current.)
    let code = |args: &[&str]| sim(args).status.code();
    assert_eq!(
        code(&["run", "422", "--bug", "stale_replicas_current"]),
        Some(3)
    );
    assert_eq!(code(&["run", "0", "--bug", "early_lease"]), Some(1));
    assert_eq!(code(&["run", "0", "--faults", "none"]), Some(0));
    let sweep = |range: &str| code(&["sweep", "--seeds", range, "--bug", "stale_replicas_current"]);
    assert_eq!(sweep("422..423"), Some(3), "liveness alone");
    assert_eq!(sweep("420..423"), Some(1), "a violation outranks liveness");
    assert_eq!(code(&["run", "--replication", "9"]), Some(2), "bad input");
}

#[test]
fn sweep_takes_its_seeds_from_madsims_variables_when_not_given() {
    let sweep = |env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sim"));
        c.args(["sweep", "--faults", "none", "--ops", "2"])
            .env_remove("MADSIM_TEST_SEED")
            .env_remove("MADSIM_TEST_NUM");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("sim runs")
    };
    let out = sweep(&[("MADSIM_TEST_SEED", "5"), ("MADSIM_TEST_NUM", "3")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("sweeping seeds 5..8"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("3 passed"),
        "{}",
        text(&out.stdout)
    );
    let one = sweep(&[("MADSIM_TEST_SEED", "7")]);
    assert!(text(&one.stderr).contains("sweeping seeds 7..8"));
    for (env, says) in [
        (&[][..], "needs --seeds"),
        (&[("MADSIM_TEST_SEED", "x")][..], "MADSIM_TEST_SEED=\"x\""),
        (
            &[("MADSIM_TEST_SEED", "1"), ("MADSIM_TEST_NUM", "0")][..],
            "runs no seed",
        ),
    ] {
        let out = sweep(env);
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
}

#[test]
fn sharded_sweeps_merge_into_the_failures_of_one_sweep() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let sweep = |extra: &[&str], out: &str| {
        let mut args = vec![
            "sweep",
            "--seeds",
            "0..60",
            "--bug",
            "hidden_unreadable",
            "--json",
            out,
        ];
        args.extend_from_slice(extra);
        let o = sim(&args);
        // Each part, like the whole, exits with its failures' class (1: a violation).
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    };
    let whole = path("whole.json");
    sweep(&[], &whole);
    let parts: Vec<String> = (0..3).map(|k| path(&format!("part{k}.json"))).collect();
    for (k, p) in parts.iter().enumerate() {
        sweep(&["--shard", &format!("{k}/3")], p);
    }
    let merged = path("merged.json");
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(String::as_str));
    args.extend(["--json", &merged]);
    let o = sim(&args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("FAIL seed "),
        "{}",
        text(&o.stdout)
    );
    // Failures are counted per check, here all by the one check that sees this bug.
    assert!(
        text(&o.stdout).contains("failures by check: deleted_readable "),
        "{}",
        text(&o.stdout)
    );
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (whole, merged) = (read(&whole), read(&merged));
    assert!(!whole["failures"].as_array().unwrap().is_empty());
    // Exactly the same failures, reproduce commands included, and the same totals.
    for key in [
        "failures", "ran", "passed", "counters", "outcomes", "messages", "options",
    ] {
        assert_eq!(whole[key], merged[key], "{key}");
    }
    // Overlapping parts, or parts of different options, are refused in one line.
    let o = sim(&["merge", &parts[0], &path("whole.json")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("share seeds"),
        "{}",
        text(&o.stderr)
    );
    let other = path("other.json");
    let o = sim(&["sweep", "--seeds", "60..61", "--json", &other]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = sim(&["merge", &parts[0], &other]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("different options"),
        "{}",
        text(&o.stderr)
    );
    // The shard index can come from a batch runner's environment.
    let o = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["sweep", "--seeds", "0..10", "--shard", "auto/4"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(
        text(&o.stderr).contains("seeds 0..10 shard 1/4 (3 seeds)"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_timed_sweep_runs_seeds_in_order_until_its_time_is_up() {
    let out = std::env::temp_dir().join(format!("gfs-sim-for-{}.json", std::process::id()));
    let out = out.to_string_lossy().into_owned();
    let o = sim(&[
        "sweep",
        "--for",
        "1s",
        "--seeds",
        "100..1000000",
        "--json",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ran = result["ran"].as_u64().unwrap();
    // Some seeds ran, far fewer than the range, and the result names exactly those.
    assert!(ran > 0 && ran < 100_000, "{ran}");
    assert_eq!(result["seeds"][0]["start"], 100);
    assert_eq!(result["seeds"][0]["end"].as_u64(), Some(100 + ran));
    assert!(
        text(&o.stdout).contains(&format!("ran seeds 100..{}", 100 + ran)),
        "{}",
        text(&o.stdout)
    );
    let _ = std::fs::remove_file(&out);
}

#[test]
fn hunt_and_table_write_json_results() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hunt = dir.join("hunt.json").to_string_lossy().into_owned();
    let o = sim(&[
        "hunt",
        "--bug",
        "short_pad",
        "--seeds",
        "0..20",
        "--json",
        &hunt,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hunt).unwrap()).unwrap();
    assert_eq!(h["found"]["check"], "padding_whole");
    assert_eq!(h["found"]["class"], "violation");
    assert_eq!(
        h["tried"].as_u64(),
        h["found"]["seed"].as_u64().map(|s| s + 1)
    );
    assert!(h["found"]["command"]
        .as_str()
        .unwrap()
        .contains("--bug short_pad"));
    let table = dir.join("table.json").to_string_lossy().into_owned();
    let o = sim(&["table", "--seeds", "0..10", "--json", &table]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&table).unwrap()).unwrap();
    assert_eq!(t["ran"], 10);
    assert_eq!(t["table1_forbidden"], 0);
    let defined = t["table1"]["serial success | write | defined"]
        .as_u64()
        .unwrap_or(0);
    assert!(defined > 0, "{}", t["table1"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completion_scripts_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let o = sim(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o.stderr));
        let script = text(&o.stdout);
        for word in ["sweep", "merge", "--shard", "--bug", "--json"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let o = sim(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn ctrl_c_ends_a_sweep_with_the_summary_of_the_seeds_that_ran() {
    let child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["sweep", "--seeds", "0..100000000", "--jobs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sim starts");
    // Real time, outside any simulation: let it run a few seeds first.
    std::thread::sleep(std::time::Duration::from_millis(1500)); // real time, not simulated

    // The shell's own `kill`, present wherever `sh` is.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("sh runs");
    assert!(killed.success());
    let out = child.wait_with_output().expect("sim ends");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}{}",
        text(&out.stderr)
    );
    let ran = stdout
        .lines()
        .find_map(|l| l.strip_prefix("interrupted: ran seeds 0.."))
        .and_then(|l| l.strip_suffix(" only"))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no interruption line: {stdout}"));
    assert!(ran > 0, "{stdout}");
    assert!(
        stdout.contains(&format!("{ran} passed, 0 failed")),
        "{stdout}"
    );
}

#[test]
fn bare_sim_prints_its_help() {
    let o = sim(&[]);
    assert_eq!(o.status.code(), Some(2));
    let out = text(&o.stdout);
    assert!(
        out.contains("Usage: sim") && out.contains("sweep") && out.contains("Exit codes"),
        "{out}"
    );
}

#[test]
fn explore_writes_what_it_finds_and_stops_at_its_bound_and_coverage_lists_every_probe() {
    let out_dir = std::env::temp_dir().join(format!("sim-explore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = sim(&[
        "explore",
        "happy_path",
        "--bug",
        "unsynced_log",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("fault points reached in the safety phase"),
        "{stdout}"
    );
    assert!(
        stdout.contains("acked_creates: crash master at `master sends"),
        "{stdout}"
    );
    assert!(stdout.contains("coverage probes over the"), "{stdout}");
    let written = out_dir.join("explore-happy_path-unsynced_log-acked_creates.toml");
    let scenario = std::fs::read_to_string(&written).unwrap();
    assert!(scenario.contains("at_point = \"master sends"), "{scenario}");
    assert!(out_dir
        .join("explore-happy_path-unsynced_log-acked_creates.timeline.txt")
        .is_file());
    // Every failing schedule is written, the next ones of a check numbered.
    let failing = stdout.matches("acked_creates: crash").count();
    assert!(failing > 1, "{stdout}");
    assert!(out_dir
        .join(format!(
            "explore-happy_path-unsynced_log-acked_creates-{failing}.toml"
        ))
        .is_file());
    // The written scenario replays to the same failure, as `sim scenario` reads it.
    let again = sim(&["scenario", written.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    std::fs::remove_dir_all(&out_dir).unwrap();

    let bounded = sim(&["explore", "happy_path", "--max-schedules", "5"]);
    let stdout = text(&bounded.stdout);
    assert_eq!(bounded.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("schedules: 5 run"), "{stdout}");
    assert!(stdout.contains("stopped at the bound:"), "{stdout}");

    let coverage = sim(&["coverage", "--seeds", "0..20"]);
    let stdout = text(&coverage.stdout);
    assert_eq!(coverage.status.code(), Some(0), "{stdout}");
    for probe in node::coverage::Probe::ALL {
        assert!(stdout.contains(probe.name()), "{probe:?}: {stdout}");
    }
}
