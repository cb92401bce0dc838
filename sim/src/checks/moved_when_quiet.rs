//! Check `moved_when_quiet`: the master copies or drops a chunk's replica only when no lease on
//! the chunk can still be ordering mutations.
//!
//! Must always hold. A primary orders mutations while its lease runs (GFS §3.1), and a client
//! hears that one succeeded up to an RPC timeout after it was ordered. A copy taken before the
//! chunk's last lease ran out and those mutations landed can miss acknowledged ones (GFS §4.3
//! copies a replica "from a valid replica"; valid means complete). A replica dropped as an extra
//! (`replica_trimmed`) while a lease runs is still one of the primary's secondaries: the primary
//! forwards to it, the master deletes it at its next heartbeat, and mutations fail for a
//! bookkeeping choice no fault explains. The project's rule for both (`ClusterConfig::
//! clone_quiet_ms`, `MasterState::clone_orders` and `trim_excess`): wait until the chunk's last
//! lease expired `clone_quiet_ms` ago, and until the master is that long past the grace of its
//! last start (a previous incarnation's leases, unknown to it, run at most that long).
//!
//! Judged by acts: each lease the master offered (`lease_offered`), granted or renewed
//! (`lease_granted`, `lease_renewed`) extends the chunk's last expiry; each master start sets the
//! grace (`grace_until_ms`, rounded down to the millisecond, which errs for the master). Each
//! copy ordered (`clone_started`) and each replica dropped (`replica_trimmed`) earlier than both
//! plus the quiet period fails, with the lease, the grace and how early it came.
//!
//! Neither `replicas_identical` nor the read checks catch an early trim: the dropped replica is
//! an extra, so no byte is lost; only the timing is wrong.

use super::{ms, Violation};
use node::trace::{Entry, Event};
use node::{ChunkHandle, ServerId};
use std::collections::BTreeMap;

pub const NAME: &str = "moved_when_quiet";

const MS: u64 = 1_000_000;

/// A copy or a trim that came before its chunk was quiet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Early {
    /// Index of the `clone_started` or `replica_trimmed` event.
    pub at: usize,
    pub chunk: ChunkHandle,
    /// The server the copy went to, or whose replica was dropped.
    pub server: ServerId,
    pub trim: bool,
    /// The chunk's last lease expiry the master had issued, if any.
    pub lease_until_ns: Option<u64>,
    /// The grace of the master's last start.
    pub grace_until_ns: u64,
    /// When the chunk became quiet: the later of the two, plus the quiet period.
    pub quiet_from_ns: u64,
}

/// Each chunk's last lease expiry the master issued, and the grace of its last start: what
/// decides when a chunk is quiet (shared with `copies_prompt`, which judges the other side: a
/// copy not made long after).
#[derive(Debug, Default)]
pub struct LeaseQuiet {
    lease_until_ns: BTreeMap<ChunkHandle, u64>,
    grace_until_ns: u64,
}

impl LeaseQuiet {
    /// Takes `e` into account; true if it was a master start or a lease.
    pub fn observe(&mut self, e: &Entry) -> bool {
        let (chunk, until_ns) = match &e.event {
            Event::MasterStarted { grace_until_ms, .. }
            | Event::MasterRecovered { grace_until_ms, .. } => {
                self.grace_until_ns = grace_until_ms * MS;
                return true;
            }
            Event::LeaseOffered {
                chunk, expires_ns, ..
            }
            | Event::LeaseRenewed {
                chunk, expires_ns, ..
            } => (*chunk, *expires_ns),
            Event::LeaseGranted {
                chunk, expires_ms, ..
            } => (*chunk, expires_ms * MS),
            _ => return false,
        };
        let until = self.lease_until_ns.entry(chunk).or_default();
        *until = (*until).max(until_ns);
        true
    }

    /// The chunk's last lease expiry, if it had a lease.
    pub fn lease_until_ns(&self, chunk: ChunkHandle) -> Option<u64> {
        self.lease_until_ns.get(&chunk).copied()
    }

    pub fn grace_until_ns(&self) -> u64 {
        self.grace_until_ns
    }

    /// From when `chunk` is quiet: its last lease and the grace both ended `quiet_ns` ago.
    pub fn quiet_from_ns(&self, chunk: ChunkHandle, quiet_ns: u64) -> u64 {
        self.lease_until_ns(chunk)
            .unwrap_or(0)
            .max(self.grace_until_ns)
            .saturating_add(quiet_ns)
    }
}

/// Every copy and trim in `events` that came before its chunk was quiet for `quiet_ms`.
pub fn early(events: &[Entry], quiet_ms: u64) -> Vec<Early> {
    let quiet_ns = quiet_ms * MS;
    let mut quiet = LeaseQuiet::default();
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if quiet.observe(e) {
            continue;
        }
        let (chunk, server, trim) = match &e.event {
            Event::CloneStarted { chunk, to, .. } => (*chunk, *to, false),
            Event::ReplicaTrimmed { chunk, server } => (*chunk, *server, true),
            _ => continue,
        };
        let quiet_from_ns = quiet.quiet_from_ns(chunk, quiet_ns);
        if e.time_ns < quiet_from_ns {
            out.push(Early {
                at: i,
                chunk,
                server,
                trim,
                lease_until_ns: quiet.lease_until_ns(chunk),
                grace_until_ns: quiet.grace_until_ns(),
                quiet_from_ns,
            });
        }
    }
    out
}

pub fn check(events: &[Entry], quiet_ms: u64) -> Option<Violation> {
    let early = early(events, quiet_ms);
    if early.is_empty() {
        return None;
    }
    Some(Violation::listing(
        NAME,
        format!(
            "{} copies or trims came before their chunk was quiet (GFS §3.1, §4.3: a replica is \
             copied or dropped only once the chunk's last lease, and the grace of the master's \
             last start, ended {quiet_ms} ms ago, so no mutation of a lease can still land):",
            early.len()
        ),
        early.len(),
        early.iter().map(|x| {
            let t = events[x.at].time_ns;
            let what = if x.trim {
                format!("replica of chunk {} on {} dropped", x.chunk, x.server)
            } else {
                format!("chunk {} copied to {}", x.chunk, x.server)
            };
            let lease = x.lease_until_ns.map_or("no lease".to_string(), |u| {
                format!("last lease until {}", ms(u))
            });
            format!(
                "event #{} at {}: {what}; {lease}, grace until {}: quiet only from {} ({} early)",
                x.at,
                ms(t),
                ms(x.grace_until_ns),
                ms(x.quiet_from_ns),
                ms(x.quiet_from_ns - t),
            )
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::event_at_ms as ev;
    use super::*;
    use node::trace::NodeName;

    const QUIET_MS: u64 = 100;

    fn master(t: u64, event: Event) -> Entry {
        ev(t, NodeName::Master, event)
    }

    fn started(t: u64, grace_until_ms: u64) -> Entry {
        master(
            t,
            Event::MasterStarted {
                lsn: 0,
                files: 0,
                grace_until_ms,
            },
        )
    }

    fn offered(t: u64, chunk: u64, expires_ms: u64) -> Entry {
        master(
            t,
            Event::LeaseOffered {
                chunk: ChunkHandle(chunk),
                version: 1,
                primary: ServerId(0),
                replicas: vec![ServerId(0), ServerId(1)],
                expires_ns: expires_ms * MS,
            },
        )
    }

    fn renewed(t: u64, chunk: u64, expires_ms: u64) -> Entry {
        master(
            t,
            Event::LeaseRenewed {
                chunk: ChunkHandle(chunk),
                version: 1,
                primary: ServerId(0),
                expires_ns: expires_ms * MS,
            },
        )
    }

    fn trimmed(t: u64, chunk: u64, server: u32) -> Entry {
        master(
            t,
            Event::ReplicaTrimmed {
                chunk: ChunkHandle(chunk),
                server: ServerId(server),
            },
        )
    }

    fn cloned(t: u64, chunk: u64, to: u32) -> Entry {
        master(
            t,
            Event::CloneStarted {
                chunk: ChunkHandle(chunk),
                version: 1,
                from: ServerId(0),
                to: ServerId(to),
                replicas: 1,
            },
        )
    }

    #[test]
    fn moves_after_the_lease_and_the_quiet_period_pass() {
        let events = [
            started(0, 50),
            offered(200, 1, 260),
            renewed(250, 1, 310),
            trimmed(410, 1, 2),
            cloned(410, 1, 3),
            // Another chunk never leased: only the grace counts.
            trimmed(150, 2, 0),
        ];
        assert_eq!(early(&events, QUIET_MS), vec![]);
        assert!(check(&events, QUIET_MS).is_none());
    }

    #[test]
    fn a_trim_under_a_renewed_lease_fails() {
        let events = [
            started(0, 50),
            offered(200, 1, 260),
            renewed(250, 1, 310),
            // Quiet from 410 ms (the renewal's expiry plus 100 ms); the offer alone would allow 360.
            trimmed(400, 1, 2),
        ];
        let found = early(&events, QUIET_MS);
        assert_eq!(found.len(), 1);
        assert!(found[0].trim);
        assert_eq!(found[0].quiet_from_ns, 410 * MS);
        let report = check(&events, QUIET_MS).expect("fails").report;
        assert!(
            report.contains("replica of chunk c1 on cs2 dropped")
                && report.contains("quiet only from 410.000 ms (10.000 ms early)"),
            "{report}"
        );
    }

    #[test]
    fn a_copy_within_a_restarted_masters_grace_fails() {
        let events = [
            started(0, 50),
            offered(200, 1, 260),
            // The master restarts at 300 ms: a lease it granted before may run to 360 ms and
            // it no longer knows of it, so it waits out its grace (to 400 ms) and the quiet period.
            master(
                300,
                Event::MasterRecovered {
                    lsn: 3,
                    files: 1,
                    grace_until_ms: 400,
                },
            ),
            cloned(450, 1, 3),
            cloned(500, 1, 4),
        ];
        let found = early(&events, QUIET_MS);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].server, found[0].trim), (ServerId(3), false));
        assert_eq!(found[0].quiet_from_ns, 500 * MS);
    }

    #[test]
    fn each_chunk_has_its_own_lease() {
        let events = [
            started(0, 0),
            offered(10, 1, 1_000),
            offered(10, 2, 20),
            trimmed(120, 2, 1),
            trimmed(120, 1, 1),
        ];
        let found = early(&events, QUIET_MS);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].chunk, ChunkHandle(1));
    }
}
