//! Check `acked_creates`: a file whose acknowledged create was not followed by any delete still
//! exists at the end of the run.
//!
//! Must always hold. GFS §2.6.3: the master logs every namespace mutation and syncs the log before
//! it replies, so no crash or restart can undo an acknowledged create. A create followed (or
//! overlapped) by a delete of the same path is not judged: the delete may have won.

use super::{describe, Violation};
use crate::history::{OpRecord, OpResult};
use crate::workload::OpSpec;
use node::GfsError;
use std::fmt::Write;

pub const NAME: &str = "acked_creates";

pub fn check(history: &[OpRecord], final_files: &[&str]) -> Option<Violation> {
    let mut report = String::new();
    let mut lost = 0;
    for create in history {
        let (OpSpec::Create { path }, Some(OpResult::Ok)) = (&create.op, &create.outcome) else {
            continue;
        };
        // Any delete that may have taken effect after this create started.
        let deleted_later = history.iter().any(|d| {
            matches!(&d.op, OpSpec::Delete { path: p } if p == path)
                && !d.precedes(create)
                && !matches!(
                    &d.outcome,
                    Some(OpResult::Err {
                        error: GfsError::NotFound(_)
                    })
                )
        });
        if !deleted_later && !final_files.contains(&path.as_str()) {
            lost += 1;
            let _ = writeln!(
                report,
                "  {path} is missing; created by {}",
                describe(create)
            );
        }
    }
    (lost > 0).then(|| Violation {
        check: NAME,
        report: format!("{lost} acknowledged creates were lost:\n{report}"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::rec;
    use super::*;

    #[test]
    fn a_created_file_must_survive_unless_deleted() {
        let create = rec(
            0,
            OpSpec::Create { path: "/a".into() },
            (0, 10),
            OpResult::Ok,
        );
        assert_eq!(check(std::slice::from_ref(&create), &["/a"]), None);
        let v = check(std::slice::from_ref(&create), &[]).expect("lost create caught");
        assert!(v.report.contains("/a is missing"), "{}", v.report);
        let delete = rec(
            1,
            OpSpec::Delete { path: "/a".into() },
            (20, 30),
            OpResult::Ok,
        );
        assert_eq!(check(&[create.clone(), delete], &[]), None);
        // A delete refused with not_found changed nothing.
        let refused = rec(
            1,
            OpSpec::Delete { path: "/a".into() },
            (20, 30),
            OpResult::from_err(&node::GfsError::NotFound(String::new())),
        );
        assert!(check(&[create, refused], &[]).is_some());
    }
}
