//! `RULES.md` stays true: every check, planted bug, scenario, file and function its table names
//! exists; every check and every planted bug has a row; every row is judged or says why not; and
//! the rows cover the paper's sections from §2.3 to §5.2.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use node::bugs::{Bug, ALL_BUGS};
use sim::checks;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every name that is a check: the checks every run passes, and the two liveness judgements.
fn check_names() -> BTreeSet<&'static str> {
    let mut names: BTreeSet<&str> = checks::NAMES.into_iter().collect();
    names.insert(checks::converged::NAME);
    names.insert(checks::after_heal::NAME);
    names
}

/// The backticked words of a cell.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

struct Row<'a> {
    rule: &'a str,
    sections: &'a str,
    enforced: &'a str,
    judged: &'a str,
    shown: &'a str,
}

fn rows(text: &str) -> Vec<Row<'_>> {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| rule |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("| ---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 5, "a row needs five cells: {line}");
        out.push(Row {
            rule: cells[0],
            sections: cells[1],
            enforced: cells[2],
            judged: cells[3],
            shown: cells[4],
        });
    }
    out
}

/// A reference to code: `path`, `path#function` (the file defines `fn function`), or a scenario.
/// Returns what is wrong with it, if anything.
fn missing_code(reference: &str) -> Option<String> {
    let (path, item) = match reference.split_once('#') {
        Some((p, i)) => (p, Some(i)),
        None => (reference, None),
    };
    let file = root().join(path);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Some(format!("no file {path}"));
    };
    match item {
        Some(f) if !text.contains(&format!("fn {f}(")) && !text.contains(&format!("fn {f}<")) => {
            Some(format!("{path} defines no fn {f}"))
        }
        _ => None,
    }
}

fn is_code(reference: &str) -> bool {
    reference.contains('/') && (reference.contains(".rs") || reference.ends_with(".toml"))
}

#[test]
fn every_name_in_the_rule_table_exists_and_every_check_and_bug_has_a_row() {
    let text = std::fs::read_to_string(root().join("RULES.md")).expect("RULES.md");
    let rows = rows(&text);
    assert!(rows.len() >= 40, "only {} rows", rows.len());
    let checks = check_names();
    let mut problems = Vec::new();
    let mut judged_by = BTreeSet::new();
    let mut bugs_shown = BTreeSet::new();
    for row in &rows {
        let at = |what: String| format!("row {:?}: {what}", row.rule);
        for r in ticked(row.enforced).into_iter().chain(ticked(row.shown)) {
            if is_code(r) {
                if let Some(m) = missing_code(r) {
                    problems.push(at(m));
                }
            } else if let Ok(bug) = r.parse::<Bug>() {
                bugs_shown.insert(bug);
            } else if ticked(row.shown).contains(&r) {
                problems.push(at(format!("`{r}` is no planted bug, file or scenario")));
            }
        }
        if let Some(why) = row.judged.strip_prefix("not judged") {
            // A row no check judges says why.
            if !why.starts_with(": ") || why.len() < 12 {
                problems.push(at("not judged, without saying why".into()));
            }
            for r in ticked(row.judged).into_iter().filter(|r| is_code(r)) {
                if let Some(m) = missing_code(r) {
                    problems.push(at(m));
                }
            }
        } else {
            let named: Vec<&str> = ticked(row.judged);
            if named.is_empty() {
                problems.push(at("judged by no named check".into()));
            }
            for c in named {
                if checks.contains(c) {
                    judged_by.insert(c);
                } else {
                    problems.push(at(format!("`{c}` is no check")));
                }
            }
            // A judged rule shows its check failing when the rule is broken.
            if ticked(row.shown).is_empty() {
                problems.push(at("judged, but nothing shows the check failing".into()));
            }
        }
    }
    for c in &checks {
        if !judged_by.contains(c) {
            problems.push(format!("check `{c}` judges no row"));
        }
    }
    for b in ALL_BUGS {
        if !bugs_shown.contains(&b) {
            problems.push(format!("planted bug `{}` shows no row failing", b.name()));
        }
    }
    // The paper's sections from §2.3 to §5.2, each with a row.
    let sections: String = rows.iter().map(|r| format!("{}, ", r.sections)).collect();
    for s in [
        "2.3", "2.4", "2.5", "2.6.2", "2.6.3", "2.7.1", "2.7.2", "3.1", "3.2", "3.3", "3.4", "4.1",
        "4.2", "4.3", "4.4", "4.5", "5.1", "5.2",
    ] {
        if !sections
            .split([',', ' '])
            .any(|x| x == s || x.starts_with(&format!("{s}.")))
        {
            problems.push(format!("no row for §{s}"));
        }
    }
    assert!(problems.is_empty(), "RULES.md:\n{}", problems.join("\n"));
}

/// The test above fails on a broken table: a check, a bug, a function and a reason that are not
/// there.
#[test]
fn a_wrong_name_in_a_row_is_found() {
    assert!(missing_code("node/src/master/state.rs#grant_lease").is_none());
    assert!(missing_code("node/src/master/state.rs#grant_leases").is_some());
    assert!(missing_code("node/src/master/nope.rs").is_some());
    assert!(missing_code("scenarios/happy_path.toml").is_none());
    assert!("early_leases".parse::<Bug>().is_err());
    assert!(!check_names().contains("single_primaries"));
    let table = "| rule | § | enforced in | judged by | shown failing by |\n| --- |\n\
                 | r | 3.1 | `a.rs` | not judged | none |\n";
    let rows = rows(table);
    assert_eq!(rows.len(), 1);
    assert!(rows[0]
        .judged
        .strip_prefix("not judged")
        .unwrap()
        .is_empty());
}
