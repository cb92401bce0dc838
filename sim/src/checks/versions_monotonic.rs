//! Check `versions_monotonic`: a chunk's version never goes backwards on any node.
//!
//! Must always hold. GFS §4.5: the version number is how the master and chunkservers tell an
//! up-to-date replica from a stale one; if it could decrease, a stale replica could pass for a
//! current one. The check follows every version a node recorded for a chunk (the master's bumps and
//! adoptions, the chunkservers' version changes and copies), across restarts, and flags any decrease.
//! A replica's life ends when its chunkserver deletes or discards it; a later copy is a new replica.

use super::{field, Violation};
use node::trace::Event;
use std::collections::BTreeMap;
use std::fmt::Write;

pub const NAME: &str = "versions_monotonic";

pub fn check(events: &[Event]) -> Option<Violation> {
    let mut last: BTreeMap<(&str, &str), (u64, usize)> = BTreeMap::new();
    let mut report = String::new();
    let mut bad = 0;
    for (i, e) in events.iter().enumerate() {
        if matches!(e.kind, "replica_deleted" | "replica_discarded") {
            if let Some(chunk) = field(&e.detail, "chunk") {
                last.remove(&(e.node.as_str(), chunk));
            }
            continue;
        }
        if !matches!(
            e.kind,
            "version_set" | "replica_copied" | "version_bumped" | "version_adopted"
        ) {
            continue;
        }
        let (Some(chunk), Some(version)) = (
            field(&e.detail, "chunk"),
            field(&e.detail, "version").and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if let Some(&(prev, at)) = last.get(&(e.node.as_str(), chunk)) {
            if version < prev {
                bad += 1;
                let _ = writeln!(
                    report,
                    "  {} chunk {chunk}: version {prev} (event #{at}) then {version} at {:.3} ms ({}, event #{i})",
                    e.node,
                    e.time_ns as f64 / 1e6,
                    e.kind
                );
            }
        }
        last.insert((e.node.as_str(), chunk), (version, i));
    }
    (bad > 0).then(|| Violation {
        check: NAME,
        report: format!("{bad} chunk versions went backwards:\n{report}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(node: &str, kind: &'static str, detail: &str) -> Event {
        Event {
            time_ns: 0,
            node: node.into(),
            kind,
            detail: detail.into(),
        }
    }

    #[test]
    fn a_decrease_on_one_node_is_caught() {
        let mut events = vec![
            ev("master", "version_bumped", "chunk=c1 version=1"),
            ev("cs0", "version_set", "chunk=c1 version=1 role=primary"),
            ev("cs1", "version_set", "chunk=c1 version=2 role=primary"),
            ev(
                "cs0",
                "replica_copied",
                "chunk=c1 version=2 from=cs1 bytes=3",
            ),
            ev("master", "version_bumped", "chunk=c1 version=2"),
        ];
        assert_eq!(check(&events), None);
        // A deleted replica's successor may start lower; a live one may not.
        let mut reborn = events.clone();
        reborn.push(ev("cs1", "replica_deleted", "chunk=c1 version=2"));
        reborn.push(ev(
            "cs1",
            "replica_copied",
            "chunk=c1 version=1 from=cs0 bytes=3",
        ));
        assert_eq!(check(&reborn), None);
        events.push(ev(
            "cs1",
            "version_set",
            "chunk=c1 version=1 role=secondary",
        ));
        let v = check(&events).unwrap();
        assert!(
            v.report
                .contains("cs1 chunk c1: version 2 (event #2) then 1"),
            "{}",
            v.report
        );
    }
}
