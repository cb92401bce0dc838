//! Space-time diagrams (`sim replay SEED --html FILE`): the SVG is well-formed XML, and it draws
//! one arrow per delivered message, whatever the run.

use std::process::Command;

/// The `<svg>` element of a diagram page (the header's small one comes first; the diagram is the
/// second).
fn diagram_svg(page: &str) -> &str {
    let start = page.match_indices("<svg ").nth(1).expect("a diagram").0;
    let end = page[start..].find("</svg>").expect("closed") + start + "</svg>".len();
    &page[start..end]
}

#[test]
fn diagrams_are_well_formed_and_draw_every_delivered_message() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-diagram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A seed under faults (messages lost, nodes crashed) and a failing planted-bug seed.
    for (seed, extra) in [("5", None), ("0", Some("early_lease"))] {
        let html = dir.join(format!("seed-{seed}.html"));
        let mut args = vec!["replay", seed, "--out", dir.to_str().unwrap()];
        args.extend(["--html", html.to_str().unwrap()]);
        if let Some(bug) = extra {
            args.extend(["--bug", bug]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page = std::fs::read_to_string(&html).unwrap();
        // Self-contained: nothing to fetch.
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("src=") && !page.contains("href=\"http"));
        let svg = diagram_svg(&page);
        let doc = roxmltree::Document::parse(svg).expect("the diagram is well-formed XML");
        let arrows = doc
            .descendants()
            .filter(|n| n.has_tag_name("line") && n.attribute("class") == Some("msg"))
            .count();
        // The trace file the same replay wrote: one arrow per delivered message.
        let trace = std::fs::read_to_string(dir.join(format!("seed-{seed}.jsonl"))).unwrap();
        let delivered = trace
            .lines()
            .filter(|l| l.contains(r#""kind":"msg_delivered""#))
            .count();
        assert!(delivered > 100, "{delivered}");
        assert_eq!(arrows, delivered, "seed {seed}");
        // Faults and operations are drawn; a failing check's operations are outlined.
        assert!(doc
            .descendants()
            .any(|n| n.attribute("class") == Some("op")));
        if extra.is_some() {
            assert!(svg.contains("class=\"fault\"") || svg.contains("class=\"lease\""));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shiviz_logs_carry_vector_clocks_that_grow_on_each_node() {
    let dir = std::env::temp_dir().join(format!("gfs-sim-shiviz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("seed-5.log");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["replay", "5", "--out", dir.to_str().unwrap()])
        .args(["--shiviz", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut own: std::collections::BTreeMap<String, u64> = Default::default();
    let mut lines = 0;
    for pair in text.lines().collect::<Vec<_>>().chunks(2) {
        let (host, clock) = pair[1].split_once(' ').expect("host and clock");
        let clock: std::collections::BTreeMap<String, u64> =
            serde_json::from_str(clock).expect("the clock is JSON");
        // A node's own entry counts its lines, one by one.
        let before = own.insert(host.to_string(), clock[host]).unwrap_or(0);
        assert_eq!(clock[host], before + 1, "{}", pair[1]);
        lines += 1;
    }
    // A delivery knows of its sender: the master's clocks name chunkservers.
    assert!(lines > 1000, "{lines}");
    assert!(text.contains(r#"master {"cs"#), "no merged clock");
    let _ = std::fs::remove_dir_all(&dir);
}
