//! The chunkserver's protocol state and decisions as plain data (GFS §3.1, §3.2, §3.3).
//!
//! Nothing here sleeps, sends or touches a disk: every method that depends on time takes the
//! current simulated time (`now_ns`), so unit tests drive it directly. The async shell in
//! `chunkserver/mod.rs` keeps the chunk store (disk I/O), the RPCs, the per-chunk mutation locks
//! and the trace events, and holds one [`ChunkServerCore`] behind one lock, never across an await.
//!
//! What lives here, all of it lost when the node crashes (it is rebuilt from the master):
//! - the leases this server holds as primary, with their next serial number (GFS §3.1);
//! - the last serial applied per chunk, so a secondary never applies an older serial after a newer
//!   one (GFS §3.1 step 5);
//! - the buffer of pushed data waiting for its mutation (GFS §3.2), bounded in entries and bytes;
//! - the corrupt replicas already reported (GFS §5.2), so each is traced once;
//! - the record-append decision: write at the chunk's end, or pad the chunk and send the client on
//!   to the next one (GFS §3.3).

use crate::bugs::Bug;
use crate::config::ClusterConfig;
use crate::coverage::Probe;
use crate::msg::Mutation;
use crate::types::{ChunkHandle, DataId, GfsError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The lease this server holds as primary of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryLease {
    pub version: u64,
    pub expires_ns: u64,
    pub next_serial: u64,
    /// Mutated since the last heartbeat: ask the master to extend (GFS §3.1).
    pub mutated: bool,
}

/// Pushed data waiting for its mutation, bounded in entries and bytes; the oldest is evicted.
#[derive(Debug)]
struct PushBuffer {
    entries: BTreeMap<DataId, Arc<Vec<u8>>>,
    /// Ids in insertion order, oldest first: the eviction order.
    order: VecDeque<DataId>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl PushBuffer {
    fn new(max_entries: usize, max_bytes: usize) -> PushBuffer {
        PushBuffer {
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Keeps `data` under `id` (replacing an earlier push with the same id, which becomes the
    /// newest), then evicts the oldest entries until both bounds hold again.
    fn insert(&mut self, id: DataId, data: Arc<Vec<u8>>) {
        if let Some(old) = self.entries.remove(&id) {
            self.bytes -= old.len();
            self.order.retain(|d| *d != id);
        }
        self.bytes += data.len();
        self.entries.insert(id, data);
        self.order.push_back(id);
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(d) = self.entries.remove(&oldest) {
                self.bytes -= d.len();
                crate::coverage::hit(Probe::PushBufferEvicted);
            }
        }
        self.assert_accounting();
    }

    fn get(&self, id: &DataId) -> Option<Arc<Vec<u8>>> {
        self.entries.get(id).cloned()
    }

    /// The byte count is the entries' sum, the eviction queue names each entry exactly once, and
    /// both bounds hold. At most `max_entries` entries, so checking all of them stays cheap.
    fn assert_accounting(&self) {
        let sum: usize = self.entries.values().map(|d| d.len()).sum();
        assert_eq!(self.bytes, sum, "push buffer: byte count drifted");
        assert_eq!(
            self.order.len(),
            self.entries.len(),
            "push buffer: eviction queue and entries differ in length"
        );
        let mut queued: Vec<DataId> = self.order.iter().copied().collect();
        queued.sort_unstable();
        assert!(
            queued.iter().eq(self.entries.keys()),
            "push buffer: eviction queue does not name the entries"
        );
        assert!(
            self.entries.len() <= self.max_entries && self.bytes <= self.max_bytes,
            "push buffer over its bounds: {} entries, {} bytes",
            self.entries.len(),
            self.bytes
        );
    }
}

/// What the primary does with a record append (GFS §3.3), given where the chunk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendPlan {
    /// The record fits: write it at the chunk's end, `offset`, and tell the client so.
    Fits { offset: u64 },
    /// It does not: pad the chunk from `from` to its size and tell the client to retry on the
    /// next chunk (`ChunkFull`).
    Pad { from: u64 },
    /// Bug `append_no_pad`: write only the first `keep` bytes at `offset`, report it appended.
    Cut { offset: u64, keep: u64 },
    /// The chunk is already full (padded, or filled to the byte): send the client on to the next
    /// chunk without a mutation, as padding it again would change nothing.
    Full,
}

impl AppendPlan {
    /// The mutation every replica applies for this plan, with the pushed record `data`.
    /// `None` for [`AppendPlan::Full`], which mutates nothing.
    /// The bytes the plan's mutation covers, as (offset, length), for a record of `len` bytes
    /// in a chunk of `chunk_size_bytes`: the record, its cut part, or the padding.
    pub fn region(self, len: u64, chunk_size_bytes: u64) -> (u64, u64) {
        match self {
            AppendPlan::Fits { offset } => (offset, len),
            AppendPlan::Pad { from } => (from, chunk_size_bytes.saturating_sub(from)),
            AppendPlan::Cut { offset, keep } => (offset, keep),
            AppendPlan::Full => (chunk_size_bytes, 0),
        }
    }

    pub fn mutation(self, data: DataId) -> Option<Mutation> {
        Some(match self {
            AppendPlan::Fits { offset } => Mutation::Write { offset, data },
            AppendPlan::Pad { from } => Mutation::Pad { from },
            AppendPlan::Cut { offset, keep } => Mutation::WriteCut { offset, data, keep },
            AppendPlan::Full => return None,
        })
    }
}

/// What a secondary does with a mutation that arrives (GFS §3.1 step 5: every replica applies
/// mutations in the primary's serial order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Apply it now: it is the next serial, or the earlier ones are given up on.
    Apply,
    /// Hold it: an earlier serial has not arrived yet (the primary pipelines its mutations, and
    /// the network may reorder them). Ask again a little later.
    Hold,
    /// Refuse it: a newer serial of the same lease was applied already.
    Refuse { after_serial: u64 },
    /// Refuse it: too many later mutations of this chunk are held already.
    Full,
}

/// A chunkserver's protocol state. See the module comment.
#[derive(Debug)]
pub struct ChunkServerCore {
    chunk_size_bytes: u64,
    /// Bug `append_no_pad`: cut records instead of padding.
    append_no_pad: bool,
    /// Bug `arrival_order`: secondaries apply in arrival order, not serial order.
    arrival_order: bool,
    /// Bug `primary_ignores_expiry`: a lease past its expiry still numbers mutations.
    ignore_expiry: bool,
    /// Bug `no_lease_extension`: heartbeats never ask for an extension.
    no_extension: bool,
    leases: BTreeMap<ChunkHandle, PrimaryLease>,
    /// Last serial applied per chunk, at the version it was applied under.
    applied: BTreeMap<ChunkHandle, (u64, u64)>,
    /// When each replica copied in from another server was installed: a deletion the master
    /// ordered from an earlier report must not remove it (see [`ChunkServerCore::garbage_applies`]).
    installed_ns: BTreeMap<ChunkHandle, u64>,
    /// Mutations held for an earlier serial, per chunk: (version, serial) of each.
    held: BTreeMap<ChunkHandle, BTreeSet<(u64, u64)>>,
    /// How long a secondary holds a mutation for the serials before it.
    hold_ns: u64,
    /// Bound on mutations of one chunk held at once (`ClusterConfig::max_held_per_chunk`).
    max_held_per_chunk: usize,
    buffer: PushBuffer,
    /// Corrupt replicas already reported to the master, as (chunk, version).
    reported: BTreeSet<(ChunkHandle, u64)>,
}

impl ChunkServerCore {
    pub fn new(cfg: &ClusterConfig) -> ChunkServerCore {
        // The buffer always fits at least two whole chunks, whatever the configured bound.
        let max_bytes = cfg.push_buffer_bytes.max(2 * cfg.chunk_size_bytes as usize);
        ChunkServerCore {
            chunk_size_bytes: cfg.chunk_size_bytes,
            append_no_pad: cfg.has(Bug::AppendNoPad),
            arrival_order: cfg.has(Bug::ArrivalOrder),
            ignore_expiry: cfg.has(Bug::PrimaryIgnoresExpiry),
            no_extension: cfg.has(Bug::NoLeaseExtension),
            leases: BTreeMap::new(),
            applied: BTreeMap::new(),
            installed_ns: BTreeMap::new(),
            held: BTreeMap::new(),
            hold_ns: cfg.serial_hold_ms() * 1_000_000,
            max_held_per_chunk: cfg.max_held_per_chunk,
            buffer: PushBuffer::new(cfg.push_buffer_entries, max_bytes),
            reported: BTreeSet::new(),
        }
    }

    /// GFS §4.5: the replica now stores `version`. Serials start over at the new version; with a
    /// lease that has not expired by `now_ns` this server becomes primary, otherwise (no lease, or
    /// a grant delayed past its expiry) it is a secondary and holds no lease. Returns the expiry of
    /// the lease taken, if any.
    pub fn version_set(
        &mut self,
        h: ChunkHandle,
        version: u64,
        lease_expires_ns: Option<u64>,
        now_ns: u64,
    ) -> Option<u64> {
        self.applied.insert(h, (version, 0));
        match lease_expires_ns.filter(|&until| until > now_ns) {
            Some(expires_ns) => {
                let lease = PrimaryLease {
                    version,
                    expires_ns,
                    next_serial: 1,
                    mutated: false,
                };
                self.leases.insert(h, lease);
                Some(expires_ns)
            }
            None => {
                self.leases.remove(&h);
                None
            }
        }
    }

    /// When this server's lease on `h` runs out, if it holds one: what it sends under the lease
    /// must not be served later (a forwarded mutation's deadline, GFS §3.1).
    pub fn lease_expires_ns(&self, h: ChunkHandle) -> Option<u64> {
        self.leases.get(&h).map(|l| l.expires_ns)
    }

    /// The master took the lease back; returns it if this server held one.
    pub fn revoke(&mut self, h: ChunkHandle) -> Option<PrimaryLease> {
        self.leases.remove(&h)
    }

    /// Whether this server holds a live lease on `h` at `version`, without taking a serial.
    pub fn check_primary(&self, h: ChunkHandle, version: u64, now_ns: u64) -> Result<(), GfsError> {
        let lease = self.leases.get(&h).ok_or(GfsError::NotPrimary)?;
        if lease.expires_ns <= now_ns && !self.ignore_expiry {
            crate::coverage::hit(Probe::LeaseExpiredRefusal);
            return Err(GfsError::NotPrimary);
        }
        if lease.version != version {
            return Err(GfsError::StaleVersion {
                have: lease.version,
                want: version,
            });
        }
        Ok(())
    }

    /// GFS §3.1 step 4: checks that this server holds a live lease at `version` and hands out the
    /// next serial number; the lease is then due for extension.
    pub fn take_serial(
        &mut self,
        h: ChunkHandle,
        version: u64,
        now_ns: u64,
    ) -> Result<u64, GfsError> {
        self.check_primary(h, version, now_ns)?;
        let lease = self.leases.get_mut(&h).expect("checked");
        let serial = lease.next_serial;
        lease.next_serial += 1;
        lease.mutated = true;
        Ok(serial)
    }

    /// The primary is about to apply a mutation to its replica, stored at `stored_version`. Under
    /// a live lease the stored version is the lease's: a new version replaces or drops the lease
    /// in the same step that stores it (see [`ChunkServerCore::version_set`]).
    pub fn assert_lease_matches(&self, h: ChunkHandle, stored_version: u64, now_ns: u64) {
        if let Some(l) = self.leases.get(&h).filter(|l| l.expires_ns > now_ns) {
            assert_eq!(
                l.version, stored_version,
                "chunk {h}: primary's live lease is at version {} but its replica at {stored_version}",
                l.version
            );
        }
    }

    /// GFS §3.1 step 5, at a secondary: what to do with mutation `serial` of `version`, which
    /// arrived `waited_ns` ago. Never apply it after a newer serial of the same version (but for
    /// bug `arrival_order`). A mutation that arrives ahead of an earlier serial is held until
    /// that one is applied; after the hold time, the earliest held one goes ahead, and a late
    /// earlier serial will be refused. A held mutation must be [`ChunkServerCore::unhold`] when
    /// its request ends, whatever the outcome.
    pub fn admit(
        &mut self,
        h: ChunkHandle,
        version: u64,
        serial: u64,
        waited_ns: u64,
    ) -> Admission {
        if self.arrival_order {
            return Admission::Apply;
        }
        let last = match self.applied.get(&h) {
            Some(&(v, last)) if v == version => last,
            // Nothing known at this version (a restart forgot it): nothing to order against.
            _ => return Admission::Apply,
        };
        if serial <= last {
            return Admission::Refuse { after_serial: last };
        }
        let held = self.held.entry(h).or_default();
        let earliest_held = held
            .iter()
            .filter(|(v, _)| *v == version)
            .map(|(_, s)| *s)
            .next();
        let next = serial == last + 1;
        let gives_up = waited_ns >= self.hold_ns && earliest_held.is_none_or(|e| serial <= e);
        if next || gives_up {
            return Admission::Apply;
        }
        if !held.contains(&(version, serial)) {
            if held.len() >= self.max_held_per_chunk {
                return Admission::Full;
            }
            held.insert((version, serial));
        }
        Admission::Hold
    }

    /// The request of mutation `serial` of `version` ended: it is no longer held.
    pub fn unhold(&mut self, h: ChunkHandle, version: u64, serial: u64) {
        if let Some(held) = self.held.get_mut(&h) {
            held.remove(&(version, serial));
            if held.is_empty() {
                self.held.remove(&h);
            }
        }
    }

    /// Mutation `serial` was applied to the replica stored at `version`.
    pub fn applied(&mut self, h: ChunkHandle, version: u64, serial: u64) {
        self.applied.insert(h, (version, serial));
    }

    /// GFS §4.3: a whole replica at `version` was copied in at `now_ns`, replacing any local one.
    /// It starts over: no lease, no serial applied, and no corruption reported.
    pub fn replica_copied(&mut self, h: ChunkHandle, version: u64, now_ns: u64) {
        self.leases.remove(&h);
        self.applied.insert(h, (version, 0));
        self.reported.retain(|(c, _)| *c != h);
        self.installed_ns.insert(h, now_ns);
    }

    /// GFS §4.4: the master had the replica deleted.
    pub fn replica_deleted(&mut self, h: ChunkHandle) {
        self.leases.remove(&h);
        self.applied.remove(&h);
        self.installed_ns.remove(&h);
    }

    /// Whether the master's order to delete replica `h`, judged from the report taken at
    /// `snapshot_ns`, applies to the replica held now. Not if the replica was copied in at or
    /// after that instant: the master judged the one it replaced (a stale copy, or a copy it had
    /// trimmed), not this one, which it may have just asked for. (The version alone cannot tell
    /// them apart: a copy takes the version of its source.)
    pub fn garbage_applies(&self, h: ChunkHandle, snapshot_ns: u64) -> bool {
        self.installed_ns.get(&h).is_none_or(|&t| t < snapshot_ns)
    }

    /// GFS §5.2: replica `h` at `version` failed its checksum. True the first time (to trace it);
    /// the report to the master is repeated anyway, since it can be lost.
    pub fn note_corrupt(&mut self, h: ChunkHandle, version: u64) -> bool {
        self.reported.insert((h, version))
    }

    /// GFS §3.2: keeps pushed data until its mutation comes.
    pub fn push(&mut self, id: DataId, data: Arc<Vec<u8>>) {
        self.buffer.insert(id, data);
    }

    /// Pushed data for a mutation.
    pub fn data(&self, id: &DataId) -> Result<Arc<Vec<u8>>, GfsError> {
        self.buffer.get(id).ok_or_else(|| {
            crate::coverage::hit(Probe::PushedDataMissing);
            GfsError::DataNotFound
        })
    }

    /// GFS §3.3: where a record of `len` bytes goes in a chunk that ends at `end`. A record that
    /// fits exactly is written; one that does not fit pads the chunk (or, with bug
    /// `append_no_pad`, is cut at the chunk's end).
    pub fn plan_append(&self, end: u64, len: u64) -> AppendPlan {
        if end >= self.chunk_size_bytes {
            AppendPlan::Full
        } else if end + len <= self.chunk_size_bytes {
            AppendPlan::Fits { offset: end }
        } else if self.append_no_pad {
            AppendPlan::Cut {
                offset: end,
                keep: self.chunk_size_bytes - end,
            }
        } else {
            AppendPlan::Pad { from: end }
        }
    }

    /// GFS §3.1: the leases to ask the master to extend in a heartbeat reporting the state of
    /// `snapshot_ns`: those mutated since the last heartbeat and still live then. They are no
    /// longer due until mutated again.
    pub fn leases_to_extend(&mut self, snapshot_ns: u64) -> Vec<(ChunkHandle, u64)> {
        if self.no_extension {
            return Vec::new(); // bug `no_lease_extension`
        }
        self.leases
            .iter_mut()
            .filter(|(_, l)| l.mutated && l.expires_ns > snapshot_ns)
            .map(|(h, l)| {
                l.mutated = false;
                (*h, l.version)
            })
            .collect()
    }

    /// Applies the master's extensions, (chunk, version, new expiry): only to a lease still held
    /// at that version, and only forward in time. Returns those applied, in the master's order.
    pub fn extend_leases(
        &mut self,
        extended: &[(ChunkHandle, u64, u64)],
    ) -> Vec<(ChunkHandle, u64, u64)> {
        let mut applied = Vec::new();
        for &(h, v, until) in extended {
            if let Some(l) = self.leases.get_mut(&h) {
                if l.version == v && until > l.expires_ns {
                    l.expires_ns = until;
                    applied.push((h, v, until));
                }
            }
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: ChunkHandle = ChunkHandle(7);
    const G: ChunkHandle = ChunkHandle(8);

    fn cfg(bugs: &[Bug]) -> ClusterConfig {
        ClusterConfig {
            chunk_size_bytes: 64,
            push_buffer_entries: 3,
            push_buffer_bytes: 200,
            bugs: bugs.iter().copied().collect(),
            ..ClusterConfig::default()
        }
    }

    fn id(seq: u64) -> DataId {
        DataId { client: 0, seq }
    }

    /// A core that holds a lease on `H` at version 2 until 1 000 ns.
    fn primary() -> ChunkServerCore {
        let mut core = ChunkServerCore::new(&cfg(&[]));
        assert_eq!(core.version_set(H, 2, Some(1_000), 0), Some(1_000));
        core
    }

    #[test]
    fn take_serial_needs_a_live_lease_at_the_version() {
        struct Case {
            name: &'static str,
            chunk: ChunkHandle,
            version: u64,
            now_ns: u64,
            want: Result<u64, GfsError>,
        }
        let cases = [
            Case {
                name: "live lease, right version: first serial",
                chunk: H,
                version: 2,
                now_ns: 999,
                want: Ok(1),
            },
            Case {
                name: "expired at the boundary instant",
                chunk: H,
                version: 2,
                now_ns: 1_000,
                want: Err(GfsError::NotPrimary),
            },
            Case {
                name: "wrong version",
                chunk: H,
                version: 3,
                now_ns: 10,
                want: Err(GfsError::StaleVersion { have: 2, want: 3 }),
            },
            Case {
                name: "lease not held",
                chunk: G,
                version: 2,
                now_ns: 10,
                want: Err(GfsError::NotPrimary),
            },
        ];
        for c in cases {
            let mut core = primary();
            assert_eq!(
                core.take_serial(c.chunk, c.version, c.now_ns),
                c.want,
                "{}",
                c.name
            );
            let lease = core.leases[&H];
            // Only a granted serial advances the counter and marks the lease for extension.
            assert_eq!(lease.mutated, c.want.is_ok(), "{}", c.name);
            assert_eq!(lease.next_serial, 1 + c.want.is_ok() as u64, "{}", c.name);
        }
        // Bug `primary_ignores_expiry`: the expired lease still numbers, the version still counts.
        let mut buggy = ChunkServerCore::new(&cfg(&[Bug::PrimaryIgnoresExpiry]));
        buggy.version_set(H, 2, Some(1_000), 0);
        assert_eq!(buggy.take_serial(H, 2, 5_000), Ok(1));
        assert!(buggy.take_serial(H, 3, 5_000).is_err());
        // Bug `no_lease_extension`: a mutated, live lease is never offered for extension.
        let mut buggy = ChunkServerCore::new(&cfg(&[Bug::NoLeaseExtension]));
        buggy.version_set(H, 2, Some(1_000), 0);
        assert_eq!(buggy.take_serial(H, 2, 10), Ok(1));
        assert_eq!(buggy.leases_to_extend(20), vec![]);
        let mut honest = primary();
        assert_eq!(honest.take_serial(H, 2, 10), Ok(1));
        assert_eq!(honest.leases_to_extend(20), vec![(H, 2)]);
    }

    #[test]
    fn version_set_takes_a_lease_only_if_it_is_still_live() {
        // (lease expiry sent, now, lease held afterwards)
        let cases: [(Option<u64>, u64, Option<u64>); 4] = [
            (Some(500), 100, Some(500)),
            (Some(500), 500, None), // delayed past its expiry: a secondary
            (None, 100, None),
            (Some(u64::MAX), 0, Some(u64::MAX)),
        ];
        for (sent, now_ns, held) in cases {
            let mut core = primary();
            core.applied(H, 2, 9);
            assert_eq!(
                core.version_set(H, 3, sent, now_ns),
                held,
                "{sent:?} at {now_ns}"
            );
            assert_eq!(core.leases.get(&H).map(|l| l.expires_ns), held);
            assert_eq!(core.leases.get(&H).map(|l| l.version), held.map(|_| 3));
            // Serials start over at the new version.
            assert_eq!(core.applied.get(&H).copied(), Some((3, 0)));
        }
    }

    #[test]
    fn serial_order_at_secondaries() {
        const HOLD: u64 = 100_000_000; // serial_hold_ms of the test config, in ns
        struct Case {
            name: &'static str,
            bugs: &'static [Bug],
            /// Already applied: (version, serial).
            last: Option<(u64, u64)>,
            /// Serials of version 2 already held.
            held: &'static [u64],
            /// Arriving: (version, serial, waited so far in ns).
            arriving: (u64, u64, u64),
            want: Admission,
        }
        let cases = [
            Case {
                name: "nothing applied yet",
                bugs: &[],
                last: None,
                held: &[],
                arriving: (2, 1, 0),
                want: Admission::Apply,
            },
            Case {
                name: "the next serial",
                bugs: &[],
                last: Some((2, 3)),
                held: &[],
                arriving: (2, 4, 0),
                want: Admission::Apply,
            },
            Case {
                name: "ahead of an earlier serial: held",
                bugs: &[],
                last: Some((2, 3)),
                held: &[],
                arriving: (2, 6, 0),
                want: Admission::Hold,
            },
            Case {
                name: "still held just before the hold time",
                bugs: &[],
                last: Some((2, 3)),
                held: &[6],
                arriving: (2, 6, HOLD - 1),
                want: Admission::Hold,
            },
            Case {
                name: "after the hold time the earliest held goes ahead",
                bugs: &[],
                last: Some((2, 3)),
                held: &[5, 6],
                arriving: (2, 5, HOLD),
                want: Admission::Apply,
            },
            Case {
                name: "a later one waits for the earliest held, even past its hold time",
                bugs: &[],
                last: Some((2, 3)),
                held: &[5, 6],
                arriving: (2, 6, 3 * HOLD),
                want: Admission::Hold,
            },
            Case {
                name: "too many held already",
                bugs: &[],
                last: Some((2, 0)),
                held: &[
                    2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                    24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
                    44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
                    64, 65,
                ],
                arriving: (2, 70, 0),
                want: Admission::Full,
            },
            Case {
                name: "the same serial again",
                bugs: &[],
                last: Some((2, 3)),
                held: &[],
                arriving: (2, 3, 0),
                want: Admission::Refuse { after_serial: 3 },
            },
            Case {
                name: "an older serial after a newer one",
                bugs: &[],
                last: Some((2, 3)),
                held: &[],
                arriving: (2, 1, 0),
                want: Admission::Refuse { after_serial: 3 },
            },
            Case {
                name: "serials of a new version start over",
                bugs: &[],
                last: Some((2, 3)),
                held: &[],
                arriving: (3, 1, 0),
                want: Admission::Apply,
            },
            Case {
                name: "bug arrival_order applies the older one",
                bugs: &[Bug::ArrivalOrder],
                last: Some((2, 3)),
                held: &[],
                arriving: (2, 1, 0),
                want: Admission::Apply,
            },
        ];
        for c in cases {
            let mut core = ChunkServerCore::new(&cfg(c.bugs));
            if let Some((v, s)) = c.last {
                core.applied(H, v, s);
            }
            for &s in c.held {
                core.held.entry(H).or_default().insert((2, s));
            }
            let (v, s, waited) = c.arriving;
            assert_eq!(core.admit(H, v, s, waited), c.want, "{}", c.name);
            // A held mutation is registered until its request ends.
            let registered = core.held.get(&H).is_some_and(|h| h.contains(&(v, s)));
            assert_eq!(
                registered,
                c.want == Admission::Hold || c.held.contains(&s),
                "{}",
                c.name
            );
            core.unhold(H, v, s);
            assert!(
                core.held.get(&H).is_none_or(|h| !h.contains(&(v, s))),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn a_deletion_judged_from_an_older_report_spares_a_newer_copy() {
        // (copied in at, report snapshot) -> does the deletion apply?
        let cases = [
            (None, 10, true),      // never copied: the master judged this replica
            (Some(5), 10, true),   // copied before the report: judged
            (Some(10), 10, false), // copied the instant of the report: not judged
            (Some(15), 10, false), // copied after the report: not judged
        ];
        for (copied, snapshot_ns, applies) in cases {
            let mut core = ChunkServerCore::new(&cfg(&[]));
            if let Some(t) = copied {
                core.replica_copied(H, 1, t);
            }
            assert_eq!(core.garbage_applies(H, snapshot_ns), applies, "{copied:?}");
            // Once deleted, the next replica starts with a clean record.
            core.replica_deleted(H);
            assert!(core.garbage_applies(H, snapshot_ns));
        }
    }

    #[test]
    fn extensions_apply_only_at_the_same_version_and_only_later() {
        // (extension offered, applied?) for a lease at version 2 until 1 000 ns
        let cases = [
            ((H, 2, 2_000), true),
            ((H, 2, 1_000), false), // not later
            ((H, 2, 900), false),   // earlier
            ((H, 1, 2_000), false), // an older lease's version
            ((H, 3, 2_000), false), // a version this server does not hold the lease at
            ((G, 2, 2_000), false), // no lease held
        ];
        for (offer, applies) in cases {
            let mut core = primary();
            let got = core.extend_leases(&[offer]);
            assert_eq!(got, if applies { vec![offer] } else { vec![] }, "{offer:?}");
            let want_until = if applies { offer.2 } else { 1_000 };
            assert_eq!(core.leases[&H].expires_ns, want_until, "{offer:?}");
        }
    }

    #[test]
    fn heartbeat_asks_to_extend_only_mutated_unexpired_leases() {
        struct Case {
            name: &'static str,
            mutate: bool,
            snapshot_ns: u64,
            want: Vec<(ChunkHandle, u64)>,
        }
        let cases = [
            Case {
                name: "mutated and live",
                mutate: true,
                snapshot_ns: 999,
                want: vec![(H, 2)],
            },
            Case {
                name: "mutated but expired at the snapshot",
                mutate: true,
                snapshot_ns: 1_000,
                want: vec![],
            },
            Case {
                name: "live but not mutated",
                mutate: false,
                snapshot_ns: 10,
                want: vec![],
            },
        ];
        for c in cases {
            let mut core = primary();
            core.version_set(G, 5, Some(5_000), 0); // never mutated: never asked for
            if c.mutate {
                core.take_serial(H, 2, 0).unwrap();
            }
            assert_eq!(core.leases_to_extend(c.snapshot_ns), c.want, "{}", c.name);
            // Asked once per mutation: the next heartbeat asks for nothing.
            assert_eq!(core.leases_to_extend(c.snapshot_ns), vec![], "{}", c.name);
        }
    }

    #[test]
    fn append_writes_at_the_end_or_pads_or_with_the_bug_cuts() {
        // (bugs, chunk end, record length, plan) with 64-byte chunks
        let cases: [(&[Bug], u64, u64, AppendPlan); 7] = [
            (&[], 0, 16, AppendPlan::Fits { offset: 0 }),
            (&[], 40, 16, AppendPlan::Fits { offset: 40 }),
            (&[], 48, 16, AppendPlan::Fits { offset: 48 }), // exact fit
            (&[], 49, 16, AppendPlan::Pad { from: 49 }),
            (&[], 63, 1, AppendPlan::Fits { offset: 63 }), // the last byte
            (&[], 64, 1, AppendPlan::Full),                // full: no mutation, move on
            (
                &[Bug::AppendNoPad],
                60,
                16,
                AppendPlan::Cut {
                    offset: 60,
                    keep: 4,
                },
            ),
        ];
        for (bugs, end, len, want) in cases {
            let core = ChunkServerCore::new(&cfg(bugs));
            assert_eq!(core.plan_append(end, len), want, "end {end} len {len}");
        }
        let d = id(1);
        assert_eq!(
            AppendPlan::Cut {
                offset: 60,
                keep: 4
            }
            .mutation(d),
            Some(Mutation::WriteCut {
                offset: 60,
                data: d,
                keep: 4
            })
        );
        assert_eq!(AppendPlan::Full.mutation(d), None);
    }

    #[test]
    fn push_buffer_evicts_the_oldest_by_entries_and_by_bytes() {
        struct Case {
            name: &'static str,
            /// Pushes as (id, bytes), in order; bounds are 3 entries and 200 bytes.
            pushes: &'static [(u64, usize)],
            kept: &'static [u64],
            bytes: usize,
        }
        let cases = [
            Case {
                name: "within bounds",
                pushes: &[(1, 10), (2, 20)],
                kept: &[1, 2],
                bytes: 30,
            },
            Case {
                name: "a fourth entry evicts the oldest",
                pushes: &[(1, 10), (2, 20), (3, 30), (4, 40)],
                kept: &[2, 3, 4],
                bytes: 90,
            },
            Case {
                name: "bytes over the bound evict the oldest",
                pushes: &[(1, 60), (2, 60), (3, 90)],
                kept: &[2, 3],
                bytes: 150,
            },
            Case {
                name: "a large push evicts everything older",
                pushes: &[(1, 60), (2, 60), (3, 190)],
                kept: &[3],
                bytes: 190,
            },
            Case {
                name: "a push above the byte bound evicts itself too",
                pushes: &[(1, 10), (2, 201)],
                kept: &[],
                bytes: 0,
            },
            Case {
                name: "re-inserting an id replaces it and makes it the newest",
                pushes: &[(1, 10), (2, 20), (1, 5), (3, 30), (4, 40)],
                kept: &[1, 3, 4],
                bytes: 75,
            },
        ];
        for c in cases {
            // The configured 200 bytes are above two chunks (128), so they are the bound.
            let mut core = ChunkServerCore::new(&cfg(&[]));
            for &(seq, n) in c.pushes {
                core.push(id(seq), Arc::new(vec![seq as u8; n]));
            }
            let kept: Vec<u64> = (1..=4).filter(|&s| core.data(&id(s)).is_ok()).collect();
            assert_eq!(kept, c.kept, "{}", c.name);
            assert_eq!(core.buffer.entries.len(), c.kept.len(), "{}", c.name);
            assert_eq!(core.buffer.bytes, c.bytes, "{}", c.name);
        }
        // Whatever the configured bound, two whole chunks fit.
        let tiny = ClusterConfig {
            push_buffer_bytes: 1,
            ..cfg(&[])
        };
        let mut core = ChunkServerCore::new(&tiny);
        core.push(id(1), Arc::new(vec![0; 64]));
        core.push(id(2), Arc::new(vec![0; 64]));
        assert!(core.data(&id(1)).is_ok() && core.data(&id(2)).is_ok());
        assert_eq!(core.data(&id(9)), Err(GfsError::DataNotFound));
    }

    #[test]
    fn replica_lifecycle_resets_leases_serials_and_reports() {
        let mut core = primary();
        core.applied(H, 2, 4);
        assert!(core.note_corrupt(H, 2));
        assert!(!core.note_corrupt(H, 2), "traced once");
        core.replica_copied(H, 3, 0);
        assert_eq!(core.leases.get(&H), None);
        assert_eq!(core.applied.get(&H).copied(), Some((3, 0)));
        assert!(core.note_corrupt(H, 2), "a copied replica is judged afresh");
        core.version_set(H, 4, Some(100), 0);
        assert_eq!(core.revoke(H).map(|l| l.version), Some(4));
        assert_eq!(core.revoke(H), None);
        core.replica_deleted(H);
        assert_eq!(core.applied.get(&H).copied(), None);
    }

    #[test]
    fn only_a_live_lease_is_compared_with_the_stored_version() {
        let core = primary();
        core.assert_lease_matches(H, 2, 999);
        core.assert_lease_matches(H, 5, 1_000); // expired: no claim
        core.assert_lease_matches(G, 5, 0); // no lease: no claim
    }

    #[test]
    #[should_panic(expected = "primary's live lease is at version 2 but its replica at 3")]
    fn a_live_lease_at_another_version_than_the_replica_is_a_broken_invariant() {
        primary().assert_lease_matches(H, 3, 10);
    }
}
