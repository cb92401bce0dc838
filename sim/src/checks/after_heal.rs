//! Check `after_heal_ops_succeed`: once every fault is healed and the cluster has converged, every
//! client operation succeeds.
//!
//! Eventually holds (a liveness property). GFS is built to recover by itself (§4.3, §4.4, §5): once
//! the failures are gone, clients must get service again. A failure here means the cluster healed
//! its faults but not itself.

use super::{describe, Violation};
use crate::history::OpRecord;
use std::fmt::Write;

pub const NAME: &str = "after_heal_ops_succeed";

pub fn check(history: &[OpRecord]) -> Option<Violation> {
    let failed: Vec<&OpRecord> = history
        .iter() // A correct refusal (the file was deleted for good) is an answer, not a failure.
        .filter(|o| o.after_heal && o.outcome.as_ref().is_none_or(|r| r.is_failure()))
        .collect();
    let mut report = String::new();
    for op in &failed {
        let _ = writeln!(report, "  {}", describe(op));
    }
    (!failed.is_empty()).then(|| Violation {
        check: NAME,
        report: format!(
            "{} operations issued after healing failed:\n{report}",
            failed.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::rec;
    use super::*;
    use crate::history::OpResult;
    use crate::workload::OpSpec;

    #[test]
    fn a_failure_after_healing_is_caught_and_a_refusal_is_not() {
        let mut op = rec(0, OpSpec::List, (0, 10), OpResult::Ok);
        op.after_heal = true;
        assert_eq!(check(&[op.clone()]), None);
        let mut refused = op.clone();
        refused.outcome = Some(OpResult::from_err(&node::GfsError::NotFound(String::new())));
        assert_eq!(check(&[refused]), None);
        let mut failed = op.clone();
        failed.outcome = Some(OpResult::from_err(&node::GfsError::RetriesExhausted {
            attempts: 6,
            last: Box::new(node::GfsError::Network(String::new())),
        }));
        assert!(check(&[failed.clone()]).unwrap().report.contains("op #0"));
        failed.after_heal = false;
        assert_eq!(
            check(&[failed]),
            None,
            "failures during the safety phase are allowed"
        );
        let mut pending = op;
        pending.outcome = None;
        assert!(
            check(&[pending]).is_some(),
            "an operation that never returned is a failure"
        );
    }
}
