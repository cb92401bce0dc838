//! The nemesis: carries out a [`FaultPlan`] against the running cluster, then heals everything.
//!
//! It runs as a task of the simulation's supervisor and uses madsim's own controls: `kill` and
//! `restart` for crashes (a restarted node runs its `init` again, with its disk but without its
//! memory), `pause`/`resume`, `clog`/`unclog` for nodes and links, the network configuration for
//! latency and loss, and each chunkserver's [`DiskFaults`](node::disk::DiskFaults) for torn writes and bit flips.
//!
//! Faults of one kind can overlap; the nemesis keeps counts so that healing one fault never heals
//! another that is still due (a link cut by two faults stays cut until both are over). Every
//! injection and heal is a trace event of node `nemesis`.

use crate::faults::{Fault, FaultPlan, Target, What};
use crate::run::World;
use madsim::net::NetSim;
use madsim::runtime::NodeHandle;
use madsim::task::NodeId;
use node::points::{Fate, Point, Site};
use node::trace::{Event, FaultOn, NodeName};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What is broken right now, with counts so overlapping faults heal correctly.
#[derive(Default)]
struct Broken {
    down: BTreeMap<NodeId, u32>,
    paused: BTreeMap<NodeId, u32>,
    isolated: BTreeMap<NodeId, u32>,
    links: BTreeMap<(NodeId, NodeId), u32>,
    /// Active latency and loss faults, by fault number.
    delays: BTreeMap<usize, u64>,
    losses: BTreeMap<usize, u32>,
}

/// Default message latency of madsim's network, restored when no delay fault is active.
const DEFAULT_LATENCY: std::ops::Range<Duration> =
    Duration::from_millis(1)..Duration::from_millis(10);

struct Nemesis {
    world: Arc<World>,
    broken: Mutex<Broken>,
    primary_of: Vec<(String, u64)>,
    /// The node that heals point faults, made when the first one strikes.
    healer: Mutex<Option<NodeHandle>>,
}

/// The chunkserver that most recently took the lease of chunk `index` of `path`, from the trace.
fn current_primary(path: &str, index: u64) -> Option<Target> {
    node::trace::with_events(|entries| {
        let handle = entries.iter().rev().find_map(|e| match &e.event {
            Event::ChunkAllocated {
                path: p,
                index: i,
                chunk,
            } if p == path && *i == index => Some(*chunk),
            _ => None,
        })?;
        entries.iter().rev().find_map(|e| match (&e.event, e.node) {
            (Event::LeaseAcquired { chunk, .. }, NodeName::Cs(s)) if *chunk == handle => {
                Some(Target::Chunkserver(s.0))
            }
            _ => None,
        })
    })
    .flatten()
}

fn event(event: Event) {
    node::trace::emit(NodeName::Nemesis, || event);
}

impl Nemesis {
    fn net(&self) -> Arc<NetSim> {
        NetSim::current()
    }

    fn apply_net_config(&self, b: &Broken) {
        let max_latency = b.delays.values().max().copied();
        let loss = b.losses.values().max().copied().unwrap_or(0);
        self.net().update_config(|c| {
            c.send_latency = match max_latency {
                Some(ms) => Duration::from_millis(1)..Duration::from_millis(ms),
                None => DEFAULT_LATENCY,
            };
            c.packet_loss_rate = loss as f64 / 100.0;
        });
    }

    fn clog(&self, b: &mut Broken, a: NodeId, z: NodeId) {
        let n = b.links.entry((a, z)).or_default();
        *n += 1;
        if *n == 1 {
            self.net().clog_link(a, z);
        }
    }

    fn unclog(&self, b: &mut Broken, a: NodeId, z: NodeId) {
        if let Some(n) = b.links.get_mut(&(a, z)) {
            *n -= 1;
            if *n == 0 {
                b.links.remove(&(a, z));
                self.net().unclog_link(a, z);
            }
        }
    }

    /// Replaces dynamic targets by the node they name right now (None: nobody holds the lease).
    fn resolve(&self, f: &Fault) -> Option<Fault> {
        let fix = |t: Target| match t {
            Target::PrimaryOf(i) => {
                let (path, index) = &self.primary_of[i as usize];
                current_primary(path, *index)
            }
            t => Some(t),
        };
        let what = match &f.what {
            What::Crash { node } => What::Crash { node: fix(*node)? },
            What::Pause { node } => What::Pause { node: fix(*node)? },
            What::Isolate { node } => What::Isolate { node: fix(*node)? },
            What::BitFlip { node } => What::BitFlip { node: fix(*node)? },
            What::OneWay { from, to } => What::OneWay {
                from: fix(*from)?,
                to: fix(*to)?,
            },
            What::Partition { side } => What::Partition {
                side: side.iter().map(|t| fix(*t)).collect::<Option<_>>()?,
            },
            other => other.clone(),
        };
        Some(Fault { what, ..f.clone() })
    }

    /// Injects fault number `i`; returns false if it was skipped (its node already down/paused).
    fn inject(&self, i: usize, f: &Fault) -> bool {
        let w = &self.world;
        let mut b = self.broken.lock().unwrap();
        let on = fault_on(f);
        let injected = || Event::FaultInjected {
            fault: f.kind,
            on: on.clone(),
            unsynced_writes_lost: None,
        };
        match &f.what {
            What::Crash { node } => {
                let id = w.node(*node);
                if b.down.contains_key(&id) || b.paused.contains_key(&id) {
                    return false;
                }
                // Read the disk's state at the instant of the crash: what the page cache held is
                // lost, and a sync caught halfway leaves its file torn.
                let (lost, torn) = w
                    .disk(*node)
                    .map_or((0, false), |d| (d.unsynced_writes(), d.tear_in_flight()));
                w.handle.kill(id);
                b.down.insert(id, 1);
                event(Event::FaultInjected {
                    fault: f.kind,
                    on: on.clone(),
                    unsynced_writes_lost: Some(lost),
                });
                if torn {
                    event(Event::WriteTorn {
                        node: node.node_name(),
                    });
                }
                if let Some(d) = w.disk(*node) {
                    d.crashed(node.node_name());
                }
            }
            What::Pause { node } => {
                let id = w.node(*node);
                if b.down.contains_key(&id) || b.paused.contains_key(&id) {
                    return false;
                }
                w.handle.pause(id);
                b.paused.insert(id, 1);
                event(injected());
            }
            What::Isolate { node } => {
                let id = w.node(*node);
                let n = b.isolated.entry(id).or_default();
                *n += 1;
                if *n == 1 {
                    self.net().clog_node(id);
                }
                event(injected());
            }
            What::Partition { side } => {
                for (a, z) in w.cut_links(side) {
                    self.clog(&mut b, a, z);
                }
                event(injected());
            }
            What::OneWay { from, to } => {
                self.clog(&mut b, w.node(*from), w.node(*to));
                event(injected());
            }
            What::Delay { max_latency_ms } => {
                b.delays.insert(i, *max_latency_ms);
                self.apply_net_config(&b);
                event(injected());
            }
            What::Loss { percent } => {
                b.losses.insert(i, *percent);
                self.apply_net_config(&b);
                event(injected());
            }
            What::BitFlip { node } => {
                if let Some(d) = w.disk(*node) {
                    d.request_bit_flip();
                }
                event(injected());
            }
            What::LoseMessage | What::DelayMessage { .. } | What::LoseReply => {
                // The sender's side does it (`node::rpc::call`); this only records it.
                event(injected());
            }
        }
        true
    }

    /// Strikes point fault number `i` at `point`, which a node has just reached; says what the
    /// node must do: lose or hold its message, stop (it was crashed), wait (it was paused), or go
    /// on. Heals the fault `lasts_ms` later (at the end of the safety phase at the latest) from
    /// a node of the nemesis's own, made for it: this runs inside the node that reached the point,
    /// and a task spawned there would die with it.
    fn strike(self: &Arc<Self>, i: usize, f: &Fault, point: &Point, end_ms: u64) -> Fate {
        if !self.inject(i, f) {
            return Fate::Go;
        }
        match &f.what {
            What::LoseMessage => return Fate::Lose,
            What::LoseReply => return Fate::LoseReply,
            What::DelayMessage { ms } => return Fate::Delay { ms: *ms },
            _ => {}
        }
        if f.lasts_ms > 0 {
            let heal_at_ms = (node::now_ms() + f.lasts_ms).min(end_ms);
            let healer = self
                .healer
                .lock()
                .unwrap()
                .get_or_insert_with(|| self.world.handle.create_node().name("healer").build())
                .clone();
            let (n, f) = (self.clone(), f.clone());
            healer.spawn(async move {
                let now_ms = node::now_ms();
                madsim::time::sleep(Duration::from_millis(heal_at_ms.saturating_sub(now_ms))).await;
                n.heal(i, &f);
            });
        }
        match &f.what {
            What::Crash { node } if node.node_name() == point.node => Fate::Stop,
            What::Pause { node } if node.node_name() == point.node => Fate::Yield,
            _ => Fate::Go,
        }
    }

    fn heal(&self, i: usize, f: &Fault) {
        let w = &self.world;
        let mut b = self.broken.lock().unwrap();
        let healed = || Event::FaultHealed {
            fault: f.kind,
            on: fault_on(f),
        };
        match &f.what {
            What::Crash { node } => {
                let id = w.node(*node);
                if b.down.remove(&id).is_some() {
                    w.handle.restart(id);
                    event(healed());
                }
            }
            What::Pause { node } => {
                let id = w.node(*node);
                if b.paused.remove(&id).is_some() {
                    w.handle.resume(id);
                    event(healed());
                }
            }
            What::Isolate { node } => {
                let id = w.node(*node);
                if let Some(n) = b.isolated.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        b.isolated.remove(&id);
                        self.net().unclog_node(id);
                    }
                    event(healed());
                }
            }
            What::Partition { side } => {
                for (a, z) in w.cut_links(side) {
                    self.unclog(&mut b, a, z);
                }
                event(healed());
            }
            What::OneWay { from, to } => {
                self.unclog(&mut b, w.node(*from), w.node(*to));
                event(healed());
            }
            What::Delay { .. } => {
                b.delays.remove(&i);
                self.apply_net_config(&b);
                event(healed());
            }
            What::Loss { .. } => {
                b.losses.remove(&i);
                self.apply_net_config(&b);
                event(healed());
            }
            What::BitFlip { .. }
            | What::LoseMessage
            | What::DelayMessage { .. }
            | What::LoseReply => {}
        }
    }

    /// Ends the safety phase: every node up and running, every link open, default network.
    fn heal_all(&self) {
        let w = &self.world;
        let mut b = self.broken.lock().unwrap();
        for (id, _) in std::mem::take(&mut b.down) {
            w.handle.restart(id);
        }
        for (id, _) in std::mem::take(&mut b.paused) {
            w.handle.resume(id);
        }
        for (id, _) in std::mem::take(&mut b.isolated) {
            self.net().unclog_node(id);
        }
        for ((a, z), _) in std::mem::take(&mut b.links) {
            self.net().unclog_link(a, z);
        }
        b.delays.clear();
        b.losses.clear();
        self.apply_net_config(&b);
        event(Event::AllHealed {});
    }
}

/// What a (resolved) fault hits, as its trace events name it.
fn fault_on(f: &Fault) -> FaultOn {
    match &f.what {
        What::Crash { node }
        | What::Pause { node }
        | What::Isolate { node }
        | What::BitFlip { node } => FaultOn::Node(node.node_name()),
        What::Partition { side } => FaultOn::Side(side.iter().map(|t| t.node_name()).collect()),
        What::OneWay { from, to } => FaultOn::Link {
            from: from.node_name(),
            to: to.node_name(),
        },
        What::Delay { max_latency_ms } => FaultOn::Delay {
            max_latency_ms: *max_latency_ms,
        },
        What::Loss { percent } => FaultOn::Loss { percent: *percent },
        What::LoseMessage | What::DelayMessage { .. } | What::LoseReply => match &f.point {
            Some(Point {
                node,
                site: Site::Send { kind, to },
                nth,
            }) => FaultOn::Message {
                from: *node,
                to: *to,
                kind: kind.clone(),
                nth: *nth,
                reply: f.what == What::LoseReply,
            },
            _ => unreachable!("a message fault names the point where its message is sent"),
        },
    }
}

/// Runs the plan from the start of the simulation: injects each fault at its time, heals it when
/// it is over, and heals everything at the end of the safety phase. Returns then.
pub async fn run(world: Arc<World>, plan: FaultPlan) {
    let nemesis = Arc::new(Nemesis {
        world,
        broken: Mutex::new(Broken::default()),
        primary_of: plan.primary_of.clone(),
        healer: Mutex::new(None),
    });
    if plan.points {
        arm(&nemesis, &plan);
    }
    let start = madsim::time::Instant::now() - Duration::from_nanos(node::now_ns());
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut heals = Vec::new();
    for (i, f) in plan.faults.iter().enumerate() {
        if f.point.is_some() {
            continue; // struck by the point handler
        }
        madsim::time::sleep_until(at(f.at_ms)).await;
        let Some(f) = &nemesis.resolve(f) else {
            event(Event::FaultSkipped { fault: f.kind });
            continue;
        };
        if nemesis.inject(i, f) && f.lasts_ms > 0 {
            let (n, f) = (nemesis.clone(), f.clone());
            let heal_at = at((f.at_ms + f.lasts_ms).min(plan.end_ms));
            heals.push(madsim::task::spawn(async move {
                madsim::time::sleep_until(heal_at).await;
                n.heal(i, &f);
            }));
        }
    }
    madsim::time::sleep_until(at(plan.end_ms)).await;
    for h in heals {
        let _ = h.await;
    }
    // Heal tasks of point faults still waiting find nothing left to heal.
    nemesis.heal_all();
}

/// Answers the run's fault points ([`node::points`]): each fault that names a point strikes the
/// first time a node reaches it during the safety phase; every other point goes on. Reaching a
/// point changes nothing else, so a run with no point faults is the run without points.
fn arm(nemesis: &Arc<Nemesis>, plan: &FaultPlan) {
    let armed: Vec<(usize, Fault)> = plan
        .faults
        .iter()
        .enumerate()
        .filter(|(_, f)| f.point.is_some())
        .map(|(i, f)| (i, f.clone()))
        .collect();
    if armed.is_empty() {
        return;
    }
    let n = nemesis.clone();
    let (start_ms, end_ms) = (plan.start_ms, plan.end_ms);
    let mut struck = vec![false; armed.len()];
    node::points::set_handler(Box::new(move |p: &Point| {
        let now_ms = node::now_ms();
        if now_ms < start_ms || now_ms >= end_ms {
            return Fate::Go;
        }
        let mut fate = Fate::Go;
        for (k, (i, f)) in armed.iter().enumerate() {
            if !struck[k] && f.point.as_ref() == Some(p) {
                struck[k] = true;
                let this = n.strike(*i, f, p, end_ms);
                if fate == Fate::Go {
                    fate = this;
                }
            }
        }
        fate
    }));
}
