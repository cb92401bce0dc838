//! Chunk storage on a chunkserver's disk, with a checksum per block (GFS §5.2).
//!
//! Each chunk is one file, spread over 256 subdirectories by handle so no directory grows huge:
//! `chunks/XX/HANDLE.chunk`. The file starts with a fixed-size header (magic, version, length, one
//! CRC-32 per `block_size_bytes` block, and a CRC of the header itself), followed by the data. A
//! mutation writes the new bytes and the new header and syncs once, so on a healthy disk an update
//! is all or nothing; a torn write on a faulty disk shows up as a checksum failure.
//!
//! Every read verifies the checksums of the blocks it touches, and a write that only partly covers
//! a block verifies that block's old contents first, as the paper prescribes: otherwise a new
//! checksum computed over rotten bytes would hide the corruption for ever. A replica whose header
//! fails its own CRC is dropped when the chunkserver starts: its version cannot be trusted, and a
//! rotten version number could make the master adopt a version no good replica has.
//!
//! Chunks are sparse ([`SparseBytes`]): a write stores the bytes it wrote, record-append padding
//! and holes store nothing, and a whole replica travels as its runs. A block that stores nothing is
//! all zeros, and its checksum is the checksum of zeros, computed once; so a 64 MiB chunk that is
//! mostly padding costs its few written blocks to write, read, verify and copy (GFS §2.5, §5.2).

use crate::disk::Disk;
use crate::sparse::SparseBytes;
use crate::types::{ChunkHandle, GfsError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the chunkserver knows about one of its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Replicas found with a rotten header at load and removed.
    discarded: Vec<ChunkHandle>,
    /// Verify checksums (always, but for the `no_checksum_verify` bug).
    verify: bool,
    /// The checksum of a whole block of zeros, and of the chunk's short last block of zeros (if
    /// the chunk size is not a multiple of the block size).
    zero_crc: u32,
    zero_crc_last: u32,
    /// Replicas the last scrub found sound, with their file's disk stamp and header then: while
    /// both are unchanged the answer is the same, so [`ChunkStore::scrub`] does not recompute it.
    /// (A shortcut of the simulation, not of the protocol: the stamp says what a re-read would
    /// find, flipped bits included.)
    sound: BTreeMap<ChunkHandle, (u64, ChunkInfo)>,
}

const MAGIC: &[u8; 4] = b"GFSC";

fn file_name(h: ChunkHandle) -> String {
    format!("chunks/{:02x}/{:016x}.chunk", h.0 % 256, h.0)
}

fn io(e: std::io::Error) -> GfsError {
    GfsError::Io(e.to_string())
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

impl ChunkStore {
    fn max_blocks(&self) -> u64 {
        self.chunk_size_bytes.div_ceil(self.block_size_bytes)
    }

    /// The checksum of block `b` if it holds `len` zero bytes and nothing else.
    fn zero_crc(&self, len: u64) -> u32 {
        if len == self.block_size_bytes {
            self.zero_crc
        } else if len == self.chunk_size_bytes % self.block_size_bytes {
            self.zero_crc_last
        } else {
            crc(&vec![0; len as usize])
        }
    }

    /// The checksum of `[lo, hi)` of `data`: the constant for zeros if nothing there is stored.
    fn sparse_crc(&self, data: &SparseBytes, lo: u64, hi: u64) -> u32 {
        if data.stores_any(lo, hi) {
            crc(&data.read(lo, hi - lo))
        } else {
            self.zero_crc(hi - lo)
        }
    }

    /// Checksums of every block of `data` (its length split into blocks).
    fn checksums_of(&self, data: &SparseBytes) -> Vec<u32> {
        let bs = self.block_size_bytes;
        (0..data.len().div_ceil(bs))
            .map(|b| self.sparse_crc(data, b * bs, ((b + 1) * bs).min(data.len())))
            .collect()
    }

    /// Where the data starts: after magic, version, length, block count, checksums, header CRC.
    fn header_bytes(&self) -> u64 {
        4 + 8 + 8 + 4 + 4 * self.max_blocks() + 4
    }

    fn encode_header(&self, info: &ChunkInfo) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header_bytes() as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&info.version.to_le_bytes());
        out.extend_from_slice(&info.len_bytes.to_le_bytes());
        out.extend_from_slice(&(info.checksums.len() as u32).to_le_bytes());
        for c in &info.checksums {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out.resize((self.header_bytes() - 4) as usize, 0);
        let sum = crc(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    fn decode_header(&self, bytes: &[u8]) -> Option<ChunkInfo> {
        let n = self.header_bytes() as usize;
        if bytes.len() < n || &bytes[..4] != MAGIC {
            return None;
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let long = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        if crc(&bytes[..n - 4]) != word(n - 4) {
            return None;
        }
        let (version, len_bytes, blocks) = (long(4), long(12), word(20) as u64);
        if len_bytes > self.chunk_size_bytes || blocks != len_bytes.div_ceil(self.block_size_bytes)
        {
            return None;
        }
        let checksums = (0..blocks as usize).map(|i| word(24 + 4 * i)).collect();
        Some(ChunkInfo {
            version,
            len_bytes,
            checksums,
        })
    }

    /// Loads every replica a previous incarnation synced; drops those with a rotten header.
    pub async fn load(
        disk: Disk,
        chunk_size_bytes: u64,
        block_size_bytes: u64,
    ) -> Result<ChunkStore, GfsError> {
        let mut store = ChunkStore {
            disk,
            chunk_size_bytes,
            block_size_bytes,
            chunks: BTreeMap::new(),
            discarded: Vec::new(),
            verify: true,
            zero_crc: crc(&vec![0; block_size_bytes as usize]),
            zero_crc_last: crc(&vec![0; (chunk_size_bytes % block_size_bytes) as usize]),
            sound: BTreeMap::new(),
        };
        for name in store.disk.list("chunks/").await {
            let Some(stem) = name.strip_suffix(".chunk") else {
                continue;
            };
            let hex = stem.rsplit('/').next().unwrap_or_default();
            let handle = ChunkHandle(
                u64::from_str_radix(hex, 16)
                    .map_err(|_| GfsError::Io(format!("unexpected file {name}")))?,
            );
            let header = store
                .disk
                .read(&name, 0, store.header_bytes())
                .await
                .map_err(io)?;
            match store.decode_header(&header) {
                Some(info) => {
                    store.chunks.insert(handle, info);
                }
                None => {
                    store.disk.remove(&name).await.map_err(io)?;
                    store.discarded.push(handle);
                }
            }
        }
        Ok(store)
    }

    /// Whether reads, writes and scrubs verify checksums (GFS §5.2; off only for a planted bug).
    pub fn set_verify(&mut self, verify: bool) {
        self.verify = verify;
    }

    /// Replicas dropped at load because their header failed its CRC.
    pub fn discarded(&self) -> &[ChunkHandle] {
        &self.discarded
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

    /// Writes `data` (if any) and the header for `info`, then syncs once.
    async fn commit(
        &mut self,
        h: ChunkHandle,
        info: ChunkInfo,
        data: Option<Change<'_>>,
    ) -> Result<(), GfsError> {
        let blocks = info.len_bytes.div_ceil(self.block_size_bytes) as usize;
        assert_eq!(
            info.checksums.len(),
            blocks,
            "chunk {h}: one checksum per block"
        );
        assert!(
            info.len_bytes <= self.chunk_size_bytes,
            "chunk {h} longer than a chunk"
        );
        let name = file_name(h);
        let at = self.header_bytes();
        match data {
            None => {}
            Some(Change::Bytes {
                gap_from,
                offset,
                bytes,
            }) => {
                if gap_from < offset {
                    self.disk
                        .zero(&name, at + gap_from, at + offset)
                        .await
                        .map_err(io)?;
                }
                self.disk
                    .write_shared(&name, at + offset, bytes)
                    .await
                    .map_err(io)?
            }
            Some(Change::Zeros { from, to }) => self
                .disk
                .zero(&name, at + from, at + to)
                .await
                .map_err(io)?,
            Some(Change::Whole(data)) => {
                self.disk.write_sparse(&name, at, data).await.map_err(io)?
            }
        }
        let header = self.encode_header(&info);
        self.disk.write(&name, 0, &header).await.map_err(io)?;
        self.disk.sync(&name).await.map_err(io)?;
        self.chunks.insert(h, info);
        Ok(())
    }

    /// Creates an empty replica at `version`.
    pub async fn create(&mut self, h: ChunkHandle, version: u64) -> Result<(), GfsError> {
        assert!(!self.chunks.contains_key(&h), "chunk {h} created twice");
        let name = file_name(h);
        self.disk.set_len(&name, 0).await.map_err(io)?;
        let info = ChunkInfo {
            version,
            len_bytes: 0,
            checksums: Vec::new(),
        };
        self.commit(h, info, None).await
    }

    /// Installs a whole replica copied from elsewhere (GFS §4.3) in one sync, so a crash leaves
    /// either no replica or the complete one, never an empty replica at a current version.
    pub async fn install(
        &mut self,
        h: ChunkHandle,
        version: u64,
        data: &SparseBytes,
    ) -> Result<(), GfsError> {
        assert!(
            !self.chunks.contains_key(&h),
            "chunk {h} installed over an existing replica"
        );
        if data.len() > self.chunk_size_bytes {
            return Err(GfsError::InvalidRange(format!(
                "a copy of {} bytes is larger than a chunk",
                data.len()
            )));
        }
        let info = ChunkInfo {
            version,
            len_bytes: data.len(),
            checksums: self.checksums_of(data),
        };
        self.disk.set_len(&file_name(h), 0).await.map_err(io)?;
        self.commit(h, info, Some(Change::Whole(data))).await
    }

    pub async fn set_version(&mut self, h: ChunkHandle, version: u64) -> Result<(), GfsError> {
        let mut info = self
            .chunks
            .get(&h)
            .ok_or(GfsError::NoSuchReplica(h))?
            .clone();
        assert!(
            version >= info.version,
            "chunk {h}: version {} -> {version}",
            info.version
        );
        info.version = version;
        self.commit(h, info, None).await
    }

    pub async fn remove(&mut self, h: ChunkHandle) -> Result<(), GfsError> {
        self.chunks.remove(&h).ok_or(GfsError::NoSuchReplica(h))?;
        self.sound.remove(&h);
        let name = file_name(h);
        if self.disk.exists(&name).await {
            self.disk.remove(&name).await.map_err(io)?;
        }
        Ok(())
    }

    /// `[start, end)` of the stored bytes, sparse, after checking every block it touches.
    async fn read_verified(
        &self,
        h: ChunkHandle,
        start: u64,
        end: u64,
    ) -> Result<SparseBytes, GfsError> {
        let info = self.chunks.get(&h).ok_or(GfsError::NoSuchReplica(h))?;
        let bs = self.block_size_bytes;
        let end = end.min(info.len_bytes);
        if start >= end {
            return Ok(SparseBytes::default());
        }
        let first = start / bs;
        let last = (end - 1) / bs;
        let span_start = first * bs;
        let span_end = ((last + 1) * bs).min(info.len_bytes);
        let span = self
            .disk
            .read_sparse(
                &file_name(h),
                self.header_bytes() + span_start,
                span_end - span_start,
            )
            .await
            .map_err(io)?;
        if span.len() != span_end - span_start {
            return Err(GfsError::ChecksumMismatch(h)); // shorter than its header says
        }
        if self.verify {
            for b in first..=last {
                let lo = b * bs - span_start;
                let hi = ((b + 1) * bs).min(info.len_bytes) - span_start;
                if self.sparse_crc(&span, lo, hi) != info.checksums[b as usize] {
                    return Err(GfsError::ChecksumMismatch(h));
                }
            }
        }
        Ok(span.slice(start - span_start, end - start))
    }

    /// Reads up to `len` bytes at `offset`, short at the replica's end, holes and padding unstored.
    pub async fn read(
        &self,
        h: ChunkHandle,
        offset: u64,
        len: u64,
    ) -> Result<SparseBytes, GfsError> {
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
        self.write_shared(h, offset, Arc::new(data.to_vec())).await
    }

    /// [`ChunkStore::write`] of a shared buffer (pushed data): the bytes are not copied.
    pub async fn write_shared(
        &mut self,
        h: ChunkHandle,
        offset: u64,
        data: Arc<Vec<u8>>,
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
        let old_len = self.info(h).ok_or(GfsError::NoSuchReplica(h))?.len_bytes;
        // A gap past the old end reads as zeros, whatever stale bytes the file has there.
        let change = Change::Bytes {
            gap_from: offset.min(old_len),
            offset,
            bytes: data,
        };
        self.change(h, change).await
    }

    /// Record-append padding: zeros from `from` to the end of the chunk (GFS §3.3). Stores nothing.
    /// A replica shorter than `from` (it missed the records before the pad) is zero-filled from its
    /// end as a write's gap is: the block its end falls in grows, so its checksum must be taken
    /// again. (A sweep found a pad that skipped it: the block's checksum still covered only its old
    /// bytes, and the sound replica failed verification.)
    pub async fn pad(&mut self, h: ChunkHandle, from: u64) -> Result<(), GfsError> {
        self.pad_to(h, from, self.chunk_size_bytes).await
    }

    /// [`ChunkStore::pad`] ending at `to` instead of the chunk's end: only the planted bug
    /// `short_pad` asks for less than the whole chunk.
    pub async fn pad_to(&mut self, h: ChunkHandle, from: u64, to: u64) -> Result<(), GfsError> {
        let old_len = self
            .chunks
            .get(&h)
            .ok_or(GfsError::NoSuchReplica(h))?
            .len_bytes;
        let to = to.min(self.chunk_size_bytes);
        let from = from.min(old_len).min(to);
        if from == to {
            return Ok(());
        }
        self.change(h, Change::Zeros { from, to }).await
    }

    /// Applies `change` (bytes or zeros over part of the chunk) with the checksums of every block
    /// it touches recomputed, and syncs. The blocks it covers only in part are verified first
    /// (GFS §5.2: never compute a new checksum over rotten bytes); blocks it zeros whole take the
    /// zero checksum without being read.
    async fn change(&mut self, h: ChunkHandle, change: Change<'_>) -> Result<(), GfsError> {
        let (lo, hi) = change.range();
        let old = self
            .chunks
            .get(&h)
            .ok_or(GfsError::NoSuchReplica(h))?
            .clone();
        let bs = self.block_size_bytes;
        let new_len = old.len_bytes.max(hi);
        let mut info = old.clone();
        info.len_bytes = new_len;
        info.checksums.resize(new_len.div_ceil(bs) as usize, 0);
        let (first, last) = (lo / bs, (hi - 1) / bs);
        for b in first..=last {
            let (b_lo, b_hi) = (b * bs, ((b + 1) * bs).min(new_len));
            let whole = lo <= b_lo && b_hi <= hi;
            info.checksums[b as usize] = match (&change, whole) {
                (Change::Zeros { .. }, true) => self.zero_crc(b_hi - b_lo),
                _ => {
                    // The block's old bytes (verified), with the change applied over them.
                    let mut block = self.read_verified(h, b_lo, b_hi).await?;
                    block.set_len(b_hi - b_lo);
                    match &change {
                        Change::Bytes {
                            gap_from,
                            offset,
                            bytes,
                        } => {
                            let (gap_lo, gap_hi) = ((*gap_from).max(b_lo), (*offset).min(b_hi));
                            if gap_lo < gap_hi {
                                block.zero(gap_lo - b_lo, gap_hi - b_lo);
                            }
                            let from = (*offset).max(b_lo);
                            let to = (offset + bytes.len() as u64).min(b_hi);
                            if from < to {
                                let part = &bytes[(from - offset) as usize..(to - offset) as usize];
                                block.write(from - b_lo, part);
                            }
                        }
                        Change::Zeros { from, to } => {
                            block.zero((*from).max(b_lo) - b_lo, (*to).min(b_hi) - b_lo)
                        }
                        Change::Whole(_) => unreachable!("installs compute their checksums"),
                    }
                    self.sparse_crc(&block, 0, b_hi - b_lo)
                }
            };
        }
        self.commit(h, info, Some(change)).await
    }

    /// Whether the replica is sound, as [`ChunkStore::read_whole`] says, without reading it again
    /// if its file has not changed since it was last found sound (GFS §5.2's scan of inactive
    /// chunks, most of which did not change since the last one).
    pub async fn scrub(&mut self, h: ChunkHandle) -> Result<bool, GfsError> {
        let info = self
            .chunks
            .get(&h)
            .ok_or(GfsError::NoSuchReplica(h))?
            .clone();
        let stamp = self.disk.stamp(&file_name(h)).await;
        if let (Some(stamp), Some((was, then))) = (stamp, self.sound.get(&h)) {
            if stamp == *was && info == *then {
                return Ok(true);
            }
        }
        let (_, _, ok) = self.read_whole(h).await?;
        match (ok, stamp) {
            (true, Some(stamp)) => {
                self.sound.insert(h, (stamp, info));
            }
            _ => {
                self.sound.remove(&h);
            }
        }
        Ok(ok)
    }

    /// The whole replica, sparse, and whether it is sound: every block passes its checksum and the
    /// stored header still matches what the chunkserver believes (a scrub must catch rot in either).
    pub async fn read_whole(&self, h: ChunkHandle) -> Result<(u64, SparseBytes, bool), GfsError> {
        let info = self.chunks.get(&h).ok_or(GfsError::NoSuchReplica(h))?;
        let bytes = self
            .disk
            .read_sparse(&file_name(h), self.header_bytes(), info.len_bytes)
            .await
            .map_err(io)?;
        let header = self
            .disk
            .read(&file_name(h), 0, self.header_bytes())
            .await
            .map_err(io)?;
        let header_ok = !self.verify || self.decode_header(&header).as_ref() == Some(info);
        let ok = header_ok && self.read_verified(h, 0, info.len_bytes).await.is_ok();
        Ok((info.version, bytes, ok))
    }
}

/// What a mutation does to a chunk's bytes.
enum Change<'a> {
    /// `bytes` at `offset`, and zeros over `[gap_from, offset)` (a hole past the old end).
    Bytes {
        gap_from: u64,
        offset: u64,
        bytes: Arc<Vec<u8>>,
    },
    Zeros {
        from: u64,
        to: u64,
    },
    /// A whole replica, copied in.
    Whole(&'a SparseBytes),
}

impl Change<'_> {
    /// The byte range it changes.
    fn range(&self) -> (u64, u64) {
        match self {
            Change::Bytes {
                gap_from,
                offset,
                bytes,
            } => (*gap_from, offset + bytes.len() as u64),
            Change::Zeros { from, to } => (*from, *to),
            Change::Whole(data) => (0, data.len()),
        }
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

    /// A fresh disk for chunkserver 0; bits may flip in files under `flip_prefix` ("" for none).
    async fn test_disk(flip_prefix: &str) -> (std::sync::Arc<crate::disk::DiskFaults>, Disk) {
        let faults = crate::disk::DiskFaults::new(100, false, flip_prefix);
        let disk = Disk::open(
            crate::trace::NodeName::Cs(crate::ServerId(0)),
            faults.clone(),
        )
        .await
        .unwrap();
        (faults, disk)
    }

    /// Reads `[at, at + n)` of chunk 0x1ab, materialized.
    async fn read(s: &ChunkStore, at: u64, n: u64) -> Result<Vec<u8>, GfsError> {
        s.read(ChunkHandle(0x1ab), at, n).await.map(|b| b.to_vec())
    }

    #[test]
    fn a_scrub_remembers_sound_replicas_until_their_file_changes() {
        on_node(async {
            let (faults, disk) = test_disk("chunks/").await;
            let mut s = ChunkStore::load(disk, 64, 16).await.unwrap();
            let h = ChunkHandle(0x1ab);
            s.create(h, 1).await.unwrap();
            s.write(h, 0, &[5; 40]).await.unwrap();
            assert_eq!(s.scrub(h).await, Ok(true));
            assert_eq!(s.scrub(h).await, Ok(true), "remembered");
            // A flipped bit is a change to the file: the next scrub reads it and finds the rot.
            faults.request_bit_flip();
            assert_eq!(s.scrub(h).await, Ok(false));
            assert_eq!(faults.flips_applied(), 1);
            assert_eq!(
                s.scrub(h).await,
                Ok(false),
                "rot is never remembered as sound"
            );
            // A write over the whole replica heals it, and the scrub sees that too.
            s.remove(h).await.unwrap();
            s.create(h, 2).await.unwrap();
            s.write(h, 0, &[6; 40]).await.unwrap();
            assert_eq!(s.scrub(h).await, Ok(true));
        });
    }

    #[test]
    fn writes_gaps_padding_and_checksums() {
        on_node(async {
            let (_, disk) = test_disk("").await;
            let mut s = ChunkStore::load(disk.clone(), 64, 16).await.unwrap();
            let h = ChunkHandle(0x1ab);
            s.create(h, 1).await.unwrap();
            s.write(h, 10, b"hello").await.unwrap();
            assert_eq!(
                read(&s, 0, 100).await.unwrap(),
                [&[0u8; 10][..], b"hello"].concat()
            );
            s.write(h, 40, b"far").await.unwrap();
            assert_eq!(s.info(h).unwrap().len_bytes, 43);
            assert_eq!(read(&s, 12, 30).await.unwrap()[..3], *b"llo");
            assert_eq!(read(&s, 40, 3).await.unwrap(), b"far");
            assert!(s.write(h, 60, b"toolong").await.is_err());
            // A pad past the end (this replica missed a record) zero-fills from the end, and the
            // block the old end fell in gets the checksum of its new length.
            let gapped = ChunkHandle(0x2cd);
            s.create(gapped, 1).await.unwrap();
            s.write(gapped, 0, &[7; 43]).await.unwrap();
            s.pad(gapped, 59).await.unwrap();
            let (_, bytes, ok) = s.read_whole(gapped).await.unwrap();
            assert!(ok, "the padded replica verifies");
            assert_eq!(bytes.read(40, 24), [&[7u8; 3][..], &[0; 21]].concat());
            s.pad(h, 43).await.unwrap();
            assert_eq!(s.info(h).unwrap().len_bytes, 64);
            // Padding is stored as nothing, and its blocks carry the checksum of zeros.
            let (_, whole, ok) = s.read_whole(h).await.unwrap();
            assert!(ok);
            assert_eq!(whole.stored_bytes(), 5 + 3);
            assert_eq!(whole.read(43, 21), vec![0; 21]);
            // Reloading from disk gives the same replica.
            let again = ChunkStore::load(disk.clone(), 64, 16).await.unwrap();
            assert_eq!(again.info(h), s.info(h));
            let name = "chunks/ab/00000000000001ab.chunk";
            assert!(disk.exists(name).await);
            // Rot one stored byte behind the store's back: the read of that block fails, the others
            // still verify, and a partial overwrite of the rotten block is refused too.
            let header = 4 + 8 + 8 + 4 + 4 * 4 + 4;
            disk.write(name, header + 41, b"X").await.unwrap();
            assert_eq!(read(&s, 40, 2).await, Err(GfsError::ChecksumMismatch(h)));
            assert_eq!(read(&s, 10, 5).await.unwrap(), b"hello");
            assert_eq!(
                s.write(h, 33, b"y").await,
                Err(GfsError::ChecksumMismatch(h))
            );
            let (_, _, ok) = s.read_whole(h).await.unwrap();
            assert!(!ok);
            // Rot in a block that is all padding (stored as nothing) is caught too.
            disk.write(name, header + 41, b"a").await.unwrap(); // back as it was
            assert!(s.read_whole(h).await.unwrap().2);
            disk.write(name, header + 60, b"\x01").await.unwrap();
            assert_eq!(read(&s, 56, 8).await, Err(GfsError::ChecksumMismatch(h)));
            // A copy is installed whole, checksums included, and survives a reload.
            let copy = ChunkHandle(7);
            let mut data = SparseBytes::from(&b"0123456789abcdefXYZ"[..]);
            data.zero(19, 40);
            s.install(copy, 4, &data).await.unwrap();
            assert_eq!(
                s.read(copy, 14, 10).await.unwrap().to_vec(),
                b"efXYZ\0\0\0\0\0"
            );
            let reloaded = ChunkStore::load(disk.clone(), 64, 16).await.unwrap();
            assert_eq!(reloaded.info(copy), s.info(copy));
            assert!(reloaded.read_whole(copy).await.unwrap().2);
            // A rotten header makes the replica untrustworthy: it is dropped at the next load.
            disk.write(name, 5, b"\xff").await.unwrap();
            disk.sync(name).await.unwrap();
            let reloaded = ChunkStore::load(disk.clone(), 64, 16).await.unwrap();
            assert_eq!(reloaded.info(h), None);
            assert_eq!(reloaded.discarded(), &[h]);
            assert!(reloaded.info(copy).is_some());
            assert!(!disk.exists(name).await);
        });
    }

    /// Each block's checksum in `h`'s header next to the CRC32 of the block's bytes as read.
    async fn checksums_and_crcs(s: &ChunkStore, h: ChunkHandle) -> Vec<(u32, u32)> {
        let (_, bytes, ok) = s.read_whole(h).await.unwrap();
        assert!(ok, "{h:?} verifies");
        let bs = s.block_size_bytes;
        let info = s.info(h).unwrap();
        let crcs = (0..bytes.len().div_ceil(bs)).map(|b| {
            let (lo, hi) = (b * bs, ((b + 1) * bs).min(bytes.len()));
            crc32fast::hash(&bytes.read(lo, hi - lo))
        });
        info.checksums.iter().copied().zip(crcs).collect()
    }

    /// However a block is held (stored bytes, a hole, padding), the checksum its header records
    /// is the CRC32 of its bytes (GFS §5.2 checksums the data): storing zeros as nothing is a
    /// shortcut of this store that must not show on disk, where a dense store would have written
    /// the same header. (Closes the mutants of `zero_crc`, which recorded and verified a wrong
    /// constant consistently, so no read could tell.)
    #[test]
    fn every_checksum_is_the_crc_of_its_blocks_bytes() {
        on_node(async {
            let (_, disk) = test_disk("").await;
            // 60-byte chunks of 16-byte blocks: a full chunk's last block is 12 bytes long.
            let mut s = ChunkStore::load(disk, 60, 16).await.unwrap();
            let gap = ChunkHandle(1);
            s.create(gap, 1).await.unwrap();
            // Two whole blocks of hole, then stored bytes; padding then fills the 12-byte tail.
            s.write(gap, 40, b"ab").await.unwrap();
            s.pad(gap, 42).await.unwrap();
            // A copy whose last block is a 3-byte hole (neither a whole block nor a chunk's tail).
            let short = ChunkHandle(2);
            let mut data = SparseBytes::from(&[9u8; 16][..]);
            data.zero(16, 19);
            s.install(short, 1, &data).await.unwrap();
            for (h, blocks) in [(gap, 4), (short, 2)] {
                let pairs = checksums_and_crcs(&s, h).await;
                assert_eq!(pairs.len(), blocks, "{h:?}");
                for (b, (recorded, real)) in pairs.into_iter().enumerate() {
                    assert_eq!(recorded, real, "{h:?} block {b}");
                }
            }
        });
    }

    /// A header is trusted only if it is whole and consistent: its CRC holds, and its length and
    /// block count agree with each other and with the chunk size. A header that passes its CRC
    /// but contradicts itself was never written by this store (or by one of this geometry), and
    /// loading it would read checksums that are not there.
    #[test]
    fn a_header_that_contradicts_itself_is_refused_even_with_a_good_crc() {
        on_node(async {
            let (_, disk) = test_disk("").await;
            let s = ChunkStore::load(disk, 64, 16).await.unwrap();
            let header = |len_bytes, checksums: Vec<u32>| {
                s.encode_header(&ChunkInfo {
                    version: 1,
                    len_bytes,
                    checksums,
                })
            };
            let good = header(40, vec![1, 2, 3]);
            assert_eq!(s.decode_header(&good).map(|i| i.len_bytes), Some(40));
            // 40 bytes are three 16-byte blocks, not two.
            assert_eq!(s.decode_header(&header(40, vec![1, 2])), None);
            // Longer than a chunk, with as many blocks as that length has.
            assert_eq!(s.decode_header(&header(65, vec![1, 2, 3, 4, 5])), None);
            // A flipped bit anywhere fails the CRC; a short header is no header.
            let mut rotten = good.clone();
            rotten[13] ^= 1;
            assert_eq!(s.decode_header(&rotten), None);
            assert_eq!(s.decode_header(&good[..good.len() - 1]), None);
        });
    }

    /// Padding zeros the disk from the replica's end, whatever the file held past it: a write
    /// that reached the disk but whose header a crash lost leaves bytes beyond the recorded
    /// length, and padding over them must not keep them (GFS §3.3, §5.2).
    #[test]
    fn padding_zeros_bytes_a_lost_header_left_past_the_end() {
        on_node(async {
            let (_, disk) = test_disk("").await;
            let mut s = ChunkStore::load(disk.clone(), 64, 16).await.unwrap();
            let h = ChunkHandle(0x1ab);
            s.create(h, 1).await.unwrap();
            s.write(h, 0, &[7; 40]).await.unwrap();
            // The bytes of a write whose header never made it: on disk, past the length.
            disk.write(&file_name(h), s.header_bytes() + 40, &[9; 20])
                .await
                .unwrap();
            s.pad(h, 40).await.unwrap();
            let (_, bytes, ok) = s.read_whole(h).await.unwrap();
            assert!(ok, "the padded replica verifies");
            assert_eq!(
                bytes.read(0, 64),
                [&[7u8; 40][..], &[0; 24]].concat(),
                "padding is zeros"
            );
        });
    }

    #[test]
    fn a_padded_paper_sized_chunk_stores_only_its_records() {
        on_node(async {
            let (_, disk) = test_disk("").await;
            let (chunk, block) = (64 << 20, 64 << 10);
            let mut s = ChunkStore::load(disk.clone(), chunk, block).await.unwrap();
            let h = ChunkHandle(1);
            s.create(h, 1).await.unwrap();
            s.write(h, 0, &[7; 100]).await.unwrap();
            s.pad(h, 100).await.unwrap();
            let (_, whole, ok) = s.read_whole(h).await.unwrap();
            assert!(ok);
            assert_eq!((whole.len(), whole.stored_bytes()), (chunk, 100));
            assert_eq!(
                s.read(h, chunk - 10, 10).await.unwrap().to_vec(),
                vec![0; 10]
            );
        });
    }
}
