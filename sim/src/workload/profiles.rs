//! The workload profiles besides the default `mixed` one (see [`Workload`](super::Workload)).
//!
//! Each builds a [`Plan`] from the seed's generator: the files client 0 creates first, then every
//! client's steps, each a pause and an operation. They are sized by the same options as the
//! default (`--clients`, `--ops`, `--chunk-size`) and keep payload bytes non-zero and appends
//! self-identifying when records fit, so every check judges them as it judges `mixed`.

use super::{payload, ClientScript, OpSpec, Plan, Records, MAX_PAYLOAD_BYTES};
use crate::options::RunOptions;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The largest record an append may carry in these profiles: a quarter of a chunk (GFS §3.3),
/// within the workload's payload bound.
fn max_record(opts: &RunOptions) -> u64 {
    (opts.chunk_size_bytes / 4).clamp(1, MAX_PAYLOAD_BYTES)
}

/// A record (or raw bytes, when none fits) of a small payload.
fn small_append(rng: &mut ChaCha8Rng, records: &mut Records, opts: &RunOptions) -> Vec<u8> {
    let max = max_record(opts);
    let len = rng.gen_range(1..=max.min(crate::records::OVERHEAD_BYTES as u64 + 4));
    records.wrap(payload(rng, len), max)
}

fn script(client: u32, steps: Vec<(u64, OpSpec)>) -> ClientScript {
    ClientScript {
        client,
        steps,
        absolute: false,
    }
}

/// Many clients on one chunk: each writes a few bytes at a random place in the first chunk of
/// `/hot` or record-appends to it, and now and then reads the chunk. Every client's first step
/// starts at the same instant, the end of boot; later steps follow after at most 5 ms.
pub fn hot(rng: &mut ChaCha8Rng, opts: &RunOptions) -> Plan {
    let path = "/hot".to_string();
    let cs = opts.chunk_size_bytes;
    let mut records = Records::default();
    let clients = (0..opts.clients)
        .map(|client| {
            let steps = (0..opts.ops_per_client)
                .map(|i| {
                    let think_ms = if i == 0 { 0 } else { rng.gen_range(0..=5) };
                    let op = match rng.gen_range(0..10) {
                        0 => OpSpec::Read {
                            path: path.clone(),
                            offset: 0,
                            len: cs.min(MAX_PAYLOAD_BYTES),
                        },
                        1..=5 => {
                            let len = rng.gen_range(1..=8.min(cs));
                            OpSpec::Write {
                                path: path.clone(),
                                offset: rng.gen_range(0..=cs - len),
                                data: payload(rng, len),
                            }
                        }
                        _ => OpSpec::Append {
                            path: path.clone(),
                            data: small_append(rng, &mut records, opts),
                        },
                    };
                    (think_ms, op)
                })
                .collect();
            script(client, steps)
        })
        .collect();
    Plan {
        files: vec![path],
        clients,
    }
}

/// A shared log (GFS §2.7.2): every client but the first record-appends to `/log` with short
/// pauses; client 0 consumes it, reading it a window at a time from the start as it grows. With a
/// single client, that client produces.
pub fn log(rng: &mut ChaCha8Rng, opts: &RunOptions) -> Plan {
    let path = "/log".to_string();
    let window = (2 * opts.chunk_size_bytes).min(2 * MAX_PAYLOAD_BYTES);
    let mut records = Records::default();
    let clients = (0..opts.clients)
        .map(|client| {
            let consumer = client == 0 && opts.clients > 1;
            let steps = (0..opts.ops_per_client as u64)
                .map(|i| {
                    if consumer {
                        let read = OpSpec::Read {
                            path: path.clone(),
                            offset: i * window / 2,
                            len: window,
                        };
                        (rng.gen_range(10..=30), read)
                    } else {
                        let data = small_append(rng, &mut records, opts);
                        let append = OpSpec::Append {
                            path: path.clone(),
                            data,
                        };
                        (rng.gen_range(0..=10), append)
                    }
                })
                .collect();
            script(client, steps)
        })
        .collect();
    Plan {
        files: vec![path],
        clients,
    }
}

/// Large sequential files: each client writes `/big<N>` from its start in pieces of about two and
/// a half chunks (within the payload bound) for two thirds of its operations, then reads it back
/// from the start in pieces twice that size.
pub fn large(rng: &mut ChaCha8Rng, opts: &RunOptions) -> Plan {
    let cs = opts.chunk_size_bytes;
    let piece = (cs * 5 / 2).clamp(1, MAX_PAYLOAD_BYTES);
    let files: Vec<String> = (0..opts.clients).map(|c| format!("/big{c}")).collect();
    let clients = (0..opts.clients)
        .map(|client| {
            let path = files[client as usize].clone();
            let writes = (opts.ops_per_client as u64 * 2).div_ceil(3);
            let steps = (0..opts.ops_per_client as u64)
                .map(|i| {
                    let op = if i < writes {
                        OpSpec::Write {
                            path: path.clone(),
                            offset: i * piece,
                            data: payload(rng, piece),
                        }
                    } else {
                        OpSpec::Read {
                            path: path.clone(),
                            offset: (i - writes) * 2 * piece,
                            len: 2 * piece,
                        }
                    };
                    (rng.gen_range(0..=10), op)
                })
                .collect();
            script(client, steps)
        })
        .collect();
    Plan { files, clients }
}

/// Many small files: each client works through files of its own, `/s<client>-<n>`: create one,
/// write it, read it, and then either delete it or keep it; now and then it lists the namespace.
pub fn small_files(rng: &mut ChaCha8Rng, opts: &RunOptions) -> Plan {
    let max_len = opts.chunk_size_bytes.min(32);
    let clients = (0..opts.clients)
        .map(|client| {
            let mut steps = Vec::new();
            let mut n = 0;
            while steps.len() < opts.ops_per_client as usize {
                let path = format!("/s{client}-{n}");
                n += 1;
                let len = rng.gen_range(1..=max_len);
                let mut ops = vec![
                    OpSpec::Create { path: path.clone() },
                    OpSpec::Write {
                        path: path.clone(),
                        offset: 0,
                        data: payload(rng, len),
                    },
                    OpSpec::Read {
                        path: path.clone(),
                        offset: 0,
                        len,
                    },
                ];
                if rng.gen_bool(0.5) {
                    ops.push(OpSpec::Delete { path });
                }
                if rng.gen_ratio(1, 4) {
                    ops.push(OpSpec::List);
                }
                for op in ops {
                    steps.push((rng.gen_range(0..=10), op));
                }
            }
            steps.truncate(opts.ops_per_client as usize);
            script(client, steps)
        })
        .collect();
    Plan {
        files: Vec::new(),
        clients,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{generate, Workload};
    use super::*;
    use std::collections::BTreeSet;

    fn opts(workload: Workload) -> RunOptions {
        RunOptions {
            workload,
            clients: 5,
            ops_per_client: 9,
            ..RunOptions::default()
        }
    }

    #[test]
    fn every_profile_is_seeded_sized_and_keeps_payloads_non_zero() {
        for w in [
            Workload::Hot,
            Workload::Log,
            Workload::Large,
            Workload::SmallFiles,
        ] {
            let o = opts(w);
            let plan = generate(4, &o);
            assert_eq!(plan, generate(4, &o), "{w:?}");
            assert_ne!(plan, generate(5, &o), "{w:?}");
            assert_eq!(plan.clients.len(), 5);
            let mut ids = BTreeSet::new();
            for c in &plan.clients {
                // Sized by `ops`; reads of deleted copies follow some deletes on top.
                let planned = c.steps.iter();
                let planned = planned.filter(|(_, op)| !matches!(op, OpSpec::ReadDeleted { .. }));
                assert_eq!(planned.count(), 9, "{w:?}");
                for (_, op) in &c.steps {
                    if let OpSpec::Write { data, .. } | OpSpec::Append { data, .. } = op {
                        assert!(data.iter().all(|&b| b != 0), "{w:?}");
                        assert!(data.len() as u64 <= MAX_PAYLOAD_BYTES, "{w:?}");
                    }
                    if let OpSpec::Append { data, .. } = op {
                        let id = crate::records::id_of(data).expect("a record");
                        assert!(ids.insert(id), "{w:?}: record id {id} twice");
                    }
                }
            }
        }
    }

    #[test]
    fn profiles_put_the_load_where_they_say() {
        // hot: everything in the first chunk of one file, every client starting at once.
        let plan = generate(1, &opts(Workload::Hot));
        assert_eq!(plan.files, ["/hot"]);
        for c in &plan.clients {
            assert_eq!(c.steps[0].0, 0, "every client starts at the end of boot");
            for (_, op) in &c.steps {
                if let OpSpec::Write { offset, data, .. } = op {
                    assert!(offset + data.len() as u64 <= 64);
                }
            }
        }
        // log: client 0 only reads, the others only append.
        let plan = generate(1, &opts(Workload::Log));
        for c in &plan.clients {
            let reads = c.steps.iter().all(|(_, op)| op.kind() == "read");
            let appends = c.steps.iter().all(|(_, op)| op.kind() == "append");
            assert!(if c.client == 0 { reads } else { appends });
        }
        // large: writes in sequence, then reads; pieces span chunks.
        let plan = generate(1, &opts(Workload::Large));
        let kinds: Vec<&str> = plan.clients[2]
            .steps
            .iter()
            .map(|(_, o)| o.kind())
            .collect();
        assert_eq!(kinds, [["write"; 6].as_slice(), &["read"; 3]].concat());
        // small files: each client's own files, created before they are written.
        let plan = generate(1, &opts(Workload::SmallFiles));
        assert!(plan.files.is_empty());
        assert_eq!(
            plan.clients[3].steps[0].1,
            OpSpec::Create {
                path: "/s3-0".into()
            }
        );
    }
}
