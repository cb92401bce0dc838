//! Check `grants_inform_current`: a new lease is offered to every replica the master surely counts
//! up to date.
//!
//! Must always hold. GFS §4.5: "Whenever the master grants a new lease on a chunk, it increases
//! the chunk version number and informs the up-to-date replicas." A replica left out of a grant
//! misses the new version and becomes stale at once: the grant throws away a good copy. A master
//! that drops a good location for a while (a heartbeat judged against the wrong moment, a report
//! misread) passes every other check whenever no grant falls in that window, or a copy later
//! restores the count; this check judges the grant itself.
//!
//! Judged by acts: at each `lease_offered` for a chunk already at a version (a first grant places
//! its replicas instead, judged by `placement_spread`), the servers offered against
//! [`AvailableReplicas::located`]: those holding the chunk at its current version by their own
//! acts (`version_set`, `replica_copied` the master heard finish), counted live by the master,
//! and not ruled out (excluded, found corrupt, trimmed, a failed copy). A chunk whose current
//! version a master crash may have hidden (a commit synced but never announced) is not judged:
//! which replicas are up to date is then unknown.

use super::available_replicas::AvailableReplicas;
use super::{names, Violation};
use node::trace::{Entry, Event};
use node::{ChunkHandle, ServerId};

pub const NAME: &str = "grants_inform_current";

/// A grant that left out an up-to-date replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Index of the `lease_offered` event.
    pub at: usize,
    pub chunk: ChunkHandle,
    /// The chunk's current version, and the one the grant offered.
    pub current: u64,
    pub offered: u64,
    /// The servers offered, and the up-to-date ones left out.
    pub replicas: Vec<ServerId>,
    pub missing: Vec<ServerId>,
}

/// Every grant in `events` that left out an up-to-date replica.
pub fn left_out(events: &[Entry]) -> Vec<LeftOut> {
    let mut replicas = AvailableReplicas::default();
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let Event::LeaseOffered {
            chunk,
            version,
            replicas: offered,
            ..
        } = &e.event
        {
            let current = replicas.current(*chunk);
            if current > 0 && !replicas.version_unsure(*chunk) {
                let missing: Vec<ServerId> = replicas
                    .located(*chunk)
                    .into_iter()
                    .filter(|s| !offered.contains(s))
                    .collect();
                if !missing.is_empty() {
                    out.push(LeftOut {
                        at: i,
                        chunk: *chunk,
                        current,
                        offered: *version,
                        replicas: offered.clone(),
                        missing,
                    });
                }
            }
        }
        replicas.observe(e);
    }
    out
}

pub fn check(events: &[Entry]) -> Option<Violation> {
    let found = left_out(events);
    if found.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} grants left out a replica that was up to date (GFS §4.5: the master informs the \
             up-to-date replicas of every new lease):",
            found.len()
        ),
        found.len(),
        found.iter().map(|g| {
            format!(
                "event #{} at {}: lease on chunk {} at version {} (current {}) offered to {}; \
                 left out, holding version {}: {}",
                g.at,
                super::ms(events[g.at].time_ns),
                g.chunk,
                g.offered,
                g.current,
                names(&g.replicas),
                g.current,
                names(&g.missing),
            )
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::event_at_ms as ev;
    use super::*;
    use node::trace::{NodeName, Role};
    use node::GfsError;

    const C: ChunkHandle = ChunkHandle(7);

    fn master(t: u64, event: Event) -> Entry {
        ev(t, NodeName::Master, event)
    }

    fn offer(t: u64, version: u64, replicas: &[u32]) -> Entry {
        master(
            t,
            Event::LeaseOffered {
                chunk: C,
                version,
                primary: ServerId(replicas[0]),
                replicas: replicas.iter().map(|s| ServerId(*s)).collect(),
                expires_ns: (t + 1_000) * 1_000_000,
            },
        )
    }

    /// Chunk 7 at version 2 on cs0, cs1 and cs2, all live; cs3 live and empty.
    fn setup() -> Vec<Entry> {
        let mut events = super::super::servers_joined(4);
        for s in 0..3 {
            events.push(ev(
                1,
                NodeName::Cs(ServerId(s)),
                Event::VersionSet {
                    chunk: C,
                    version: 2,
                    role: Role::Secondary,
                },
            ));
        }
        events.push(master(
            2,
            Event::VersionBumped {
                chunk: C,
                version: 2,
            },
        ));
        events
    }

    #[test]
    fn a_grant_that_leaves_out_a_current_replica_fails() {
        let mut events = setup();
        events.push(offer(10, 3, &[0, 2]));
        let found = left_out(&events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].current, found[0].offered, found[0].missing.clone()),
            (2, 3, vec![ServerId(1)])
        );
        let report = check(&events).expect("fails").report;
        assert!(
            report.contains("offered to cs0, cs2; left out, holding version 2: cs1"),
            "{report}"
        );
    }

    #[test]
    fn grants_to_every_current_replica_or_past_ruled_out_ones_pass() {
        let mut events = setup();
        events.push(offer(10, 3, &[0, 1, 2]));
        assert_eq!(left_out(&events), vec![]);
        // cs1 is excluded from version 3, cs2 declared dead: neither is owed the next grant.
        events.push(ev(
            11,
            NodeName::Cs(ServerId(0)),
            Event::VersionSet {
                chunk: C,
                version: 3,
                role: Role::Primary,
            },
        ));
        events.push(ev(
            11,
            NodeName::Cs(ServerId(2)),
            Event::VersionSet {
                chunk: C,
                version: 3,
                role: Role::Secondary,
            },
        ));
        events.push(master(
            12,
            Event::ReplicaExcluded {
                chunk: C,
                version: 3,
                server: ServerId(1),
                why: GfsError::NoSuchChunk,
            },
        ));
        events.push(master(
            12,
            Event::VersionBumped {
                chunk: C,
                version: 3,
            },
        ));
        events.push(master(
            13,
            Event::ServerDead {
                server: ServerId(2),
            },
        ));
        events.push(offer(20, 4, &[0]));
        assert_eq!(left_out(&events), vec![]);
        assert!(check(&events).is_none());
        // Had cs2 still been live, the grant would have owed it the version.
        let mut alive = events.clone();
        alive.retain(|e| !matches!(e.event, Event::ServerDead { .. }));
        assert_eq!(left_out(&alive)[0].missing, vec![ServerId(2)]);
    }

    /// A master that crashed between syncing a grant's commit and announcing it recovers with a
    /// version no event showed: which replicas are up to date is unknown, so no grant is judged
    /// until a version is seen committed again.
    #[test]
    fn a_version_a_crash_may_have_committed_unseen_is_not_judged() {
        let mut events = setup();
        events.push(offer(10, 3, &[0, 1, 2]));
        events.push(master(
            11,
            Event::MasterRecovered {
                lsn: 9,
                files: 1,
                grace_until_ms: 12,
            },
        ));
        events.extend(super::super::servers_joined(4));
        events.push(offer(20, 4, &[0, 1]));
        assert_eq!(left_out(&events), vec![]);
        // Without the earlier offer, the version is sure, and cs2 was left out.
        events.remove(events.len() - 7);
        assert_eq!(left_out(&events)[0].missing, vec![ServerId(2)]);
    }
}
