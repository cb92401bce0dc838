//! Phase 1: the cluster. Starts the master and every chunkserver as restartable madsim nodes
//! (each with a physical disk that survives its restarts), and the client nodes, and names them
//! all in a [`World`] that the nemesis aims its faults through.

use crate::faults::Target;
use crate::options::RunOptions;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use node::disk::DiskFaults;
use node::types::addr;
use node::{chunkserver, master, ClusterConfig, ServerId};
use std::sync::Arc;

/// The simulated machines of a run: madsim node ids of the master, chunkservers and clients, and
/// the physical disks that outlive their nodes' restarts. The nemesis aims faults through it.
pub struct World {
    pub handle: Handle,
    pub master: NodeId,
    pub chunkservers: Vec<NodeId>,
    pub clients: Vec<NodeId>,
    pub master_disk: Arc<DiskFaults>,
    pub chunkserver_disks: Vec<Arc<DiskFaults>>,
}

impl World {
    pub fn node(&self, t: Target) -> NodeId {
        match t {
            Target::Master => self.master,
            Target::Chunkserver(i) => self.chunkservers[i as usize],
            Target::Client(i) => self.clients[i as usize],
            Target::PrimaryOf(_) => unreachable!("resolved before use"),
        }
    }

    pub fn disk(&self, t: Target) -> Option<&Arc<DiskFaults>> {
        match t {
            Target::Master => Some(&self.master_disk),
            Target::Chunkserver(i) => self.chunkserver_disks.get(i as usize),
            Target::Client(_) | Target::PrimaryOf(_) => None,
        }
    }

    /// Kills every node once the run is over and lets the executor drop their tasks. Their
    /// futures hold the nodes' state and the executor's queue at once, a cycle that would keep
    /// all of it (chunk stores, page caches, buffers) alive after the runtime is gone: a sweep's
    /// memory grew by about a quarter of a megabyte per seed until this was done.
    pub async fn shut_down(&self) {
        for &id in std::iter::once(&self.master)
            .chain(&self.chunkservers)
            .chain(&self.clients)
        {
            self.handle.kill(id);
        }
        // The killed tasks are woken, then dropped at the executor's next turn.
        madsim::time::sleep(std::time::Duration::from_millis(1)).await;
    }

    /// Every directed link between `side` and the nodes outside it.
    pub fn cut_links(&self, side: &[Target]) -> Vec<(NodeId, NodeId)> {
        let inside: Vec<NodeId> = side.iter().map(|t| self.node(*t)).collect();
        let mut links = Vec::new();
        for (_, a) in self.everyone() {
            if !inside.contains(&a) {
                for &z in &inside {
                    links.push((a, z));
                    links.push((z, a));
                }
            }
        }
        links
    }

    fn everyone(&self) -> Vec<(Target, NodeId)> {
        let mut all = vec![(Target::Master, self.master)];
        all.extend(
            self.chunkservers
                .iter()
                .enumerate()
                .map(|(i, n)| (Target::Chunkserver(i as u32), *n)),
        );
        all.extend(
            self.clients
                .iter()
                .enumerate()
                .map(|(i, n)| (Target::Client(i as u32), *n)),
        );
        all
    }
}

/// Starts the master, every chunkserver (as restartable nodes, each with its own physical disk)
/// and the client nodes.
pub fn start_cluster(
    handle: &Handle,
    cfg: &ClusterConfig,
    opts: &RunOptions,
    faulty_disk: Option<u32>,
) -> World {
    let master_disk = DiskFaults::new(opts.disk_latency_us, false, "");
    let (c, d) = (cfg.clone(), master_disk.clone());
    let master = handle
        .create_node()
        .name("master")
        .ip(addr::master_ip())
        .init(move || master::run(c.clone(), d.clone()))
        .build()
        .id();
    let mut chunkservers = Vec::new();
    let mut chunkserver_disks = Vec::new();
    for i in 0..cfg.chunkservers {
        let id = ServerId(i);
        let faulty = faulty_disk == Some(i);
        // Only the faulty disk tears writes; bit flips are requested by the nemesis.
        let disk = DiskFaults::new(
            opts.disk_latency_us,
            faulty,
            if faulty { "chunks/" } else { "" },
        );
        disk.lies_about_sync
            .store(opts.lying_disks, std::sync::atomic::Ordering::Relaxed);
        let (c, d) = (cfg.clone(), disk.clone());
        let node = handle
            .create_node()
            .name(id.to_string())
            .ip(addr::chunkserver_ip(id))
            .init(move || chunkserver::run(id, c.clone(), d.clone()))
            .build();
        chunkservers.push(node.id());
        chunkserver_disks.push(disk);
    }
    let clients = (0..opts.clients)
        .map(|i| {
            handle
                .create_node()
                .name(format!("client{i}"))
                .ip(addr::client_ip(i))
                .build()
                .id()
        })
        .collect();
    World {
        handle: handle.clone(),
        master,
        chunkservers,
        clients,
        master_disk,
        chunkserver_disks,
    }
}

/// How long the cluster needs before the workload starts: the master's grace period.
pub fn boot_ms(cfg: &ClusterConfig) -> u64 {
    cfg.master_grace_ms() + cfg.heartbeat_ms
}
