//! Phases 3 and 4, on a checker node of their own: wait until the healed cluster converges (or
//! give up: a liveness failure), issue operations that must all succeed, then list and read every
//! file through a fresh client, dump the master's chunk table and read every listed replica
//! straight from its chunkserver, for the checks to judge.

use super::converge_limit;
use super::play::perform;
use crate::checks::{self, FinalState};
use crate::history::History;
use crate::workload::{OpSpec, MAX_PAYLOAD_BYTES};
use madsim::runtime::Handle;
use node::client::Client;
use node::msg::{DumpChunks, ListReplicas, ReadReplica};
use node::rpc::{call, call_result};
use node::trace::{self, NodeName};
use node::types::addr;
use node::{ClusterConfig, ServerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// Readings of the chunk table and the replicas the read back makes before it gives up.
const READ_BACK_TRIES: u32 = 10;

/// What the checker node saw in phases 3 and 4.
pub(super) struct Checked {
    /// `Err`: the cluster did not converge, with what was still wrong.
    pub converged: Result<(), String>,
    pub state: FinalState,
}

/// Phases 3 and 4, on a node of their own: wait for convergence, issue the after-heal operations,
/// then read everything back.
pub(super) async fn check_phase(
    handle: &Handle,
    cfg: &ClusterConfig,
    checker_id: u32,
    files: Vec<String>,
    history: &History,
) -> Checked {
    let node = handle
        .create_node()
        .name("checker")
        .ip(addr::client_ip(checker_id))
        .build();
    // The checker borrows the next client address; the trace should say who it is.
    trace::name_node(addr::client_ip(checker_id), NodeName::Checker);
    let (cfg, history) = (cfg.clone(), history.clone());
    let checker = node.id();
    let checked = node.spawn(async move {
        let ep = madsim::net::Endpoint::bind((addr::client_ip(checker_id), addr::PORT + 1))
            .await
            .expect("checker binds a second port");
        let timeout = cfg.rpc_timeout_ms;
        // Liveness: poll until the cluster has converged, or give up.
        let limit = converge_limit(&cfg);
        let deadline = madsim::time::Instant::now() + limit;
        let converged = loop {
            madsim::time::sleep(Duration::from_millis(cfg.heartbeat_ms)).await;
            let chunks = call(&ep, addr::master(), DumpChunks, timeout).await;
            let mut held = BTreeMap::new();
            for i in 0..cfg.chunkservers {
                let s = ServerId(i);
                let r = call(&ep, addr::chunkserver(s), ListReplicas, timeout).await;
                held.insert(s, r.map_err(|e| e.to_string()));
            }
            let issues = match &chunks {
                Ok(chunks) => checks::converged::issues(chunks, &held, cfg.replication),
                Err(e) => vec![format!("master did not answer: {e}")],
            };
            if issues.is_empty() {
                break Ok(());
            }
            if madsim::time::Instant::now() >= deadline {
                let shown: Vec<String> = issues.iter().take(5).cloned().collect();
                break Err(format!(
                    "not converged {} s after healing: {}{}",
                    limit.as_secs(),
                    shown.join("; "),
                    if issues.len() > 5 {
                        format!("; and {} more", issues.len() - 5)
                    } else {
                        String::new()
                    }
                ));
            }
        };
        let client = Client::new(checker_id, cfg.clone())
            .await
            .expect("checker binds");
        if converged.is_ok() {
            // Every operation issued now must succeed: one append and one read per file, and a
            // file created, written across a chunk boundary, listed and deleted.
            let probe = "/after-heal".to_string();
            let cs = cfg.chunk_size_bytes;
            // Probes stay small with large chunks: a chunk's worth of bytes at 64 MiB would cost
            // more than the whole workload and prove nothing more.
            let probe_len = cs.min(2 * MAX_PAYLOAD_BYTES);
            let mut ops = vec![
                OpSpec::Create {
                    path: probe.clone(),
                },
                OpSpec::Write {
                    path: probe.clone(),
                    offset: cs - probe_len / 2,
                    data: vec![0xa5; probe_len as usize],
                },
                OpSpec::List,
                OpSpec::Delete { path: probe },
            ];
            for f in &files {
                let record = vec![0x5a; cfg.max_record_bytes().min(8) as usize];
                ops.push(OpSpec::Append {
                    path: f.clone(),
                    data: record,
                });
                ops.push(OpSpec::Read {
                    path: f.clone(),
                    offset: 0,
                    len: probe_len,
                });
            }
            for op in ops {
                // A workload file may have been deleted for good: that is a correct answer.
                let id = history.invoke_after_heal(checker_id, op);
                perform(&client, &history, id).await;
            }
        }
        let mut state = FinalState::default();
        match client.list().await {
            Ok(files) => {
                for f in files {
                    let bytes = client
                        .read_sparse(&f.path, 0, f.size_bytes)
                        .await
                        .map_err(|e| e.to_string());
                    state.files.insert(f.path, bytes);
                }
            }
            Err(e) => {
                state
                    .files
                    .insert("<list>".into(), Err(format!("final list failed: {e}")));
            }
        }
        // The chunk table and the replicas are read at different instants: keep only a reading
        // the master's table did not change across, or the replicas may belong to another table
        // (a copy or a trim in between). A cluster that keeps changing is a liveness failure.
        // (Equal tables before and after do not rule out a change and its undoing in between;
        // a converged cluster makes no such changes, and a churning one shows it in other
        // tries.)
        let mut settled = Err(format!(
            "the master's chunk table kept changing while it was read back ({READ_BACK_TRIES} tries)"
        ));
        for _ in 0..READ_BACK_TRIES {
            let before = call(&ep, addr::master(), DumpChunks, timeout).await;
            state.chunks = before.clone().unwrap_or_default();
            state.replicas.clear();
            for c in &state.chunks {
                for &s in &c.replicas {
                    let r = call_result(
                        &ep,
                        addr::chunkserver(s),
                        ReadReplica { handle: c.handle },
                        timeout,
                    )
                    .await;
                    state
                        .replicas
                        .insert((c.handle, s), r.map_err(|e| e.to_string()));
                }
            }
            let after = call(&ep, addr::master(), DumpChunks, timeout).await;
            if before.is_ok() && before == after {
                settled = Ok(());
                break;
            }
            madsim::time::sleep(Duration::from_millis(cfg.heartbeat_ms)).await;
        }
        let converged = converged.and(settled);
        Checked { converged, state }
    })
    .await
    .expect("checker task");
    handle.kill(checker); // its work is done (see `World::shut_down`)
    checked
}
