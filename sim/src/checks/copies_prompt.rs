//! Check `copies_prompt`: once the faults have healed, a chunk short of its replication goal is
//! copied promptly, the most endangered first.
//!
//! Must hold from `all_healed` on (from the start in a run without faults), as a budget. GFS §4.3:
//! the master re-replicates a chunk "as soon as the number of available replicas falls below a
//! user-specified goal", and first the chunks furthest from it. `converged` only asks that the
//! cluster gets there within a minute of healing, and `copy_budget` counts copies that replaced
//! nothing; a master that copies late (a unit error in a timing rule), or the least endangered
//! chunk first, passes both. Before the faults heal, a copy may rightly wait on them.
//!
//! A chunk is *due* a copy when, by the nodes' acts: its file is visible (the path of its
//! `chunk_allocated`, not deleted since), it was granted a version, it has at least one available
//! replica but fewer than the goal, counting every replica the master might count
//! ([`AvailableReplicas::at_most`]), some server the master counts live holds no available
//! replica of it, no copy of it is in flight (`clone_started` not yet followed by
//! `replica_cloned` or `clone_failed`), its last lease (`lease_offered`, `lease_granted`,
//! `lease_renewed`) ran out `clone_quiet_ms` ago (a copy taken under a lease could miss its
//! mutations), and the master is that long past the grace of its last start (`grace_until_ms`).
//! The master runs at most `max_concurrent_clones` copies at once.
//!
//! A copy is *late* when a chunk has been due for longer than [`slack_ns`] with a copy slot free
//! and no copy started meanwhile (the master looks every heartbeat; the slack allows two looks and
//! the heartbeats that tell it what the acts already show). A copy is *out of order* when it
//! starts for a chunk with more available replicas than another chunk due for longer than that.
//! A run may have [`FREE_DELAYS`] of them; above that it fails with each, its chunk and replicas.
//! Waits are judged at protocol events and at the run's end, never at message or disk events,
//! so a replay (which records those too) reaches a sweep's verdict with the same report.

use super::available_replicas::AvailableReplicas;
use super::moved_when_quiet::LeaseQuiet;
use super::{ms, names, Violation};
use node::trace::{Entry, Event};
use node::{ChunkHandle, ServerId};
use std::collections::{BTreeMap, BTreeSet};

pub const NAME: &str = "copies_prompt";

/// Late or out-of-order copies a run may have: margin for what no event shows.
pub const FREE_DELAYS: usize = 0;

const MS: u64 = 1_000_000;

/// The master's copy rules, as the run configured them.
#[derive(Debug, Clone, Copy)]
pub struct CopyRules {
    /// Replicas each chunk should have (GFS §4.3's goal).
    pub goal: u32,
    /// How often the master looks for chunks to copy (its background pass).
    pub heartbeat_ms: u64,
    pub rpc_timeout_ms: u64,
    /// How long after a lease's expiry a chunk may be copied.
    pub clone_quiet_ms: u64,
    pub max_concurrent_clones: usize,
}

impl CopyRules {
    /// The rules of a cluster configured as `cfg`.
    pub fn of(cfg: &node::ClusterConfig) -> CopyRules {
        CopyRules {
            goal: cfg.replication,
            heartbeat_ms: cfg.heartbeat_ms,
            rpc_timeout_ms: cfg.rpc_timeout_ms,
            clone_quiet_ms: cfg.clone_quiet_ms(),
            max_concurrent_clones: cfg.max_concurrent_clones,
        }
    }
}

/// How long a chunk may stay due before its copy is late: two background passes and two RPC
/// timeouts.
pub fn slack_ns(rules: &CopyRules) -> u64 {
    (2 * rules.heartbeat_ms + 2 * rules.rpc_timeout_ms) * MS
}

/// A copy the master owed and did not make in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delay {
    /// `chunk` was due from `due_ns` and still had no copy at `seen_ns`.
    Late {
        chunk: ChunkHandle,
        due_ns: u64,
        seen_ns: u64,
        available: Vec<ServerId>,
    },
    /// At `at_ns` a copy of `copied` (with `copied_has` available replicas) started while
    /// `waiting`, with fewer, had been due since `due_ns`.
    OutOfOrder {
        at_ns: u64,
        copied: ChunkHandle,
        copied_has: usize,
        waiting: ChunkHandle,
        waiting_has: usize,
        due_ns: u64,
    },
}

/// What the check follows besides the available replicas.
#[derive(Default)]
struct Copies {
    replicas: AvailableReplicas,
    /// Chunks by the path they were allocated to, while that path is not deleted.
    by_path: BTreeMap<String, Vec<ChunkHandle>>,
    visible: BTreeSet<ChunkHandle>,
    quiet: LeaseQuiet,
    in_flight: BTreeSet<ChunkHandle>,
    /// Since when a copy slot has been free without interruption.
    slot_free_ns: u64,
    last_start_ns: u64,
    /// Chunks that lack a replica and could get one (all but the timing rules), and since when.
    short_since_ns: BTreeMap<ChunkHandle, u64>,
}

impl Copies {
    /// Takes `e` into account; returns the chunks whose shortness it may have changed, or `None`
    /// for every chunk.
    fn observe(&mut self, e: &Entry, max: usize) -> Option<Vec<ChunkHandle>> {
        self.replicas.observe(e);
        self.quiet.observe(e); // a lease changes when chunks are due, not whether they are short
        let t = e.time_ns;
        let chunk = match &e.event {
            Event::ChunkAllocated { path, chunk, .. } => {
                self.by_path.entry(path.clone()).or_default().push(*chunk);
                self.visible.insert(*chunk);
                *chunk
            }
            Event::FileDeleted { path, .. } => {
                let gone = self.by_path.remove(path).unwrap_or_default();
                for c in &gone {
                    self.visible.remove(c);
                }
                return Some(gone);
            }
            Event::MasterStarted { .. } | Event::MasterRecovered { .. } => {
                // A new master has no copies in flight (their answers go nowhere).
                self.in_flight.clear();
                self.slot_free_ns = t;
                return None;
            }
            Event::ServerJoined { .. } | Event::ServerDead { .. } => return None,
            Event::CloneStarted { chunk, .. } => {
                self.in_flight.insert(*chunk);
                self.last_start_ns = t;
                *chunk
            }
            Event::ReplicaCloned { chunk, .. } | Event::CloneFailed { chunk, .. } => {
                if self.in_flight.remove(chunk) && self.in_flight.len() + 1 == max {
                    self.slot_free_ns = t;
                }
                *chunk
            }
            Event::VersionSet { chunk, .. }
            | Event::ReplicaCopied { chunk, .. }
            | Event::ReplicaDeleted { chunk, .. }
            | Event::ReplicaDiscarded { chunk }
            | Event::VersionBumped { chunk, .. }
            | Event::VersionAdopted { chunk, .. }
            | Event::ReplicaCorrupt { chunk, .. }
            | Event::ReplicaExcluded { chunk, .. }
            | Event::ReplicaTrimmed { chunk, .. } => *chunk,
            _ => return Some(vec![]),
        };
        Some(vec![chunk])
    }

    /// Whether `chunk` lacks a replica and could get one, the timing rules aside.
    fn short(&self, chunk: ChunkHandle, goal: usize) -> bool {
        if !self.visible.contains(&chunk)
            || self.replicas.current(chunk) == 0
            || self.in_flight.contains(&chunk)
        {
            return false;
        }
        let available = self.replicas.at_most(chunk);
        !available.is_empty()
            && available.len() < goal
            && self.replicas.live().iter().any(|s| !available.contains(s))
    }

    /// Re-judges the shortness of `chunks` (every visible one for `None`) at `t`. A deleted
    /// file's chunks come back from [`Copies::observe`] as changed, and leave here.
    fn update(&mut self, chunks: Option<Vec<ChunkHandle>>, t: u64, goal: usize) {
        let chunks = chunks.unwrap_or_else(|| self.visible.iter().copied().collect());
        for c in chunks {
            if self.short(c, goal) {
                self.short_since_ns.entry(c).or_insert(t);
            } else {
                self.short_since_ns.remove(&c);
            }
        }
    }

    /// Since when `chunk`, short since `since`, has been due, the timing rules included.
    fn due_ns(&self, chunk: ChunkHandle, since: u64, quiet_ns: u64) -> u64 {
        since.max(self.quiet.quiet_from_ns(chunk, quiet_ns))
    }
}

/// Every late or out-of-order copy in `events`, of a run that ended at `end_ns` (or at its last
/// event, if later).
pub fn delays(events: &[Entry], rules: &CopyRules, end_ns: u64) -> Vec<Delay> {
    // Judged at protocol events only, so that a replay (which also records every message and
    // disk operation) reaches the verdict a sweep did, with the same report.
    let events: Vec<&Entry> = events
        .iter()
        .filter(|e| crate::trace::Shown::of(e.event.kind()).is_none())
        .collect();
    let healed = events
        .iter()
        .rev()
        .find(|e| matches!(e.event, Event::AllHealed {}))
        .map(|e| e.time_ns);
    let no_faults = !events
        .iter()
        .any(|e| matches!(e.event, Event::FaultInjected { .. }));
    let from = if no_faults { Some(0) } else { healed };
    let Some(from) = from else {
        return Vec::new();
    };
    let (goal, max) = (rules.goal as usize, rules.max_concurrent_clones);
    let (slack, quiet) = (slack_ns(rules), rules.clone_quiet_ms * MS);
    let mut copies = Copies::default();
    let mut out = Vec::new();
    let mut reported: BTreeSet<(ChunkHandle, u64)> = BTreeSet::new();
    let mut judging = false;
    let end = events.last().map_or(0, |e| e.time_ns).max(end_ns);
    for e in events.iter().copied().map(Some).chain([None]) {
        let t = e.map_or(end, |e| e.time_ns);
        if !judging && t >= from {
            // Shortness before the faults healed counts from the healing.
            judging = true;
            copies.update(None, from, goal);
        }
        if judging && copies.in_flight.len() < max {
            let free_since = copies.slot_free_ns.max(copies.last_start_ns);
            // (chunk, short since, due since): those due for longer than the slack.
            let due: Vec<(ChunkHandle, u64, u64)> = copies
                .short_since_ns
                .iter()
                .map(|(c, since)| {
                    let due = copies.due_ns(*c, *since, quiet).max(free_since);
                    (*c, *since, due)
                })
                .filter(|(_, _, due)| due.saturating_add(slack) < t)
                .collect();
            for (chunk, since, due_ns) in &due {
                // Once per stretch of shortness.
                if reported.insert((*chunk, *since)) {
                    out.push(Delay::Late {
                        chunk: *chunk,
                        due_ns: *due_ns,
                        seen_ns: t,
                        available: copies.replicas.at_most(*chunk),
                    });
                }
            }
            if let Some(Event::CloneStarted { chunk, .. }) = e.map(|e| &e.event) {
                let copied_has = copies.replicas.at_most(*chunk).len();
                let neediest = due
                    .iter()
                    .filter(|(c, _, _)| c != chunk)
                    .map(|(c, _, due_ns)| (copies.replicas.at_most(*c).len(), *c, *due_ns))
                    .min();
                if let Some((waiting_has, waiting, due_ns)) = neediest {
                    if waiting_has < copied_has {
                        out.push(Delay::OutOfOrder {
                            at_ns: t,
                            copied: *chunk,
                            copied_has,
                            waiting,
                            waiting_has,
                            due_ns,
                        });
                    }
                }
            }
        }
        let Some(e) = e else { break };
        let changed = copies.observe(e, max);
        if judging {
            copies.update(changed, t, goal);
        }
    }
    out
}

// The margin is zero today; the comparison stays so that raising it is one edit.
#[allow(clippy::absurd_extreme_comparisons)]
pub fn check(events: &[Entry], rules: &CopyRules, end_ns: u64) -> Option<Violation> {
    let delays = delays(events, rules, end_ns);
    if delays.len() <= FREE_DELAYS {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} copies were late or out of order once the faults had healed, over a budget of \
             {FREE_DELAYS} (GFS §4.3: a chunk below its goal of {} replicas is copied as soon as \
             it may be, the furthest from its goal first; late means due for over {} with a copy \
             slot free):",
            delays.len(),
            rules.goal,
            ms(slack_ns(rules)),
        ),
        delays.len(),
        delays.into_iter().map(|d| match d {
            Delay::Late {
                chunk,
                due_ns,
                seen_ns,
                available,
            } => format!(
                "chunk {chunk} due from {} (available on {}), still not copied at {}",
                ms(due_ns),
                names(&available),
                ms(seen_ns)
            ),
            Delay::OutOfOrder {
                at_ns,
                copied,
                copied_has,
                waiting,
                waiting_has,
                due_ns,
            } => format!(
                "at {}: chunk {copied} ({copied_has} available) copied before chunk {waiting} \
                 ({waiting_has} available, due from {})",
                ms(at_ns),
                ms(due_ns)
            ),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::event_at_ms as ev;
    use super::*;
    use node::trace::{FaultKind, FaultOn, NodeName};

    const RULES: CopyRules = CopyRules {
        goal: 3,
        heartbeat_ms: 200,
        rpc_timeout_ms: 300,
        clone_quiet_ms: 600,
        max_concurrent_clones: 2,
    };
    // Slack: 2 * 200 + 2 * 300 = 1,000 ms.

    fn master(t: u64, event: Event) -> Entry {
        ev(t, NodeName::Master, event)
    }

    /// Five live servers; chunk `c` of file `/fc` on cs0, cs1, cs2 at version 1, its lease over
    /// at 10 ms (quiet from 610 ms).
    fn cluster(chunks: &[u64]) -> Vec<Entry> {
        let mut out = super::super::servers_joined(5);
        for &c in chunks {
            let chunk = ChunkHandle(c);
            out.push(master(
                1,
                Event::ChunkAllocated {
                    path: format!("/f{c}"),
                    index: 0,
                    chunk,
                },
            ));
            for n in 0..3 {
                out.push(ev(
                    2,
                    NodeName::Cs(ServerId(n)),
                    Event::VersionSet {
                        chunk,
                        version: 1,
                        role: node::trace::Role::Secondary,
                    },
                ));
            }
            out.push(master(3, Event::VersionBumped { chunk, version: 1 }));
            out.push(master(
                3,
                Event::LeaseGranted {
                    chunk,
                    version: 1,
                    primary: ServerId(0),
                    secondaries: vec![ServerId(1), ServerId(2)],
                    expires_ms: 10,
                },
            ));
        }
        out
    }

    fn dead(t: u64, n: u32) -> Entry {
        master(
            t,
            Event::ServerDead {
                server: ServerId(n),
            },
        )
    }

    fn corrupt(t: u64, c: u64, n: u32) -> Entry {
        master(
            t,
            Event::ReplicaCorrupt {
                chunk: ChunkHandle(c),
                version: 1,
                server: ServerId(n),
            },
        )
    }

    fn copy(t: u64, c: u64) -> Entry {
        master(
            t,
            Event::CloneStarted {
                chunk: ChunkHandle(c),
                version: 1,
                from: ServerId(0),
                to: ServerId(3),
                replicas: 2,
            },
        )
    }

    /// cs3 copies chunk `c` and the master hears of it.
    fn copied(t: u64, c: u64) -> [Entry; 2] {
        let chunk = ChunkHandle(c);
        [
            ev(
                t,
                NodeName::Cs(ServerId(3)),
                Event::ReplicaCopied {
                    chunk,
                    version: 1,
                    from: ServerId(0),
                    bytes: 8,
                },
            ),
            master(
                t,
                Event::ReplicaCloned {
                    chunk,
                    version: 1,
                    to: ServerId(3),
                },
            ),
        ]
    }

    /// `events`, then the healing of every fault at `t` (with no fault, just the run's end).
    fn later(events: &[Entry], t: u64) -> Vec<Entry> {
        let mut e = events.to_vec();
        e.push(ev(t, NodeName::Checker, Event::AllHealed {}));
        e
    }

    #[test]
    fn a_short_chunk_must_be_copied_within_the_slack() {
        // cs2 dies at 2,000 ms: chunk 1 is due at once (its lease has long been quiet).
        let mut base = cluster(&[1]);
        base.push(dead(2_000, 2));
        // Copied 900 ms later: in time.
        let mut prompt = base.clone();
        prompt.push(copy(2_900, 1));
        prompt.extend(copied(2_950, 1));
        assert_eq!(delays(&later(&prompt, 9_000), &RULES, 0), vec![]);
        // Copied 1,500 ms later: late, once.
        let mut slow = base.clone();
        slow.push(copy(3_500, 1));
        slow.extend(copied(3_550, 1));
        let found = delays(&later(&slow, 9_000), &RULES, 0);
        assert_eq!(
            found,
            vec![Delay::Late {
                chunk: ChunkHandle(1),
                due_ns: 2_000 * MS,
                seen_ns: 3_500 * MS,
                available: vec![ServerId(0), ServerId(1)],
            }]
        );
        let v = check(&later(&slow, 9_000), &RULES, 0).expect("violation");
        assert!(
            v.report.contains(
                "chunk c1 due from 2000.000 ms (available on cs0, cs1), still not copied at \
                 3500.000 ms"
            ),
            "{}",
            v.report
        );
        // Never copied: late by the end of the run, even when no event came after the slack.
        assert_eq!(delays(&later(&base, 9_000), &RULES, 0).len(), 1);
        assert_eq!(
            delays(&base, &RULES, 0),
            vec![],
            "the last event is the death"
        );
        assert_eq!(delays(&base, &RULES, 3_100 * MS).len(), 1);
        // A failed copy makes the chunk due again from its failure.
        let mut failed = base.clone();
        failed.extend([
            copy(2_100, 1),
            master(
                2_200,
                Event::CloneFailed {
                    chunk: ChunkHandle(1),
                    version: 1,
                    to: ServerId(3),
                },
            ),
            copy(3_100, 1),
        ]);
        assert_eq!(delays(&later(&failed, 9_000), &RULES, 0), vec![]);
    }

    #[test]
    fn leases_grace_full_slots_deleted_files_and_faults_excuse_the_wait() {
        // A chunk under a lease until 2,500 ms may not be copied before 3,100 ms.
        let mut leased = cluster(&[1]);
        leased.push(master(
            100,
            Event::LeaseRenewed {
                chunk: ChunkHandle(1),
                version: 1,
                primary: ServerId(0),
                expires_ns: 2_500 * MS,
            },
        ));
        leased.extend([dead(2_000, 2), copy(4_000, 1)]);
        assert_eq!(delays(&later(&leased, 9_000), &RULES, 0), vec![]);
        // Likewise a master's grace after its start.
        let mut restarted = cluster(&[1]);
        restarted.push(master(
            1_000,
            Event::MasterRecovered {
                lsn: 3,
                files: 1,
                grace_until_ms: 2_500,
            },
        ));
        restarted.extend((0..5).map(|n| {
            master(
                1_100,
                Event::ServerJoined {
                    server: ServerId(n),
                    chunks: 1,
                },
            )
        }));
        restarted.extend([dead(2_000, 2), copy(4_000, 1)]);
        assert_eq!(delays(&later(&restarted, 9_000), &RULES, 0), vec![]);
        // Both copy slots busy with other chunks: chunk 1 waits for a slot.
        let mut busy = cluster(&[1, 2, 3]);
        busy.extend([corrupt(2_000, 2, 2), corrupt(2_000, 3, 2)]);
        busy.extend([copy(2_100, 2), copy(2_100, 3), corrupt(2_200, 1, 2)]);
        busy.extend(copied(4_000, 2));
        busy.push(copy(4_500, 1));
        busy.extend(copied(4_600, 3));
        assert_eq!(delays(&later(&busy, 9_000), &RULES, 0), vec![]);
        // A deleted file's chunk is never due.
        let mut deleted = cluster(&[1]);
        deleted.extend([
            dead(2_000, 2),
            master(
                2_100,
                Event::FileDeleted {
                    path: "/f1".into(),
                    live_leases: 0,
                },
            ),
        ]);
        assert_eq!(delays(&later(&deleted, 9_000), &RULES, 0), vec![]);
        // Before the faults heal, a copy may wait on them; after, the wait counts from healing.
        let mut faulty = cluster(&[1]);
        faulty.push(ev(
            1_000,
            NodeName::Nemesis,
            Event::FaultInjected {
                fault: FaultKind::Loss,
                on: FaultOn::Loss { percent: 5 },
                unsynced_writes_lost: None,
            },
        ));
        faulty.push(dead(2_000, 2));
        let mut healed = later(&faulty, 5_000);
        healed.push(copy(5_900, 1));
        assert_eq!(delays(&healed, &RULES, 0), vec![]);
        let mut healed_late = later(&faulty, 5_000);
        healed_late.push(copy(6_100, 1));
        assert_eq!(delays(&healed_late, &RULES, 0).len(), 1);
        // A run with faults that never healed is not judged.
        assert_eq!(delays(&faulty, &RULES, 0), vec![]);
    }

    #[test]
    fn the_chunk_furthest_from_its_goal_is_copied_first() {
        // Chunk 1 lost two replicas, chunk 2 one; both due from 2,000 ms.
        let mut base = cluster(&[1, 2]);
        base.extend([
            corrupt(2_000, 1, 1),
            corrupt(2_000, 1, 2),
            corrupt(2_000, 2, 2),
        ]);
        let mut right = base.clone();
        right.extend([copy(2_200, 1), copy(2_200, 2)]);
        assert_eq!(delays(&later(&right, 2_300), &RULES, 0), vec![]);
        // Chunk 2 first, while chunk 1 had waited past the slack: out of order (and chunk 1 late).
        let mut wrong = cluster(&[1, 2]);
        wrong.extend([
            corrupt(2_000, 1, 1),
            corrupt(2_000, 1, 2),
            corrupt(2_000, 2, 2),
        ]);
        wrong.push(copy(3_100, 2));
        let found = delays(&later(&wrong, 3_100), &RULES, 0);
        assert!(
            found.contains(&Delay::OutOfOrder {
                at_ns: 3_100 * MS,
                copied: ChunkHandle(2),
                copied_has: 2,
                waiting: ChunkHandle(1),
                waiting_has: 1,
                due_ns: 2_000 * MS,
            }),
            "{found:?}"
        );
    }
}
