//! Shrinking: turn a failing seed into the smallest scenario that still fails the same way.
//!
//! A failing seed's workload and fault plan are plain values (see `workload` and `faults`), so
//! they can be cut down and re-run with the same seed, deterministically. The shrinker tries, in
//! order: dropping faults, shortening the ones left, dropping operations, shrinking their data and
//! removing pauses, keeping each change only if the run still fails the *same* check. What is left
//! is written as a scenario file that `sim scenario` replays to the same failure.

use crate::faults::{self, FaultPlan, What};
use crate::options::RunOptions;
use crate::run::{boot_ms, run_plan, run_seed};
use crate::workload::{self, OpSpec, Plan};
use node::trace::Detail;
use std::fmt::Write;

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
                    "dropped fault {} {:?} ({})",
                    gone.kind,
                    gone.what,
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
                        OpSpec::Read { len, .. } if *len > 1 => {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// The shrunk run as a scenario file.
pub fn to_scenario(seed: u64, opts: &RunOptions, s: &Shrunk) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Found by `sim shrink {seed}{}`: {} -> {}.",
        opts.flags(),
        s.before,
        s.after
    );
    let _ = writeln!(
        out,
        "description = {}",
        quote(&format!("seed {seed} shrunk: fails {}", s.check))
    );
    let _ = writeln!(out, "seed = {seed}");
    if !opts.bugs.is_empty() {
        let bugs: Vec<String> = opts.bugs.iter().map(|b| quote(b.name())).collect();
        let _ = writeln!(out, "bugs = [{}]", bugs.join(", "));
    }
    if let Some(n) = s.faults.faulty_disk {
        let _ = writeln!(out, "faulty_disk = \"cs{n}\"");
    }
    let files: Vec<String> = s.plan.files.iter().map(|f| quote(f)).collect();
    let _ = writeln!(out, "files = [{}]", files.join(", "));
    let _ = writeln!(out, "\n[cluster]");
    let _ = writeln!(out, "chunkservers = {}", opts.chunkservers);
    let _ = writeln!(out, "replication = {}", opts.replication);
    let _ = writeln!(out, "chunk_size = {}", opts.chunk_size_bytes);
    let _ = writeln!(out, "block_size = {}", opts.block_size_bytes);
    let _ = writeln!(out, "lease_ms = {}", opts.lease_ms);
    let _ = writeln!(out, "heartbeat_ms = {}", opts.heartbeat_ms);
    let _ = writeln!(out, "clients = {}", opts.clients);
    let _ = writeln!(out, "safety_ms = {}", opts.safety_ms);
    let _ = writeln!(out, "disk_latency_us = {}", opts.disk_latency_us);
    for script in &s.plan.clients {
        for (after, op) in &script.steps {
            let _ = writeln!(
                out,
                "\n[[op]]\nafter_ms = {after}\nclient = {}",
                script.client
            );
            match op {
                OpSpec::Create { path } => {
                    let _ = writeln!(out, "op = \"create\"\npath = {}", quote(path));
                }
                OpSpec::Delete { path } => {
                    let _ = writeln!(out, "op = \"delete\"\npath = {}", quote(path));
                }
                OpSpec::List => {
                    let _ = writeln!(out, "op = \"list\"");
                }
                OpSpec::Read { path, offset, len } => {
                    let _ = writeln!(
                        out,
                        "op = \"read\"\npath = {}\noffset = {offset}\nlen = {len}",
                        quote(path)
                    );
                }
                OpSpec::Write { path, offset, data } => {
                    let _ = writeln!(
                        out,
                        "op = \"write\"\npath = {}\noffset = {offset}\ndata_hex = \"{}\"",
                        quote(path),
                        hex(data)
                    );
                }
                OpSpec::Append { path, data } => {
                    let _ = writeln!(
                        out,
                        "op = \"append\"\npath = {}\ndata_hex = \"{}\"",
                        quote(path),
                        hex(data)
                    );
                }
            }
        }
    }
    for f in &s.faults.faults {
        let at = f.at_ms - s.faults.start_ms;
        let _ = writeln!(
            out,
            "\n[[fault]]\nat_ms = {at}\nkind = \"{}\"\nlasts_ms = {}",
            f.kind, f.lasts_ms
        );
        match &f.what {
            What::Crash { node }
            | What::Pause { node }
            | What::Isolate { node }
            | What::BitFlip { node } => {
                if f.kind.name() != "master_crash" {
                    let _ = writeln!(out, "node = \"{node}\"");
                }
            }
            What::Partition { side } => {
                let names: Vec<String> = side.iter().map(|t| format!("\"{t}\"")).collect();
                let _ = writeln!(out, "side = [{}]", names.join(", "));
            }
            What::OneWay { from, to } => {
                let _ = writeln!(out, "from = \"{from}\"\nto = \"{to}\"");
            }
            What::Delay { max_latency_ms } => {
                let _ = writeln!(out, "max_latency_ms = {max_latency_ms}");
            }
            What::Loss { percent } => {
                let _ = writeln!(out, "percent = {percent}");
            }
        }
    }
    let _ = writeln!(out, "\n[expect]\nfails = {}", quote(&s.check));
    out
}
