//! The teaching notes (`notes/*.md`) quote commands of this project with their output. This test
//! runs every quoted command (fenced `console` blocks, `$ sim ...`) and compares what it prints
//! with the quote, so the notes cannot drift from the code: a line `...` in a quote stands for any
//! number of lines, and `[..]` for a part of a line. After an intended change,
//! `TRYCMD=overwrite cargo test --test notes` rewrites the quotes that no longer match from the
//! real output (filling in the lines a nearby `...` had left out: trim them again by hand).

use std::path::{Path, PathBuf};

fn notes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../notes")
}

#[test]
fn the_notes_quote_what_their_commands_print() {
    trycmd::TestCases::new()
        .register_bin("sim", Path::new(env!("CARGO_BIN_EXE_sim")))
        .case("../notes/*.md");
}

/// Each chapter (every note but the introduction) quotes at least one command, links the diagram
/// of at least one scenario that exists (as `just diagrams` writes it), and ends with exercises;
/// the introduction links every chapter.
#[test]
fn every_chapter_has_a_command_a_diagram_and_an_exercise() {
    let dir = notes_dir();
    let root = dir.join("..");
    let mut chapters: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "README.md")
        .collect();
    chapters.sort();
    assert!(chapters.len() >= 7, "{chapters:?}");
    let intro = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for name in &chapters {
        assert!(
            intro.contains(&format!("]({name})")),
            "README.md links {name}"
        );
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            text.contains("```console\n$ sim "),
            "{name} quotes no command"
        );
        assert!(text.contains("### Exercise 1"), "{name} has no exercise");
        let diagrams: Vec<&str> = text
            .split("](../traces/diagrams/")
            .skip(1)
            .filter_map(|rest| rest.split(".html)").next())
            .collect();
        assert!(!diagrams.is_empty(), "{name} links no diagram");
        for d in diagrams {
            let scenario = root.join("scenarios").join(format!("{d}.toml"));
            assert!(
                scenario.exists(),
                "{name} links the diagram of {d}, no such scenario"
            );
        }
    }
}
