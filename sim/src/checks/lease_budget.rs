//! Check `lease_budget`: a chunk under load keeps its lease instead of paying for new grants.
//!
//! Must always hold, as a budget. GFS §3.1: "as long as the chunk is being mutated, the primary can
//! request and typically receive extensions from the master indefinitely", piggybacked on
//! heartbeats, so the master stays out of the data path. A lease that lapses while in use costs a
//! new grant: a version bump on every replica (§4.5) and a round of client requests to the master.
//! A mistake that only costs (leases never extended) passes every correctness check, so this one
//! counts the cost.
//!
//! A lease *lapsed in use* when its primary ordered a mutation under it (`mutation_ordered`) at
//! least [`slack_ns`] before its expiry (time for a heartbeat to carry the request and the master
//! to answer), yet the master never renewed it afterwards (`lease_renewed`). Faults excuse it: no
//! lapse is counted if any fault struck or healed from a lease period before that mutation to the
//! expiry, or was in force at the mutation, or if the master meanwhile revoked the lease, found a
//! replica corrupt or declared a server dead. A run may have [`FREE_LAPSES`] unexcused lapses;
//! above that it fails with the leases that lapsed.

use super::Violation;
use node::trace::{Entry, Event, FaultKind, NodeName};
use node::{ChunkHandle, ServerId};
use std::collections::BTreeMap;

pub const NAME: &str = "lease_budget";

/// Unexcused lapses a run may have: margin for what no event shows (a heartbeat delayed behind a
/// busy master).
pub const FREE_LAPSES: usize = 1;

/// How long before its expiry a mutation must come for its lease to be due an extension: two
/// heartbeat periods and an RPC timeout.
pub fn slack_ns(heartbeat_ms: u64, rpc_timeout_ms: u64) -> u64 {
    (2 * heartbeat_ms + rpc_timeout_ms) * 1_000_000
}

/// One lease the master offered: its latest expiry, and its first mutation since the latest
/// renewal (or since the offer).
#[derive(Debug, Default, Clone, Copy)]
struct Lease {
    expires_ns: u64,
    /// The earliest mutation ordered since the last renewal, and its event's index.
    unrenewed_since: Option<(u64, usize)>,
}

/// Leases that lapsed in use with nothing to excuse them: (chunk, version, primary, mutation time
/// and event, expiry).
fn lapses(
    events: &[Entry],
    lease_ms: u64,
    slack_ns: u64,
) -> Vec<(ChunkHandle, u64, ServerId, u64, usize, u64)> {
    let lease_ns = lease_ms * 1_000_000;
    let mut leases: BTreeMap<(ChunkHandle, u64, ServerId), Lease> = BTreeMap::new();
    // Instants at which something happened that can cost a lease, and faults in force.
    let mut disturbed: Vec<u64> = Vec::new();
    let mut in_force: BTreeMap<(FaultKind, String), u64> = BTreeMap::new();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let end_ns = events.last().map_or(0, |e| e.time_ns);
    for (i, e) in events.iter().enumerate() {
        match &e.event {
            Event::LeaseOffered {
                chunk,
                version,
                primary,
                expires_ns,
                ..
            } if e.node == NodeName::Master => {
                leases.insert(
                    (*chunk, *version, *primary),
                    Lease {
                        expires_ns: *expires_ns,
                        unrenewed_since: None,
                    },
                );
            }
            Event::LeaseRenewed {
                chunk,
                version,
                primary,
                expires_ns,
            } => {
                if let Some(l) = leases.get_mut(&(*chunk, *version, *primary)) {
                    l.expires_ns = l.expires_ns.max(*expires_ns);
                    l.unrenewed_since = None;
                }
            }
            Event::MutationOrdered { chunk, version, .. } => {
                if let NodeName::Cs(server) = e.node {
                    if let Some(l) = leases.get_mut(&(*chunk, *version, server)) {
                        l.unrenewed_since.get_or_insert((e.time_ns, i));
                    }
                }
            }
            Event::FaultInjected { fault, on, .. } => {
                disturbed.push(e.time_ns);
                in_force.insert((*fault, on.to_string()), e.time_ns);
            }
            Event::FaultHealed { fault, on } => {
                disturbed.push(e.time_ns);
                if let Some(from) = in_force.remove(&(*fault, on.to_string())) {
                    spans.push((from, e.time_ns));
                }
            }
            Event::LeaseRevoked { .. }
            | Event::ReplicaCorrupt { .. }
            | Event::ServerDead { .. }
            | Event::MasterRecovered { .. }
            | Event::ReplicaExcluded { .. } => disturbed.push(e.time_ns),
            _ => {}
        }
    }
    spans.extend(in_force.values().map(|&from| (from, u64::MAX)));
    let mut out = Vec::new();
    for ((chunk, version, primary), l) in &leases {
        let Some((m, i)) = l.unrenewed_since else {
            continue;
        };
        // Still running when the run ended, or too close to its expiry to be extended.
        if l.expires_ns > end_ns || m + slack_ns > l.expires_ns {
            continue;
        }
        let from = m.saturating_sub(lease_ns);
        let excused = disturbed.iter().any(|&t| t >= from && t <= l.expires_ns)
            || spans.iter().any(|&(a, b)| a <= l.expires_ns && b >= from);
        if !excused {
            out.push((*chunk, *version, *primary, m, i, l.expires_ns));
        }
    }
    out
}

pub fn check(events: &[Entry], lease_ms: u64, slack_ns: u64) -> Option<Violation> {
    let lapsed = lapses(events, lease_ms, slack_ns);
    if lapsed.len() <= FREE_LAPSES {
        return None;
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let lines = lapsed.iter().map(|(chunk, version, primary, m, i, until)| {
        format!(
            "chunk {chunk} v{version} on {primary}: mutation ordered at {:.3} ms (event #{i}), lease ran out at {:.3} ms unrenewed",
            ms(*m),
            ms(*until)
        )
    });
    Some(Violation::listing(
        NAME,
        format!(
            "{} leases lapsed while in use, over a budget of {FREE_LAPSES}: each primary ordered a mutation at least {:.0} ms before its lease ran out, no fault was near, and the master never renewed the lease; every lapse costs a new grant and version:",
            lapsed.len(),
            ms(slack_ns)
        ),
        lapsed.len(),
        lines,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::trace::FaultOn;

    use super::super::event_at_ms as ev;

    /// A lease on chunk `c` offered at `t_ms` to cs1 for 1 000 ms, used 50 ms later.
    fn used_lease(c: u64, t_ms: u64) -> Vec<Entry> {
        vec![
            ev(
                t_ms,
                NodeName::Master,
                Event::LeaseOffered {
                    chunk: ChunkHandle(c),
                    version: 1,
                    primary: ServerId(1),
                    replicas: vec![ServerId(1)],
                    expires_ns: (t_ms + 1_000) * 1_000_000,
                },
            ),
            ev(
                t_ms + 50,
                NodeName::Cs(ServerId(1)),
                Event::MutationOrdered {
                    chunk: ChunkHandle(c),
                    version: 1,
                    serial: 1,
                    offset: 0,
                    len: 1,
                },
            ),
        ]
    }

    fn renewed(c: u64, t_ms: u64) -> Entry {
        ev(
            t_ms,
            NodeName::Master,
            Event::LeaseRenewed {
                chunk: ChunkHandle(c),
                version: 1,
                primary: ServerId(1),
                expires_ns: (t_ms + 1_000) * 1_000_000,
            },
        )
    }

    const SLACK: u64 = 700_000_000;

    #[test]
    fn leases_lapsing_in_use_beyond_the_budget_are_caught() {
        let end = ev(10_000, NodeName::Checker, Event::AllHealed {});
        // Two chunks, each used early in its lease and renewed after: no lapse.
        let mut ok = used_lease(1, 0);
        ok.extend(used_lease(2, 100));
        ok.push(renewed(1, 200));
        ok.push(renewed(2, 300));
        ok.push(end.clone());
        assert_eq!(check(&ok, 1_000, SLACK), None);
        // Never renewed: two lapses, over the budget of one.
        let mut lapsed = used_lease(1, 0);
        lapsed.extend(used_lease(2, 100));
        lapsed.push(end.clone());
        let v = check(&lapsed, 1_000, SLACK).expect("lapses caught");
        assert!(
            v.report.starts_with("2 leases lapsed")
                && v.report.contains("chunk c2 v1 on cs1: mutation ordered at 150.000 ms (event #3), lease ran out at 1100.000 ms"),
            "{}",
            v.report
        );
        // One lapse is within the budget.
        let mut one = used_lease(1, 0);
        one.push(end.clone());
        assert_eq!(check(&one, 1_000, SLACK), None);
        // A fault near the lease excuses its lapse.
        let mut faulty = lapsed.clone();
        faulty.insert(
            4,
            ev(
                900,
                NodeName::Nemesis,
                Event::FaultInjected {
                    fault: FaultKind::Loss,
                    on: FaultOn::Loss { percent: 5 },
                    unsynced_writes_lost: None,
                },
            ),
        );
        assert_eq!(check(&faulty, 1_000, SLACK), None);
        // A mutation too close to the expiry to be extended in time is not a lapse, and neither is
        // a lease still running when the run ended.
        let mut late = lapsed.clone();
        late[1].time_ns = 400 * 1_000_000;
        assert_eq!(check(&late, 1_000, SLACK), None);
        lapsed.pop();
        assert_eq!(check(&lapsed, 1_000, SLACK), None);
    }
}
