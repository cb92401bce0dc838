//! Check `handles_unique`: the master gives each chunk a handle no other chunk ever had, across
//! the whole run and every restart of the master.
//!
//! Must always hold. GFS §2.3: each chunk is identified by "an immutable and globally unique 64 bit
//! chunk handle assigned by the master at the time of chunk creation". Chunkservers, clients and
//! the master's own tables know a chunk only by its handle, so a handle given twice makes two
//! chunks one: a write to the new file lands in the old file's replicas, a copy of one serves the
//! other, a deletion of one erases both. The mistake lives in bookkeeping (the next handle not
//! logged, not checkpointed, not restored after a restart) that a run rarely stresses in a way the
//! byte checks notice: the reused handle's old chunk must still hold bytes someone reads back.
//!
//! The check judges the master's acts: every `chunk_allocated` (one per chunk its log committed,
//! holes included) must name a handle no earlier allocation named; and the master's final chunk
//! table must list each handle at one position of one file only.

use super::{FinalState, Violation};
use node::trace::{Entry, Event};
use node::ChunkHandle;
use std::collections::BTreeMap;

pub const NAME: &str = "handles_unique";

pub fn check(events: &[Entry], state: &FinalState) -> Option<Violation> {
    let mut first: BTreeMap<ChunkHandle, (usize, &Entry)> = BTreeMap::new();
    let mut findings = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Event::ChunkAllocated { path, index, chunk } = &e.event else {
            continue;
        };
        match first.get(chunk) {
            None => {
                first.insert(*chunk, (i, e));
            }
            Some(&(j, earlier)) => {
                let Event::ChunkAllocated {
                    path: p0,
                    index: i0,
                    ..
                } = &earlier.event
                else {
                    unreachable!("only allocations are kept");
                };
                findings.push(format!(
                    "chunk {chunk} allocated for {p0}#{i0} at {:.3} ms (event #{j}) and again for \
                     {path}#{index} at {:.3} ms (event #{i})",
                    earlier.time_ns as f64 / 1e6,
                    e.time_ns as f64 / 1e6,
                ));
            }
        }
    }
    let mut listed: BTreeMap<ChunkHandle, (&str, u64)> = BTreeMap::new();
    for c in &state.chunks {
        if let Some((p0, i0)) = listed.insert(c.handle, (&c.path, c.index)) {
            findings.push(format!(
                "the master's table lists chunk {} as {p0}#{i0} and as {}#{}",
                c.handle, c.path, c.index
            ));
        }
    }
    let n = findings.len();
    (n > 0).then(|| {
        Violation::listing(
            NAME,
            format!("{n} chunk handles given to two chunks:"),
            n,
            findings,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::event_at_ms;
    use node::msg::ChunkDump;
    use node::trace::NodeName;

    fn allocated(t_ms: u64, path: &str, index: u64, h: u64) -> Entry {
        event_at_ms(
            t_ms,
            NodeName::Master,
            Event::ChunkAllocated {
                path: path.into(),
                index,
                chunk: ChunkHandle(h),
            },
        )
    }

    fn dump(path: &str, index: u64, h: u64) -> ChunkDump {
        ChunkDump {
            path: path.into(),
            index,
            handle: ChunkHandle(h),
            version: 1,
            issued: 1,
            replicas: Vec::new(),
        }
    }

    #[test]
    fn a_handle_given_twice_is_caught_in_the_allocations_and_in_the_table() {
        let mut events = vec![allocated(10, "/a", 0, 1), allocated(20, "/a", 1, 2)];
        let mut state = FinalState {
            chunks: vec![dump("/a", 0, 1), dump("/a", 1, 2)],
            ..FinalState::default()
        };
        assert_eq!(check(&events, &state), None);
        // A master restarted without its next handle gives handle 1 again, to another file.
        events.push(allocated(3000, "/b", 0, 1));
        let v = check(&events, &state).expect("a reused handle");
        assert!(
            v.report.contains("chunk c1 allocated for /a#0 at 10.000 ms (event #0) and again for /b#0 at 3000.000 ms (event #2)"),
            "{}",
            v.report
        );
        // The table alone shows it too.
        state.chunks.push(dump("/b", 0, 2));
        let v = check(&events[..2], &state).expect("one handle at two places");
        assert!(
            v.report
                .contains("the master's table lists chunk c2 as /a#1 and as /b#0"),
            "{}",
            v.report
        );
    }
}
