//! One RPC attempt with a timeout, its transport failure folded into [`GfsError::Network`].
//!
//! Retrying is the caller's business (bounded there): a failed attempt may or may not have reached
//! the other side, which is exactly the ambiguity GFS clients live with.
//!
//! Every request travels in an [`Envelope`] naming its sender and its number there, so a full
//! trace can follow one message from `msg_sent` at the caller to `msg_delivered` at the handler
//! (see [`serve`]) and back (`reply_delivered`), or say where it was lost (`msg_dropped`). At
//! protocol detail the envelope carries zeros and nothing is formatted. madsim passes messages as
//! typed values, and the envelope keeps the request's RPC id, so wrapping changes neither the
//! network's behaviour nor its draws of randomness.

use crate::msg::Traced;
use crate::points::Fate;
use crate::trace::{self, Event, Lost, MsgId};
use crate::types::{GfsError, NodeName};
use madsim::net::rpc::{Bytes, Request};
use madsim::net::Endpoint;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A request with the identity of its message: the sender's address and its number there (0 when
/// the run does not record messages), and the instant its caller stops waiting for the answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<R> {
    pub from: IpAddr,
    pub seq: u64,
    /// Simulated time (ns) at which the caller gives up on this request: its send time plus its
    /// timeout. A server drops a request that arrives later ([`handle`]).
    pub deadline_ns: u64,
    pub body: R,
}

/// A request that says when its caller stops waiting for it.
pub trait Expiring {
    /// The caller's deadline, in simulated ns.
    fn deadline_ns(&self) -> u64;
    /// The request's trace kind.
    fn kind(&self) -> &'static str;
}

impl<R: Traced> Expiring for Envelope<R> {
    fn deadline_ns(&self) -> u64 {
        self.deadline_ns
    }
    fn kind(&self) -> &'static str {
        R::KIND
    }
}

impl<R: Request> Request for Envelope<R> {
    type Response = R::Response;
    const ID: u64 = R::ID;
}

/// Serves requests of type `R` arriving at `ep` with `receivers` receive loops, each answering by
/// running `f` in a task of its own; the same wire format as madsim's `add_rpc_handler`, which
/// `call` on the other side expects.
///
/// Why not `add_rpc_handler`: its single loop receives one message at a time, and madsim's receive
/// sleeps after taking each message (a delay of a few microseconds, but every simulated sleep lasts
/// at least a millisecond). One loop thus takes at most 1,000 requests of a kind per simulated
/// second, and a master with 1,000 chunkservers heartbeating five times a second fell ever further
/// behind: heartbeats timed out, live servers were declared dead, and their chunks were copied and
/// trimmed without end. Several loops share the mailbox (madsim hands a message to the first
/// waiting receiver), so the ceiling rises to `receivers` x 1,000 per second while each message
/// still takes the same delay. With one loop the schedule, and so every trace, is madsim's own.
/// Each loop is a task waiting in the endpoint's mailbox, which madsim scans on every delivery,
/// so the count follows the callers (see [`crate::ClusterConfig::receivers_for`]).
///
/// A request that arrives after its caller's deadline is dropped unanswered, as RPC systems that
/// carry deadlines (gRPC) cancel work nobody waits for. The paper says nothing of it; without it,
/// a request held in the network past its timeout is served after its caller gave up and perhaps
/// retried: `sim explore` found a held write overwriting a later acknowledged append, and a held
/// `clone_chunk` making a replica the master had given up on (`scenarios/late_*`). Every node
/// reads one simulated clock, so the deadline means the same instant everywhere; with clocks that
/// drift, it would need the drift bound as a margin.
pub fn handle<R, F, Fut>(ep: &Endpoint, receivers: u32, f: F)
where
    R: Request + Expiring,
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R::Response> + Send + 'static,
{
    assert!(receivers >= 1, "a request kind needs a receive loop");
    let f = Arc::new(f);
    for _ in 0..receivers {
        let (ep, f) = (ep.clone(), f.clone());
        madsim::task::spawn(async move {
            // The loop ends only when the network is gone (the node is being killed).
            while let Ok((data, from)) = ep.recv_from_raw(R::ID).await {
                let (reply_tag, req, _data) = *data
                    .downcast::<(u64, R, Bytes)>()
                    .expect("a request of the kind its ID names");
                let now = crate::now_ns();
                if now > req.deadline_ns() {
                    crate::coverage::hit(crate::coverage::Probe::RequestExpired);
                    let me = ep
                        .local_addr()
                        .map_or(NodeName::Addr(from.ip()), |a| trace::node_name(a.ip()));
                    trace::emit(me, || Event::RequestExpired {
                        from: trace::node_name(from.ip()),
                        kind: req.kind(),
                        late_us: (now - req.deadline_ns()) / 1_000,
                    });
                    continue;
                }
                let reply = f(req);
                let ep = ep.clone();
                madsim::task::spawn(async move {
                    let reply = reply.await;
                    // A reply that cannot be sent is a lost reply: the caller times out.
                    let _ = ep
                        .send_to_raw(from, reply_tag, Box::new((reply, Bytes::new())))
                        .await;
                });
            }
        });
    }
}

/// Unwraps a request at the handler of node `me`, recording its delivery in a full trace.
pub fn serve<R: Traced>(me: NodeName, env: Envelope<R>) -> R {
    if env.seq != 0 && trace::full() {
        trace::mark_delivered(env.from, env.seq);
        let from = trace::node_name(env.from);
        trace::emit_full(me, || Event::MsgDelivered {
            msg: MsgId { from, seq: env.seq },
            from,
            kind: R::KIND,
        });
    }
    env.body
}

/// A message being traced: who sent it, its number, when.
struct Sent {
    from: IpAddr,
    seq: u64,
    at_ns: u64,
}

/// Sends `req` and waits up to `timeout_ms` for the reply.
pub async fn call<R: Request + Traced>(
    ep: &Endpoint,
    dst: SocketAddr,
    req: R,
    timeout_ms: u64,
) -> Result<R::Response, GfsError> {
    call_by(ep, dst, req, timeout_ms, u64::MAX).await
}

/// [`call`] for a request that must not be served after `not_after_ns` even if its caller would
/// still wait: its deadline is the earlier of the two (a mutation forwarded under a lease is not
/// applied once the lease is over).
pub async fn call_by<R: Request + Traced>(
    ep: &Endpoint,
    dst: SocketAddr,
    req: R,
    timeout_ms: u64,
    not_after_ns: u64,
) -> Result<R::Response, GfsError> {
    // The fault point comes first: a sender crashed there never sent anything.
    let timeout = Duration::from_millis(timeout_ms);
    let fate = if crate::points::installed() {
        let me = ep
            .local_addr()
            .map_or(NodeName::Addr(dst.ip()), |a| trace::node_name(a.ip()));
        crate::points::send(me, R::KIND, trace::node_name(dst.ip())).await
    } else {
        Fate::Go
    };
    let sent = trace::full().then(|| {
        let from = ep
            .local_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let seq = trace::next_message(from);
        let me = trace::node_name(from);
        trace::emit_full(me, || Event::MsgSent {
            msg: MsgId { from: me, seq },
            to: trace::node_name(dst.ip()),
            kind: R::KIND,
            fields: req.fields(),
        });
        Sent {
            from,
            seq,
            at_ns: crate::now_ns(),
        }
    });
    let env = Envelope {
        from: sent
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |s| s.from),
        seq: sent.as_ref().map_or(0, |s| s.seq),
        deadline_ns: (crate::now_ns() + timeout_ms * 1_000_000).min(not_after_ns),
        body: req,
    };
    let result = match fate {
        Fate::Lose => {
            // Lost on the way: the caller hears nothing and waits out its timeout.
            madsim::time::sleep(timeout).await;
            Err(explored_loss())
        }
        Fate::Delay { ms } => {
            // Held on the way: it reaches its handler `ms` after its caller gave up (the caller
            // may have retried meanwhile); its answer goes nowhere. It leaves from a port of its
            // own: holding the caller's endpoint would keep the caller's address bound after the
            // caller is gone.
            let ip = ep
                .local_addr()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
            madsim::task::spawn(async move {
                madsim::time::sleep(timeout + Duration::from_millis(ms)).await;
                if let Ok(late) = Endpoint::bind(SocketAddr::new(ip, 0)).await {
                    let _ = late.call_timeout(dst, env, timeout).await;
                }
            });
            madsim::time::sleep(timeout).await;
            Err(explored_loss())
        }
        Fate::LoseReply => {
            // Served, but the answer never arrives: the caller waits out its timeout.
            let started = madsim::time::Instant::now();
            let _ = ep.call_timeout(dst, env, timeout).await;
            madsim::time::sleep(timeout.saturating_sub(started.elapsed())).await;
            Err(explored_loss())
        }
        _ => ep.call_timeout(dst, env, timeout).await,
    };
    if let Some(s) = sent {
        let arrived = trace::settle(s.from, s.seq);
        let me = trace::node_name(s.from);
        let other = trace::node_name(dst.ip());
        let msg = MsgId {
            from: me,
            seq: s.seq,
        };
        let took_us = (crate::now_ns() - s.at_ns) / 1_000;
        match &result {
            Ok(_) => trace::emit_full(me, || Event::ReplyDelivered {
                msg,
                from: other,
                kind: R::KIND,
                rtt_us: took_us,
            }),
            Err(e) => trace::emit_full(me, || Event::MsgDropped {
                msg,
                to: other,
                kind: R::KIND,
                // `Reply`: the handler got the request, but no answer came back in time (it may
                // have been slow rather than lost). `Request`: the handler never got it so far.
                lost: if arrived { Lost::Reply } else { Lost::Request },
                why: e.kind(),
                after_us: took_us,
            }),
        }
    }
    result.map_err(|e| GfsError::Network(format!("{dst}: {e}")))
}

/// The error a caller sees when exploration loses or holds back its request: the timeout madsim
/// reports.
fn explored_loss() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "RPC timeout")
}

/// [`call`] for requests whose response is itself a `Result`.
pub async fn call_result<R, T>(
    ep: &Endpoint,
    dst: SocketAddr,
    req: R,
    timeout_ms: u64,
) -> Result<T, GfsError>
where
    R: Request<Response = Result<T, GfsError>> + Traced,
{
    call(ep, dst, req, timeout_ms).await?
}
