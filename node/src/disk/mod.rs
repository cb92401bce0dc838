//! The project's disk model: what a node wrote, what reached the platters, and what a crash loses.
//!
//! A real disk behind a page cache loses what was written but not synced when the machine dies, and
//! that loss is what makes GFS's "sync before acknowledging" rules matter. So:
//!
//! - **A page cache that dies with the node.** Writes land in [`Disk`]'s memory, which lives inside
//!   the node's tasks; only [`Disk::sync`] moves them to the platters. When madsim kills the node
//!   its memory is dropped, so unsynced writes are lost exactly as on a power failure.
//! - **Platters that outlive the node.** What a sync made durable is kept by the physical disk
//!   ([`DiskFaults`]), which the harness creates once per machine and hands to every incarnation
//!   of its node, as `madsim::fs` keeps a node's files across restarts. The model keeps them itself
//!   rather than in `madsim::fs` because files are sparse ([`SparseBytes`]): a 64 MiB chunk that
//!   is mostly record-append padding costs the bytes written, not 64 MiB, where `madsim::fs` holds
//!   every file as one vector. (`madsim::fs` takes no simulated time and draws no randomness, so
//!   leaving it changes nothing else.)
//! - **A directory.** Creating, removing and renaming a name are durable when the call returns (as
//!   on a file system mounted with `dirsync`); file *contents* are durable only after `sync`. Names
//!   may contain `/`, so callers can spread files over "subdirectories"; [`Disk::list`] lists by
//!   prefix.
//!
//! **Faults** live in [`DiskFaults`] (`faults.rs`) with the platters; this file applies them where
//! they strike (a sync, a read). Without torn writes, a sync is all or nothing, which is what lets
//! a chunkserver update a chunk atomically.
//!
//! **Trace.** In a full trace ([`crate::trace::Detail::Full`]) every page-cache write is a
//! `disk_write`, every sync a `disk_sync` (what it made durable), and writes a crash or a lying
//! sync threw away a `disk_lost`. To name what a crash loses, [`DiskFaults`] keeps a summary of
//! the page cache per file, at full detail only, since the cache itself dies with the node.

mod faults;

pub use faults::DiskFaults;

use crate::sparse::SparseBytes;
use crate::trace::{DiskWrite, Event, LossCause, NodeName};
use rand::Rng;
use std::collections::BTreeMap;
use std::io::{self, ErrorKind};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Largest logical file the model accepts: one 64 MiB chunk plus room for metadata files.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// One write waiting in the page cache.
#[derive(Debug, Clone)]
enum Pending {
    Write {
        offset: u64,
        data: Arc<Vec<u8>>,
    },
    /// Zeros over `[from, to)`: record-append padding, stored as nothing.
    Zero {
        from: u64,
        to: u64,
    },
    SetLen(u64),
}

impl Pending {
    fn apply(&self, file: &mut SparseBytes) {
        match self {
            Pending::Write { offset, data } => file.write_shared(*offset, data.clone()),
            Pending::Zero { from, to } => file.zero(*from, *to),
            Pending::SetLen(len) => file.set_len(*len),
        }
    }
}

/// The bytes a batch of page-cache operations writes (zeros and length changes count none).
fn bytes_of(ops: &[Pending]) -> u64 {
    ops.iter()
        .map(|op| match op {
            Pending::Write { data, .. } => data.len() as u64,
            Pending::Zero { .. } | Pending::SetLen(_) => 0,
        })
        .sum()
}

struct Inner {
    /// Unsynced operations per name, in issue order: the page cache.
    pending: BTreeMap<String, Vec<Pending>>,
    faults: Arc<DiskFaults>,
    node: NodeName,
}

/// A node's disk. Cheap to clone; clones share the same page cache.
#[derive(Clone)]
pub struct Disk {
    inner: Arc<tokio::sync::Mutex<Inner>>,
    /// Whose disk it is (also in `inner`), readable without the lock: fault points name it.
    node: NodeName,
}

/// Counters a run reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskStats {
    pub files: usize,
    pub unsynced_files: usize,
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(ErrorKind::NotFound, format!("no such file on disk: {name}"))
}

impl Inner {
    /// The file as this node sees it, page cache included: `[offset, offset + len)` of it.
    fn view(&self, name: &str, offset: u64, len: u64) -> io::Result<SparseBytes> {
        let platters = self.faults.platters.lock().unwrap();
        let durable = platters.get(name).ok_or_else(|| not_found(name))?;
        let pending = self.pending.get(name);
        if pending.is_none() {
            return Ok(durable.slice(offset, len));
        }
        // Replay the cache over the durable file, then cut the window (cheap: runs are shared).
        let mut file = durable.clone();
        drop(platters);
        for op in pending.into_iter().flatten() {
            op.apply(&mut file);
        }
        Ok(file.slice(offset, len))
    }

    /// The file's length, page cache included.
    fn len(&self, name: &str) -> io::Result<u64> {
        let platters = self.faults.platters.lock().unwrap();
        let mut len = platters.get(name).ok_or_else(|| not_found(name))?.len();
        for op in self.pending.get(name).into_iter().flatten() {
            len = match op {
                Pending::Write { offset, data } => len.max(offset + data.len() as u64),
                Pending::Zero { to, .. } => len.max(*to),
                Pending::SetLen(l) => *l,
            };
        }
        Ok(len)
    }

    /// Makes `ops` durable on file `name`.
    fn write_durable(&self, name: &str, ops: &[Pending]) -> io::Result<()> {
        let mut platters = self.faults.platters.lock().unwrap();
        let file = platters.get_mut(name).ok_or_else(|| not_found(name))?;
        for op in ops {
            op.apply(file);
        }
        drop(platters);
        self.faults.touch(name);
        Ok(())
    }

    /// Applies the bit flips the harness asked for, to durable bytes of eligible files.
    fn apply_flips(&mut self) {
        let faults = self.faults.clone();
        while faults.pending_flips.load(Ordering::Relaxed) > 0 {
            faults.pending_flips.fetch_sub(1, Ordering::Relaxed);
            let prefix = faults.flip_prefix.lock().unwrap().clone();
            if prefix.is_empty() {
                continue;
            }
            let mut platters = faults.platters.lock().unwrap();
            let candidates: Vec<(String, u64)> = platters
                .range(prefix.clone()..)
                .take_while(|(name, _)| name.starts_with(&prefix))
                .filter(|(_, file)| !file.is_empty())
                .map(|(name, file)| (name.clone(), file.len()))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let mut rng = madsim::rand::thread_rng();
            let (name, len) = candidates[rng.gen_range(0..candidates.len())].clone();
            let at = rng.gen_range(0..len);
            let bit = rng.gen_range(0..8u8);
            let file = platters.get_mut(&name).expect("listed");
            let old = file.byte_at(at);
            file.write(at, &[old ^ (1 << bit)]);
            drop(platters);
            faults.touch(&name);
            faults.flips_applied.fetch_add(1, Ordering::Relaxed);
            crate::trace::emit(self.node, || Event::BitFlipped {
                file: name,
                offset: at,
                bit,
            });
        }
    }

    /// Creates `name` (durably, empty) if it does not exist.
    fn ensure_exists(&self, name: &str) {
        self.faults
            .platters
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default();
    }

    /// Queues `op` for `name` in the page cache.
    fn cache(&mut self, name: &str, op: Pending, bytes: u64) {
        self.ensure_exists(name);
        self.faults.unsynced_writes.fetch_add(1, Ordering::Relaxed);
        self.faults.cached(name, bytes);
        let write = match &op {
            Pending::Write { offset, data } => DiskWrite::Bytes {
                offset: *offset,
                len: data.len() as u64,
            },
            Pending::Zero { from, to } => DiskWrite::Zero {
                from: *from,
                to: *to,
            },
            Pending::SetLen(len) => DiskWrite::SetLen { len: *len },
        };
        crate::trace::emit_full(self.node, || Event::DiskWritten {
            file: name.to_string(),
            write,
        });
        self.pending.entry(name.to_string()).or_default().push(op);
        self.faults.touch(name);
    }
}

impl Disk {
    /// Opens the physical disk `faults` for a new incarnation of `node`, finding whatever a
    /// previous one synced there.
    pub async fn open(node: NodeName, faults: Arc<DiskFaults>) -> io::Result<Disk> {
        // A new incarnation of the node: whatever was in the old page cache is gone.
        faults.unsynced_writes.store(0, Ordering::Relaxed);
        faults.unsynced_by_file.lock().unwrap().clear();
        faults.tear_in_flight.store(false, Ordering::Relaxed);
        let inner = Inner {
            pending: BTreeMap::new(),
            faults,
            node,
        };
        Ok(Disk {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            node,
        })
    }

    pub async fn exists(&self, name: &str) -> bool {
        let inner = self.inner.lock().await;
        let exists = inner.faults.platters.lock().unwrap().contains_key(name);
        exists
    }

    /// Names that start with `prefix`, in sorted order.
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let inner = self.inner.lock().await;
        let platters = inner.faults.platters.lock().unwrap();
        platters
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The whole file. Only for files known to be small (the master's log and checkpoint).
    pub async fn read_all(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(self.read_sparse(name, 0, u64::MAX).await?.to_vec())
    }

    /// Reads up to `len` bytes at `offset`; short at the end of the file.
    pub async fn read(&self, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        Ok(self.read_sparse(name, offset, len).await?.to_vec())
    }

    /// [`Disk::read`] without materializing zeros: what was never written, or was zeroed, stays
    /// unstored.
    pub async fn read_sparse(&self, name: &str, offset: u64, len: u64) -> io::Result<SparseBytes> {
        let mut inner = self.inner.lock().await;
        inner.apply_flips();
        inner.view(name, offset, len)
    }

    /// The file's stamp (see [`DiskFaults`]): equal stamps, equal content, flips included. Applies
    /// pending bit flips first, as a read would at this instant.
    pub async fn stamp(&self, name: &str) -> Option<u64> {
        let mut inner = self.inner.lock().await;
        inner.apply_flips();
        let stamp = inner.faults.stamps.lock().unwrap().get(name).copied();
        stamp
    }

    pub async fn len(&self, name: &str) -> io::Result<u64> {
        self.inner.lock().await.len(name)
    }

    fn check_bound(end: u64) -> io::Result<()> {
        if end > MAX_FILE_BYTES {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("write past the disk model's {MAX_FILE_BYTES}-byte file limit"),
            ));
        }
        Ok(())
    }

    /// Writes into the page cache, creating the file if needed. Durable only after [`Disk::sync`].
    pub async fn write(&self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_shared(name, offset, Arc::new(data.to_vec()))
            .await
    }

    /// [`Disk::write`] of a shared buffer, without copying it.
    pub async fn write_shared(
        &self,
        name: &str,
        offset: u64,
        data: Arc<Vec<u8>>,
    ) -> io::Result<()> {
        Self::check_bound(offset.saturating_add(data.len() as u64))?;
        let bytes = data.len() as u64;
        let mut inner = self.inner.lock().await;
        inner.cache(name, Pending::Write { offset, data }, bytes);
        Ok(())
    }

    /// Writes the whole of `data` (its zeros as zeros, stored as nothing) at `offset`.
    pub async fn write_sparse(
        &self,
        name: &str,
        offset: u64,
        data: &SparseBytes,
    ) -> io::Result<()> {
        Self::check_bound(offset.saturating_add(data.len()))?;
        self.zero(name, offset, offset + data.len()).await?;
        for (at, run) in data.runs() {
            self.write(name, offset + at, run).await?;
        }
        Ok(())
    }

    /// Zeros `[from, to)` in the page cache, growing the file to `to` if it is shorter.
    pub async fn zero(&self, name: &str, from: u64, to: u64) -> io::Result<()> {
        Self::check_bound(to)?;
        let mut inner = self.inner.lock().await;
        inner.cache(name, Pending::Zero { from, to }, 0);
        Ok(())
    }

    /// Truncates or extends (with zeros) in the page cache.
    pub async fn set_len(&self, name: &str, len: u64) -> io::Result<()> {
        Self::check_bound(len)?;
        let mut inner = self.inner.lock().await;
        inner.cache(name, Pending::SetLen(len), 0);
        Ok(())
    }

    /// Makes every cached write to `name` durable. Takes a random time (see [`DiskFaults`]).
    ///
    /// A sync with writes to make durable is a fault point ([`crate::points`]) before it starts
    /// and after it ends.
    pub async fn sync(&self, name: &str) -> io::Result<()> {
        let node = self.node;
        if let Some(nth) = self.sync_inner(name, node).await? {
            crate::points::after_sync(node, name, nth).await;
        }
        Ok(())
    }

    /// [`Disk::sync`]; the sync's number among the node's syncs of `name` if there were writes
    /// to sync (0 when points are not counted).
    async fn sync_inner(&self, name: &str, node: NodeName) -> io::Result<Option<u32>> {
        let mut inner = self.inner.lock().await;
        inner.apply_flips();
        if !inner.pending.contains_key(name) {
            return if inner.faults.platters.lock().unwrap().contains_key(name) {
                Ok(None)
            } else {
                Err(not_found(name))
            };
        }
        let mut nth = 0;
        if crate::points::installed() {
            // The point before: let go of the disk while the handler may crash or pause the node.
            drop(inner);
            nth = crate::points::before_sync(node, name).await;
            inner = self.inner.lock().await;
        }
        let Some(ops) = inner.pending.remove(name) else {
            // Another task synced this file while the point was reached.
            return Ok(None);
        };
        let faults = inner.faults.clone();
        let mut rng = madsim::rand::thread_rng();
        if faults.torn_writes.load(Ordering::Relaxed) && rng.gen_bool(0.5) {
            // The disk gets part of the way through before the sync could finish.
            let mut torn = ops.clone();
            let keep = rng.gen_range(0..torn.len());
            torn.truncate(keep + 1);
            if let Some(Pending::Write { data, .. }) = torn.last_mut() {
                let cut = rng.gen_range(0..=data.len());
                *data = Arc::new(data[..cut].to_vec());
            }
            inner.write_durable(name, &torn)?;
            faults.tear_in_flight.store(true, Ordering::Relaxed);
        }
        let latency_us = rng.gen_range(0..=faults.sync_latency_us.load(Ordering::Relaxed));
        madsim::time::sleep(Duration::from_micros(latency_us)).await;
        faults.uncached(name);
        if faults.lies_about_sync.load(Ordering::Relaxed) {
            faults.forget_unsynced(ops.len() as u64);
            crate::trace::emit_full(inner.node, || Event::DiskLost {
                file: name.to_string(),
                writes: ops.len() as u64,
                bytes: bytes_of(&ops),
                why: LossCause::SyncLied,
            });
            inner.faults.touch(name);
            return Ok(Some(nth)); // the writes are simply dropped
        }
        inner.write_durable(name, &ops)?;
        faults.tear_in_flight.store(false, Ordering::Relaxed);
        faults.forget_unsynced(ops.len() as u64);
        crate::trace::emit_full(inner.node, || Event::DiskSynced {
            file: name.to_string(),
            writes: ops.len() as u64,
            bytes: bytes_of(&ops),
            took_us: latency_us,
        });
        Ok(Some(nth))
    }

    /// Removes a name (durably). Its content is gone, synced or not.
    pub async fn remove(&self, name: &str) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        inner
            .faults
            .platters
            .lock()
            .unwrap()
            .remove(name)
            .ok_or_else(|| not_found(name))?;
        let dropped = inner.pending.remove(name).map_or(0, |ops| ops.len() as u64);
        inner.faults.forget_unsynced(dropped);
        inner.faults.uncached(name);
        inner.faults.stamps.lock().unwrap().remove(name);
        Ok(())
    }

    /// Renames `from` to `to` (durably), replacing `to` if it exists. Unsynced writes follow the
    /// file, as they would in a real page cache.
    pub async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        {
            let mut platters = inner.faults.platters.lock().unwrap();
            let file = platters.remove(from).ok_or_else(|| not_found(from))?;
            platters.insert(to.to_string(), file);
        }
        let ops = inner.pending.remove(from);
        let dropped = inner.pending.remove(to).map_or(0, |ops| ops.len() as u64);
        inner.faults.forget_unsynced(dropped);
        inner.faults.uncached(to);
        if let Some(moved) = inner.faults.uncached(from) {
            inner
                .faults
                .unsynced_by_file
                .lock()
                .unwrap()
                .insert(to.to_string(), moved);
        }
        if let Some(ops) = ops {
            inner.pending.insert(to.to_string(), ops);
        }
        inner.faults.stamps.lock().unwrap().remove(from);
        inner.faults.touch(to);
        Ok(())
    }

    pub async fn stats(&self) -> DiskStats {
        let inner = self.inner.lock().await;
        let files = inner.faults.platters.lock().unwrap().len();
        DiskStats {
            files,
            unsynced_files: inner.pending.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use madsim::runtime::Runtime;

    #[test]
    fn unsynced_writes_die_with_the_node_synced_ones_survive() {
        let rt = Runtime::with_seed_and_config(1, madsim::Config::default());
        let node = rt.create_node().name("n").build();
        let id = node.id();
        let h = rt.handle().clone();
        let faults = DiskFaults::new(100, false, "");
        let (f1, f2, f3) = (faults.clone(), faults.clone(), faults.clone());
        rt.block_on(async move {
            let faults = f1;
            node.spawn(async move {
                let disk = Disk::open(NodeName::Master, faults.clone()).await.unwrap();
                disk.write("a/x", 0, b"hello").await.unwrap();
                disk.sync("a/x").await.unwrap();
                disk.write("a/x", 5, b" world").await.unwrap();
                disk.write("a/y", 3, b"zz").await.unwrap();
                assert_eq!(disk.read_all("a/x").await.unwrap(), b"hello world");
                assert_eq!(disk.read_all("a/y").await.unwrap(), b"\0\0\0zz");
                assert_eq!(disk.read("a/x", 4, 3).await.unwrap(), b"o w");
                assert_eq!(disk.read("a/x", 9, 10).await.unwrap(), b"ld");
                assert_eq!(disk.read("a/x", 20, 10).await.unwrap(), b"");
                disk.set_len("a/x", 3).await.unwrap();
                disk.set_len("a/x", 6).await.unwrap();
                assert_eq!(disk.read("a/x", 1, 4).await.unwrap(), b"el\0\0");
                assert_eq!(disk.len("a/x").await.unwrap(), 6);
                disk.write("a/x", 5, b" world").await.unwrap();
                assert_eq!(disk.list("a/").await, vec!["a/x", "a/y"]);
            })
            .await
            .unwrap();
            h.kill(id);
            h.restart(id);
            let node = h.get_node(id).unwrap();
            node.spawn(async move {
                let disk = Disk::open(NodeName::Master, f2).await.unwrap();
                // The synced prefix survives; the unsynced suffix and contents are lost, the names
                // (durable at creation) remain.
                assert_eq!(disk.read_all("a/x").await.unwrap(), b"hello");
                assert_eq!(disk.read_all("a/y").await.unwrap(), b"");
                // Appending past the end of a reopened file works and syncs.
                disk.write("a/x", 7, b"!").await.unwrap();
                disk.sync("a/x").await.unwrap();
                disk.rename("a/x", "b").await.unwrap();
                disk.remove("a/y").await.unwrap();
                assert_eq!(disk.list("").await, vec!["b"]);
            })
            .await
            .unwrap();
            h.kill(id);
            h.restart(id);
            h.get_node(id)
                .unwrap()
                .spawn(async move {
                    let disk = Disk::open(NodeName::Master, f3).await.unwrap();
                    assert_eq!(disk.read_all("b").await.unwrap(), b"hello\0\0!");
                    assert!(disk.read_all("a/x").await.is_err());
                })
                .await
                .unwrap();
        });
    }
}
