//! The chunkserver node: stores replicas, buffers pushed data, and applies mutations in the
//! primary's serial order (GFS §3.1, §3.2, §3.3).
//!
//! Data flow and control flow are separate (GFS §3.2). A client first pushes the bytes along a
//! chain of replicas ([`PushData`]); each chunkserver keeps them in a bounded buffer keyed by data
//! id and forwards them to the next. Then the client asks the primary to write or append. The
//! primary, holding the chunk's lease, gives the mutation the next serial number, applies it, and
//! forwards it to every secondary ([`ApplyMutation`]). It answers success only if every secondary
//! applied it; otherwise the client sees an error and the region may be inconsistent, exactly the
//! weakness the paper's consistency model admits (GFS §2.7, §3.1 step 7).
//!
//! The primary pipelines mutations from many clients (GFS §3.1, §3.3): it holds a chunk only while
//! it numbers a mutation, applies it locally and sends it on, not while the secondaries answer, so
//! mutations of one chunk are in flight together and may overtake each other on the way.
//! Secondaries restore the order: one that arrives ahead of an earlier serial is held (for at most
//! a third of an RPC timeout, and at most 64 per chunk) until the earlier one is applied. A
//! secondary never applies an older serial after a newer one: an earlier mutation given up on and
//! arriving late is refused, so every replica applies mutations in the primary's order (some may
//! miss one).
//!
//! The protocol state and its decisions (leases, serials, the push buffer, the record-append
//! choice, heartbeat bookkeeping) are plain data in [`core::ChunkServerCore`]; this module is the
//! async shell around it that does the disk I/O, the RPCs, the sleeps and the trace events.

pub mod core;
pub mod store;

use crate::bugs::Bug;
use crate::config::ClusterConfig;
use crate::coverage::{self, Probe};
use crate::disk::{Disk, DiskFaults};
use crate::msg::*;
use crate::now_ns;
use crate::rpc::{call, call_by, call_result, serve, Envelope};
use crate::sparse::SparseBytes;
use crate::trace::{emit, Event, NodeName, Role};
use crate::types::{addr, ChunkHandle, DataId, GfsError, ServerId};
use madsim::net::Endpoint;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::ChunkStore;

use self::core::{Admission, AppendPlan, ChunkServerCore};

/// How often a held mutation asks again whether its turn has come.
const SERIAL_POLL: Duration = Duration::from_micros(500);

/// A mutation forwarded to the secondaries: the calls in flight.
struct Forwarded {
    h: ChunkHandle,
    version: u64,
    serial: u64,
    calls: Vec<madsim::task::JoinHandle<(ServerId, Result<(), GfsError>)>>,
}

/// Unholds a mutation when its request ends, however it ends (see [`ChunkServerCore::admit`]).
struct Held<'a> {
    cs: &'a ChunkServer,
    h: ChunkHandle,
    version: u64,
    serial: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.cs.core().unhold(self.h, self.version, self.serial);
    }
}

struct ChunkServer {
    id: ServerId,
    name: NodeName,
    cfg: ClusterConfig,
    ep: Endpoint,
    store: tokio::sync::Mutex<ChunkStore>,
    /// Leases, serials, pushed data, reports: never locked across an await.
    core: Mutex<ChunkServerCore>,
    /// Serializes mutations of one chunk at its primary.
    chunk_locks: Mutex<BTreeMap<ChunkHandle, Arc<tokio::sync::Mutex<()>>>>,
}

/// Runs chunkserver `id` until the node is killed.
/// `disk` is the chunkserver's physical disk: it outlives restarts and may be faulty.
pub async fn run(id: ServerId, cfg: ClusterConfig, disk: Arc<DiskFaults>) {
    let name = NodeName::Cs(id);
    let disk = Disk::open(name, disk)
        .await
        .expect("chunkserver disk opens");
    let mut store = ChunkStore::load(disk, cfg.chunk_size_bytes, cfg.block_size_bytes)
        .await
        .unwrap_or_else(|e| panic!("{name} cannot load its chunks: {e}"));
    emit(name, || Event::ChunkserverStarted {
        chunks: store.report().len(),
    });
    store.set_verify(!cfg.has(Bug::NoChecksumVerify));
    for h in store.discarded() {
        emit(name, || Event::ReplicaDiscarded { chunk: *h });
    }
    let ep = Endpoint::bind(addr::chunkserver(id))
        .await
        .expect("chunkserver binds its address");
    let cs = Arc::new(ChunkServer {
        id,
        name,
        core: Mutex::new(ChunkServerCore::new(&cfg)),
        cfg,
        ep,
        store: tokio::sync::Mutex::new(store),
        chunk_locks: Mutex::new(BTreeMap::new()),
    });
    cs.serve();
    let scrubber = cs.clone();
    madsim::task::spawn(async move {
        loop {
            madsim::time::sleep(Duration::from_millis(scrubber.cfg.scrub_interval_ms)).await;
            scrubber.scrub().await;
        }
    });
    loop {
        cs.heartbeat_once().await;
        madsim::time::sleep(Duration::from_millis(cs.cfg.heartbeat_ms)).await;
    }
}

macro_rules! handler {
    ($cs:expr, $req:ty, $method:ident) => {{
        let cs = $cs.clone();
        // Requests arrive in an envelope naming the message, for the trace (see `rpc`).
        let receivers = $cs.cfg.chunkserver_receivers_per_kind;
        crate::rpc::handle(&$cs.ep, receivers, move |env: Envelope<$req>| {
            let req = serve(cs.name, env);
            let cs = cs.clone();
            async move { cs.$method(req).await }
        });
    }};
}

impl ChunkServer {
    /// The protocol state. The guard must be dropped before the next await.
    fn core(&self) -> MutexGuard<'_, ChunkServerCore> {
        self.core.lock().unwrap()
    }

    fn serve(self: &Arc<Self>) {
        handler!(self, SetVersion, set_version);
        handler!(self, RevokeLease, revoke_lease);
        handler!(self, PushData, push_data);
        handler!(self, WriteChunk, write_chunk);
        handler!(self, AppendChunk, append_chunk);
        handler!(self, ApplyMutation, apply_mutation);
        handler!(self, ReadChunk, read_chunk);
        handler!(self, ChunkLen, chunk_len);
        handler!(self, ReadReplica, read_replica);
        handler!(self, CloneChunk, clone_chunk);
        handler!(self, FetchChunk, fetch_chunk);
        handler!(self, ListReplicas, list_replicas);
    }

    /// Tells the master a replica failed its checksum (GFS §5.2). Repeated at every scrub until
    /// the replica is gone: a report can be lost, and a restarted master forgets it.
    fn report_bad(&self, h: ChunkHandle, version: u64) {
        if self.core().note_corrupt(h, version) {
            emit(self.name, || Event::ChecksumMismatch { chunk: h, version });
        }
        let (ep, timeout, server) = (self.ep.clone(), self.cfg.rpc_timeout_ms, self.id);
        madsim::task::spawn(async move {
            let msg = ReportBadReplica {
                server,
                handle: h,
                version,
            };
            let _ = call(&ep, addr::master(), msg, timeout).await;
        });
    }

    /// Verifies every block of every replica, so rot in chunks nobody reads is found too.
    async fn scrub(&self) {
        let bad: Vec<(ChunkHandle, u64)> = {
            let mut store = self.store.lock().await;
            let mut bad = Vec::new();
            for (h, version) in store.report() {
                if let Ok(false) = store.scrub(h).await {
                    bad.push((h, version));
                }
            }
            bad
        };
        for (h, v) in bad {
            self.report_bad(h, v);
        }
    }

    /// GFS §4.3: copy a replica from another chunkserver, replacing any local copy.
    async fn clone_chunk(&self, req: CloneChunk) -> Result<(), GfsError> {
        let fetch = FetchChunk {
            handle: req.handle,
            version: req.version,
        };
        let src = addr::chunkserver(req.source);
        let data = call_result(&self.ep, src, fetch, self.cfg.rpc_timeout_ms).await?;
        let mut store = self.store.lock().await;
        // Versions never go backwards here: a local copy may carry a higher number from a grant
        // that was never committed (same bytes as `req.version`), and the copy keeps it.
        let version = store
            .version(req.handle)
            .map_or(req.version, |v| v.max(req.version));
        if store.version(req.handle).is_some() {
            store.remove(req.handle).await?;
        }
        store.install(req.handle, version, &data).await?;
        self.core().replica_copied(req.handle, version, now_ns());
        drop(store);
        emit(self.name, || Event::ReplicaCopied {
            chunk: req.handle,
            version,
            from: req.source,
            bytes: data.len() as u64,
        });
        Ok(())
    }

    async fn fetch_chunk(&self, req: FetchChunk) -> Result<SparseBytes, GfsError> {
        let store = self.store.lock().await;
        let (version, data, ok) = store.read_whole(req.handle).await?;
        drop(store);
        if !ok {
            self.report_bad(req.handle, version);
            return Err(GfsError::ChecksumMismatch(req.handle));
        }
        // At or above the requested version: a copy ahead by an uncommitted grant has the same bytes.
        if version < req.version {
            return Err(GfsError::StaleVersion {
                have: version,
                want: req.version,
            });
        }
        Ok(data)
    }
    async fn list_replicas(&self, _req: ListReplicas) -> Vec<ReplicaSummary> {
        let mut store = self.store.lock().await;
        let mut out = Vec::new();
        for (handle, version) in store.report() {
            let healthy = matches!(store.scrub(handle).await, Ok(true));
            let len_bytes = store.info(handle).map_or(0, |i| i.len_bytes);
            out.push(ReplicaSummary {
                handle,
                version,
                len_bytes,
                healthy,
            });
        }
        out
    }

    async fn heartbeat_once(&self) {
        let (snapshot_ns, chunks) = {
            let store = self.store.lock().await;
            (now_ns(), store.report())
        };
        let extend = self.core().leases_to_extend(snapshot_ns);
        let msg = Heartbeat {
            server: self.id,
            snapshot_ns,
            chunks,
            extend,
        };
        let Ok(reply) = call(&self.ep, addr::master(), msg, self.cfg.rpc_timeout_ms).await else {
            return; // the master is unreachable; try again next interval
        };
        let extended = self.core().extend_leases(&reply.extended);
        for (h, v, until) in extended {
            emit(self.name, || Event::LeaseExtended {
                chunk: h,
                version: v,
                until_ns: until,
            });
        }
        for (h, v) in reply.garbage {
            let mut store = self.store.lock().await;
            // Only if nothing changed since the report the master judged.
            let judged = store.version(h) == Some(v) && self.core().garbage_applies(h, snapshot_ns);
            if judged && store.remove(h).await.is_ok() {
                self.core().replica_deleted(h);
                emit(self.name, || Event::ReplicaDeleted {
                    chunk: h,
                    version: v,
                });
            }
        }
    }

    fn chunk_lock(&self, h: ChunkHandle) -> Arc<tokio::sync::Mutex<()>> {
        self.chunk_locks
            .lock()
            .unwrap()
            .entry(h)
            .or_default()
            .clone()
    }

    /// GFS §4.5: the master announces a new version (and, to the primary, its lease).
    async fn set_version(&self, req: SetVersion) -> Result<(), GfsError> {
        let mut store = self.store.lock().await;
        match store.version(req.handle) {
            Some(v) if v == req.version => {}
            // A candidate may be a version ahead of the master's (an uncommitted grant).
            Some(v) if v < req.version => store.set_version(req.handle, req.version).await?,
            Some(v) => {
                return Err(GfsError::StaleVersion {
                    have: v,
                    want: req.version,
                })
            }
            None if req.create => store.create(req.handle, req.version).await?,
            None => return Err(GfsError::NoSuchReplica(req.handle)),
        }
        drop(store);
        // A grant delayed past its expiry makes this server a secondary, not a primary.
        let taken =
            self.core()
                .version_set(req.handle, req.version, req.lease_expires_ns, now_ns());
        if let Some(expires_ns) = taken {
            emit(self.name, || Event::LeaseAcquired {
                chunk: req.handle,
                version: req.version,
                until_ns: expires_ns,
            });
        }
        emit(self.name, || Event::VersionSet {
            chunk: req.handle,
            version: req.version,
            role: if req.lease_expires_ns.is_some() {
                Role::Primary
            } else {
                Role::Secondary
            },
        });
        Ok(())
    }

    async fn revoke_lease(&self, req: RevokeLease) -> Result<(), GfsError> {
        let lock = self.chunk_lock(req.handle);
        let _mutating = lock.lock().await; // let an in-flight mutation finish first
        let revoked = self.core().revoke(req.handle);
        if let Some(l) = revoked {
            emit(self.name, || Event::LeaseReleased {
                chunk: req.handle,
                version: l.version,
            });
        }
        Ok(())
    }

    /// GFS §3.2: keep the data, then pass it down the chain.
    async fn push_data(&self, req: PushData) -> Result<(), GfsError> {
        self.core().push(req.id, req.data.clone());
        if let Some((&next, rest)) = req.forward.split_first() {
            let fwd = PushData {
                id: req.id,
                data: req.data,
                forward: rest.to_vec(),
            };
            call_result(
                &self.ep,
                addr::chunkserver(next),
                fwd,
                self.cfg.rpc_timeout_ms,
            )
            .await?;
        }
        Ok(())
    }

    fn data(&self, id: &DataId) -> Result<Arc<Vec<u8>>, GfsError> {
        self.core().data(id)
    }

    async fn apply_local(&self, h: ChunkHandle, serial: u64, m: &Mutation) -> Result<(), GfsError> {
        let mut store = self.store.lock().await;
        let version = store.version(h).ok_or(GfsError::NoSuchReplica(h))?;
        self.core().assert_lease_matches(h, version, now_ns());
        let len = self.write_mutation(&mut store, h, m).await?;
        if let Mutation::Write { offset, data } = m {
            emit(self.name, || Event::MutationApplied {
                chunk: h,
                version,
                serial,
                offset: *offset,
                len,
                data: *data,
            });
        }
        self.core().applied(h, version, serial);
        Ok(())
    }

    /// GFS §3.1 step 4: numbers the next mutation of `h` under this server's lease; it will
    /// cover `len` bytes from `offset`.
    fn take_serial(
        &self,
        h: ChunkHandle,
        version: u64,
        offset: u64,
        len: u64,
    ) -> Result<u64, GfsError> {
        let serial = self.core().take_serial(h, version, now_ns())?;
        emit(self.name, || Event::MutationOrdered {
            chunk: h,
            version,
            serial,
            offset,
            len,
        });
        Ok(serial)
    }

    /// Writes mutation `m` to the replica of `h`; returns the length of the pushed data it used.
    async fn write_mutation(
        &self,
        store: &mut ChunkStore,
        h: ChunkHandle,
        m: &Mutation,
    ) -> Result<u64, GfsError> {
        match m {
            Mutation::Write { offset, data } => {
                let bytes = self.data(data)?;
                let len = bytes.len() as u64;
                store.write_shared(h, *offset, bytes).await?;
                Ok(len)
            }
            Mutation::Pad { from } => {
                // Bug `short_pad`: an off-by-one leaves the chunk's last byte unpadded.
                let short_by = u64::from(self.cfg.has(Bug::ShortPad));
                let to = self.cfg.chunk_size_bytes - short_by;
                store.pad_to(h, *from, to).await.map(|()| 0)
            }
            Mutation::WriteCut { offset, data, keep } => {
                let bytes = self.data(data)?;
                store
                    .write(h, *offset, &bytes[..(*keep as usize).min(bytes.len())])
                    .await?;
                Ok(bytes.len() as u64)
            }
        }
    }

    /// Sends mutation `serial` to every secondary at once; [`ChunkServer::settle`] waits for the
    /// answers. Called with the chunk locked, so mutations leave in serial order.
    fn forward(
        &self,
        h: ChunkHandle,
        version: u64,
        serial: u64,
        mutation: Mutation,
        secondaries: &[ServerId],
    ) -> Forwarded {
        // A mutation ordered under a lease must land only while the lease runs: once it is over
        // the master may copy the chunk from a secondary, and a forward applied later would put
        // bytes on the source that its copies lack (found by `sim explore`: a primary paused
        // between ordering and forwarding). So a forward expires with the lease.
        let lease_end_ns = self.core().lease_expires_ns(h).unwrap_or(u64::MAX);
        let calls: Vec<_> = secondaries
            .iter()
            .map(|&s| {
                // (Bug `arrival_order`: the forward leaves at a random moment, as if the primary
                // had let go of the chunk, so mutations can overtake each other.)
                let jitter_us = if self.cfg.has(Bug::ArrivalOrder) {
                    madsim::rand::thread_rng().gen_range(0..20_000)
                } else {
                    0
                };
                let msg = ApplyMutation {
                    handle: h,
                    version,
                    serial,
                    mutation: mutation.clone(),
                };
                let (ep, timeout) = (self.ep.clone(), self.cfg.rpc_timeout_ms);
                madsim::task::spawn(async move {
                    if jitter_us > 0 {
                        madsim::time::sleep(Duration::from_micros(jitter_us)).await;
                    }
                    (
                        s,
                        call_by(&ep, addr::chunkserver(s), msg, timeout, lease_end_ns)
                            .await
                            .and_then(|applied| applied),
                    )
                })
            })
            .collect();
        Forwarded {
            h,
            version,
            serial,
            calls,
        }
    }

    /// Waits for every secondary's answer to a forwarded mutation; `Err` names those that failed.
    async fn settle(&self, forwarded: Forwarded) -> Result<(), GfsError> {
        let Forwarded {
            h,
            version,
            serial,
            calls,
        } = forwarded;
        if self.cfg.has(Bug::AckBeforeSecondaries) {
            return Ok(()); // bug: the secondaries' answers are not waited for
        }
        let mut failed = Vec::new();
        for c in calls {
            let (s, result) = c.await.expect("forward task");
            if let Err(e) = result {
                failed.push((s, e));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            let why: Vec<String> = failed.iter().map(|(s, e)| format!("{s}: {e}")).collect();
            // Applied here but not everywhere: the region may now be inconsistent (GFS §3.1 step 7).
            emit(self.name, || Event::MutationPartial {
                chunk: h,
                version,
                serial,
                failed,
            });
            Err(GfsError::SecondaryFailed(why.join("; ")))
        }
    }

    /// GFS §3.1 steps 4-7, at the primary. The chunk is held only while the mutation is numbered,
    /// applied here and sent on (see the module comment).
    async fn write_chunk(&self, req: WriteChunk) -> Result<(), GfsError> {
        let len = self.data(&req.data)?.len() as u64;
        if req.offset + len > self.cfg.chunk_size_bytes {
            return Err(GfsError::InvalidRange(format!(
                "write of {len} bytes at {} crosses the chunk end",
                req.offset
            )));
        }
        let lock = self.chunk_lock(req.handle);
        let forwarded = {
            let _mutating = lock.lock().await;
            let serial = self.take_serial(req.handle, req.version, req.offset, len)?;
            let m = Mutation::Write {
                offset: req.offset,
                data: req.data,
            };
            self.apply_local(req.handle, serial, &m).await?;
            self.forward(req.handle, req.version, serial, m, &req.secondaries)
        };
        self.settle(forwarded).await
    }

    /// GFS §3.3: the primary picks the offset, or pads the chunk and sends the client on. Appends
    /// are pipelined like writes: each is placed at the end the previous one left.
    async fn append_chunk(&self, req: AppendChunk) -> Result<u64, GfsError> {
        let len = self.data(&req.data)?.len() as u64;
        let lock = self.chunk_lock(req.handle);
        let (plan, forwarded) = {
            let _mutating = lock.lock().await;
            // Everything that can refuse the append comes before a serial is taken, so refusals
            // leave no gap in the serials the secondaries wait for.
            self.core()
                .check_primary(req.handle, req.version, now_ns())?;
            let end = {
                let store = self.store.lock().await;
                store
                    .info(req.handle)
                    .ok_or(GfsError::NoSuchReplica(req.handle))?
                    .len_bytes
            };
            let plan = self.core().plan_append(end, len);
            let Some(m) = plan.mutation(req.data) else {
                return Err(GfsError::ChunkFull); // already full: nothing to apply or send
            };
            let (offset, covered) = plan.region(len, self.cfg.chunk_size_bytes);
            let serial = self.take_serial(req.handle, req.version, offset, covered)?;
            self.apply_local(req.handle, serial, &m).await?;
            let forwarded = self.forward(req.handle, req.version, serial, m, &req.secondaries);
            (plan, forwarded)
        };
        self.settle(forwarded).await?;
        match plan {
            AppendPlan::Fits { offset } | AppendPlan::Cut { offset, .. } => Ok(offset),
            AppendPlan::Full => unreachable!("a full chunk is answered before any mutation"),
            AppendPlan::Pad { from } => {
                emit(self.name, || Event::ChunkPadded {
                    chunk: req.handle,
                    from,
                    data: req.data,
                });
                Err(GfsError::ChunkFull)
            }
        }
    }

    /// GFS §3.1 step 5, at a secondary: apply in serial order, holding a mutation that arrived
    /// ahead of an earlier serial (bounded; see [`ChunkServerCore::admit`]), never applying an
    /// older one after a newer one.
    async fn apply_mutation(&self, req: ApplyMutation) -> Result<(), GfsError> {
        let arrived_ns = now_ns();
        let mut held = false;
        let _held = Held {
            cs: self,
            h: req.handle,
            version: req.version,
            serial: req.serial,
        };
        loop {
            let mut store = self.store.lock().await;
            let version = store
                .version(req.handle)
                .ok_or(GfsError::NoSuchReplica(req.handle))?;
            if version != req.version {
                coverage::hit(Probe::MutationStaleVersion);
                return Err(GfsError::StaleVersion {
                    have: version,
                    want: req.version,
                });
            }
            let waited_ns = now_ns() - arrived_ns;
            let admission = self
                .core()
                .admit(req.handle, version, req.serial, waited_ns);
            match admission {
                Admission::Apply => {
                    self.write_mutation(&mut store, req.handle, &req.mutation)
                        .await?;
                    self.core().applied(req.handle, version, req.serial);
                    return Ok(());
                }
                Admission::Refuse { after_serial } => {
                    coverage::hit(Probe::SerialRefused);
                    emit(self.name, || Event::MutationRefused {
                        chunk: req.handle,
                        version,
                        serial: req.serial,
                        after_serial,
                    });
                    return Err(GfsError::Unavailable(format!(
                        "mutation {} of {} arrived after mutation {after_serial}",
                        req.serial, req.handle
                    )));
                }
                Admission::Full => {
                    coverage::hit(Probe::SerialWindowFull);
                    return Err(GfsError::Unavailable(format!(
                        "too many mutations of {} wait for an earlier one",
                        req.handle
                    )));
                }
                Admission::Hold => {
                    if !held {
                        held = true;
                        coverage::hit(Probe::SerialHeld);
                    }
                }
            }
            drop(store);
            madsim::time::sleep(SERIAL_POLL).await;
        }
    }

    fn check_version(store: &ChunkStore, h: ChunkHandle, want: u64) -> Result<(), GfsError> {
        let have = store.version(h).ok_or(GfsError::NoSuchReplica(h))?;
        if have < want {
            return Err(GfsError::StaleVersion { have, want });
        }
        Ok(())
    }

    async fn read_chunk(&self, req: ReadChunk) -> Result<SparseBytes, GfsError> {
        let store = self.store.lock().await;
        if let Err(e) = Self::check_version(&store, req.handle, req.version) {
            if matches!(e, GfsError::StaleVersion { .. }) {
                coverage::hit(Probe::ReadStaleVersion);
            }
            return Err(e);
        }
        let result = store.read(req.handle, req.offset, req.len).await;
        if let Err(GfsError::ChecksumMismatch(h)) = &result {
            let version = store.version(*h).unwrap_or(0);
            drop(store);
            self.report_bad(req.handle, version);
        }
        result
    }

    async fn chunk_len(&self, req: ChunkLen) -> Result<u64, GfsError> {
        let store = self.store.lock().await;
        Self::check_version(&store, req.handle, req.version)?;
        Ok(store.info(req.handle).expect("version checked").len_bytes)
    }

    async fn read_replica(&self, req: ReadReplica) -> Result<ReplicaContent, GfsError> {
        let store = self.store.lock().await;
        let (version, data, checksums_ok) = store.read_whole(req.handle).await?;
        Ok(ReplicaContent {
            version,
            data,
            checksums_ok,
        })
    }
}
