//! What shapes a run besides its seed: cluster configuration and workload size.
//!
//! [`RunOptions`] is the one schema for these: the same struct is the CLI's flags (clap), a
//! scenario file's `[cluster]` table (serde), and the flags a reproduce command prints
//! ([`RunOptions::flags`], derived from the other two). A flag `--chunk-size` is `chunk_size` in a
//! file, so a new option is a new field here and its use, nothing else.
//!
//! A failing seed is only reproducible together with these, so [`RunOptions::reproduce_command`]
//! prints every option that differs from its default next to the seed.

use crate::faults::{FaultSpec, KindRate};
use crate::workload::Workload;
use clap::Args;
use node::ClusterConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Options of one run; also the CLI flags shared by `run` and `sweep`, and a scenario's
/// `[cluster]` table. Every serde name is its flag's long name with `_` for `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(default, deny_unknown_fields)]
pub struct RunOptions {
    /// The paper's parameters as defaults (GFS §2.5, §3.1, §3.3, §5.2, §6): 64 MiB chunks, 64 KiB
    /// checksum blocks, 60 s leases (records up to 16 MiB follow from the chunk size), 300
    /// chunkservers heartbeating every 12 s (the default's five heartbeats a lease, and its 25 a
    /// second at the master). Any flag given besides overrides its part.
    #[arg(long)]
    #[serde(skip)]
    pub paper: bool,
    /// Number of chunkservers.
    #[arg(
        long,
        default_value_t = 5,
        default_value_if("paper", "true", PAPER_CHUNKSERVERS)
    )]
    pub chunkservers: u32,
    /// Replicas per chunk.
    #[arg(long, default_value_t = 3)]
    pub replication: u32,
    /// Chunk size in bytes (8 bytes to 64 MiB).
    #[arg(
        long = "chunk-size",
        default_value_t = 64,
        default_value_if("paper", "true", PAPER_CHUNK_SIZE_BYTES)
    )]
    #[serde(rename = "chunk_size")]
    pub chunk_size_bytes: u64,
    /// Checksum block size in bytes; at most the chunk size.
    #[arg(
        long = "block-size",
        default_value_t = 16,
        default_value_if("paper", "true", PAPER_BLOCK_SIZE_BYTES)
    )]
    #[serde(rename = "block_size")]
    pub block_size_bytes: u64,
    /// Lease duration in milliseconds of simulated time.
    #[arg(
        long = "lease-ms",
        default_value_t = 1_000,
        default_value_if("paper", "true", PAPER_LEASE_MS)
    )]
    pub lease_ms: u64,
    /// Heartbeat interval in milliseconds of simulated time.
    #[arg(
        long = "heartbeat-ms",
        default_value_t = 200,
        default_value_if("paper", "true", PAPER_HEARTBEAT_MS)
    )]
    pub heartbeat_ms: u64,
    /// Timeout of one RPC attempt, in milliseconds of simulated time.
    #[arg(long = "rpc-timeout-ms", default_value_t = 300)]
    pub rpc_timeout_ms: u64,
    /// What the clients do: `mixed` (the default: every operation on a few shared files), `hot`
    /// (many clients on one chunk), `log` (producers appending, a consumer reading), `large`
    /// (large sequential files) or `small_files`.
    #[arg(long, value_enum, default_value_t = Workload::Mixed)]
    #[serde(skip_serializing_if = "is_default_workload")]
    pub workload: Workload,
    /// Concurrent workload clients.
    #[arg(long, default_value_t = 3)]
    pub clients: u32,
    /// Files the workload shares between its clients.
    #[arg(long, default_value_t = 4)]
    #[serde(skip_serializing_if = "is_default_files")]
    pub files: u32,
    /// Operations each client performs.
    #[arg(long = "ops", default_value_t = 12)]
    #[serde(rename = "ops", skip_serializing_if = "is_default_ops")]
    pub ops_per_client: u32,
    /// Length of the safety phase, in simulated milliseconds: faults strike only during it.
    #[arg(long = "safety-ms", default_value_t = 5_000)]
    pub safety_ms: u64,
    /// Upper bound of a disk sync's latency, in simulated microseconds.
    #[arg(long = "disk-latency-us", default_value_t = 500)]
    pub disk_latency_us: u64,
    /// Faults to inject: `swarm` (each seed draws its own kinds and rates), `all`, `none`, or a
    /// list such as `crash,partition,bit_flip`. Kinds: crash, master_crash, pause, isolate,
    /// partition, one_way, delay, loss, torn_write, bit_flip.
    #[arg(long, default_value = "swarm")]
    #[serde(skip_serializing_if = "is_default_faults")]
    pub faults: FaultSpec,
    /// Fix one kind's rate, in strikes per simulated second: `--rate crash=0.5` (repeatable).
    #[arg(long = "rate", value_name = "KIND=PER_SECOND")]
    #[serde(rename = "rate", skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<KindRate>,
    /// The protocol's bounds (a secondary's window of held mutations and its wait for an earlier
    /// serial, a record append's chunk hops, the master's concurrent copies, the push buffer):
    /// `normal`, `tight` (each at its
    /// smallest workable size, so that running into it is common), or `swarm` (the default: one
    /// seed in four draws tight, so the paths behind the bounds run; a scenario file draws
    /// nothing and runs `swarm` as normal).
    #[arg(long, value_enum, default_value_t = Bounds::Swarm)]
    #[serde(skip_serializing_if = "is_default_bounds")]
    pub bounds: Bounds,
    /// Switch on a planted bug (repeatable): ack_before_secondaries, arrival_order,
    /// no_version_bump, early_lease, stale_replicas_current, no_checksum_verify, unsynced_log,
    /// clone_from_stale, append_no_pad, gc_deletes_referenced, no_grace_after_restart,
    /// primary_ignores_expiry, list_shows_hidden, short_pad, gc_ignores_grace,
    /// no_lease_extension, cache_never_expires, hidden_unreadable, copies_at_goal.
    #[arg(long = "bug", value_name = "NAME")]
    #[serde(rename = "bug", alias = "bugs", skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<node::Bug>,
    /// Test only: chunkserver disks acknowledge syncs they never make durable (a broken disk model
    /// the checks must catch). Not a CLI flag; planted bugs get their own switches later.
    #[arg(skip)]
    #[serde(skip)]
    pub lying_disks: bool,
}

/// How tight the protocol's bounds are (`--bounds`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Bounds {
    /// Each seed draws: one in four tight, the others normal ([`RunOptions::for_seed`]).
    #[default]
    Swarm,
    Normal,
    Tight,
}

/// Of [`Bounds::Swarm`] seeds, one in this many draws tight bounds.
const TIGHT_ONE_IN: u32 = 4;

/// A secondary's longest wait for an earlier serial under tight bounds.
const TIGHT_SERIAL_HOLD_MS: u64 = 20;

fn is_default_bounds(b: &Bounds) -> bool {
    *b == Bounds::default()
}

// Options a scenario does not use (it scripts its operations and faults) are left out of files
// that leave them at their defaults.
fn is_default_files(n: &u32) -> bool {
    *n == RunOptions::default().files
}
fn is_default_ops(n: &u32) -> bool {
    *n == RunOptions::default().ops_per_client
}
fn is_default_workload(w: &Workload) -> bool {
    *w == Workload::default()
}
fn is_default_faults(f: &FaultSpec) -> bool {
    *f == RunOptions::default().faults
}

// The `--paper` preset (clap takes these as the flags' text).
const PAPER_CHUNKSERVERS: &str = "300";
const PAPER_CHUNK_SIZE_BYTES: &str = "67108864"; // 64 MiB, GFS §2.5
const PAPER_BLOCK_SIZE_BYTES: &str = "65536"; // 64 KiB, GFS §5.2
const PAPER_LEASE_MS: &str = "60000"; // GFS §3.1
const PAPER_HEARTBEAT_MS: &str = "12000";

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
            rpc_timeout_ms: c.rpc_timeout_ms,
            workload: Workload::Mixed,
            clients: 3,
            files: 4,
            ops_per_client: 12,
            faults: FaultSpec::Swarm,
            rates: Vec::new(),
            safety_ms: 5_000,
            disk_latency_us: 500,
            lying_disks: false,
            bounds: Bounds::Swarm,
            bugs: Vec::new(),
            paper: false,
        }
    }
}

/// How long the master waits to hear from a chunkserver before it counts it dead: five heartbeat
/// intervals, and never less than two heartbeat round trips that each took a whole RPC timeout, so
/// that a live server whose heartbeat is merely slow is not declared dead (which would start
/// copies and trims of its chunks, then undo them when it reports again). Saturates rather than
/// overflow; validation rejects what it cannot represent.
pub fn server_timeout_ms(heartbeat_ms: u64, rpc_timeout_ms: u64) -> u64 {
    let slow = heartbeat_ms
        .saturating_add(rpc_timeout_ms)
        .saturating_mul(2);
    heartbeat_ms.saturating_mul(5).max(slow)
}

// Timing options that cannot work are refused (a correct cluster must never fail a check because
// of them). The bounds below come from what a request does on the simulated network, where a
// message takes up to 10 ms each way (madsim's default latency), and were checked by sweeping each
// option and their smallest combinations (`sim/tests/timing.rs`).

/// Longest one-way message delay with no fault, in ms.
const HOP_MS: u64 = 10;

/// The shortest RPC timeout that works: pushed data crosses every replica in a chain, a hop there
/// and back for each, before the client hears.
pub fn min_rpc_timeout_ms(replication: u32) -> u64 {
    2 * HOP_MS * replication as u64 + 2 * HOP_MS
}

/// The slowest disk that works with an RPC timeout: a write's RPC waits on a sync at the primary,
/// one at a secondary, and four hops.
pub fn max_disk_latency_us(rpc_timeout_ms: u64) -> u64 {
    rpc_timeout_ms.saturating_sub(4 * HOP_MS) * 1_000 / 2
}

/// The shortest lease that works: the grant (three syncs and a round trip) and the mutation after
/// it (a push chain, a write and two syncs) must fit with room to spare, and so must a third of an
/// RPC timeout.
pub fn min_lease_ms(rpc_timeout_ms: u64, disk_latency_us: u64) -> u64 {
    let syncs_ms = 6 * disk_latency_us.div_ceil(1_000);
    (150 + syncs_ms).max(rpc_timeout_ms / 3).max(200)
}

/// Most workload clients a run may have.
pub const MAX_CLIENTS: u32 = 2_000;

impl RunOptions {
    /// The cluster configuration these options describe (timeouts scale with the heartbeat).
    pub fn cluster(&self) -> ClusterConfig {
        let mut cfg = ClusterConfig {
            chunkservers: self.chunkservers,
            replication: self.replication,
            chunk_size_bytes: self.chunk_size_bytes,
            block_size_bytes: self.block_size_bytes,
            lease_ms: self.lease_ms,
            heartbeat_ms: self.heartbeat_ms,
            rpc_timeout_ms: self.rpc_timeout_ms,
            server_timeout_ms: server_timeout_ms(self.heartbeat_ms, self.rpc_timeout_ms),
            // A scrub every five heartbeats: once a second by default, as the cluster's other
            // periods scale with the heartbeat (the paper's preset scrubs once a minute).
            scrub_interval_ms: self.heartbeat_ms.saturating_mul(5),
            master_receivers_per_kind: ClusterConfig::receivers_for(
                self.chunkservers + self.clients,
            ),
            // One, as madsim's own handler: that loop's millisecond per message is, for now, what
            // paces a primary that 1,000 clients hit at once. With a loop per ten clients every
            // request reaches it together, mutations queue past an RPC timeout, and one operation
            // in ten fails with no fault (the primary needs admission control of its own).
            chunkserver_receivers_per_kind: 1,
            push_buffer_entries: ClusterConfig::push_buffer_for(self.clients),
            bugs: self.bugs.iter().copied().collect(),
            ..ClusterConfig::default()
        };
        if self.bounds == Bounds::Tight {
            // Each bound at its smallest workable size. Smaller is not workable: a secondary that
            // held nothing would refuse every mutation that overtook another on the way, so
            // often that writes run out of retries with no fault (measured: 164 of 1,000 seeds);
            // with no hop an append that finds the last chunk full could never move on; with no
            // clone no lost replica would be copied; and the buffer must hold at least the piece
            // each client is pushing.
            cfg.max_held_per_chunk = 1;
            cfg.max_append_hops = 1;
            // Two messages' latency at most: an earlier serial overtaken on the way is sometimes
            // given up, later mutations applied first, and the earlier one refused when it
            // arrives; yet a second mutation still arrives while one is held, often enough to
            // fill the window of one (10 ms reached the first more often, 40 ms never).
            cfg.max_serial_hold_ms = TIGHT_SERIAL_HOLD_MS;
            cfg.max_concurrent_clones = 1;
            cfg.push_buffer_entries = self.clients as usize;
        }
        cfg
    }

    /// These options for `seed`: under `--bounds swarm`, the seed draws tight bounds (one in
    /// four) or normal ones, from a stream of its own, so the draw moves neither the workload
    /// nor the faults. Seeded runs and the shrinker run with this; a run's report keeps the
    /// options as given (the seed draws the same again when it is replayed).
    pub fn for_seed(&self, seed: u64) -> RunOptions {
        let mut o = self.clone();
        if o.bounds == Bounds::Swarm {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x626f_756e_6473_2121);
            o.bounds = if rng.gen_ratio(1, TIGHT_ONE_IN) {
                Bounds::Tight
            } else {
                Bounds::Normal
            };
        }
        o
    }

    /// Rejects options no cluster or workload can run with, in one line.
    pub fn validate(&self) -> Result<(), String> {
        // Each rule names the flag as typed (`--chunk-size`), with the value and why.
        let range = |flag: &str, v: u64, lo: u64, hi: u64, why: &str| -> Result<(), String> {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                };
                Err(format!(
                    "--{flag} must be between {lo} and {hi}, got {v}{why}"
                ))
            }
        };
        range(
            "chunkservers",
            self.chunkservers as u64,
            1,
            node::config::MAX_CHUNKSERVERS as u64,
            "",
        )?;
        range(
            "replication",
            self.replication as u64,
            1,
            self.chunkservers as u64,
            "replicas sit on distinct chunkservers",
        )?;
        range(
            "chunk-size",
            self.chunk_size_bytes,
            8,
            node::config::MAX_CHUNK_SIZE_BYTES,
            "8 bytes to the paper's 64 MiB",
        )?;
        range(
            "block-size",
            self.block_size_bytes,
            1,
            self.chunk_size_bytes,
            "a checksum block lies within a chunk",
        )?;
        range("heartbeat-ms", self.heartbeat_ms, 1, 60_000, "")?;
        range(
            "rpc-timeout-ms",
            self.rpc_timeout_ms,
            min_rpc_timeout_ms(self.replication),
            60_000,
            "pushed data crosses every replica and back within one RPC, at up to 10 ms a hop",
        )?;
        range(
            "disk-latency-us",
            self.disk_latency_us,
            0,
            max_disk_latency_us(self.rpc_timeout_ms),
            "a write waits on two disk syncs and four network hops within one RPC timeout \
             (--rpc-timeout-ms)",
        )?;
        range(
            "lease-ms",
            self.lease_ms,
            min_lease_ms(self.rpc_timeout_ms, self.disk_latency_us),
            600_000,
            "a lease must outlast its grant and the mutation that follows (at least 200 ms, six \
             disk syncs (--disk-latency-us) and a third of --rpc-timeout-ms)",
        )?;
        range("clients", self.clients as u64, 1, MAX_CLIENTS as u64, "")?;
        range("files", self.files as u64, 1, 1_000, "")?;
        range("ops", self.ops_per_client as u64, 0, 10_000, "")?;
        range("safety-ms", self.safety_ms, 0, 600_000, "")?;
        self.faults_apply()?;
        // What the node crate checks besides (nothing above should let it fail).
        self.cluster().validate()
    }

    /// Fault options that would be silently ignored are errors instead.
    fn faults_apply(&self) -> Result<(), String> {
        let kinds = match &self.faults {
            FaultSpec::Swarm => None,
            FaultSpec::Kinds(k) => Some(k),
        };
        for r in &self.rates {
            if kinds.is_some_and(|k| !k.contains(&r.kind)) {
                return Err(format!(
                    "--rate {r}: {} is not among --faults {}; add it there",
                    r.kind, self.faults
                ));
            }
        }
        if self.replication < 2 {
            let disk_faults = |k: &crate::faults::FaultKind| crate::faults::needs_faulty_disk(*k);
            if let Some(k) = kinds.and_then(|k| k.iter().find(|k| disk_faults(k))) {
                return Err(format!(
                    "--faults {k} needs --replication 2 or more: a faulty disk is repaired from \
                     another replica"
                ));
            }
            if let Some(r) = self.rates.iter().find(|r| disk_faults(&r.kind)) {
                return Err(format!("--rate {r} needs --replication 2 or more"));
            }
        }
        Ok(())
    }

    /// The flags that differ from the defaults, as they would be typed, in `--help`'s order.
    /// Derived from the two schemas above: each flag's long name (clap) is its field's serde
    /// name with `-` for `_`, and a field's value is compared and printed through serde.
    pub fn flags(&self) -> String {
        let table = |o: &RunOptions| toml::Table::try_from(o).expect("options serialize");
        let (mine, defaults) = (table(self), table(&RunOptions::default()));
        let cmd = RunOptions::augment_args(clap::Command::new("sim"));
        let mut out = String::new();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let key = long.replace('-', "_");
            let value = mine.get(&key);
            if value == defaults.get(&key) {
                continue;
            }
            let values = match value {
                Some(toml::Value::Array(items)) => items.clone(),
                Some(v) => vec![v.clone()],
                None => vec![], // skipped when serialized: at its default
            };
            for v in values {
                match v {
                    toml::Value::String(s) => out.push_str(&format!(" --{long} {s}")),
                    v => out.push_str(&format!(" --{long} {v}")),
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: RunOptions,
    }

    fn parse(flags: &str) -> RunOptions {
        let args = std::iter::once("sim").chain(flags.split_whitespace());
        Cli::try_parse_from(args).expect("flags parse").opts
    }

    #[test]
    fn swarm_bounds_draw_tight_for_about_one_seed_in_four_and_only_tight_changes_the_cluster() {
        let swarm = RunOptions::default();
        assert_eq!(swarm.bounds, Bounds::Swarm);
        let tight: Vec<u64> = (0..400)
            .filter(|&s| swarm.for_seed(s).bounds == Bounds::Tight)
            .collect();
        assert!((70..130).contains(&tight.len()), "{}", tight.len());
        for s in 0..400 {
            let drawn = swarm.for_seed(s);
            assert_eq!(drawn, swarm.for_seed(s), "the draw is the seed's");
            assert_ne!(drawn.bounds, Bounds::Swarm);
            assert_eq!(
                RunOptions {
                    bounds: drawn.bounds,
                    ..swarm.clone()
                },
                drawn
            );
        }
        // Given bounds are never redrawn.
        let normal = parse("--bounds normal");
        let tight_opts = parse("--bounds tight");
        assert!(
            (0..50).all(|s| normal.for_seed(s) == normal && tight_opts.for_seed(s) == tight_opts)
        );
        // Normal and swarm are the default cluster; tight shrinks each bound, nothing else.
        assert_eq!(normal.cluster(), swarm.cluster());
        let (n, t) = (normal.cluster(), tight_opts.cluster());
        assert!(t.max_held_per_chunk < n.max_held_per_chunk);
        assert!(t.max_append_hops < n.max_append_hops);
        assert!(t.serial_hold_ms() < n.serial_hold_ms());
        assert!(t.max_concurrent_clones < n.max_concurrent_clones);
        assert!(t.push_buffer_entries < n.push_buffer_entries);
        let relaxed = node::ClusterConfig {
            max_held_per_chunk: n.max_held_per_chunk,
            max_append_hops: n.max_append_hops,
            max_serial_hold_ms: n.max_serial_hold_ms,
            max_concurrent_clones: n.max_concurrent_clones,
            push_buffer_entries: n.push_buffer_entries,
            ..t.clone()
        };
        assert_eq!(relaxed, n);
        assert_eq!(t.validate(), Ok(()));
        // A reproduce command names given bounds, and a file can give them.
        assert_eq!(tight_opts.flags(), " --bounds tight");
        let file: RunOptions = toml::from_str("bounds = \"tight\"").unwrap();
        assert_eq!(file, tight_opts);
    }

    #[test]
    fn the_paper_preset_sets_defaults_that_flags_override() {
        let paper = parse("--paper");
        assert_eq!(
            (paper.chunk_size_bytes, paper.block_size_bytes),
            (64 << 20, 64 << 10)
        );
        assert_eq!((paper.lease_ms, paper.heartbeat_ms), (60_000, 12_000));
        assert_eq!(paper.chunkservers, 300);
        assert_eq!(paper.cluster().max_record_bytes(), 16 << 20, "GFS §3.3");
        assert!(paper.validate().is_ok(), "{:?}", paper.validate());
        let mine = parse("--paper --chunkservers 20 --lease-ms 30000");
        assert_eq!((mine.chunkservers, mine.lease_ms), (20, 30_000));
        assert_eq!(mine.chunk_size_bytes, 64 << 20);
        // Its reproduce line spells the values out, and they parse back to the same run.
        let back = parse(&paper.flags());
        assert_eq!(
            RunOptions {
                paper: true,
                ..back
            },
            paper
        );
    }

    #[test]
    fn flags_print_what_differs_and_parse_back_to_the_same_options() {
        assert_eq!(RunOptions::default().flags(), "");
        let cases = [
            " --replication 2 --chunk-size 8 --block-size 8",
            " --chunkservers 3 --clients 8 --files 2 --ops 20",
            " --lease-ms 500 --heartbeat-ms 50 --safety-ms 2000 --disk-latency-us 10",
            " --faults none",
            " --faults crash,partition --rate crash=0.5 --rate partition=2",
            " --bug early_lease --bug unsynced_log",
        ];
        for flags in cases {
            let opts = parse(flags);
            assert_ne!(opts, RunOptions::default(), "{flags}");
            assert_eq!(opts.flags(), flags);
            assert_eq!(parse(&opts.flags()), opts);
        }
    }

    #[test]
    fn a_file_table_is_the_same_schema() {
        let opts = parse(" --chunk-size 8 --block-size 8 --faults none --bug early_lease");
        let text = toml::to_string(&opts).unwrap();
        assert!(text.contains("chunk_size = 8") && text.contains("bug = [\"early_lease\"]"));
        assert_eq!(toml::from_str::<RunOptions>(&text).unwrap(), opts);
        // Unset keys take their defaults; `bugs` is accepted for `bug`; typos are errors.
        let partial: RunOptions =
            toml::from_str("replication = 2\nbugs = [\"early_lease\"]").unwrap();
        assert_eq!(partial.replication, 2);
        assert_eq!(partial.bugs, opts.bugs);
        assert_eq!(partial.chunk_size_bytes, 64);
        let typo = toml::from_str::<RunOptions>("chunk_sise = 8").unwrap_err();
        assert!(
            typo.to_string().contains("unknown field `chunk_sise`"),
            "{typo}"
        );
    }
}
