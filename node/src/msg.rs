//! Every RPC of the cluster, one struct per request, grouped by who serves it.
//!
//! madsim's RPC layer passes these as typed values inside the simulator (no encoding), so a message
//! costs an allocation, not a serialization. Each request names its response type and a unique id,
//! and ([`Traced`]) how a full trace shows it: a snake_case kind and its key fields, never its data
//! bytes.

use crate::sparse::SparseBytes;
use crate::types::{ChunkHandle, DataId, GfsError, RequestId, ServerId};
use madsim::net::rpc::Request;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How a request appears in a full trace (`msg_sent ... kind=write_chunk chunk=c3 version=2 ...`).
pub trait Traced {
    /// The request's kind, in snake_case.
    const KIND: &'static str;
    /// Its key fields as `key=value` pairs separated by spaces: chunk handle, version, offset,
    /// length, data id, path. Built only when a full trace is recorded.
    fn fields(&self) -> String;
}

/// Servers as the trace names them, `cs2,cs4`.
pub fn servers(s: &[ServerId]) -> String {
    let names: Vec<String> = s.iter().map(ServerId::to_string).collect();
    names.join(",")
}

fn request_id(r: &Option<RequestId>) -> String {
    r.map_or("none".to_string(), |r| {
        format!("client{}#{}", r.client, r.seq)
    })
}

macro_rules! traced {
    ($($name:ident => $kind:literal, |$m:ident| $fields:expr;)*) => {$(
        impl Traced for $name {
            const KIND: &'static str = $kind;
            #[allow(unused_variables)]
            fn fields(&self) -> String {
                let $m = self;
                $fields
            }
        }
    )*};
}

macro_rules! request {
    ($($name:ident => $rsp:ty, $id:expr;)*) => {$(
        impl Request for $name {
            type Response = $rsp;
            const ID: u64 = $id;
        }
    )*};
}

// ---------------------------------------------------------------- served by the master (GFS §2.6)

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateFile {
    pub path: String,
    pub request: Option<RequestId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteFile {
    pub path: String,
    pub request: Option<RequestId>,
}

/// Every visible file, or with `deleted` every deleted file under its hidden name (GFS §4.4:
/// a deleted file can still be read under its hidden name until it is reclaimed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListFiles {
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub chunks: Vec<ChunkHandle>,
    /// Version and replicas of the last chunk, so the client can ask one for its length.
    pub last_chunk_version: u64,
    pub last_chunk_replicas: Vec<ServerId>,
}

/// Where the chunk at `index` of `path` lives (GFS §2.4 "chunk handle and locations").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindChunk {
    pub path: String,
    pub index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLocation {
    pub handle: ChunkHandle,
    pub version: u64,
    pub replicas: Vec<ServerId>,
    /// Number of chunks of the file when the master answered.
    pub chunk_count: u64,
}

/// Which replica holds the lease for a chunk, granting one if none does (GFS §3.1 steps 1-2);
/// `allocate` creates missing chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetPrimary {
    pub path: String,
    pub index: ChunkIndex,
    pub allocate: bool,
}

/// Which chunk of a file a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkIndex {
    /// The chunk at this index.
    At(u64),
    /// The file's last chunk, but at least the one at `at_least` (record append: after a full
    /// chunk, go straight to the newest one rather than through every chunk others filled).
    Last { at_least: u64 },
}

impl std::fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkIndex::At(i) => write!(f, "{i}"),
            ChunkIndex::Last { at_least: 0 } => f.write_str("last"),
            ChunkIndex::Last { at_least } => write!(f, "last>={at_least}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryInfo {
    pub index: u64,
    pub handle: ChunkHandle,
    pub version: u64,
    pub primary: ServerId,
    pub secondaries: Vec<ServerId>,
    pub lease_expires_ns: u64,
}

/// A chunkserver's periodic report (GFS §2.6.2, §4.5) carrying lease extension requests (§3.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub server: ServerId,
    /// Simulated time at which `chunks` was read: the master ignores what it learned after this.
    pub snapshot_ns: u64,
    pub chunks: Vec<(ChunkHandle, u64)>,
    /// Leases (chunk, version) the server holds and wants extended.
    pub extend: Vec<(ChunkHandle, u64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Replicas to delete: orphans or stale versions (GFS §4.4, §4.5), as (chunk, version seen).
    pub garbage: Vec<(ChunkHandle, u64)>,
    /// Granted extensions: (chunk, version, new expiry).
    pub extended: Vec<(ChunkHandle, u64, u64)>,
}

/// The master's whole chunk table, for the harness's end-of-run checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpChunks;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDump {
    pub path: String,
    pub index: u64,
    pub handle: ChunkHandle,
    pub version: u64,
    /// Highest version offered to replicas; a replica between `version` and this is current.
    pub issued: u64,
    pub replicas: Vec<ServerId>,
}

/// From a chunkserver: a block of its replica failed its checksum (GFS §5.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportBadReplica {
    pub server: ServerId,
    pub handle: ChunkHandle,
    pub version: u64,
}

request! {
    CreateFile => Result<(), GfsError>, 0x4746_5301;
    DeleteFile => Result<(), GfsError>, 0x4746_5302;
    ListFiles => Result<Vec<FileEntry>, GfsError>, 0x4746_5303;
    FindChunk => Result<ChunkLocation, GfsError>, 0x4746_5304;
    GetPrimary => Result<PrimaryInfo, GfsError>, 0x4746_5305;
    Heartbeat => HeartbeatReply, 0x4746_5306;
    DumpChunks => Vec<ChunkDump>, 0x4746_5307;
    ReportBadReplica => (), 0x4746_5308;
}

// ----------------------------------------------------------------- served by a chunkserver

/// From the master: the chunk's version is now `version` (GFS §4.5). `create` allows creating an
/// empty replica at version 1; `lease_expires_ns` makes this server the primary until then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetVersion {
    pub handle: ChunkHandle,
    pub version: u64,
    pub create: bool,
    pub lease_expires_ns: Option<u64>,
}

/// From the master: stop acting as primary for this chunk (GFS §3.1, lease revocation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeLease {
    pub handle: ChunkHandle,
}

/// Data pushed ahead of a mutation, forwarded along `forward` (GFS §3.2). The bytes are shared:
/// every hop and every replica's write hold the same buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushData {
    pub id: DataId,
    pub data: Arc<Vec<u8>>,
    pub forward: Vec<ServerId>,
}

/// To the primary: write pushed data at `offset` of the chunk (GFS §3.1 step 4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteChunk {
    pub handle: ChunkHandle,
    pub version: u64,
    pub offset: u64,
    pub data: DataId,
    pub secondaries: Vec<ServerId>,
}

/// To the primary: append pushed data at an offset of the primary's choosing (GFS §3.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendChunk {
    pub handle: ChunkHandle,
    pub version: u64,
    pub data: DataId,
    pub secondaries: Vec<ServerId>,
}

/// One mutation as the primary serialized it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    /// Write the pushed data at `offset`.
    Write { offset: u64, data: DataId },
    /// Fill `[from, chunk size)` with zeros: record-append padding (GFS §3.3).
    Pad { from: u64 },
    /// Write only the first `keep` bytes of the pushed data (the `append_no_pad` bug).
    WriteCut {
        offset: u64,
        data: DataId,
        keep: u64,
    },
}

/// From the primary to a secondary: apply mutation number `serial` (GFS §3.1 step 5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyMutation {
    pub handle: ChunkHandle,
    pub version: u64,
    pub serial: u64,
    pub mutation: Mutation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadChunk {
    pub handle: ChunkHandle,
    pub version: u64,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkLen {
    pub handle: ChunkHandle,
    pub version: u64,
}

/// The harness reads a replica whole, bypassing the client library.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadReplica {
    pub handle: ChunkHandle,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaContent {
    pub version: u64,
    /// Sparse: padding and holes are not stored.
    pub data: SparseBytes,
    /// Whether every block passed its checksum.
    pub checksums_ok: bool,
}

/// From the master: copy the chunk at `version` from `source` (GFS §4.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloneChunk {
    pub handle: ChunkHandle,
    pub version: u64,
    pub source: ServerId,
}

/// Between chunkservers: the whole verified replica, for a copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchChunk {
    pub handle: ChunkHandle,
    pub version: u64,
}

/// The harness asks a chunkserver for every replica it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListReplicas;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSummary {
    pub handle: ChunkHandle,
    pub version: u64,
    pub len_bytes: u64,
    /// Every block passes its checksum.
    pub healthy: bool,
}

request! {
    SetVersion => Result<(), GfsError>, 0x4746_5401;
    RevokeLease => Result<(), GfsError>, 0x4746_5402;
    PushData => Result<(), GfsError>, 0x4746_5403;
    WriteChunk => Result<(), GfsError>, 0x4746_5404;
    AppendChunk => Result<u64, GfsError>, 0x4746_5405;
    ApplyMutation => Result<(), GfsError>, 0x4746_5406;
    ReadChunk => Result<SparseBytes, GfsError>, 0x4746_5407;
    ChunkLen => Result<u64, GfsError>, 0x4746_5408;
    ReadReplica => Result<ReplicaContent, GfsError>, 0x4746_5409;
    CloneChunk => Result<(), GfsError>, 0x4746_540a;
    FetchChunk => Result<SparseBytes, GfsError>, 0x4746_540b;
    ListReplicas => Vec<ReplicaSummary>, 0x4746_540c;
}

traced! {
    CreateFile => "create_file", |m| format!("path={} request={}", m.path, request_id(&m.request));
    DeleteFile => "delete_file", |m| format!("path={} request={}", m.path, request_id(&m.request));
    ListFiles => "list_files", |m| if m.deleted { "deleted".to_string() } else { String::new() };
    FindChunk => "find_chunk", |m| format!("path={} index={}", m.path, m.index);
    GetPrimary => "get_primary", |m| format!(
        "path={} index={} allocate={}",
        m.path,
        m.index,
        m.allocate
    );
    Heartbeat => "heartbeat", |m| format!("chunks={} extend={}", m.chunks.len(), m.extend.len());
    DumpChunks => "dump_chunks", |m| String::new();
    ReportBadReplica => "report_bad_replica", |m| format!("chunk={} version={}", m.handle, m.version);
    SetVersion => "set_version", |m| format!(
        "chunk={} version={} create={}{}",
        m.handle,
        m.version,
        m.create,
        m.lease_expires_ns.map_or(String::new(), |t| format!(" lease_until_ns={t}"))
    );
    RevokeLease => "revoke_lease", |m| format!("chunk={}", m.handle);
    PushData => "push_data", |m| format!(
        "data={} len={} forward=[{}]",
        m.id,
        m.data.len(),
        servers(&m.forward)
    );
    WriteChunk => "write_chunk", |m| format!(
        "chunk={} version={} offset={} data={} secondaries=[{}]",
        m.handle,
        m.version,
        m.offset,
        m.data,
        servers(&m.secondaries)
    );
    AppendChunk => "append_chunk", |m| format!(
        "chunk={} version={} data={} secondaries=[{}]",
        m.handle,
        m.version,
        m.data,
        servers(&m.secondaries)
    );
    ApplyMutation => "apply_mutation", |m| {
        let what = match &m.mutation {
            Mutation::Write { offset, data } => format!("write offset={offset} data={}", data),
            Mutation::Pad { from } => format!("pad from={from}"),
            Mutation::WriteCut { offset, data, keep } => {
                format!("write_cut offset={offset} data={} keep={keep}", data)
            }
        };
        format!("chunk={} version={} serial={} mutation={what}", m.handle, m.version, m.serial)
    };
    ReadChunk => "read_chunk", |m| format!(
        "chunk={} version={} offset={} len={}",
        m.handle, m.version, m.offset, m.len
    );
    ChunkLen => "chunk_len", |m| format!("chunk={} version={}", m.handle, m.version);
    ReadReplica => "read_replica", |m| format!("chunk={}", m.handle);
    CloneChunk => "clone_chunk", |m| format!(
        "chunk={} version={} source={}",
        m.handle, m.version, m.source
    );
    FetchChunk => "fetch_chunk", |m| format!("chunk={} version={}", m.handle, m.version);
    ListReplicas => "list_replicas", |m| String::new();
}
