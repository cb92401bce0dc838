//! The trace of a run: every protocol event, fault, client operation and verdict, one per line, in
//! simulated-time order.
//!
//! Two renderings of the same lines: JSON Lines for files and tools (`traces/seed-N.jsonl`; the
//! schema is in `traces/README.md`), and a timeline for people, one column per node, like a
//! space-time diagram: you can follow a chunk's lease from grant to expiry down one column and see
//! which node a fault hit. The same seed and options give byte-identical traces.
//!
//! A replay records at full detail: every message and disk operation as well. Those lines are
//! most of a trace, so the timeline shows them only when asked ([`Shown`]); the file always holds
//! everything.

use crate::checks::describe;
use crate::history::OpResult;
use crate::run::RunReport;
use serde::Serialize;
use std::fmt::Write;

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceLine {
    /// Simulated nanoseconds since the start of the run.
    pub t_ns: u64,
    /// Where it happened: `master`, `cs2`, `client1`, `checker`, `nemesis`.
    pub node: String,
    /// What happened (`lease_granted`, `op_invoked`, `fault_injected`, `check_failed`, ...).
    pub kind: String,
    /// Its key fields, `key=value` separated by spaces.
    pub detail: String,
}

fn client_node(client: u32, report: &RunReport) -> String {
    if client >= report.options.clients {
        "checker".to_string()
    } else {
        format!("client{client}")
    }
}

fn outcome_text(o: &OpResult) -> String {
    match o {
        OpResult::Ok => "ok".into(),
        OpResult::Offset { offset } => format!("ok offset={offset}"),
        OpResult::Data { data } => format!("ok bytes={}", data.len()),
        OpResult::Files { files } => format!("ok files={}", files.len()),
        OpResult::Err { error } => format!("err={}", error.kind()),
    }
}

/// Every line of the run's trace, in time order (ties keep their order of recording).
pub fn lines(report: &RunReport) -> Vec<TraceLine> {
    let mut out: Vec<TraceLine> = report
        .events
        .iter()
        .map(|e| TraceLine {
            t_ns: e.time_ns,
            node: e.node.to_string(),
            kind: e.event.kind().to_string(),
            detail: e.event.to_string(),
        })
        .collect();
    for op in &report.history {
        let node = client_node(op.client, report);
        let what = describe(op);
        // `describe` gives the whole story; the trace wants the operation part only.
        let args = what.split(" invoked ").next().unwrap_or(&what).to_string();
        out.push(TraceLine {
            t_ns: op.invoke_ns,
            node: node.clone(),
            kind: "op_invoked".into(),
            detail: args,
        });
        if let (Some(t), Some(o)) = (op.complete_ns, &op.outcome) {
            let detail = format!("op=#{} {}", op.id, outcome_text(o));
            out.push(TraceLine {
                t_ns: t,
                node,
                kind: "op_completed".into(),
                detail,
            });
        }
    }
    out.sort_by_key(|l| l.t_ns); // stable: equal times keep their order
    let end = report.sim_time_ns;
    for check in &report.passed_checks {
        out.push(TraceLine {
            t_ns: end,
            node: "checker".into(),
            kind: "check_passed".into(),
            detail: format!("check={check}"),
        });
    }
    for v in &report.violations {
        let first = v.report.lines().next().unwrap_or_default().to_string();
        out.push(TraceLine {
            t_ns: end,
            node: "checker".into(),
            kind: "check_failed".into(),
            detail: format!("check={} {first}", v.check),
        });
    }
    if let Some(l) = &report.liveness {
        out.push(TraceLine {
            t_ns: end,
            node: "checker".into(),
            kind: "liveness_failed".into(),
            detail: l.clone(),
        });
    }
    if let Some(p) = &report.panic {
        out.push(TraceLine {
            t_ns: end,
            node: "checker".into(),
            kind: "panic".into(),
            detail: p.clone(),
        });
    }
    out
}

/// The value of `key=value` in a trace line's detail: for tools and tests that read trace files.
/// Nothing in a run parses this text; the checks match on typed events.
pub fn field<'a>(detail: &'a str, key: &str) -> Option<&'a str> {
    detail
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The trace as JSON Lines.
/// The first line of a trace file: what the trace is of, so a file found later says how to make
/// it again (`{"meta":{"options":"--faults none","replay":"...","seed":42,"version":"0.1.0"}}`).
/// No instant or host in it: the same seed and options still give the same bytes.
pub fn meta_line(seed: u64, opts: &crate::options::RunOptions) -> String {
    let meta = serde_json::json!({
        "meta": {
            "seed": seed,
            "options": opts.flags().trim_start(),
            "version": env!("CARGO_PKG_VERSION"),
            "replay": format!("cargo run --release -p sim -- replay {seed}{}", opts.flags()),
        }
    });
    format!("{meta}\n")
}

pub fn to_jsonl(lines: &[TraceLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&serde_json::to_string(l).expect("trace line serializes"));
        out.push('\n');
    }
    out
}

/// The nodes of a run, in the order of the timeline's columns.
pub fn nodes(report: &RunReport) -> Vec<String> {
    let o = &report.options;
    let mut n = vec!["master".to_string()];
    n.extend((0..o.chunkservers).map(|i| format!("cs{i}")));
    n.extend((0..o.clients).map(|i| format!("client{i}")));
    n.push("checker".into());
    n.push("nemesis".into());
    n
}

/// What a trace line is about, for choosing what a timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Shown {
    /// Messages: `msg_sent`, `msg_delivered`, `reply_delivered`, `msg_dropped`.
    Messages,
    /// Disk operations: `disk_write`, `disk_sync`, `disk_lost`.
    Disk,
}

impl Shown {
    /// The optional group a line's kind belongs to; `None`: protocol events, faults, operations
    /// and verdicts, which every timeline shows.
    pub fn of(kind: &str) -> Option<Shown> {
        match kind {
            "msg_sent" | "msg_delivered" | "reply_delivered" | "msg_dropped" => {
                Some(Shown::Messages)
            }
            "disk_write" | "disk_sync" | "disk_lost" => Some(Shown::Disk),
            _ => None,
        }
    }
}

impl Shown {
    /// The group's name, as `--show` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Shown::Messages => "messages",
            Shown::Disk => "disk",
        }
    }
}

/// The lines a timeline shows: everything but messages and disk operations, plus the groups in
/// `show`.
pub fn shown(lines: &[TraceLine], show: &[Shown]) -> Vec<TraceLine> {
    lines
        .iter()
        .filter(|l| Shown::of(&l.kind).is_none_or(|g| show.contains(&g)))
        .cloned()
        .collect()
}

/// How many lines of each optional group `lines` holds, for saying what a timeline left out.
pub fn hidden_counts(lines: &[TraceLine], show: &[Shown]) -> Vec<(Shown, usize)> {
    [Shown::Messages, Shown::Disk]
        .into_iter()
        .filter(|g| !show.contains(g))
        .map(|g| {
            (
                g,
                lines
                    .iter()
                    .filter(|l| Shown::of(&l.kind) == Some(g))
                    .count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The marker a line gets in its node's column: faults and failures stand out.
fn marker(kind: &str) -> char {
    match kind {
        "fault_injected" | "write_torn" | "bit_flipped" | "disk_lost" => '!',
        "fault_healed" | "all_healed" => '+',
        "check_failed" | "liveness_failed" | "panic" => 'X',
        "check_passed" => 'v',
        "op_invoked" => '>',
        "op_completed" => '<',
        "msg_dropped" => '~',
        "msg_sent" | "msg_delivered" | "reply_delivered" => 'm',
        "disk_write" | "disk_sync" => 'd',
        _ => '*',
    }
}

/// The timeline: simulated time, one column per node (`*` event, `>`/`<` an operation's start and
/// end, `!` a fault, `+` a heal, `v` a passed check, `X` a failed one; with messages and disk
/// shown, `m` a message sent, delivered or answered, `~` one dropped, `d` a disk write or sync),
/// then the node and what happened.
pub fn timeline(lines: &[TraceLine], nodes: &[String]) -> String {
    let mut out = String::new();
    let clients = nodes.iter().filter(|n| n.starts_with("client")).count();
    // Many clients share one column, `c*`: the node column says which.
    let fold = clients > MAX_CLIENT_COLUMNS;
    let short = |n: &str| -> String {
        match n {
            "master" => "M".into(),
            "checker" => "K".into(),
            "nemesis" => "N".into(),
            n if n.starts_with("cs") => n[2..].to_string(),
            n if n.starts_with("client") && fold => "c*".into(),
            n if n.starts_with("client") => format!("c{}", &n[6..]),
            n => n.chars().take(2).collect(),
        }
    };
    let mut columns: Vec<String> = Vec::new();
    for n in nodes {
        let s = short(n);
        if !columns.contains(&s) {
            columns.push(s);
        }
    }
    // Every column is two characters wide; a longer name (`10`, `c2`) is written downwards, one
    // character per header row, its last one on the row that names the fields, so that columns
    // never run together however many nodes there are.
    let width = 2;
    let rows = columns.iter().map(|c| c.chars().count()).max().unwrap_or(1);
    for row in 0..rows {
        let header: String = columns
            .iter()
            .map(|c| {
                let chars: Vec<char> = c.chars().collect();
                let ch = (row + chars.len())
                    .checked_sub(rows)
                    .map_or(' ', |i| chars[i]);
                format!("{ch:>width$}")
            })
            .collect();
        let label = if row + 1 == rows { "time (ms)" } else { "" };
        let tail = if row + 1 == rows { "  event" } else { "" };
        let line = format!("{label:>12}  {header}{tail}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for l in lines {
        let mine = short(&l.node);
        let cols: String = columns
            .iter()
            .map(|c| {
                let mark = if *c == mine { marker(&l.kind) } else { '|' };
                format!("{mark:>width$}")
            })
            .collect();
        let _ = writeln!(
            out,
            "{:>12.3}  {cols}  {:<8} {:<18} {}",
            l.t_ns as f64 / 1e6,
            l.node,
            l.kind,
            l.detail
        );
    }
    out
}

/// Above this many clients, a timeline gives them one column together.
pub const MAX_CLIENT_COLUMNS: usize = 12;

/// Where two traces first differ: `None` if they are identical.
pub fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
    RunReport::first_difference(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_headers_keep_columns_apart_with_many_nodes() {
        let nodes: Vec<String> = ["master", "cs9", "cs10", "cs11", "client0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let header: Vec<String> = timeline(&[], &nodes).lines().map(str::to_string).collect();
        assert_eq!(header[0].trim_start(), "1 1 c", "{header:?}");
        assert!(header[1].ends_with("M 9 0 1 0  event"), "{header:?}");
    }

    #[test]
    fn timeline_puts_each_event_in_its_nodes_column() {
        let nodes: Vec<String> = ["master", "cs0", "client0", "nemesis"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lines = vec![
            TraceLine {
                t_ns: 1_500_000,
                node: "cs0".into(),
                kind: "lease_acquired".into(),
                detail: "chunk=c1".into(),
            },
            TraceLine {
                t_ns: 2_000_000,
                node: "nemesis".into(),
                kind: "fault_injected".into(),
                detail: "kind=crash".into(),
            },
        ];
        let t = timeline(&lines, &nodes);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows[0].trim(), "c", "{t}");
        assert!(rows[1].contains(" M 0 0 N  event"), "{t}");
        assert!(rows[2].contains("1.500   | * | |  cs0"), "{t}");
        assert!(rows[3].contains("2.000   | | | !  nemesis"), "{t}");
        assert!(to_jsonl(&lines).starts_with("{\"t_ns\":1500000,\"node\":\"cs0\""));
    }

    #[test]
    fn wide_names_keep_columns_aligned_and_many_clients_share_one() {
        let line = |node: &str| TraceLine {
            t_ns: 0,
            node: node.into(),
            kind: "lease_acquired".into(),
            detail: String::new(),
        };
        let names = |cs: u32, clients: u32| -> Vec<String> {
            let mut n: Vec<String> = vec!["master".into()];
            n.extend((0..cs).map(|i| format!("cs{i}")));
            n.extend((0..clients).map(|i| format!("client{i}")));
            n
        };
        // Eleven clients: `c10` is written downwards over three header rows; columns stay two
        // wide and line up with the rows.
        let t = timeline(&[line("client10"), line("cs1")], &names(2, 11));
        let rows: Vec<&str> = t.lines().collect();
        assert!(rows[0].ends_with(" c"), "{t}");
        assert!(rows[1].ends_with(" c c c c c c c c c c 1"), "{t}");
        assert!(
            rows[2].ends_with(" M 0 1 0 1 2 3 4 5 6 7 8 9 0  event"),
            "{t}"
        );
        let at = |row: &str, col: usize| row.chars().nth(14 + 2 * col + 1).unwrap();
        assert_eq!(
            (at(rows[0], 13), at(rows[1], 13), at(rows[2], 13)),
            ('c', '1', '0')
        );
        assert_eq!((at(rows[3], 13), at(rows[3], 2)), ('*', '|'), "{t}");
        assert_eq!((at(rows[4], 13), at(rows[4], 2)), ('|', '*'), "{t}");
        // Twenty clients share the column `c*`; the node column says which.
        let t = timeline(&[line("client17")], &names(2, 20));
        let rows: Vec<&str> = t.lines().collect();
        assert!(rows[0].ends_with(" c"), "{t}");
        assert!(rows[1].ends_with(" M 0 1 *  event"), "{t}");
        assert!(rows[2].contains(" | | | *  client17 "), "{t}");
    }

    #[test]
    fn messages_and_disk_are_shown_only_when_asked() {
        let line = |kind: &str| TraceLine {
            t_ns: 0,
            node: "cs0".into(),
            kind: kind.into(),
            detail: String::new(),
        };
        let all: Vec<TraceLine> = ["msg_sent", "msg_dropped", "disk_sync", "lease_acquired"]
            .into_iter()
            .chain(["check_passed", "disk_lost"])
            .map(line)
            .collect();
        let kinds = |show: &[Shown]| -> Vec<String> {
            shown(&all, show).into_iter().map(|l| l.kind).collect()
        };
        assert_eq!(kinds(&[]), ["lease_acquired", "check_passed"]);
        assert_eq!(
            kinds(&[Shown::Messages]),
            ["msg_sent", "msg_dropped", "lease_acquired", "check_passed"]
        );
        assert_eq!(
            hidden_counts(&all, &[Shown::Messages]),
            vec![(Shown::Disk, 2)]
        );
        let t = timeline(
            &shown(&all, &[Shown::Messages, Shown::Disk]),
            &["cs0".into()],
        );
        let markers: String = t
            .lines()
            .skip(1)
            .map(|r| r.chars().nth(15).unwrap())
            .collect();
        assert_eq!(markers, "m~d*v!", "{t}");
    }
}
