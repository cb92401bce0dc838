//! Protocol events, collected per simulation run.
//!
//! Nodes call [`emit`] at the moments a reader of a run cares about: a lease granted, a version
//! bumped, a chunk allocated, a checkpoint written. The harness installs a sink before it starts a
//! runtime and takes the events after; with no sink installed, [`emit`] is a cheap no-op.
//!
//! The sink is thread-local because one madsim runtime runs entirely on one OS thread, and a sweep
//! runs several runtimes on several threads at once: each must collect only its own events.

use serde::Serialize;
use std::cell::RefCell;

/// One protocol event, stamped with simulated time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub time_ns: u64,
    /// The node it happened on: `master`, `cs3`, `client1`, or `harness`.
    pub node: String,
    /// What happened, in snake_case: `lease_granted`, `version_bumped`, ...
    pub kind: &'static str,
    /// Key fields, already formatted (`chunk=c4 version=2 primary=cs1`).
    pub detail: String,
}

thread_local! {
    static SINK: RefCell<Option<Vec<Event>>> = const { RefCell::new(None) };
}

/// Starts collecting events on this thread, dropping any left from before.
pub fn install() {
    SINK.with(|s| *s.borrow_mut() = Some(Vec::new()));
}

/// Stops collecting and returns what was collected.
pub fn take() -> Vec<Event> {
    SINK.with(|s| s.borrow_mut().take()).unwrap_or_default()
}

/// Lets `f` look at the events collected so far on this thread (None if no sink is installed).
/// The nemesis uses it to find a chunk's current primary, the way an operator reads logs.
pub fn with_events<R>(f: impl FnOnce(&[Event]) -> R) -> Option<R> {
    SINK.with(|s| s.borrow().as_ref().map(|events| f(events)))
}

/// Records an event if a sink is installed. `detail` is only built when it is.
pub fn emit(node: &str, kind: &'static str, detail: impl FnOnce() -> String) {
    SINK.with(|s| {
        if let Some(events) = s.borrow_mut().as_mut() {
            events.push(Event {
                time_ns: crate::now_ns(),
                node: node.to_string(),
                kind,
                detail: detail(),
            });
        }
    });
}
