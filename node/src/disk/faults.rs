//! The physical disk, shared by a node's [`Disk`](super::Disk) and the harness, and kept across
//! the node's restarts like the hardware it stands for: its platters (what syncs made durable) and
//! its behaviour (timing and faults).
//!
//! A sync takes a random time up to `sync_latency_us` (so a crash can land in the middle of one).
//! A disk with torn writes first puts a random prefix of a sync's writes on disk, so a crash before
//! the sync completes leaves the file torn, while a completed sync is always whole. The harness can
//! ask for bits to flip in stored bytes, and (to prove the checks) make a disk lie about syncs.
//! The counters here (unsynced writes, a torn sync in flight) are what the nemesis reads at the
//! instant it crashes the node.

use crate::trace::{Event, LossCause, NodeName};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The physical disk: its platters, timing and faults. Shared by the node's [`Disk`] and the
/// harness.
#[derive(Debug, Default)]
pub struct DiskFaults {
    /// Upper bound of a sync's latency, in microseconds (each sync takes a uniform 0..=max).
    pub sync_latency_us: AtomicU64,
    /// A sync first writes a random prefix of its writes.
    pub torn_writes: AtomicBool,
    /// A broken disk, for proving the checks: a sync reports success but nothing reaches the disk,
    /// so a crash loses writes that were acknowledged as durable.
    pub lies_about_sync: AtomicBool,
    /// Names starting with this are eligible for bit flips (empty: none are).
    pub(super) flip_prefix: std::sync::Mutex<String>,
    pub(super) pending_flips: AtomicU64,
    pub(super) flips_applied: AtomicU64,
    pub(super) tear_in_flight: AtomicBool,
    pub(super) unsynced_writes: AtomicU64,
    /// Unsynced (writes, bytes) per file, mirroring the page cache; kept only at full detail.
    pub(super) unsynced_by_file: std::sync::Mutex<BTreeMap<String, (u64, u64)>>,
    /// What reached the platters: every file's durable content, by name (a name is here from its
    /// creation, as directory changes are durable at once).
    pub(super) platters: std::sync::Mutex<BTreeMap<String, crate::sparse::SparseBytes>>,
    /// A stamp per file, new whenever what a read of it returns may have changed (a write, a sync,
    /// a flipped bit; a removed name has none). Stamps are never reused, so an unchanged stamp
    /// means unchanged content: a scrub skips what it already found sound.
    pub(super) stamps: std::sync::Mutex<BTreeMap<String, u64>>,
    pub(super) next_stamp: AtomicU64,
}

impl DiskFaults {
    pub fn new(sync_latency_us: u64, torn_writes: bool, flip_prefix: &str) -> Arc<DiskFaults> {
        let f = DiskFaults {
            sync_latency_us: AtomicU64::new(sync_latency_us),
            torn_writes: AtomicBool::new(torn_writes),
            ..DiskFaults::default()
        };
        *f.flip_prefix.lock().unwrap() = flip_prefix.to_string();
        Arc::new(f)
    }

    /// Gives `name` a new stamp: its content may have changed.
    pub(super) fn touch(&self, name: &str) {
        let stamp = self.next_stamp.fetch_add(1, Ordering::Relaxed) + 1;
        self.stamps.lock().unwrap().insert(name.to_string(), stamp);
    }

    /// Asks for one bit to flip in a stored file; applied at the disk's next operation.
    pub fn request_bit_flip(&self) {
        self.pending_flips.fetch_add(1, Ordering::Relaxed);
    }

    pub fn flips_applied(&self) -> u64 {
        self.flips_applied.load(Ordering::Relaxed)
    }

    /// True while a torn prefix is on disk and its sync has not completed: a crash now tears.
    pub fn tear_in_flight(&self) -> bool {
        self.tear_in_flight.load(Ordering::Relaxed)
    }

    /// Writes in the page cache, which a crash now would lose.
    pub fn unsynced_writes(&self) -> u64 {
        self.unsynced_writes.load(Ordering::Relaxed)
    }

    /// `n` writes left the page cache (synced, dropped by a lying sync, or gone with their file).
    /// The count never goes below zero: the check comes before the subtraction, in one step.
    pub(super) fn forget_unsynced(&self, n: u64) {
        let counted =
            self.unsynced_writes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(n));
        if let Err(w) = counted {
            panic!("disk: {n} writes leave a page cache that counts {w} unsynced writes");
        }
    }

    /// The node of this disk crashed: its page cache is gone. Records a `disk_lost` per file that
    /// had unsynced writes (full detail only). The harness calls it at the instant of the crash.
    pub fn crashed(&self, node: NodeName) {
        let lost = std::mem::take(&mut *self.unsynced_by_file.lock().unwrap());
        for (file, (writes, bytes)) in lost {
            crate::trace::emit_full(node, || Event::DiskLost {
                file,
                writes,
                bytes,
                why: LossCause::Crash,
            });
        }
    }

    /// Mirrors a page-cache write into the per-file summary (full detail only).
    pub(super) fn cached(&self, name: &str, bytes: u64) {
        if crate::trace::full() {
            let mut by_file = self.unsynced_by_file.lock().unwrap();
            let e = by_file.entry(name.to_string()).or_default();
            e.0 += 1;
            e.1 += bytes;
        }
    }

    /// Drops a file's entry from the per-file summary: synced, removed or renamed over.
    pub(super) fn uncached(&self, name: &str) -> Option<(u64, u64)> {
        if crate::trace::full() {
            self.unsynced_by_file.lock().unwrap().remove(name)
        } else {
            None
        }
    }
}
