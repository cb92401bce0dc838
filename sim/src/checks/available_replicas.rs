//! Which replicas of each chunk are *available*, judged from what the nodes did: the bookkeeping
//! that the checks about copies (`copy_budget`, `copies_prompt`) share.
//!
//! GFS §4.3 copies a chunk when "the number of available replicas falls below a user-specified
//! goal". A replica is available here when its server holds the chunk by its own acts
//! (`version_set`, `replica_copied`, less `replica_deleted` and `replica_discarded`) at the
//! chunk's current version (`version_bumped`, `version_adopted`) or ahead of it at a version the
//! master offered (`lease_offered`: a grant that never settled, so no client was told of its
//! lease and nothing was written under it, as the master itself counts it), the master counts the
//! server live (`server_joined` since the master last started, not `server_dead` since), and the
//! master has not ruled it out at that version.
//!
//! Some rulings are *firm*: a replica left out of a grant (`replica_excluded`, logged), and one
//! found corrupt or trimmed, until the master restarts without a checkpoint written since (it
//! keeps those in memory only). Others are *loose*: the destination of a copy whose order failed
//! (`clone_failed`), which the master counts again once its server's heartbeat reports it, and
//! the in-memory rulings a restart forgot. A check that must not blame the master for what it
//! could not know asks for the count that suits it: [`AvailableReplicas::available`] leaves out
//! every ruled-out replica (the fewest the master may count), [`AvailableReplicas::at_most`] only
//! the firm ones (the most). Feed every event in order to [`AvailableReplicas::observe`].

use node::trace::{Entry, Event, NodeName};
use node::{ChunkHandle, ServerId};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Clone)]
pub struct AvailableReplicas {
    /// Who holds which chunk at which version, by the chunkservers' own acts.
    held: BTreeMap<ChunkHandle, BTreeMap<ServerId, u64>>,
    current: BTreeMap<ChunkHandle, u64>,
    /// The highest version the master offered a lease at.
    offered: BTreeMap<ChunkHandle, u64>,
    live: BTreeSet<ServerId>,
    /// (chunk, server, version) ruled out, firmly or loosely (see the module comment).
    firm: BTreeSet<(ChunkHandle, ServerId, u64)>,
    loose: BTreeSet<(ChunkHandle, ServerId, u64)>,
    /// The firm rulings the master holds in memory only: loose after its next restart unless a
    /// checkpoint is written first.
    unsaved: BTreeSet<(ChunkHandle, ServerId, u64)>,
}

impl AvailableReplicas {
    /// Takes one event into account.
    pub fn observe(&mut self, e: &Entry) {
        let server = match e.node {
            NodeName::Cs(s) => Some(s),
            _ => None,
        };
        match &e.event {
            Event::VersionSet { chunk, version, .. }
            | Event::ReplicaCopied { chunk, version, .. } => {
                if let Some(s) = server {
                    self.held.entry(*chunk).or_default().insert(s, *version);
                }
            }
            Event::ReplicaDeleted { chunk, .. } | Event::ReplicaDiscarded { chunk } => {
                if let (Some(s), Some(h)) = (server, self.held.get_mut(chunk)) {
                    h.remove(&s);
                }
            }
            Event::VersionBumped { chunk, version }
            | Event::VersionAdopted { chunk, version, .. } => {
                let v = self.current.entry(*chunk).or_default();
                *v = (*v).max(*version);
            }
            Event::LeaseOffered { chunk, version, .. } => {
                let v = self.offered.entry(*chunk).or_default();
                *v = (*v).max(*version);
            }
            Event::MasterStarted { .. } | Event::MasterRecovered { .. } => {
                self.live.clear();
                for r in std::mem::take(&mut self.unsaved) {
                    self.firm.remove(&r);
                    self.loose.insert(r);
                }
            }
            Event::CheckpointWritten { .. } => self.unsaved.clear(),
            Event::ServerJoined { server, .. } => {
                self.live.insert(*server);
            }
            Event::ServerDead { server } => {
                self.live.remove(server);
            }
            Event::ReplicaExcluded {
                chunk,
                version,
                server,
                ..
            } => {
                self.firm.insert((*chunk, *server, *version));
            }
            Event::ReplicaCorrupt {
                chunk,
                version,
                server,
            } => {
                self.firm.insert((*chunk, *server, *version));
                self.unsaved.insert((*chunk, *server, *version));
            }
            // A trimmed replica is on its way out, deleted when its server next hears of it.
            Event::ReplicaTrimmed { chunk, server } => {
                let r = (*chunk, *server, self.current(*chunk));
                self.firm.insert(r);
                self.unsaved.insert(r);
            }
            // A copy whose order failed (its answer was lost, or its server woke up late) may be
            // on its server: the master does not count it until a heartbeat reports it. One it
            // saw finish, it does (and a late version_set to an excluded replica stays excluded:
            // it took the version and missed its mutations, GFS §4.5).
            Event::CloneFailed { chunk, version, to } => {
                self.loose.insert((*chunk, *to, *version));
            }
            Event::ReplicaCloned { chunk, version, to } => {
                let r = (*chunk, *to, *version);
                self.firm.remove(&r);
                self.loose.remove(&r);
                self.unsaved.remove(&r);
            }
            _ => {}
        }
    }

    /// The chunk's current version (0 before its first grant).
    pub fn current(&self, chunk: ChunkHandle) -> u64 {
        self.current.get(&chunk).copied().unwrap_or(0)
    }

    /// The servers the master counts live.
    pub fn live(&self) -> &BTreeSet<ServerId> {
        &self.live
    }

    /// The servers holding an available replica of `chunk` that no ruling leaves out, in server
    /// order: the fewest the master may count.
    pub fn available(&self, chunk: ChunkHandle) -> Vec<ServerId> {
        self.counted(chunk, true)
    }

    /// The servers holding an available replica of `chunk` that no firm ruling leaves out, in
    /// server order: the most the master may count.
    pub fn at_most(&self, chunk: ChunkHandle) -> Vec<ServerId> {
        self.counted(chunk, false)
    }

    fn counted(&self, chunk: ChunkHandle, with_loose: bool) -> Vec<ServerId> {
        let now = self.current(chunk);
        let ahead = self.offered.get(&chunk).copied().unwrap_or(0).max(now);
        let ruled_out = |s: ServerId, v: u64| {
            [(chunk, s, now), (chunk, s, v)]
                .iter()
                .any(|r| self.firm.contains(r) || (with_loose && self.loose.contains(r)))
        };
        self.held
            .get(&chunk)
            .into_iter()
            .flatten()
            .filter(|(s, v)| {
                (now..=ahead).contains(*v) && self.live.contains(s) && !ruled_out(**s, **v)
            })
            .map(|(s, _)| *s)
            .collect()
    }
}
