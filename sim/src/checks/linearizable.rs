//! Check `namespace_linearizable`: creates, deletes and every observation of a file's existence
//! are linearizable against a set of paths.
//!
//! Must always hold. GFS §2.6.3 and §4.1: namespace mutations are atomic and executed by the
//! master under locks, and its log gives them one global order. So there must be a single order of
//! all namespace operations, each taking effect at one instant between its invocation and its
//! completion, that explains every answer: `create` succeeded only on an absent path and
//! `already_exists` only on a present one, `delete` and `not_found` likewise, and a `list`
//! contained a path exactly when it was present.
//!
//! The search is Wing & Gong's, with Lowe's memoization of (operations linearized, state), run
//! for each path apart, since operations on different paths commute. An operation that failed or
//! never returned may have taken effect or not, at any time after it started: the search tries
//! both. (Clients tag each create and delete with a request id, so a retry after a lost answer is
//! answered by the master instead of executed twice.) The search is bounded; a
//! path whose history is too tangled to decide in time is skipped, not failed. A violation reports
//! the smallest sub-history (1-minimal: removing any one operation makes it linearizable).

use super::{describe, Violation};
use crate::history::{OpRecord, OpResult};
use crate::workload::OpSpec;
use node::GfsError;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

pub const NAME: &str = "namespace_linearizable";

/// Most search states explored per path before giving up on deciding it.
pub const MAX_STATES: usize = 200_000;

/// What one operation says about one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A successful create: absent before, present after.
    Create,
    /// A successful delete: present before, absent after.
    Delete,
    /// The path was present (already_exists, a list that shows it, a successful append).
    Present,
    /// The path was absent (not_found, a list that does not show it).
    Absent,
    /// A create that may or may not have happened (failed or never returned).
    MaybeCreate,
    /// A delete that may or may not have happened.
    MaybeDelete,
}

/// One operation as the search sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub op: usize,
    pub invoke_ns: u64,
    /// `u64::MAX` for an operation that never returned.
    pub complete_ns: u64,
    pub effect: Effect,
}

fn is_failure(outcome: &Option<OpResult>) -> bool {
    outcome.as_ref().is_none_or(|o| o.is_failure())
}

fn error(outcome: &Option<OpResult>) -> Option<&GfsError> {
    outcome.as_ref().and_then(OpResult::error)
}

/// Every path's events, from the history.
pub fn events(history: &[OpRecord]) -> BTreeMap<String, Vec<Event>> {
    // Every path an operation named, and every name a list returned: a listed name no operation
    // created is absent from the start, so a list showing it cannot be explained.
    let mut paths: BTreeSet<String> = BTreeSet::new();
    for op in history {
        if let Some(p) = op.op.path() {
            paths.insert(p.to_string());
        }
        if let Some(OpResult::Files { files }) = &op.outcome {
            paths.extend(files.iter().map(|f| f.path.clone()));
        }
    }
    let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for op in history {
        // An operation that failed may still take effect later (an attempt still in flight), so
        // like one that never returned it is open-ended (Jepsen's "info" operations).
        let ev = |effect| Event {
            op: op.id,
            invoke_ns: op.invoke_ns,
            complete_ns: match effect {
                Effect::MaybeCreate | Effect::MaybeDelete => u64::MAX,
                _ => op.complete_ns.unwrap_or(u64::MAX),
            },
            effect,
        };
        let mut push =
            |path: &str, effect| out.entry(path.to_string()).or_default().push(ev(effect));
        match &op.op {
            OpSpec::Create { path } => match (&op.outcome, error(&op.outcome)) {
                (Some(OpResult::Ok), _) => push(path, Effect::Create),
                (_, Some(GfsError::AlreadyExists(_))) => push(path, Effect::Present),
                (o, _) if is_failure(o) => push(path, Effect::MaybeCreate),
                _ => {}
            },
            OpSpec::Delete { path } => match (&op.outcome, error(&op.outcome)) {
                (Some(OpResult::Ok), _) => push(path, Effect::Delete),
                (_, Some(GfsError::NotFound(_))) => push(path, Effect::Absent),
                (o, _) if is_failure(o) => push(path, Effect::MaybeDelete),
                _ => {}
            },
            OpSpec::List => {
                if let Some(OpResult::Files { files }) = &op.outcome {
                    let listed: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
                    for p in &paths {
                        let effect = if listed.contains(p.as_str()) {
                            Effect::Present
                        } else {
                            Effect::Absent
                        };
                        push(p, effect);
                    }
                }
            }
            // Deleted copies live under hidden names: nothing about whether `path` exists.
            OpSpec::ReadDeleted { .. } => {}
            // The master answers these from the namespace. (A successful read or write may be
            // served from cached locations, GFS §2.7.1, so only `not_found` and appends, which
            // always ask the master, count.)
            OpSpec::Append { path, .. }
            | OpSpec::Read { path, .. }
            | OpSpec::Write { path, .. } => match (&op.op, &op.outcome, error(&op.outcome)) {
                (_, _, Some(GfsError::NotFound(_))) => push(path, Effect::Absent),
                (OpSpec::Append { .. }, Some(OpResult::Offset { .. }), _) => {
                    push(path, Effect::Present)
                }
                _ => {}
            },
        }
    }
    out
}

/// Why a search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// Too many states: undecided.
    Unknown,
}

/// Wing & Gong with Lowe's memoization. Starts with the path absent.
pub fn check_path(events: &[Event], max_states: usize) -> Verdict {
    let n = events.len();
    let words = n.div_ceil(64).max(1);
    let mut seen: BTreeSet<(Vec<u64>, bool)> = BTreeSet::new();
    // Explicit stack of (done set, present).
    let mut stack = vec![(vec![0u64; words], false)];
    let is_done = |done: &[u64], i: usize| done[i / 64] >> (i % 64) & 1 == 1;
    while let Some((done, present)) = stack.pop() {
        if !seen.insert((done.clone(), present)) {
            continue;
        }
        if seen.len() > max_states {
            return Verdict::Unknown;
        }
        // Every operation placed: a linearization exists.
        let remaining: Vec<usize> = (0..n).filter(|&i| !is_done(&done, i)).collect();
        if remaining.is_empty() {
            return Verdict::Linearizable;
        }
        // Only an operation invoked before every remaining one completes can go next.
        let horizon = remaining
            .iter()
            .map(|&i| events[i].complete_ns)
            .min()
            .unwrap_or(u64::MAX);
        for &i in &remaining {
            let e = &events[i];
            if e.invoke_ns > horizon {
                continue;
            }
            let mut next = done.clone();
            next[i / 64] |= 1 << (i % 64);
            let outcomes: &[Option<bool>] = match (e.effect, present) {
                (Effect::Create, false) => &[Some(true)],
                (Effect::Delete, true) => &[Some(false)],
                (Effect::Present, true) | (Effect::Absent, false) => &[Some(present)],
                (Effect::MaybeCreate, false) => &[Some(false), Some(true)],
                (Effect::MaybeDelete, true) => &[Some(true), Some(false)],
                (Effect::MaybeCreate, true) | (Effect::MaybeDelete, false) => &[Some(present)],
                _ => &[None],
            };
            for after in outcomes.iter().flatten() {
                stack.push((next.clone(), *after));
            }
        }
    }
    Verdict::NotLinearizable
}

/// A small sub-history that still cannot be linearized: every create and delete (they carry the
/// state, and a reader needs them), and a 1-minimal set of the observations (removing any one of
/// those makes it linearizable).
pub fn minimal(events: &[Event]) -> Vec<Event> {
    let mut kept = events.to_vec();
    let mut i = 0;
    while i < kept.len() {
        let changes = matches!(
            kept[i].effect,
            Effect::Create | Effect::Delete | Effect::MaybeCreate | Effect::MaybeDelete
        );
        let mut cand = kept.clone();
        cand.remove(i);
        if !changes && check_path(&cand, MAX_STATES) == Verdict::NotLinearizable {
            kept = cand;
        } else {
            i += 1;
        }
    }
    kept
}

pub fn check(history: &[OpRecord]) -> Option<Violation> {
    let mut report = String::new();
    let mut bad = 0;
    for (path, evs) in events(history) {
        if check_path(&evs, MAX_STATES) != Verdict::NotLinearizable {
            continue;
        }
        bad += 1;
        let core = minimal(&evs);
        let _ = writeln!(
            report,
            "  {path}: no order of these {} operations explains their answers:",
            core.len()
        );
        for e in core {
            let _ = writeln!(report, "    {} [{:?}]", describe(&history[e.op]), e.effect);
        }
    }
    (bad > 0).then(|| Violation {
        check: NAME,
        report: format!("{bad} paths have a namespace history that is not linearizable:\n{report}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: usize, t: (u64, u64), effect: Effect) -> Event {
        Event {
            op,
            invoke_ns: t.0,
            complete_ns: t.1,
            effect,
        }
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        use Effect::*;
        let ok = [
            ev(0, (0, 10), Create),
            ev(1, (20, 30), Present),
            ev(2, (40, 50), Delete),
            ev(3, (60, 70), Absent),
        ];
        assert_eq!(check_path(&ok, MAX_STATES), Verdict::Linearizable);
        // A list that saw the file after its delete completed, with no create in between.
        let bad = [
            ev(0, (0, 10), Create),
            ev(1, (20, 30), Delete),
            ev(2, (40, 50), Present),
        ];
        assert_eq!(check_path(&bad, MAX_STATES), Verdict::NotLinearizable);
        // The same list overlapping the delete can be ordered before it.
        let overlap = [
            ev(0, (0, 10), Create),
            ev(1, (20, 40), Delete),
            ev(2, (30, 50), Present),
        ];
        assert_eq!(check_path(&overlap, MAX_STATES), Verdict::Linearizable);
        // Two creates both succeeding with no delete between them.
        let twice = [ev(0, (0, 10), Create), ev(1, (5, 15), Create)];
        assert_eq!(check_path(&twice, MAX_STATES), Verdict::NotLinearizable);
        // A create that failed may have happened: it explains a later already_exists.
        let maybe = [ev(0, (0, 10), MaybeCreate), ev(1, (20, 30), Present)];
        assert_eq!(check_path(&maybe, MAX_STATES), Verdict::Linearizable);
        // ... or not: it also explains a later not_found.
        let maybe_not = [ev(0, (0, 10), MaybeCreate), ev(1, (20, 30), Absent)];
        assert_eq!(check_path(&maybe_not, MAX_STATES), Verdict::Linearizable);
        // A pending create can take effect late.
        let pending = [
            ev(0, (0, u64::MAX), MaybeCreate),
            ev(1, (20, 30), Absent),
            ev(2, (40, 50), Present),
        ];
        assert_eq!(check_path(&pending, MAX_STATES), Verdict::Linearizable);
    }

    #[test]
    fn a_listed_name_no_operation_explains_is_caught() {
        use super::super::model::tests::rec;
        let listing = |names: &[&str]| OpResult::Files {
            files: names
                .iter()
                .map(|n| node::client::FileInfo {
                    path: n.to_string(),
                    size_bytes: 0,
                    chunks: 0,
                })
                .collect(),
        };
        let create = rec(
            0,
            OpSpec::Create { path: "/a".into() },
            (0, 10),
            OpResult::Ok,
        );
        let delete = rec(
            1,
            OpSpec::Delete { path: "/a".into() },
            (20, 30),
            OpResult::Ok,
        );
        let ok = [
            create.clone(),
            rec(2, OpSpec::List, (12, 14), listing(&["/a"])),
            delete.clone(),
            rec(3, OpSpec::List, (40, 50), listing(&[])),
        ];
        assert_eq!(check(&ok), None);
        // A deleted file listed under its hidden name: a path no operation ever created.
        let mut hidden = ok.clone();
        hidden[3] = rec(3, OpSpec::List, (40, 50), listing(&["/.deleted/a.20"]));
        let v = check(&hidden).expect("unexplained name caught");
        assert!(v.report.contains("/.deleted/a.20"), "{}", v.report);
    }

    #[test]
    fn reports_the_minimal_sub_history() {
        use Effect::*;
        let history = [
            ev(0, (0, 10), Create),
            ev(1, (12, 14), Present),
            ev(2, (20, 30), Delete),
            ev(3, (32, 34), Absent),
            ev(4, (40, 50), Present), // wrong: nothing re-created the file
            ev(5, (60, 70), Absent),
        ];
        assert_eq!(check_path(&history, MAX_STATES), Verdict::NotLinearizable);
        let core: Vec<usize> = minimal(&history).iter().map(|e| e.op).collect();
        assert_eq!(
            core,
            vec![0, 2, 4],
            "the create, the delete, and the list that saw the file after"
        );
    }

    #[test]
    fn the_bound_gives_up_instead_of_failing() {
        use Effect::*;
        // Many overlapping maybe-operations: a large search.
        let mut tangled: Vec<Event> = (0..40)
            .map(|i| {
                ev(
                    i,
                    (0, 1000),
                    if i % 2 == 0 { MaybeCreate } else { MaybeDelete },
                )
            })
            .collect();
        // Then an impossible ending, so the search has to try every interleaving first.
        tangled.push(ev(40, (2000, 2010), Present));
        tangled.push(ev(41, (2020, 2030), Absent));
        tangled.push(ev(42, (2040, 2050), Present));
        assert_eq!(check_path(&tangled, 1_000), Verdict::Unknown);
    }
}
