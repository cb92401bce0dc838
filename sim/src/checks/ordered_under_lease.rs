//! Check `ordered_under_lease`: every mutation a primary numbered fell inside a lease the master
//! gave that server, at that version, and had not let run out.
//!
//! Must always hold. GFS §3.1: the primary picks the serial order only while it holds the lease;
//! the master waits for a lease to expire before it grants another, so a primary that keeps
//! ordering past its expiry can order mutations beside the next primary. This check judges the act,
//! not the primary's belief: it takes each `mutation_ordered` a chunkserver emitted when it handed
//! out a serial, and looks for a lease the *master* offered it (`lease_offered`) or renewed
//! (`lease_renewed`) before that instant, at the same chunk and version, whose expiry is still
//! ahead. What the primary says about its own lease (`lease_acquired`) plays no part. (Simulated
//! clocks do not drift, so the master's expiry instant is the primary's too; the paper's margin for
//! drift would only shorten the interval.)

use super::Violation;
use node::trace::{Entry, Event, NodeName};
use node::{ChunkHandle, ServerId};
use std::collections::BTreeMap;

pub const NAME: &str = "ordered_under_lease";

pub fn check(events: &[Entry]) -> Option<Violation> {
    // (chunk, version, server) -> the latest expiry the master gave so far (offer or renewal).
    let mut granted: BTreeMap<(ChunkHandle, u64, ServerId), (u64, usize)> = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match e.event {
            Event::LeaseOffered {
                chunk,
                version,
                primary,
                expires_ns,
                ..
            }
            | Event::LeaseRenewed {
                chunk,
                version,
                primary,
                expires_ns,
                ..
            } if e.node == NodeName::Master => {
                let g = granted
                    .entry((chunk, version, primary))
                    .or_insert((expires_ns, i));
                if expires_ns >= g.0 {
                    *g = (expires_ns, i);
                }
            }
            Event::MutationOrdered {
                chunk,
                version,
                serial,
                ..
            } => {
                let NodeName::Cs(server) = e.node else {
                    continue;
                };
                let lease = granted.get(&(chunk, version, server));
                if lease.is_none_or(|&(until, _)| until <= e.time_ns) {
                    bad.push((i, e.time_ns, server, chunk, version, serial, lease.copied()));
                }
            }
            _ => {}
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let lines = bad
        .iter()
        .map(|&(i, t, server, chunk, version, serial, lease)| {
            let why = match lease {
                Some((until, at)) => format!(
                    "the master's lease on it at v{version} ran out at {:.3} ms (event #{at})",
                    ms(until)
                ),
                None => format!("the master never gave {server} a lease on it at v{version}"),
            };
            format!(
            "{server} numbered serial {serial} of chunk {chunk} at {:.3} ms (event #{i}): {why}",
            ms(t)
        )
        });
    Some(Violation::listing(
        NAME,
        format!(
            "{} mutations were numbered by a primary outside every lease the master gave it:",
            bad.len()
        ),
        bad.len(),
        lines,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::event_at_ms as ev;

    fn cs(i: u32) -> NodeName {
        NodeName::Cs(ServerId(i))
    }

    fn offered(chunk: u64, version: u64, primary: u32, until_ms: u64) -> Entry {
        ev(
            0,
            NodeName::Master,
            Event::LeaseOffered {
                chunk: ChunkHandle(chunk),
                version,
                primary: ServerId(primary),
                replicas: vec![ServerId(primary)],
                expires_ns: until_ms * 1_000_000,
            },
        )
    }

    fn ordered(t_ms: u64, server: u32, chunk: u64, version: u64, serial: u64) -> Entry {
        ev(
            t_ms,
            cs(server),
            Event::MutationOrdered {
                chunk: ChunkHandle(chunk),
                version,
                serial,
                offset: 0,
                len: 1,
            },
        )
    }

    #[test]
    fn mutations_outside_the_masters_leases_are_caught() {
        let renewed = ev(
            900,
            NodeName::Master,
            Event::LeaseRenewed {
                chunk: ChunkHandle(1),
                version: 2,
                primary: ServerId(1),
                expires_ns: 1_900_000_000,
            },
        );
        let ok = vec![
            offered(1, 2, 1, 1000),
            ordered(10, 1, 1, 2, 1),
            ordered(999, 1, 1, 2, 2),
            renewed.clone(),
            ordered(1500, 1, 1, 2, 3),
        ];
        assert_eq!(check(&ok), None);

        // Past the renewed expiry: the act the lease did not cover.
        let mut late = ok.clone();
        late.push(ordered(1900, 1, 1, 2, 4));
        let v = check(&late).expect("late mutation caught");
        assert!(
            v.report
                .contains("cs1 numbered serial 4 of chunk c1 at 1900.000 ms")
                && v.report.contains("ran out at 1900.000 ms (event #3)"),
            "{}",
            v.report
        );

        // Without the renewal the third mutation is already late.
        let mut unrenewed = ok.clone();
        unrenewed.remove(3);
        assert!(check(&unrenewed).is_some_and(|v| v.report.contains("serial 3")));

        // A lease the primary only claims (no offer from the master), another version, another
        // server: none of them covers the mutation.
        for wrong in [
            ordered(10, 2, 1, 2, 1),
            ordered(10, 1, 1, 3, 1),
            ordered(10, 1, 2, 2, 1),
        ] {
            let v = check(&[offered(1, 2, 1, 1000), wrong]).expect("no lease");
            assert!(v.report.contains("never gave"), "{}", v.report);
        }
        // A renewal only counts from when the master made it.
        let early = vec![offered(1, 2, 1, 1000), ordered(1200, 1, 1, 2, 1), renewed];
        assert!(check(&early).is_some());
    }
}
