//! Fault points: the places in a run where one fault could matter, named by what happened there.
//!
//! Random faults strike at random instants, so a mistake that needs a crash in a narrow window
//! (between a sync and the reply it allows, while a copy is in flight) shows up in a handful of
//! seeds per thousand. Exploration (`sim explore`) instead runs a scenario once without faults,
//! records every point where a fault could matter, and then reruns it with a fault at each point
//! (and at each pair of points): every schedule up to a bound, not a sample.
//!
//! The points are the two places where a node acts on the world:
//! - **a message it sends** ([`Site::Send`], in [`crate::rpc::call`]): the request can be lost, or
//!   arrive after its caller gave up; the sender can be paused there;
//! - **a disk sync** ([`Site::BeforeSync`], [`Site::AfterSync`], in [`crate::disk::Disk::sync`]): the
//!   node can crash with the writes still in its page cache, or just after they reached the disk
//!   (before anything it does because of them).
//!
//! A point is named by what happened, not by when: the node, the site (a message kind and its
//! destination, or the file synced) and its number among that node's points of that name
//! (`cs2 after sync #3 of chunks/01/c1`: the third sync of that file on cs2). A schedule written
//! with these names survives changes in timing that leave the protocol's steps alone.
//!
//! Nodes call [`send`], [`before_sync`] and [`after_sync`]; the harness installs a handler
//! ([`install`]) that sees each [`Point`] and answers its [`Fate`]: go on, lose the message, delay
//! it, or stop (the handler has crashed or paused the node). Without a handler nothing is counted
//! and every point goes on, at the cost of one thread-local read (sweeps). Like the trace sink, the
//! table is thread-local: a run owns its thread. Reaching a point draws no randomness and takes no
//! simulated time, so a run with a handler that always answers [`Fate::Go`] is the run without one.

use crate::types::{NodeName, ServerId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where on its node a point is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// The node is about to send a request of `kind` (a message's trace kind) to `to`.
    Send { kind: String, to: NodeName },
    /// The node is about to make its cached writes to `file` durable.
    BeforeSync { file: String },
    /// The node's writes to `file` just became durable; it has not acted on that yet.
    AfterSync { file: String },
}

/// One point: on `node`, the `nth` (from 1) time it reached a site of this name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Point {
    pub node: NodeName,
    pub site: Site,
    pub nth: u32,
}

impl Point {
    /// The key its number counts under: before and after one sync share a number.
    fn counter(&self) -> (NodeName, u8, String, Option<NodeName>) {
        match &self.site {
            Site::Send { kind, to } => (self.node, 0, kind.clone(), Some(*to)),
            Site::BeforeSync { file } | Site::AfterSync { file } => {
                (self.node, 1, file.clone(), None)
            }
        }
    }
}

/// `client0 sends write_chunk #2 to cs1`, `cs2 before sync #3 of chunks/01/c1`.
impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (node, nth) = (self.node, self.nth);
        match &self.site {
            Site::Send { kind, to } => write!(f, "{node} sends {kind} #{nth} to {to}"),
            Site::BeforeSync { file } => write!(f, "{node} before sync #{nth} of {file}"),
            Site::AfterSync { file } => write!(f, "{node} after sync #{nth} of {file}"),
        }
    }
}

/// A node name as points write it: `master`, `csN`, `clientN`.
pub fn parse_node(s: &str) -> Result<NodeName, String> {
    let number = |rest: &str| rest.parse::<u32>().ok();
    if s == "master" {
        Ok(NodeName::Master)
    } else if let Some(n) = s.strip_prefix("cs").and_then(number) {
        Ok(NodeName::Cs(ServerId(n)))
    } else if let Some(n) = s.strip_prefix("client").and_then(number) {
        Ok(NodeName::Client(n))
    } else {
        Err(format!("{s:?} is not a node (master, csN or clientN)"))
    }
}

impl std::str::FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "point {s:?} must look like `cs1 sends write_chunk #2 to cs2`, \
                 `cs1 before sync #3 of FILE` or `cs1 after sync #3 of FILE`"
            )
        };
        let words: Vec<&str> = s.split_whitespace().collect();
        let nth = |w: &str| {
            w.strip_prefix('#')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
        };
        match words.as_slice() {
            [node, "sends", kind, n, "to", to] => Ok(Point {
                node: parse_node(node)?,
                site: Site::Send {
                    kind: kind.to_string(),
                    to: parse_node(to)?,
                },
                nth: nth(n).ok_or_else(bad)?,
            }),
            [node, when @ ("before" | "after"), "sync", n, "of", file] => {
                let file = file.to_string();
                Ok(Point {
                    node: parse_node(node)?,
                    site: if *when == "before" {
                        Site::BeforeSync { file }
                    } else {
                        Site::AfterSync { file }
                    },
                    nth: nth(n).ok_or_else(bad)?,
                })
            }
            _ => Err(bad()),
        }
    }
}

/// What happens at a point, as the handler decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Nothing: the node goes on.
    Go,
    /// The request is lost: its caller waits out its timeout (sends only).
    Lose,
    /// The request reaches its handler `ms` after its caller gave up on it (sends only).
    Delay { ms: u64 },
    /// The request is served, but its answer is lost: the caller waits out its timeout not
    /// knowing that it was (sends only).
    LoseReply,
    /// The handler crashed the node: it must do nothing more.
    Stop,
    /// The handler paused the node: it must let the pause take hold, then go on when resumed.
    Yield,
}

/// One point reached, with where the run stood: the events recorded and the steps taken
/// (messages sent, syncs finished) before it. Two points of one run with the same standing have
/// nothing between them, so one fault does the same at either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub point: Point,
    pub at_ns: u64,
    pub events: usize,
    pub steps: u64,
}

pub type Handler = Box<dyn FnMut(&Point) -> Fate>;

struct Table {
    counts: BTreeMap<(NodeName, u8, String, Option<NodeName>), u32>,
    hits: Vec<Hit>,
    steps: u64,
    handler: Option<Handler>,
}

thread_local! {
    static TABLE: RefCell<Option<Table>> = const { RefCell::new(None) };
}

/// Starts counting points on this thread, every one answered by `handler` (or [`Fate::Go`] until
/// [`set_handler`] gives one).
pub fn install(handler: Option<Handler>) {
    TABLE.with(|t| {
        *t.borrow_mut() = Some(Table {
            counts: BTreeMap::new(),
            hits: Vec::new(),
            steps: 0,
            handler,
        })
    });
}

/// Answers every point from now on with `handler` (nothing if points are not being counted).
pub fn set_handler(handler: Handler) {
    TABLE.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            t.handler = Some(handler);
        }
    });
}

/// Stops counting (the handler is dropped) and returns every point reached, in order.
pub fn take() -> Vec<Hit> {
    TABLE
        .with(|t| t.borrow_mut().take())
        .map_or_else(Vec::new, |t| t.hits)
}

/// Whether points are being counted on this thread.
pub fn installed() -> bool {
    TABLE.with(|t| t.borrow().is_some())
}

/// Counts `point` (its `nth` is filled in here), records it and asks the handler. The handler
/// runs outside the table's borrow: it may inject faults, which record events.
/// `nth` is given for the point after a sync: the number of the sync it follows.
fn reach(node: NodeName, site: Site, nth: Option<u32>) -> Option<(Point, Fate)> {
    let (point, mut handler) = TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let t = t.as_mut()?;
        let mut point = Point { node, site, nth: 0 };
        point.nth = match nth {
            Some(n) => n,
            None => {
                let n = t.counts.entry(point.counter()).or_default();
                *n += 1;
                *n
            }
        };
        let events = crate::trace::with_events(<[_]>::len).unwrap_or(0);
        t.hits.push(Hit {
            point: point.clone(),
            at_ns: crate::now_ns(),
            events,
            steps: t.steps,
        });
        Some((point, t.handler.take()))
    })?;
    let fate = handler.as_mut().map_or(Fate::Go, |h| h(&point));
    TABLE.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            t.handler = handler;
        }
    });
    Some((point, fate))
}

/// Counts one step taken (a message sent, a sync finished), so that hits around it differ.
fn step() {
    TABLE.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            t.steps += 1;
        }
    });
}

/// Returns `Pending` once (after asking to be polled again), so that a pause the handler just
/// ordered takes hold before the node goes on: madsim holds back the tasks of a paused node when
/// it next picks them.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Carries out a fate that concerns the node itself: never returns after `Stop`, returns after a
/// pause is over for `Yield`, and hands every other fate back.
async fn settle(fate: Fate) -> Fate {
    match fate {
        Fate::Stop => std::future::pending().await,
        Fate::Yield => {
            YieldOnce(false).await;
            Fate::Go
        }
        other => other,
    }
}

/// The point where `node` sends a request of `kind` to `to`: what becomes of the request
/// ([`Fate::Go`], [`Fate::Lose`], [`Fate::Delay`] or [`Fate::LoseReply`]). Counts the send as a step if it goes.
pub async fn send(node: NodeName, kind: &str, to: NodeName) -> Fate {
    let Some((_, fate)) = reach(
        node,
        Site::Send {
            kind: kind.to_string(),
            to,
        },
        None,
    ) else {
        return Fate::Go;
    };
    let fate = settle(fate).await;
    if fate == Fate::Go {
        step();
    }
    fate
}

/// The point before `node` syncs `file`; returns the sync's number for [`after_sync`].
pub async fn before_sync(node: NodeName, file: &str) -> u32 {
    let Some((point, fate)) = reach(
        node,
        Site::BeforeSync {
            file: file.to_string(),
        },
        None,
    ) else {
        return 0;
    };
    settle(fate).await;
    point.nth
}

/// The point after sync number `nth` (from [`before_sync`]) of `file` on `node` finished.
pub async fn after_sync(node: NodeName, file: &str, nth: u32) {
    step();
    if let Some((_, fate)) = reach(
        node,
        Site::AfterSync {
            file: file.to_string(),
        },
        Some(nth),
    ) {
        settle(fate).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_print_and_parse_back() {
        for text in [
            "client0 sends write_chunk #2 to cs1",
            "master sends set_version #1 to cs4",
            "cs2 before sync #3 of chunks/01/c1",
            "master after sync #12 of oplog",
        ] {
            let p: Point = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        for bad in [
            "cs2 sends write_chunk 2 to cs1",
            "cs2 sends write_chunk #0 to cs1",
            "cs2 during sync #1 of x",
            "nemesis sends x #1 to cs1",
            "",
        ] {
            assert!(bad.parse::<Point>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn points_are_numbered_per_node_and_name_and_recorded_with_their_standing() {
        // Hits are stamped with simulated time: run inside a simulation.
        madsim::runtime::Runtime::new().block_on(async { numbered_and_recorded() });
    }

    fn numbered_and_recorded() {
        // No handler table: nothing counted, nothing recorded.
        assert!(reach(
            NodeName::Master,
            Site::BeforeSync { file: "x".into() },
            None
        )
        .is_none());
        let mut asked = Vec::new();
        install(Some(Box::new(|p: &Point| {
            if p.nth == 2 {
                Fate::Lose
            } else {
                Fate::Go
            }
        })));
        let cs1 = NodeName::Cs(ServerId(1));
        let send = |to| Site::Send {
            kind: "write_chunk".into(),
            to,
        };
        for (site, nth) in [
            (send(cs1), None),
            (send(NodeName::Master), None),
            (send(cs1), None),
            (Site::BeforeSync { file: "f".into() }, None),
            (Site::AfterSync { file: "f".into() }, Some(1)),
        ] {
            let (p, fate) = reach(NodeName::Client(0), site, nth).unwrap();
            asked.push((p.to_string(), fate));
        }
        step();
        reach(
            NodeName::Client(0),
            Site::BeforeSync { file: "f".into() },
            None,
        );
        let hits = take();
        assert!(!installed());
        assert_eq!(
            asked,
            vec![
                ("client0 sends write_chunk #1 to cs1".to_string(), Fate::Go),
                (
                    "client0 sends write_chunk #1 to master".to_string(),
                    Fate::Go
                ),
                (
                    "client0 sends write_chunk #2 to cs1".to_string(),
                    Fate::Lose
                ),
                ("client0 before sync #1 of f".to_string(), Fate::Go),
                ("client0 after sync #1 of f".to_string(), Fate::Go),
            ]
        );
        assert_eq!(hits.len(), 6);
        assert_eq!(hits[5].point.to_string(), "client0 before sync #2 of f");
        assert_eq!((hits[4].steps, hits[5].steps), (0, 1));
    }
}
