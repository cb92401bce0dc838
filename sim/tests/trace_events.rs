//! Message and disk events in full traces: they tell a consistent story, they are repeatable, and
//! recording them changes nothing about the run.

use node::trace::Detail;
use sim::options::RunOptions;
use sim::run::{run_seed, run_seed_detailed, RunReport};
use sim::trace::{field, lines, shown, Shown, TraceLine};
use std::collections::{BTreeMap, BTreeSet};

fn full(seed: u64) -> RunReport {
    run_seed_detailed(seed, &RunOptions::default(), Detail::Full)
}

fn history_text(r: &RunReport) -> Vec<String> {
    r.history.iter().map(sim::checks::describe).collect()
}

#[test]
fn full_detail_records_the_same_run_and_repeats_byte_for_byte() {
    // Default options: swarm faults, so crashes, partitions and lost messages are in the mix.
    for seed in 0..8 {
        let plain = run_seed(seed, &RunOptions::default());
        let a = full(seed);
        let b = full(seed);
        assert_eq!(a.record(), b.record(), "seed {seed}: full traces differ");
        let plain_lines = lines(&plain);
        assert!(
            plain_lines.iter().all(|l| Shown::of(&l.kind).is_none()),
            "seed {seed}: a protocol-detail run recorded messages or disk operations"
        );
        let full_lines = lines(&a);
        assert!(
            full_lines.iter().any(|l| l.kind == "msg_sent")
                && full_lines.iter().any(|l| l.kind == "disk_sync"),
            "seed {seed}: a full trace without messages or syncs"
        );
        // Without its message and disk lines, the full trace is the plain one, line for line.
        let protocol = shown(&full_lines, &[]);
        if let Some(i) = (0..plain_lines.len().max(protocol.len()))
            .find(|&i| plain_lines.get(i) != protocol.get(i))
        {
            panic!(
                "seed {seed}: detail changed the run at line {i}:\n  plain {:?}\n  full  {:?}",
                plain_lines.get(i),
                protocol.get(i)
            );
        }
        assert_eq!(history_text(&plain), history_text(&a), "seed {seed}");
        assert_eq!(
            (plain.messages, plain.sim_time_ns),
            (a.messages, a.sim_time_ns),
            "seed {seed}"
        );
    }
}

/// The message id of a message line.
fn msg(l: &TraceLine) -> String {
    field(&l.detail, "msg")
        .unwrap_or_else(|| panic!("no msg= in {l:?}"))
        .to_string()
}

#[test]
fn every_message_is_sent_before_it_is_delivered_answered_or_dropped() {
    let (mut dropped_request, mut dropped_reply) = (0, 0);
    for seed in 0..10 {
        let ls = lines(&full(seed));
        // id -> (sender, destination)
        let mut sent: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut delivered: BTreeSet<String> = BTreeSet::new();
        let mut settled: BTreeSet<String> = BTreeSet::new();
        for l in &ls {
            match l.kind.as_str() {
                "msg_sent" => {
                    let id = msg(l);
                    assert!(
                        id.starts_with(&format!("{}#", l.node)),
                        "seed {seed}: {l:?}"
                    );
                    let to = field(&l.detail, "to").unwrap().to_string();
                    assert!(
                        sent.insert(id, (l.node.clone(), to)).is_none(),
                        "seed {seed}: id reused: {l:?}"
                    );
                    assert!(
                        l.detail.len() < 400,
                        "seed {seed}: data in a message line? {l:?}"
                    );
                }
                "msg_delivered" => {
                    let id = msg(l);
                    let (from, to) = sent
                        .get(&id)
                        .unwrap_or_else(|| panic!("seed {seed}: delivered before sent: {l:?}"));
                    assert_eq!(field(&l.detail, "from"), Some(from.as_str()), "{l:?}");
                    assert_eq!(&l.node, to, "seed {seed}: delivered elsewhere: {l:?}");
                    delivered.insert(id);
                }
                "reply_delivered" | "msg_dropped" => {
                    let id = msg(l);
                    let (from, _) = sent
                        .get(&id)
                        .unwrap_or_else(|| panic!("seed {seed}: settled before sent: {l:?}"));
                    assert_eq!(&l.node, from, "seed {seed}: {l:?}");
                    assert!(
                        settled.insert(id.clone()),
                        "seed {seed}: settled twice: {l:?}"
                    );
                    let arrived = delivered.contains(&id);
                    match (l.kind.as_str(), field(&l.detail, "lost")) {
                        ("reply_delivered", None) => {
                            assert!(arrived, "seed {seed}: a reply to an undelivered {l:?}")
                        }
                        ("msg_dropped", Some("request")) => {
                            assert!(!arrived, "seed {seed}: {l:?} but it was delivered");
                            dropped_request += 1;
                        }
                        ("msg_dropped", Some("reply")) => {
                            assert!(arrived, "seed {seed}: {l:?} but it never arrived");
                            dropped_reply += 1;
                        }
                        _ => panic!("seed {seed}: unexpected {l:?}"),
                    }
                }
                _ => {}
            }
        }
        assert!(
            sent.len() > 100,
            "seed {seed}: only {} messages",
            sent.len()
        );
    }
    assert!(
        dropped_request > 0 && dropped_reply > 0,
        "faults over ten seeds lost no request ({dropped_request}) or no reply ({dropped_reply})"
    );
}

#[test]
fn an_isolated_primary_loses_the_requests_it_sends() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"));
    let loaded = sim::scenario::load(&dir.join("primary_partitioned.toml")).unwrap();
    let report = sim::scenario::run(&loaded);
    assert_eq!(report.detail, Detail::Full, "scenarios record everything");
    let ls = lines(&report);
    let fault = ls
        .iter()
        .find(|l| l.kind == "fault_injected" && field(&l.detail, "kind") == Some("isolate"))
        .expect("the scenario isolates a node");
    let node = field(&fault.detail, "node").unwrap().to_string();
    let healed = ls
        .iter()
        .find(|l| l.kind == "fault_healed" && l.t_ns > fault.t_ns)
        .expect("the isolation heals")
        .t_ns;
    let during = |l: &&TraceLine| l.t_ns > fault.t_ns && l.t_ns < healed;
    let sent_inside: BTreeSet<String> = ls
        .iter()
        .filter(during)
        .filter(|l| l.kind == "msg_sent" && l.node == node)
        .map(msg)
        .collect();
    assert!(
        !sent_inside.is_empty(),
        "{node} sent nothing while isolated"
    );
    let lost: Vec<&TraceLine> = ls
        .iter()
        .filter(|l| {
            l.kind == "msg_dropped"
                && field(&l.detail, "lost") == Some("request")
                && sent_inside.contains(&msg(l))
        })
        .collect();
    assert!(
        !lost.is_empty(),
        "no msg_dropped lost=request from {node} while it was isolated"
    );
    // None of what it sent while cut off arrived anywhere.
    for l in ls.iter().filter(|l| l.kind == "msg_delivered") {
        assert!(
            !sent_inside.contains(&msg(l)),
            "delivered from isolation: {l:?}"
        );
    }
}

#[test]
fn a_crash_loses_in_the_trace_exactly_the_unsynced_writes_it_counts() {
    // Frequent crashes, so some land while writes wait in a page cache.
    let crashy = RunOptions {
        faults: "crash".parse().unwrap(),
        rates: vec!["crash=5".parse().unwrap()],
        ..RunOptions::default()
    };
    let mut lost_somewhere = 0;
    for seed in 0..40 {
        let ls = lines(&run_seed_detailed(seed, &crashy, Detail::Full));
        for f in ls.iter().filter(|l| l.kind == "fault_injected") {
            let Some(n) = field(&f.detail, "unsynced_writes_lost") else {
                continue;
            };
            let n: u64 = n.parse().unwrap();
            let node = field(&f.detail, "node").unwrap();
            let traced: u64 = ls
                .iter()
                .filter(|l| {
                    l.kind == "disk_lost"
                        && l.t_ns == f.t_ns
                        && l.node == node
                        && field(&l.detail, "why") == Some("crash")
                })
                .map(|l| field(&l.detail, "writes").unwrap().parse::<u64>().unwrap())
                .sum();
            assert_eq!(traced, n, "seed {seed}: {f:?}");
            lost_somewhere += n;
        }
        // Every sync follows a write of its file on its node.
        let mut written = BTreeSet::new();
        for l in &ls {
            let file = || {
                (
                    l.node.clone(),
                    field(&l.detail, "file").unwrap().to_string(),
                )
            };
            match l.kind.as_str() {
                "disk_write" => {
                    written.insert(file());
                }
                "disk_sync" => assert!(written.contains(&file()), "seed {seed}: {l:?}"),
                _ => {}
            }
        }
    }
    assert!(lost_somewhere > 0, "no crash in 40 seeds lost a write");
}

#[test]
fn each_check_that_ran_says_whether_it_passed() {
    let ls = lines(&run_seed(5, &RunOptions::default()));
    let passed: Vec<&str> = ls
        .iter()
        .filter(|l| l.kind == "check_passed")
        .map(|l| field(&l.detail, "check").unwrap())
        .collect();
    let mut expected: Vec<&str> = sim::checks::NAMES.to_vec();
    expected.extend(["converged", "after_heal_ops_succeed"]);
    assert_eq!(passed, expected);
    assert!(!ls.iter().any(|l| l.kind == "check_failed"));
    // A found scenario fails its check: that check has a check_failed line, not a check_passed.
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/found"));
    let loaded = sim::scenario::load(&dir.join("seed-12-no_version_bump.toml")).unwrap();
    let failing = loaded.scenario.expect.fails.clone().unwrap();
    let ls = lines(&sim::scenario::run(&loaded));
    let verdict = |kind: &str| {
        ls.iter()
            .any(|l| l.kind == kind && field(&l.detail, "check") == Some(failing.as_str()))
    };
    assert!(
        verdict("check_failed") && !verdict("check_passed"),
        "{failing}"
    );
    assert!(ls.iter().any(|l| l.kind == "check_passed"));
}
