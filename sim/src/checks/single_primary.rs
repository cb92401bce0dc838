//! Check `single_primary`: at most one chunkserver believes it is a chunk's primary at any
//! simulated instant.
//!
//! Must always hold. GFS §3.1: the master grants a lease to one replica at a time and waits for
//! it to expire before granting another; this is what makes the primary's serial order the only
//! order. The check rebuilds, from the chunkservers' own lease events, the interval during which
//! each believed it held the lease: from `lease_acquired` to its expiry (moved by
//! `lease_extended`), cut short when the lease is revoked or the node crashes. Two intervals of
//! different servers on one chunk must not overlap.

use super::Violation;
use node::trace::{Entry, Event, FaultOn, NodeName, Role};
use node::{ChunkHandle, ServerId};
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

pub fn check(events: &[Entry]) -> Option<Violation> {
    // (chunk, server) -> intervals, the last one possibly still open.
    let mut held: BTreeMap<(ChunkHandle, ServerId), Vec<Held>> = BTreeMap::new();
    // Ends the open interval of `server` on `chunk` (every chunk if None) at `t`.
    let cut = |held: &mut BTreeMap<(ChunkHandle, ServerId), Vec<Held>>,
               server: ServerId,
               chunk: Option<ChunkHandle>,
               t: u64| {
        for ((c, s), list) in held.iter_mut() {
            if *s == server && chunk.is_none_or(|ch| ch == *c) {
                if let Some(last) = list.last_mut() {
                    last.end_ns = last.end_ns.min(t);
                }
            }
        }
    };
    for (i, e) in events.iter().enumerate() {
        // A crash of the node ends every lease it believed it held.
        if let Event::FaultInjected {
            fault,
            on: FaultOn::Node(NodeName::Cs(server)),
            ..
        } = &e.event
        {
            if fault.kills_node() {
                cut(&mut held, *server, None, e.time_ns);
            }
            continue;
        }
        let NodeName::Cs(server) = e.node else {
            continue;
        };
        match e.event {
            Event::LeaseAcquired {
                chunk,
                version,
                until_ns,
            } => {
                let h = Held {
                    server_event: i,
                    start_ns: e.time_ns,
                    end_ns: until_ns,
                    version,
                };
                held.entry((chunk, server)).or_default().push(h);
            }
            Event::LeaseExtended {
                chunk,
                version,
                until_ns,
            } => {
                if let Some(last) = held.get_mut(&(chunk, server)).and_then(|l| l.last_mut()) {
                    if last.version == version && last.end_ns > e.time_ns {
                        last.end_ns = last.end_ns.max(until_ns);
                    }
                }
            }
            Event::LeaseReleased { chunk, .. }
            | Event::ReplicaDeleted { chunk, .. }
            | Event::VersionSet {
                chunk,
                role: Role::Secondary,
                ..
            } => cut(&mut held, server, Some(chunk), e.time_ns),
            _ => {}
        }
    }
    let mut by_chunk: BTreeMap<ChunkHandle, Vec<(ServerId, Held)>> = BTreeMap::new();
    for ((chunk, server), list) in &held {
        for h in list {
            by_chunk.entry(*chunk).or_default().push((*server, *h));
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
    use node::trace::FaultKind;

    use super::super::event_at_ms as ev;

    fn cs(i: u32) -> NodeName {
        NodeName::Cs(ServerId(i))
    }

    fn acquired(chunk: u64, version: u64, until_ms: u64) -> Event {
        Event::LeaseAcquired {
            chunk: ChunkHandle(chunk),
            version,
            until_ns: until_ms * 1_000_000,
        }
    }

    #[test]
    fn overlapping_leases_are_caught_and_handovers_pass() {
        let ok = vec![
            ev(0, cs(1), acquired(1, 1, 1000)),
            ev(
                500,
                cs(1),
                Event::LeaseExtended {
                    chunk: ChunkHandle(1),
                    version: 1,
                    until_ns: 1_500_000_000,
                },
            ),
            ev(1500, cs(2), acquired(1, 2, 2500)),
            // A crash ends cs2's belief early; cs3 takes over after the master's expiry anyway.
            ev(
                1600,
                NodeName::Nemesis,
                Event::FaultInjected {
                    fault: FaultKind::Crash,
                    on: FaultOn::Node(cs(2)),
                    unsynced_writes_lost: Some(0),
                },
            ),
            ev(2500, cs(3), acquired(1, 3, 3500)),
            ev(2600, cs(1), acquired(2, 1, 3600)),
        ];
        assert_eq!(check(&ok), None);
        let mut bad = ok.clone();
        // cs3 is granted while cs1's extended lease still runs.
        bad.insert(2, ev(1200, cs(3), acquired(1, 2, 2200)));
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
            ev(
                1100,
                cs(1),
                Event::LeaseReleased {
                    chunk: ChunkHandle(1),
                    version: 1,
                },
            ),
        );
        assert!(
            check(&revoked).is_none_or(|v| !v.report.contains("cs1 held v1")),
            "{revoked:?}"
        );
        // A pause is not a crash: the paused primary still believes it holds the lease.
        let mut paused = bad.clone();
        paused.insert(
            2,
            ev(
                1100,
                NodeName::Nemesis,
                Event::FaultInjected {
                    fault: FaultKind::Pause,
                    on: FaultOn::Node(cs(1)),
                    unsynced_writes_lost: None,
                },
            ),
        );
        assert!(check(&paused).is_some_and(|v| v.report.contains("cs1 held v1")));
    }
}
