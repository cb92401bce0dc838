//! Phase 2: the workload. Client 0 creates the files once the cluster has booted, then every
//! client plays its script (a seeded plan or a scenario's), each operation recorded in the
//! [`History`] as an invocation and a completion.

use super::cluster::{boot_ms, World};
use crate::history::{History, OpResult};
use crate::workload::{OpSpec, Plan};
use node::client::{Client, ClientStats};
use node::ClusterConfig;
use std::time::Duration;

async fn execute(client: &Client, op: &OpSpec) -> OpResult {
    let r = |e: &node::GfsError| OpResult::from_err(e);
    match op {
        OpSpec::Create { path } => client
            .create(path)
            .await
            .map_or_else(|e| r(&e), |_| OpResult::Ok),
        OpSpec::Delete { path } => client
            .delete(path)
            .await
            .map_or_else(|e| r(&e), |_| OpResult::Ok),
        OpSpec::List => client
            .list()
            .await
            .map_or_else(|e| r(&e), |files| OpResult::Files { files }),
        OpSpec::Read { path, offset, len } => client
            .read(path, *offset, *len)
            .await
            .map_or_else(|e| r(&e), |data| OpResult::Data { data }),
        OpSpec::ReadDeleted { path, offset, len } => read_deleted(client, path, *offset, *len)
            .await
            .map_or_else(|e| r(&e), |data| OpResult::Data { data }),
        OpSpec::Write { path, offset, data } => client
            .write(path, *offset, data)
            .await
            .map_or_else(|e| r(&e), |_| OpResult::Ok),
        OpSpec::Append { path, data } => client
            .append(path, data)
            .await
            .map_or_else(|e| r(&e), |offset| OpResult::Offset { offset }),
    }
}

/// Reads the newest deleted copy of `path` as a user of GFS would (§4.4): list the deleted files,
/// take the hidden name of `path` with the highest number (`/.deleted/<n>/<path>`), read it.
async fn read_deleted(
    client: &Client,
    path: &str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, node::GfsError> {
    let deleted = client.list_deleted().await?;
    let newest = deleted
        .iter()
        .filter_map(|f| {
            let (n, original) = node::master::state::split_hidden(&f.path)?;
            (original == path).then_some((n, &f.path))
        })
        .max();
    match newest {
        Some((_, hidden)) => client.read(hidden, offset, len).await,
        None => Err(node::GfsError::NotFound(path.to_string())),
    }
}

/// Carries out operation `id` of the history (already invoked) and records how it ended and how
/// many retries it took. A client runs one operation at a time, so its counters' growth meanwhile
/// is this operation's.
pub(super) async fn perform(client: &Client, history: &History, id: usize) {
    let op = history.op(id);
    let before = client.stats().retries;
    let outcome = execute(client, &op).await;
    history.complete(id, outcome, client.stats().retries - before);
}

/// Phase 2: plays every client's script; returns the clients' combined counters.
pub(super) async fn play(
    world: &World,
    cfg: &ClusterConfig,
    plan: Plan,
    history: &History,
) -> ClientStats {
    let boot = Duration::from_millis(boot_ms(cfg));
    let node = |i: u32| {
        world
            .handle
            .get_node(world.clients[i as usize])
            .expect("client node")
    };
    // Setup: once the cluster has booted, client 0 creates the files. The concurrent phase starts
    // when it is done. (No tokio Barrier here: its wake-up order depends on a process-wide counter
    // in tokio, which would make a run depend on the runs before it in the same process.)
    let (c, h, files) = (cfg.clone(), history.clone(), plan.files.clone());
    let mut total = node(0)
        .spawn(async move {
            let client = Client::new(0, c).await.expect("client binds its address");
            madsim::time::sleep(boot).await;
            for path in files {
                let id = h.invoke(0, OpSpec::Create { path });
                perform(&client, &h, id).await;
            }
            client.stats()
        })
        .await
        .expect("setup task");
    let tasks: Vec<_> = plan
        .clients
        .into_iter()
        .map(|script| {
            let (cfg, history) = (cfg.clone(), history.clone());
            node(script.client).spawn(async move {
                let me = script.client;
                let client = Client::new(me, cfg)
                    .await
                    .expect("client binds its address");
                // Scripted steps are timed from the end of boot, like scripted faults.
                let sim_start = madsim::time::Instant::now() - Duration::from_nanos(node::now_ns());
                let workload_start = sim_start + boot;
                for (ms, op) in script.steps {
                    let wait = Duration::from_millis(ms);
                    if script.absolute {
                        madsim::time::sleep_until(workload_start + wait).await;
                    } else {
                        madsim::time::sleep(wait).await;
                    }
                    let id = history.invoke(me, op);
                    perform(&client, &history, id).await;
                }
                client.stats()
            })
        })
        .collect();
    for t in tasks {
        let s = t.await.expect("client task");
        total.attempts += s.attempts;
        total.failed_attempts += s.failed_attempts;
        total.retries += s.retries;
    }
    total
}
