//! The project's disk model over `madsim::fs`.
//!
//! `madsim::fs` is a per-node, in-memory file store that survives a node's crash whole: its
//! `power_fail` does nothing, and it offers no directory listing, removal or rename. A real disk
//! behind a page cache loses what was written but not synced when the machine dies, and that loss is
//! what makes GFS's "sync before acknowledging" rules matter. So this module adds:
//!
//! - **A page cache that dies with the node.** Writes land in [`Disk`]'s memory, which lives inside
//!   the node's tasks; only [`Disk::sync`] copies them into `madsim::fs`. When madsim kills the node
//!   its memory is dropped, so unsynced writes are lost exactly as on a power failure.
//! - **A directory.** Logical names (`chunks/0a/000000000000000a.data`, `oplog`) map to physical
//!   `madsim::fs` files through a small directory file kept in `madsim::fs`. Creating, removing and
//!   renaming a name are durable when the call returns (as on a file system mounted with `dirsync`);
//!   file *contents* are durable only after `sync`.
//!
//! Names may contain `/`, so callers can spread files over "subdirectories"; [`Disk::list`] lists
//! by prefix.
//!
//! **Faults** live in a [`DiskFaults`] (`faults.rs`) shared with the harness and kept across
//! restarts, like the hardware it stands for; this file applies them where they strike (a sync, a
//! read). Without torn writes, a sync is all or nothing, which is what lets a chunkserver update a
//! chunk atomically.
//!
//! **Trace.** In a full trace ([`crate::trace::Detail::Full`]) every page-cache write is a
//! `disk_write`, every sync a `disk_sync` (what it made durable), and writes a crash or a lying
//! sync threw away a `disk_lost`. To name what a crash loses, [`DiskFaults`] keeps a summary of
//! the page cache per file, at full detail only, since the cache itself dies with the node.

mod faults;

pub use faults::DiskFaults;

use crate::trace::{DiskWrite, Event, LossCause, NodeName};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, ErrorKind};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The bytes a batch of page-cache operations writes (a length change counts none).
fn bytes_of(ops: &[Pending]) -> u64 {
    ops.iter()
        .map(|op| match op {
            Pending::Write { data, .. } => data.len() as u64,
            Pending::SetLen(_) => 0,
        })
        .sum()
}

/// Largest logical file the model accepts: one 64 MiB chunk plus room for metadata files.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Directory {
    next_id: u64,
    files: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

struct Inner {
    root: String,
    dir: Directory,
    /// Unsynced operations per logical name, in issue order: the page cache.
    pending: BTreeMap<String, Vec<Pending>>,
    /// Writable `madsim::fs` handles, opened lazily (opening for write truncates in madsim, so the
    /// first open after a restart copies the durable content back in).
    open: BTreeMap<u64, madsim::fs::File>,
    faults: Arc<DiskFaults>,
    node: NodeName,
}

/// A node's disk. Cheap to clone; clones share the same page cache.
#[derive(Clone)]
pub struct Disk {
    inner: Arc<tokio::sync::Mutex<Inner>>,
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
    fn dir_path(&self) -> String {
        format!("{}/DIR", self.root)
    }
    fn phys_path(&self, id: u64) -> String {
        format!("{}/p{id}", self.root)
    }

    async fn persist_dir(&self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.dir).expect("directory serializes");
        let file = madsim::fs::File::create(self.dir_path()).await?;
        file.write_all_at(&bytes, 0).await?;
        file.sync_all().await
    }

    /// Durable bytes of `[offset, offset + len)`, short at the durable end.
    async fn durable_range(&self, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let id = *self.dir.files.get(name).ok_or_else(|| not_found(name))?;
        let opened;
        let file = match self.open.get(&id) {
            Some(f) => f,
            None => match madsim::fs::File::open(self.phys_path(id)).await {
                Ok(f) => {
                    opened = f;
                    &opened
                }
                // Created in the directory, never synced: empty.
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let file_len = file.metadata().await?.len();
        if offset >= file_len {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; len.min(file_len - offset) as usize];
        file.read_at(&mut buf, offset).await?;
        Ok(buf)
    }

    async fn durable_len(&self, name: &str) -> io::Result<u64> {
        let id = *self.dir.files.get(name).ok_or_else(|| not_found(name))?;
        match self.open.get(&id) {
            Some(f) => Ok(f.metadata().await?.len()),
            None => match madsim::fs::metadata(self.phys_path(id)).await {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            },
        }
    }

    /// The file's length as this node sees it, page cache included.
    async fn len(&self, name: &str) -> io::Result<u64> {
        let mut len = self.durable_len(name).await?;
        for op in self.pending.get(name).into_iter().flatten() {
            len = match op {
                Pending::Write { offset, data } => len.max(offset + data.len() as u64),
                Pending::SetLen(l) => *l,
            };
        }
        Ok(len)
    }

    /// `[offset, offset + len)` as this node sees it: durable bytes with the page cache's writes
    /// replayed over that window only, so a small read of a large file copies little.
    async fn range(&self, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(len);
        let mut file_len = self.durable_len(name).await?;
        let mut window = self.durable_range(name, offset, len).await?;
        // The window holds [offset, min(end, file_len)); this keeps it so as the length changes.
        let fit = |window: &mut Vec<u8>, file_len: u64| {
            window.resize((file_len.min(end).saturating_sub(offset)) as usize, 0)
        };
        for op in self.pending.get(name).into_iter().flatten() {
            match op {
                Pending::Write { offset: at, data } => {
                    file_len = file_len.max(at + data.len() as u64);
                    fit(&mut window, file_len);
                    let lo = (*at).max(offset);
                    let hi = (at + data.len() as u64).min(end);
                    if lo < hi {
                        window[(lo - offset) as usize..(hi - offset) as usize]
                            .copy_from_slice(&data[(lo - at) as usize..(hi - at) as usize]);
                    }
                }
                Pending::SetLen(l) => {
                    file_len = *l;
                    fit(&mut window, file_len);
                }
            }
        }
        Ok(window)
    }

    async fn content(&self, name: &str) -> io::Result<Vec<u8>> {
        self.range(name, 0, u64::MAX).await
    }

    /// Writes `ops` to the durable file `id`.
    async fn write_durable(&mut self, id: u64, ops: &[Pending]) -> io::Result<()> {
        if !self.open.contains_key(&id) {
            // Opening for write truncates in madsim::fs: carry the durable bytes across.
            let name = self
                .dir
                .files
                .iter()
                .find(|(_, &i)| i == id)
                .map(|(n, _)| n.clone());
            let durable = match name {
                Some(n) => self.durable_range(&n, 0, u64::MAX).await?,
                None => Vec::new(),
            };
            let file = madsim::fs::File::create(self.phys_path(id)).await?;
            file.write_all_at(&durable, 0).await?;
            self.open.insert(id, file);
        }
        let file = &self.open[&id];
        for op in ops {
            match op {
                Pending::Write { offset, data } => {
                    let len = file.metadata().await?.len();
                    if *offset > len {
                        file.set_len(*offset).await?;
                    }
                    file.write_all_at(data, *offset).await?;
                }
                Pending::SetLen(len) => file.set_len(*len).await?,
            }
        }
        file.sync_all().await
    }

    /// Applies the bit flips the harness asked for, to durable bytes of eligible files.
    async fn apply_flips(&mut self) -> io::Result<()> {
        let faults = self.faults.clone();
        while faults.pending_flips.load(Ordering::Relaxed) > 0 {
            faults.pending_flips.fetch_sub(1, Ordering::Relaxed);
            let prefix = faults.flip_prefix.lock().unwrap().clone();
            if prefix.is_empty() {
                continue;
            }
            let mut candidates = Vec::new();
            for (name, &id) in &self.dir.files {
                if name.starts_with(&prefix) {
                    let len = self.durable_len(name).await?;
                    if len > 0 {
                        candidates.push((name.clone(), id, len));
                    }
                }
            }
            if candidates.is_empty() {
                continue;
            }
            let mut rng = madsim::rand::thread_rng();
            let (name, id, len) = candidates[rng.gen_range(0..candidates.len())].clone();
            let at = rng.gen_range(0..len);
            let bit = rng.gen_range(0..8u8);
            let old = self.durable_range(&name, at, 1).await?[0];
            self.write_durable(
                id,
                &[Pending::Write {
                    offset: at,
                    data: vec![old ^ (1 << bit)],
                }],
            )
            .await?;
            faults.flips_applied.fetch_add(1, Ordering::Relaxed);
            crate::trace::emit(self.node, || Event::BitFlipped {
                file: name,
                offset: at,
                bit,
            });
        }
        Ok(())
    }

    async fn ensure_exists(&mut self, name: &str) -> io::Result<()> {
        if !self.dir.files.contains_key(name) {
            let id = self.dir.next_id;
            self.dir.next_id += 1;
            self.dir.files.insert(name.to_string(), id);
            self.persist_dir().await?;
        }
        Ok(())
    }
}

impl Disk {
    /// Opens the disk rooted at `root` on the current node, finding whatever a previous incarnation
    /// of the node synced there.
    pub async fn open(root: &str, node: NodeName, faults: Arc<DiskFaults>) -> io::Result<Disk> {
        // A new incarnation of the node: whatever was in the old page cache is gone.
        faults.unsynced_writes.store(0, Ordering::Relaxed);
        faults.unsynced_by_file.lock().unwrap().clear();
        faults.tear_in_flight.store(false, Ordering::Relaxed);
        let mut inner = Inner {
            root: root.to_string(),
            dir: Directory::default(),
            pending: BTreeMap::new(),
            open: BTreeMap::new(),
            faults,
            node,
        };
        match madsim::fs::read(inner.dir_path()).await {
            Ok(bytes) => {
                inner.dir = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(ErrorKind::InvalidData, format!("corrupt directory: {e}"))
                })?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Disk {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
        })
    }

    pub async fn exists(&self, name: &str) -> bool {
        self.inner.lock().await.dir.files.contains_key(name)
    }

    /// Names that start with `prefix`, in sorted order.
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let inner = self.inner.lock().await;
        inner
            .dir
            .files
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub async fn read_all(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut inner = self.inner.lock().await;
        inner.apply_flips().await?;
        inner.content(name).await
    }

    /// Reads up to `len` bytes at `offset`; short at the end of the file.
    pub async fn read(&self, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut inner = self.inner.lock().await;
        inner.apply_flips().await?;
        inner.range(name, offset, len).await
    }

    pub async fn len(&self, name: &str) -> io::Result<u64> {
        self.inner.lock().await.len(name).await
    }

    /// Writes into the page cache, creating the file if needed. Durable only after [`Disk::sync`].
    pub async fn write(&self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset.saturating_add(data.len() as u64) > MAX_FILE_BYTES {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("write past the disk model's {MAX_FILE_BYTES}-byte file limit"),
            ));
        }
        let mut inner = self.inner.lock().await;
        inner.ensure_exists(name).await?;
        inner.faults.unsynced_writes.fetch_add(1, Ordering::Relaxed);
        inner.faults.cached(name, data.len() as u64);
        crate::trace::emit_full(inner.node, || Event::DiskWritten {
            file: name.to_string(),
            write: DiskWrite::Bytes {
                offset,
                len: data.len() as u64,
            },
        });
        inner
            .pending
            .entry(name.to_string())
            .or_default()
            .push(Pending::Write {
                offset,
                data: data.to_vec(),
            });
        Ok(())
    }

    /// Truncates or extends (with zeros) in the page cache.
    pub async fn set_len(&self, name: &str, len: u64) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        inner.ensure_exists(name).await?;
        inner.faults.unsynced_writes.fetch_add(1, Ordering::Relaxed);
        inner.faults.cached(name, 0);
        crate::trace::emit_full(inner.node, || Event::DiskWritten {
            file: name.to_string(),
            write: DiskWrite::SetLen { len },
        });
        inner
            .pending
            .entry(name.to_string())
            .or_default()
            .push(Pending::SetLen(len));
        Ok(())
    }

    /// Makes every cached write to `name` durable. Takes a random time (see [`DiskFaults`]).
    pub async fn sync(&self, name: &str) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        inner.apply_flips().await?;
        let Some(ops) = inner.pending.remove(name) else {
            return if inner.dir.files.contains_key(name) {
                Ok(())
            } else {
                Err(not_found(name))
            };
        };
        let id = *inner.dir.files.get(name).ok_or_else(|| not_found(name))?;
        let faults = inner.faults.clone();
        let mut rng = madsim::rand::thread_rng();
        if faults.torn_writes.load(Ordering::Relaxed) && rng.gen_bool(0.5) {
            // The disk gets part of the way through before the sync could finish.
            let mut torn = ops.clone();
            let keep = rng.gen_range(0..torn.len());
            torn.truncate(keep + 1);
            if let Some(Pending::Write { data, .. }) = torn.last_mut() {
                let cut = rng.gen_range(0..=data.len());
                data.truncate(cut);
            }
            inner.write_durable(id, &torn).await?;
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
            return Ok(()); // the writes are simply dropped
        }
        inner.write_durable(id, &ops).await?;
        faults.tear_in_flight.store(false, Ordering::Relaxed);
        faults.forget_unsynced(ops.len() as u64);
        crate::trace::emit_full(inner.node, || Event::DiskSynced {
            file: name.to_string(),
            writes: ops.len() as u64,
            bytes: bytes_of(&ops),
            took_us: latency_us,
        });
        Ok(())
    }

    /// Removes a name (durably). Its content is gone, synced or not.
    pub async fn remove(&self, name: &str) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        let id = inner
            .dir
            .files
            .remove(name)
            .ok_or_else(|| not_found(name))?;
        let dropped = inner.pending.remove(name).map_or(0, |ops| ops.len() as u64);
        inner.faults.forget_unsynced(dropped);
        inner.faults.uncached(name);
        inner.open.remove(&id);
        inner.persist_dir().await?;
        // Free the physical file's memory: madsim::fs cannot delete, but it can truncate.
        madsim::fs::File::create(inner.phys_path(id)).await?;
        Ok(())
    }

    /// Renames `from` to `to` (durably), replacing `to` if it exists. Unsynced writes follow the
    /// file, as they would in a real page cache.
    pub async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        let id = inner
            .dir
            .files
            .remove(from)
            .ok_or_else(|| not_found(from))?;
        let replaced = inner.dir.files.insert(to.to_string(), id);
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
        inner.persist_dir().await?;
        if let Some(old) = replaced {
            inner.open.remove(&old);
            madsim::fs::File::create(inner.phys_path(old)).await?;
        }
        Ok(())
    }

    pub async fn stats(&self) -> DiskStats {
        let inner = self.inner.lock().await;
        DiskStats {
            files: inner.dir.files.len(),
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
                let disk = Disk::open("/d", NodeName::Master, faults.clone())
                    .await
                    .unwrap();
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
                let disk = Disk::open("/d", NodeName::Master, f2).await.unwrap();
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
                    let disk = Disk::open("/d", NodeName::Master, f3).await.unwrap();
                    assert_eq!(disk.read_all("b").await.unwrap(), b"hello\0\0!");
                    assert!(disk.read_all("a/x").await.is_err());
                })
                .await
                .unwrap();
        });
    }
}
