//! The GFS client library (GFS §2.4, §3): the only way applications touch files.
//!
//! Metadata questions go to the master; bytes go straight to chunkservers. The client caches chunk
//! locations and primaries for a bounded time (GFS §2.7.1 notes this is how stale reads happen),
//! retries failed attempts a bounded number of times with fresh locations, then returns a typed
//! error. Writes that cross chunk boundaries are split into one mutation per chunk, so they are not
//! atomic as a whole (GFS §3.1); record appends are atomic and land at an offset the primary picks
//! (GFS §3.3).
//!
//! The decisions are plain data in [`core`]: splitting ranges into chunk pieces, the caches, and
//! the one retry policy every operation goes through (`Client::retrying`). This module is the
//! async shell that sends, sleeps and draws the backoff jitter.

pub mod core;

use self::core::{pieces, ChunkCache, Failure, RetryPolicy, Verdict};
use crate::config::ClusterConfig;
use crate::coverage::{self, Probe};
use crate::msg::*;
use crate::now_ns;
use crate::rpc::call_result;
use crate::sparse::SparseBytes;
use crate::types::{addr, validate_path, DataId, GfsError, RequestId, ServerId};
use madsim::net::Endpoint;
use rand::Rng;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest file offset the client accepts (1 TiB): bounds every size computation.
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// Largest single read, in bytes.
pub const MAX_READ_BYTES: u64 = 256 << 20;

/// A file as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileInfo {
    pub path: String,
    pub size_bytes: u64,
    pub chunks: u64,
}

/// Counters of what the client did, for run summaries and the checker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// RPCs made.
    pub attempts: u64,
    /// RPCs that failed with an error worth retrying.
    pub failed_attempts: u64,
    /// Times an operation was tried again after a failed attempt.
    pub retries: u64,
}

pub struct Client {
    id: u32,
    cfg: ClusterConfig,
    ep: Endpoint,
    retry: RetryPolicy,
    locations: Mutex<ChunkCache<ChunkLocation>>,
    primaries: Mutex<ChunkCache<PrimaryInfo>>,
    next_data: AtomicU64,
    next_request: AtomicU64,
    stats: Mutex<ClientStats>,
}

fn cs(s: ServerId) -> SocketAddr {
    addr::chunkserver(s)
}

impl Client {
    /// A client on the current node, which must have been created with `addr::client_ip(id)`.
    pub async fn new(id: u32, cfg: ClusterConfig) -> std::io::Result<Client> {
        let ep = Endpoint::bind(SocketAddr::new(addr::client_ip(id), addr::PORT)).await?;
        Ok(Client {
            id,
            retry: RetryPolicy::new(
                cfg.client_max_attempts,
                cfg.rpc_timeout_ms,
                cfg.client_retry_window_ms(),
            ),
            cfg,
            ep,
            locations: Mutex::default(),
            primaries: Mutex::default(),
            next_data: AtomicU64::new(0),
            // Request numbers start at the simulated time this instance starts, so two instances
            // with the same id (a client that restarts) never reuse each other's request ids,
            // and without drawing from the seed's random stream.
            next_request: AtomicU64::new(now_ns() << 10),
            stats: Mutex::new(ClientStats::default()),
        })
    }

    pub fn stats(&self) -> ClientStats {
        *self.stats.lock().unwrap()
    }

    fn attempt(&self, result: &Result<impl Sized, GfsError>) {
        let mut s = self.stats.lock().unwrap();
        s.attempts += 1;
        if matches!(result, Err(e) if e.is_retryable()) {
            s.failed_attempts += 1;
        }
    }

    /// Runs `op` until it succeeds or the retry policy says stop, backing off before every
    /// attempt but the first. Every operation's retries go through here.
    async fn retrying<T, F>(&self, op: impl Fn() -> F) -> Result<T, GfsError>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        let start_ns = now_ns();
        let mut n = 0;
        loop {
            if n > 0 {
                let jitter_ms =
                    madsim::rand::thread_rng().gen_range(0..=self.retry.max_jitter_ms());
                let wait_ms = self.retry.backoff_ms(n, jitter_ms);
                madsim::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            match op().await {
                Ok(v) => return Ok(v),
                Err(failure) => {
                    match self
                        .retry
                        .decide(n, (now_ns() - start_ns) / 1_000_000, failure)
                    {
                        Verdict::Retry => {
                            n += 1;
                            self.stats.lock().unwrap().retries += 1;
                        }
                        Verdict::GiveUp(e) | Verdict::Return(e) => return Err(e),
                    }
                }
            }
        }
    }

    async fn master<R, T>(&self, req: R) -> Result<T, GfsError>
    where
        R: madsim::net::rpc::Request<Response = Result<T, GfsError>> + crate::msg::Traced,
    {
        let r = call_result(&self.ep, addr::master(), req, self.cfg.rpc_timeout_ms).await;
        self.attempt(&r);
        r
    }

    /// Runs a namespace mutation with retries. Every attempt carries the same request id, so the
    /// master executes it at most once: a retry after a lost answer gets the first attempt's
    /// result instead of, say, deleting a file someone re-created meanwhile.
    async fn namespace_op<R>(&self, req: impl Fn(RequestId) -> R) -> Result<(), GfsError>
    where
        R: madsim::net::rpc::Request<Response = Result<(), GfsError>> + crate::msg::Traced,
    {
        let request = RequestId {
            client: self.id,
            seq: self.next_request.fetch_add(1, Ordering::Relaxed),
        };
        let req = &req;
        self.retrying(|| async move { self.master(req(request)).await.map_err(Failure::Checked) })
            .await
    }

    pub async fn create(&self, path: &str) -> Result<(), GfsError> {
        validate_path(path)?;
        let p = path.to_string();
        self.namespace_op(|request| CreateFile {
            path: p.clone(),
            request: Some(request),
        })
        .await
    }

    pub async fn delete(&self, path: &str) -> Result<(), GfsError> {
        validate_path(path)?;
        let p = path.to_string();
        self.forget(path);
        self.namespace_op(|request| DeleteFile {
            path: p.clone(),
            request: Some(request),
        })
        .await
    }

    fn forget(&self, path: &str) {
        self.locations.lock().unwrap().forget_path(path);
        self.primaries.lock().unwrap().forget_path(path);
    }

    /// Every file with its size (which needs the last chunk's length from one of its replicas).
    pub async fn list(&self) -> Result<Vec<FileInfo>, GfsError> {
        self.list_files(false).await
    }

    /// Every deleted file the master has not reclaimed yet, under its hidden name
    /// (`/.deleted/<n>/<path>`), with its size. Such a file can still be read under that name
    /// (GFS §4.4).
    pub async fn list_deleted(&self) -> Result<Vec<FileInfo>, GfsError> {
        self.list_files(true).await
    }

    async fn list_files(&self, deleted: bool) -> Result<Vec<FileInfo>, GfsError> {
        // Any error, even a final one, is retried (`Failure::Any`): as `list` always did.
        self.retrying(|| async move {
            let entries = self
                .master(ListFiles { deleted })
                .await
                .map_err(Failure::Any)?;
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let n = e.chunks.len() as u64;
                let last_len = match e.chunks.last() {
                    None => 0,
                    Some(_) if e.last_chunk_version == 0 => 0, // never written: a hole
                    Some(&handle) => {
                        let req = ChunkLen {
                            handle,
                            version: e.last_chunk_version,
                        };
                        self.ask_replicas(&e.last_chunk_replicas, req)
                            .await
                            .map_err(Failure::Any)?
                    }
                };
                let size = n.saturating_sub(1) * self.cfg.chunk_size_bytes + last_len;
                out.push(FileInfo {
                    path: e.path,
                    size_bytes: size,
                    chunks: n,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Asks the replicas in turn, starting at a random one, until one answers.
    async fn ask_replicas<R, T>(&self, replicas: &[ServerId], req: R) -> Result<T, GfsError>
    where
        R: madsim::net::rpc::Request<Response = Result<T, GfsError>> + crate::msg::Traced + Clone,
    {
        if replicas.is_empty() {
            return Err(GfsError::Unavailable("no replica known".into()));
        }
        let start = madsim::rand::thread_rng().gen_range(0..replicas.len());
        let mut last = None;
        for i in 0..replicas.len() {
            let s = replicas[(start + i) % replicas.len()];
            let r = call_result(&self.ep, cs(s), req.clone(), self.cfg.rpc_timeout_ms).await;
            self.attempt(&r);
            match r {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one replica tried"))
    }

    async fn location(&self, path: &str, index: u64) -> Result<ChunkLocation, GfsError> {
        let now = now_ns();
        if let Some(loc) = self.locations.lock().unwrap().get(path, index, now) {
            return Ok(loc.clone());
        }
        let loc = self
            .master(FindChunk {
                path: path.to_string(),
                index,
            })
            .await?;
        // (Bug `cache_never_expires`: the entry is kept until something fails.)
        let until = if self.cfg.has(crate::Bug::CacheNeverExpires) {
            u64::MAX
        } else {
            now + self.cfg.location_cache_ms * 1_000_000
        };
        self.locations
            .lock()
            .unwrap()
            .insert(path, index, loc.clone(), until);
        Ok(loc)
    }

    /// Reads up to `len` bytes at `offset`. The result is short only at the end of the file;
    /// never-written ranges inside the file read as zeros.
    pub async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, GfsError> {
        Ok(self.read_sparse(path, offset, len).await?.to_vec())
    }

    /// [`Client::read`] without materializing zeros: holes and record-append padding stay
    /// unstored, so reading a mostly empty 64 MiB chunk costs what was written in it.
    pub async fn read_sparse(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<SparseBytes, GfsError> {
        // A deleted file's hidden name (from `list_deleted`) may be read; the master knows it.
        if !crate::master::state::is_hidden(path) {
            validate_path(path)?;
        }
        if len > MAX_READ_BYTES {
            return Err(GfsError::InvalidRange(format!(
                "read of {len} bytes is above the limit of {MAX_READ_BYTES}"
            )));
        }
        offset
            .checked_add(len)
            .filter(|e| *e <= MAX_FILE_BYTES)
            .ok_or_else(|| {
                GfsError::InvalidRange(format!("offset {offset} + {len} is past 1 TiB"))
            })?;
        let mut out = SparseBytes::default();
        for p in pieces(offset, len, self.cfg.chunk_size_bytes) {
            let read = self.read_piece(path, p.index, p.chunk_offset, p.len_bytes);
            let (bytes, chunk_count) = match read.await {
                Ok(r) => r,
                Err(GfsError::NoSuchChunk) => break, // past the last chunk
                Err(e) => return Err(e),
            };
            let at = p.data.start as u64;
            out.write_sparse(at, &bytes);
            if bytes.len() < p.len_bytes {
                if p.index + 1 >= chunk_count {
                    break; // the end of the file
                }
                // A hole: never written, reads as zeros.
                out.set_len(at + p.len_bytes);
            }
        }
        Ok(out)
    }

    /// Reads `len_bytes` at `chunk_offset` of chunk `index`, with the file's chunk count then.
    async fn read_piece(
        &self,
        path: &str,
        index: u64,
        chunk_offset: u64,
        len_bytes: u64,
    ) -> Result<(SparseBytes, u64), GfsError> {
        self.retrying(|| async move {
            let loc = self.location(path, index).await.map_err(Failure::Checked)?;
            if loc.version == 0 {
                // Allocated, never written.
                return Ok((SparseBytes::default(), loc.chunk_count));
            }
            let req = ReadChunk {
                handle: loc.handle,
                version: loc.version,
                offset: chunk_offset,
                len: len_bytes,
            };
            match self.ask_replicas(&loc.replicas, req).await {
                Ok(bytes) => Ok((bytes, loc.chunk_count)),
                // Any replica error is retried, with fresh locations (`Failure::Any`): as reads
                // always did.
                Err(e) => {
                    self.locations.lock().unwrap().forget(path, index);
                    Err(Failure::Any(e))
                }
            }
        })
        .await
    }

    async fn primary(&self, path: &str, index: Option<u64>) -> Result<PrimaryInfo, GfsError> {
        let now = now_ns();
        if let Some(i) = index {
            if let Some(info) = self.primaries.lock().unwrap().get(path, i, now) {
                return Ok(info.clone());
            }
        }
        let info = self
            .master(GetPrimary {
                path: path.to_string(),
                index: index.map_or(ChunkIndex::Last { at_least: 0 }, ChunkIndex::At),
                allocate: true,
            })
            .await?;
        let until = info
            .lease_expires_ns
            .min(now + self.cfg.location_cache_ms * 1_000_000);
        self.primaries
            .lock()
            .unwrap()
            .insert(path, info.index, info.clone(), until);
        Ok(info)
    }

    /// GFS §3.2: pushes `data` along primary -> secondaries and returns its id. The buffer is
    /// shared by every hop and every replica's write, never copied.
    async fn push(&self, info: &PrimaryInfo, data: &Arc<Vec<u8>>) -> Result<DataId, GfsError> {
        let id = DataId {
            client: self.id,
            seq: self.next_data.fetch_add(1, Ordering::Relaxed),
        };
        let mut chain = vec![info.primary];
        chain.extend(&info.secondaries);
        let msg = PushData {
            id,
            data: data.clone(),
            forward: chain[1..].to_vec(),
        };
        let r = call_result(&self.ep, cs(chain[0]), msg, self.cfg.rpc_timeout_ms).await;
        self.attempt(&r);
        r.map(|_| id)
    }

    /// Writes `data` at `offset`, one mutation per chunk it touches.
    pub async fn write(&self, path: &str, offset: u64, data: &[u8]) -> Result<(), GfsError> {
        validate_path(path)?;
        offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_BYTES)
            .ok_or_else(|| {
                GfsError::InvalidRange(format!(
                    "write at {offset} of {} bytes is past 1 TiB",
                    data.len()
                ))
            })?;
        for p in pieces(offset, data.len() as u64, self.cfg.chunk_size_bytes) {
            self.write_piece(path, p.index, p.chunk_offset, &data[p.data])
                .await?;
        }
        Ok(())
    }

    async fn write_piece(
        &self,
        path: &str,
        index: u64,
        chunk_offset: u64,
        data: &[u8],
    ) -> Result<(), GfsError> {
        let data = &Arc::new(data.to_vec());
        self.retrying(|| async move {
            let info = self
                .primary(path, Some(index))
                .await
                .map_err(Failure::Checked)?;
            let result = async {
                let data = self.push(&info, data).await?;
                let msg = WriteChunk {
                    handle: info.handle,
                    version: info.version,
                    offset: chunk_offset,
                    data,
                    secondaries: info.secondaries.clone(),
                };
                let r = call_result(&self.ep, cs(info.primary), msg, self.cfg.rpc_timeout_ms).await;
                self.attempt(&r);
                r
            }
            .await;
            result.map_err(|e| {
                self.primaries.lock().unwrap().forget(path, index);
                Failure::Checked(e)
            })
        })
        .await
    }

    /// GFS record append: appends `data` atomically at least once and returns the file offset the
    /// primary chose. A failed attempt may leave a partial or duplicate copy behind (GFS §3.3).
    pub async fn append(&self, path: &str, data: &[u8]) -> Result<u64, GfsError> {
        validate_path(path)?;
        let max = self.cfg.max_record_bytes();
        if data.len() as u64 > max {
            return Err(GfsError::RecordTooLarge {
                len_bytes: data.len() as u64,
                max_bytes: max,
            });
        }
        if data.is_empty() {
            return Err(GfsError::InvalidRange(
                "an empty record cannot be appended".into(),
            ));
        }
        // One attempt may hop over up to `max_append_hops` full chunks; running out of hops
        // (`ChunkFull`) fails the attempt like any retryable error.
        let data = &Arc::new(data.to_vec());
        self.retrying(|| async move {
            let mut index = ChunkIndex::Last { at_least: 0 };
            let mut hops = 0;
            loop {
                let info = self
                    .master(GetPrimary {
                        path: path.to_string(),
                        index,
                        allocate: true,
                    })
                    .await
                    .map_err(Failure::Checked)?;
                let result = async {
                    let id = self.push(&info, data).await?;
                    let msg = AppendChunk {
                        handle: info.handle,
                        version: info.version,
                        data: id,
                        secondaries: info.secondaries.clone(),
                    };
                    let r =
                        call_result(&self.ep, cs(info.primary), msg, self.cfg.rpc_timeout_ms).await;
                    self.attempt(&r);
                    r
                }
                .await;
                match result {
                    Ok(within) => return Ok(info.index * self.cfg.chunk_size_bytes + within),
                    Err(GfsError::ChunkFull) if hops < self.cfg.max_append_hops => {
                        coverage::hit(Probe::AppendHopped);
                        hops += 1;
                        // Past the full chunk, to the newest one (others may have filled more).
                        index = ChunkIndex::Last {
                            at_least: info.index + 1,
                        };
                    }
                    Err(e) => {
                        if matches!(e, GfsError::ChunkFull) {
                            coverage::hit(Probe::AppendHopsExhausted);
                        }
                        return Err(Failure::Checked(e));
                    }
                }
            }
        })
        .await
    }
}
