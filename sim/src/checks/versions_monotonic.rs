//! Check `versions_monotonic`: a chunk's version never goes backwards on any node.
//!
//! Must always hold. GFS §4.5: the version number is how the master and chunkservers tell an
//! up-to-date replica from a stale one; if it could decrease, a stale replica could pass for a
//! current one. The check follows every version a node recorded for a chunk (the master's bumps and
//! adoptions, the chunkservers' version changes and copies), across restarts, and flags any decrease.
//! A replica's life ends when its chunkserver deletes or discards it; a later copy is a new replica.

use super::Violation;
use node::trace::{Entry, Event, NodeName};
use node::ChunkHandle;
use std::collections::BTreeMap;
use std::fmt::Write;

pub const NAME: &str = "versions_monotonic";

pub fn check(events: &[Entry]) -> Option<Violation> {
    let mut last: BTreeMap<(NodeName, ChunkHandle), (u64, usize)> = BTreeMap::new();
    let mut report = String::new();
    let mut bad = 0;
    for (i, e) in events.iter().enumerate() {
        let (chunk, version) = match e.event {
            Event::ReplicaDeleted { chunk, .. } | Event::ReplicaDiscarded { chunk } => {
                last.remove(&(e.node, chunk));
                continue;
            }
            Event::VersionSet { chunk, version, .. }
            | Event::ReplicaCopied { chunk, version, .. }
            | Event::VersionBumped { chunk, version }
            | Event::VersionAdopted { chunk, version, .. } => (chunk, version),
            _ => continue,
        };
        if let Some(&(prev, at)) = last.get(&(e.node, chunk)) {
            if version < prev {
                bad += 1;
                let _ = writeln!(
                    report,
                    "  {} chunk {chunk}: version {prev} (event #{at}) then {version} at {:.3} ms ({}, event #{i})",
                    e.node,
                    e.time_ns as f64 / 1e6,
                    e.event.kind()
                );
            }
        }
        last.insert((e.node, chunk), (version, i));
    }
    (bad > 0).then(|| Violation {
        check: NAME,
        report: format!("{bad} chunk versions went backwards:\n{report}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::trace::Role;
    use node::ServerId;

    fn ev(node: NodeName, event: Event) -> Entry {
        Entry {
            time_ns: 0,
            node,
            event,
        }
    }

    const C1: ChunkHandle = ChunkHandle(1);

    fn set(version: u64, role: Role) -> Event {
        Event::VersionSet {
            chunk: C1,
            version,
            role,
        }
    }

    fn copied(version: u64, from: u32) -> Event {
        Event::ReplicaCopied {
            chunk: C1,
            version,
            from: ServerId(from),
            bytes: 3,
        }
    }

    #[test]
    fn a_decrease_on_one_node_is_caught() {
        let (cs0, cs1) = (NodeName::Cs(ServerId(0)), NodeName::Cs(ServerId(1)));
        let bumped = |version| Event::VersionBumped { chunk: C1, version };
        let mut events = vec![
            ev(NodeName::Master, bumped(1)),
            ev(cs0, set(1, Role::Primary)),
            ev(cs1, set(2, Role::Primary)),
            ev(cs0, copied(2, 1)),
            ev(NodeName::Master, bumped(2)),
        ];
        assert_eq!(check(&events), None);
        // A deleted replica's successor may start lower; a live one may not.
        let mut reborn = events.clone();
        reborn.push(ev(
            cs1,
            Event::ReplicaDeleted {
                chunk: C1,
                version: 2,
            },
        ));
        reborn.push(ev(cs1, copied(1, 0)));
        assert_eq!(check(&reborn), None);
        events.push(ev(cs1, set(1, Role::Secondary)));
        let v = check(&events).unwrap();
        assert!(
            v.report
                .contains("cs1 chunk c1: version 2 (event #2) then 1"),
            "{}",
            v.report
        );
        // The master's own versions are followed too.
        let mut master = events[..5].to_vec();
        master.push(ev(
            NodeName::Master,
            Event::VersionAdopted {
                chunk: C1,
                version: 1,
                from: ServerId(0),
            },
        ));
        let v = check(&master).unwrap();
        assert!(
            v.report.contains("master chunk c1: version 2"),
            "{}",
            v.report
        );
    }
}
