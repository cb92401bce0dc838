//! Check `available`: in a run where no fault struck, every operation succeeds.
//!
//! Must always hold. GFS is built to keep serving (§5: "high availability"); with every machine up
//! and every message delivered, nothing explains an operation that fails, however many clients
//! share a chunk. A correct refusal (no such file, already exists, a record too large) is an
//! answer, not a failure; running out of retries, an unknown outcome, or never returning is a
//! failure. Failures are never excused wholesale: where a fault struck, the other checks judge
//! what failed operations may have left behind, and `after_heal_ops_succeed` judges the cluster
//! once the faults are over.

use super::{describe, Inputs, Violation};
use node::trace::Event;
use std::fmt::Write;

pub const NAME: &str = "available";

pub fn check(inputs: &Inputs) -> Option<Violation> {
    let faulted = inputs
        .events
        .iter()
        .any(|e| matches!(e.event, Event::FaultInjected { .. }));
    if faulted {
        return None;
    }
    let failed: Vec<_> = inputs
        .history
        .iter()
        .filter(|o| o.outcome.as_ref().is_none_or(|r| r.is_failure()))
        .collect();
    let mut report = String::new();
    for op in failed.iter().take(10) {
        let _ = writeln!(report, "  {}", describe(op));
    }
    if failed.len() > 10 {
        let _ = writeln!(report, "  ... and {} more", failed.len() - 10);
    }
    (!failed.is_empty()).then(|| Violation {
        check: NAME,
        report: format!(
            "{} operations failed although no fault struck:\n{report}",
            failed.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::rec;
    use super::super::{test_inputs, FinalState};
    use super::*;
    use crate::history::OpResult;
    use crate::workload::OpSpec;
    use node::trace::{Entry, FaultKind, FaultOn, NodeName};
    use node::GfsError;

    #[test]
    fn a_failure_without_a_fault_is_caught_a_refusal_or_a_fault_excuses_it() {
        let create = || OpSpec::Create { path: "/f".into() };
        let ok = rec(0, create(), (0, 5), OpResult::Ok);
        let refused = rec(
            1,
            create(),
            (6, 9),
            OpResult::from_err(&GfsError::AlreadyExists("/f".into())),
        );
        let mut failed = rec(
            2,
            create(),
            (10, 20),
            OpResult::from_err(&GfsError::RetriesExhausted {
                attempts: 6,
                last: Box::new(GfsError::Network("timeout".into())),
            }),
        );
        let state = FinalState::default();
        let history = [ok.clone(), refused.clone()];
        assert_eq!(check(&test_inputs(&history, &state, 64, 3, 0)), None);
        let history = [ok.clone(), refused.clone(), failed.clone()];
        let v = check(&test_inputs(&history, &state, 64, 3, 0)).expect("caught");
        assert!(v.report.starts_with("1 operations failed"), "{}", v.report);
        assert!(v.report.contains("op #2"), "{}", v.report);
        // An operation that never returned is a failure too.
        failed.outcome = None;
        failed.complete_ns = None;
        let history = [ok, failed];
        assert!(check(&test_inputs(&history, &state, 64, 3, 0)).is_some());
        // A fault struck: not this check's business.
        let events = [Entry {
            time_ns: 1,
            node: NodeName::Nemesis,
            event: Event::FaultInjected {
                fault: FaultKind::Loss,
                on: FaultOn::Loss { percent: 10 },
                unsynced_writes_lost: None,
            },
        }];
        let mut inputs = test_inputs(&history, &state, 64, 3, 0);
        inputs.events = &events;
        assert_eq!(check(&inputs), None);
    }
}
