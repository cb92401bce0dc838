//! How a run fails: one [`Failure`] type and one order of precedence, for every command.
//!
//! A run can fail three ways, and they mean different things to the person reading a sweep:
//!
//! - a **panic**: a node (or the harness) hit an `assert!` of an invariant the code states about
//!   itself, such as a version going backwards. The run stops there; no check runs.
//! - a **violation**: a named check (`checks/`) found the cluster broke a promise of the paper:
//!   acknowledged bytes missing, two primaries at once, a non-linearizable namespace.
//! - a **liveness** failure: the workload did not finish in time, the cluster did not converge
//!   after healing, or an operation issued after healing failed. Nothing is known to be wrong
//!   with the data, but the system did not make progress it should have.
//!
//! When a run fails in several ways, the first in [`FailureClass`]'s order is the one a sweep
//! reports, a hunt stops at and a shrink preserves: a broken invariant first (it explains
//! everything after it), then broken promises, then lack of progress.

use std::fmt;

/// The three ways a run fails, in order of precedence (the first is the most severe).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// A node or the harness panicked: a broken invariant.
    Panic,
    /// A correctness check did not hold.
    Violation,
    /// The workload did not finish, the cluster did not converge, or an operation after healing
    /// failed.
    Liveness,
}

impl FailureClass {
    /// The exit code of a command whose most severe failure is of this class: 1 a violation, 3 a
    /// liveness failure, 4 a panic (0 is a pass and 2 bad input, for every command).
    pub fn exit_code(self) -> u8 {
        match self {
            FailureClass::Violation => 1,
            FailureClass::Liveness => 3,
            FailureClass::Panic => 4,
        }
    }

    /// The most severe of `classes` (see the order above), if any.
    pub fn worst(classes: impl IntoIterator<Item = FailureClass>) -> Option<FailureClass> {
        classes.into_iter().min()
    }

    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Panic => "panic",
            FailureClass::Violation => "violation",
            FailureClass::Liveness => "liveness",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One way a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    /// What caught it: a check's name for a violation, `panic` or `liveness` otherwise.
    pub check: String,
    /// What was seen, possibly over several lines.
    pub report: String,
}

impl Failure {
    /// The failure in one line: what caught it and the first line of its report, without the
    /// colon that introduces the report's listing (the listing is not in the line).
    pub fn line(&self) -> String {
        let first = self.report.lines().next().unwrap_or_default();
        format!(
            "{}: {}",
            self.check,
            first.strip_suffix(':').unwrap_or(first)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_line_is_the_reports_first_line_without_its_listing_colon() {
        let f = |report: &str| Failure {
            class: FailureClass::Violation,
            check: "acked_readback".into(),
            report: report.into(),
        };
        assert_eq!(
            f("3 bytes do not read back:\n  op #2 ...").line(),
            "acked_readback: 3 bytes do not read back"
        );
        assert_eq!(f("no colon here").line(), "acked_readback: no colon here");
        assert_eq!(f("").line(), "acked_readback: ");
    }

    #[test]
    fn classes_rank_panic_then_violation_then_liveness() {
        let mut classes = [
            FailureClass::Liveness,
            FailureClass::Panic,
            FailureClass::Violation,
        ];
        classes.sort();
        assert_eq!(
            classes.map(FailureClass::name),
            ["panic", "violation", "liveness"]
        );
        let f = Failure {
            class: FailureClass::Violation,
            check: "table1".into(),
            report: "2 mutations left a state\n  op #3 ...".into(),
        };
        assert_eq!(f.line(), "table1: 2 mutations left a state");
    }

    #[test]
    fn the_most_severe_class_gives_the_exit_code() {
        assert_eq!(
            FailureClass::worst([
                FailureClass::Liveness,
                FailureClass::Violation,
                FailureClass::Liveness
            ]),
            Some(FailureClass::Violation)
        );
        assert_eq!(
            FailureClass::worst([
                FailureClass::Liveness,
                FailureClass::Panic,
                FailureClass::Violation
            ]),
            Some(FailureClass::Panic)
        );
        assert_eq!(FailureClass::worst([]), None);
        let codes: Vec<u8> = [
            FailureClass::Violation,
            FailureClass::Liveness,
            FailureClass::Panic,
        ]
        .map(FailureClass::exit_code)
        .into();
        assert_eq!(codes, [1, 3, 4], "0 and 2 are a pass and bad input");
    }
}
