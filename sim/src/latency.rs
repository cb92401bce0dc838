//! How long operations took, in simulated time, and how many retries they needed.
//!
//! Latencies go into sparse log-linear histograms: sixteen buckets per power of two of
//! microseconds, so a percentile read off the histogram is within about 6% of the true value,
//! and merging the histograms of many seeds costs a few dozen entries per seed, not a list of
//! every operation. Runs report them per operation kind; sweeps merge them over every seed.

use crate::history::OpRecord;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Buckets per power of two.
const SUB: u64 = 16;
const SUB_BITS: u32 = 4;

/// A sparse histogram of microsecond values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: BTreeMap<u16, u64>,
    count: u64,
    max_us: u64,
}

fn bucket_of(us: u64) -> u16 {
    if us < SUB {
        return us as u16;
    }
    let e = 63 - us.leading_zeros(); // >= SUB_BITS
    let m = (us >> (e - SUB_BITS)) & (SUB - 1);
    (SUB * (e - SUB_BITS + 1) as u64 + m) as u16
}

/// The smallest and largest value of a bucket.
fn bounds(b: u16) -> (u64, u64) {
    let b = b as u64;
    if b < SUB {
        return (b, b);
    }
    let (e, m) = (b / SUB + SUB_BITS as u64 - 1, b % SUB);
    let lo = (SUB + m) << (e - SUB_BITS as u64);
    (lo, lo + (1 << (e - SUB_BITS as u64)) - 1)
}

impl Histogram {
    pub fn add(&mut self, us: u64) {
        *self.buckets.entry(bucket_of(us)).or_default() += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The value at or below which `pct` percent of the values lie: the middle of its bucket,
    /// never above the largest value seen. 0 for an empty histogram.
    pub fn percentile(&self, pct: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((pct / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bounds(*b);
                return (lo + (hi - lo) / 2).min(self.max_us);
            }
        }
        self.max_us
    }
}

/// Latency and retries of one kind of operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpStats {
    pub latency: Histogram,
    pub retries: u64,
    pub max_retries: u64,
}

impl OpStats {
    pub fn merge(&mut self, other: &OpStats) {
        self.latency.merge(&other.latency);
        self.retries += other.retries;
        self.max_retries = self.max_retries.max(other.max_retries);
    }
}

/// Per operation kind (`append`, `read`, ...).
pub type ByKind = BTreeMap<String, OpStats>;

/// The workload's completed operations (not the checker's after healing), by kind.
pub fn of_history(history: &[OpRecord]) -> ByKind {
    let mut out = ByKind::new();
    for op in history.iter().filter(|o| !o.after_heal) {
        let Some(done) = op.complete_ns else {
            continue;
        };
        let s = out.entry(op.op.kind().to_string()).or_default();
        s.latency.add((done - op.invoke_ns) / 1_000);
        s.retries += op.retries;
        s.max_retries = s.max_retries.max(op.retries);
    }
    out
}

/// Adds `from` into `into`, kind by kind.
pub fn merge(into: &mut ByKind, from: &ByKind) {
    for (k, s) in from {
        into.entry(k.clone()).or_default().merge(s);
    }
}

/// A table: per kind, operations, latency percentiles and maximum in simulated milliseconds,
/// and retries per operation.
pub fn render(by: &ByKind) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>11}",
        "kind", "ops", "p50 ms", "p99 ms", "max ms", "retries/op", "max retries"
    );
    let ms = |us: u64| us as f64 / 1e3;
    for (kind, s) in by {
        let n = s.latency.count();
        let _ = writeln!(
            out,
            "  {kind:<8} {n:>8} {:>9.1} {:>9.1} {:>9.1} {:>10.3} {:>11}",
            ms(s.latency.percentile(50.0)),
            ms(s.latency.percentile(99.0)),
            ms(s.latency.max_us()),
            s.retries as f64 / n.max(1) as f64,
            s.max_retries
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_and_stay_within_a_sixteenth() {
        for us in (0..5_000).chain([65_535, 65_536, 1 << 40, u64::MAX >> 1]) {
            let (lo, hi) = bounds(bucket_of(us));
            assert!(lo <= us && us <= hi, "{us} not in {lo}..={hi}");
            assert!(hi - lo <= lo / 16, "bucket {lo}..={hi} too wide");
        }
    }

    #[test]
    fn percentiles_and_merging() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50.0), 0);
        for us in 1..=100 {
            h.add(us * 1_000);
        }
        let near = |got: u64, want: u64| got.abs_diff(want) <= want / 16;
        assert!(near(h.percentile(50.0), 50_000), "{}", h.percentile(50.0));
        assert!(near(h.percentile(99.0), 99_000), "{}", h.percentile(99.0));
        assert_eq!(h.percentile(100.0), 100_000, "never above the maximum");
        let mut more = Histogram::default();
        more.add(7);
        h.merge(&more);
        assert_eq!((h.count(), h.max_us()), (101, 100_000));
        assert_eq!(h.percentile(0.5), 7);
    }
}
