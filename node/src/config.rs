//! Cluster configuration: sizes, replication and timing, validated before a cluster starts.
//!
//! The paper's defaults (64 MiB chunks, 64 KiB checksum blocks, 60 s leases, GFS §2.5, §5.2, §3.1)
//! are far too large for a simulation that wants to cross chunk boundaries on every run, so the
//! defaults here are tiny (64-byte chunks, 16-byte blocks); any size from 8 bytes to 64 MiB works.

use crate::bugs::Bug;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Everything that shapes a cluster. Units are in the field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Number of chunkservers.
    pub chunkservers: u32,
    /// Replicas per chunk (GFS §2.2: three by default).
    pub replication: u32,
    /// Size of a chunk (GFS §2.5).
    pub chunk_size_bytes: u64,
    /// Size of a checksummed block inside a chunk (GFS §5.2).
    pub block_size_bytes: u64,
    /// Lease duration granted to a primary (GFS §3.1).
    pub lease_ms: u64,
    /// Interval between chunkserver heartbeats to the master (GFS §2.6.2).
    pub heartbeat_ms: u64,
    /// A chunkserver not heard from for this long is considered dead by the master.
    pub server_timeout_ms: u64,
    /// Timeout of one RPC attempt.
    pub rpc_timeout_ms: u64,
    /// Attempts a client makes for one operation before giving up with `Unavailable`.
    pub client_max_attempts: u32,
    /// How long a client trusts a cached chunk location (GFS §2.7.1).
    pub location_cache_ms: u64,
    /// Bound on the chunkserver's buffer of pushed data (GFS §3.2), in entries.
    pub push_buffer_entries: usize,
    /// Bound on the chunkserver's buffer of pushed data, in bytes.
    pub push_buffer_bytes: usize,
    /// The master writes a checkpoint and starts a new log after this many log records (GFS §2.6.3).
    pub checkpoint_every_records: u64,
    /// A deleted file's hidden copy is reclaimed this long after deletion (GFS §4.4: three days).
    pub gc_delay_ms: u64,
    /// Bound on chunk copies the master runs at once (GFS §4.3 limits clone traffic).
    pub max_concurrent_clones: usize,
    /// Bound on mutations of one chunk a secondary holds at once for an earlier serial; one more
    /// is refused, and its client tries again.
    pub max_held_per_chunk: usize,
    /// Bound on full chunks one record-append attempt may skip (GFS §3.3) before it fails and its
    /// client tries again. Many appenders racing for small chunks each skip one chunk per round
    /// the others fill (a 64-byte chunk holds four small records, so a hundred appenders take 25
    /// rounds).
    pub max_append_hops: u32,
    /// Bound on [`ClusterConfig::serial_hold_ms`]: a secondary gives up waiting for an earlier
    /// serial after at most this long, applies what it holds, and refuses the earlier one if it
    /// arrives after all (its client tries again).
    pub max_serial_hold_ms: u64,
    /// How often a chunkserver verifies every block of every replica it holds (GFS §5.2).
    pub scrub_interval_ms: u64,
    /// Receive loops the master runs per request kind (see [`crate::rpc::handle`]): madsim holds
    /// every received message for at least a millisecond in the loop that received it, so one loop
    /// takes at most 1,000 requests of a kind per simulated second. [`ClusterConfig::receivers_for`]
    /// sizes this to the nodes that call the master: every chunkserver and client.
    #[serde(default = "one")]
    pub master_receivers_per_kind: u32,
    /// Receive loops each chunkserver runs per request kind. One in every run for now: it paces a
    /// primary under a burst of clients (see `sim::options::RunOptions::cluster`).
    #[serde(default = "one")]
    pub chunkserver_receivers_per_kind: u32,
    /// Planted bugs switched on (see [`crate::bugs`]); empty in every honest run.
    #[serde(default)]
    pub bugs: BTreeSet<Bug>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            chunkservers: 5,
            replication: 3,
            chunk_size_bytes: 64,
            block_size_bytes: 16,
            lease_ms: 1_000,
            heartbeat_ms: 200,
            server_timeout_ms: 1_000,
            rpc_timeout_ms: 300,
            client_max_attempts: 6,
            location_cache_ms: 2_000,
            push_buffer_entries: 16,
            push_buffer_bytes: 1 << 20,
            checkpoint_every_records: 64,
            gc_delay_ms: 2_000,
            max_concurrent_clones: 2,
            max_held_per_chunk: 64,
            max_append_hops: 64,
            max_serial_hold_ms: u64::MAX,
            scrub_interval_ms: 1_000,
            master_receivers_per_kind: 1,
            chunkserver_receivers_per_kind: 1,
            bugs: BTreeSet::new(),
        }
    }
}

/// Most chunkservers a cluster may have (the paper's clusters had hundreds, GFS §6.3).
pub const MAX_CHUNKSERVERS: u32 = 2_000;

/// Largest chunk size the simulation accepts: the paper's 64 MiB.
pub const MAX_CHUNK_SIZE_BYTES: u64 = 64 << 20;

fn one() -> u32 {
    1
}

/// Most receive loops a node runs per request kind.
pub const MAX_RECEIVERS_PER_KIND: u32 = 256;

impl ClusterConfig {
    /// Receive loops per request kind for a node that `callers` nodes may call: one per ten, so
    /// that heartbeats from 1,000 chunkservers (5,000 a second at the default interval) and the
    /// requests of many clients reach the master without queueing behind each other. One for the
    /// default cluster's eight nodes. (Chunkservers keep one: see `chunkserver_receivers_per_kind`.)
    pub fn receivers_for(callers: u32) -> u32 {
        (1 + callers / 10).min(MAX_RECEIVERS_PER_KIND)
    }

    /// Push-buffer entries for a chunkserver that `clients` clients push data to: four per client
    /// (a write that crosses a chunk boundary pushes twice, and a failed attempt leaves its data
    /// behind), at least 16. Data waits there only until its mutation is applied, so the bound is
    /// reached in ordinary runs and eviction (GFS §3.2: the buffer is an LRU cache) is exercised
    /// rather than only written.
    pub fn push_buffer_for(clients: u32) -> usize {
        (4 * clients as usize).max(16)
    }

    /// Whether planted bug `b` is switched on.
    pub fn has(&self, b: Bug) -> bool {
        self.bugs.contains(&b)
    }

    /// Rejects impossible combinations with a one-line explanation.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("chunkservers", self.chunkservers as u64),
            ("replication", self.replication as u64),
            ("chunk_size_bytes", self.chunk_size_bytes),
            ("block_size_bytes", self.block_size_bytes),
            ("lease_ms", self.lease_ms),
            ("heartbeat_ms", self.heartbeat_ms),
            ("server_timeout_ms", self.server_timeout_ms),
            ("rpc_timeout_ms", self.rpc_timeout_ms),
            ("client_max_attempts", self.client_max_attempts as u64),
            ("push_buffer_entries", self.push_buffer_entries as u64),
            ("push_buffer_bytes", self.push_buffer_bytes as u64),
            ("checkpoint_every_records", self.checkpoint_every_records),
            ("gc_delay_ms", self.gc_delay_ms),
            ("max_concurrent_clones", self.max_concurrent_clones as u64),
            ("max_held_per_chunk", self.max_held_per_chunk as u64),
            ("max_append_hops", self.max_append_hops as u64),
            ("max_serial_hold_ms", self.max_serial_hold_ms),
            ("scrub_interval_ms", self.scrub_interval_ms),
            (
                "master_receivers_per_kind",
                self.master_receivers_per_kind as u64,
            ),
            (
                "chunkserver_receivers_per_kind",
                self.chunkserver_receivers_per_kind as u64,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be greater than zero"));
            }
        }
        if self.replication > self.chunkservers {
            return Err(format!(
                "replication {} is above the number of chunkservers {}: replicas must sit on distinct servers",
                self.replication, self.chunkservers
            ));
        }
        let receivers = [
            self.master_receivers_per_kind,
            self.chunkserver_receivers_per_kind,
        ];
        if receivers.iter().any(|&r| r > MAX_RECEIVERS_PER_KIND) {
            return Err(format!(
                "at most {MAX_RECEIVERS_PER_KIND} receive loops per request kind, got {receivers:?}"
            ));
        }
        if self.chunkservers > MAX_CHUNKSERVERS {
            return Err(format!(
                "at most {MAX_CHUNKSERVERS} chunkservers are supported, got {}",
                self.chunkservers
            ));
        }
        if self.chunk_size_bytes < 8 {
            return Err(format!(
                "chunk_size_bytes {} is below the minimum of 8",
                self.chunk_size_bytes
            ));
        }
        if self.chunk_size_bytes > MAX_CHUNK_SIZE_BYTES {
            return Err(format!(
                "chunk_size_bytes {} is above the maximum of {MAX_CHUNK_SIZE_BYTES} (64 MiB)",
                self.chunk_size_bytes
            ));
        }
        if self.block_size_bytes > self.chunk_size_bytes {
            return Err(format!(
                "block_size_bytes {} is larger than chunk_size_bytes {}",
                self.block_size_bytes, self.chunk_size_bytes
            ));
        }
        if self.server_timeout_ms <= self.heartbeat_ms {
            return Err(format!(
                "server_timeout_ms {} must exceed heartbeat_ms {}, or every server looks dead",
                self.server_timeout_ms, self.heartbeat_ms
            ));
        }
        Ok(())
    }

    /// Largest record a record append accepts: a quarter of a chunk (GFS §3.3), at least one byte.
    pub fn max_record_bytes(&self) -> u64 {
        (self.chunk_size_bytes / 4).max(1)
    }

    /// Replicas that must take a lease's version before the lease is usable: two, or one if the
    /// chunk has a single replica. So no acknowledged mutation lives on only one disk.
    pub fn min_lease_replicas(&self) -> usize {
        (self.replication as usize).min(2)
    }

    /// How long after a lease expires the master waits before copying the chunk: longer than any
    /// acknowledged mutation of that lease can still be in flight (a client's RPC timeout).
    pub fn clone_quiet_ms(&self) -> u64 {
        2 * self.rpc_timeout_ms
    }

    /// How long a client keeps retrying an operation (beyond `client_max_attempts`, within a hard
    /// cap): long enough for the cluster to recover from one lost chunkserver, which takes the
    /// master noticing it (`server_timeout_ms`), its lease running out (`lease_ms`), the quiet
    /// period before a copy (`clone_quiet_ms`) and a copy and a grant (an RPC timeout).
    pub fn client_retry_window_ms(&self) -> u64 {
        self.server_timeout_ms + self.lease_ms + self.clone_quiet_ms() + self.rpc_timeout_ms
    }

    /// How long a secondary holds a mutation that arrived ahead of an earlier serial before giving
    /// the earlier one up (GFS §3.1: replicas apply mutations in serial order). A third of an RPC
    /// timeout, so a held mutation is still answered before its primary gives up on it; less
    /// when `max_serial_hold_ms` bounds it.
    pub fn serial_hold_ms(&self) -> u64 {
        (self.rpc_timeout_ms / 3).clamp(1, self.max_serial_hold_ms)
    }

    /// How long a freshly started master waits before granting leases: long enough for every lease
    /// granted by a previous incarnation to expire and for every live chunkserver to report in.
    pub fn master_grace_ms(&self) -> u64 {
        self.lease_ms.max(2 * self.heartbeat_ms) + self.heartbeat_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        ClusterConfig::default().validate().unwrap();
    }

    #[test]
    fn rejects_impossible_combinations() {
        let bad = |f: fn(&mut ClusterConfig)| {
            let mut c = ClusterConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.replication = 6).contains("replication 6"));
        assert!(bad(|c| c.chunk_size_bytes = 0).contains("chunk_size_bytes"));
        assert!(bad(|c| c.chunk_size_bytes = 4).contains("minimum"));
        assert!(bad(|c| c.block_size_bytes = 128).contains("block_size_bytes"));
        assert!(bad(|c| c.chunkservers = 0).contains("chunkservers"));
        assert!(bad(|c| c.server_timeout_ms = 100).contains("server_timeout_ms"));
        let mut big = ClusterConfig {
            chunk_size_bytes: 64 << 20,
            block_size_bytes: 64 << 10,
            ..ClusterConfig::default()
        };
        big.validate().unwrap();
        big.chunk_size_bytes = 8;
        big.block_size_bytes = 8;
        big.validate().unwrap();
    }
}
