//! The master node: metadata server, lease authority and operation log (GFS §2.6, §3.1, §4).
//!
//! [`MasterState`] holds the metadata and makes every decision; this module is the async shell
//! around it. Each request locks the state, lets it decide, appends the resulting log records and
//! syncs them *before* replying (GFS §2.6.3), so a reply never describes state a crash could undo.
//!
//! A lease grant is the one request that talks to other nodes on its way: after logging the version
//! bump, the master tells every up-to-date replica the new version (and the primary its lease) and
//! only then names the primary to the client (GFS §4.5). Grants for one chunk are serialized by a
//! per-chunk lock, so a second client asking for the same chunk waits for the first grant to be
//! acknowledged instead of racing ahead of it.

pub mod oplog;
pub mod state;

pub use state::{
    Checkpoint, CloneOrder, ClonePolicy, LeaseGrant, LogRecord, MasterState, Placement,
};

use crate::bugs::Bug;
use crate::config::ClusterConfig;
use crate::disk::{Disk, DiskFaults};
use crate::msg::*;
use crate::now_ns;
use crate::rpc::{call_result, serve, Envelope};
use crate::trace::{Event, NodeName};
use crate::types::{addr, ChunkHandle, GfsError, RequestId, ServerId};
use madsim::net::Endpoint;
use oplog::OpLog;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MS: u64 = 1_000_000;

/// Records an event of the master's.
fn emit(event: impl FnOnce() -> Event) {
    crate::trace::emit(NodeName::Master, event);
}

struct Core {
    state: MasterState,
    log: OpLog,
}

struct Master {
    cfg: ClusterConfig,
    ep: Endpoint,
    core: tokio::sync::Mutex<Core>,
    grant_locks: Mutex<BTreeMap<ChunkHandle, Arc<tokio::sync::Mutex<()>>>>,
    /// Deletes running now, by request: a retry of one waits for its answer (bounded by the
    /// clients' own retries).
    deleting: Mutex<BTreeSet<RequestId>>,
    /// Expired leases already reported in the trace, by chunk and version (at most one per
    /// chunk): only for `lease_expired` events, never for decisions.
    expired_reported: Mutex<BTreeSet<(ChunkHandle, u64)>>,
}

/// Runs a master until the node is killed. Panics only if its own disk is corrupt or fails, which
/// the master cannot work around (the paper replicates the log for that; see the roadmap).
/// `disk` is the master's physical disk: it outlives restarts.
pub async fn run(cfg: ClusterConfig, disk: Arc<DiskFaults>) {
    let disk = Disk::open(NodeName::Master, disk)
        .await
        .expect("master disk opens");
    let (log, mut state) = OpLog::recover(disk, cfg.checkpoint_every_records)
        .await
        .unwrap_or_else(|e| panic!("master cannot recover its operation log: {e}"));
    let mut log = log;
    log.set_sync(!cfg.has(Bug::UnsyncedLog));
    // (Bug `no_grace_after_restart`: leases straight away, though old ones may still run.)
    let grace_ms = if cfg.has(Bug::NoGraceAfterRestart) {
        0
    } else {
        cfg.master_grace_ms()
    };
    let grace_until = now_ns() + grace_ms * MS;
    state.set_grace_until(grace_until);
    state.set_min_lease_acks(cfg.min_lease_replicas());
    state.set_bugs(cfg.bugs.clone());
    // A master that finds a log or checkpoint is recovering (GFS §2.6.3); one that finds nothing
    // is new.
    emit(|| {
        let (lsn, files, grace_until_ms) = (state.lsn(), state.list().len(), grace_until / MS);
        if lsn > 0 {
            Event::MasterRecovered {
                lsn,
                files,
                grace_until_ms,
            }
        } else {
            Event::MasterStarted {
                lsn,
                files,
                grace_until_ms,
            }
        }
    });
    let ep = Endpoint::bind(addr::master())
        .await
        .expect("master binds its address");
    let master = Arc::new(Master {
        cfg,
        ep,
        core: tokio::sync::Mutex::new(Core { state, log }),
        grant_locks: Mutex::new(BTreeMap::new()),
        deleting: Mutex::new(BTreeSet::new()),
        expired_reported: Mutex::new(BTreeSet::new()),
    });
    master.serve();
    loop {
        madsim::time::sleep(Duration::from_millis(master.cfg.heartbeat_ms)).await;
        master.background().await;
    }
}

macro_rules! handler {
    ($master:expr, $req:ty, $method:ident) => {{
        let m = $master.clone();
        // Requests arrive in an envelope naming the message, for the trace (see `rpc`).
        let receivers = $master.cfg.master_receivers_per_kind;
        crate::rpc::handle(&$master.ep, receivers, move |env: Envelope<$req>| {
            let req = serve(NodeName::Master, env);
            let m = m.clone();
            async move { m.$method(req).await }
        });
    }};
}

/// Rounds a delete makes (revoking the file's leases each time) before it gives up on a file that
/// keeps gaining chunks; the client retries.
const MAX_DELETE_ATTEMPTS: u32 = 16;

impl Master {
    fn serve(self: &Arc<Self>) {
        handler!(self, CreateFile, create);
        handler!(self, DeleteFile, delete);
        handler!(self, ListFiles, list);
        handler!(self, FindChunk, find_chunk);
        handler!(self, GetPrimary, get_primary);
        handler!(self, Heartbeat, heartbeat);
        handler!(self, DumpChunks, dump);
        handler!(self, ReportBadReplica, bad_replica);
    }

    /// Periodic work: declare silent servers dead, reclaim deleted files past the GC delay
    /// (GFS §4.4), and start copies of under-replicated chunks (GFS §4.3).
    /// Emits `lease_expired` once per expired lease; forgets leases a new grant replaced.
    fn report_expired_leases(&self, expired: Vec<(ChunkHandle, state::Lease)>) {
        let mut reported = self.expired_reported.lock().unwrap();
        reported.retain(|(h, v)| expired.iter().any(|(eh, l)| eh == h && l.version == *v));
        for (h, l) in expired {
            if reported.insert((h, l.version)) {
                emit(|| Event::LeaseExpired {
                    chunk: h,
                    version: l.version,
                    primary: l.primary,
                    expired_ms: l.expires_ns / MS,
                });
            }
        }
    }

    async fn background(self: &Arc<Self>) {
        let now = now_ns();
        let orders = {
            let mut core = self.core.lock().await;
            let timeout = self.cfg.server_timeout_ms * MS;
            for dead in core.state.expire_servers(now, timeout) {
                emit(|| Event::ServerDead { server: dead });
            }
            // GFS §3.1: a lease nobody extended runs out; report each once, when next noticed.
            self.report_expired_leases(core.state.expired_leases(now));
            let mut recs = Vec::new();
            // (Bug `gc_ignores_grace`: no delay at all.)
            let gc_delay_ms = if self.cfg.has(Bug::GcIgnoresGrace) {
                0
            } else {
                self.cfg.gc_delay_ms
            };
            for hidden in core.state.reclaimable(now, gc_delay_ms * MS) {
                recs.extend(core.state.reclaim(&hidden));
                emit(|| Event::FileReclaimed {
                    hidden: hidden.clone(),
                });
            }
            Self::persist(&mut core, &recs).await;
            let quiet_ns = self.cfg.clone_quiet_ms() * MS;
            let target = self.cfg.replication as usize;
            for (h, s) in core.state.trim_excess(now, target, quiet_ns) {
                emit(|| Event::ReplicaTrimmed {
                    chunk: h,
                    server: s,
                });
            }
            let room = self
                .cfg
                .max_concurrent_clones
                .saturating_sub(core.state.copies_in_flight());
            let mut rng = madsim::rand::thread_rng();
            let policy = ClonePolicy {
                target: self.cfg.replication as usize,
                timeout_ns: timeout,
                quiet_ns: self.cfg.clone_quiet_ms() * MS,
                max: room,
            };
            let orders = core.state.clone_orders(now, policy, &mut rng);
            // Announced where they are decided, under the lock: a heartbeat handled after this
            // pass shows in the trace after the copies it could not have changed.
            for order in &orders {
                core.state.start_clone(order);
                emit(|| Event::CloneStarted {
                    chunk: order.handle,
                    version: order.version,
                    from: order.source,
                    to: order.dest,
                    replicas: order.replicas,
                });
            }
            orders
        };
        for order in orders {
            let m = self.clone();
            madsim::task::spawn(async move { m.copy(order).await });
        }
    }

    /// Has `order.dest` copy the chunk from `order.source`, then records the new replica.
    async fn copy(&self, order: CloneOrder) {
        let msg = CloneChunk {
            handle: order.handle,
            version: order.version,
            source: order.source,
        };
        let dst = addr::chunkserver(order.dest);
        // The copy takes two hops (fetch, then store): allow for both.
        let result = call_result(&self.ep, dst, msg, 2 * self.cfg.rpc_timeout_ms).await;
        let added = {
            let state = &mut self.core.lock().await.state;
            match result {
                Ok(()) => state.finish_clone(&order, now_ns()),
                Err(_) => {
                    state.abandon_clone(&order);
                    false
                }
            }
        };
        let (chunk, version, to) = (order.handle, order.version, order.dest);
        emit(|| {
            if added {
                Event::ReplicaCloned { chunk, version, to }
            } else {
                Event::CloneFailed { chunk, version, to }
            }
        });
    }

    /// GFS §5.2: a chunkserver found a corrupt block; drop that replica so it is re-copied.
    async fn bad_replica(&self, req: ReportBadReplica) {
        let mut core = self.core.lock().await;
        if core
            .state
            .report_bad_replica(req.handle, req.server, req.version)
        {
            emit(|| Event::ReplicaCorrupt {
                chunk: req.handle,
                version: req.version,
                server: req.server,
            });
        }
    }

    /// Appends and syncs `recs` (already applied to `core.state`), checkpointing when due.
    async fn persist(core: &mut Core, recs: &[LogRecord]) {
        if recs.is_empty() {
            return;
        }
        let Core { state, log } = core;
        log.append(state, recs).await.expect("master log write");
        if log
            .maybe_checkpoint(state)
            .await
            .expect("master checkpoint")
        {
            emit(|| Event::CheckpointWritten { lsn: state.lsn() });
        }
    }

    async fn create(&self, req: CreateFile) -> Result<(), GfsError> {
        let mut core = self.core.lock().await;
        let recs = match core.state.create_file_once(&req.path, req.request) {
            Ok(recs) => recs,
            Err(e) => {
                // A refusal is an answer too: a late duplicate of this request must get it.
                if let Some(r) = req.request {
                    core.state.remember(r, Err(e.clone()));
                }
                return Err(e);
            }
        };
        if !recs.is_empty() {
            Self::persist(&mut core, &recs).await;
            emit(|| Event::FileCreated {
                path: req.path.clone(),
            });
        }
        Ok(())
    }

    /// Deletes the file, then revokes its chunks' live leases so no primary keeps accepting
    /// mutations for a file that is gone (GFS §3.1 mentions revocation for renames). A primary
    /// that cannot be reached is waited out until its lease expires.
    async fn delete(&self, req: DeleteFile) -> Result<(), GfsError> {
        if let Some(r) = req.request {
            if let Some(answer) = self.core.lock().await.state.answered(r) {
                return answer; // a retry of a request already answered
            }
            // A retry of a delete still running (it waits on grant locks and revocations, so a
            // client can time out and retry meanwhile) must not run it again: the file it would
            // find gone would make it answer "no such file" for a delete that did happen. Ask
            // it to come back for the first attempt's answer.
            if !self.deleting.lock().unwrap().insert(r) {
                return Err(GfsError::Unavailable(format!(
                    "delete of {} is still in progress",
                    req.path
                )));
            }
        }
        let result = self.delete_once(&req).await;
        if let Some(r) = req.request {
            if let Err(e) = &result {
                // A refusal is an answer too: a late duplicate of this request must get it.
                self.core.lock().await.state.remember(r, Err(e.clone()));
            }
            self.deleting.lock().unwrap().remove(&r);
        }
        result
    }

    async fn delete_once(&self, req: &DeleteFile) -> Result<(), GfsError> {
        // Revoke first, log the deletion after: a primary whose lease outlived the deletion would
        // go on acknowledging mutations of the deleted file (from a client holding its chunk
        // handle in its cache), even after the path is created again, and those writes are lost.
        // Until the deletion is logged the file exists, so the path cannot be reused meanwhile.
        // (Found by a sweep: an acknowledged write to a recreated file landed in the old one.)
        //
        // No lease grant may be in flight on the file's chunks: a revocation sent now could reach
        // the primary before its grant does, and revoke nothing. So hold their grant locks until
        // the deletion is logged. A chunk added meanwhile (its lock was not held, so it may have
        // been granted a lease) means starting over; bounded, as the file grows a chunk at a time.
        for _attempt in 0..MAX_DELETE_ATTEMPTS {
            let handles: Vec<ChunkHandle> = {
                let core = self.core.lock().await;
                core.state.chunks_of(&req.path)?.to_vec()
            };
            let locks: Vec<_> = handles.iter().map(|h| self.grant_lock(*h)).collect();
            let mut held = Vec::with_capacity(locks.len());
            for lock in locks {
                held.push(lock.lock_owned().await);
            }
            let live = {
                let mut core = self.core.lock().await;
                if core.state.chunks_of(&req.path)? != handles.as_slice() {
                    continue;
                }
                if let Some(answer) = req.request.and_then(|r| core.state.answered(r)) {
                    return answer; // a duplicate of a delete already done
                }
                core.state.start_revoking(&req.path, now_ns())?
            };
            for &(handle, lease) in &live {
                let dst = addr::chunkserver(lease.primary);
                let revoked = call_result(
                    &self.ep,
                    dst,
                    RevokeLease { handle },
                    self.cfg.rpc_timeout_ms,
                )
                .await;
                if revoked.is_err() {
                    // Not extended since `start_revoking`: it runs out at the latest then.
                    let wait = lease.expires_ns.saturating_sub(now_ns());
                    madsim::time::sleep(Duration::from_nanos(wait)).await;
                }
                emit(|| Event::LeaseRevoked {
                    chunk: handle,
                    primary: lease.primary,
                });
            }
            let mut core = self.core.lock().await;
            core.state.end_revoking(&handles);
            // Checked and logged in one critical section: no chunk can be added in between.
            if core.state.chunks_of(&req.path)? != handles.as_slice() {
                continue;
            }
            let recs = core
                .state
                .delete_file_once(&req.path, now_ns(), req.request)?;
            if recs.is_empty() {
                return Ok(()); // a duplicate of a delete already done
            }
            Self::persist(&mut core, &recs).await;
            emit(|| Event::FileDeleted {
                path: req.path.clone(),
                live_leases: live.len(),
            });
            drop(held);
            // Drop grant locks of chunks that no longer exist: the map stays bounded by the chunk
            // table.
            self.grant_locks
                .lock()
                .unwrap()
                .retain(|h, _| core.state.chunk(*h).is_some());
            return Ok(());
        }
        Err(GfsError::Unavailable(format!(
            "{} kept growing while being deleted",
            req.path
        )))
    }

    async fn list(&self, req: ListFiles) -> Result<Vec<FileEntry>, GfsError> {
        let core = self.core.lock().await;
        let state = &core.state;
        let files = if req.deleted {
            state.list_deleted()
        } else {
            state.list()
        };
        Ok(files
            .into_iter()
            .map(|(path, chunks)| {
                let last = chunks.last().and_then(|h| state.chunk(*h));
                FileEntry {
                    last_chunk_version: last.map_or(0, |m| m.version),
                    last_chunk_replicas: chunks.last().map_or(Vec::new(), |h| state.replicas(*h)),
                    path,
                    chunks,
                }
            })
            .collect())
    }

    async fn find_chunk(&self, req: FindChunk) -> Result<ChunkLocation, GfsError> {
        let core = self.core.lock().await;
        // (Bug `hidden_unreadable`: a deleted file's hidden name is refused like a user's path.)
        let chunks = if self.cfg.has(crate::Bug::HiddenUnreadable) {
            core.state.chunks_of(&req.path)?
        } else {
            core.state.chunks_to_read(&req.path)?
        };
        let handle = *chunks
            .get(req.index as usize)
            .ok_or(GfsError::NoSuchChunk)?;
        let meta = core.state.chunk(handle).expect("listed chunk exists");
        Ok(ChunkLocation {
            handle,
            version: meta.version,
            replicas: core.state.replicas(handle),
            chunk_count: chunks.len() as u64,
        })
    }

    fn grant_lock(&self, handle: ChunkHandle) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.grant_locks.lock().unwrap();
        locks.entry(handle).or_default().clone()
    }

    /// GFS §3.1 steps 1-2: find (allocating if asked) the chunk and its primary, granting a lease
    /// if none is held.
    async fn get_primary(&self, req: GetPrimary) -> Result<PrimaryInfo, GfsError> {
        let (index, handle) = {
            let mut core = self.core.lock().await;
            let count = core.state.chunks_of(&req.path)?.len() as u64;
            let index = match req.index {
                ChunkIndex::At(i) => i,
                ChunkIndex::Last { at_least } => count.saturating_sub(1).max(at_least),
            };
            if index >= count && !req.allocate {
                return Err(GfsError::NoSuchChunk);
            }
            let handle = if index < count {
                core.state.chunks_of(&req.path)?[index as usize]
            } else {
                let (handle, recs) = core.state.ensure_chunk(&req.path, index)?;
                Self::persist(&mut core, &recs).await;
                // Every chunk allocated, holes before `index` included: `handles_unique` judges
                // each allocation the log committed.
                for rec in &recs {
                    if let LogRecord::AddChunk {
                        path,
                        index,
                        handle,
                    } = rec
                    {
                        emit(|| Event::ChunkAllocated {
                            path: path.clone(),
                            index: *index,
                            chunk: *handle,
                        });
                    }
                }
                handle
            };
            (index, handle)
        };

        let lock = self.grant_lock(handle);
        let _granting = lock.lock().await;
        let grant = {
            let mut core = self.core.lock().await;
            if core.state.chunk(handle).is_none_or(|m| m.path != req.path) {
                return Err(GfsError::NotFound(req.path.clone())); // deleted meanwhile
            }
            let mut rng = madsim::rand::thread_rng();
            let placement = Placement {
                replication: self.cfg.replication as usize,
                timeout_ns: self.cfg.server_timeout_ms * MS,
            };
            let lease_ns = self.cfg.lease_ms * MS;
            let (grant, recs) =
                core.state
                    .grant_lease(handle, now_ns(), lease_ns, placement, &mut rng)?;
            // The version is on the log before any replica hears of it: never offered twice.
            Self::persist(&mut core, &recs).await;
            grant
        };
        let lease = grant.lease;
        let mut secondaries: Vec<ServerId> = grant
            .replicas
            .iter()
            .copied()
            .filter(|s| *s != lease.primary)
            .collect();
        if !grant.new && !grant.replicas.contains(&lease.primary) {
            // A lease whose grant no replica (or not the primary) took: wait for it to expire.
            return Err(GfsError::Unavailable(format!(
                "the lease on {handle} is unusable until it expires"
            )));
        }
        if grant.new {
            emit(|| Event::LeaseOffered {
                chunk: handle,
                version: lease.version,
                primary: lease.primary,
                replicas: grant.replicas.clone(),
                expires_ns: lease.expires_ns,
            });
            // Tell every replica the new version before anyone learns the primary (GFS §4.5);
            // the bump is logged once one of them has it (see `MasterState::grant_lease`).
            let calls: Vec<_> = grant
                .replicas
                .iter()
                .map(|&server| {
                    let msg = SetVersion {
                        handle,
                        version: lease.version,
                        create: grant.create,
                        lease_expires_ns: (server == lease.primary).then_some(lease.expires_ns),
                    };
                    let (ep, timeout) = (self.ep.clone(), self.cfg.rpc_timeout_ms);
                    let call = async move {
                        (
                            server,
                            call_result(&ep, addr::chunkserver(server), msg, timeout).await,
                        )
                    };
                    madsim::task::spawn(call)
                })
                .collect();
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            for call in calls {
                let (server, result) = call.await.expect("SetVersion task");
                match result {
                    Ok(()) => acked.push(server),
                    Err(e) => failed.push((server, e)),
                }
            }
            let mut core = self.core.lock().await;
            // A replica reported corrupt while the grant was in flight took the version with bad
            // bytes: it stays out of the grant (GFS §5.2), as one that did not answer.
            for server in core.state.ruled_out(handle, &acked) {
                acked.retain(|s| *s != server);
                failed.push((server, GfsError::ChecksumMismatch(handle)));
            }
            let Some(recs) = core.state.settle_grant(handle, lease, &acked, now_ns()) else {
                return Err(GfsError::Unavailable(format!(
                    "the grant on {handle} was superseded"
                )));
            };
            Self::persist(&mut core, &recs).await;
            if !core.state.lease_usable(handle, &lease) {
                // Too few replicas took the version: the lease stays unusable until it expires.
                return Err(GfsError::Unavailable(format!(
                    "only {} of {} replicas of {handle} took version {}",
                    acked.len(),
                    grant.replicas.len(),
                    lease.version
                )));
            }
            if !recs.is_empty() {
                emit(|| Event::VersionBumped {
                    chunk: handle,
                    version: lease.version,
                });
            }
            for (server, why) in &failed {
                emit(|| Event::ReplicaExcluded {
                    chunk: handle,
                    version: lease.version,
                    server: *server,
                    why: why.clone(),
                });
            }
            let failed: Vec<ServerId> = failed.into_iter().map(|(s, _)| s).collect();
            if failed.contains(&lease.primary) {
                // The primary may or may not hold the lease; it stays recorded until it expires.
                return Err(GfsError::Unavailable(format!(
                    "primary {} did not take the lease on {handle}",
                    lease.primary
                )));
            }
            secondaries.retain(|s| !failed.contains(s));
            emit(|| Event::LeaseGranted {
                chunk: handle,
                version: lease.version,
                primary: lease.primary,
                secondaries: secondaries.clone(),
                expires_ms: lease.expires_ns / MS,
            });
        }
        Ok(PrimaryInfo {
            index,
            handle,
            version: lease.version,
            primary: lease.primary,
            secondaries,
            lease_expires_ns: lease.expires_ns,
        })
    }

    async fn heartbeat(&self, req: Heartbeat) -> HeartbeatReply {
        let mut core = self.core.lock().await;
        let now = now_ns();
        let timeout = self.cfg.server_timeout_ms * MS;
        let out = core
            .state
            .heartbeat(req.server, now, req.snapshot_ns, &req.chunks, timeout);
        Self::persist(&mut core, &out.records).await;
        if out.new_server {
            emit(|| Event::ServerJoined {
                server: req.server,
                chunks: req.chunks.len(),
            });
        }
        let server = req.server;
        for _ in 0..out.orphans {
            emit(|| Event::GarbageOrphan { server });
        }
        for _ in out.orphans..out.garbage.len() {
            emit(|| Event::GarbageStale { server });
        }
        for &(chunk, version) in &out.adopted {
            emit(|| Event::VersionAdopted {
                chunk,
                version,
                from: server,
            });
        }
        let lease_ns = self.cfg.lease_ms * MS;
        let extended = req
            .extend
            .iter()
            .filter_map(|&(h, v)| {
                let until = core.state.extend_lease(h, req.server, v, now, lease_ns)?;
                emit(|| Event::LeaseRenewed {
                    chunk: h,
                    version: v,
                    primary: server,
                    expires_ns: until,
                });
                Some((h, v, until))
            })
            .collect();
        HeartbeatReply {
            garbage: out.garbage,
            extended,
        }
    }

    async fn dump(&self, _req: DumpChunks) -> Vec<ChunkDump> {
        let core = self.core.lock().await;
        core.state
            .chunk_table()
            .map(|(h, m)| ChunkDump {
                path: m.path.clone(),
                index: m.index,
                handle: *h,
                version: m.version,
                issued: m.issued,
                replicas: m.locations.keys().copied().collect(),
            })
            .collect()
    }
}
