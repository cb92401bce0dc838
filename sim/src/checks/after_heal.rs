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
