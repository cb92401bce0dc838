//! Check `records_readable`: an application reading a file with the self-identifying record
//! format ([`crate::records`]) gets back every record whose append was acknowledged, exactly as
//! written, at least once; and it never reads a record that no append wrote.
//!
//! This is the promise GFS §2.7.2 makes to applications that follow its advice: record append is
//! at-least-once and may leave padding, fragments and duplicates, but a reader that checks each
//! record's checksum and filters ids by uniqueness sees every acknowledged record. The check runs
//! that reader over every file as read back through a client after the liveness phase.
//!
//! A record is required only if nothing may have destroyed it legitimately: no create or delete of
//! its file was in flight after its append began, and no write (acknowledged or not) over its bytes
//! was either. Appends of raw bytes (chunks too small for the format, scripted scenarios) are not
//! records and are not judged.

use super::model::changes_namespace;
use super::{context, describe, Inputs, Violation};
use crate::history::{OpRecord, OpResult};
use crate::records::{self, Scan};
use crate::workload::OpSpec;
use std::collections::BTreeMap;
use std::fmt::Write;

pub const NAME: &str = "records_readable";

/// Whether the acknowledged append `rec` at `offset` must still be readable: nothing that began
/// after it (or was still running when it began) deleted its file or wrote over its bytes.
fn must_survive(history: &[OpRecord], rec: &OpRecord, path: &str, offset: u64, len: u64) -> bool {
    history.iter().all(|o| {
        if o.id == rec.id || o.precedes(rec) || o.op.path() != Some(path) {
            return true;
        }
        match &o.op {
            OpSpec::Write {
                offset: w, data, ..
            } => w + data.len() as u64 <= offset || offset + len <= *w,
            _ => !changes_namespace(o),
        }
    })
}

/// Every file's scan, for the check and the sweep report's counts.
pub fn scans(inputs: &Inputs) -> BTreeMap<String, Scan> {
    inputs
        .state
        .files
        .iter()
        .filter_map(|(path, bytes)| {
            Some((path.clone(), records::scan_sparse(bytes.as_ref().ok()?)))
        })
        .collect()
}

pub fn check(inputs: &Inputs) -> Option<Violation> {
    let history = inputs.history;
    // Every record an append carried, by id.
    let appended: BTreeMap<u32, &OpRecord> = history
        .iter()
        .filter_map(|rec| match &rec.op {
            OpSpec::Append { data, .. } => Some((records::id_of(data)?, rec)),
            _ => None,
        })
        .collect();
    let scans = scans(inputs);
    let mut problems = Vec::new();
    // What the reader returned must be records appends wrote, to that file.
    for (path, scan) in &scans {
        let bytes = inputs.state.files[path]
            .as_ref()
            .expect("scanned files were read");
        for f in &scan.records {
            let at = f.offset;
            let read = &bytes.read(at, f.len as u64)[..];
            let origin = appended.get(&f.id).and_then(|rec| match &rec.op {
                OpSpec::Append { path: p, data } if p == path && data[..] == *read => Some(rec),
                _ => None,
            });
            if origin.is_none() {
                problems.push(format!(
                    "  {path}: the reader returned record id {} at offset {} that no append to \
                     this file wrote\n    {}",
                    f.id,
                    f.offset,
                    context(bytes, at)
                ));
            }
        }
    }
    // Every acknowledged record that must survive is read back at least once, whole.
    for rec in history {
        let (OpSpec::Append { path, data }, Some(OpResult::Offset { offset })) =
            (&rec.op, &rec.outcome)
        else {
            continue;
        };
        let Some(id) = records::id_of(data) else {
            continue;
        };
        let Some(scan) = scans.get(path) else {
            continue; // the file could not be read: acked_readback reports that
        };
        if !must_survive(history, rec, path, *offset, data.len() as u64) {
            continue;
        }
        if !scan.records.iter().any(|f| f.id == id) {
            let bytes = inputs.state.files[path].as_ref().expect("scanned");
            let mut p = format!(
                "  {}\n    record id {id} ({} bytes) not found by the reader in {path} ({} bytes: \
                 {} records, {} duplicates, {} padding and {} fragment bytes skipped)",
                describe(rec),
                data.len(),
                bytes.len(),
                scan.records.len(),
                scan.duplicates,
                scan.padding_bytes,
                scan.fragment_bytes
            );
            if *offset < bytes.len() {
                let _ = write!(
                    p,
                    "\n    at its offset {offset}: {}",
                    context(bytes, *offset)
                );
            }
            problems.push(p);
        }
    }
    (!problems.is_empty()).then(|| {
        let mut report = format!(
            "{} problems reading appended records back with the record format (GFS §2.7.2):\n",
            problems.len()
        );
        for p in problems.iter().take(8) {
            let _ = writeln!(report, "{p}");
        }
        Violation {
            check: NAME,
            report,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::{rec, write};
    use super::super::{test_inputs, FinalState};
    use super::*;

    fn append(id: usize, data: &[u8], t: (u64, u64), offset: u64) -> OpRecord {
        let op = OpSpec::Append {
            path: "/f".into(),
            data: data.to_vec(),
        };
        rec(id, op, t, OpResult::Offset { offset })
    }

    fn checked(history: &[OpRecord], file: &[u8]) -> Option<Violation> {
        let mut state = FinalState::default();
        state.files.insert("/f".into(), Ok(file.to_vec().into()));
        check(&test_inputs(history, &state, 64, 2, 0))
    }

    #[test]
    fn every_acknowledged_record_is_read_back_despite_padding_fragments_and_duplicates() {
        let (a, b) = (records::encode(1, b"one"), records::encode(2, b"two"));
        let h = [
            append(0, &a, (0, 10), 0),
            append(1, &b, (20, 30), (a.len() + 5 + 4) as u64),
        ];
        let mut file = a.clone();
        file.extend_from_slice(&b[..5]); // a failed attempt's fragment
        file.extend_from_slice(&[0; 4]); // padding
        file.extend_from_slice(&b);
        file.extend_from_slice(&b); // a retry's duplicate
        assert_eq!(checked(&h, &file), None);
    }

    #[test]
    fn a_missing_or_damaged_record_is_reported() {
        let (a, b) = (records::encode(1, b"one"), records::encode(2, b"two"));
        let h = [
            append(0, &a, (0, 10), 0),
            append(1, &b, (20, 30), a.len() as u64),
        ];
        let mut file = a.clone();
        file.extend_from_slice(&b);
        let last = file.len() - 6;
        file[last] ^= 0x04; // one bit of b's payload
        let v = checked(&h, &file).expect("a damaged record is not read back");
        assert!(
            v.report.contains("record id 2 (14 bytes) not found"),
            "{}",
            v.report
        );
        assert!(
            v.report.contains("op #1 client0 append /f len 14"),
            "{}",
            v.report
        );
        // A record nobody appended (the same bytes with another id) is rejected too.
        let mut file = a.clone();
        file.extend_from_slice(&records::encode(9, b"two"));
        let v = checked(&h[..1], &file).expect("an invented record");
        assert!(
            v.report.contains("record id 9 at offset 14 that no append"),
            "{}",
            v.report
        );
    }

    #[test]
    fn records_overwritten_or_deleted_later_are_not_required() {
        let a = records::encode(1, b"one");
        // A later write over the record's bytes.
        let h = [
            append(0, &a, (0, 10), 0),
            write(1, 2, b"zz", (20, 30), OpResult::Ok),
        ];
        let mut file = a.clone();
        file[2..4].copy_from_slice(b"zz");
        assert_eq!(checked(&h, &file), None);
        // The same bytes with no such write: reported.
        assert!(checked(&h[..1], &file).is_some());
        // A delete and re-create after the append.
        let h = [
            append(0, &a, (0, 10), 0),
            rec(
                1,
                OpSpec::Delete { path: "/f".into() },
                (20, 30),
                OpResult::Ok,
            ),
        ];
        assert_eq!(checked(&h, b""), None);
    }
}
