//! Coverage probes as a table: `sim coverage --seeds A..B` (a sweep's counts), and the same table
//! after `sim explore`. Every probe is listed with how often runs passed through it, so the paths
//! no run reached (and no check could judge) stand out.

use node::coverage::{Probe, LOST_STATE_ONLY};
use std::collections::BTreeMap;

/// Probe counts from a sweep's counters (`coverage NAME`).
pub fn from_counters(counters: &BTreeMap<String, u64>) -> BTreeMap<Probe, u64> {
    Probe::ALL
        .iter()
        .map(|p| {
            let n = counters
                .get(&format!("coverage {}", p.name()))
                .copied()
                .unwrap_or(0);
            (*p, n)
        })
        .collect()
}

/// Every probe with its count, in declaration order; then the probes never hit, those only lost
/// synced state could reach named apart.
pub fn table(counts: &BTreeMap<Probe, u64>, runs: &str) -> String {
    let width = Probe::ALL.iter().map(|p| p.name().len()).max().unwrap_or(0);
    let mut out = format!("coverage probes over {runs}:\n");
    for p in Probe::ALL {
        let n = counts.get(p).copied().unwrap_or(0);
        let mark = match (n, LOST_STATE_ONLY.contains(p)) {
            (0, true) => "  never (only lost synced state reaches it)",
            (0, false) => "  NEVER",
            _ => "",
        };
        out.push_str(&format!("  {:<width$} {n:>10}{mark}\n", p.name()));
    }
    let never: Vec<&str> = Probe::ALL
        .iter()
        .filter(|p| counts.get(p).copied().unwrap_or(0) == 0 && !LOST_STATE_ONLY.contains(p))
        .map(|p| p.name())
        .collect();
    if never.is_empty() {
        out.push_str("every reachable probe was hit\n");
    } else {
        out.push_str(&format!(
            "{} reachable probes never hit: {}\n",
            never.len(),
            never.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_probe_and_names_the_ones_never_hit() {
        let mut counters = BTreeMap::new();
        counters.insert(format!("coverage {}", Probe::SerialHeld.name()), 7);
        let t = table(&from_counters(&counters), "3 seeds");
        assert_eq!(t.lines().count(), Probe::ALL.len() + 2, "{t}");
        let line = |p: Probe| t.lines().find(|l| l.contains(p.name())).unwrap();
        assert!(line(Probe::SerialHeld).trim_end().ends_with(" 7"), "{t}");
        assert!(line(Probe::AppendHopped).ends_with("NEVER"), "{t}");
        assert!(
            line(Probe::VersionAdopted).ends_with("lost synced state reaches it)"),
            "{t}"
        );
        assert!(t
            .lines()
            .last()
            .unwrap()
            .contains(Probe::AppendHopped.name()));
        assert!(!t.lines().last().unwrap().contains(Probe::SerialHeld.name()));
        assert!(!t
            .lines()
            .last()
            .unwrap()
            .contains(Probe::VersionAdopted.name()));
    }
}
