//! Check `deletes_only_garbage`: a chunkserver erases a replica only when the master could rightly
//! call it garbage.
//!
//! Must always hold. GFS §4.4: in a heartbeat exchange the master names the replicas "no longer
//! present in the master's metadata", and the chunkserver deletes them; §4.5: stale replicas are
//! removed the same way. Any other deletion throws away a good replica: the master copies it
//! again at best, and if it was the last current one, acknowledged data is gone. A master that
//! mistakes a current replica for garbage (a report judged against the wrong version, a chunk of
//! a live file taken for an orphan) passes the other checks whenever a copy or a spare replica
//! hides the loss. `gc_after_grace` judges the other side of a deleted file's garbage: not
//! before the grace period.
//!
//! Judged by acts: at each `replica_deleted`, the replica's chunk, server and version against
//! what the nodes did before ([`AvailableReplicas::garbage`]): its file was reclaimed
//! (`file_reclaimed`) or no log record allocated it; or it was stale (below the current version,
//! `version_bumped`, `version_adopted`); or the master had ruled it out (`replica_excluded`,
//! `replica_corrupt`, `replica_trimmed`, a failed copy's destination). Any other deletion fails,
//! with the replica, the chunk's current version and who else held it.

use super::available_replicas::AvailableReplicas;
use super::Violation;
use node::trace::{Entry, Event, NodeName};
use node::{ChunkHandle, ServerId};

pub const NAME: &str = "deletes_only_garbage";

/// A replica erased for no reason the master could have had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrongful {
    /// Index of the `replica_deleted` event.
    pub at: usize,
    pub chunk: ChunkHandle,
    pub server: ServerId,
    pub version: u64,
    /// The chunk's current version then.
    pub current: u64,
    /// The other servers holding an available replica then.
    pub others: Vec<ServerId>,
}

/// Every deletion in `events` of a replica that was not garbage.
pub fn wrongful(events: &[Entry]) -> Vec<Wrongful> {
    let mut replicas = AvailableReplicas::default();
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let (Event::ReplicaDeleted { chunk, version }, NodeName::Cs(server)) = (&e.event, e.node)
        {
            if replicas.garbage(*chunk, server, *version).is_none() {
                let mut others = replicas.at_most(*chunk);
                others.retain(|s| *s != server);
                out.push(Wrongful {
                    at: i,
                    chunk: *chunk,
                    server,
                    version: *version,
                    current: replicas.current(*chunk),
                    others,
                });
            }
        }
        replicas.observe(e);
    }
    out
}

pub fn check(events: &[Entry]) -> Option<Violation> {
    let wrongful = wrongful(events);
    if wrongful.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} replicas were deleted that the master had no reason to call garbage (GFS §4.4, \
             §4.5: a chunkserver erases only orphaned, stale or ruled-out replicas):",
            wrongful.len()
        ),
        wrongful.len(),
        wrongful.iter().map(|w| {
            format!(
                "event #{} at {:.3} ms: {} deleted its replica of chunk {} at version {} (current \
                 {}, not ruled out); other current replicas: {}",
                w.at,
                events[w.at].time_ns as f64 / 1e6,
                w.server,
                w.chunk,
                w.version,
                w.current,
                super::names(&w.others)
            )
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::event_at_ms as ev;
    use super::*;
    use node::trace::Role;
    use node::GfsError;

    fn master(t: u64, event: Event) -> Entry {
        ev(t, NodeName::Master, event)
    }

    fn cs(t: u64, server: u32, event: Event) -> Entry {
        ev(t, NodeName::Cs(ServerId(server)), event)
    }

    const C: ChunkHandle = ChunkHandle(7);

    /// Chunk 7 of file /f at version 2 on cs0, cs1 and cs2.
    fn setup() -> Vec<Entry> {
        let mut events = vec![master(
            0,
            Event::ChunkAllocated {
                path: "/f".into(),
                index: 0,
                chunk: C,
            },
        )];
        for s in 0..3 {
            events.push(master(
                0,
                Event::ServerJoined {
                    server: ServerId(s),
                    chunks: 0,
                },
            ));
            events.push(cs(
                1,
                s,
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

    fn deleted(t: u64, server: u32, version: u64) -> Entry {
        cs(t, server, Event::ReplicaDeleted { chunk: C, version })
    }

    #[test]
    fn a_current_replica_of_a_live_file_deleted_fails() {
        let mut events = setup();
        events.push(deleted(10, 1, 2));
        let found = wrongful(&events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].server, found[0].current, found[0].others.clone()),
            (ServerId(1), 2, vec![ServerId(0), ServerId(2)])
        );
        let report = check(&events).expect("fails").report;
        assert!(
            report.contains("cs1 deleted its replica of chunk c7 at version 2"),
            "{report}"
        );
    }

    #[test]
    fn stale_ruled_out_and_orphaned_replicas_may_go() {
        let mut events = setup();
        // cs0 misses version 3: stale.
        events.push(cs(
            3,
            1,
            Event::VersionSet {
                chunk: C,
                version: 3,
                role: Role::Primary,
            },
        ));
        events.push(cs(
            3,
            2,
            Event::VersionSet {
                chunk: C,
                version: 3,
                role: Role::Secondary,
            },
        ));
        events.push(master(
            4,
            Event::VersionBumped {
                chunk: C,
                version: 3,
            },
        ));
        events.push(deleted(5, 0, 2));
        // cs2 is trimmed, cs1 excluded: both ruled out at the current version.
        events.push(master(
            6,
            Event::ReplicaTrimmed {
                chunk: C,
                server: ServerId(2),
            },
        ));
        events.push(deleted(7, 2, 3));
        events.push(master(
            8,
            Event::ReplicaExcluded {
                chunk: C,
                version: 3,
                server: ServerId(1),
                why: GfsError::NoSuchChunk,
            },
        ));
        events.push(deleted(9, 1, 3));
        // A chunk no log record allocated is an orphan.
        events.push(cs(
            10,
            3,
            Event::ReplicaDeleted {
                chunk: ChunkHandle(99),
                version: 1,
            },
        ));
        assert_eq!(wrongful(&events), vec![]);
        assert!(check(&events).is_none());
    }

    /// A master that crashed between syncing a grant's commit and announcing it recovers with
    /// the new version current: replicas below it are stale to it, with no `version_bumped`.
    #[test]
    fn a_version_a_crash_may_have_committed_unseen_makes_older_replicas_stale() {
        let mut events = setup();
        events.push(master(
            3,
            Event::LeaseOffered {
                chunk: C,
                version: 3,
                primary: ServerId(0),
                replicas: vec![ServerId(0), ServerId(1)],
                expires_ns: 1_000_000_000,
            },
        ));
        let mut no_restart = events.clone();
        no_restart.push(deleted(5, 2, 2));
        assert_eq!(wrongful(&no_restart).len(), 1, "the grant never committed");
        events.push(master(
            4,
            Event::MasterRecovered {
                lsn: 9,
                files: 1,
                grace_until_ms: 1_000,
            },
        ));
        events.push(deleted(5, 2, 2));
        assert_eq!(wrongful(&events), vec![]);
    }

    /// A master that crashed between logging a delete and announcing it reclaims the file with
    /// no `file_deleted` seen; its chunks are orphans all the same (found with the master
    /// checkpointing every two log records). A create of the path again shows the
    /// deletion too.
    #[test]
    fn a_file_deleted_unseen_is_reclaimed_all_the_same() {
        let mut events = setup();
        let hidden = node::master::state::hidden_name(4, "/f");
        events.push(master(7, Event::FileReclaimed { hidden }));
        events.push(deleted(8, 1, 2));
        assert_eq!(wrongful(&events), vec![]);
        let mut recreated = setup();
        recreated.push(master(5, Event::FileCreated { path: "/f".into() }));
        recreated.push(master(
            6,
            Event::ChunkAllocated {
                path: "/f".into(),
                index: 0,
                chunk: ChunkHandle(8),
            },
        ));
        let hidden = node::master::state::hidden_name(4, "/f");
        recreated.push(master(7, Event::FileReclaimed { hidden }));
        recreated.push(deleted(8, 1, 2));
        // The new file's chunk is not the old one's: deleting it is wrongful.
        recreated.push(cs(
            9,
            0,
            Event::ReplicaDeleted {
                chunk: ChunkHandle(8),
                version: 0,
            },
        ));
        let found = wrongful(&recreated);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].chunk, ChunkHandle(8));
    }

    #[test]
    fn a_reclaimed_files_replicas_may_go_but_not_before() {
        let mut events = setup();
        events.push(master(
            5,
            Event::FileDeleted {
                path: "/f".into(),
                live_leases: 0,
            },
        ));
        // Deleted but not reclaimed: the master still owns the chunk.
        events.push(deleted(6, 0, 2));
        let hidden = node::master::state::hidden_name(4, "/f");
        events.push(master(7, Event::FileReclaimed { hidden }));
        events.push(deleted(8, 1, 2));
        let found = wrongful(&events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].server, ServerId(0));
    }
}
