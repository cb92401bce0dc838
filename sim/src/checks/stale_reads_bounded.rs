//! Check `stale_reads_bounded`: a read may miss a completed mutation only while a location the
//! client cached before that mutation completed can still be in its cache.
//!
//! Must always hold. GFS §2.7.1: a client caches chunk locations, so it may read a stale replica
//! "before the information is refreshed"; the window is limited by the cache entry's timeout (and
//! the file's next open, which this client does not have). A replica can serve a stale read only
//! if a client still lists it as a location at an old version, and the master lists only current
//! replicas: so the client fetched that location before the missed mutation completed, and the
//! entry expires at most the cache timeout after the fetch. A stale read (as
//! [`super::reads_not_invented::stale_reads`] defines it) invoked a whole cache timeout or more
//! after the mutation it missed completed has no cached location to blame: the staleness is
//! unbounded, and the run fails.

use super::reads_not_invented::stale_read_list;
use super::{describe, Violation};
use crate::history::OpRecord;
use std::fmt::Write;

pub const NAME: &str = "stale_reads_bounded";

pub fn check(history: &[OpRecord], location_cache_ms: u64) -> Option<Violation> {
    let window_ns = location_cache_ms * 1_000_000;
    let (_, stale) = stale_read_list(history);
    let late: Vec<_> = stale
        .iter()
        .filter(|s| s.read.invoke_ns >= s.missed_done_ns.saturating_add(window_ns))
        .collect();
    if late.is_empty() {
        return None;
    }
    let mut report = format!(
        "{} reads missed a mutation that had completed at least the {location_cache_ms} ms location-cache timeout before they began:\n",
        late.len()
    );
    for s in late.iter().take(5) {
        let _ = writeln!(
            report,
            "  {}\n    missed {} ({:.3} ms before the read)",
            describe(s.read),
            describe(s.missed),
            (s.read.invoke_ns - s.missed_done_ns) as f64 / 1e6
        );
    }
    if late.len() > 5 {
        let _ = writeln!(report, "  ... and {} more", late.len() - 5);
    }
    Some(Violation {
        check: NAME,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::write;
    use super::*;
    use crate::history::OpResult;
    use crate::workload::OpSpec;

    fn read(id: usize, data: &[u8], t_ms: (u64, u64)) -> OpRecord {
        let mut r = super::super::model::tests::rec(
            id,
            OpSpec::Read {
                path: "/f".into(),
                offset: 0,
                len: data.len() as u64,
            },
            (t_ms.0 * 1_000_000, t_ms.1 * 1_000_000),
            OpResult::Data {
                data: data.to_vec(),
            },
        );
        r.client = 1;
        r
    }

    #[test]
    fn stale_reads_past_the_cache_timeout_are_caught() {
        let mut w = write(0, 0, b"ab", (0, 10_000_000), OpResult::Ok);
        w.complete_ns = Some(10_000_000);
        // Stale within the window: allowed.
        let soon = [w.clone(), read(1, b"\0\0", (1_500, 1_510))];
        assert_eq!(check(&soon, 2_000), None);
        // Stale a whole timeout after the write completed: caught.
        let late = [w.clone(), read(1, b"\0\0", (2_010, 2_020))];
        let v = check(&late, 2_000).expect("unbounded staleness caught");
        assert!(
            v.report.contains("2000.000 ms before the read"),
            "{}",
            v.report
        );
        // A fresh read that late is fine.
        assert_eq!(
            check(&[w.clone(), read(1, b"ab", (5_000, 5_010))], 2_000),
            None
        );
        // A write that was refused (here: its file was gone) completed nothing to miss.
        let mut refused = w;
        refused.outcome = Some(OpResult::from_err(&node::GfsError::NotFound("/f".into())));
        assert_eq!(
            check(&[refused, read(1, b"\0\0", (2_010, 2_020))], 2_000),
            None
        );
    }
}
