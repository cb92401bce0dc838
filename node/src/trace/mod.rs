//! Protocol events, collected per simulation run.
//!
//! Nodes call [`emit`] at the moments a reader of a run cares about: a lease granted, a version
//! bumped, a chunk allocated, a checkpoint written. Each is a typed [`Event`] ([`event`]), stamped
//! with the simulated time and the node ([`Entry`]). The harness installs a sink before it starts a
//! runtime and takes the entries after; with no sink installed, [`emit`] is a cheap no-op that does
//! not even build the event.
//!
//! Two levels of detail ([`Detail`]). Protocol events are few, and sweeps want them (the checks and
//! the nemesis read some). Messages and disk operations are many: every RPC sent, delivered,
//! answered or dropped and every page-cache write and sync. They go through [`emit_full`], which
//! does nothing, not even build its event, unless the sink records [`Detail::Full`]: a replay pays
//! for them, a sweep does not. Recording them never changes a run: they draw no randomness, take
//! no simulated time and feed no decision.
//!
//! The sink is thread-local because one madsim runtime runs entirely on one OS thread, and a sweep
//! runs several runtimes on several threads at once: each must collect only its own events. The
//! same holds for the message bookkeeping kept here (per-node message counters, which messages
//! have arrived), so message ids depend only on the run.

pub mod event;

pub use crate::types::NodeName;
pub use event::{DiskWrite, Event, FaultKind, FaultOn, LossCause, Lost, MsgId, Role};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One event, stamped with the simulated time and the node it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time_ns: u64,
    pub node: NodeName,
    pub event: Event,
}

/// How much a sink records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// Protocol events, faults and verdicts: what sweeps and the checks need.
    #[default]
    Protocol,
    /// Also every message (sent, delivered, answered, dropped) and every disk write, sync and
    /// loss: for replaying one run.
    Full,
}

/// Message bookkeeping of the current run, kept only at [`Detail::Full`].
#[derive(Default)]
struct Messages {
    /// Last message number per sending address (node), so ids read `client0#17`.
    next: BTreeMap<IpAddr, u64>,
    /// Messages whose request reached its handler and whose caller has not yet settled.
    delivered: BTreeSet<(IpAddr, u64)>,
    /// Names given by the harness to addresses the default naming gets wrong (the checker).
    names: BTreeMap<IpAddr, NodeName>,
}

thread_local! {
    static SINK: RefCell<Option<Vec<Entry>>> = const { RefCell::new(None) };
    static FULL: Cell<bool> = const { Cell::new(false) };
    static MESSAGES: RefCell<Messages> = RefCell::new(Messages::default());
}

/// Starts collecting events on this thread at `detail`, dropping any left from before.
pub fn install(detail: Detail) {
    SINK.with(|s| *s.borrow_mut() = Some(Vec::new()));
    FULL.with(|f| f.set(detail == Detail::Full));
    MESSAGES.with(|m| *m.borrow_mut() = Messages::default());
}

/// Stops collecting and returns what was collected.
pub fn take() -> Vec<Entry> {
    FULL.with(|f| f.set(false));
    MESSAGES.with(|m| *m.borrow_mut() = Messages::default());
    SINK.with(|s| s.borrow_mut().take()).unwrap_or_default()
}

/// Lets `f` look at the events collected so far on this thread (None if no sink is installed).
/// The nemesis uses it to find a chunk's current primary, the way an operator reads logs.
pub fn with_events<R>(f: impl FnOnce(&[Entry]) -> R) -> Option<R> {
    SINK.with(|s| s.borrow().as_ref().map(|events| f(events)))
}

/// Records the event `event` builds, on `node`, if a sink is installed; otherwise builds nothing.
pub fn emit(node: NodeName, event: impl FnOnce() -> Event) {
    SINK.with(|s| {
        if let Some(entries) = s.borrow_mut().as_mut() {
            entries.push(Entry {
                time_ns: crate::now_ns(),
                node,
                event: event(),
            });
        }
    });
}

/// Whether the sink records messages and disk operations ([`Detail::Full`]).
pub fn full() -> bool {
    FULL.with(Cell::get)
}

/// Records a message or disk event, only at [`Detail::Full`]; otherwise builds nothing.
pub fn emit_full(node: NodeName, event: impl FnOnce() -> Event) {
    if full() {
        emit(node, event);
    }
}

/// The node at `ip`, as the trace names it (`master`, `cs2`, `client0`, `checker`).
pub fn node_name(ip: IpAddr) -> NodeName {
    MESSAGES
        .with(|m| m.borrow().names.get(&ip).copied())
        .unwrap_or_else(|| crate::types::addr::node_name(ip))
}

/// Names the node at `ip` for the rest of the run (the harness's checker uses a client address).
pub fn name_node(ip: IpAddr, name: NodeName) {
    MESSAGES.with(|m| m.borrow_mut().names.insert(ip, name));
}

/// The next message number of the node at `from`, starting at 1 (0 means "not traced").
pub fn next_message(from: IpAddr) -> u64 {
    MESSAGES.with(|m| {
        let mut m = m.borrow_mut();
        let n = m.next.entry(from).or_default();
        *n += 1;
        *n
    })
}

/// Notes that message `seq` of `from` reached its handler.
pub fn mark_delivered(from: IpAddr, seq: u64) {
    MESSAGES.with(|m| m.borrow_mut().delivered.insert((from, seq)));
}

/// Whether message `seq` of `from` reached its handler; forgets it (its caller has settled).
pub fn settle(from: IpAddr, seq: u64) -> bool {
    MESSAGES.with(|m| m.borrow_mut().delivered.remove(&(from, seq)))
}
