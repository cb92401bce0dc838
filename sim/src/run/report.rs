//! What a run produced ([`RunReport`]) and what the commands read off it: its failures in order
//! of precedence, its trace, and its counters (faults struck, recovery paths run, operations by
//! outcome, what the record reader skipped).

use crate::checks::{self, FinalState, Violation};
use crate::failure::{Failure, FailureClass};
use crate::history::{OpRecord, OpResult};
use crate::options::RunOptions;
use node::client::ClientStats;
use node::trace::{Detail, Entry, Event};
use std::collections::BTreeMap;
use std::time::Duration;

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub options: RunOptions,
    pub history: Vec<OpRecord>,
    pub events: Vec<Entry>,
    /// How much of the run the events record: protocol events only, or messages and disk too.
    pub detail: Detail,
    pub violations: Vec<Violation>,
    /// Checks that ran and held, by name (empty if the run never reached its checks).
    pub passed_checks: Vec<&'static str>,
    /// GFS Table 1 as this run observed it, and how many mutations left a forbidden state
    /// (empty if the run never reached its checks).
    pub table1: checks::table1::Table,
    pub table1_forbidden: u64,
    /// What the read-back phase saw (None if the run never got there).
    pub final_state: Option<FinalState>,
    /// A liveness failure: the workload did not finish, or the cluster did not converge.
    pub liveness: Option<String>,
    /// A node or the harness panicked: a broken invariant.
    pub panic: Option<String>,
    pub messages: u64,
    pub sim_time_ns: u64,
    pub client: ClientStats,
    /// How often each defensive path ran ([`node::coverage`]), every probe listed.
    pub coverage: Vec<(node::coverage::Probe, u64)>,
    /// Every fault point the run reached, in order, if it counted them ([`node::points`]; only
    /// runs whose fault plan asks for it, as `sim explore`'s do).
    pub points: Vec<node::points::Hit>,
    /// Real time the run took. Outside the simulation, so it is not part of the record.
    pub wall: Duration,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.liveness.is_none() && self.panic.is_none()
    }

    /// Every way the run failed, in order of precedence ([`FailureClass`]): a panic, then each
    /// violated check in the checks' order, then a liveness failure.
    pub fn failures(&self) -> Vec<Failure> {
        let mut out = Vec::new();
        if let Some(p) = &self.panic {
            out.push(Failure {
                class: FailureClass::Panic,
                check: "panic".into(),
                report: p.clone(),
            });
        }
        for v in &self.violations {
            out.push(Failure {
                class: FailureClass::Violation,
                check: v.check.to_string(),
                report: v.report.clone(),
            });
        }
        if let Some(l) = &self.liveness {
            out.push(Failure {
                class: FailureClass::Liveness,
                check: "liveness".into(),
                report: l.clone(),
            });
        }
        out
    }

    /// The first way the run failed (see [`RunReport::failures`]), if it did.
    pub fn failure(&self) -> Option<Failure> {
        self.failures().into_iter().next()
    }

    /// The first way the run failed, in one line.
    pub fn failure_line(&self) -> Option<String> {
        self.failure().map(|f| f.line())
    }

    /// The run's record: its trace as JSON Lines (see [`crate::trace`]). The same seed and
    /// options must give the same bytes.
    pub fn record(&self) -> String {
        crate::trace::to_jsonl(&crate::trace::lines(self))
    }

    /// How often each fault kind struck and each recovery path ran, from the events.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            let key = match &e.event {
                Event::FaultInjected { fault, .. } => format!("fault {fault}"),
                Event::WriteTorn { .. } => "fault writes actually torn".to_string(),
                Event::BitFlipped { .. } => "fault bits actually flipped".to_string(),
                Event::ReplicaCloned { .. } => "recovery re-replication".to_string(),
                Event::GarbageStale { .. } => "recovery stale replica removal".to_string(),
                Event::GarbageOrphan { .. } => "recovery orphan removal".to_string(),
                Event::ReplicaCorrupt { .. } => "recovery checksum repair".to_string(),
                Event::FileReclaimed { .. } => "recovery lazy gc".to_string(),
                Event::ReplicaTrimmed { .. } => "recovery excess replica removal".to_string(),
                Event::MasterRecovered { .. } => "recovery master restart".to_string(),
                _ => continue,
            };
            *out.entry(key).or_default() += 1;
        }
        for e in &self.events {
            if let Event::FaultInjected {
                unsynced_writes_lost: Some(n),
                ..
            } = e.event
            {
                *out.entry("fault unsynced writes lost".to_string())
                    .or_default() += n;
            }
        }
        // Every probe, zeros included, so a sweep shows the paths no run reached.
        for (probe, n) in &self.coverage {
            out.insert(format!("coverage {}", probe.name()), *n);
        }
        let (reads, stale) = checks::reads_not_invented::stale_reads(&self.history);
        out.insert("reads successful".to_string(), reads);
        out.insert("reads stale (allowed, GFS §2.7.1)".to_string(), stale);
        // What the record reader (GFS §2.7.2) skipped to read every record back.
        if let Some(state) = &self.final_state {
            for bytes in state.files.values().flatten() {
                let scan = crate::records::scan_sparse(bytes);
                for (key, n) in [
                    ("records read back", scan.distinct().len() as u64),
                    ("records duplicates skipped", scan.duplicates),
                    ("records other bytes skipped", scan.fragment_bytes),
                    ("records zero bytes skipped", scan.padding_bytes),
                ] {
                    *out.entry(key.to_string()).or_default() += n;
                }
            }
        }
        out
    }

    /// The first line where two records differ: (line number, this line, that line).
    pub fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
        let (mut la, mut lb) = (a.lines(), b.lines());
        for i in 0.. {
            match (la.next(), lb.next()) {
                (None, None) => return None,
                (x, y) if x == y => continue,
                (x, y) => {
                    return Some((i, x.unwrap_or("<end>").into(), y.unwrap_or("<end>").into()))
                }
            }
        }
        None
    }

    /// Operations by kind and outcome (`write ok`, `append record_too_large`, ...).
    pub fn outcomes(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for op in &self.history {
            let outcome = op
                .outcome
                .as_ref()
                .map_or("pending", OpResult::outcome_name);
            *out.entry((op.op.kind().to_string(), outcome.to_string()))
                .or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::run_seed;

    #[test]
    fn failures_come_in_one_order_whatever_was_recorded_first() {
        let mut report = run_seed(0, &RunOptions::default());
        assert!(report.passed() && report.failure().is_none());
        report.liveness = Some("not converged 60 s after healing: c3 has 2 replicas".into());
        report.violations.push(Violation {
            check: checks::acked_readback::NAME,
            report: "1 acknowledged bytes do not read back\n  op #4 ...".into(),
        });
        let classes: Vec<FailureClass> = report.failures().iter().map(|f| f.class).collect();
        assert_eq!(classes, [FailureClass::Violation, FailureClass::Liveness]);
        assert_eq!(
            report.failure_line().unwrap(),
            "acked_readback: 1 acknowledged bytes do not read back"
        );
        report.panic = Some("versions only grow".into());
        let first = report.failure().unwrap();
        assert_eq!(
            (first.class, first.check.as_str()),
            (FailureClass::Panic, "panic")
        );
        assert_eq!(report.failures().len(), 3);
    }
}
