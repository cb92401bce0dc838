//! The master's metadata as plain data (GFS §2.6, §4): namespace, chunk table, servers, leases.
//!
//! Nothing here sleeps, sends or touches a disk. Every method takes the current simulated time
//! (`now_ns`) and, where it must choose, a random number generator, so unit tests drive it directly.
//! The async shell in `master/mod.rs` calls these methods under one lock, appends the
//! [`LogRecord`]s they return to the operation log and syncs it before answering anyone.
//!
//! What is persistent and what is not follows the paper (§2.6): the namespace, the file -> chunks
//! mapping and chunk versions are logged; replica locations and leases are not, and are rebuilt from
//! heartbeats after a restart. Each logged change goes through [`MasterState::apply`], the same
//! function replay uses, so a replayed log rebuilds exactly the state that was live.

use crate::bugs::Bug;
use crate::types::{validate_path, ChunkHandle, GfsError, RequestId, ServerId};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One durable change to the metadata, as written to the operation log (GFS §2.6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRecord {
    CreateFile {
        path: String,
        /// The client request that asked for it, so a retry is answered, not re-executed.
        #[serde(default)]
        request: Option<RequestId>,
    },
    /// Deletion renames the file to a hidden name, remembering when (GFS §4.4); its chunks live
    /// on until the hidden file is reclaimed.
    DeleteFile {
        path: String,
        hidden: String,
        deleted_ns: u64,
        #[serde(default)]
        request: Option<RequestId>,
    },
    /// Garbage collection removes a hidden file; its chunks become orphans that chunkservers
    /// delete when heartbeats tell them (GFS §4.4).
    Reclaim { hidden: String },
    /// A grant is about to tell replicas `version`: logged first, so a version number is never
    /// offered twice, even across a failed grant and a master restart.
    IssueVersion { handle: ChunkHandle, version: u64 },
    /// A new chunk at `index` of `path` (always the next index: files grow chunk by chunk).
    AddChunk {
        path: String,
        index: u64,
        handle: ChunkHandle,
    },
    /// The chunk's version changes: at a lease grant (GFS §4.5), or adopting a higher version a
    /// replica reported.
    ///
    /// `excluded` names the replicas that did not take the version when it was granted: they may
    /// hold it anyway (a late message) but missed its mutations. Logged, so that a restarted
    /// master still knows them for stale.
    SetVersion {
        handle: ChunkHandle,
        version: u64,
        #[serde(default)]
        excluded: Vec<ServerId>,
    },
}

/// A primary's lease on a chunk (GFS §3.1). Expiry is absolute simulated time: madsim has one
/// clock for every node, so the primary's view of expiry equals the master's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub primary: ServerId,
    pub version: u64,
    pub expires_ns: u64,
}

/// The replicas a lease's mutations go to: fixed when the lease is granted, so every acknowledged
/// mutation at a version reached the same set of replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub lease: Lease,
    pub replicas: Vec<ServerId>,
    /// False while the replicas are still being told the new version: until then a replica in
    /// `replicas` that reports the previous version is not stale, just not told yet.
    pub settled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    pub path: String,
    pub index: u64,
    /// Persistent: the chunk's current version, the one its last settled grant committed (0 until
    /// its first lease). Mutations happen only under a committed version.
    pub version: u64,
    /// Persistent: the highest version ever offered to replicas (>= `version`). A replica between
    /// the two took a grant that was never committed; no mutation happened under it, so its
    /// bytes are those of `version`.
    pub issued: u64,
    /// Volatile: when `version` last changed, to ignore heartbeats taken before that.
    pub version_set_ns: u64,
    /// Volatile: servers holding the current version, with when that was last confirmed. Changed
    /// only through [`HeldBy`], which keeps the inverse map in step.
    pub locations: BTreeMap<ServerId, u64>,
    /// Volatile: the current lease and its replica set, if one was granted.
    pub lease: Option<LeaseHolder>,
    /// Volatile: servers that did not take the current version when it was granted. They may
    /// hold it anyway (the answer was lost) but missed its mutations, so they are stale.
    pub excluded: BTreeSet<ServerId>,
}

/// Which chunks each server holds a current replica of: the inverse of every
/// [`ChunkMeta::locations`]. With it a heartbeat, a placement and a dead server cost what that
/// server holds instead of a walk over the whole chunk table, so the master is not quadratic in
/// servers x chunks (1,000 servers and 100,000 chunks). Every change to a chunk's locations goes
/// through these methods; [`MasterState::check_invariants`] checks the two maps agree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HeldBy(BTreeMap<ServerId, BTreeSet<ChunkHandle>>);

impl HeldBy {
    /// `server` holds the current version of `handle`, confirmed at `at_ns` (a later confirmation
    /// than one already recorded wins).
    fn confirm(&mut self, handle: ChunkHandle, meta: &mut ChunkMeta, server: ServerId, at_ns: u64) {
        let seen = meta.locations.entry(server).or_insert(at_ns);
        *seen = (*seen).max(at_ns);
        self.0.entry(server).or_default().insert(handle);
    }

    /// `server` holds the current version of `handle`, confirmed at `at_ns` exactly.
    fn set(&mut self, handle: ChunkHandle, meta: &mut ChunkMeta, server: ServerId, at_ns: u64) {
        meta.locations.insert(server, at_ns);
        self.0.entry(server).or_default().insert(handle);
    }

    /// `server` no longer counts as holding `handle`. Returns whether it did.
    fn remove(&mut self, handle: ChunkHandle, meta: &mut ChunkMeta, server: ServerId) -> bool {
        let had = meta.locations.remove(&server).is_some();
        if had {
            let held = self.0.get_mut(&server).expect("inverse of a location");
            assert!(
                held.remove(&handle),
                "{server} holds {handle} in one map only"
            );
            if held.is_empty() {
                self.0.remove(&server);
            }
        }
        had
    }

    /// The chunk's locations become exactly `servers`, each confirmed at `at_ns`.
    fn replace(
        &mut self,
        handle: ChunkHandle,
        meta: &mut ChunkMeta,
        servers: impl IntoIterator<Item = ServerId>,
        at_ns: u64,
    ) {
        self.forget(handle, meta);
        for s in servers {
            self.set(handle, meta, s, at_ns);
        }
    }

    /// The chunk has no locations any more (it is being dropped, or relocated from scratch).
    fn forget(&mut self, handle: ChunkHandle, meta: &mut ChunkMeta) {
        let servers: Vec<ServerId> = meta.locations.keys().copied().collect();
        for s in servers {
            self.remove(handle, meta, s);
        }
    }

    /// The chunks `server` holds, in handle order.
    fn chunks(&self, server: ServerId) -> Vec<ChunkHandle> {
        self.0
            .get(&server)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many chunks `server` holds (its load, GFS §4.2).
    fn load(&self, server: ServerId) -> usize {
        self.0.get(&server).map_or(0, BTreeSet::len)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub last_heartbeat_ns: u64,
}

/// The persistent part of the state: what a checkpoint holds (GFS §2.6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Number of log records folded into this checkpoint.
    pub lsn: u64,
    pub next_handle: u64,
    pub files: BTreeMap<String, Vec<ChunkHandle>>,
    pub versions: BTreeMap<ChunkHandle, u64>,
    /// Namespace requests already executed (see [`LogRecord::CreateFile`]).
    #[serde(default)]
    pub answered: Vec<RequestId>,
    /// Highest version offered per chunk, where above its version.
    #[serde(default)]
    pub issued: BTreeMap<ChunkHandle, u64>,
    /// Replicas excluded at each chunk's current version (see [`LogRecord::SetVersion`]).
    #[serde(default)]
    pub excluded: BTreeMap<ChunkHandle, Vec<ServerId>>,
    /// Hidden (deleted) files and when they were deleted.
    pub deleted_at: BTreeMap<String, u64>,
}

/// The answer to a lease request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    pub lease: Lease,
    /// Every replica at the lease's version, primary included.
    pub replicas: Vec<ServerId>,
    /// True when this call granted the lease: the caller must log the version bump and tell the
    /// replicas before telling any client (GFS §4.5).
    pub new: bool,
    /// True when the chunk had version 0: replicas create it empty.
    pub create: bool,
}

/// Leases that were live on a deleted file's chunks, to be revoked.
pub type LiveLeases = Vec<(ChunkHandle, Lease)>;

/// How many replicas a new chunk gets, and how recent a heartbeat makes a server live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub replication: usize,
    pub timeout_ns: u64,
}

/// When and how much to re-replicate (see [`MasterState::clone_orders`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClonePolicy {
    /// Replicas every chunk should have.
    pub target: usize,
    /// A server silent this long is not a copy destination.
    pub timeout_ns: u64,
    /// Time after a lease's expiry before its chunk may be copied.
    pub quiet_ns: u64,
    /// Most orders to return.
    pub max: usize,
}

/// A copy of a replica to make (GFS §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneOrder {
    pub handle: ChunkHandle,
    pub version: u64,
    pub source: ServerId,
    pub dest: ServerId,
    /// Current replicas when the order was made.
    pub replicas: usize,
}

/// What a heartbeat changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// Replicas the server should delete, with the version it reported.
    pub garbage: Vec<(ChunkHandle, u64)>,
    /// Of those, how many are orphans (no file owns the chunk); the rest are stale.
    pub orphans: usize,
    /// Chunks whose version the master raised to what the server reported.
    pub adopted: Vec<(ChunkHandle, u64)>,
    pub records: Vec<LogRecord>,
    /// True the first time this server is heard from (or again after it was declared dead).
    pub new_server: bool,
}

/// Deleted files live on under this prefix until garbage collection (GFS §4.4). Users cannot
/// create or name paths under it.
pub const HIDDEN_PREFIX: &str = "/.deleted/";

pub fn is_hidden(path: &str) -> bool {
    path.starts_with(HIDDEN_PREFIX)
}

/// The hidden name a delete gives `path`: `/.deleted/<n><path>`, `n` the deleting log record's
/// number, so each deletion of a path has a name of its own.
pub fn hidden_name(n: u64, path: &str) -> String {
    format!("{HIDDEN_PREFIX}{n}{path}")
}

/// The number and the original path of a hidden name ([`hidden_name`]'s inverse).
pub fn split_hidden(hidden: &str) -> Option<(u64, &str)> {
    let rest = hidden.strip_prefix(HIDDEN_PREFIX)?;
    let (n, path) = rest.split_at(rest.find('/')?);
    Some((n.parse().ok()?, path))
}

/// A path a client may use: valid, and not in the hidden namespace.
fn validate_user_path(path: &str) -> Result<(), GfsError> {
    validate_path(path)?;
    if is_hidden(path) || path == HIDDEN_PREFIX.trim_end_matches('/') {
        return Err(GfsError::InvalidPath(format!(
            "{path:?}: {HIDDEN_PREFIX} is reserved"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterState {
    files: BTreeMap<String, Vec<ChunkHandle>>,
    /// Hidden files and their deletion times (persistent).
    deleted_at: BTreeMap<String, u64>,
    chunks: BTreeMap<ChunkHandle, ChunkMeta>,
    /// Volatile: the inverse of the chunks' locations.
    held: HeldBy,
    servers: BTreeMap<ServerId, ServerInfo>,
    next_handle: u64,
    lsn: u64,
    /// No lease is granted before this time (see `ClusterConfig::master_grace_ms`).
    grace_until_ns: u64,
    /// A grant commits only if this many replicas took the version (see `settle_grant`).
    min_lease_acks: usize,
    /// Chunks a client asked to mutate while they had too few live replicas for a usable lease,
    /// with when it last asked: re-replication copies them first (volatile).
    blocked: BTreeMap<ChunkHandle, u64>,
    /// Copies ordered and not yet answered (volatile): each chunk's destination. At most one copy
    /// of a chunk runs at a time; a restarted master has none (their answers go nowhere).
    copying: BTreeMap<ChunkHandle, ServerId>,
    /// Chunks whose leases a delete is revoking, with how many deletes are (volatile): no lease of
    /// theirs is extended meanwhile, so a revocation that fails can wait for a known expiry.
    revoking: BTreeMap<ChunkHandle, u32>,
    /// Planted bugs switched on (volatile configuration, not metadata).
    bugs: BTreeSet<Bug>,
    /// User paths deleted since start: only the `gc_deletes_referenced` bug looks at them.
    deleted_paths: BTreeSet<String>,
    /// Answers to namespace requests already executed (successes come from the log, so they
    /// survive a restart), so a client's retry gets the answer instead of a second execution.
    /// Bounded: per client, only the last `REQUEST_WINDOW` request numbers are kept.
    answered: BTreeMap<RequestId, Result<(), GfsError>>,
}

/// How many of a client's most recent namespace requests the master remembers.
pub const REQUEST_WINDOW: u64 = 1024;

impl MasterState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of log records applied so far.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Switches on planted bugs (see [`crate::bugs`]).
    pub fn set_bugs(&mut self, bugs: BTreeSet<Bug>) {
        self.bugs = bugs;
    }

    fn has(&self, b: Bug) -> bool {
        self.bugs.contains(&b)
    }

    /// Sets how many replicas must take a grant's version for it to commit (at least one).
    pub fn set_min_lease_acks(&mut self, n: usize) {
        self.min_lease_acks = n.max(1);
    }

    pub fn set_grace_until(&mut self, until_ns: u64) {
        self.grace_until_ns = until_ns;
    }

    /// Whether every lease a previous incarnation may have granted has run out, and `quiet_ns`
    /// more has passed for mutations in flight under it. Until then a chunk with no lease on
    /// record may still have a primary ordering mutations: copying it would miss them, and a
    /// copy registered as current would lack acknowledged writes (a hot sweep found this: a
    /// master restarted 85 ms after granting a lease, then copied the chunk while its primary
    /// went on writing).
    fn past_grace(&self, now_ns: u64, quiet_ns: u64) -> bool {
        now_ns >= self.grace_until_ns.saturating_add(quiet_ns)
    }

    // ------------------------------------------------------------------ log application

    /// Applies one logged change. Live mutations and replay both come through here.
    pub fn apply(&mut self, rec: &LogRecord) {
        match rec {
            LogRecord::CreateFile { path, request } => {
                let fresh = self.files.insert(path.clone(), Vec::new()).is_none();
                assert!(fresh, "log creates {path} twice");
                if let Some(r) = request {
                    self.remember(*r, Ok(()));
                }
            }
            LogRecord::DeleteFile {
                path,
                hidden,
                deleted_ns,
                request,
            } => {
                if let Some(r) = request {
                    self.remember(*r, Ok(()));
                }
                assert!(is_hidden(hidden), "{hidden} is not a hidden name");
                let chunks = self.files.remove(path);
                let chunks = chunks.unwrap_or_else(|| panic!("log deletes missing {path}"));
                for h in &chunks {
                    self.chunks.get_mut(h).expect("file's chunk exists").path = hidden.clone();
                }
                let fresh = self.files.insert(hidden.clone(), chunks).is_none();
                assert!(fresh, "hidden name {hidden} used twice");
                self.deleted_at.insert(hidden.clone(), *deleted_ns);
            }
            LogRecord::Reclaim { hidden } => {
                assert!(
                    self.deleted_at.remove(hidden).is_some(),
                    "reclaim of {hidden}, not deleted"
                );
                let chunks = self.files.remove(hidden).expect("deleted file exists");
                for h in chunks {
                    if let Some(mut meta) = self.chunks.remove(&h) {
                        self.held.forget(h, &mut meta);
                    }
                    self.blocked.remove(&h);
                }
            }
            LogRecord::AddChunk {
                path,
                index,
                handle,
            } => {
                let chunks = self.files.get_mut(path);
                let chunks = chunks.unwrap_or_else(|| panic!("log adds a chunk to missing {path}"));
                assert_eq!(*index, chunks.len() as u64, "chunks are added in order");
                assert!(
                    handle.0 >= self.next_handle,
                    "chunk handles are never reused"
                );
                chunks.push(*handle);
                self.next_handle = handle.0 + 1;
                self.chunks.insert(
                    *handle,
                    ChunkMeta {
                        path: path.clone(),
                        index: *index,
                        version: 0,
                        issued: 0,
                        version_set_ns: 0,
                        locations: BTreeMap::new(),
                        lease: None,
                        excluded: BTreeSet::new(),
                    },
                );
            }
            LogRecord::SetVersion {
                handle,
                version,
                excluded,
            } => {
                let meta = self.chunks.get_mut(handle);
                let meta = meta.unwrap_or_else(|| panic!("log versions missing chunk {handle}"));
                assert!(
                    *version > meta.version,
                    "chunk {handle} version must grow: {} -> {version}",
                    meta.version
                );
                meta.version = *version;
                meta.issued = meta.issued.max(*version);
                meta.excluded = excluded.iter().copied().collect();
            }
            LogRecord::IssueVersion { handle, version } => {
                let meta = self.chunks.get_mut(handle);
                let meta = meta.unwrap_or_else(|| panic!("log issues for missing chunk {handle}"));
                assert!(
                    *version > meta.issued && *version > meta.version,
                    "chunk {handle}: version {version} issued twice (issued {})",
                    meta.issued
                );
                meta.issued = *version;
            }
        }
        self.lsn += 1;
    }

    /// Remembers the answer to a namespace request (dropping the client's too-old ones).
    pub fn remember(&mut self, request: RequestId, answer: Result<(), GfsError>) {
        let oldest = request.seq.saturating_sub(REQUEST_WINDOW);
        let stale: Vec<RequestId> = self
            .answered
            .range(
                RequestId {
                    client: request.client,
                    seq: 0,
                }..RequestId {
                    client: request.client,
                    seq: oldest,
                },
            )
            .map(|(r, _)| *r)
            .collect();
        for r in stale {
            self.answered.remove(&r);
        }
        self.answered.insert(request, answer);
    }

    /// The answer already given to `request`, if any.
    pub fn answered(&self, request: RequestId) -> Option<Result<(), GfsError>> {
        self.answered.get(&request).cloned()
    }

    fn commit(&mut self, rec: LogRecord, out: &mut Vec<LogRecord>) {
        self.apply(&rec);
        out.push(rec);
    }

    // ------------------------------------------------------------------ checkpoints

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            lsn: self.lsn,
            next_handle: self.next_handle,
            files: self.files.clone(),
            versions: self.chunks.iter().map(|(h, m)| (*h, m.version)).collect(),
            issued: self
                .chunks
                .iter()
                .filter(|(_, m)| m.issued > m.version)
                .map(|(h, m)| (*h, m.issued))
                .collect(),
            excluded: self
                .chunks
                .iter()
                .filter(|(_, m)| !m.excluded.is_empty())
                .map(|(h, m)| (*h, m.excluded.iter().copied().collect()))
                .collect(),
            deleted_at: self.deleted_at.clone(),
            answered: self
                .answered
                .iter()
                .filter(|(_, a)| a.is_ok())
                .map(|(r, _)| *r)
                .collect(),
        }
    }

    pub fn from_checkpoint(cp: &Checkpoint) -> Self {
        let mut state = MasterState {
            lsn: cp.lsn,
            next_handle: cp.next_handle,
            files: cp.files.clone(),
            deleted_at: cp.deleted_at.clone(),
            answered: cp.answered.iter().map(|r| (*r, Ok(()))).collect(),
            ..Default::default()
        };
        for (path, handles) in &cp.files {
            for (index, h) in handles.iter().enumerate() {
                let version = *cp
                    .versions
                    .get(h)
                    .expect("checkpoint has every chunk's version");
                state.chunks.insert(
                    *h,
                    ChunkMeta {
                        path: path.clone(),
                        index: index as u64,
                        version,
                        issued: cp.issued.get(h).copied().unwrap_or(version).max(version),
                        version_set_ns: 0,
                        locations: BTreeMap::new(),
                        lease: None,
                        excluded: cp.excluded.get(h).into_iter().flatten().copied().collect(),
                    },
                );
            }
        }
        state.check_invariants();
        state
    }

    /// The persistent state, for comparing a replayed master with a live one.
    pub fn persistent_eq(&self, other: &MasterState) -> bool {
        self.checkpoint() == other.checkpoint()
    }

    /// Panics if the metadata contradicts itself. Called after loading and before checkpointing.
    pub fn check_invariants(&self) {
        let mut seen = BTreeSet::new();
        for (path, handles) in &self.files {
            for (i, h) in handles.iter().enumerate() {
                assert!(seen.insert(*h), "chunk {h} belongs to two files");
                let meta = self.chunks.get(h);
                let meta = meta.unwrap_or_else(|| panic!("{path} lists unknown chunk {h}"));
                assert_eq!(
                    (&meta.path, meta.index),
                    (path, i as u64),
                    "chunk {h} back-pointer"
                );
                assert!(h.0 < self.next_handle, "chunk {h} at or above next_handle");
            }
        }
        assert_eq!(
            seen.len(),
            self.chunks.len(),
            "chunk table has chunks of no file"
        );
        for hidden in self.deleted_at.keys() {
            assert!(
                is_hidden(hidden) && self.files.contains_key(hidden),
                "bad trash entry {hidden}"
            );
        }
        let mut inverse: BTreeMap<ServerId, BTreeSet<ChunkHandle>> = BTreeMap::new();
        for (h, m) in &self.chunks {
            for s in m.locations.keys() {
                inverse.entry(*s).or_default().insert(*h);
            }
        }
        assert!(
            inverse == self.held.0,
            "the servers' held chunks are not the inverse of the chunks' locations"
        );
        let hidden_files = self.files.keys().filter(|p| is_hidden(p)).count();
        assert_eq!(
            hidden_files,
            self.deleted_at.len(),
            "every hidden file has a deletion time"
        );
    }

    // ------------------------------------------------------------------ namespace (GFS §4.1)

    pub fn create_file(&mut self, path: &str) -> Result<Vec<LogRecord>, GfsError> {
        self.create_file_once(path, None)
    }

    /// Creates `path` for client request `request` (executed at most once per request).
    pub fn create_file_once(
        &mut self,
        path: &str,
        request: Option<RequestId>,
    ) -> Result<Vec<LogRecord>, GfsError> {
        if let Some(answer) = request.and_then(|r| self.answered(r)) {
            return answer.map(|()| Vec::new());
        }
        validate_user_path(path)?;
        if self.files.contains_key(path) {
            return Err(GfsError::AlreadyExists(path.to_string()));
        }
        let mut out = Vec::new();
        self.commit(
            LogRecord::CreateFile {
                path: path.to_string(),
                request,
            },
            &mut out,
        );
        Ok(out)
    }

    /// Deletes a file by renaming it to a hidden name (GFS §4.4); [`MasterState::reclaimable`] names
    /// it once the GC delay has passed. The caller first revokes the leases on its chunks (see
    /// [`MasterState::start_revoking`]), so no primary keeps writing to a deleted file.
    pub fn delete_file(&mut self, path: &str, now_ns: u64) -> Result<Vec<LogRecord>, GfsError> {
        self.delete_file_once(path, now_ns, None)
    }

    /// Deletes `path` for client request `request` (executed at most once per request).
    pub fn delete_file_once(
        &mut self,
        path: &str,
        now_ns: u64,
        request: Option<RequestId>,
    ) -> Result<Vec<LogRecord>, GfsError> {
        if let Some(answer) = request.and_then(|r| self.answered(r)) {
            return answer.map(|()| Vec::new());
        }
        validate_user_path(path)?;
        if !self.files.contains_key(path) {
            return Err(GfsError::NotFound(path.to_string()));
        }
        if self.bugs.contains(&Bug::GcDeletesReferenced) {
            self.deleted_paths.insert(path.to_string());
        }
        let mut out = Vec::new();
        // The next log sequence number makes the hidden name unique.
        let hidden = hidden_name(self.lsn + 1, path);
        let rec = LogRecord::DeleteFile {
            path: path.to_string(),
            hidden,
            deleted_ns: now_ns,
            request,
        };
        self.commit(rec, &mut out);
        Ok(out)
    }

    /// The unexpired leases on `path`'s chunks, which a delete revokes before it logs the deletion
    /// (so that no mutation of the file can be acknowledged after the deletion, nor after the path
    /// is created again). Until [`MasterState::end_revoking`], heartbeats extend none of them.
    pub fn start_revoking(&mut self, path: &str, now_ns: u64) -> Result<LiveLeases, GfsError> {
        let handles = self.chunks_of(path)?.to_vec();
        for h in &handles {
            *self.revoking.entry(*h).or_default() += 1;
        }
        Ok(handles
            .iter()
            .filter_map(|h| {
                let lease = self.chunks[h].lease.as_ref()?.lease;
                (lease.expires_ns > now_ns).then_some((*h, lease))
            })
            .collect())
    }

    /// A delete that called [`MasterState::start_revoking`] on `handles` is done revoking.
    pub fn end_revoking(&mut self, handles: &[ChunkHandle]) {
        for h in handles {
            let n = self.revoking.get_mut(h).expect("started revoking");
            *n -= 1;
            if *n == 0 {
                self.revoking.remove(h);
            }
        }
    }

    /// Hidden files deleted at least `delay_ns` ago, oldest first.
    pub fn reclaimable(&self, now_ns: u64, delay_ns: u64) -> Vec<String> {
        let mut due: Vec<(u64, &String)> = self
            .deleted_at
            .iter()
            .filter(|(_, &t)| t + delay_ns <= now_ns)
            .map(|(h, &t)| (t, h))
            .collect();
        due.sort();
        due.into_iter().map(|(_, h)| h.clone()).collect()
    }

    /// Logs the removal of a hidden file; its chunks are forgotten (orphans from now on).
    pub fn reclaim(&mut self, hidden: &str) -> Vec<LogRecord> {
        let mut out = Vec::new();
        if self.deleted_at.contains_key(hidden) {
            let rec = LogRecord::Reclaim {
                hidden: hidden.to_string(),
            };
            self.commit(rec, &mut out);
        }
        out
    }

    pub fn exists(&self, path: &str) -> bool {
        !is_hidden(path) && self.files.contains_key(path)
    }

    /// Every visible file with its chunks, sorted by path. (Bug `list_shows_hidden`: deleted
    /// files too, under their hidden names.)
    pub fn list(&self) -> Vec<(String, Vec<ChunkHandle>)> {
        let hidden_too = self.has(Bug::ListShowsHidden);
        self.files
            .iter()
            .filter(|(p, _)| hidden_too || !is_hidden(p))
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect()
    }

    /// Hidden (deleted, not yet reclaimed) files.
    pub fn deleted(&self) -> impl Iterator<Item = (&String, &u64)> {
        self.deleted_at.iter()
    }

    /// Every deleted, not yet reclaimed file under its hidden name, with its chunks, sorted by
    /// hidden name (GFS §4.4: such a file can still be read).
    pub fn list_deleted(&self) -> Vec<(String, Vec<ChunkHandle>)> {
        self.deleted_at
            .keys()
            .map(|h| (h.clone(), self.files[h].clone()))
            .collect()
    }

    /// The chunks of a visible file: the path a client mutates or creates.
    pub fn chunks_of(&self, path: &str) -> Result<&[ChunkHandle], GfsError> {
        validate_user_path(path)?;
        self.chunks_of_any(path)
    }

    /// The chunks of a file to read: a visible file, or a deleted one under its hidden name until
    /// it is reclaimed (GFS §4.4). Only reads may name hidden files.
    pub fn chunks_to_read(&self, path: &str) -> Result<&[ChunkHandle], GfsError> {
        // A hidden name is the user's path under a prefix, so it may be longer than a user path
        // may be; it is only looked up, never created by a client.
        if !is_hidden(path) {
            validate_path(path)?;
        }
        self.chunks_of_any(path)
    }

    fn chunks_of_any(&self, path: &str) -> Result<&[ChunkHandle], GfsError> {
        self.files
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| GfsError::NotFound(path.to_string()))
    }

    pub fn chunk(&self, handle: ChunkHandle) -> Option<&ChunkMeta> {
        self.chunks.get(&handle)
    }

    pub fn chunk_table(&self) -> impl Iterator<Item = (&ChunkHandle, &ChunkMeta)> {
        self.chunks.iter()
    }

    /// Replica locations of a chunk at its current version, sorted.
    pub fn replicas(&self, handle: ChunkHandle) -> Vec<ServerId> {
        self.chunks
            .get(&handle)
            .map(|m| m.locations.keys().copied().collect())
            .unwrap_or_default()
    }

    // ------------------------------------------------------------------ chunk creation (GFS §4.2)

    /// Servers heard from within `timeout_ns`.
    pub fn live_servers(&self, now_ns: u64, timeout_ns: u64) -> Vec<ServerId> {
        self.servers
            .iter()
            .filter(|(_, s)| s.last_heartbeat_ns + timeout_ns > now_ns)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Chooses up to `n` distinct live servers, least loaded first, ties broken by `rng`
    /// (GFS §4.2: spread replicas, balance disk use).
    pub fn place(
        &self,
        n: usize,
        now_ns: u64,
        timeout_ns: u64,
        rng: &mut impl Rng,
    ) -> Vec<ServerId> {
        let mut live = self.live_servers(now_ns, timeout_ns);
        live.shuffle(rng);
        live.sort_by_cached_key(|s| self.held.load(*s));
        live.truncate(n);
        live.sort();
        live
    }

    /// Makes sure `path` has a chunk at `index`, allocating it and any missing chunk before it.
    /// A new chunk has version 0 and no replicas: nothing has been written to it, so it reads as
    /// a hole. Its replicas are placed, and created empty, by its first lease grant.
    pub fn ensure_chunk(
        &mut self,
        path: &str,
        index: u64,
    ) -> Result<(ChunkHandle, Vec<LogRecord>), GfsError> {
        let have = self.chunks_of(path)?.len() as u64;
        let mut out = Vec::new();
        for i in have..=index {
            let handle = ChunkHandle(self.next_handle);
            let rec = LogRecord::AddChunk {
                path: path.to_string(),
                index: i,
                handle,
            };
            self.commit(rec, &mut out);
        }
        Ok((self.files[path][index as usize], out))
    }

    // ------------------------------------------------------------------ leases (GFS §3.1, §4.5)

    /// Returns the chunk's current lease, or starts granting a new one: a random up-to-date
    /// replica becomes primary at the next version. Refuses while an unexpired lease is held by
    /// anyone, which is what keeps two primaries from coexisting.
    ///
    /// A new grant is recorded (so no one else can be granted the chunk) but the version is not
    /// bumped yet: the caller tells the replicas the new version and then calls
    /// [`MasterState::settle_grant`], which logs the bump only if some replica took it. Replicas may
    /// thus be ahead of the master, never behind it, and GFS §4.5 already has the master adopt a
    /// higher version it hears of. The other order could lose data: a bump logged when no replica
    /// can be told would leave every replica looking stale.
    ///
    /// A chunk's first grant (version 0) also places its `replication` replicas (GFS §4.2).
    pub fn grant_lease(
        &mut self,
        handle: ChunkHandle,
        now_ns: u64,
        lease_ns: u64,
        placement: Placement,
        rng: &mut impl Rng,
    ) -> Result<(LeaseGrant, Vec<LogRecord>), GfsError> {
        let early = self.has(Bug::EarlyLease);
        let no_bump = self.has(Bug::NoVersionBump);
        let meta = self.chunks.get(&handle).ok_or(GfsError::NoSuchChunk)?;
        if let Some(holder) = &meta.lease {
            // (Bug `early_lease`: a held lease does not stop a new grant.)
            if holder.lease.expires_ns > now_ns && !early {
                let (lease, replicas) = (holder.lease, holder.replicas.clone());
                let grant = LeaseGrant {
                    lease,
                    replicas,
                    new: false,
                    create: false,
                };
                return Ok((grant, Vec::new()));
            }
        }
        if now_ns < self.grace_until_ns {
            return Err(GfsError::Unavailable(
                "master is recovering; no leases yet".into(),
            ));
        }
        // A chunk's first grant places its replicas (GFS §4.2). The placement becomes the chunk's
        // locations only if the grant goes ahead: a refused grant must not leave the master
        // counting replicas that no server was ever told of (they would skew every later
        // placement until the servers' next heartbeats dropped them).
        let create = meta.version == 0;
        let replicas: Vec<ServerId> = if create {
            self.place(placement.replication, now_ns, placement.timeout_ns, rng)
        } else {
            meta.locations.keys().copied().collect()
        };
        if replicas.is_empty() {
            return Err(GfsError::Unavailable(format!(
                "no live replica of chunk {handle}"
            )));
        }
        // A lease fewer replicas than `min_lease_acks` could take would be unusable (see
        // `settle_grant`). Granting it anyway would bump the version for nothing and, with every
        // client asking again, keep the chunk from ever being quiet enough to copy (GFS §4.3). So
        // refuse, and have re-replication copy this chunk first.
        if replicas.len() < self.min_lease_acks && !early {
            self.blocked.insert(handle, now_ns);
            return Err(GfsError::Unavailable(format!(
                "chunk {handle} has {} live replicas, a lease needs {}: waiting for re-replication",
                replicas.len(),
                self.min_lease_acks
            )));
        }
        self.blocked.remove(&handle);
        if create {
            let meta = self.chunks.get_mut(&handle).expect("exists");
            self.held
                .replace(handle, meta, replicas.iter().copied(), now_ns);
        }
        let meta = &self.chunks[&handle];
        let primary = *replicas.choose(rng).expect("non-empty");
        let mut out = Vec::new();
        let version = if no_bump && !create {
            meta.version // bug `no_version_bump`: the same version again
        } else {
            let version = meta.issued + 1;
            self.commit(LogRecord::IssueVersion { handle, version }, &mut out);
            version
        };
        let meta = self.chunks.get_mut(&handle).expect("exists");
        let lease = Lease {
            primary,
            version,
            expires_ns: now_ns + lease_ns,
        };
        let holder = LeaseHolder {
            lease,
            replicas: replicas.clone(),
            settled: false,
        };
        let old = meta.lease.replace(holder);
        assert!(
            early || old.is_none_or(|o| o.lease.expires_ns <= now_ns),
            "granted a lease on {handle} while another was live"
        );
        Ok((
            LeaseGrant {
                lease,
                replicas,
                new: true,
                create,
            },
            out,
        ))
    }

    /// Extends the lease if `server` still holds it at `version` (GFS §3.1: extensions piggyback on
    /// heartbeats). Returns the new expiry.
    pub fn extend_lease(
        &mut self,
        handle: ChunkHandle,
        server: ServerId,
        version: u64,
        now_ns: u64,
        lease_ns: u64,
    ) -> Option<u64> {
        let meta = self.chunks.get_mut(&handle)?;
        if is_hidden(&meta.path) || self.revoking.contains_key(&handle) {
            return None; // a deleted file's chunk: its lease was revoked, or runs out
        }
        let holder = meta.lease.as_mut()?;
        // A replica of the lease that is no longer a location (found corrupt, declared dead,
        // dropped) fails every mutation the primary forwards: let the lease run out, so the next
        // grant is made with the replicas there are. (The paper keeps extending while the primary
        // mutates, §3.1; a lease whose mutations can no longer succeed would then live forever.)
        if holder
            .replicas
            .iter()
            .any(|s| !meta.locations.contains_key(s))
        {
            return None;
        }
        let lease = &mut holder.lease;
        if lease.primary != server || lease.version != version || meta.version != version {
            return None;
        }
        if lease.expires_ns <= now_ns {
            return None;
        }
        let expires = now_ns + lease_ns;
        assert!(
            expires >= lease.expires_ns,
            "an extension never shortens a lease"
        );
        lease.expires_ns = expires;
        Some(expires)
    }

    /// Leases still on record that ran out at or before `now_ns` (GFS §3.1: only then may another
    /// replica be granted one). Nothing is removed: the next grant replaces them.
    pub fn expired_leases(&self, now_ns: u64) -> Vec<(ChunkHandle, Lease)> {
        self.chunks
            .iter()
            .filter_map(|(h, m)| Some((*h, m.lease.as_ref()?.lease)))
            .filter(|(_, l)| l.expires_ns <= now_ns)
            .collect()
    }

    /// Whether the lease `lease` on `handle` may be handed to clients: settled, committed, and
    /// taken by enough replicas.
    pub fn lease_usable(&self, handle: ChunkHandle, lease: &Lease) -> bool {
        self.chunks.get(&handle).is_some_and(|m| {
            m.version == lease.version
                && m.lease.as_ref().is_some_and(|h| {
                    h.settled && h.lease == *lease && h.replicas.len() >= self.min_lease_acks.max(1)
                })
        })
    }

    /// Records which replicas took a newly granted version (`acked`) and, if any did, logs the
    /// version bump (GFS §4.5). The lease's replica set shrinks to those that took it; the others
    /// are excluded at the new version: if one took it after all, it still misses every mutation
    /// of the lease. If none took it, nothing changes but the (unusable) lease record, which must
    /// stay until it expires because the primary may hold it after all.
    pub fn settle_grant(
        &mut self,
        handle: ChunkHandle,
        lease: Lease,
        acked: &[ServerId],
        now_ns: u64,
    ) -> Option<Vec<LogRecord>> {
        assert!(
            self.ruled_out(handle, acked).is_empty(),
            "chunk {handle}: a grant must leave out the replicas ruled out while it was in flight"
        );
        let mut out = Vec::new();
        let min_acks = self.min_lease_acks.max(1);
        // None: the chunk was reclaimed, or the grant was superseded, meanwhile.
        let meta = self.chunks.get_mut(&handle)?;
        let same = |h: &&mut LeaseHolder| {
            h.lease.version == lease.version && h.lease.primary == lease.primary
        };
        let holder = meta.lease.as_mut().filter(same)?;
        holder.settled = true;
        let failed: Vec<ServerId> = holder
            .replicas
            .iter()
            .copied()
            .filter(|s| !acked.contains(s))
            .collect();
        holder.replicas.retain(|s| acked.contains(s));
        // Fewer than `min_lease_acks` replicas: the grant is not committed and the lease stays
        // unusable, so no mutation is ever acknowledged by fewer replicas than that. (A departure
        // from the paper, which lets a primary carry on with whatever secondaries it has: with a
        // disk that can rot, a mutation held by one replica can be lost.) The replicas that took
        // the version are merely ahead; they keep the current version's bytes.
        if acked.len() < min_acks {
            holder.replicas.clear();
            return Some(out);
        }
        if meta.version >= lease.version {
            return Some(out); // nothing to commit (only the `no_version_bump` bug grants so)
        }
        self.commit(
            LogRecord::SetVersion {
                handle,
                version: lease.version,
                excluded: failed,
            },
            &mut out,
        );
        let meta = self.chunks.get_mut(&handle).expect("exists");
        meta.version_set_ns = now_ns;
        self.held
            .replace(handle, meta, acked.iter().copied(), now_ns);
        Some(out)
    }

    /// Those of `servers` the master has ruled out of `handle` (reported corrupt, GFS §5.2): taking
    /// a new version does not mend a replica's bytes, so a grant must leave them out
    /// ([`MasterState::settle_grant`] asserts it). A location is never ruled out, so a grant's
    /// replica is one only if it was reported during the grant, or if the chunk was never
    /// committed and its fresh placement picked a server ruled out by an earlier failed grant.
    pub fn ruled_out(&self, handle: ChunkHandle, servers: &[ServerId]) -> Vec<ServerId> {
        let Some(meta) = self.chunks.get(&handle) else {
            return Vec::new();
        };
        servers
            .iter()
            .copied()
            .filter(|s| meta.excluded.contains(s))
            .collect()
    }

    // ------------------------------------------------------------------ re-replication (GFS §4.3)

    /// Chooses up to `max` chunks to copy, most endangered first (fewest replicas; among equals,
    /// those clients are blocked on, GFS §4.3): chunks of visible files with at least one but fewer
    /// than `target` current replicas, not already being copied ([`MasterState::start_clone`]),
    /// and whose last lease expired at least `quiet_ns` ago.
    ///
    /// The quiet period is what makes a copy complete: a mutation is acknowledged only if it
    /// finished within a client's RPC timeout of being sent, and the primary only starts one while
    /// its lease is valid, so `quiet_ns` >= that timeout guarantees every acknowledged mutation of
    /// the version is on the source before the copy is taken. If a new lease is granted while the
    /// copy runs, the version changes and [`MasterState::finish_clone`] discards the copy.
    pub fn clone_orders(
        &self,
        now_ns: u64,
        policy: ClonePolicy,
        rng: &mut impl Rng,
    ) -> Vec<CloneOrder> {
        let ClonePolicy {
            target,
            timeout_ns,
            quiet_ns,
            max,
        } = policy;
        let live = self.live_servers(now_ns, timeout_ns);
        let after_grace = self.past_grace(now_ns, quiet_ns);
        // (Bug `copies_at_goal`: a chunk that has its goal of replicas still counts as short.)
        let short = |have: usize| {
            have < target || (self.bugs.contains(&Bug::CopiesAtGoal) && have == target)
        };
        let mut needy: Vec<(usize, bool, ChunkHandle)> = self
            .chunks
            .iter()
            .filter(|(h, m)| {
                after_grace
                    && !self.copying.contains_key(h)
                    && !is_hidden(&m.path)
                    && m.version > 0
                    && !m.locations.is_empty()
                    && short(m.locations.len())
                    && m.lease
                        .as_ref()
                        .is_none_or(|l| l.lease.expires_ns + quiet_ns <= now_ns)
            })
            .map(|(h, m)| (m.locations.len(), !self.blocked.contains_key(h), *h))
            .collect();
        needy.sort();
        let mut load: BTreeMap<ServerId, usize> =
            live.iter().map(|s| (*s, self.held.load(*s))).collect();
        if needy.len() > max {
            crate::coverage::hit(crate::coverage::Probe::CloneLimitReached);
        }
        let mut orders = Vec::new();
        for (have, _, handle) in needy.into_iter().take(max) {
            let meta = &self.chunks[&handle];
            let mut dests: Vec<ServerId> = live
                .iter()
                .copied()
                .filter(|s| !meta.locations.contains_key(s))
                .collect();
            // A server excluded at this version holds a copy that missed mutations; a fresh copy
            // replaces it, but servers without one are preferred.
            dests.shuffle(rng);
            dests.sort_by_key(|s| (meta.excluded.contains(s), load[s]));
            let Some(&dest) = dests.first() else { continue };
            *load.get_mut(&dest).expect("live") += 1;
            let mut sources: Vec<ServerId> = meta.locations.keys().copied().collect();
            if self.bugs.contains(&Bug::CloneFromStale) {
                sources.extend(meta.excluded.iter().copied()); // bug: stale copies as sources
            }
            let source = *sources.choose(rng).expect("non-empty");
            orders.push(CloneOrder {
                handle,
                version: meta.version,
                source,
                dest,
                replicas: have,
            });
        }
        orders
    }
    /// Drops replicas above `target` from chunks whose last lease is quiet (GFS §4.3: the master
    /// also removes replicas, e.g. when a server it had given up on comes back after the chunk was
    /// re-copied). The most loaded server's replica goes first. A dropped replica is excluded at
    /// its version, so its server deletes it at its next heartbeat. Returns what was dropped.
    pub fn trim_excess(
        &mut self,
        now_ns: u64,
        target: usize,
        quiet_ns: u64,
    ) -> Vec<(ChunkHandle, ServerId)> {
        let mut load: BTreeMap<ServerId, usize> =
            self.held.0.iter().map(|(s, h)| (*s, h.len())).collect();
        let mut dropped = Vec::new();
        let after_grace = self.past_grace(now_ns, quiet_ns);
        for (h, m) in self.chunks.iter_mut() {
            let quiet = after_grace
                && m.lease
                    .as_ref()
                    .is_none_or(|l| l.lease.expires_ns + quiet_ns <= now_ns);
            if is_hidden(&m.path) || !quiet || m.locations.len() <= target {
                continue;
            }
            let mut servers: Vec<ServerId> = m.locations.keys().copied().collect();
            servers.sort_by_key(|s| std::cmp::Reverse((load[s], *s)));
            for s in servers.into_iter().take(m.locations.len() - target) {
                self.held.remove(*h, m, s);
                m.excluded.insert(s);
                *load.get_mut(&s).expect("counted") -= 1;
                dropped.push((*h, s));
            }
        }
        dropped
    }

    /// Records that `order` was sent: until it is answered ([`MasterState::finish_clone`],
    /// [`MasterState::abandon_clone`]), the chunk gets no other copy, and a heartbeat of the
    /// destination that reports the chunk at the copy's version is not judged (see
    /// [`MasterState::heartbeat`]).
    pub fn start_clone(&mut self, order: &CloneOrder) {
        let earlier = self.copying.insert(order.handle, order.dest);
        assert!(
            earlier.is_none(),
            "chunk {}: a second copy ordered while one runs",
            order.handle
        );
    }

    /// How many copies run (ordered, not yet answered).
    pub fn copies_in_flight(&self) -> usize {
        self.copying.len()
    }

    /// A copy failed or was not answered: the chunk may be copied again.
    pub fn abandon_clone(&mut self, order: &CloneOrder) {
        self.copying.remove(&order.handle);
    }

    /// Records a finished copy: `dest` becomes a replica if the chunk is still at `version`.
    pub fn finish_clone(&mut self, order: &CloneOrder, now_ns: u64) -> bool {
        self.copying.remove(&order.handle);
        let Some(meta) = self.chunks.get_mut(&order.handle) else {
            return false; // reclaimed meanwhile
        };
        if meta.version != order.version {
            return false; // a lease was granted meanwhile: the copy may miss its mutations
        }
        self.held.set(order.handle, meta, order.dest, now_ns);
        meta.excluded.remove(&order.dest);
        true
    }

    /// A chunkserver found a block of its replica failing its checksum (GFS §5.2): the replica is
    /// no longer a location, and counts as stale at this version so heartbeats get it deleted.
    pub fn report_bad_replica(
        &mut self,
        handle: ChunkHandle,
        server: ServerId,
        version: u64,
    ) -> bool {
        let Some(meta) = self.chunks.get_mut(&handle) else {
            return false;
        };
        // A current replica: at the committed version, or ahead of it by an uncommitted grant.
        if version < meta.version || version > meta.issued.max(meta.version) {
            return false;
        }
        self.held.remove(handle, meta, server);
        meta.excluded.insert(server)
    }

    // ------------------------------------------------------------------ heartbeats (GFS §4.5)

    /// Folds in a chunkserver's report of its replicas, taken at `snapshot_ns`.
    pub fn heartbeat(
        &mut self,
        server: ServerId,
        now_ns: u64,
        snapshot_ns: u64,
        reports: &[(ChunkHandle, u64)],
        timeout_ns: u64,
    ) -> HeartbeatOutcome {
        let mut outcome = HeartbeatOutcome::default();
        let previous = self.servers.insert(
            server,
            ServerInfo {
                last_heartbeat_ns: now_ns,
            },
        );
        outcome.new_server = previous.is_none_or(|p| p.last_heartbeat_ns + timeout_ns <= now_ns);
        let reported: BTreeSet<ChunkHandle> = reports.iter().map(|(h, _)| *h).collect();
        for &(handle, version) in reports {
            let Some(meta) = self.chunks.get_mut(&handle) else {
                outcome.garbage.push((handle, version)); // an orphan: no file owns it
                outcome.orphans += 1;
                continue;
            };
            // A grant in flight may have told this server a version the master has not logged yet.
            let being_told = meta.lease.as_ref().is_some_and(|h| {
                !h.settled && h.lease.version == version && h.replicas.contains(&server)
            });
            if being_told {
                continue;
            }
            if version < meta.version && self.bugs.contains(&Bug::StaleReplicasCurrent) {
                self.held.set(handle, meta, server, now_ns); // bug: an old version counts as current
            } else if self.bugs.contains(&Bug::GcDeletesReferenced)
                && self.deleted_paths.contains(&meta.path)
            {
                // Bug: every chunk of a path that was ever deleted is garbage, even the new file's.
                self.held.remove(handle, meta, server);
                outcome.garbage.push((handle, version));
            } else if version < meta.version {
                // Stale, unless the report predates the bump or the server acknowledged the new
                // version after the report was taken.
                let predates_bump = snapshot_ns < meta.version_set_ns;
                let acked_since = meta
                    .locations
                    .get(&server)
                    .is_some_and(|&c| c >= snapshot_ns);
                if !(predates_bump || acked_since) {
                    self.held.remove(handle, meta, server);
                    outcome.garbage.push((handle, version));
                }
            } else if version == meta.version
                && meta.excluded.contains(&server)
                && self.copying.get(&handle) == Some(&server)
            {
                // A copy ordered to replace this excluded replica, which the server may have
                // made already (the report cannot tell): judged once the copy is answered.
                // Calling it garbage would have the server delete the good copy (found by the
                // check `deletes_only_garbage`).
            } else if version == meta.version && meta.excluded.contains(&server) {
                outcome.garbage.push((handle, version)); // took the version, missed its mutations
            } else if version == meta.version {
                self.held.confirm(handle, meta, server, now_ns);
            } else if version <= meta.issued {
                // It took a grant that was never committed: no mutation happened under it, so
                // its bytes are the current version's. Current, unless excluded at that version.
                if meta.excluded.contains(&server) {
                    outcome.garbage.push((handle, version));
                } else {
                    self.held.confirm(handle, meta, server, now_ns);
                }
            } else {
                // Ahead of anything this master issued: it lost a record. The replica's version
                // wins (GFS §4.5); others are now stale. (Versions are issued durably before
                // they are sent, so this is a last line of defence.)
                self.commit(
                    LogRecord::SetVersion {
                        handle,
                        version,
                        excluded: Vec::new(),
                    },
                    &mut outcome.records,
                );
                let meta = self.chunks.get_mut(&handle).expect("exists");
                meta.version_set_ns = now_ns;
                self.held.replace(handle, meta, [server], now_ns);
                meta.excluded.clear();
                meta.lease = None;
                outcome.adopted.push((handle, version));
                crate::coverage::hit(crate::coverage::Probe::VersionAdopted);
            }
        }
        // Locations the server no longer reports (and that were confirmed before the snapshot).
        for handle in self.held.chunks(server) {
            if reported.contains(&handle) {
                continue;
            }
            let meta = self.chunks.get_mut(&handle).expect("held chunks exist");
            if meta.locations[&server] < snapshot_ns {
                self.held.remove(handle, meta, server);
            }
        }
        outcome
    }

    /// Declares servers silent for `timeout_ns` dead and drops their locations. Returns them.
    pub fn expire_servers(&mut self, now_ns: u64, timeout_ns: u64) -> Vec<ServerId> {
        let dead: Vec<ServerId> = self
            .servers
            .iter()
            .filter(|(_, s)| s.last_heartbeat_ns + timeout_ns <= now_ns)
            .map(|(id, _)| *id)
            .collect();
        for &id in &dead {
            self.servers.remove(&id);
            for handle in self.held.chunks(id) {
                let meta = self.chunks.get_mut(&handle).expect("held chunks exist");
                self.held.remove(handle, meta, id);
            }
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const MS: u64 = 1_000_000;
    const LEASE: u64 = 1_000 * MS;
    const TIMEOUT: u64 = 1_000 * MS;
    const PLACE: Placement = Placement {
        replication: 3,
        timeout_ns: TIMEOUT,
    };

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    /// A master that has heard from `n` servers at time 0.
    fn master_with(n: u32) -> MasterState {
        let mut m = MasterState::new();
        for s in 0..n {
            m.heartbeat(ServerId(s), 0, 0, &[], TIMEOUT);
        }
        m
    }

    /// Grants a lease and settles it as if every replica took the new version.
    fn grant_all(
        m: &mut MasterState,
        h: ChunkHandle,
        now: u64,
        r: &mut impl Rng,
    ) -> (LeaseGrant, Vec<LogRecord>) {
        let (g, mut recs) = m.grant_lease(h, now, LEASE, PLACE, r).unwrap();
        if g.new {
            let acked = g.replicas.clone();
            recs.extend(m.settle_grant(h, g.lease, &acked, now).unwrap());
        }
        (g, recs)
    }

    /// A master of `n` servers with file `/f` whose first chunk was granted a lease at 1 ms.
    fn one_leased_chunk(n: u32) -> (MasterState, rand::rngs::StdRng, ChunkHandle, LeaseGrant) {
        let mut m = master_with(n);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        let (g, _) = grant_all(&mut m, h, MS, &mut r);
        (m, r, h, g)
    }

    /// Registers that the replicas took the new version, as the shell does after SetVersion.
    fn confirm(m: &mut MasterState, h: ChunkHandle, now: u64) {
        let replicas = m.replicas(h);
        let v = m.chunk(h).unwrap().version;
        for s in replicas {
            m.heartbeat(s, now, now, &[(h, v)], TIMEOUT);
        }
    }

    #[test]
    fn placement_uses_distinct_live_servers_and_spreads_load() {
        let mut m = master_with(5);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let mut per_server = BTreeMap::<ServerId, usize>::new();
        for i in 0..10 {
            let (h, _) = m.ensure_chunk("/f", i).unwrap();
            assert!(m.replicas(h).is_empty(), "placed at the first grant");
            let (grant, _) = grant_all(&mut m, h, MS, &mut r);
            let replicas = m.replicas(h);
            assert_eq!(grant.replicas, replicas);
            assert_eq!(replicas.len(), 3, "three replicas");
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "on distinct servers: {replicas:?}");
            for s in replicas {
                *per_server.entry(s).or_default() += 1;
            }
        }
        // 30 replicas over 5 servers, least-loaded first: exactly 6 each.
        assert!(per_server.values().all(|&n| n == 6), "{per_server:?}");
        // A server silent past the timeout is not chosen.
        let later = TIMEOUT + MS;
        for s in 0..4 {
            m.heartbeat(ServerId(s), later, later, &[], TIMEOUT);
        }
        assert!(!m.place(5, later, TIMEOUT, &mut r).contains(&ServerId(4)));
    }

    #[test]
    fn a_lease_too_few_replicas_could_take_is_refused_and_its_chunk_copied_first() {
        let mut m = master_with(4);
        m.set_min_lease_acks(2);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (a, _) = m.ensure_chunk("/f", 0).unwrap();
        let (b, _) = m.ensure_chunk("/f", 1).unwrap();
        for h in [a, b] {
            grant_all(&mut m, h, MS, &mut r);
            confirm(&mut m, h, MS);
        }
        // Both chunks lose all replicas but one (their servers fall silent).
        let later = 3 * LEASE;
        for (h, keep) in [(a, m.replicas(a)[0]), (b, m.replicas(b)[0])] {
            let v = m.chunk(h).unwrap().version;
            m.heartbeat(keep, later, later, &[(h, v)], TIMEOUT);
        }
        let live: BTreeSet<ServerId> = [m.replicas(a)[0], m.replicas(b)[0]].into();
        let dead = m.expire_servers(later + MS, TIMEOUT);
        assert!(dead.iter().all(|s| !live.contains(s)), "{dead:?}");
        assert_eq!((m.replicas(a).len(), m.replicas(b).len()), (1, 1));
        // A client asks to mutate chunk b: no grant, no version issued, no lease record.
        let issued = m.chunk(b).unwrap().issued;
        let err = m
            .grant_lease(b, later + 2 * MS, LEASE, PLACE, &mut r)
            .unwrap_err();
        assert!(
            matches!(&err, GfsError::Unavailable(why) if why.contains("waiting for re-replication")),
            "{err:?}"
        );
        assert_eq!(m.chunk(b).unwrap().issued, issued);
        assert!(m
            .chunk(b)
            .unwrap()
            .lease
            .as_ref()
            .is_none_or(|l| l.lease.expires_ns <= later));
        // Both have one replica; the one a client waits for is copied first.
        let policy = ClonePolicy {
            target: 3,
            timeout_ns: TIMEOUT,
            quiet_ns: 0,
            max: 1,
        };
        let orders = m.clone_orders(later + 3 * MS, policy, &mut r);
        assert_eq!(orders.iter().map(|o| o.handle).collect::<Vec<_>>(), [b]);
        // Without the block, the lower handle would have gone first.
        let mut unblocked = m.clone();
        unblocked.blocked.clear();
        let orders = unblocked.clone_orders(later + 3 * MS, policy, &mut r);
        assert_eq!(orders.iter().map(|o| o.handle).collect::<Vec<_>>(), [a]);
        // A restarted master copies nothing until a previous life's leases have run out and gone
        // quiet: it has no record of them.
        let mut restarted = m.clone();
        restarted.set_grace_until(later + 10 * MS);
        let quiet = ClonePolicy {
            quiet_ns: 5 * MS,
            ..policy
        };
        let copy = |m: &MasterState, t| m.clone_orders(t, quiet, &mut r.clone());
        assert!(copy(&restarted, later + 14 * MS).is_empty());
        assert_eq!(copy(&restarted, later + 15 * MS).len(), 1);
    }

    #[test]
    fn allocation_fills_holes_and_grants_are_refused_without_servers() {
        let mut m = master_with(3);
        m.create_file("/f").unwrap();
        let (h, recs) = m.ensure_chunk("/f", 2).unwrap();
        assert_eq!(recs.len(), 3, "chunks 0, 1 and 2 are allocated");
        assert_eq!(m.chunks_of("/f").unwrap()[2], h);
        assert!(m
            .chunks_of("/f")
            .unwrap()
            .iter()
            .all(|c| m.chunk(*c).unwrap().version == 0));
        let mut empty = MasterState::new();
        empty.create_file("/g").unwrap();
        let (g, _) = empty.ensure_chunk("/g", 0).unwrap();
        let err = empty
            .grant_lease(g, MS, LEASE, PLACE, &mut rng())
            .unwrap_err();
        assert!(matches!(err, GfsError::Unavailable(_)));
        assert!(matches!(
            m.ensure_chunk("/nope", 0),
            Err(GfsError::NotFound(_))
        ));
    }

    #[test]
    fn a_refused_first_grant_places_nothing() {
        // One live server, and a lease needs two: the chunk's first grant is refused.
        let mut m = master_with(1);
        m.set_min_lease_acks(2);
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        let err = m.grant_lease(h, MS, LEASE, PLACE, &mut rng()).unwrap_err();
        assert!(matches!(err, GfsError::Unavailable(_)), "{err:?}");
        // The server was never told of the chunk: the master must not count it there (it would
        // weigh on every placement until the server's next heartbeat).
        assert!(m.replicas(h).is_empty(), "{:?}", m.replicas(h));
        assert_eq!(m.held.load(ServerId(0)), 0);
        m.check_invariants();
        // Once a second server joins, the grant places the chunk on both.
        m.heartbeat(ServerId(1), 2 * MS, 2 * MS, &[], TIMEOUT);
        let (grant, _) = grant_all(&mut m, h, 3 * MS, &mut rng());
        assert_eq!(grant.replicas, [ServerId(0), ServerId(1)]);
        assert_eq!(m.replicas(h), [ServerId(0), ServerId(1)]);
    }

    #[test]
    fn lease_grant_bumps_version_and_excludes_a_second_primary_until_expiry() {
        let mut m = master_with(5);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        assert_eq!(m.chunk(h).unwrap().version, 0);

        let (g1, recs) = grant_all(&mut m, h, 10 * MS, &mut r);
        assert!(g1.new && g1.create);
        assert_eq!(g1.lease.version, 1);
        assert_eq!(
            recs,
            vec![
                LogRecord::IssueVersion {
                    handle: h,
                    version: 1
                },
                LogRecord::SetVersion {
                    handle: h,
                    version: 1,
                    excluded: vec![],
                }
            ]
        );
        assert!(g1.replicas.contains(&g1.lease.primary));
        assert_eq!(g1.lease.expires_ns, 10 * MS + LEASE);
        confirm(&mut m, h, 11 * MS);

        // While the lease is live, every request gets the same primary and no bump.
        for t in [20 * MS, 500 * MS, 10 * MS + LEASE - 1] {
            let (g, recs) = grant_all(&mut m, h, t, &mut r);
            assert!(!g.new && recs.is_empty());
            assert_eq!(g.lease, g1.lease);
        }
        assert!(m.expired_leases(10 * MS + LEASE - 1).is_empty());
        // After expiry a new lease comes with a new version.
        let t = 10 * MS + LEASE;
        assert_eq!(m.expired_leases(t), vec![(h, g1.lease)]);
        let (g2, recs) = grant_all(&mut m, h, t, &mut r);
        assert!(g2.new && !g2.create);
        assert_eq!(g2.lease.version, 2);
        assert_eq!(
            recs,
            vec![
                LogRecord::IssueVersion {
                    handle: h,
                    version: 2
                },
                LogRecord::SetVersion {
                    handle: h,
                    version: 2,
                    excluded: vec![],
                }
            ]
        );
        assert_eq!(m.chunk(h).unwrap().version, 2);
    }

    #[test]
    fn a_grant_no_replica_took_changes_no_version() {
        let mut m = master_with(3);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        grant_all(&mut m, h, MS, &mut r);
        let t = MS + LEASE;
        let g = m.grant_lease(h, t, LEASE, PLACE, &mut r).unwrap().0;
        assert_eq!(g.lease.version, 2);
        assert!(
            m.settle_grant(h, g.lease, &[], t + MS).unwrap().is_empty(),
            "nothing to log"
        );
        assert_eq!(m.chunk(h).unwrap().version, 1);
        // Version 2 stays issued in a checkpoint taken now, so a master restarted from it never
        // offers 2 again (a replica may have taken it).
        let restored = MasterState::from_checkpoint(&m.checkpoint());
        assert_eq!(restored.chunk(h).unwrap().issued, 2);
        // The replicas at version 1 are still current, not stale.
        let out = m.heartbeat(ServerId(0), t + 2 * MS, t + 2 * MS, &[(h, 1)], TIMEOUT);
        assert!(out.garbage.is_empty());
        assert_eq!(m.replicas(h).len(), 3);
        // Until the unusable lease expires, it is what every request gets: no second primary.
        let again = m
            .grant_lease(h, t + 3 * MS, LEASE, PLACE, &mut r)
            .unwrap()
            .0;
        assert!(!again.new && again.replicas.is_empty());
        // A replica that did take version 2 (its answer was lost) has the bytes of version 1, as
        // no mutation happened under the failed grant: it stays a current replica.
        let out = m.heartbeat(ServerId(1), t + LEASE, t + LEASE, &[(h, 2)], TIMEOUT);
        assert!(out.adopted.is_empty() && out.garbage.is_empty());
        assert_eq!(m.replicas(h).len(), 3);
        // The next grant offers version 3: version 2 is never offered again.
        let (next, recs) = m
            .grant_lease(h, t + LEASE + MS, LEASE, PLACE, &mut r)
            .unwrap();
        assert_eq!(next.lease.version, 3);
        assert_eq!(
            recs,
            vec![LogRecord::IssueVersion {
                handle: h,
                version: 3
            }]
        );
    }

    /// Found by the check `copies_prompt`: a replica reported corrupt between a grant's offer and
    /// its settling took the new version and was made a location again, so the master counted a
    /// corrupt replica as current (and copied from it) instead of replacing it.
    #[test]
    fn a_replica_reported_corrupt_during_a_grant_is_left_out_of_it() {
        let (mut m, mut r, h, _) = one_leased_chunk(4);
        confirm(&mut m, h, LEASE);
        let t = LEASE + 2 * MS;
        let (g, _) = m.grant_lease(h, t, LEASE, PLACE, &mut r).unwrap();
        assert!(g.new && g.lease.version == 2);
        let bad = g.replicas[1];
        // While the grant is in flight, one of its replicas reports a corrupt block.
        assert!(m.report_bad_replica(h, bad, 1));
        assert_eq!(m.ruled_out(h, &g.replicas), vec![bad]);
        // The others took version 2; the corrupt one is left out and stays out.
        let acked: Vec<ServerId> = g.replicas.iter().copied().filter(|s| *s != bad).collect();
        m.settle_grant(h, g.lease, &acked, t + MS).unwrap();
        assert!(!m.replicas(h).contains(&bad));
        let out = m.heartbeat(bad, t + 2 * MS, t + 2 * MS, &[(h, 2)], TIMEOUT);
        assert_eq!(out.garbage, vec![(h, 2)]);
        assert!(!m.replicas(h).contains(&bad));
        assert_eq!(m.ruled_out(h, &[bad]), vec![bad]);
    }

    #[test]
    fn a_chunk_no_grant_committed_is_not_copied() {
        // Nothing was ever written to it, so there is nothing to copy, however few replicas its
        // placement has left.
        let mut m = master_with(5);
        m.set_min_lease_acks(2);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        let g = m.grant_lease(h, MS, LEASE, PLACE, &mut r).unwrap().0;
        m.settle_grant(h, g.lease, &g.replicas[..1], 2 * MS);
        assert_eq!(
            m.chunk(h).unwrap().version,
            0,
            "one ack of two: not committed"
        );
        assert!(m.report_bad_replica(h, g.replicas[1], 1));
        assert_eq!(m.replicas(h).len(), 2);
        let policy = ClonePolicy {
            target: 3,
            timeout_ns: TIMEOUT * 10,
            quiet_ns: 300 * MS,
            max: 4,
        };
        let t = 2 * LEASE;
        assert_eq!(m.clone_orders(t, policy, &mut r), vec![]);
    }

    #[test]
    fn a_superseded_grant_settles_nothing() {
        // One server, so every grant names the same primary: only the version tells them apart.
        let mut m = master_with(1);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        grant_all(&mut m, h, MS, &mut r);
        // A grant at version 2 whose answers come back only after its lease ran out and a grant
        // at version 3 replaced it.
        let t = LEASE + 2 * MS;
        let (old, _) = m.grant_lease(h, t, LEASE, PLACE, &mut r).unwrap();
        let later = t + LEASE + MS;
        let (new, _) = m.grant_lease(h, later, LEASE, PLACE, &mut r).unwrap();
        assert_eq!(old.lease.primary, new.lease.primary);
        assert_eq!((old.lease.version, new.lease.version), (2, 3));
        assert_eq!(
            m.settle_grant(h, old.lease, &old.replicas, later + MS),
            None
        );
        assert_eq!(m.chunk(h).unwrap().version, 1);
        assert!(
            !m.lease_usable(h, &new.lease),
            "the new grant is still in flight"
        );
    }

    #[test]
    fn exclusions_survive_a_master_restart() {
        let mut m = master_with(3);
        let mut r = rng();
        let mut log = m.create_file("/f").unwrap();
        let (h, recs) = m.ensure_chunk("/f", 0).unwrap();
        log.extend(recs);
        let g = m.grant_lease(h, MS, LEASE, PLACE, &mut r).unwrap().0;
        let late = g.replicas[0];
        log.extend(
            m.settle_grant(h, g.lease, &g.replicas[1..], 2 * MS)
                .unwrap(),
        );
        // A restarted master replays the log and hears heartbeats again: the server that missed
        // the grant (and took the version late) must still count as stale.
        let mut restarted = MasterState::new();
        log.iter().for_each(|rec| restarted.apply(rec));
        let from_cp = MasterState::from_checkpoint(&restarted.checkpoint());
        for mut again in [restarted, from_cp] {
            again.heartbeat(late, 5 * MS, 5 * MS, &[(h, 1)], TIMEOUT);
            let out = again.heartbeat(late, 6 * MS, 6 * MS, &[(h, 1)], TIMEOUT);
            assert_eq!(out.garbage, vec![(h, 1)]);
            assert!(!again.replicas(h).contains(&late));
        }
    }

    #[test]
    fn lease_extension_only_for_the_holder_at_its_version() {
        let (mut m, mut r, h, g) = one_leased_chunk(3);
        let p = g.lease.primary;
        let other = g.replicas.iter().copied().find(|s| *s != p).unwrap();
        assert_eq!(m.extend_lease(h, other, 1, 2 * MS, LEASE), None);
        assert_eq!(m.extend_lease(h, p, 0, 2 * MS, LEASE), None);
        assert_eq!(
            m.extend_lease(h, p, 1, 500 * MS, LEASE),
            Some(500 * MS + LEASE)
        );
        // An expired lease cannot be revived by a late extension request.
        assert_eq!(m.extend_lease(h, p, 1, 500 * MS + LEASE, LEASE), None);
        // A lease one of whose replicas was lost (here: found corrupt) is left to run out.
        let (g, _) = grant_all(&mut m, h, 2 * LEASE, &mut r);
        let p = g.lease.primary;
        let now = 2 * LEASE + MS;
        assert!(m.extend_lease(h, p, g.lease.version, now, LEASE).is_some());
        let secondary = g.replicas.iter().copied().find(|s| *s != p).unwrap();
        assert!(m.report_bad_replica(h, secondary, g.lease.version));
        assert_eq!(m.extend_lease(h, p, g.lease.version, now + MS, LEASE), None);
        // A grant not yet committed is not extended either: it may never become usable, and an
        // extension would keep the chunk from its next grant.
        let t = 4 * LEASE;
        let (offer, _) = m.grant_lease(h, t, LEASE, PLACE, &mut r).unwrap();
        assert!(offer.new && offer.lease.version == 3);
        let p = offer.lease.primary;
        assert_eq!(m.extend_lease(h, p, 3, t + MS, LEASE), None);
    }

    #[test]
    fn no_lease_during_grace_or_without_replicas() {
        let mut m = master_with(3);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        m.set_grace_until(100 * MS);
        assert!(matches!(
            m.grant_lease(h, 50 * MS, LEASE, PLACE, &mut r),
            Err(GfsError::Unavailable(_))
        ));
        // The grace ends at its instant: a grant then goes ahead (a mutant that waited past it
        // survived the sweeps, which never ask at that nanosecond).
        let mut at_end = m.clone();
        assert!(at_end
            .grant_lease(h, 100 * MS, LEASE, PLACE, &mut r)
            .is_ok());
        assert!(matches!(
            m.grant_lease(h, 100 * MS - 1, LEASE, PLACE, &mut r),
            Err(GfsError::Unavailable(_))
        ));
        m.expire_servers(2 * TIMEOUT, TIMEOUT);
        assert!(m.replicas(h).is_empty());
        assert!(matches!(
            m.grant_lease(h, 2 * TIMEOUT, LEASE, PLACE, &mut r),
            Err(GfsError::Unavailable(_))
        ));
    }

    /// A server is live for `timeout` after its heartbeat, and dead from that instant on: the
    /// same boundary for choosing homes for replicas as for declaring it dead.
    #[test]
    fn a_server_stops_being_live_when_it_is_declared_dead() {
        let mut m = master_with(3);
        assert_eq!(m.live_servers(TIMEOUT - 1, TIMEOUT).len(), 3);
        assert_eq!(m.live_servers(TIMEOUT, TIMEOUT), vec![]);
        assert_eq!(m.expire_servers(TIMEOUT, TIMEOUT).len(), 3);
    }

    /// Reads may name a deleted file's hidden name, however long the user's path made it, and
    /// reject a malformed visible path as invalid rather than merely absent.
    #[test]
    fn reads_validate_visible_paths_and_accept_long_hidden_names() {
        let mut m = master_with(3);
        assert!(matches!(
            m.chunks_to_read("no-slash"),
            Err(GfsError::InvalidPath(_))
        ));
        let long = format!("/{}", "a".repeat(crate::types::MAX_PATH_BYTES - 1));
        m.create_file(&long).unwrap();
        m.ensure_chunk(&long, 0).unwrap();
        m.delete_file(&long, MS).unwrap();
        let (hidden, chunks) = m.list_deleted().remove(0);
        assert!(hidden.len() > crate::types::MAX_PATH_BYTES);
        assert_eq!(m.chunks_to_read(&hidden).unwrap(), chunks.as_slice());
    }

    #[test]
    fn heartbeats_find_stale_orphan_and_ahead_replicas() {
        let mut m = master_with(3);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        m.grant_lease(h, 2 * MS, LEASE, PLACE, &mut r).unwrap();
        let s = ServerId(0);
        // A report taken before the bump is not held against the server.
        let out = m.heartbeat(s, 3 * MS, MS, &[(h, 0)], TIMEOUT);
        assert!(out.garbage.is_empty());
        // Nor is one taken after the bump while the grant is still being told to the replicas.
        let out = m.heartbeat(s, 3 * MS, 2 * MS + 1, &[(h, 0)], TIMEOUT);
        assert!(out.garbage.is_empty(), "grant in flight");
        let lease = m.chunk(h).unwrap().lease.as_ref().unwrap().lease;
        assert_eq!(
            m.chunk(h).unwrap().version,
            0,
            "not bumped before a replica took it"
        );
        let recs = m
            .settle_grant(h, lease, &[ServerId(1), ServerId(2)], 3 * MS)
            .unwrap();
        assert_eq!(
            recs,
            vec![LogRecord::SetVersion {
                handle: h,
                version: 1,
                excluded: vec![ServerId(0)],
            }]
        );
        assert_eq!(
            m.replicas(h),
            vec![ServerId(1), ServerId(2)],
            "s0 did not ack"
        );
        // One taken after it is: version 0 < 1 means stale.
        let out = m.heartbeat(s, 4 * MS, 4 * MS, &[(h, 0), (ChunkHandle(99), 3)], TIMEOUT);
        assert_eq!(out.garbage, vec![(h, 0), (ChunkHandle(99), 3)]);
        assert!(!m.replicas(h).contains(&s));
        // A replica ahead of the master wins, and the version record is logged.
        let out = m.heartbeat(ServerId(1), 5 * MS, 5 * MS, &[(h, 4)], TIMEOUT);
        assert_eq!(
            out.records,
            vec![LogRecord::SetVersion {
                handle: h,
                version: 4,
                excluded: vec![],
            }]
        );
        assert_eq!(m.chunk(h).unwrap().version, 4);
        assert_eq!(m.replicas(h), vec![ServerId(1)]);
        m.check_invariants(); // the servers' held chunks followed every change
    }

    #[test]
    fn a_lease_being_revoked_by_a_delete_is_not_extended() {
        let (mut m, _, h, g) = one_leased_chunk(3);
        let p = g.lease.primary;
        let live = m.start_revoking("/f", 2 * MS).unwrap();
        assert_eq!(
            live,
            vec![(h, g.lease)],
            "the unexpired lease is to be revoked"
        );
        assert_eq!(
            m.extend_lease(h, p, 1, 3 * MS, LEASE),
            None,
            "not while revoking"
        );
        // Two deletes of one path: the chunk stays frozen until both are done.
        m.start_revoking("/f", 3 * MS).unwrap();
        m.end_revoking(&[h]);
        assert_eq!(m.extend_lease(h, p, 1, 4 * MS, LEASE), None);
        m.end_revoking(&[h]);
        assert!(m.extend_lease(h, p, 1, 5 * MS, LEASE).is_some());
        assert!(m.start_revoking("/nope", 6 * MS).is_err());
    }

    #[test]
    fn held_chunks_stay_the_inverse_of_locations() {
        let mut m = master_with(6);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let mut handles = Vec::new();
        for i in 0..8 {
            let (h, _) = m.ensure_chunk("/f", i).unwrap();
            grant_all(&mut m, h, MS, &mut r);
            handles.push(h);
        }
        m.check_invariants();
        // A server that stops reporting a chunk loses it; one that reports it again regains it.
        let s = m.replicas(handles[0])[0];
        let mine: Vec<(ChunkHandle, u64)> = handles
            .iter()
            .filter(|h| m.replicas(**h).contains(&s))
            .map(|h| (*h, 1))
            .collect();
        m.heartbeat(s, 10 * MS, 9 * MS, &mine[1..], TIMEOUT);
        assert!(!m.replicas(handles[0]).contains(&s));
        m.check_invariants();
        // Placement counts load from the index: the server that lost a chunk is preferred.
        let loads: BTreeMap<ServerId, usize> = (0..6)
            .map(|i| (ServerId(i), m.held.load(ServerId(i))))
            .collect();
        let least = *loads.values().min().unwrap();
        let chosen = m.place(1, 10 * MS, TIMEOUT, &mut r);
        assert_eq!(loads[&chosen[0]], least, "{loads:?} {chosen:?}");
        // A dead server's chunks lose it as a location, and a reclaimed file's chunks vanish.
        m.expire_servers(10 * MS + TIMEOUT + 1, TIMEOUT);
        m.check_invariants();
        m.delete_file("/f", 20 * MS).unwrap();
        let hidden = m.reclaimable(u64::MAX / 2, 0);
        for h in hidden {
            m.reclaim(&h);
        }
        m.check_invariants();
        assert!((0..6).all(|i| m.held.load(ServerId(i)) == 0));
    }

    #[test]
    fn re_replication_picks_the_most_endangered_after_the_lease_is_quiet() {
        let mut m = master_with(5);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (a, _) = m.ensure_chunk("/f", 0).unwrap();
        let (b, _) = m.ensure_chunk("/f", 1).unwrap();
        let (ga, _) = grant_all(&mut m, a, MS, &mut r);
        let gb = m.grant_lease(b, MS, LEASE, PLACE, &mut r).unwrap().0;
        // b: two replicas did not take the version; a: one server's copy went bad.
        m.settle_grant(b, gb.lease, &gb.replicas[..1], 2 * MS);
        let bad = ga.replicas[0];
        assert!(m.report_bad_replica(a, bad, 1));
        let quiet = 300 * MS;
        let policy = |quiet_ns, max| ClonePolicy {
            target: 3,
            timeout_ns: TIMEOUT * 10,
            quiet_ns,
            max,
        };
        // Nothing while the leases (or the quiet period after them) last.
        assert!(m
            .clone_orders(MS + LEASE, policy(quiet, 4), &mut r)
            .is_empty());
        let t = MS + LEASE + quiet;
        let all = m.clone_orders(t, policy(quiet, 4), &mut r);
        assert_eq!(
            all.iter().map(|o| o.handle).collect::<Vec<_>>(),
            vec![b, a],
            "b has one replica"
        );
        let one = m.clone_orders(t, policy(quiet, 1), &mut r);
        assert_eq!(one.len(), 1, "bounded");
        // A chunk being copied gets no second copy until the first is answered.
        m.start_clone(&one[0]);
        assert_eq!(m.copies_in_flight(), 1);
        let order = m.clone_orders(t, policy(quiet, 4), &mut r).remove(0);
        assert_eq!(order.handle, a);
        m.start_clone(&order);
        assert!(m.replicas(a).contains(&order.source));
        assert!(
            !m.replicas(a).contains(&order.dest) && order.dest != bad,
            "{order:?}"
        );
        // A copy finished after a new lease was granted is discarded.
        let mut later = m.clone();
        grant_all(&mut later, a, t + 1, &mut r);
        assert!(!later.finish_clone(&order, t + 2));
        assert!(m.finish_clone(&order, t + 2));
        assert_eq!(m.replicas(a).len(), 3);
        // The bad replica, reported at the current version, is garbage at its next heartbeat.
        let out = m.heartbeat(bad, t + 3, t + 3, &[(a, 1)], TIMEOUT * 10);
        assert_eq!(out.garbage, vec![(a, 1)]);
    }

    /// Found by the check `deletes_only_garbage`: a server whose replica was found corrupt is
    /// ordered to copy the chunk afresh; it makes the copy and heartbeats before the master hears
    /// the copy finish. The report (the chunk at the current version, from a server excluded at
    /// it) was called garbage, and the server deleted the good copy the master was about to count.
    #[test]
    fn a_copy_reported_before_it_is_answered_is_not_garbage() {
        let mut m = master_with(3);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (a, _) = m.ensure_chunk("/f", 0).unwrap();
        let (g, _) = grant_all(&mut m, a, MS, &mut r);
        let bad = g.replicas[0];
        assert!(m.report_bad_replica(a, bad, 1));
        let t = MS + LEASE + 300 * MS;
        let policy = ClonePolicy {
            target: 3,
            timeout_ns: TIMEOUT * 10,
            quiet_ns: 300 * MS,
            max: 4,
        };
        // Three servers: the only home for the copy is the excluded one.
        let order = m.clone_orders(t, policy, &mut r).remove(0);
        assert_eq!(order.dest, bad);
        m.start_clone(&order);
        let failed = m.clone();
        let out = m.heartbeat(bad, t + 2, t + 2, &[(a, 1)], TIMEOUT * 10);
        assert_eq!(out.garbage, vec![], "the report may be the copy");
        assert!(m.finish_clone(&order, t + 3));
        assert_eq!(m.copies_in_flight(), 0);
        let out = m.heartbeat(bad, t + 4, t + 4, &[(a, 1)], TIMEOUT * 10);
        assert_eq!(out.garbage, vec![]);
        assert!(m.replicas(a).contains(&bad));
        // Had the copy failed, the replica the server reports is the corrupt one.
        let mut failed = failed;
        failed.abandon_clone(&order);
        let out = failed.heartbeat(bad, t + 4, t + 4, &[(a, 1)], TIMEOUT * 10);
        assert_eq!(out.garbage, vec![(a, 1)]);
    }

    /// A heartbeat can be overtaken: a report taken after a bump, showing the server's old stale
    /// replica, may arrive after a copy made that server current again. The late report must not
    /// undo the copy: calling it stale would drop a good location until the next heartbeat, and a
    /// grant in between would leave the replica out (GFS §4.5).
    #[test]
    fn a_stale_report_overtaken_by_a_finished_copy_keeps_the_copy() {
        let mut m = master_with(3);
        let mut r = rng();
        m.create_file("/f").unwrap();
        let (a, _) = m.ensure_chunk("/f", 0).unwrap();
        grant_all(&mut m, a, MS, &mut r);
        // The second grant: one replica misses version 2 and is stale at version 1.
        let t = MS + LEASE + MS;
        let (g, _) = m.grant_lease(a, t, LEASE, PLACE, &mut r).unwrap();
        let (stale, acked) = g.replicas.split_last().unwrap();
        m.settle_grant(a, g.lease, acked, t).unwrap();
        assert_eq!(m.chunk(a).unwrap().version, 2);
        // Its report of version 1 is taken after the bump and held up in the network.
        let snapshot = t + MS;
        let t = t + LEASE + 300 * MS;
        let policy = ClonePolicy {
            target: 3,
            timeout_ns: TIMEOUT * 10,
            quiet_ns: 300 * MS,
            max: 4,
        };
        // Three servers: the only home for the copy is the stale one.
        let order = m.clone_orders(t, policy, &mut r).remove(0);
        assert_eq!(order.dest, *stale);
        m.start_clone(&order);
        assert!(m.finish_clone(&order, t + 1));
        let out = m.heartbeat(*stale, t + 2, snapshot, &[(a, 1)], TIMEOUT * 10);
        assert_eq!(
            out.garbage,
            vec![],
            "the copy overwrote what the report saw"
        );
        assert!(m.replicas(a).contains(stale));
        // A report of version 1 taken after the copy would be stale indeed.
        let out = m.heartbeat(*stale, t + 3, t + 3, &[(a, 1)], TIMEOUT * 10);
        assert_eq!(out.garbage, vec![(a, 1)]);
        assert!(!m.replicas(a).contains(stale));
    }

    #[test]
    fn deleted_files_hide_until_reclaimed() {
        let mut m = master_with(3);
        m.create_file("/f").unwrap();
        let (h, _) = m.ensure_chunk("/f", 0).unwrap();
        m.delete_file("/f", 10 * MS).unwrap();
        assert!(!m.exists("/f") && m.list().is_empty());
        assert!(m.chunk(h).is_some(), "chunks survive until reclaimed");
        m.create_file("/f").unwrap();
        assert!(
            m.create_file("/.deleted/x").is_err(),
            "the hidden namespace is reserved"
        );
        assert!(m.reclaimable(10 * MS + 999 * MS, 1000 * MS).is_empty());
        let due = m.reclaimable(1010 * MS, 1000 * MS);
        assert_eq!(due.len(), 1);
        let recs = m.reclaim(&due[0]);
        assert_eq!(recs.len(), 1);
        assert!(m.chunk(h).is_none());
        let out = m.heartbeat(ServerId(0), 1011 * MS, 1011 * MS, &[(h, 0)], TIMEOUT * 10);
        assert_eq!(out.garbage, vec![(h, 0)], "an orphan now");
        m.check_invariants();
    }

    #[test]
    fn replaying_the_log_rebuilds_the_same_namespace() {
        let mut live = master_with(4);
        let mut r = rng();
        let mut log = Vec::new();
        for p in ["/a", "/b", "/c", "/d/e"] {
            log.extend(live.create_file(p).unwrap());
        }
        for (p, i) in [("/a", 0), ("/a", 3), ("/b", 1), ("/c", 0)] {
            log.extend(live.ensure_chunk(p, i).unwrap().1);
        }
        let a0 = live.chunks_of("/a").unwrap()[0];
        log.extend(grant_all(&mut live, a0, 2 * MS, &mut r).1);
        log.extend(grant_all(&mut live, a0, 2 * MS + LEASE, &mut r).1);
        log.extend(live.delete_file("/b", 3 * MS).unwrap());
        log.extend(live.create_file("/b").unwrap());
        log.extend(live.delete_file("/c", 4 * MS).unwrap());
        let hidden = live.reclaimable(5 * MS, MS);
        assert_eq!(hidden.len(), 2);
        log.extend(live.reclaim(&hidden[0]));
        assert!(
            live.create_file("/a").is_err(),
            "a failed mutation logs nothing"
        );

        // Replay from nothing.
        let mut replayed = MasterState::new();
        for rec in &log {
            replayed.apply(rec);
        }
        replayed.check_invariants();
        assert!(replayed.persistent_eq(&live));
        assert_eq!(replayed.list(), live.list());
        assert_eq!(replayed.chunk(a0).unwrap().version, 2);
        assert!(replayed.exists("/b") && !replayed.exists("/c"));
        assert_eq!(replayed.deleted().count(), 1);

        // Replay from a checkpoint taken halfway, plus the rest of the log.
        let mut half = MasterState::new();
        for rec in &log[..5] {
            half.apply(rec);
        }
        let mut from_cp = MasterState::from_checkpoint(&half.checkpoint());
        for rec in &log[5..] {
            from_cp.apply(rec);
        }
        assert!(from_cp.persistent_eq(&live));
        assert_eq!(from_cp.lsn(), live.lsn());
        // And a replay that stopped early is told apart.
        assert!(!half.persistent_eq(&live));
    }

    #[test]
    #[should_panic(expected = "version must grow")]
    fn a_log_that_lowers_a_version_is_rejected() {
        let mut m = MasterState::new();
        m.apply(&LogRecord::CreateFile {
            path: "/f".into(),
            request: None,
        });
        let handle = ChunkHandle(0);
        m.apply(&LogRecord::AddChunk {
            path: "/f".into(),
            index: 0,
            handle,
        });
        m.apply(&LogRecord::SetVersion {
            handle,
            version: 2,
            excluded: vec![],
        });
        m.apply(&LogRecord::SetVersion {
            handle,
            version: 1,
            excluded: vec![],
        });
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn a_retried_request_is_answered_not_executed_again_even_after_a_restart() {
        let mut m = MasterState::new();
        let a = RequestId { client: 1, seq: 7 };
        let b = RequestId { client: 2, seq: 1 };
        let mut log = m.create_file_once("/f", Some(a)).unwrap();
        log.extend(m.delete_file_once("/f", 10, Some(b)).unwrap());
        log.extend(m.create_file_once("/f", None).unwrap());
        // The delete's retry must not delete the re-created file; the create's retry must not
        // fail with already_exists.
        assert_eq!(m.delete_file_once("/f", 20, Some(b)).unwrap(), Vec::new());
        assert!(m.exists("/f"));
        assert_eq!(m.create_file_once("/f", Some(a)).unwrap(), Vec::new());
        // A restarted master knows them from its log, and from a checkpoint.
        let mut replayed = MasterState::new();
        log.iter().for_each(|r| replayed.apply(r));
        let from_cp = MasterState::from_checkpoint(&replayed.checkpoint());
        for mut again in [replayed, from_cp] {
            assert_eq!(
                again.delete_file_once("/f", 30, Some(b)).unwrap(),
                Vec::new()
            );
            assert!(again.exists("/f"));
        }
        // A remembered refusal is given again.
        let c = RequestId { client: 3, seq: 0 };
        let refused = m.create_file_once("/f", Some(c)).unwrap_err();
        m.remember(c, Err(refused.clone()));
        m.delete_file("/f", 40).unwrap();
        assert_eq!(m.create_file_once("/f", Some(c)), Err(refused));
        // Only a window of each client's requests is kept.
        for seq in 0..2 * REQUEST_WINDOW {
            m.remember(RequestId { client: 9, seq }, Ok(()));
        }
        assert!(m.answered(RequestId { client: 9, seq: 0 }).is_none());
        assert!(m
            .answered(RequestId {
                client: 9,
                seq: 2 * REQUEST_WINDOW - 1
            })
            .is_some());
    }
}
