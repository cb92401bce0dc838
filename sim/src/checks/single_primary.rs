//! Check `single_primary`: at most one chunkserver believes it is a chunk's primary at any
//! simulated instant.
//!
//! Must always hold. GFS §3.1: the master grants a lease to one replica at a time and waits for
//! it to expire before granting another; this is what makes the primary's serial order the only
//! order. The check rebuilds, from the chunkservers' own lease events, the interval during which
//! each believed it held the lease: from `lease_acquired` to its expiry (moved by
//! `lease_extended`), cut short when the lease is revoked or the node crashes. Two intervals of
//! different servers on one chunk must not overlap.

use super::{field, Violation};
use node::trace::Event;
use std::collections::BTreeMap;
use std::fmt::Write;

pub const NAME: &str = "single_primary";

#[derive(Debug, Clone, Copy)]
struct Held {
    server_event: usize,
    start_ns: u64,
    end_ns: u64,
    version: u64,
}

pub fn check(events: &[Event]) -> Option<Violation> {
    // (chunk, server) -> intervals, the last one possibly still open.
    let mut held: BTreeMap<(String, String), Vec<Held>> = BTreeMap::new();
    let cut = |held: &mut BTreeMap<(String, String), Vec<Held>>,
               server: &str,
               chunk: Option<&str>,
               t: u64| {
        for ((c, s), list) in held.iter_mut() {
            if s == server && chunk.is_none_or(|ch| ch == c) {
                if let Some(last) = list.last_mut() {
                    last.end_ns = last.end_ns.min(t);
                }
            }
        }
    };
    for (i, e) in events.iter().enumerate() {
        let num = |k: &str| field(&e.detail, k).and_then(|v| v.parse::<u64>().ok());
        match e.kind {
            "lease_acquired" => {
                let (Some(chunk), Some(until), Some(version)) =
                    (field(&e.detail, "chunk"), num("until_ns"), num("version"))
                else {
                    continue;
                };
                let h = Held {
                    server_event: i,
                    start_ns: e.time_ns,
                    end_ns: until,
                    version,
                };
                held.entry((chunk.to_string(), e.node.clone()))
                    .or_default()
                    .push(h);
            }
            "lease_extended" => {
                let (Some(chunk), Some(until), Some(version)) =
                    (field(&e.detail, "chunk"), num("until_ns"), num("version"))
                else {
                    continue;
                };
                if let Some(last) = held
                    .get_mut(&(chunk.to_string(), e.node.clone()))
                    .and_then(|l| l.last_mut())
                {
                    if last.version == version && last.end_ns > e.time_ns {
                        last.end_ns = last.end_ns.max(until);
                    }
                }
            }
            "lease_released" | "replica_deleted" => {
                cut(&mut held, &e.node, field(&e.detail, "chunk"), e.time_ns)
            }
            "version_set" if field(&e.detail, "role") == Some("secondary") => {
                cut(&mut held, &e.node, field(&e.detail, "chunk"), e.time_ns)
            }
            "fault_injected"
                if field(&e.detail, "kind")
                    .is_some_and(|k| k.contains("crash") || k == "torn_write") =>
            {
                if let Some(node) = field(&e.detail, "node") {
                    cut(&mut held, node, None, e.time_ns);
                }
            }
            _ => {}
        }
    }
    let mut by_chunk: BTreeMap<&str, Vec<(&str, Held)>> = BTreeMap::new();
    for ((chunk, server), list) in &held {
        for h in list {
            by_chunk.entry(chunk).or_default().push((server, *h));
        }
    }
    let mut report = String::new();
    let mut overlaps = 0;
    for (chunk, mut list) in by_chunk {
        list.sort_by_key(|(_, h)| h.start_ns);
        for (i, (sa, a)) in list.iter().enumerate() {
            for (sb, b) in &list[i + 1..] {
                // An interval that ends before it starts (a grant delivered after its expiry) is
                // a lease nobody could act on.
                let empty = |h: &Held| h.end_ns <= h.start_ns;
                if sa != sb && !empty(a) && !empty(b) && b.start_ns < a.end_ns {
                    overlaps += 1;
                    let ms = |ns: u64| ns as f64 / 1e6;
                    let _ = writeln!(
                        report,
                        "  chunk {chunk}: {sa} held v{} from {:.3} to {:.3} ms (event #{}), {sb} held v{} from {:.3} to {:.3} ms (event #{})",
                        a.version, ms(a.start_ns), ms(a.end_ns), a.server_event, b.version, ms(b.start_ns), ms(b.end_ns), b.server_event
                    );
                }
            }
        }
    }
    (overlaps > 0).then(|| Violation {
        check: NAME,
        report: format!(
            "{overlaps} times two chunkservers held a chunk's lease at once:\n{report}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t_ms: u64, node: &str, kind: &'static str, detail: &str) -> Event {
        Event {
            time_ns: t_ms * 1_000_000,
            node: node.into(),
            kind,
            detail: detail.into(),
        }
    }

    #[test]
    fn overlapping_leases_are_caught_and_handovers_pass() {
        let ok = vec![
            ev(
                0,
                "cs1",
                "lease_acquired",
                "chunk=c1 version=1 until_ns=1000000000",
            ),
            ev(
                500,
                "cs1",
                "lease_extended",
                "chunk=c1 version=1 until_ns=1500000000",
            ),
            ev(
                1500,
                "cs2",
                "lease_acquired",
                "chunk=c1 version=2 until_ns=2500000000",
            ),
            // A crash ends cs2's belief early; cs3 takes over after the master's expiry anyway.
            ev(
                1600,
                "nemesis",
                "fault_injected",
                "kind=crash node=cs2 unsynced_writes_lost=0",
            ),
            ev(
                2500,
                "cs3",
                "lease_acquired",
                "chunk=c1 version=3 until_ns=3500000000",
            ),
            ev(
                2600,
                "cs1",
                "lease_acquired",
                "chunk=c2 version=1 until_ns=3600000000",
            ),
        ];
        assert_eq!(check(&ok), None);
        let mut bad = ok.clone();
        // cs3 is granted while cs1's extended lease still runs.
        bad.insert(
            2,
            ev(
                1200,
                "cs3",
                "lease_acquired",
                "chunk=c1 version=2 until_ns=2200000000",
            ),
        );
        let v = check(&bad).expect("overlap caught");
        assert!(
            v.report
                .contains("chunk c1: cs1 held v1 from 0.000 to 1500.000 ms"),
            "{}",
            v.report
        );
        // Revocation ends a lease: a grant after it is fine.
        let mut revoked = bad.clone();
        revoked.insert(
            2,
            ev(1100, "cs1", "lease_released", "chunk=c1 version=1 revoked"),
        );
        assert!(
            check(&revoked).is_none_or(|v| !v.report.contains("cs1 held v1")),
            "{revoked:?}"
        );
    }
}
