//! Check `deleted_readable`: a deleted file can be read under its hidden name until the garbage
//! collector's grace period has passed.
//!
//! Must always hold. GFS §4.4: deleting a file only renames it to a hidden name; "the file can
//! still be read under the new, special name" until the master removes it, some time after the
//! delete. `gc_after_grace` judges the chunkservers' side (no current replica of a deleted file
//! is erased early); this check judges what a user sees: a `read_deleted` (list the deleted files,
//! read the newest hidden copy of the path) that found no copy, though a delete of that path had
//! succeeded before the read began and the read ended within the grace period counted from that
//! delete's request, is a violation; so is any refusal of the hidden name other than "not found".
//! (The bytes such a read returns are judged by `reads_not_invented`, as the file's bytes.)

use super::{describe, Violation};
use crate::history::{OpRecord, OpResult};
use crate::workload::OpSpec;
use node::GfsError;

pub const NAME: &str = "deleted_readable";

pub fn check(history: &[OpRecord], gc_delay_ms: u64) -> Option<Violation> {
    let grace_ns = gc_delay_ms * 1_000_000;
    let mut bad = Vec::new();
    for read in history {
        let (OpSpec::ReadDeleted { path, .. }, Some(OpResult::Err { error }), Some(end)) =
            (&read.op, &read.outcome, read.complete_ns)
        else {
            continue;
        };
        if !matches!(error, GfsError::NotFound(_)) {
            if !error.is_failure() {
                bad.push(format!("{}: the hidden name was refused", describe(read)));
            }
            continue;
        }
        // The latest successful delete of the path done before the read began, whose copy the
        // master had to keep until after the read ended.
        let protecting = history
            .iter()
            .filter(|d| matches!(&d.op, OpSpec::Delete { path: p } if p == path))
            .filter(|d| d.outcome == Some(OpResult::Ok) && d.precedes(read))
            .filter(|d| end < d.invoke_ns + grace_ns)
            .max_by_key(|d| d.invoke_ns);
        if let Some(delete) = protecting {
            bad.push(format!(
                "{} found no deleted copy, though {} and its copy must be kept until at least {:.3} ms (grace period {gc_delay_ms} ms from the request)",
                describe(read),
                describe(delete),
                (delete.invoke_ns + grace_ns) as f64 / 1e6
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} reads of deleted files were refused, or found no copy within the grace period:",
            bad.len()
        ),
        bad.len(),
        bad,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::rec;
    use super::*;

    const MS: u64 = 1_000_000;

    fn delete(t_ms: (u64, u64)) -> OpRecord {
        rec(
            0,
            OpSpec::Delete { path: "/f".into() },
            (t_ms.0 * MS, t_ms.1 * MS),
            OpResult::Ok,
        )
    }

    fn read_deleted(t_ms: (u64, u64), outcome: OpResult) -> OpRecord {
        rec(
            1,
            OpSpec::ReadDeleted {
                path: "/f".into(),
                offset: 0,
                len: 4,
            },
            (t_ms.0 * MS, t_ms.1 * MS),
            outcome,
        )
    }

    fn not_found() -> OpResult {
        OpResult::Err {
            error: GfsError::NotFound("/f".into()),
        }
    }

    #[test]
    fn a_copy_gone_within_the_grace_period_is_caught() {
        let history = vec![delete((10, 20)), read_deleted((30, 40), not_found())];
        let v = check(&history, 2_000).expect("violation");
        assert_eq!(v.check, NAME);
        assert!(v.report.contains("found no deleted copy"), "{}", v.report);
        assert!(v.report.contains("2010.000 ms"), "{}", v.report);
        // A refused hidden name is caught too.
        let refused = OpResult::Err {
            error: GfsError::InvalidPath("/.deleted/3/f".into()),
        };
        let history = vec![delete((10, 20)), read_deleted((30, 40), refused)];
        assert!(check(&history, 2_000).is_some());
    }

    #[test]
    fn not_found_is_fine_after_the_grace_period_or_without_a_finished_delete() {
        // After the grace period: reclaimed, rightly.
        let history = vec![delete((10, 20)), read_deleted((2_100, 2_110), not_found())];
        assert_eq!(check(&history, 2_000), None);
        // The delete had not finished when the read began: it may not have happened yet.
        let history = vec![delete((10, 50)), read_deleted((30, 40), not_found())];
        assert_eq!(check(&history, 2_000), None);
        // A failed delete protects nothing.
        let mut failed = delete((10, 20));
        failed.outcome = Some(not_found());
        assert_eq!(
            check(&[failed, read_deleted((30, 40), not_found())], 2_000),
            None
        );
        // A copy found, or an unavailable master, is not this check's business.
        let data = OpResult::Data { data: vec![1; 4] };
        let down = OpResult::Err {
            error: GfsError::Unavailable("master down".into()),
        };
        let history = vec![
            delete((10, 20)),
            read_deleted((30, 40), data),
            read_deleted((50, 60), down),
        ];
        assert_eq!(check(&history, 2_000), None);
    }
}
