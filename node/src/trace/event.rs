//! The events a run records, as typed values.
//!
//! Nodes report what they did as [`Event`] values with typed fields (chunk handles, versions,
//! server ids, instants), and the harness matches on the variants: a check that wants the leases a
//! chunkserver acquired asks for [`Event::LeaseAcquired`] and gets its chunk, version and expiry as
//! numbers. Nothing parses text back, so a renamed field is a compile error, not a check that
//! silently skips events.
//!
//! Each event also has a text form, for people and for trace files: [`Event::kind`] is its
//! snake_case name (`lease_granted`) and its `Display` its key fields as `key=value` pairs
//! (`chunk=c4 version=2 primary=cs1 ...`). The trace schema (`traces/README.md`) documents those
//! texts, and the scenario snapshots pin them.

use crate::types::{ChunkHandle, DataId, GfsError, NodeName, ServerId};
use std::fmt;

/// Every fault kind the harness's nemesis can inject. Defined here, beside the events, because
/// fault events name their kind and the checks match on it; the harness decides when and where
/// each strikes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Crash a chunkserver and restart it later; its unsynced writes are lost.
    Crash,
    /// Crash the master and restart it later; it recovers from checkpoint and log.
    MasterCrash,
    /// Freeze a chunkserver for longer than a lease: it may believe it is primary when it wakes.
    Pause,
    /// Cut one node off from every other.
    Isolate,
    /// Split the nodes into two groups that cannot reach each other.
    Partition,
    /// Drop every message in one direction of one link.
    OneWay,
    /// Raise message latency and jitter everywhere.
    Delay,
    /// Lose a fraction of all messages.
    Loss,
    /// Crash the faulty-disk chunkserver while a write may be half on disk.
    TornWrite,
    /// Flip a bit in a stored block on the faulty-disk chunkserver.
    BitFlip,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Crash,
        FaultKind::MasterCrash,
        FaultKind::Pause,
        FaultKind::Isolate,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Delay,
        FaultKind::Loss,
        FaultKind::TornWrite,
        FaultKind::BitFlip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::MasterCrash => "master_crash",
            FaultKind::Pause => "pause",
            FaultKind::Isolate => "isolate",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one_way",
            FaultKind::Delay => "delay",
            FaultKind::Loss => "loss",
            FaultKind::TornWrite => "torn_write",
            FaultKind::BitFlip => "bit_flip",
        }
    }

    /// Kinds that kill the node they hit (its memory, and so any lease it believed it held, is
    /// gone until it restarts).
    pub fn kills_node(self) -> bool {
        matches!(
            self,
            FaultKind::Crash | FaultKind::MasterCrash | FaultKind::TornWrite
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().replace('-', "_");
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown fault kind {s:?}; known kinds: {}",
                    names.join(", ")
                )
            })
    }
}

/// What a fault hit: a node, one side of a partition, one direction of a link, or the whole
/// network (latency, loss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultOn {
    Node(NodeName),
    /// The nodes on one side of a partition.
    Side(Vec<NodeName>),
    Link {
        from: NodeName,
        to: NodeName,
    },
    Delay {
        max_latency_ms: u64,
    },
    Loss {
        percent: u32,
    },
    /// One message, named by its fault point (`nth` request of `kind` from `from` to `to`), or
    /// the answer to it.
    Message {
        from: NodeName,
        to: NodeName,
        kind: String,
        nth: u32,
        reply: bool,
    },
}

impl fmt::Display for FaultOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultOn::Node(n) => write!(f, "node={n}"),
            FaultOn::Side(side) => write!(f, "side=[{}]", list(side, ",")),
            FaultOn::Link { from, to } => write!(f, "from={from} to={to}"),
            FaultOn::Delay { max_latency_ms } => write!(f, "max_latency_ms={max_latency_ms}"),
            FaultOn::Loss { percent } => write!(f, "loss_percent={percent}"),
            FaultOn::Message {
                from,
                to,
                kind,
                nth,
                reply,
            } => {
                let what = if *reply { "reply_to" } else { "message" };
                write!(f, "from={from} to={to} {what}={kind}#{nth}")
            }
        }
    }
}

/// A chunkserver's role in a version change: primary (offered the lease) or secondary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

/// A page-cache write: bytes at an offset, or a length change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskWrite {
    Bytes {
        offset: u64,
        len: u64,
    },
    /// Zeros over `[from, to)` (record-append padding), stored as nothing.
    Zero {
        from: u64,
        to: u64,
    },
    SetLen {
        len: u64,
    },
}

/// Why unsynced writes never reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// The node crashed with them in its page cache.
    Crash,
    /// A broken disk acknowledged a sync it never made (the test-only lying disk).
    SyncLied,
}

/// Which half of an RPC was lost, as far as the caller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The handler had not received the request when the caller gave up.
    Request,
    /// The handler received it, but no answer came in time (it may only have been slow).
    Reply,
}

/// One message's identity in a trace: its sender and its number there (`client0#17`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgId {
    pub from: NodeName,
    pub seq: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.from, self.seq)
    }
}

/// `items` joined by `sep`, each by its `Display`.
fn list<T: fmt::Display>(items: &[T], sep: &str) -> String {
    let names: Vec<String> = items.iter().map(T::to_string).collect();
    names.join(sep)
}

/// Declares [`Event`] with, for each variant, its kind name and the text of its fields, so that
/// the list of kinds ([`Event::KINDS`]) cannot drift from the variants.
macro_rules! events {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $kind:literal { $($field:ident : $ty:ty),* $(,)? } => |$f:ident| $text:expr;
    )*) => {
        /// Something a node (or the harness's nemesis) did, with its key facts as typed fields.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $( $(#[doc = $doc])* $variant { $($field: $ty),* }, )*
        }

        impl Event {
            /// Every event kind's name, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($kind),*];

            /// The event's kind, in snake_case (`lease_granted`): the trace's `kind` field.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( Event::$variant { .. } => $kind, )*
                }
            }
        }

        /// The event's key fields as `key=value` pairs: the trace's `detail` field.
        impl fmt::Display for Event {
            #[allow(unused_variables)]
            fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( Event::$variant { $($field),* } => {
                        let $f = &mut *out;
                        $text
                    } )*
                }
            }
        }
    };
}

events! {
    // ------------------------------------------------------------------------------ master
    /// A master started with an empty disk.
    MasterStarted = "master_started" { lsn: u64, files: usize, grace_until_ms: u64 }
        => |f| write!(f, "lsn={lsn} files={files} grace_until_ms={grace_until_ms}");
    /// A master restarted and rebuilt its state from checkpoint and log (GFS §2.6.3).
    MasterRecovered = "master_recovered" { lsn: u64, files: usize, grace_until_ms: u64 }
        => |f| write!(f, "lsn={lsn} files={files} grace_until_ms={grace_until_ms}");
    /// A chunkserver's first heartbeat (since the master started, or since it was declared dead).
    ServerJoined = "server_joined" { server: ServerId, chunks: usize }
        => |f| write!(f, "server={server} chunks={chunks}");
    /// A chunkserver went silent for longer than the server timeout.
    ServerDead = "server_dead" { server: ServerId } => |f| write!(f, "server={server}");
    FileCreated = "file_created" { path: String } => |f| write!(f, "path={path}");
    /// A file was deleted (renamed to a hidden name, GFS §4.4), after its live leases were revoked.
    FileDeleted = "file_deleted" { path: String, live_leases: usize }
        => |f| write!(f, "path={path} live_leases={live_leases}");
    /// Lazy garbage collection removed a deleted file's hidden name (GFS §4.4).
    FileReclaimed = "file_reclaimed" { hidden: String } => |f| write!(f, "hidden={hidden}");
    ChunkAllocated = "chunk_allocated" { path: String, index: u64, chunk: ChunkHandle }
        => |f| write!(f, "path={path} index={index} chunk={chunk}");
    /// A lease's new version was committed: enough replicas took it (GFS §4.5).
    VersionBumped = "version_bumped" { chunk: ChunkHandle, version: u64 }
        => |f| write!(f, "chunk={chunk} version={version}");
    /// A heartbeat reported a version above the master's, which the master adopted (GFS §4.5).
    VersionAdopted = "version_adopted" { chunk: ChunkHandle, version: u64, from: ServerId }
        => |f| write!(f, "chunk={chunk} version={version} from={from}");
    /// The master named a primary for a new lease (GFS §3.1).
    LeaseGranted = "lease_granted" {
        chunk: ChunkHandle,
        version: u64,
        primary: ServerId,
        secondaries: Vec<ServerId>,
        expires_ms: u64,
    } => |f| write!(
        f,
        "chunk={chunk} version={version} primary={primary} secondaries=[{}] expires_ms={expires_ms}",
        list(secondaries, ",")
    );
    /// The master chose `primary` for a new lease until `expires_ns` and sends the new version to
    /// `replicas` (the primary among them; for a chunk's first grant, the servers it just placed
    /// the chunk on, GFS §4.2); whether clients are told of it depends on how many take the
    /// version (`lease_granted`). From here the primary may order mutations until the expiry.
    LeaseOffered = "lease_offered" {
        chunk: ChunkHandle,
        version: u64,
        primary: ServerId,
        replicas: Vec<ServerId>,
        expires_ns: u64,
    } => |f| write!(
        f,
        "chunk={chunk} version={version} primary={primary} replicas=[{}] expires_ns={expires_ns}",
        list(replicas, ",")
    );
    /// The master extended a lease at its primary's request, carried by a heartbeat (GFS §3.1).
    LeaseRenewed = "lease_renewed" {
        chunk: ChunkHandle,
        version: u64,
        primary: ServerId,
        expires_ns: u64,
    } => |f| write!(f, "chunk={chunk} version={version} primary={primary} expires_ns={expires_ns}");
    /// A lease nobody extended ran out; reported once, at the master's next background pass.
    LeaseExpired = "lease_expired" {
        chunk: ChunkHandle,
        version: u64,
        primary: ServerId,
        expired_ms: u64,
    } => |f| write!(f, "chunk={chunk} version={version} primary={primary} expired_ms={expired_ms}");
    /// A deleted file's lease was revoked (or waited out, if its primary did not answer).
    LeaseRevoked = "lease_revoked" { chunk: ChunkHandle, primary: ServerId }
        => |f| write!(f, "chunk={chunk} primary={primary}");
    /// A replica did not take a grant's version and is left out of the lease (stale at it).
    ReplicaExcluded = "replica_excluded" {
        chunk: ChunkHandle,
        version: u64,
        server: ServerId,
        why: GfsError,
    } => |f| write!(f, "chunk={chunk} version={version} server={server} why={}", why.kind());
    /// A chunkserver reported a replica that failed its checksum (GFS §5.2).
    ReplicaCorrupt = "replica_corrupt" { chunk: ChunkHandle, version: u64, server: ServerId }
        => |f| write!(f, "chunk={chunk} version={version} server={server}");
    /// An extra replica (above the replication target) was dropped.
    ReplicaTrimmed = "replica_trimmed" { chunk: ChunkHandle, server: ServerId }
        => |f| write!(f, "chunk={chunk} server={server}");
    /// Re-replication began (GFS §4.3).
    CloneStarted = "clone_started" {
        chunk: ChunkHandle,
        version: u64,
        from: ServerId,
        to: ServerId,
        replicas: usize,
    } => |f| write!(f, "chunk={chunk} version={version} from={from} to={to} replicas={replicas}");
    ReplicaCloned = "replica_cloned" { chunk: ChunkHandle, version: u64, to: ServerId }
        => |f| write!(f, "chunk={chunk} version={version} to={to}");
    CloneFailed = "clone_failed" { chunk: ChunkHandle, version: u64, to: ServerId }
        => |f| write!(f, "chunk={chunk} version={version} to={to}");
    /// A heartbeat named a replica of a chunk that no longer exists: it is to be deleted.
    GarbageOrphan = "garbage_orphan" { server: ServerId } => |f| write!(f, "server={server}");
    /// A heartbeat named a replica at an old version: it is to be deleted (GFS §4.5).
    GarbageStale = "garbage_stale" { server: ServerId } => |f| write!(f, "server={server}");
    CheckpointWritten = "checkpoint_written" { lsn: u64 } => |f| write!(f, "lsn={lsn}");

    // ------------------------------------------------------------------------- chunkservers
    ChunkserverStarted = "chunkserver_started" { chunks: usize } => |f| write!(f, "chunks={chunks}");
    /// A stored replica whose header failed its checksum was thrown away at start-up.
    ReplicaDiscarded = "replica_discarded" { chunk: ChunkHandle }
        => |f| write!(f, "chunk={chunk} (header failed its checksum)");
    /// The master announced a new version; `role` says whether it offered this server the lease.
    VersionSet = "version_set" { chunk: ChunkHandle, version: u64, role: Role }
        => |f| write!(f, "chunk={chunk} version={version} role={}", match role {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        });
    /// This server became primary of the chunk until `until_ns` (GFS §3.1).
    LeaseAcquired = "lease_acquired" { chunk: ChunkHandle, version: u64, until_ns: u64 }
        => |f| write!(f, "chunk={chunk} version={version} until_ns={until_ns}");
    LeaseExtended = "lease_extended" { chunk: ChunkHandle, version: u64, until_ns: u64 }
        => |f| write!(f, "chunk={chunk} version={version} until_ns={until_ns}");
    /// The master revoked this server's lease.
    LeaseReleased = "lease_released" { chunk: ChunkHandle, version: u64 }
        => |f| write!(f, "chunk={chunk} version={version} revoked");
    /// The primary numbered a mutation (a write, an append or a pad) covering `len` bytes from
    /// `offset` under its lease (GFS §3.1 step 4): the act that decides the mutation order, so it
    /// must fall inside a lease the master offered or renewed.
    MutationOrdered = "mutation_ordered" {
        chunk: ChunkHandle,
        version: u64,
        serial: u64,
        offset: u64,
        len: u64,
    } => |f| write!(f, "chunk={chunk} version={version} serial={serial} offset={offset} len={len}");
    /// The primary applied a write (a mutation with data) as serial number `serial`.
    MutationApplied = "mutation_applied" {
        chunk: ChunkHandle,
        version: u64,
        serial: u64,
        offset: u64,
        len: u64,
        data: DataId,
    } => |f| write!(
        f,
        "chunk={chunk} version={version} serial={serial} offset={offset} len={len} data={data}"
    );
    /// The primary applied a mutation that some secondaries did not (GFS §3.1 step 7).
    MutationPartial = "mutation_partial" {
        chunk: ChunkHandle,
        version: u64,
        serial: u64,
        failed: Vec<(ServerId, GfsError)>,
    } => |f| {
        let failed: Vec<String> = failed.iter().map(|(s, e)| format!("{s}: {e}")).collect();
        write!(f, "chunk={chunk} version={version} serial={serial} failed=[{}]", failed.join("; "))
    };
    /// A secondary refused a mutation that arrived after a later serial (GFS §3.1).
    MutationRefused = "mutation_refused" {
        chunk: ChunkHandle,
        version: u64,
        serial: u64,
        after_serial: u64,
    } => |f| write!(f, "chunk={chunk} version={version} serial={serial} after_serial={after_serial}");
    /// The primary padded the chunk from `from` because the append `data` did not fit (GFS §3.3).
    ChunkPadded = "chunk_padded" { chunk: ChunkHandle, from: u64, data: DataId }
        => |f| write!(f, "chunk={chunk} from={from} data={data}");
    /// A replica was copied from another chunkserver (GFS §4.3).
    ReplicaCopied = "replica_copied" {
        chunk: ChunkHandle,
        version: u64,
        from: ServerId,
        bytes: u64,
    } => |f| write!(f, "chunk={chunk} version={version} from={from} bytes={bytes}");
    /// A replica the master called garbage was deleted.
    ReplicaDeleted = "replica_deleted" { chunk: ChunkHandle, version: u64 }
        => |f| write!(f, "chunk={chunk} version={version}");
    /// A block failed its checksum (first report of this replica).
    ChecksumMismatch = "checksum_mismatch" { chunk: ChunkHandle, version: u64 }
        => |f| write!(f, "chunk={chunk} version={version}");

    // -------------------------------------------------------------------------------- disks
    /// A bit the nemesis asked for was flipped in a stored file.
    BitFlipped = "bit_flipped" { file: String, offset: u64, bit: u8 }
        => |f| write!(f, "file={file} offset={offset} bit={bit}");
    /// A write into the page cache (full detail only).
    DiskWritten = "disk_write" { file: String, write: DiskWrite } => |f| match write {
        DiskWrite::Bytes { offset, len } => write!(f, "file={file} offset={offset} len={len}"),
        DiskWrite::Zero { from, to } => write!(f, "file={file} zero={from}..{to}"),
        DiskWrite::SetLen { len } => write!(f, "file={file} set_len={len}"),
    };
    /// A sync made a file's cached writes durable (full detail only).
    DiskSynced = "disk_sync" { file: String, writes: u64, bytes: u64, took_us: u64 }
        => |f| write!(f, "file={file} writes={writes} bytes={bytes} took_us={took_us}");
    /// Cached writes that never became durable (full detail only).
    DiskLost = "disk_lost" { file: String, writes: u64, bytes: u64, why: LossCause }
        => |f| write!(f, "file={file} writes={writes} bytes={bytes} why={}", match why {
            LossCause::Crash => "crash",
            LossCause::SyncLied => "sync_lied",
        });

    // ----------------------------------------------------------------------------- messages
    /// A request left its sender (full detail only). `fields` are the request's key fields, for
    /// reading; no check looks at them.
    MsgSent = "msg_sent" { msg: MsgId, to: NodeName, kind: &'static str, fields: String }
        => |f| {
            write!(f, "msg={msg} to={to} kind={kind}")?;
            if !fields.is_empty() {
                write!(f, " {fields}")?;
            }
            Ok(())
        };
    /// A request reached its handler (full detail only).
    MsgDelivered = "msg_delivered" { msg: MsgId, from: NodeName, kind: &'static str }
        => |f| write!(f, "msg={msg} from={from} kind={kind}");
    /// The reply reached the caller (full detail only).
    ReplyDelivered = "reply_delivered" {
        msg: MsgId,
        from: NodeName,
        kind: &'static str,
        rtt_us: u64,
    } => |f| write!(f, "msg={msg} from={from} kind={kind} rtt_us={rtt_us}");
    /// The caller gave up on a request (full detail only).
    MsgDropped = "msg_dropped" {
        msg: MsgId,
        to: NodeName,
        kind: &'static str,
        lost: Lost,
        why: std::io::ErrorKind,
        after_us: u64,
    } => |f| {
        let lost = match lost {
            Lost::Request => "request",
            Lost::Reply => "reply",
        };
        let why = if *why == std::io::ErrorKind::TimedOut {
            "timeout".to_string()
        } else {
            format!("{why:?}").to_lowercase()
        };
        write!(f, "msg={msg} to={to} kind={kind} lost={lost} why={why} after_us={after_us}")
    };

    /// A server dropped a request that reached it after its caller's deadline: the caller had
    /// given up on it (and may have retried, or moved on), so serving it could apply an old
    /// mutation over newer ones or make a replica nobody expects. Recorded at protocol detail.
    RequestExpired = "request_expired" { from: NodeName, kind: &'static str, late_us: u64 }
        => |f| write!(f, "from={from} kind={kind} late_us={late_us}");

    // ------------------------------------------------------------------------------ nemesis
    /// A fault struck; a crash also says how many page-cache writes it destroyed.
    FaultInjected = "fault_injected" {
        fault: FaultKind,
        on: FaultOn,
        unsynced_writes_lost: Option<u64>,
    } => |f| {
        write!(f, "kind={fault} {on}")?;
        if let Some(n) = unsynced_writes_lost {
            write!(f, " unsynced_writes_lost={n}")?;
        }
        Ok(())
    };
    FaultHealed = "fault_healed" { fault: FaultKind, on: FaultOn }
        => |f| write!(f, "kind={fault} {on}");
    /// A fault aimed at a chunk's primary found none to hit.
    FaultSkipped = "fault_skipped" { fault: FaultKind }
        => |f| write!(f, "kind={fault} no current primary to hit");
    /// A crash caught a sync halfway: the file on disk is torn.
    WriteTorn = "write_torn" { node: NodeName } => |f| write!(f, "node={node}");
    /// The end of the safety phase: every fault healed.
    AllHealed = "all_healed" {} => |f| Ok(());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_snake_case_names() {
        let mut seen = std::collections::BTreeSet::new();
        for k in Event::KINDS {
            assert!(seen.insert(*k), "{k} declared twice");
            assert!(k.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{k}");
        }
    }

    #[test]
    fn text_is_the_trace_schema() {
        let e = Event::LeaseGranted {
            chunk: ChunkHandle(4),
            version: 2,
            primary: ServerId(1),
            secondaries: vec![ServerId(2), ServerId(4)],
            expires_ms: 1234,
        };
        assert_eq!(e.kind(), "lease_granted");
        assert_eq!(
            e.to_string(),
            "chunk=c4 version=2 primary=cs1 secondaries=[cs2,cs4] expires_ms=1234"
        );
        let f = Event::FaultInjected {
            fault: FaultKind::TornWrite,
            on: FaultOn::Node(NodeName::Cs(ServerId(3))),
            unsynced_writes_lost: Some(2),
        };
        assert_eq!(
            f.to_string(),
            "kind=torn_write node=cs3 unsynced_writes_lost=2"
        );
        let p = Event::FaultHealed {
            fault: FaultKind::Partition,
            on: FaultOn::Side(vec![NodeName::Master, NodeName::Client(1)]),
        };
        assert_eq!(p.to_string(), "kind=partition side=[master,client1]");
        assert_eq!(Event::AllHealed {}.to_string(), "");
    }

    #[test]
    fn fault_kinds_round_trip_and_say_which_kill() {
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>(), Ok(k));
        }
        assert!("meteor"
            .parse::<FaultKind>()
            .unwrap_err()
            .contains("known kinds"));
        let killers: Vec<_> = FaultKind::ALL
            .into_iter()
            .filter(|k| k.kills_node())
            .collect();
        assert_eq!(
            killers,
            [
                FaultKind::Crash,
                FaultKind::MasterCrash,
                FaultKind::TornWrite
            ]
        );
    }
}
