//! The nemesis's plan: which faults a run injects, when, and for how long.
//!
//! Like the workload, the plan is a plain value drawn from the seed (its own ChaCha stream) before
//! the run starts, so it can be printed, compared and later shrunk. By default every seed also
//! draws *which* kinds are on and how often they strike (swarm testing, as in TigerBeetle's VOPR):
//! a seed that only partitions finds different bugs than one that only crashes.
//!
//! Faults happen in the *safety phase*; at its end every fault is healed and the cluster must
//! converge (the liveness phase, in `run.rs`). Faults are recoverable by construction (the "fault
//! atlas" idea): crashes keep what was synced, and only one chunkserver per seed has a faulty disk
//! (torn writes, bit flips), so every chunk keeps a good, up-to-date replica somewhere.

use crate::options::RunOptions;
use node::points::Point;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Every kind of fault the nemesis can inject. The enum lives in `node::trace` beside the events
/// that name it; the rates at which each strikes are the harness's business, here.
pub use node::trace::FaultKind;

/// Every fault kind, in a fixed order.
pub const ALL_KINDS: [FaultKind; 10] = FaultKind::ALL;

/// A kind's default strikes per simulated second of the safety phase, in thousandths.
pub fn base_rate_milli(kind: FaultKind) -> u32 {
    match kind {
        FaultKind::Crash => 400,
        FaultKind::MasterCrash => 150,
        FaultKind::Pause => 200,
        FaultKind::Isolate => 300,
        FaultKind::Partition => 200,
        FaultKind::OneWay => 300,
        FaultKind::Delay => 300,
        FaultKind::Loss => 300,
        FaultKind::TornWrite => 300,
        FaultKind::BitFlip => 600,
    }
}

/// Kinds that need a faulty disk, hence at least two replicas to stay recoverable.
pub fn needs_faulty_disk(kind: FaultKind) -> bool {
    matches!(kind, FaultKind::TornWrite | FaultKind::BitFlip)
}

/// Which faults a run may inject: `--faults swarm|all|none|KIND,KIND,...` (the same text in files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FaultSpec {
    /// Each seed draws its own subset of kinds and their rates.
    Swarm,
    /// Exactly these kinds (possibly none).
    Kinds(BTreeSet<FaultKind>),
}

impl FromStr for FaultSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "swarm" => Ok(FaultSpec::Swarm),
            "all" => Ok(FaultSpec::Kinds(ALL_KINDS.into_iter().collect())),
            "none" => Ok(FaultSpec::Kinds(BTreeSet::new())),
            "" => Err("no fault kinds given: write none for no faults".to_string()),
            list => list
                .split(',')
                .map(FaultKind::from_str)
                .collect::<Result<_, _>>()
                .map(FaultSpec::Kinds),
        }
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultSpec::Swarm => f.write_str("swarm"),
            FaultSpec::Kinds(k) if k.is_empty() => f.write_str("none"),
            FaultSpec::Kinds(k) if k.len() == ALL_KINDS.len() => f.write_str("all"),
            FaultSpec::Kinds(k) => {
                let names: Vec<_> = k.iter().map(|k| k.name()).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// A fixed rate for one kind: `--rate crash=0.8` (strikes per simulated second; the same text in
/// files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KindRate {
    pub kind: FaultKind,
    pub per_second_milli: u32,
}

impl FromStr for KindRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, r) = s.split_once('=').ok_or_else(|| {
            format!("rate {s:?} must look like KIND=PER_SECOND, for example crash=0.5")
        })?;
        let kind = k.parse()?;
        let rate: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("rate {s:?}: {r:?} is not a number"))?;
        if !(0.0..=100.0).contains(&rate) {
            return Err(format!("rate {s:?}: must be between 0 and 100 per second"));
        }
        Ok(KindRate {
            kind,
            per_second_milli: (rate * 1000.0).round() as u32,
        })
    }
}

impl fmt::Display for KindRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind, self.per_second_milli as f64 / 1000.0)
    }
}

/// The text form of a value that parses from and prints to text, for serde.
macro_rules! serde_as_text {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    )*};
}

serde_as_text!(FaultSpec, KindRate);

/// A node a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Target {
    Master,
    Chunkserver(u32),
    Client(u32),
    /// The current primary of a chunk, found when the fault strikes: an index into
    /// [`FaultPlan::primary_of`]. Only scripted scenarios use it.
    PrimaryOf(u32),
}

impl Target {
    /// The node as traces name it. Only for resolved targets: a chunk's primary is resolved to a
    /// chunkserver when the fault strikes.
    pub fn node_name(self) -> node::trace::NodeName {
        use node::trace::NodeName;
        match self {
            Target::Master => NodeName::Master,
            Target::Chunkserver(i) => NodeName::Cs(node::ServerId(i)),
            Target::Client(i) => NodeName::Client(i),
            Target::PrimaryOf(_) => unreachable!("a chunk's primary is resolved before use"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Master => f.write_str("master"),
            Target::Chunkserver(i) => write!(f, "cs{i}"),
            Target::Client(i) => write!(f, "client{i}"),
            Target::PrimaryOf(i) => write!(f, "primary#{i}"),
        }
    }
}

/// What one fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum What {
    Crash {
        node: Target,
    },
    Pause {
        node: Target,
    },
    Isolate {
        node: Target,
    },
    /// `side` cannot reach anyone outside it.
    Partition {
        side: Vec<Target>,
    },
    OneWay {
        from: Target,
        to: Target,
    },
    Delay {
        max_latency_ms: u64,
    },
    Loss {
        percent: u32,
    },
    BitFlip {
        node: Target,
    },
    /// The request sent at the fault's point is lost (exploration; GFS §2.3's network drops it).
    LoseMessage,
    /// The request sent at the fault's point reaches its handler `ms` after its caller gave up.
    DelayMessage {
        ms: u64,
    },
    /// The request sent at the fault's point is served, but its answer is lost.
    LoseReply,
}

/// For people: `client0`, `side [master, cs3]`, `cs1 -> master`, `145 ms`, `18%`.
impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Crash { node }
            | What::Pause { node }
            | What::Isolate { node }
            | What::BitFlip { node } => write!(f, "{node}"),
            What::Partition { side } => {
                let names: Vec<String> = side.iter().map(Target::to_string).collect();
                write!(f, "side [{}]", names.join(", "))
            }
            What::OneWay { from, to } => write!(f, "{from} -> {to}"),
            What::Delay { max_latency_ms } => write!(f, "up to {max_latency_ms} ms"),
            What::Loss { percent } => write!(f, "{percent}%"),
            What::LoseMessage => f.write_str("the message"),
            What::DelayMessage { ms } => write!(f, "the message by {ms} ms past its timeout"),
            What::LoseReply => f.write_str("the reply"),
        }
    }
}

/// One fault: injected at `at_ms` (simulated time since the start), or, if it names a `point`,
/// when a node reaches that fault point ([`node::points`]) during the safety phase; healed
/// `lasts_ms` later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub at_ms: u64,
    pub lasts_ms: u64,
    pub kind: FaultKind,
    #[serde(flatten)]
    pub what: What,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "point_as_text"
    )]
    pub point: Option<Point>,
}

fn point_as_text<S: serde::Serializer>(p: &Option<Point>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&p.to_string()),
        None => s.serialize_none(),
    }
}

/// Everything the nemesis will do in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultPlan {
    /// Kinds switched on, with their rates (thousandths of a strike per second).
    pub rates: BTreeMap<FaultKind, u32>,
    /// The one chunkserver whose disk tears writes and rots bits, if those kinds are on.
    pub faulty_disk: Option<u32>,
    /// Faults in the order they strike.
    pub faults: Vec<Fault>,
    /// Chunks named by [`Target::PrimaryOf`], as (path, chunk index).
    pub primary_of: Vec<(String, u64)>,
    /// The safety phase: faults strike in `[start_ms, end_ms)`; everything is healed at `end_ms`.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Count the run's fault points ([`node::points`]) and strike the faults that name one. Off,
    /// a run does exactly what it did before points existed.
    pub points: bool,
}

/// Draws the plan for `seed`. `start_ms` is when the workload starts (after boot).
pub fn plan(seed: u64, opts: &RunOptions, start_ms: u64) -> FaultPlan {
    // A stream of its own, so changing the workload does not move the faults and vice versa.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
    let end_ms = start_ms + opts.safety_ms;
    let fixed: BTreeMap<FaultKind, u32> = opts
        .rates
        .iter()
        .map(|r| (r.kind, r.per_second_milli))
        .collect();
    let mut rates = BTreeMap::new();
    match &opts.faults {
        FaultSpec::Kinds(kinds) => {
            for &k in kinds {
                rates.insert(k, fixed.get(&k).copied().unwrap_or(base_rate_milli(k)));
            }
        }
        FaultSpec::Swarm => {
            // Each kind is on with probability one half, at half, once or twice its base rate.
            // A kind given a rate (`--rate`) is always on, at that rate.
            rates.extend(fixed.iter().map(|(k, r)| (*k, *r)));
            while rates.is_empty() {
                for k in ALL_KINDS {
                    if rng.gen_bool(0.5) {
                        let scale = [500, 1000, 2000][rng.gen_range(0..3)];
                        let rate = fixed
                            .get(&k)
                            .copied()
                            .unwrap_or(base_rate_milli(k) * scale / 1000);
                        rates.insert(k, rate);
                    }
                }
            }
        }
    }
    // Torn writes and bit flips need a second replica to repair from.
    if opts.replication < 2 {
        rates.retain(|k, _| !needs_faulty_disk(*k));
    }
    rates.retain(|_, r| *r > 0);
    let faulty_disk = rates
        .keys()
        .any(|k| needs_faulty_disk(*k))
        .then(|| rng.gen_range(0..opts.chunkservers));
    let lease = opts.lease_ms;
    let mut nodes: Vec<Target> = vec![Target::Master];
    nodes.extend((0..opts.chunkservers).map(Target::Chunkserver));
    nodes.extend((0..opts.clients).map(Target::Client));
    let cs = |rng: &mut ChaCha8Rng| Target::Chunkserver(rng.gen_range(0..opts.chunkservers));
    let mut faults = Vec::new();
    for (&kind, &rate) in &rates {
        // Strikes: the expected count, rounded at random, each at a uniform time in the phase.
        let expected_milli = rate as u64 * opts.safety_ms / 1000;
        let mut count = expected_milli / 1000;
        if rng.gen_range(0..1000) < expected_milli % 1000 {
            count += 1;
        }
        for _ in 0..count.min(1000) {
            let at_ms = rng.gen_range(start_ms..end_ms);
            let (what, lasts_ms) = match kind {
                FaultKind::Crash => (
                    What::Crash { node: cs(&mut rng) },
                    rng.gen_range(100..3_000),
                ),
                FaultKind::MasterCrash => (
                    What::Crash {
                        node: Target::Master,
                    },
                    rng.gen_range(100..2_000),
                ),
                FaultKind::Pause => {
                    // Longer than a lease, so a primary wakes up with an expired lease.
                    (
                        What::Pause { node: cs(&mut rng) },
                        rng.gen_range(lease + 100..2 * lease + 500),
                    )
                }
                FaultKind::Isolate => {
                    let node = nodes[rng.gen_range(0..nodes.len())];
                    (What::Isolate { node }, rng.gen_range(200..2_500))
                }
                FaultKind::Partition => {
                    let mut side: Vec<Target> = nodes
                        .iter()
                        .copied()
                        .filter(|_| rng.gen_bool(0.5))
                        .collect();
                    if side.is_empty() || side.len() == nodes.len() {
                        side = vec![nodes[rng.gen_range(0..nodes.len())]];
                    }
                    (What::Partition { side }, rng.gen_range(300..3_000))
                }
                FaultKind::OneWay => {
                    let from = nodes[rng.gen_range(0..nodes.len())];
                    let mut to = nodes[rng.gen_range(0..nodes.len())];
                    while to == from {
                        to = nodes[rng.gen_range(0..nodes.len())];
                    }
                    (What::OneWay { from, to }, rng.gen_range(200..2_000))
                }
                FaultKind::Delay => (
                    What::Delay {
                        max_latency_ms: rng.gen_range(20..200),
                    },
                    rng.gen_range(300..3_000),
                ),
                FaultKind::Loss => (
                    What::Loss {
                        percent: rng.gen_range(5..30),
                    },
                    rng.gen_range(300..2_000),
                ),
                FaultKind::TornWrite => {
                    let node = Target::Chunkserver(faulty_disk.expect("faulty disk chosen"));
                    (What::Crash { node }, rng.gen_range(100..1_500))
                }
                FaultKind::BitFlip => {
                    let node = Target::Chunkserver(faulty_disk.expect("faulty disk chosen"));
                    (What::BitFlip { node }, 0)
                }
            };
            faults.push(Fault {
                at_ms,
                lasts_ms,
                kind,
                what,
                point: None,
            });
        }
    }
    faults.sort_by_key(|f| (f.at_ms, f.kind));
    FaultPlan {
        rates,
        faulty_disk,
        faults,
        start_ms,
        end_ms,
        primary_of: Vec::new(),
        points: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_rates_parse_and_print_back() {
        for s in ["swarm", "all", "none", "crash,partition", "bit_flip"] {
            let spec: FaultSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert!("crash,bogus"
            .parse::<FaultSpec>()
            .unwrap_err()
            .contains("unknown fault kind"));
        let r: KindRate = "one-way=0.25".parse().unwrap();
        assert_eq!(
            r,
            KindRate {
                kind: FaultKind::OneWay,
                per_second_milli: 250
            }
        );
        assert_eq!(r.to_string(), "one_way=0.25");
        assert!("crash".parse::<KindRate>().is_err());
        assert!("crash=fast".parse::<KindRate>().is_err());
    }

    #[test]
    fn plans_are_seeded_and_swarm_varies_the_kinds() {
        let opts = RunOptions {
            faults: FaultSpec::Swarm,
            ..RunOptions::default()
        };
        assert_eq!(plan(3, &opts, 1000), plan(3, &opts, 1000));
        let mut kind_sets = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            let p = plan(seed, &opts, 1000);
            kind_sets.insert(p.rates.keys().copied().collect::<Vec<_>>());
            for f in &p.faults {
                seen.insert(f.kind);
                assert!(f.at_ms >= p.start_ms && f.at_ms < p.end_ms);
                if let What::Pause { .. } = f.what {
                    assert!(f.lasts_ms > opts.lease_ms, "a pause outlasts a lease");
                }
                if needs_faulty_disk(f.kind) {
                    let node = match f.what {
                        What::Crash { node } | What::BitFlip { node } => node,
                        _ => unreachable!(),
                    };
                    assert_eq!(
                        node,
                        Target::Chunkserver(p.faulty_disk.unwrap()),
                        "one faulty disk"
                    );
                }
            }
        }
        assert!(
            kind_sets.len() > 50,
            "swarm draws many different subsets: {}",
            kind_sets.len()
        );
        assert_eq!(seen.len(), ALL_KINDS.len(), "every kind strikes somewhere");
        // No disk faults with a single replica: nothing to repair from.
        let single = RunOptions {
            replication: 1,
            faults: "all".parse().unwrap(),
            ..opts.clone()
        };
        assert!(plan(1, &single, 0)
            .rates
            .keys()
            .all(|k| !needs_faulty_disk(*k)));
        let none = RunOptions {
            faults: "none".parse().unwrap(),
            ..opts
        };
        assert!(plan(1, &none, 0).faults.is_empty());
    }
}
