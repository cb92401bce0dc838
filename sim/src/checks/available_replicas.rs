//! Which replicas of each chunk are *available*, judged from what the nodes did: the bookkeeping
//! that the checks about copies, deletions and grants (`copy_budget`, `copies_prompt`,
//! `placement_spread`, `deletes_only_garbage`, `grants_inform_current`) share.
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
//! the in-memory rulings a restart forgot. A finished copy (`replica_cloned`) lifts the rulings on
//! its destination, in memory: a logged one comes back at the master's next restart unless a
//! checkpoint was written since (the restarted master replays the exclusion and deletes the good
//! copy as stale: a wasted copy, not a lost one). A check that must not blame the master for what
//! it could not know asks for the count that suits it: [`AvailableReplicas::available`] leaves out
//! every ruled-out replica (the fewest the master may count), [`AvailableReplicas::at_most`] only
//! the firm ones (the most), and [`AvailableReplicas::load`] each server's load (`placement_spread`)
//! as the least and the most the master may count. Feed every event in order to
//! [`AvailableReplicas::observe`].

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
    /// Versions offered before a master restart that may have been committed unseen: the master
    /// syncs a grant's commit before its `version_bumped`, and a crash in between leaves the
    /// version current in the log with no event to say so.
    unseen_commit: BTreeMap<ChunkHandle, u64>,
    /// Where the master placed each chunk not yet at a version (its first grant's `replicas`,
    /// since the master last started): it counts them as the chunk's replicas from the offer.
    placed: BTreeMap<ChunkHandle, BTreeSet<ServerId>>,
    /// Each visible file's chunks, and each deleted one's (oldest deletion first), by path.
    files: BTreeMap<String, Vec<ChunkHandle>>,
    deleted: BTreeMap<String, std::collections::VecDeque<Vec<ChunkHandle>>>,
    /// Chunks of reclaimed files: the master forgot them (GFS §4.4), whoever still holds them.
    reclaimed: BTreeSet<ChunkHandle>,
    /// Every chunk the master's log allocated (`chunk_allocated`).
    allocated: BTreeSet<ChunkHandle>,
    /// Copies a server made that the master has not yet heard finish (`replica_copied` before
    /// `replica_cloned` or `clone_failed`).
    unaccepted: BTreeSet<(ChunkHandle, ServerId)>,
    /// Replicas a server threw away at start-up, until it acts on the chunk again: the master
    /// counts them until that server's next heartbeat, which no event shows.
    discarded: BTreeSet<(ChunkHandle, ServerId)>,
    /// A restarted server's count of the replicas it kept (`chunkserver_started`), until the
    /// replicas it threw away at start-up are observed too.
    starting: BTreeMap<ServerId, usize>,
    /// Since a server's last start: how many more replicas it kept than its acts show (a copy it
    /// wrote but crashed before reporting), and how many fewer (writes a crash lost). Which ones,
    /// no event says, so they widen its load's range.
    unseen: BTreeMap<ServerId, usize>,
    lost: BTreeMap<ServerId, usize>,
    live: BTreeSet<ServerId>,
    /// (chunk, server, version) ruled out, firmly or loosely (see the module comment).
    firm: BTreeSet<(ChunkHandle, ServerId, u64)>,
    loose: BTreeSet<(ChunkHandle, ServerId, u64)>,
    /// The firm rulings the master holds in memory only: loose after its next restart unless a
    /// checkpoint is written first.
    unsaved: BTreeSet<(ChunkHandle, ServerId, u64)>,
    /// Logged rulings a finished copy lifted in memory only: firm again after the master's next
    /// restart unless a checkpoint is written first (the restarted master replays the exclusion
    /// and deletes the copy as stale).
    lifted: BTreeSet<(ChunkHandle, ServerId, u64)>,
}

impl AvailableReplicas {
    /// Takes one event into account.
    pub fn observe(&mut self, e: &Entry) {
        let server = match e.node {
            NodeName::Cs(s) => Some(s),
            _ => None,
        };
        if !matches!(e.event, Event::ReplicaDiscarded { .. }) {
            for (s, kept) in std::mem::take(&mut self.starting) {
                let known = self.held.values().filter(|h| h.contains_key(&s)).count();
                self.unseen.insert(s, kept.saturating_sub(known));
                self.lost.insert(s, known.saturating_sub(kept));
            }
        }
        match &e.event {
            Event::VersionSet { chunk, version, .. }
            | Event::ReplicaCopied { chunk, version, .. } => {
                if let Some(s) = server {
                    self.held.entry(*chunk).or_default().insert(s, *version);
                    self.discarded.remove(&(*chunk, s));
                    if matches!(e.event, Event::ReplicaCopied { .. }) {
                        self.unaccepted.insert((*chunk, s));
                    }
                }
            }
            Event::ReplicaDeleted { chunk, .. } | Event::ReplicaDiscarded { chunk } => {
                if let (Some(s), Some(h)) = (server, self.held.get_mut(chunk)) {
                    let had = h.remove(&s).is_some();
                    if had && matches!(e.event, Event::ReplicaDiscarded { .. }) {
                        self.discarded.insert((*chunk, s));
                    } else {
                        self.discarded.remove(&(*chunk, s));
                    }
                }
            }
            Event::VersionBumped { chunk, version }
            | Event::VersionAdopted { chunk, version, .. } => {
                let v = self.current.entry(*chunk).or_default();
                *v = (*v).max(*version);
                self.placed.remove(chunk);
            }
            Event::LeaseOffered {
                chunk,
                version,
                replicas,
                ..
            } => {
                let v = self.offered.entry(*chunk).or_default();
                *v = (*v).max(*version);
                if self.current(*chunk) == 0 {
                    self.placed
                        .insert(*chunk, replicas.iter().copied().collect());
                }
            }
            Event::MasterStarted { .. } | Event::MasterRecovered { .. } => {
                for (chunk, offered) in &self.offered {
                    if *offered > self.current(*chunk) {
                        self.unseen_commit.insert(*chunk, *offered);
                    }
                }
                self.live.clear();
                self.placed.clear();
                for r in std::mem::take(&mut self.unsaved) {
                    self.firm.remove(&r);
                    self.loose.insert(r);
                }
                self.firm.append(&mut self.lifted);
            }
            Event::ChunkserverStarted { chunks } => {
                if let Some(s) = server {
                    self.starting.insert(s, *chunks);
                }
            }
            Event::CheckpointWritten { .. } => {
                self.unsaved.clear();
                self.lifted.clear();
            }
            Event::ChunkAllocated { path, chunk, .. } => {
                self.files.entry(path.clone()).or_default().push(*chunk);
                self.allocated.insert(*chunk);
            }
            // A create of a path whose file is still live here: a master crash between logging
            // the file's deletion and announcing it hid the deletion (`file_deleted`).
            Event::FileCreated { path } => {
                if let Some(chunks) = self.files.remove(path) {
                    self.deleted
                        .entry(path.clone())
                        .or_default()
                        .push_back(chunks);
                }
            }
            Event::FileDeleted { path, .. } => {
                let chunks = self.files.remove(path).unwrap_or_default();
                self.deleted
                    .entry(path.clone())
                    .or_default()
                    .push_back(chunks);
            }
            // A path deleted twice is reclaimed in the order of its deletions (each waits the
            // same grace period). A reclaim with no deletion seen reclaims the live file: its
            // deletion was logged but a master crash kept it from being announced (found with the
            // master checkpointing every two log records).
            Event::FileReclaimed { hidden } => {
                let path = node::master::state::split_hidden(hidden).map(|(_, path)| path);
                let chunks = path
                    .and_then(|p| self.deleted.get_mut(p))
                    .and_then(|q| q.pop_front())
                    .or_else(|| path.and_then(|p| self.files.remove(p)));
                self.reclaimed.extend(chunks.into_iter().flatten());
            }
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
                self.unaccepted.remove(&(*chunk, *to));
            }
            Event::ReplicaCloned { chunk, version, to } => {
                self.unaccepted.remove(&(*chunk, *to));
                let r = (*chunk, *to, *version);
                if self.firm.remove(&r) && !self.unsaved.remove(&r) {
                    self.lifted.insert(r);
                }
                self.loose.remove(&r);
            }
            _ => {}
        }
    }

    /// The chunk's current version (0 before its first grant).
    pub fn current(&self, chunk: ChunkHandle) -> u64 {
        self.current.get(&chunk).copied().unwrap_or(0)
    }

    /// Whether a master crash may have hidden the chunk's current version: a grant offered before
    /// the restart above the version seen current, whose commit the crash may have synced unseen.
    pub fn version_unsure(&self, chunk: ChunkHandle) -> bool {
        self.unseen_commit
            .get(&chunk)
            .is_some_and(|v| *v > self.current(chunk))
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

    /// The servers the master surely counts as holding `chunk`: available with no ruling, at
    /// the current version (not merely ahead at an offered one), and not a copy whose finish it
    /// has not heard.
    pub fn located(&self, chunk: ChunkHandle) -> Vec<ServerId> {
        let now = self.current(chunk);
        let mut out = self.available(chunk);
        out.retain(|s| {
            self.held.get(&chunk).and_then(|h| h.get(s)) == Some(&now)
                && !self.unaccepted.contains(&(chunk, *s))
        });
        out
    }

    /// How many chunks the master may count `server` as holding (GFS §4.2's load), as a range
    /// `(surely, at_most)`, whether or not it counts the server live. Surely: chunks at a version
    /// that the server holds by its own acts at that version with no ruling against them. At
    /// most, besides: replicas the master may or may not count yet, for want of an event that
    /// says when it heard of them: replicas ahead at an offered version (a heartbeat during the
    /// grant may skip them), those a loose ruling leaves out, copies it has not heard finish,
    /// replicas the server threw away at start-up (until the server acts on the chunk again), and
    /// every replica of a chunk not yet at a version, held or placed there by its last offer (a
    /// placement counts from the offer, and a heartbeat taken before the server made the replica
    /// drops it again), and, since the server's last start, as many more as it kept beyond what
    /// its acts show (a copy it made but crashed before reporting); surely, as many fewer as a
    /// crash lost. A reclaimed file's chunks do not count: the master forgot them.
    pub fn load(&self, server: ServerId) -> (usize, usize) {
        let chunks: BTreeSet<ChunkHandle> = self
            .held
            .iter()
            .filter(|(_, h)| h.contains_key(&server))
            .map(|(c, _)| *c)
            .chain(
                self.placed
                    .iter()
                    .filter(|(_, p)| p.contains(&server))
                    .map(|(c, _)| *c),
            )
            .chain(
                self.discarded
                    .iter()
                    .filter(|(_, s)| *s == server)
                    .map(|(c, _)| *c),
            )
            .filter(|c| !self.reclaimed.contains(c))
            .collect();
        let (mut surely, mut maybe) = (0usize, 0usize);
        for chunk in chunks {
            let now = self.current(chunk);
            let held = self.held.get(&chunk).and_then(|h| h.get(&server)).copied();
            let Some(v) = held.filter(|_| now > 0) else {
                maybe += 1; // not yet at a version, or discarded
                continue;
            };
            let ahead = self.offered.get(&chunk).copied().unwrap_or(0).max(now);
            let rulings = [(chunk, server, now), (chunk, server, v)];
            if !(now..=ahead).contains(&v) || rulings.iter().any(|r| self.firm.contains(r)) {
                continue;
            }
            if v > now
                || rulings.iter().any(|r| self.loose.contains(r))
                || self.unaccepted.contains(&(chunk, server))
            {
                maybe += 1;
            } else {
                surely += 1;
            }
        }
        let unseen = self.unseen.get(&server).copied().unwrap_or(0);
        let lost = self.lost.get(&server).copied().unwrap_or(0);
        (surely.saturating_sub(lost), surely + maybe + unseen)
    }

    /// Whether the master may rank `server` behind others as a home for a copy of `chunk`, or
    /// not count it a candidate at all: it holds a replica of it at some version, by its own acts,
    /// or threw one away at start-up (the master counts it until the server's next heartbeat), or
    /// a ruling (firm or loose) left it out at the chunk's current version or above (a replica
    /// found corrupt at a version offered by a grant that never settled is excluded all the same).
    pub fn maybe_stale(&self, chunk: ChunkHandle, server: ServerId) -> bool {
        self.held
            .get(&chunk)
            .is_some_and(|h| h.contains_key(&server))
            || self.discarded.contains(&(chunk, server))
            || self.ruled_from_current(chunk, server)
    }

    /// Whether a ruling (firm or loose) left `server` out of `chunk` at its current version or
    /// above: the master rules a server out until the next committed version (its `excluded`
    /// set), so such a ruling covers any replica the server has there.
    fn ruled_from_current(&self, chunk: ChunkHandle, server: ServerId) -> bool {
        let (from, to) = (
            (chunk, server, self.current(chunk)),
            (chunk, server, u64::MAX),
        );
        self.firm.range(from..=to).next().is_some() || self.loose.range(from..=to).next().is_some()
    }

    /// Why the master may call `server`'s replica of `chunk` at `version` garbage, or `None` if
    /// it may not: the chunk is an orphan (its file was reclaimed, GFS §4.4, or the master's log
    /// never allocated it), the replica is stale (below the chunk's current version, GFS §4.5,
    /// or below a version offered before a master restart, which may have been committed),
    /// or a ruling (firm or loose) left it out at the current version or above (as for
    /// [`AvailableReplicas::maybe_stale`]): excluded from a grant, found corrupt, trimmed as
    /// extra, or the destination of a failed copy.
    pub fn garbage(&self, chunk: ChunkHandle, server: ServerId, version: u64) -> Option<&str> {
        let now = self.current(chunk);
        if self.reclaimed.contains(&chunk) {
            Some("its file was reclaimed")
        } else if !self.allocated.contains(&chunk) {
            Some("no log record allocated the chunk")
        } else if version < now {
            Some("stale")
        } else if self.unseen_commit.get(&chunk).is_some_and(|v| version < *v) {
            Some("stale at a version a master crash may have committed unseen")
        } else if self.ruled_from_current(chunk, server) {
            Some("ruled out at its version")
        } else {
            None
        }
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
