//! Chunk storage on a chunkserver's disk, with a checksum per block (GFS §5.2).
//!
//! Each chunk is two files, spread over 256 subdirectories by handle so no directory grows huge:
//! `chunks/XX/HANDLE.data` holds the bytes, `chunks/XX/HANDLE.meta` the version, length and one
//! CRC-32 per `block_size_bytes` block. A mutation writes and syncs the data, then the metadata;
//! only then is it acknowledged.
//!
//! Every read verifies the checksums of the blocks it touches, and a write that only partly covers
//! a block verifies that block's old contents first, as the paper prescribes: otherwise a new
//! checksum computed over rotten bytes would hide the corruption for ever.

use crate::disk::Disk;
use crate::types::{ChunkHandle, GfsError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the chunkserver knows about one of its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub version: u64,
    pub len_bytes: u64,
    pub checksums: Vec<u32>,
}

pub struct ChunkStore {
    disk: Disk,
    chunk_size_bytes: u64,
    block_size_bytes: u64,
    chunks: BTreeMap<ChunkHandle, ChunkInfo>,
}

fn data_name(h: ChunkHandle) -> String {
    format!("chunks/{:02x}/{:016x}.data", h.0 % 256, h.0)
}

fn meta_name(h: ChunkHandle) -> String {
    format!("chunks/{:02x}/{:016x}.meta", h.0 % 256, h.0)
}

fn io(e: std::io::Error) -> GfsError {
    GfsError::Io(e.to_string())
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

impl ChunkStore {
    /// Loads every replica whose metadata a previous incarnation synced.
    pub async fn load(
        disk: Disk,
        chunk_size_bytes: u64,
        block_size_bytes: u64,
    ) -> Result<ChunkStore, GfsError> {
        let mut chunks = BTreeMap::new();
        for name in disk.list("chunks/").await {
            let Some(stem) = name.strip_suffix(".meta") else {
                continue;
            };
            let hex = stem.rsplit('/').next().unwrap_or_default();
            let handle = u64::from_str_radix(hex, 16)
                .map_err(|_| GfsError::Io(format!("unexpected file {name}")))?;
            let bytes = disk.read_all(&name).await.map_err(io)?;
            let info: ChunkInfo = serde_json::from_slice(&bytes)
                .map_err(|e| GfsError::Io(format!("corrupt metadata {name}: {e}")))?;
            assert!(
                info.len_bytes <= chunk_size_bytes,
                "{name}: chunk longer than a chunk"
            );
            chunks.insert(ChunkHandle(handle), info);
        }
        Ok(ChunkStore {
            disk,
            chunk_size_bytes,
            block_size_bytes,
            chunks,
        })
    }

    pub fn info(&self, h: ChunkHandle) -> Option<&ChunkInfo> {
        self.chunks.get(&h)
    }

    pub fn version(&self, h: ChunkHandle) -> Option<u64> {
        self.chunks.get(&h).map(|c| c.version)
    }

    /// (handle, version) of every replica, for heartbeats.
    pub fn report(&self) -> Vec<(ChunkHandle, u64)> {
        self.chunks.iter().map(|(h, c)| (*h, c.version)).collect()
    }

    async fn persist_meta(&self, h: ChunkHandle) -> Result<(), GfsError> {
        let info = &self.chunks[&h];
        let blocks = info.len_bytes.div_ceil(self.block_size_bytes) as usize;
        assert_eq!(
            info.checksums.len(),
            blocks,
            "chunk {h}: one checksum per block"
        );
        let bytes = serde_json::to_vec(info).expect("chunk metadata serializes");
        let name = meta_name(h);
        self.disk.set_len(&name, 0).await.map_err(io)?;
        self.disk.write(&name, 0, &bytes).await.map_err(io)?;
        self.disk.sync(&name).await.map_err(io)
    }

    /// Creates an empty replica at `version`.
    pub async fn create(&mut self, h: ChunkHandle, version: u64) -> Result<(), GfsError> {
        assert!(!self.chunks.contains_key(&h), "chunk {h} created twice");
        self.disk.set_len(&data_name(h), 0).await.map_err(io)?;
        self.disk.sync(&data_name(h)).await.map_err(io)?;
        let info = ChunkInfo {
            version,
            len_bytes: 0,
            checksums: Vec::new(),
        };
        self.chunks.insert(h, info);
        self.persist_meta(h).await
    }

    pub async fn set_version(&mut self, h: ChunkHandle, version: u64) -> Result<(), GfsError> {
        let info = self.chunks.get_mut(&h).ok_or(GfsError::NoSuchReplica(h))?;
        assert!(
            version >= info.version,
            "chunk {h}: version {} -> {version}",
            info.version
        );
        info.version = version;
        self.persist_meta(h).await
    }

    pub async fn remove(&mut self, h: ChunkHandle) -> Result<(), GfsError> {
        self.chunks.remove(&h).ok_or(GfsError::NoSuchReplica(h))?;
        for name in [data_name(h), meta_name(h)] {
            if self.disk.exists(&name).await {
                self.disk.remove(&name).await.map_err(io)?;
            }
        }
        Ok(())
    }

    /// Reads `[start, end)` of the stored bytes and checks every whole block in it.
    async fn read_verified(
        &self,
        h: ChunkHandle,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, GfsError> {
        let info = self.chunks.get(&h).ok_or(GfsError::NoSuchReplica(h))?;
        let bs = self.block_size_bytes;
        let end = end.min(info.len_bytes);
        if start >= end {
            return Ok(Vec::new());
        }
        let first = start / bs;
        let last = (end - 1) / bs;
        let span_start = first * bs;
        let span_end = ((last + 1) * bs).min(info.len_bytes);
        let bytes = self
            .disk
            .read(&data_name(h), span_start, span_end - span_start)
            .await
            .map_err(io)?;
        if bytes.len() as u64 != span_end - span_start {
            return Err(GfsError::ChecksumMismatch(h)); // shorter than its metadata says
        }
        for b in first..=last {
            let lo = ((b * bs) - span_start) as usize;
            let hi = ((((b + 1) * bs).min(info.len_bytes)) - span_start) as usize;
            if crc(&bytes[lo..hi]) != info.checksums[b as usize] {
                return Err(GfsError::ChecksumMismatch(h));
            }
        }
        let lo = (start - span_start) as usize;
        let hi = (end - span_start) as usize;
        Ok(bytes[lo..hi].to_vec())
    }

    /// Reads up to `len` bytes at `offset`, short at the replica's end.
    pub async fn read(&self, h: ChunkHandle, offset: u64, len: u64) -> Result<Vec<u8>, GfsError> {
        self.read_verified(h, offset, offset.saturating_add(len))
            .await
    }

    /// Writes `data` at `offset`, zero-filling any gap after the current end, updating the
    /// checksums of every touched block.
    pub async fn write(
        &mut self,
        h: ChunkHandle,
        offset: u64,
        data: &[u8],
    ) -> Result<(), GfsError> {
        let end = offset + data.len() as u64;
        if end > self.chunk_size_bytes {
            return Err(GfsError::InvalidRange(format!(
                "write [{offset}, {end}) past the chunk size {}",
                self.chunk_size_bytes
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        let bs = self.block_size_bytes;
        let old_len = self
            .chunks
            .get(&h)
            .ok_or(GfsError::NoSuchReplica(h))?
            .len_bytes;
        let new_len = old_len.max(end);
        // Blocks whose bytes change: from the first written byte (or the old end, if the write
        // leaves a zero-filled gap) to the last written byte.
        let first = offset.min(old_len) / bs;
        let last = (end - 1) / bs;
        let span_start = first * bs;
        let span_end = ((last + 1) * bs).min(new_len);
        // Old bytes of the span, checked (GFS §5.2: verify before overwriting part of a block).
        let mut span = self.read_verified(h, span_start, span_end).await?;
        span.resize((span_end - span_start) as usize, 0);
        let lo = (offset - span_start) as usize;
        span[lo..lo + data.len()].copy_from_slice(data);

        self.disk
            .write(&data_name(h), offset, data)
            .await
            .map_err(io)?;
        if offset > old_len {
            // The gap must read back as zeros even if the file held stale bytes past its end.
            let gap = vec![0; (offset - old_len) as usize];
            self.disk
                .write(&data_name(h), old_len, &gap)
                .await
                .map_err(io)?;
        }
        self.disk.sync(&data_name(h)).await.map_err(io)?;
        let info = self.chunks.get_mut(&h).expect("checked above");
        info.len_bytes = new_len;
        info.checksums.resize(new_len.div_ceil(bs) as usize, 0);
        for b in first..=last {
            let lo = ((b * bs) - span_start) as usize;
            let hi = ((((b + 1) * bs).min(new_len)) - span_start) as usize;
            info.checksums[b as usize] = crc(&span[lo..hi]);
        }
        self.persist_meta(h).await
    }

    /// Record-append padding: zeros from `from` to the end of the chunk (GFS §3.3).
    pub async fn pad(&mut self, h: ChunkHandle, from: u64) -> Result<(), GfsError> {
        let from = from.min(self.chunk_size_bytes);
        let zeros = vec![0; (self.chunk_size_bytes - from) as usize];
        self.write(h, from, &zeros).await
    }

    /// The whole replica and whether every block passes its checksum (for the harness).
    pub async fn read_whole(&self, h: ChunkHandle) -> Result<(u64, Vec<u8>, bool), GfsError> {
        let info = self.chunks.get(&h).ok_or(GfsError::NoSuchReplica(h))?;
        let bytes = self
            .disk
            .read(&data_name(h), 0, info.len_bytes)
            .await
            .map_err(io)?;
        let ok = self.read_verified(h, 0, info.len_bytes).await.is_ok();
        Ok((info.version, bytes, ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use madsim::runtime::Runtime;

    fn on_node(f: impl std::future::Future<Output = ()> + Send + 'static) {
        let rt = Runtime::with_seed_and_config(3, madsim::Config::default());
        let node = rt.create_node().build();
        rt.block_on(async move { node.spawn(f).await.unwrap() });
    }

    #[test]
    fn writes_gaps_padding_and_checksums() {
        on_node(async {
            let disk = Disk::open("/cs").await.unwrap();
            let mut s = ChunkStore::load(disk.clone(), 64, 16).await.unwrap();
            let h = ChunkHandle(0x1ab);
            s.create(h, 1).await.unwrap();
            s.write(h, 10, b"hello").await.unwrap();
            assert_eq!(
                s.read(h, 0, 100).await.unwrap(),
                [&[0u8; 10][..], b"hello"].concat()
            );
            s.write(h, 40, b"far").await.unwrap();
            assert_eq!(s.info(h).unwrap().len_bytes, 43);
            assert_eq!(s.read(h, 12, 30).await.unwrap()[..3], *b"llo");
            assert_eq!(s.read(h, 40, 3).await.unwrap(), b"far");
            assert!(s.write(h, 60, b"toolong").await.is_err());
            s.pad(h, 43).await.unwrap();
            assert_eq!(s.info(h).unwrap().len_bytes, 64);
            // Reloading from disk gives the same replica.
            let again = ChunkStore::load(disk.clone(), 64, 16).await.unwrap();
            assert_eq!(again.info(h), s.info(h));
            assert!(disk.exists("chunks/ab/00000000000001ab.data").await);
            // Rot one stored byte behind the store's back: the read of that block fails, the others
            // still verify, and a partial overwrite of the rotten block is refused too.
            disk.write("chunks/ab/00000000000001ab.data", 41, b"X")
                .await
                .unwrap();
            assert_eq!(s.read(h, 40, 2).await, Err(GfsError::ChecksumMismatch(h)));
            assert_eq!(s.read(h, 10, 5).await.unwrap(), b"hello");
            assert_eq!(
                s.write(h, 33, b"y").await,
                Err(GfsError::ChecksumMismatch(h))
            );
            let (_, _, ok) = s.read_whole(h).await.unwrap();
            assert!(!ok);
        });
    }
}
