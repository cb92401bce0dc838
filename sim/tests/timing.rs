//! Timing options never make a correct cluster fail a check: a grid of heartbeat, lease, RPC
//! timeout and disk latency values, small ones included, passes with and without faults, and
//! values that cannot work are refused before a run starts, with the flag named.

use sim::options::{max_disk_latency_us, min_lease_ms, min_rpc_timeout_ms, RunOptions};
use sim::sweep::sweep;

fn timing(
    heartbeat_ms: u64,
    lease_ms: u64,
    rpc_timeout_ms: u64,
    disk_latency_us: u64,
) -> RunOptions {
    RunOptions {
        heartbeat_ms,
        lease_ms,
        rpc_timeout_ms,
        disk_latency_us,
        ..RunOptions::default()
    }
}

#[test]
fn a_grid_of_timing_options_passes_with_and_without_faults() {
    let d = RunOptions::default();
    let rpc_min = min_rpc_timeout_ms(d.replication);
    let disk_max = max_disk_latency_us(rpc_min);
    let grid = [
        // Each option at its extremes, the others at their defaults.
        timing(1, d.lease_ms, d.rpc_timeout_ms, d.disk_latency_us),
        timing(2_000, d.lease_ms, d.rpc_timeout_ms, d.disk_latency_us),
        timing(
            d.heartbeat_ms,
            min_lease_ms(d.rpc_timeout_ms, d.disk_latency_us),
            d.rpc_timeout_ms,
            d.disk_latency_us,
        ),
        timing(d.heartbeat_ms, 20_000, d.rpc_timeout_ms, d.disk_latency_us),
        timing(d.heartbeat_ms, d.lease_ms, rpc_min, d.disk_latency_us),
        timing(d.heartbeat_ms, d.lease_ms, 2_000, d.disk_latency_us),
        timing(d.heartbeat_ms, d.lease_ms, d.rpc_timeout_ms, 0),
        timing(d.heartbeat_ms, d.lease_ms, d.rpc_timeout_ms, 100_000),
        // Everything as small, or as slow, as allowed at once.
        timing(1, min_lease_ms(rpc_min, disk_max), rpc_min, disk_max),
        timing(5, 200, rpc_min, 0),
    ];
    for opts in grid {
        opts.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", opts.flags()));
        for faults in ["none", "swarm"] {
            let o = RunOptions {
                faults: faults.parse().unwrap(),
                ..opts.clone()
            };
            let s = sweep(0..20, 2, &o, |_, _| {});
            assert!(
                s.failures.is_empty(),
                "{}: {} of 20 seeds failed:\n{}",
                o.flags(),
                s.failures.len(),
                s.failure_report()
            );
        }
    }
}

#[test]
fn timing_values_that_cannot_work_are_refused_naming_the_flag() {
    let d = RunOptions::default();
    let rpc_min = min_rpc_timeout_ms(d.replication);
    let cases = [
        (
            timing(d.heartbeat_ms, d.lease_ms, rpc_min - 1, 0),
            "--rpc-timeout-ms",
        ),
        (
            timing(
                d.heartbeat_ms,
                d.lease_ms,
                d.rpc_timeout_ms,
                max_disk_latency_us(d.rpc_timeout_ms) + 1,
            ),
            "--disk-latency-us",
        ),
        (
            timing(
                d.heartbeat_ms,
                min_lease_ms(d.rpc_timeout_ms, d.disk_latency_us) - 1,
                d.rpc_timeout_ms,
                d.disk_latency_us,
            ),
            "--lease-ms",
        ),
        (
            timing(0, d.lease_ms, d.rpc_timeout_ms, d.disk_latency_us),
            "--heartbeat-ms",
        ),
        (
            timing(60_001, d.lease_ms, d.rpc_timeout_ms, d.disk_latency_us),
            "--heartbeat-ms",
        ),
    ];
    for (opts, flag) in cases {
        let err = opts.validate().expect_err(flag);
        assert!(err.starts_with(flag), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A slower disk needs a longer lease: the lease bound follows it.
    assert!(min_lease_ms(300, 130_000) > min_lease_ms(300, 500));
}
