//! The seeded random workload: what each client does, decided before the run starts.
//!
//! The plan comes from its own ChaCha generator seeded with the run's seed, not from the simulator,
//! so it is a plain value: printable, comparable, and later shrinkable into a scenario file.
//!
//! What the clients do is a [`Workload`] profile (`--workload`). The default, `mixed`, is built to
//! exercise the protocol's interesting paths on tiny chunks: writes that cross chunk boundaries and
//! overlap each other, record appends that fill chunks and force padding, reads of ranges being
//! written, deletes and re-creates of files others are using, and occasionally requests the client
//! must refuse (an oversized record). The other profiles ([`profiles`]) load the cluster the ways
//! GFS was built for: many clients on one chunk, a shared log, large sequential files, many small
//! files. In every profile, about half of the deletes are followed by a read of the deleted copy
//! under its hidden name (GFS §4.4). Appended records are self-identifying ([`crate::records`])
//! whenever the chunk size leaves room for one.

pub mod profiles;

use crate::options::RunOptions;
use crate::records;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One client operation with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpSpec {
    Create {
        path: String,
    },
    Delete {
        path: String,
    },
    List,
    Read {
        path: String,
        offset: u64,
        len: u64,
    },
    /// Reads `path`'s most recent deleted copy under its hidden name (GFS §4.4): lists the
    /// deleted files, takes the newest hidden name of `path`, reads it. `not_found` when none is
    /// left.
    ReadDeleted {
        path: String,
        offset: u64,
        len: u64,
    },
    Write {
        path: String,
        offset: u64,
        data: Vec<u8>,
    },
    Append {
        path: String,
        data: Vec<u8>,
    },
}

impl OpSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            OpSpec::Create { .. } => "create",
            OpSpec::Delete { .. } => "delete",
            OpSpec::List => "list",
            OpSpec::Read { .. } => "read",
            OpSpec::ReadDeleted { .. } => "read_deleted",
            OpSpec::Write { .. } => "write",
            OpSpec::Append { .. } => "append",
        }
    }

    pub fn path(&self) -> Option<&str> {
        match self {
            OpSpec::List => None,
            OpSpec::Create { path }
            | OpSpec::Delete { path }
            | OpSpec::Read { path, .. }
            | OpSpec::ReadDeleted { path, .. }
            | OpSpec::Write { path, .. }
            | OpSpec::Append { path, .. } => Some(path),
        }
    }
}

/// A client's operations, each after a pause of `think_ms` simulated milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientScript {
    pub client: u32,
    pub steps: Vec<(u64, OpSpec)>,
    /// When true, each step's number is an absolute time (milliseconds after the workload
    /// starts) rather than a pause: scripted scenarios time their operations this way.
    #[serde(default)]
    pub absolute: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Files created by client 0 before the concurrent phase starts.
    pub files: Vec<String>,
    pub clients: Vec<ClientScript>,
}

/// What the clients of a run do (`--workload`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Workload {
    /// Creates, deletes, lists, reads, overlapping writes across chunk boundaries and record
    /// appends, on a few files every client shares.
    #[default]
    Mixed,
    /// Every client writes and appends a few bytes into the first chunk of one file, all starting
    /// at once: the primary's serial order under load (GFS §3.1, §3.3).
    Hot,
    /// Producers record-append to one log file while a consumer reads it as it grows: the
    /// producer-consumer queue of GFS §2.7.2.
    Log,
    /// Each client writes a file of its own sequentially in large pieces across many chunks, then
    /// reads it back in large reads (GFS §2.1's large streaming workloads).
    Large,
    /// Each client creates, writes, reads, lists and deletes many small files of its own.
    SmallFiles,
}

/// Largest write or record the workload generates, whatever the chunk size: with large chunks,
/// writes still cross chunk boundaries because their offsets cluster near them.
pub const MAX_PAYLOAD_BYTES: u64 = 4096;

/// Payload bytes are never zero, so they cannot be mistaken for holes or record-append padding.
fn payload(rng: &mut ChaCha8Rng, len: u64) -> Vec<u8> {
    (0..len).map(|_| rng.gen_range(1..=255u8)).collect()
}

/// The plan for `seed`: `opts.workload`'s profile, sized by `opts`.
pub fn generate(seed: u64, opts: &RunOptions) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut plan = match opts.workload {
        Workload::Mixed => mixed(&mut rng, opts),
        Workload::Hot => profiles::hot(&mut rng, opts),
        Workload::Log => profiles::log(&mut rng, opts),
        Workload::Large => profiles::large(&mut rng, opts),
        Workload::SmallFiles => profiles::small_files(&mut rng, opts),
    };
    // A second stream of the same seed: following up deletes changed no other step of any plan.
    let mut follow_ups = ChaCha8Rng::seed_from_u64(seed);
    follow_ups.set_stream(1);
    read_after_deletes(&mut follow_ups, &mut plan, opts.chunk_size_bytes);
    plan
}

/// After about half of the deletes, the deleting client reads the file back under its hidden
/// name (GFS §4.4), a moment later: well within the grace period, so the copy must be there.
fn read_after_deletes(rng: &mut ChaCha8Rng, plan: &mut Plan, chunk_size_bytes: u64) {
    let span = (4 * chunk_size_bytes).min(4 * MAX_PAYLOAD_BYTES);
    let longest = (2 * chunk_size_bytes).min(2 * MAX_PAYLOAD_BYTES);
    for script in &mut plan.clients {
        if script.absolute {
            continue; // scripted timings are the script's own
        }
        let mut steps = Vec::with_capacity(script.steps.len());
        for (ms, op) in script.steps.drain(..) {
            let follow = match &op {
                OpSpec::Delete { path } if rng.gen_bool(0.5) => Some(OpSpec::ReadDeleted {
                    path: path.clone(),
                    offset: rng.gen_range(0..span),
                    len: rng.gen_range(1..=longest),
                }),
                _ => None,
            };
            steps.push((ms, op));
            if let Some(read) = follow {
                steps.push((rng.gen_range(0..20), read));
            }
        }
        script.steps = steps;
    }
}

/// Numbers records uniquely within a run, and makes an append's data one when it fits.
#[derive(Default)]
pub(crate) struct Records {
    next_id: u32,
}

impl Records {
    /// A self-identifying record of `len` bytes or the shortest record, whichever is longer, when
    /// a record fits in `max_record` bytes (GFS §2.7.2); the raw bytes otherwise.
    pub(crate) fn wrap(&mut self, data: Vec<u8>, max_record: u64) -> Vec<u8> {
        if max_record < records::OVERHEAD_BYTES as u64 {
            return data;
        }
        let keep = data.len().saturating_sub(records::OVERHEAD_BYTES);
        self.next_id += 1;
        records::encode(self.next_id, &data[..keep])
    }
}

/// The default profile (see [`Workload::Mixed`]).
fn mixed(rng: &mut ChaCha8Rng, opts: &RunOptions) -> Plan {
    let rng = &mut *rng;
    let files: Vec<String> = (0..opts.files).map(|i| format!("/f{i}")).collect();
    let cs = opts.chunk_size_bytes;
    let max_record = (cs / 4).max(1);
    // Files span about four chunks, so writes keep crossing chunk boundaries; with large chunks the
    // files stay small except for writes aimed at the first boundary.
    let boundaries = if cs <= MAX_PAYLOAD_BYTES { 3 } else { 1 };
    let span = (4 * cs).min(4 * MAX_PAYLOAD_BYTES);
    // Record ids are unique within the run: one counter over every client's appends.
    let mut records = Records::default();
    let clients = (0..opts.clients)
        .map(|client| {
            let steps = (0..opts.ops_per_client)
                .map(|_| {
                    let path = files[rng.gen_range(0..files.len())].clone();
                    let op = match rng.gen_range(0..100) {
                        0..=7 => OpSpec::Create { path },
                        8..=10 => OpSpec::Delete { path },
                        11..=14 => OpSpec::List,
                        15..=34 => {
                            let offset = rng.gen_range(0..span);
                            let len = rng.gen_range(1..=(2 * cs).min(2 * MAX_PAYLOAD_BYTES));
                            OpSpec::Read { path, offset, len }
                        }
                        35..=64 => {
                            // Writes start anywhere, often on a chunk boundary, and may span two.
                            let offset = if rng.gen_bool(0.3) {
                                (rng.gen_range(1..=boundaries) * cs)
                                    .saturating_sub(rng.gen_range(0..=cs.min(8)))
                            } else {
                                rng.gen_range(0..span)
                            };
                            let len = rng.gen_range(1..=(cs + cs / 2).min(MAX_PAYLOAD_BYTES));
                            OpSpec::Write {
                                path,
                                offset,
                                data: payload(rng, len),
                            }
                        }
                        _ => {
                            // Mostly valid records; about one in thirty is too large on purpose.
                            if rng.gen_ratio(1, 30) {
                                // Only its length matters: the client must refuse it unsent.
                                let data = vec![0xee; (max_record + 1) as usize];
                                OpSpec::Append { path, data }
                            } else {
                                let len = rng.gen_range(1..=max_record.min(MAX_PAYLOAD_BYTES));
                                let data = records.wrap(payload(rng, len), max_record);
                                OpSpec::Append { path, data }
                            }
                        }
                    };
                    (rng.gen_range(0..40), op)
                })
                .collect();
            ClientScript {
                client,
                steps,
                absolute: false,
            }
        })
        .collect();
    Plan { files, clients }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_plan_and_every_kind_appears() {
        let opts = RunOptions::default();
        assert_eq!(generate(9, &opts), generate(9, &opts));
        assert_ne!(generate(9, &opts), generate(10, &opts));
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..20 {
            for c in generate(seed, &opts).clients {
                for (_, op) in c.steps {
                    kinds.insert(op.kind());
                    if let OpSpec::Write { data, .. } | OpSpec::Append { data, .. } = &op {
                        assert!(data.iter().all(|&b| b != 0));
                        assert!(data.len() as u64 <= MAX_PAYLOAD_BYTES + 1 || data[0] == 0xee);
                    }
                }
            }
        }
        assert_eq!(kinds.len(), 7, "{kinds:?}");
    }

    #[test]
    fn reads_of_deleted_copies_follow_about_half_the_deletes() {
        let opts = RunOptions::default();
        let (mut deletes, mut follow_ups) = (0, 0);
        for seed in 0..50 {
            let plan = generate(seed, &opts);
            for c in plan.clients {
                for (i, (_, op)) in c.steps.iter().enumerate() {
                    match op {
                        OpSpec::Delete { .. } => deletes += 1,
                        OpSpec::ReadDeleted { path, .. } => {
                            follow_ups += 1;
                            let before = &c.steps[i - 1].1;
                            assert_eq!(before, &OpSpec::Delete { path: path.clone() });
                        }
                        _ => {}
                    }
                }
            }
        }
        assert!(deletes > 50, "{deletes}");
        assert!(
            follow_ups * 3 > deletes && follow_ups * 3 < 2 * deletes,
            "{follow_ups} of {deletes}"
        );
        // The rest of the plan is what it was without them.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let without = mixed(&mut rng, &opts);
        let mut with = generate(7, &opts);
        for c in &mut with.clients {
            c.steps
                .retain(|(_, op)| !matches!(op, OpSpec::ReadDeleted { .. }));
        }
        assert_eq!(with, without);
    }

    #[test]
    fn appends_are_records_with_unique_ids_when_they_fit() {
        let mut ids = std::collections::BTreeSet::new();
        for c in generate(3, &RunOptions::default()).clients {
            for (_, op) in c.steps {
                if let OpSpec::Append { data, .. } = op {
                    if data[0] != 0xee {
                        let id = records::id_of(&data).expect("a record");
                        assert!(ids.insert(id), "id {id} used twice");
                    }
                }
            }
        }
        assert!(ids.len() > 5, "{ids:?}");
        // Chunks of 32 bytes allow 8-byte records: too small for the format, raw bytes instead.
        let small = RunOptions {
            chunk_size_bytes: 32,
            ..RunOptions::default()
        };
        for c in generate(3, &small).clients {
            for (_, op) in c.steps {
                if let OpSpec::Append { data, .. } = op {
                    assert_eq!(records::id_of(&data), None);
                }
            }
        }
    }
}
