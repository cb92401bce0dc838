//! Table 1 as the paper prints it: rows by how mutations ended, columns by kind, each cell
//! listing the region states seen with their counts (`sim table`).

use super::taxonomy::{Column, Row, Table};
use std::fmt::Write;

/// Renders a table like the paper's, each cell listing the states seen with their counts.
pub fn render(table: &Table) -> String {
    let mut out = String::new();
    let cell = |row: Row, col: Column| -> String {
        let parts: Vec<String> = table
            .iter()
            .filter(|((r, c, _), _)| *r == row && *c == col)
            .map(|((_, _, s), n)| format!("{} {n}", s.name()))
            .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    };
    let _ = writeln!(out, "| | write | record append |");
    let _ = writeln!(out, "| --- | --- | --- |");
    for row in [Row::SerialSuccess, Row::ConcurrentSuccesses, Row::Failure] {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            row.name(),
            cell(row, Column::Write),
            cell(row, Column::RecordAppend)
        );
    }
    out
}
