//! The scenario file format, and its translation to and from the plans a run executes.
//!
//! A scenario file is a [`Scenario`] written in TOML. Its `[cluster]` table is
//! [`RunOptions`] itself (the CLI's flags, `--chunk-size` as `chunk_size`); its `[[op]]` and
//! `[[fault]]` entries are [`ScriptedOp`] and [`ScriptedFault`], which translate one to one into
//! the workload's [`OpSpec`] and the nemesis's [`Fault`] and back. Reading a scenario
//! ([`super::load`]) and writing one (the shrinker's [`Scenario::from_plans`] then
//! [`Scenario::to_toml`]) go through these same types, so what `sim shrink` writes is what
//! `sim scenario` reads.

use crate::faults::{Fault, FaultKind, FaultPlan, Target, What};
use crate::options::RunOptions;
use crate::workload::{OpSpec, Plan};
use node::trace::NodeName;
use serde::{Deserialize, Serialize};

/// A scenario file, as written. Field order is file order: values before tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub description: String,
    /// The seed for the simulator's own choices.
    #[serde(default)]
    pub seed: u64,
    /// The chunkserver whose disk tears writes and rots bits (`csN`); implied by torn_write and
    /// bit_flip faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faulty_disk: Option<String>,
    /// Files client 0 creates before the scripted operations start.
    #[serde(default)]
    pub files: Vec<String>,
    /// Cluster options and planted bugs: the same table as the CLI's flags. A scenario scripts
    /// its own operations and faults, so `workload`, `files`, `ops`, `faults` and `rate` are not
    /// allowed.
    #[serde(default)]
    pub cluster: RunOptions,
    #[serde(default, rename = "op", skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<ScriptedOp>,
    #[serde(default, rename = "fault", skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<ScriptedFault>,
    #[serde(default)]
    pub expect: Expect,
}

/// One client operation, `at_ms` after the cluster has booted (client 0 creates `files` right
/// then, which takes a few tens of milliseconds: start operations at 100 or later).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedOp {
    /// When, in ms after boot. Either this or `after_ms`, the same for all of a client's ops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// Or: a pause after the client's previous operation completed (what generated workloads and
    /// shrunk scenarios use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    pub client: u32,
    /// create, delete, list, read, read_deleted, write or append.
    pub op: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Bytes to read, or (with `byte`) bytes to write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// Text to write or append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Or the bytes in hexadecimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_hex: Option<String>,
    /// Fill byte for a write or append of `len` bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte: Option<u8>,
    /// For an append: wrap the data in a self-identifying record with this id
    /// ([`crate::records`]), so the checks can find every copy of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u32>,
}

/// One fault, `at_ms` after the cluster has booted (the same clock as operations), or when a node
/// reaches the fault point `at_point` (what `sim explore` writes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedFault {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at_ms: u64,
    /// A fault point (`cs2 after sync #3 of FILE`, `client0 sends write_chunk #2 to cs1`; see
    /// `sim explore`): the fault strikes when the run reaches it, if it does during the safety
    /// phase. With it, kind is crash, master_crash or pause (of the node at the point), loss (the
    /// message is lost) or delay (it arrives `lasts_ms` after its caller gave up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_point: Option<String>,
    /// A fault kind: crash, master_crash, pause, isolate, partition, one_way, delay, loss,
    /// torn_write, bit_flip.
    pub kind: String,
    #[serde(default)]
    pub lasts_ms: u64,
    /// `master`, `csN`, `clientN`, or `primary:/path#index` (the chunk's primary at that moment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// For partition: the nodes on one side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Vec<String>>,
    /// For one_way: the link's ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// For loss at a point: lose the answer instead of the request (the request is served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<bool>,
}

/// What must be observed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Every correctness check passes (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub checks_pass: bool,
    /// The cluster converges after healing and serves every later operation (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub converges: bool,
    /// Event kinds that must appear at least once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Outcomes of scripted operations, by their 1-based number in the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<ExpectOp>,
    /// Replica counts and versions of chunks at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ExpectChunk>,
    /// The check that must fail (a check's name, or `liveness`): for scenarios that capture a bug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fails: Option<String>,
    /// Every record an acknowledged append carried is read back exactly once: no duplicate, as no
    /// append was retried (record append is only at least once, GFS §3.3).
    #[serde(default, skip_serializing_if = "is_false")]
    pub records_once: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            checks_pass: true,
            converges: true,
            events: Vec::new(),
            ops: Vec::new(),
            chunks: Vec::new(),
            fails: None,
            records_once: false,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectOp {
    /// 1-based number of the `[[op]]` in the file.
    pub op: usize,
    /// `ok` or an error kind (`not_found`, `record_too_large`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// A region state (GFS Table 1, as the `table1` check judges it) among the regions the
    /// operation left: `defined`, `consistent`, `inconsistent`, `duplicate`, `padding`,
    /// `superseded`, `not landed` or `unknown offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// For a read: whether it was stale, i.e. missed a mutation that completed before it began
    /// (GFS §2.7.1; as sweeps count stale reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectChunk {
    pub path: String,
    pub index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<u64>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` as a file writes them: text when they are printable ASCII, hexadecimal otherwise.
fn data_fields(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let text = bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if text {
        (Some(String::from_utf8_lossy(bytes).into_owned()), None)
    } else {
        (None, Some(hex(bytes)))
    }
}

impl ScriptedOp {
    /// The operation as a file writes it: step `ms` of `client`, an absolute time or (if
    /// `after`) a pause after the previous step. An append of a whole record is written as its
    /// id and payload.
    pub fn from_spec(client: u32, ms: u64, after: bool, spec: &OpSpec) -> ScriptedOp {
        let mut o = ScriptedOp {
            at_ms: (!after).then_some(ms),
            after_ms: after.then_some(ms),
            client,
            op: spec.kind().to_string(),
            path: spec.path().map(str::to_string),
            ..ScriptedOp::default()
        };
        match spec {
            OpSpec::Create { .. } | OpSpec::Delete { .. } | OpSpec::List => {}
            OpSpec::Read { offset, len, .. } | OpSpec::ReadDeleted { offset, len, .. } => {
                o.offset = Some(*offset);
                o.len = Some(*len);
            }
            OpSpec::Write { offset, data, .. } => {
                o.offset = Some(*offset);
                (o.data, o.data_hex) = data_fields(data);
            }
            OpSpec::Append { data, .. } => match crate::records::whole(data) {
                Some((id, payload)) => {
                    o.record = Some(id);
                    (o.data, o.data_hex) = data_fields(payload);
                }
                None => (o.data, o.data_hex) = data_fields(data),
            },
        }
        o
    }

    /// The operation this entry describes.
    pub fn spec(&self) -> Result<OpSpec, String> {
        let path = || {
            self.path
                .clone()
                .ok_or_else(|| format!("{} needs `path`", self.op))
        };
        let data = || -> Result<Vec<u8>, String> {
            if let Some(hex) = &self.data_hex {
                if self.data.is_some() || self.byte.is_some() {
                    return Err("give one of `data`, `data_hex`, or `byte` and `len`".into());
                }
                return (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|b| u8::from_str_radix(b, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
                    .filter(|_| hex.len() % 2 == 0)
                    .ok_or_else(|| "`data_hex` is not an even number of hex digits".to_string());
            }
            match (&self.data, self.byte, self.len) {
                (Some(d), None, None) => Ok(d.as_bytes().to_vec()),
                (None, Some(b), Some(n)) if n <= 1 << 20 => Ok(vec![b; n as usize]),
                (None, Some(_), Some(_)) => Err("`len` above 1 MiB".into()),
                _ => Err(format!("{} needs `data`, or `byte` and `len`", self.op)),
            }
        };
        Ok(match self.op.as_str() {
            "create" => OpSpec::Create { path: path()? },
            "delete" => OpSpec::Delete { path: path()? },
            "list" => OpSpec::List,
            "read" => OpSpec::Read {
                path: path()?,
                offset: self.offset.unwrap_or(0),
                len: self.len.ok_or("read needs `len`")?,
            },
            "read_deleted" => OpSpec::ReadDeleted {
                path: path()?,
                offset: self.offset.unwrap_or(0),
                len: self.len.ok_or("read_deleted needs `len`")?,
            },
            "write" => OpSpec::Write {
                path: path()?,
                offset: self.offset.ok_or("write needs `offset`")?,
                data: data()?,
            },
            "append" => OpSpec::Append {
                path: path()?,
                data: match self.record {
                    Some(id) if id > crate::records::MAX_ID => {
                        return Err(format!(
                            "`record` id {id} is above {}",
                            crate::records::MAX_ID
                        ))
                    }
                    Some(id) => crate::records::encode(id, &data()?),
                    None => data()?,
                },
            },
            other => {
                return Err(format!(
                    "unknown op {other:?} (create, delete, list, read, read_deleted, write, append)"
                ))
            }
        })
    }
}

/// Parses a node name of a file: `master`, `csN`, `clientN` or `primary:/path#index` (which is
/// added to `primaries`, the chunks whose primary a fault targets).
pub fn parse_target(
    s: &str,
    opts: &RunOptions,
    primaries: &mut Vec<(String, u64)>,
) -> Result<Target, String> {
    if s == "master" {
        return Ok(Target::Master);
    }
    if let Some(rest) = s.strip_prefix("primary:") {
        let (path, index) = rest
            .rsplit_once('#')
            .ok_or_else(|| format!("node {s:?}: write primary:/path#chunk-index"))?;
        let index = index
            .parse()
            .map_err(|_| format!("node {s:?}: {index:?} is not a chunk index"))?;
        primaries.push((path.to_string(), index));
        return Ok(Target::PrimaryOf(primaries.len() as u32 - 1));
    }
    let numbered = |prefix: &str, count: u32| -> Option<Result<u32, String>> {
        let n = s.strip_prefix(prefix)?.parse::<u32>().ok()?;
        Some(if n < count {
            Ok(n)
        } else {
            Err(format!("node {s:?}: there are only {count} {prefix} nodes"))
        })
    };
    if let Some(n) = numbered("cs", opts.chunkservers) {
        return n.map(Target::Chunkserver);
    }
    if let Some(n) = numbered("client", opts.clients) {
        return n.map(Target::Client);
    }
    Err(format!(
        "unknown node {s:?} (master, csN, clientN or primary:/path#index)"
    ))
}

/// A target's name in a file (the inverse of [`parse_target`]).
fn target_name(t: Target, primaries: &[(String, u64)]) -> String {
    match t {
        Target::PrimaryOf(i) => {
            let (path, index) = &primaries[i as usize];
            format!("primary:{path}#{index}")
        }
        t => t.to_string(),
    }
}

impl ScriptedFault {
    /// The fault as a file writes it, timed from `plan.start_ms` (the end of boot).
    pub fn from_fault(f: &Fault, plan: &FaultPlan) -> ScriptedFault {
        let name = |t: Target| target_name(t, &plan.primary_of);
        if let Some(point) = &f.point {
            // The point names the node (and the message): only the kind and length remain.
            return ScriptedFault {
                at_point: Some(point.to_string()),
                kind: f.kind.to_string(),
                lasts_ms: match f.what {
                    What::DelayMessage { ms } => ms,
                    _ => f.lasts_ms,
                },
                reply: (f.what == What::LoseReply).then_some(true),
                ..ScriptedFault::default()
            };
        }
        let mut out = ScriptedFault {
            at_ms: f.at_ms - plan.start_ms,
            kind: f.kind.to_string(),
            lasts_ms: f.lasts_ms,
            ..ScriptedFault::default()
        };
        match &f.what {
            // A master crash names no node: the kind says which.
            What::Crash { .. } if f.kind == FaultKind::MasterCrash => {}
            What::Crash { node }
            | What::Pause { node }
            | What::Isolate { node }
            | What::BitFlip { node } => out.node = Some(name(*node)),
            What::Partition { side } => out.side = Some(side.iter().map(|t| name(*t)).collect()),
            What::OneWay { from, to } => {
                out.from = Some(name(*from));
                out.to = Some(name(*to));
            }
            What::Delay { max_latency_ms } => out.max_latency_ms = Some(*max_latency_ms),
            What::Loss { percent } => out.percent = Some(*percent),
            What::LoseMessage | What::DelayMessage { .. } | What::LoseReply => {
                unreachable!("message faults strike at points")
            }
        }
        out
    }

    /// The fault of an entry with `at_point`.
    fn point_fault(&self, point: &str, opts: &RunOptions) -> Result<Fault, String> {
        let point: node::points::Point = point.parse()?;
        let kind: FaultKind = self.kind.parse()?;
        if self.reply.is_some() && kind != FaultKind::Loss {
            return Err(format!("`reply` is for a loss at a point, not {kind}"));
        }
        if self.at_ms != 0 || self.side.is_some() || self.from.is_some() || self.to.is_some() {
            return Err(format!(
                "a fault at_point strikes when the point is reached: it takes no at_ms, side, \
                 from or to (point {point})"
            ));
        }
        // The node at the point, unless `node` names another (a chunkserver paused when it is
        // offered a lease).
        let node = match (&self.node, point.node) {
            (Some(name), _) => parse_target(name, opts, &mut Vec::new())?,
            (None, NodeName::Master) => Target::Master,
            (None, NodeName::Cs(s)) => Target::Chunkserver(s.0),
            (None, NodeName::Client(c)) => Target::Client(c),
            (None, other) => return Err(format!("no fault can strike {other}")),
        };
        if matches!(node, Target::PrimaryOf(_)) {
            return Err("a fault at_point names a node, not a chunk's primary".to_string());
        }
        let (what, lasts_ms) = match kind {
            FaultKind::Crash | FaultKind::MasterCrash => {
                if (kind == FaultKind::MasterCrash) != (node == Target::Master) {
                    return Err(format!(
                        "{kind} at {point}: crash a chunkserver or client, master_crash the master"
                    ));
                }
                (What::Crash { node }, self.lasts_ms)
            }
            FaultKind::Pause => (What::Pause { node }, self.lasts_ms),
            FaultKind::Loss | FaultKind::Delay => {
                if !matches!(point.site, node::points::Site::Send { .. }) {
                    return Err(format!(
                        "{kind} at {point}: only a message can be lost or delayed"
                    ));
                }
                if kind == FaultKind::Loss && self.reply == Some(true) {
                    (What::LoseReply, 0)
                } else if kind == FaultKind::Loss {
                    (What::LoseMessage, 0)
                } else {
                    (What::DelayMessage { ms: self.lasts_ms }, 0)
                }
            }
            other => {
                return Err(format!(
                "{other} cannot strike at a point (crash, master_crash, pause, loss or delay can)"
            ))
            }
        };
        Ok(Fault {
            at_ms: 0,
            lasts_ms,
            kind,
            what,
            point: Some(point),
        })
    }

    /// The fault this entry describes, at `boot_ms + at_ms`; targets a chunk's primary through
    /// `primaries`.
    pub fn fault(
        &self,
        opts: &RunOptions,
        boot_ms: u64,
        primaries: &mut Vec<(String, u64)>,
    ) -> Result<Fault, String> {
        if let Some(point) = &self.at_point {
            return self.point_fault(point, opts);
        }
        let kind: FaultKind = self.kind.parse()?;
        let node = |name: &Option<String>,
                    field: &str,
                    prims: &mut Vec<(String, u64)>|
         -> Result<Target, String> {
            let name = name
                .as_ref()
                .ok_or(format!("{} needs `{field}`", self.kind))?;
            parse_target(name, opts, prims)
        };
        let what = match kind {
            FaultKind::Crash | FaultKind::TornWrite => What::Crash {
                node: node(&self.node, "node", primaries)?,
            },
            FaultKind::MasterCrash => What::Crash {
                node: Target::Master,
            },
            FaultKind::Pause => What::Pause {
                node: node(&self.node, "node", primaries)?,
            },
            FaultKind::Isolate => What::Isolate {
                node: node(&self.node, "node", primaries)?,
            },
            FaultKind::BitFlip => What::BitFlip {
                node: node(&self.node, "node", primaries)?,
            },
            FaultKind::OneWay => What::OneWay {
                from: node(&self.from, "from", primaries)?,
                to: node(&self.to, "to", primaries)?,
            },
            FaultKind::Partition => {
                let names = self.side.as_ref().ok_or("partition needs `side`")?;
                let side = names
                    .iter()
                    .map(|n| parse_target(n, opts, primaries))
                    .collect::<Result<_, _>>()?;
                What::Partition { side }
            }
            FaultKind::Delay => What::Delay {
                max_latency_ms: self.max_latency_ms.unwrap_or(100),
            },
            FaultKind::Loss => What::Loss {
                percent: self.percent.unwrap_or(20).min(100),
            },
        };
        Ok(Fault {
            at_ms: boot_ms + self.at_ms,
            lasts_ms: self.lasts_ms,
            kind,
            what,
            point: None,
        })
    }
}

impl Scenario {
    /// A scenario that replays `plan` and `faults` under `seed` with `opts`. Each client's steps
    /// keep their timing (pauses, or absolute times); the options a script replaces (the
    /// generated workload's size, the fault kinds and rates) are left at their defaults.
    pub fn from_plans(
        description: String,
        seed: u64,
        opts: &RunOptions,
        plan: &Plan,
        faults: &FaultPlan,
    ) -> Scenario {
        let defaults = RunOptions::default();
        let cluster = RunOptions {
            workload: defaults.workload,
            files: defaults.files,
            ops_per_client: defaults.ops_per_client,
            faults: defaults.faults,
            rates: Vec::new(),
            ..opts.clone()
        };
        let ops = plan
            .clients
            .iter()
            .flat_map(|script| {
                script.steps.iter().map(|(ms, spec)| {
                    ScriptedOp::from_spec(script.client, *ms, !script.absolute, spec)
                })
            })
            .collect();
        Scenario {
            description,
            seed,
            faulty_disk: faults
                .faulty_disk
                .map(|n| Target::Chunkserver(n).to_string()),
            files: plan.files.clone(),
            cluster,
            ops,
            faults: faults
                .faults
                .iter()
                .map(|f| ScriptedFault::from_fault(f, faults))
                .collect(),
            expect: Expect::default(),
        }
    }

    /// The scenario as a file.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scenario serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated workload and fault plan, written as a scenario and read back, are the same
    /// plans: writing and reading use one schema.
    #[test]
    fn generated_plans_round_trip_through_a_scenario_file() {
        for (seed, flags) in [
            (1, RunOptions::default()),
            (
                7,
                RunOptions {
                    chunk_size_bytes: 8,
                    block_size_bytes: 8,
                    replication: 2,
                    faults: "all".parse().unwrap(),
                    bugs: vec![node::Bug::EarlyLease],
                    ..RunOptions::default()
                },
            ),
        ] {
            let plan = crate::workload::generate(seed, &flags);
            let boot = crate::run::boot_ms(&flags.cluster());
            let faults = crate::faults::plan(seed, &flags, boot);
            assert!(!faults.faults.is_empty());
            let text = Scenario::from_plans("x".into(), seed, &flags, &plan, &faults).to_toml();
            let loaded =
                super::super::parse("x", "x.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(loaded.plan, plan, "{text}");
            assert_eq!(loaded.faults.faults, faults.faults, "{text}");
            assert_eq!(loaded.faults.faulty_disk, faults.faulty_disk);
            assert_eq!(loaded.options.bugs, flags.bugs);
            assert_eq!(loaded.options.cluster(), flags.cluster());
        }
    }

    #[test]
    fn records_are_written_by_id_and_text_as_text() {
        let record = crate::records::encode(42, b"hello");
        let o = ScriptedOp::from_spec(
            1,
            10,
            true,
            &OpSpec::Append {
                path: "/a".into(),
                data: record.clone(),
            },
        );
        assert_eq!((o.record, o.data.as_deref()), (Some(42), Some("hello")));
        assert_eq!(
            o.spec().unwrap(),
            OpSpec::Append {
                path: "/a".into(),
                data: record
            }
        );
        let w = ScriptedOp::from_spec(
            0,
            5,
            false,
            &OpSpec::Write {
                path: "/a".into(),
                offset: 3,
                data: vec![0, 0xff],
            },
        );
        assert_eq!((w.at_ms, w.data_hex.as_deref()), (Some(5), Some("00ff")));
    }
}
