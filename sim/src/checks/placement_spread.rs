//! Check `placement_spread`: new replicas go to the least-loaded servers, a copy counting the
//! copies its own pass has just ordered, and extra replicas are dropped from the most-loaded.
//!
//! Must always hold. GFS §4.2 places a new chunk's replicas "on chunkservers with below-average
//! disk space utilization", and §4.3 places a copy "with goals similar to those for creation:
//! equalizing disk space utilization". A master that forgets, within one pass, the copies it has
//! just ordered sends them all to the same server; one that places by anything but load fills
//! some disks first. Every replica is still sound and every correctness check passes, but one
//! disk fills and one server carries the traffic. Nothing else judges spread.
//!
//! Each server's load is what the master may know of it, counted from the nodes' acts by
//! [`AvailableReplicas::load`] as a range: the chunks it surely counts, and at most those plus the
//! replicas whose counting no event settles (a placement a heartbeat may have dropped, a copy
//! whose finish the master may not have heard yet, ...). A choice is judged against the others
//! the master had: it fails only if the chosen server surely held more than another could at
//! most, by more than [`SLACK`].
//! - A *placement* (`lease_offered` for a chunk not yet at a version: its `replicas` are where the
//!   master put it) fails if a placed server held more than a live server left out.
//! - A *copy* (`clone_started`) fails if its destination, with the copies ordered to it earlier in
//!   the same pass (the same instant), held more than another candidate: a server the master
//!   counts live that holds no available replica of the chunk, with that pass's copies too. The
//!   master ranks a server holding a stale copy behind the others and may or may not still
//!   remember one, so only a destination with no copy or ruling is judged, against such
//!   candidates. Copies of earlier passes still running do not count: the master counts a copy
//!   once it finished, so two passes a heartbeat apart may choose the same server.
//! - A *trim* (`replica_trimmed`: an extra replica dropped, GFS §4.3 "removes replicas",
//!   "equalizing disk space utilization") fails if another server the master surely counts as
//!   holding the chunk (available by its acts, at the current version, the copy that made it
//!   accepted) surely held more than the trimmed server could: the spread a trim restores goes
//!   the wrong way. Trims earlier in the same pass count: their replicas are out of the load.
//!   A holder that joined within two passes is not held against it: the heartbeat it joined
//!   with may predate replicas it made just before, which the master learns of at the next.
//!
//! A server passed over counts only if it was surely live: the master counts a server live while
//! its last heartbeat is recent, which no event shows, and says so at its next pass
//! (`server_dead`, or `server_joined` if it hears from it first); so a server with either within
//! two passes of the choice, or passed over by a master that crashed within two passes (and so
//! ran no pass to say it), is not held against it. The report lists each crowded choice with
//! both servers' loads.

use super::available_replicas::AvailableReplicas;
use super::Violation;
use node::trace::{Entry, Event, FaultKind, NodeName};
use node::{ChunkHandle, ServerId};
use std::collections::BTreeMap;

pub const NAME: &str = "placement_spread";

/// How many more chunks a chosen server may surely hold than another could: zero, because the
/// loads compared are the least and the most the master may have counted.
pub const SLACK: usize = 0;

/// A new replica put on a server that held more than another the master could have chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crowded {
    /// Index of the `lease_offered` (placement) or `clone_started` (copy) event.
    pub index: usize,
    pub choice: Choice,
    pub chunk: ChunkHandle,
    pub dest: ServerId,
    /// The least the chosen server held, counting copies ordered to it earlier in the pass (for a
    /// trim: the most the trimmed server held).
    pub dest_load: usize,
    /// Of which copies ordered earlier in the same pass.
    pub dest_in_pass: usize,
    /// The least-loaded server passed over, and the most it held (for a trim: the most-loaded
    /// holder kept, and the least it held).
    pub other: ServerId,
    pub other_load: usize,
}

/// What the master chose a server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// A new chunk's replica (its first grant).
    Placement,
    /// A copy's destination.
    Copy,
    /// The replica dropped as extra.
    Trim,
}

/// Every placement or copy that chose a server holding more than [`SLACK`] chunks above another.
/// `heartbeat_ms` is how often the master's background pass runs.
pub fn crowded(events: &[Entry], heartbeat_ms: u64) -> Vec<Crowded> {
    // The master counts a server live while its last heartbeat is recent, and says it is not
    // (`server_dead`) at its next pass, or hears from it again first (`server_joined`): a server
    // passed over is judged only if neither comes within two passes, so it surely was live.
    let window_ns = 2 * heartbeat_ms * 1_000_000;
    // A master that crashes runs no more passes: its crash counts as a change for every server.
    let mut changes: BTreeMap<Option<ServerId>, Vec<u64>> = BTreeMap::new();
    for e in events {
        let who = match &e.event {
            Event::ServerDead { server } | Event::ServerJoined { server, .. } => Some(*server),
            Event::FaultInjected {
                fault: FaultKind::MasterCrash,
                ..
            } => None,
            _ => continue,
        };
        changes.entry(who).or_default().push(e.time_ns);
    }
    let unchanged = |who: Option<ServerId>, t: u64| {
        changes.get(&who).is_none_or(|times| {
            let after = times.partition_point(|x| *x <= t);
            times.get(after).is_none_or(|x| *x > t + window_ns)
        })
    };
    let surely_live = |replicas: &AvailableReplicas, s: ServerId, t: u64| {
        replicas.live().contains(&s) && unchanged(Some(s), t) && unchanged(None, t)
    };
    // When each server last joined: a rejoining server's first heartbeat may predate replicas it
    // made just before (a copy while the master had given up on it), which the master learns of
    // only at its next one.
    let mut joined_ns: BTreeMap<ServerId, u64> = BTreeMap::new();
    let mut replicas = AvailableReplicas::default();
    // The current pass: its instant and the copies it ordered to each server.
    let mut pass: (u64, BTreeMap<ServerId, usize>) = (u64::MAX, BTreeMap::new());
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.node == NodeName::Master {
            match &e.event {
                // Judged before the offer is observed: its own placement is not yet load. A chunk
                // whose first grant a master crash may have committed unseen is not placed again:
                // the master grants it to the replicas it reported (found with the master
                // checkpointing every two log records).
                Event::LeaseOffered {
                    chunk,
                    replicas: placed,
                    ..
                } if replicas.current(*chunk) == 0 && !replicas.version_unsure(*chunk) => {
                    let load = |s: ServerId| replicas.load(s);
                    let least = replicas
                        .live()
                        .iter()
                        .filter(|s| !placed.contains(s) && surely_live(&replicas, **s, e.time_ns))
                        .map(|s| (load(*s).1, *s))
                        .min();
                    let most = placed.iter().map(|s| (load(*s).0, *s)).max();
                    if let (Some((other_load, other)), Some((dest_load, dest))) = (least, most) {
                        if dest_load > other_load + SLACK {
                            out.push(Crowded {
                                index: i,
                                choice: Choice::Placement,
                                chunk: *chunk,
                                dest,
                                dest_load,
                                dest_in_pass: 0,
                                other,
                                other_load,
                            });
                        }
                    }
                }
                Event::CloneStarted { chunk, to, .. } => {
                    if pass.0 != e.time_ns {
                        pass = (e.time_ns, BTreeMap::new());
                    }
                    let live = |s| surely_live(&replicas, s, e.time_ns);
                    if let Some(c) = crowded_copy(&replicas, &pass.1, live, *chunk, *to) {
                        out.push(Crowded { index: i, ..c });
                    }
                    *pass.1.entry(*to).or_default() += 1;
                }
                Event::ReplicaTrimmed { chunk, server } => {
                    let settled = |s: &ServerId| {
                        joined_ns
                            .get(s)
                            .is_none_or(|j| j.saturating_add(window_ns) < e.time_ns)
                    };
                    let kept = replicas
                        .located(*chunk)
                        .into_iter()
                        .filter(|s| s != server && settled(s))
                        .map(|s| (replicas.load(s).0, s))
                        .max();
                    let dest_load = replicas.load(*server).1;
                    if let Some((other_load, other)) = kept {
                        if other_load > dest_load + SLACK {
                            out.push(Crowded {
                                index: i,
                                choice: Choice::Trim,
                                chunk: *chunk,
                                dest: *server,
                                dest_load,
                                dest_in_pass: 0,
                                other,
                                other_load,
                            });
                        }
                    }
                }
                Event::ServerJoined { server, .. } => {
                    joined_ns.insert(*server, e.time_ns);
                }
                _ => {}
            }
        }
        replicas.observe(e);
    }
    out
}

/// Judges a copy of `chunk` to `to`, with `in_pass` the copies its pass ordered before it.
fn crowded_copy(
    replicas: &AvailableReplicas,
    in_pass: &BTreeMap<ServerId, usize>,
    surely_live: impl Fn(ServerId) -> bool,
    chunk: ChunkHandle,
    to: ServerId,
) -> Option<Crowded> {
    let in_pass = |s: ServerId| in_pass.get(&s).copied().unwrap_or(0);
    let load = |s: ServerId| {
        let (surely, at_most) = replicas.load(s);
        (surely + in_pass(s), at_most + in_pass(s))
    };
    let clean = |s: ServerId| !replicas.maybe_stale(chunk, s);
    if !clean(to) {
        return None;
    }
    let available = replicas.at_most(chunk);
    let (other_load, other) = replicas
        .live()
        .iter()
        .filter(|s| **s != to && !available.contains(s) && clean(**s) && surely_live(**s))
        .map(|s| (load(*s).1, *s))
        .min()?;
    let dest_load = load(to).0;
    (dest_load > other_load + SLACK).then_some(Crowded {
        index: 0,
        choice: Choice::Copy,
        chunk,
        dest: to,
        dest_load,
        dest_in_pass: in_pass(to),
        other,
        other_load,
    })
}

pub fn check(events: &[Entry], heartbeat_ms: u64) -> Option<Violation> {
    let crowded = crowded(events, heartbeat_ms);
    if crowded.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} new replicas went to a server holding more chunks than another live server that \
             could have taken them, or extra ones were dropped from a server holding fewer than \
             another holder (GFS §4.2, §4.3: replicas go where disk use is lowest, and leave \
             where it is highest):",
            crowded.len()
        ),
        crowded.len(),
        crowded.into_iter().map(|c| {
            let at = events[c.index].time_ns as f64 / 1e6;
            let (what, pass) = match c.choice {
                Choice::Copy => {
                    let pass = format!(
                        " ({} of them copies ordered earlier in this pass)",
                        c.dest_in_pass
                    );
                    ("copied to", pass)
                }
                Choice::Placement => ("placed on", String::new()),
                Choice::Trim => {
                    return format!(
                        "event #{} at {at:.3} ms: the replica of chunk {} on {} dropped as extra, \
                         which held at most {} chunks, while {}, also holding it, held {}",
                        c.index, c.chunk, c.dest, c.dest_load, c.other, c.other_load
                    )
                }
            };
            format!(
                "event #{} at {at:.3} ms: chunk {} {what} {}, which held {} chunks{pass}, while {} \
                 held at most {}",
                c.index,
                c.chunk,
                c.dest,
                c.dest_load,
                c.other,
                c.other_load
            )
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::event_at_ms as ev;
    use super::*;
    use node::trace::{NodeName, Role};

    fn holds(t: u64, server: u32, chunk: u64) -> Entry {
        ev(
            t,
            NodeName::Cs(ServerId(server)),
            Event::VersionSet {
                chunk: ChunkHandle(chunk),
                version: 1,
                role: Role::Secondary,
            },
        )
    }

    const HEARTBEAT_MS: u64 = 200;

    fn crowded_(events: &[Entry]) -> Vec<Crowded> {
        crowded(events, HEARTBEAT_MS)
    }

    fn check_(events: &[Entry]) -> Option<Violation> {
        check(events, HEARTBEAT_MS)
    }

    fn master(t: u64, event: Event) -> Entry {
        ev(t, NodeName::Master, event)
    }

    fn clone_to(t: u64, chunk: u64, to: u32) -> Entry {
        master(
            t,
            Event::CloneStarted {
                chunk: ChunkHandle(chunk),
                version: 1,
                from: ServerId(0),
                to: ServerId(to),
                replicas: 1,
            },
        )
    }

    fn trimmed(t: u64, chunk: u64, server: u32) -> Entry {
        master(
            t,
            Event::ReplicaTrimmed {
                chunk: ChunkHandle(chunk),
                server: ServerId(server),
            },
        )
    }

    /// Servers 0 to `n - 1` joined at 0 ms, and each chunk of `held` at version 1 on its servers.
    fn cluster(n: u32, held: &[(u64, &[u32])]) -> Vec<Entry> {
        let mut events = super::super::servers_joined(n);
        for (chunk, servers) in held {
            for s in *servers {
                events.push(holds(1, *s, *chunk));
            }
            events.push(master(
                1,
                Event::VersionBumped {
                    chunk: ChunkHandle(*chunk),
                    version: 1,
                },
            ));
        }
        events
    }

    /// Chunks 1 and 2 on all of servers 0, 1, 2 and 3 (one extra each), chunks 3 and 4 on server
    /// 0 only, chunk 5 on server 1 only: server 0 holds 4, server 1 holds 3, servers 2 and 3 two.
    fn two_chunks_with_extras() -> Vec<Entry> {
        cluster(
            4,
            &[
                (1, &[0, 1, 2, 3]),
                (2, &[0, 1, 2, 3]),
                (3, &[0]),
                (4, &[0]),
                (5, &[1]),
            ],
        )
    }

    #[test]
    fn extras_are_dropped_from_the_most_loaded_holders() {
        // One pass: chunk 1 leaves server 0 (4 chunks), then chunk 2 leaves server 1 (3, against
        // server 0's 3 now): the pass counts its own trims.
        let mut spread = two_chunks_with_extras();
        spread.extend([trimmed(1_000, 1, 0), trimmed(1_000, 2, 1)]);
        assert_eq!(crowded_(&spread), vec![]);
        // A pass that forgets its trims takes both from server 0; the second leaves server 1
        // with 3 chunks against server 0's 3: a tie, allowed. A trim from server 2 (2 chunks)
        // while server 0 holds 4 is not.
        let mut piled = two_chunks_with_extras();
        piled.extend([trimmed(1_000, 1, 0), trimmed(1_000, 2, 0)]);
        assert_eq!(crowded_(&piled), vec![]);
        let mut wrong = two_chunks_with_extras();
        wrong.push(trimmed(1_000, 1, 2));
        let found = crowded_(&wrong);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].choice, found[0].dest_load, found[0].other),
            (Choice::Trim, 2, ServerId(0))
        );
        assert_eq!(found[0].other_load, 4);
        // Within two passes of their joining (at 0 ms), the other holders may hold replicas the
        // master has not heard of: they are not held against the trim.
        let mut early = two_chunks_with_extras();
        early.push(trimmed(300, 1, 2));
        assert_eq!(crowded_(&early), vec![]);
        let v = check_(&wrong).expect("a trim from a light server fails the check");
        assert!(
            v.report
                .contains("the replica of chunk c1 on cs2 dropped as extra, which held at most 2"),
            "{}",
            v.report
        );
    }

    /// Chunks 1 and 2 at version 1, each held by server 0 only; servers 1 and 2 hold nothing.
    fn two_short_chunks() -> Vec<Entry> {
        cluster(3, &[(1, &[0]), (2, &[0])])
    }

    #[test]
    fn two_copies_of_one_pass_to_one_server_are_caught_and_spread_ones_are_not() {
        // Spread: one copy to each empty server.
        let mut spread = two_short_chunks();
        spread.extend([clone_to(10, 1, 1), clone_to(10, 2, 2)]);
        assert_eq!(crowded_(&spread), vec![]);
        assert!(check_(&spread).is_none());

        // Both copies of the pass to server 1, while server 2 was as empty.
        let mut piled = two_short_chunks();
        piled.extend([clone_to(10, 1, 1), clone_to(10, 2, 1)]);
        let found = crowded_(&piled);
        assert_eq!(
            found,
            vec![Crowded {
                index: piled.len() - 1,
                choice: Choice::Copy,
                chunk: ChunkHandle(2),
                dest: ServerId(1),
                dest_load: 1,
                dest_in_pass: 1,
                other: ServerId(2),
                other_load: 0,
            }]
        );
        let v = check_(&piled).expect("a crowded copy fails the check");
        assert_eq!(v.check, NAME);
        assert!(
            v.report
                .contains("chunk c2 copied to cs1, which held 1 chunks (1 of them copies"),
            "{}",
            v.report
        );

        // Server 2 passed over, but declared dead within two passes: the master may already
        // have counted it silent. Declared dead later, it was surely live.
        for (dead_ms, caught) in [(10 + 2 * HEARTBEAT_MS, 0), (11 + 2 * HEARTBEAT_MS, 1)] {
            let mut dying = piled.clone();
            dying.push(master(
                dead_ms,
                Event::ServerDead {
                    server: ServerId(2),
                },
            ));
            assert_eq!(crowded_(&dying).len(), caught, "dead at {dead_ms} ms");
        }

        // The same two copies in two passes: the first had not finished when the second was
        // ordered, and the master counts a copy once it finished.
        let mut two_passes = two_short_chunks();
        two_passes.extend([clone_to(10, 1, 1), clone_to(20, 2, 1)]);
        assert_eq!(crowded_(&two_passes), vec![]);
    }

    #[test]
    fn a_finished_copy_counts_once_the_master_accepts_it() {
        let copied = |t| {
            ev(
                t,
                NodeName::Cs(ServerId(1)),
                Event::ReplicaCopied {
                    chunk: ChunkHandle(1),
                    version: 1,
                    from: ServerId(0),
                    bytes: 8,
                },
            )
        };
        let accepted = |t| {
            master(
                t,
                Event::ReplicaCloned {
                    chunk: ChunkHandle(1),
                    version: 1,
                    to: ServerId(1),
                },
            )
        };
        // Server 1 holds chunk 1 by its act, but the master has not heard: a copy of chunk 2 may
        // still go to it.
        let mut early = two_short_chunks();
        early.extend([clone_to(10, 1, 1), copied(11), clone_to(20, 2, 1)]);
        assert_eq!(crowded_(&early), vec![]);
        // Once the master counted it, server 2 (empty) is the place for chunk 2.
        let mut late = two_short_chunks();
        late.extend([
            clone_to(10, 1, 1),
            copied(11),
            accepted(12),
            clone_to(20, 2, 1),
        ]);
        assert_eq!(crowded_(&late).len(), 1);
    }

    #[test]
    fn a_new_chunk_placed_on_fuller_servers_is_caught() {
        let offer = |t, chunk, on: &[u32]| {
            master(
                t,
                Event::LeaseOffered {
                    chunk: ChunkHandle(chunk),
                    version: 1,
                    primary: ServerId(on[0]),
                    replicas: on.iter().map(|s| ServerId(*s)).collect(),
                    expires_ns: 1_000 * 1_000_000,
                },
            )
        };
        // Chunks 1 and 2 each hold servers 0 and 1; server 2 holds nothing.
        let mut events = two_short_chunks();
        events.extend([holds(2, 1, 1), holds(2, 1, 2)]);
        // Chunk 3 goes to servers 0 and 1 (two chunks each) while server 2 is empty.
        let mut fuller = events.clone();
        fuller.push(offer(10, 3, &[0, 1]));
        let found = crowded_(&fuller);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].choice, found[0].dest_load, found[0].other),
            (Choice::Placement, 2, ServerId(2))
        );
        let v = check_(&fuller).expect("a crowded placement fails the check");
        assert!(
            v.report
                .contains("chunk c3 placed on cs1, which held 2 chunks, while cs2 held at most 0"),
            "{}",
            v.report
        );
        // On servers 2 and 0: the emptiest first, and a tie between 0 and 1.
        let mut spread = events.clone();
        spread.push(offer(10, 3, &[0, 2]));
        assert_eq!(crowded_(&spread), vec![]);
        // The master counts a placement from its offer, but no event says when a heartbeat drops
        // one again, so chunk 3 may weigh on servers 0 and 2 or not: chunk 4 may go to either
        // pair with server 2, but not to servers 0 and 1 (two chunks each, server 2 one at most).
        for on in [[0, 2], [1, 2]] {
            let mut next = spread.clone();
            next.push(offer(11, 4, &on));
            assert_eq!(crowded_(&next), vec![], "{on:?}");
        }
        let mut next = spread.clone();
        next.push(offer(11, 4, &[0, 1]));
        assert_eq!(crowded_(&next).len(), 1);
        // A master that crashed after offering chunk 3's first grant may have committed it
        // unseen: it then grants chunk 3 again to the servers that reported it, no placement.
        let mut restarted = events.clone();
        restarted.push(offer(10, 3, &[0, 1]));
        restarted.push(master(
            11,
            Event::MasterRecovered {
                lsn: 9,
                files: 1,
                grace_until_ms: 12,
            },
        ));
        restarted.extend(super::super::servers_joined(3));
        let judged_last =
            |events: &[Entry]| crowded_(events).iter().any(|c| c.index == events.len() - 1);
        let mut again = restarted.clone();
        again.push(offer(20, 3, &[0, 1]));
        assert!(!judged_last(&again), "not a placement");
        // Chunk 4, never offered before, is still judged.
        restarted.push(offer(20, 4, &[0, 1]));
        assert!(judged_last(&restarted));
    }
}
