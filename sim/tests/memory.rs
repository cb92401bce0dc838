//! A sweep's memory stays flat however many seeds it runs: a run leaves nothing behind. (It used
//! to grow by about a quarter of a megabyte per seed: tasks killed by nobody kept every node's
//! state alive after its runtime was gone.) Its own test binary, so no other test's memory counts.

use sim::options::RunOptions;
use sim::sweep::sweep;

/// This process's resident memory, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn memory_after_warm_up_does_not_grow_with_the_seeds_swept() {
    let opts = RunOptions::default();
    let warm = sweep(0..100, 2, &opts, |_, _| {});
    assert!(warm.failures.is_empty(), "{}", warm.failure_report());
    let before = rss_kib();
    let s = sweep(100..700, 2, &opts, |_, _| {});
    assert!(s.failures.is_empty(), "{}", s.failure_report());
    let after = rss_kib();
    let grown = after.saturating_sub(before);
    // 600 seeds at the old quarter megabyte each would be 150 MB.
    assert!(
        grown < 16 * 1024,
        "memory grew by {grown} KiB over 600 seeds ({before} -> {after} KiB)"
    );
}
