//! What shapes a run besides its seed: cluster configuration and workload size.
//!
//! A failing seed is only reproducible together with these, so [`RunOptions::reproduce_command`]
//! prints every option that differs from its default next to the seed.

use crate::faults::{FaultSpec, KindRate};
use clap::Args;
use node::ClusterConfig;
use serde::{Deserialize, Serialize};

/// Options of one run; also the CLI flags shared by `run` and `sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Args)]
pub struct RunOptions {
    /// Number of chunkservers.
    #[arg(long, default_value_t = 5)]
    pub chunkservers: u32,
    /// Replicas per chunk.
    #[arg(long, default_value_t = 3)]
    pub replication: u32,
    /// Chunk size in bytes (8 bytes to 64 MiB).
    #[arg(long = "chunk-size", default_value_t = 64)]
    pub chunk_size_bytes: u64,
    /// Checksum block size in bytes; at most the chunk size.
    #[arg(long = "block-size", default_value_t = 16)]
    pub block_size_bytes: u64,
    /// Lease duration in milliseconds of simulated time.
    #[arg(long = "lease-ms", default_value_t = 1_000)]
    pub lease_ms: u64,
    /// Heartbeat interval in milliseconds of simulated time.
    #[arg(long = "heartbeat-ms", default_value_t = 200)]
    pub heartbeat_ms: u64,
    /// Concurrent workload clients.
    #[arg(long, default_value_t = 3)]
    pub clients: u32,
    /// Files the workload shares between its clients.
    #[arg(long, default_value_t = 4)]
    pub files: u32,
    /// Operations each client performs.
    #[arg(long = "ops", default_value_t = 12)]
    pub ops_per_client: u32,
    /// Faults to inject: `swarm` (each seed draws its own kinds and rates), `all`, `none`, or a
    /// list such as `crash,partition,bit_flip`. Kinds: crash, master_crash, pause, isolate,
    /// partition, one_way, delay, loss, torn_write, bit_flip.
    #[arg(long, default_value = "swarm")]
    pub faults: FaultSpec,
    /// Fix one kind's rate, in strikes per simulated second: `--rate crash=0.5` (repeatable).
    #[arg(long = "rate", value_name = "KIND=PER_SECOND")]
    pub rates: Vec<KindRate>,
    /// Length of the safety phase, in simulated milliseconds: faults strike only during it.
    #[arg(long = "safety-ms", default_value_t = 5_000)]
    pub safety_ms: u64,
    /// Upper bound of a disk sync's latency, in simulated microseconds.
    #[arg(long = "disk-latency-us", default_value_t = 500)]
    pub disk_latency_us: u64,
    /// Switch on a planted bug (repeatable): ack_before_secondaries, arrival_order,
    /// no_version_bump, early_lease, stale_replicas_current, no_checksum_verify, unsynced_log,
    /// clone_from_stale, append_no_pad, gc_deletes_referenced, no_grace_after_restart.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<node::Bug>,
    /// Test only: chunkserver disks acknowledge syncs they never make durable (a broken disk model
    /// the checks must catch). Not a CLI flag; planted bugs get their own switches later.
    #[arg(skip)]
    pub lying_disks: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        let c = ClusterConfig::default();
        RunOptions {
            chunkservers: c.chunkservers,
            replication: c.replication,
            chunk_size_bytes: c.chunk_size_bytes,
            block_size_bytes: c.block_size_bytes,
            lease_ms: c.lease_ms,
            heartbeat_ms: c.heartbeat_ms,
            clients: 3,
            files: 4,
            ops_per_client: 12,
            faults: FaultSpec::Swarm,
            rates: Vec::new(),
            safety_ms: 5_000,
            disk_latency_us: 500,
            lying_disks: false,
            bugs: Vec::new(),
        }
    }
}

impl RunOptions {
    /// The cluster configuration these options describe (timeouts scale with the heartbeat).
    pub fn cluster(&self) -> ClusterConfig {
        ClusterConfig {
            chunkservers: self.chunkservers,
            replication: self.replication,
            chunk_size_bytes: self.chunk_size_bytes,
            block_size_bytes: self.block_size_bytes,
            lease_ms: self.lease_ms,
            heartbeat_ms: self.heartbeat_ms,
            server_timeout_ms: 5 * self.heartbeat_ms,
            bugs: self.bugs.iter().copied().collect(),
            ..ClusterConfig::default()
        }
    }

    /// Rejects options no cluster or workload can run with, in one line.
    pub fn validate(&self) -> Result<(), String> {
        self.cluster().validate()?;
        if self.clients == 0 || self.clients > 200 {
            return Err(format!(
                "clients must be between 1 and 200, got {}",
                self.clients
            ));
        }
        if self.files == 0 || self.files > 1_000 {
            return Err(format!(
                "files must be between 1 and 1000, got {}",
                self.files
            ));
        }
        if self.ops_per_client > 100_000 {
            return Err(format!(
                "ops must be at most 100000, got {}",
                self.ops_per_client
            ));
        }
        if self.safety_ms > 600_000 {
            return Err(format!(
                "safety-ms must be at most 600000, got {}",
                self.safety_ms
            ));
        }
        if self.disk_latency_us > 1_000_000 {
            return Err(format!(
                "disk-latency-us must be at most 1000000, got {}",
                self.disk_latency_us
            ));
        }
        Ok(())
    }

    /// The flags that differ from the defaults, as they would be typed.
    pub fn flags(&self) -> String {
        let d = RunOptions::default();
        let mut out = String::new();
        let mut flag = |name: &str, v: u64, dv: u64| {
            if v != dv {
                out.push_str(&format!(" --{name} {v}"));
            }
        };
        flag(
            "chunkservers",
            self.chunkservers as u64,
            d.chunkservers as u64,
        );
        flag("replication", self.replication as u64, d.replication as u64);
        flag("chunk-size", self.chunk_size_bytes, d.chunk_size_bytes);
        flag("block-size", self.block_size_bytes, d.block_size_bytes);
        flag("lease-ms", self.lease_ms, d.lease_ms);
        flag("heartbeat-ms", self.heartbeat_ms, d.heartbeat_ms);
        flag("clients", self.clients as u64, d.clients as u64);
        flag("files", self.files as u64, d.files as u64);
        flag("ops", self.ops_per_client as u64, d.ops_per_client as u64);
        flag("safety-ms", self.safety_ms, d.safety_ms);
        flag("disk-latency-us", self.disk_latency_us, d.disk_latency_us);
        if self.faults != d.faults {
            out.push_str(&format!(" --faults {}", self.faults));
        }
        for r in &self.rates {
            out.push_str(&format!(" --rate {r}"));
        }
        for b in &self.bugs {
            out.push_str(&format!(" --bug {b}"));
        }
        out
    }

    /// The one command that replays `seed` with these options.
    pub fn reproduce_command(&self, seed: u64) -> String {
        format!(
            "cargo run --release -p sim -- run --seed {seed}{}",
            self.flags()
        )
    }
}
