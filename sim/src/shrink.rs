//! Shrinking: turn a failing seed into the smallest scenario that still fails the same way.
//!
//! A failing seed's workload and fault plan are plain values (see `workload` and `faults`), so
//! they can be cut down and re-run with the same seed, deterministically. The shrinker tries, in
//! order: dropping faults, shortening the ones left, dropping operations, shrinking their data and
//! removing pauses, keeping each change only if the run still fails the *same* check. What is left
//! is written as a scenario file that `sim scenario` replays to the same failure.

use crate::faults::{self, FaultPlan};
use crate::options::{Bounds, RunOptions};
use crate::run::{boot_ms, run_plan, run_seed};
use crate::scenario::Scenario;
use crate::workload::{self, OpSpec, Plan};
use node::trace::Detail;

/// How big a failing run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub faults: usize,
    pub ops: usize,
    pub data_bytes: u64,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} faults, {} operations, {} bytes of data",
            self.faults, self.ops, self.data_bytes
        )
    }
}

pub fn size(plan: &Plan, faults: &FaultPlan) -> Size {
    let ops = plan.clients.iter().flat_map(|c| &c.steps);
    let data = |op: &OpSpec| match op {
        OpSpec::Write { data, .. } | OpSpec::Append { data, .. } => data.len() as u64,
        _ => 0,
    };
    Size {
        faults: faults.faults.len(),
        ops: ops.clone().count(),
        data_bytes: ops.map(|(_, op)| data(op)).sum(),
    }
}

/// The result of a shrink.
pub struct Shrunk {
    pub check: String,
    pub before: Size,
    pub after: Size,
    pub runs: u64,
    pub plan: Plan,
    pub faults: FaultPlan,
}

/// Shrinks `seed` under `opts`, re-running at most `max_runs` candidates. `progress` hears about
/// every kept step.
pub fn shrink(
    seed: u64,
    opts: &RunOptions,
    max_runs: u64,
    mut progress: impl FnMut(&str),
) -> Result<Shrunk, String> {
    let original = run_seed(seed, opts);
    let check = original
        .failure()
        .ok_or_else(|| format!("seed {seed} passes: nothing to shrink"))?
        .check;
    // Tight bounds, if the seed drew them, are named in the scenario so that it runs as the seed
    // did (a scenario draws nothing).
    let drawn = opts.for_seed(seed);
    let opts = if drawn.bounds == Bounds::Tight {
        &drawn
    } else {
        opts
    };
    let mut plan = workload::generate(seed, opts);
    let mut fplan = faults::plan(seed, opts, boot_ms(&opts.cluster()));
    let before = size(&plan, &fplan);
    progress(&format!("seed {seed} fails {check}; {before}"));
    let mut runs = 0u64;
    let fails = |p: &Plan, f: &FaultPlan, runs: &mut u64| -> bool {
        *runs += 1;
        run_plan(seed, opts, p.clone(), f.clone(), Detail::Protocol)
            .failure()
            .is_some_and(|f| f.check == check)
    };
    if !fails(&plan, &fplan, &mut runs) {
        return Err(format!(
            "seed {seed}: the explicit plan does not reproduce the failure"
        ));
    }
    let mut changed = true;
    while changed && runs < max_runs {
        changed = false;
        // 1. Drop faults, last first.
        let mut i = fplan.faults.len();
        while i > 0 && runs < max_runs {
            i -= 1;
            let mut cand = fplan.clone();
            let gone = cand.faults.remove(i);
            if fails(&plan, &cand, &mut runs) {
                fplan = cand;
                changed = true;
                progress(&format!(
                    "dropped fault {} {} at {} ms ({})",
                    gone.kind,
                    gone.what,
                    gone.at_ms,
                    size(&plan, &fplan)
                ));
            }
        }
        // 2. Shorten the faults that are left.
        for i in 0..fplan.faults.len() {
            while fplan.faults[i].lasts_ms > 1 && runs < max_runs {
                let mut cand = fplan.clone();
                cand.faults[i].lasts_ms /= 2;
                if !fails(&plan, &cand, &mut runs) {
                    break;
                }
                fplan = cand;
                changed = true;
            }
        }
        // 3. Drop operations, delta-debugging style: a client's whole script, then halves,
        //    quarters, ... down to single operations (one removal shifts the timing of everything
        //    after it, so removing runs of operations together often works where one at a time
        //    does not).
        for c in 0..plan.clients.len() {
            let mut chunk = plan.clients[c].steps.len();
            while chunk >= 1 && runs < max_runs {
                let mut start = 0;
                while start < plan.clients[c].steps.len() && runs < max_runs {
                    let end = (start + chunk).min(plan.clients[c].steps.len());
                    let mut cand = plan.clone();
                    cand.clients[c].steps.drain(start..end);
                    if fails(&cand, &fplan, &mut runs) {
                        plan = cand;
                        changed = true;
                        let n = end - start;
                        progress(&format!(
                            "dropped {n} operations of client{c} ({})",
                            size(&plan, &fplan)
                        ));
                    } else {
                        start = end;
                    }
                }
                chunk /= 2;
            }
        }
        // 4. Shrink data and pauses.
        for c in 0..plan.clients.len() {
            for j in 0..plan.clients[c].steps.len() {
                loop {
                    if runs >= max_runs {
                        break;
                    }
                    let mut cand = plan.clone();
                    let step = &mut cand.clients[c].steps[j];
                    let shrunk = match &mut step.1 {
                        OpSpec::Write { data, .. } | OpSpec::Append { data, .. }
                            if data.len() > 1 =>
                        {
                            data.truncate(data.len() / 2);
                            true
                        }
                        OpSpec::Read { len, .. } | OpSpec::ReadDeleted { len, .. } if *len > 1 => {
                            *len /= 2;
                            true
                        }
                        _ => false,
                    };
                    if !shrunk || !fails(&cand, &fplan, &mut runs) {
                        break;
                    }
                    plan = cand;
                    changed = true;
                }
                if plan.clients[c].steps[j].0 > 0 && runs < max_runs {
                    let mut cand = plan.clone();
                    cand.clients[c].steps[j].0 = 0;
                    if fails(&cand, &fplan, &mut runs) {
                        plan = cand;
                        changed = true;
                    }
                }
            }
        }
    }
    let after = size(&plan, &fplan);
    progress(&format!("after {runs} runs: {after}"));
    Ok(Shrunk {
        check,
        before,
        after,
        runs,
        plan,
        faults: fplan,
    })
}

/// The shrunk run as a scenario file (the format `sim scenario` reads, written by the same
/// types), headed by a comment saying where it came from.
pub fn to_scenario(seed: u64, opts: &RunOptions, s: &Shrunk) -> String {
    let mut scenario = Scenario::from_plans(
        format!("seed {seed} shrunk: fails {}", s.check),
        seed,
        opts,
        &s.plan,
        &s.faults,
    );
    scenario.expect.fails = Some(s.check.clone());
    format!(
        "# Found by `sim shrink {seed}{}`: {} -> {}.\n{}",
        opts.flags(),
        s.before,
        s.after,
        scenario.to_toml()
    )
}
