//! Space-time diagrams: a run's trace as a self-contained HTML page with inline SVG.
//!
//! One column per node, time downwards, one row per trace line (so a burst of events stays
//! readable and a quiet second takes no room; the left margin gives the simulated time). Each
//! request is an arrow from the row where it was sent to the row where it was delivered; a request
//! the caller gave up on ends in a cross, and a lost reply is a cross on the caller's column.
//! Faults are red bands on the columns they hit, from injection to healing; a lease a chunkserver
//! took is a green band until its expiry; client operations are bars from invocation to completion
//! (grey if they succeeded, orange if not, outlined in red if the failing check names them).
//! Hovering any mark shows its time, node and details. Nothing is fetched from the network. More
//! than a dozen clients share one column, as in the text timeline.
//!
//! The diagram is drawn from the trace lines (the same lines `traces/seed-N.jsonl` holds), as an
//! outside tool would: it links each delivery to its send by the message id the line prints
//! (`msg=client0#17`). No check reads this.

use crate::trace::TraceLine;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Pixels: width of a node's column, height of a row, margins.
const COL_W: usize = 64;
const ROW_H: usize = 12;
const LEFT: usize = 90;
const TOP: usize = 10;

/// `s` with the characters XML gives a meaning escaped, for text and attribute values.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The value of `key=` in a line's detail (`msg=cs3#1 to=master ...` gives `cs3#1` for `msg`).
fn field<'a>(detail: &'a str, key: &str) -> Option<&'a str> {
    detail
        .split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The op id an `op_invoked` (`op #4 client2 ...`) or `op_completed` (`op=#4 ok`) line is about.
fn op_id(line: &TraceLine) -> Option<usize> {
    let rest = line
        .detail
        .strip_prefix("op #")
        .or_else(|| line.detail.strip_prefix("op=#"))?;
    rest.split(' ').next()?.parse().ok()
}

/// The nodes a fault line names: `node=cs2`, `side=[master,cs3]`, `from=cs0` (one direction of a
/// link: drawn on its sender); network-wide faults (delay, loss) on the nemesis.
fn fault_nodes(detail: &str) -> Vec<String> {
    if let Some(n) = field(detail, "node") {
        return vec![n.to_string()];
    }
    if let Some(side) = field(detail, "side") {
        return side
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(str::to_string)
            .collect();
    }
    if let Some(from) = field(detail, "from") {
        return vec![from.to_string()];
    }
    vec!["nemesis".to_string()]
}

/// The diagram's columns, and each node's: one per node, except that more clients than
/// [`crate::trace::MAX_CLIENT_COLUMNS`] share one column, `clients` (a mark's details say which).
fn layout(nodes: &[String]) -> (Vec<String>, BTreeMap<String, usize>) {
    let clients = nodes.iter().filter(|n| n.starts_with("client")).count();
    let fold = clients > crate::trace::MAX_CLIENT_COLUMNS;
    let mut columns: Vec<String> = Vec::new();
    let mut col = BTreeMap::new();
    for n in nodes {
        let name = if fold && n.starts_with("client") {
            "clients".to_string()
        } else {
            n.clone()
        };
        let i = columns.iter().position(|c| *c == name).unwrap_or_else(|| {
            columns.push(name);
            columns.len() - 1
        });
        col.insert(n.clone(), i);
    }
    (columns, col)
}

/// The row where the lease `lines[row]` took (until `until_ns`) ends as the primary saw it: at its
/// expiry, moved on by `lease_extended`, or earlier if the primary released it, was told another
/// version, deleted the replica, or was killed.
fn lease_end(lines: &[TraceLine], row: usize, mut until_ns: u64) -> usize {
    let (node, chunk) = (lines[row].node.as_str(), field(&lines[row].detail, "chunk"));
    let version = field(&lines[row].detail, "version");
    for (i, m) in lines.iter().enumerate().skip(row + 1) {
        if m.t_ns >= until_ns {
            return i;
        }
        let same_chunk = m.node == node && field(&m.detail, "chunk") == chunk;
        match m.kind.as_str() {
            "lease_extended" if same_chunk => {
                if let Some(u) = field(&m.detail, "until_ns").and_then(|u| u.parse().ok()) {
                    until_ns = until_ns.max(u);
                }
            }
            "lease_released" | "replica_deleted" if same_chunk => return i,
            // A new version is a new grant; the grant that gave this lease sets its own version
            // too, at the same instant.
            "version_set" if same_chunk && field(&m.detail, "version") != version => return i,
            "fault_injected" | "write_torn"
                if field(&m.detail, "node") == Some(node)
                    && matches!(
                        field(&m.detail, "kind"),
                        Some("crash" | "torn_write") | None
                    ) =>
            {
                return i
            }
            _ => {}
        }
    }
    lines.len()
}

/// The diagram as an SVG element. `highlight` holds the ids of operations to outline (those the
/// failing check names).
pub fn svg(lines: &[TraceLine], nodes: &[String], highlight: &BTreeSet<usize>) -> String {
    let (columns, col) = layout(nodes);
    let x = |node: &str| LEFT + COL_W / 2 + COL_W * col.get(node).copied().unwrap_or(0);
    let y = |row: usize| TOP + ROW_H / 2 + ROW_H * row;
    let width = LEFT + COL_W * columns.len() + 20;
    let height = TOP + ROW_H * lines.len() + 20;
    let ms = |t: u64| t as f64 / 1e6;
    // Bands (faults, leases, operations) go first, under the arrows and marks.
    let mut bands = String::new();
    let mut arrows = String::new();
    let mut marks = String::new();
    let mut sent: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    let mut faults: BTreeMap<String, (usize, &str)> = BTreeMap::new();
    let mut ops: BTreeMap<usize, (usize, &TraceLine)> = BTreeMap::new();
    let band = |out: &mut String,
                class: &str,
                node: &str,
                offset: i64,
                from: usize,
                to: usize,
                title: &str| {
        let bx = x(node) as i64 + offset - 3;
        let _ = writeln!(
            out,
            r#"<rect class="{class}" x="{bx}" y="{}" width="6" height="{}"><title>{}</title></rect>"#,
            y(from),
            (y(to) - y(from)).max(2),
            xml(title)
        );
    };
    for (row, l) in lines.iter().enumerate() {
        let title = format!("{:.3} ms  {}  {}  {}", ms(l.t_ns), l.node, l.kind, l.detail);
        match l.kind.as_str() {
            "msg_sent" => {
                if let (Some(id), Some(to)) = (field(&l.detail, "msg"), field(&l.detail, "to")) {
                    sent.insert(id, (row, to));
                }
            }
            "msg_delivered" => {
                if let Some((from_row, _)) = field(&l.detail, "msg").and_then(|id| sent.get(id)) {
                    let from = field(&l.detail, "from").unwrap_or("");
                    let _ = writeln!(
                        arrows,
                        r#"<line class="msg" x1="{}" y1="{}" x2="{}" y2="{}" marker-end="url(#arrow)"><title>{}</title></line>"#,
                        x(from),
                        y(*from_row),
                        x(&l.node),
                        y(row),
                        xml(&title)
                    );
                }
            }
            "msg_dropped" => {
                let request_lost = field(&l.detail, "lost") == Some("request");
                let origin = field(&l.detail, "msg").and_then(|id| sent.get(id));
                // A lost request ends halfway to its destination; a lost reply at the caller.
                let (cx, cy) = match (request_lost, origin, field(&l.detail, "to")) {
                    (true, Some((from_row, _)), Some(to)) => {
                        let (x1, x2) = (x(&l.node), x(to));
                        let mid = (x1 + x2) / 2;
                        let _ = writeln!(
                            arrows,
                            r#"<line class="lost" x1="{x1}" y1="{}" x2="{mid}" y2="{}"><title>{}</title></line>"#,
                            y(*from_row),
                            y(row),
                            xml(&title)
                        );
                        (mid, y(row))
                    }
                    _ => (x(&l.node), y(row)),
                };
                let _ = writeln!(
                    marks,
                    r#"<path class="cross" d="M{} {} l8 8 m0 -8 l-8 8"><title>{}</title></path>"#,
                    cx - 4,
                    cy - 4,
                    xml(&title)
                );
                continue;
            }
            "fault_injected" => {
                let key = l.detail.split(" unsynced_writes_lost").next().unwrap_or("");
                faults.insert(key.to_string(), (row, l.detail.as_str()));
            }
            "fault_healed" => {
                if let Some((from, detail)) = faults.remove(&l.detail) {
                    for n in fault_nodes(detail) {
                        band(
                            &mut bands,
                            "fault",
                            &n,
                            -6,
                            from,
                            row,
                            &format!("fault {detail}"),
                        );
                    }
                }
            }
            "lease_acquired" => {
                let until = field(&l.detail, "until_ns").and_then(|u| u.parse::<u64>().ok());
                if let Some(until) = until {
                    let end = lease_end(lines, row, until);
                    band(
                        &mut bands,
                        "lease",
                        &l.node,
                        6,
                        row,
                        end,
                        &format!("lease {}", l.detail),
                    );
                }
            }
            "op_invoked" => {
                if let Some(id) = op_id(l) {
                    ops.insert(id, (row, l));
                }
            }
            "op_completed" => {
                let started = op_id(l).and_then(|id| Some((id, ops.remove(&id)?)));
                if let Some((id, (from, invoked))) = started {
                    let failed = !l
                        .detail
                        .split(' ')
                        .nth(1)
                        .is_some_and(|w| w.starts_with("ok"));
                    let class = match (highlight.contains(&id), failed) {
                        (true, _) => "op named",
                        (false, true) => "op failed",
                        (false, false) => "op",
                    };
                    band(
                        &mut bands,
                        class,
                        &l.node,
                        0,
                        from,
                        row,
                        &format!("{}  ->  {}", invoked.detail, l.detail),
                    );
                }
            }
            _ => {}
        }
        let class = match l.kind.as_str() {
            "fault_injected" | "write_torn" | "bit_flipped" | "disk_lost" => "ev bad",
            "check_failed" | "liveness_failed" | "panic" => "ev bad",
            "msg_sent" | "msg_delivered" | "reply_delivered" => "ev msgev",
            "disk_write" | "disk_sync" => "ev disk",
            _ => "ev",
        };
        let _ = writeln!(
            marks,
            r#"<circle class="{class}" cx="{}" cy="{}" r="3"><title>{}</title></circle>"#,
            x(&l.node),
            y(row),
            xml(&title)
        );
    }
    // Operations that never completed run to the end of the diagram.
    for (id, (from, invoked)) in ops {
        let class = if highlight.contains(&id) {
            "op named"
        } else {
            "op failed"
        };
        band(
            &mut bands,
            class,
            &invoked.node,
            0,
            from,
            lines.len(),
            &format!("{}  ->  never returned", invoked.detail),
        );
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    out.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#4a6fa5"/></marker></defs>
"##,
    );
    for (i, n) in columns.iter().enumerate() {
        let cx = LEFT + COL_W / 2 + COL_W * i;
        let _ = writeln!(
            out,
            r#"<line class="axis" x1="{cx}" y1="{TOP}" x2="{cx}" y2="{}"><title>{}</title></line>"#,
            height - 10,
            xml(n)
        );
    }
    for (row, l) in lines.iter().enumerate().step_by(20) {
        let _ = writeln!(
            out,
            r#"<text class="time" x="4" y="{}">{:.3} ms</text>"#,
            y(row) + 4,
            ms(l.t_ns)
        );
    }
    out.push_str(&bands);
    out.push_str(&arrows);
    out.push_str(&marks);
    out.push_str("</svg>\n");
    out
}

/// The diagram as a self-contained HTML page titled `title`, with a header that names the columns
/// and stays in view while scrolling, and a legend.
pub fn html(
    title: &str,
    lines: &[TraceLine],
    nodes: &[String],
    highlight: &BTreeSet<usize>,
) -> String {
    let (columns, _) = layout(nodes);
    let width = LEFT + COL_W * columns.len() + 20;
    let mut header = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="22" viewBox="0 0 {width} 22">"#
    );
    for (i, n) in columns.iter().enumerate() {
        let _ = write!(
            header,
            r#"<text class="node" x="{}" y="16" text-anchor="middle">{}</text>"#,
            LEFT + COL_W / 2 + COL_W * i,
            xml(n)
        );
    }
    header.push_str("</svg>");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 0 1em; }}
#head {{ position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ccc; }}
.node {{ font-size: 12px; font-weight: bold; }}
.time {{ font-size: 9px; fill: #666; }}
.axis {{ stroke: #ccc; stroke-width: 1; }}
.msg {{ stroke: #4a6fa5; stroke-width: 1; opacity: 0.6; }}
.lost {{ stroke: #c0392b; stroke-width: 1; stroke-dasharray: 3 2; }}
.cross {{ stroke: #c0392b; stroke-width: 2; fill: none; }}
.ev {{ fill: #333; }} .ev.bad {{ fill: #c0392b; }} .ev.msgev {{ fill: #4a6fa5; }} .ev.disk {{ fill: #8e44ad; }}
.fault {{ fill: #e74c3c; opacity: 0.35; }}
.lease {{ fill: #27ae60; opacity: 0.35; }}
.op {{ fill: #95a5a6; opacity: 0.6; }} .op.failed {{ fill: #e67e22; }} .op.named {{ fill: #e67e22; stroke: #c0392b; stroke-width: 2; opacity: 0.9; }}
.legend span {{ margin-right: 1.2em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="legend"><span>one row per event, time downwards (left: simulated ms)</span><span style="color:#4a6fa5">&#8594; request delivered</span><span style="color:#c0392b">&#10005; request or reply lost</span><span style="color:#e74c3c">&#9646; fault</span><span style="color:#27ae60">&#9646; lease</span><span style="color:#95a5a6">&#9646; operation</span><span style="color:#e67e22">&#9646; failed operation (outlined: named by the failing check)</span><span>hover for details</span></p>
<div id="head">{header}</div>
{}
</body>
</html>
"#,
        svg(lines, nodes, highlight),
        title = xml(title),
    )
}

/// The lines a diagram draws: those between `from_ms` and `to_ms` (simulated), and, given `only`
/// (a chunk `c4`, a file `/f1` or a node `cs2`), only those on that node or naming it as a whole
/// word, with every fault and verdict kept for context. A kept message keeps its delivery, reply
/// and loss (which name only its id), so its arrow is drawn.
pub fn select(
    lines: Vec<TraceLine>,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    only: Option<&str>,
) -> Vec<TraceLine> {
    let from = from_ms.map_or(0, |ms| ms.saturating_mul(1_000_000));
    let to = to_ms.map_or(u64::MAX, |ms| ms.saturating_mul(1_000_000));
    let names = |l: &TraceLine, name: &str| {
        l.node == name || l.detail.split([' ', '=', ',', '[', ']']).any(|w| w == name)
    };
    // An operation's completion line names only its id: it goes with its invocation; so do a
    // message's delivery, reply and loss with its sending.
    let mut kept_ops = BTreeSet::new();
    let mut kept_msgs: BTreeSet<String> = BTreeSet::new();
    lines
        .into_iter()
        .filter(|l| l.t_ns >= from && l.t_ns <= to)
        .filter(|l| {
            let Some(name) = only else {
                return true;
            };
            if l.kind == "op_completed" {
                return op_id(l).is_some_and(|id| kept_ops.contains(&id));
            }
            let msg = field(&l.detail, "msg");
            if matches!(
                l.kind.as_str(),
                "msg_delivered" | "reply_delivered" | "msg_dropped"
            ) && msg.is_some_and(|m| kept_msgs.contains(m))
            {
                return true;
            }
            let keep = names(l, name) || l.node == "nemesis" || l.kind.starts_with("check_");
            if keep && l.kind == "op_invoked" {
                kept_ops.extend(op_id(l));
            }
            if keep && l.kind == "msg_sent" {
                kept_msgs.extend(msg.map(str::to_string));
            }
            keep
        })
        .collect()
}

/// The operation ids a failure report names (`op #12 client1 write ...`).
pub fn named_ops(reports: &[&str]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for r in reports {
        for part in r.split("op #").skip(1) {
            if let Some(n) = part.split(|c: char| !c.is_ascii_digit()).next() {
                if let Ok(id) = n.parse() {
                    out.insert(id);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t_ms: u64, node: &str, kind: &str, detail: &str) -> TraceLine {
        TraceLine {
            t_ns: t_ms * 1_000_000,
            node: node.into(),
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn arrows_link_sends_to_deliveries_and_losses_end_in_crosses() {
        let nodes: Vec<String> = ["master", "cs0", "client0", "nemesis"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lines = [
            line(1, "client0", "op_invoked", "op #3 client0 create /a<b>"),
            line(
                1,
                "client0",
                "msg_sent",
                "msg=client0#1 to=master kind=create",
            ),
            line(
                2,
                "master",
                "msg_delivered",
                "msg=client0#1 from=client0 kind=create",
            ),
            line(3, "client0", "msg_sent", "msg=client0#2 to=cs0 kind=read"),
            line(
                4,
                "nemesis",
                "fault_injected",
                "kind=crash node=cs0 unsynced_writes_lost=0",
            ),
            line(
                5,
                "client0",
                "msg_dropped",
                "msg=client0#2 to=cs0 kind=read lost=request why=timeout after_us=1",
            ),
            line(6, "nemesis", "fault_healed", "kind=crash node=cs0"),
            line(7, "client0", "op_completed", "op=#3 err=unavailable"),
        ];
        let s = svg(&lines, &nodes, &BTreeSet::from([3]));
        assert_eq!(s.matches(r#"<line class="msg""#).count(), 1, "{s}");
        assert_eq!(s.matches(r#"<line class="lost""#).count(), 1);
        assert_eq!(s.matches(r#"class="cross""#).count(), 1);
        assert_eq!(s.matches(r#"class="fault""#).count(), 1);
        assert_eq!(s.matches(r#"class="op named""#).count(), 1);
        assert!(s.contains("/a&lt;b&gt;") && !s.contains("/a<b>"), "escaped");
        assert_eq!(
            named_ops(&["bad: op #3 client0 ..., op #12 x"]),
            BTreeSet::from([3, 12])
        );
        // A window and a name select lines; faults stay for context; `c4` is not `c40`.
        let picked = select(lines.to_vec(), Some(2), Some(6), Some("cs0"));
        let kinds: Vec<&str> = picked.iter().map(|l| l.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["msg_sent", "fault_injected", "msg_dropped", "fault_healed"],
            "{picked:?}"
        );
        // Many clients share one column; a few keep their own.
        let many: Vec<String> = (0..20).map(|i| format!("client{i}")).collect();
        let (cols, col) = layout(&many);
        assert_eq!((cols.len(), col["client17"]), (1, 0));
        assert_eq!(layout(&nodes).0.len(), 4);
        // A lease band ends at a crash of its primary, not at the expiry it was granted.
        let lease = [
            line(
                0,
                "cs0",
                "lease_acquired",
                "chunk=c1 version=1 until_ns=9000000",
            ),
            line(
                1,
                "cs0",
                "lease_extended",
                "chunk=c1 version=1 until_ns=20000000",
            ),
            line(10, "cs1", "version_set", "chunk=c1 version=2 role=primary"),
            line(
                12,
                "nemesis",
                "fault_injected",
                "kind=crash node=cs0 unsynced_writes_lost=0",
            ),
            line(30, "cs1", "mutation_ordered", "chunk=c1"),
        ];
        assert_eq!(
            lease_end(&lease, 0, 9_000_000),
            3,
            "extended past 9 ms, cut by the crash"
        );
        // The grant's own version_set (same version, same instant) does not end the band; a
        // later version does.
        let granted = [
            line(
                0,
                "cs0",
                "lease_acquired",
                "chunk=c1 version=2 until_ns=9000000",
            ),
            line(0, "cs0", "version_set", "chunk=c1 version=2 role=primary"),
            line(5, "cs0", "version_set", "chunk=c1 version=3 role=secondary"),
        ];
        assert_eq!(lease_end(&granted, 0, 9_000_000), 2);
        assert_eq!(
            lease_end(&lease[..3], 0, 9_000_000),
            3,
            "to the end: extended to 20 ms"
        );
        // An operation on the named file keeps its completion, which names only its id.
        let picked = select(lines.to_vec(), None, None, Some("/a<b>"));
        assert!(
            picked.iter().any(|l| l.kind == "op_completed"),
            "{picked:?}"
        );
        let c = [line(1, "cs0", "version_set", "chunk=c40 version=1")];
        assert!(select(c.to_vec(), None, None, Some("c4")).is_empty());
        assert_eq!(select(c.to_vec(), None, None, Some("c40")).len(), 1);
        // A message about the chunk keeps its delivery and its loss, which name only its id.
        let m = [
            line(
                1,
                "cs4",
                "msg_sent",
                "msg=cs4#2 to=cs1 kind=apply_mutation chunk=c13",
            ),
            line(
                2,
                "cs1",
                "msg_delivered",
                "msg=cs4#2 from=cs4 kind=apply_mutation",
            ),
            line(
                3,
                "cs4",
                "msg_sent",
                "msg=cs4#3 to=cs0 kind=apply_mutation chunk=c13",
            ),
            line(9, "cs4", "msg_dropped", "msg=cs4#3 to=cs0 lost=request"),
            line(10, "cs4", "msg_sent", "msg=cs4#4 to=master kind=heartbeat"),
            line(
                11,
                "master",
                "msg_delivered",
                "msg=cs4#4 from=cs4 kind=heartbeat",
            ),
        ];
        let kinds: Vec<String> = select(m.to_vec(), None, None, Some("c13"))
            .into_iter()
            .map(|l| l.kind)
            .collect();
        assert_eq!(
            kinds,
            ["msg_sent", "msg_delivered", "msg_sent", "msg_dropped"],
            "the heartbeat is not about c13"
        );
    }
}

/// The trace in ShiViz's log format (<https://bestchai.bitbucket.io/shiviz/>): for each line, its
/// description, then its node and vector clock as JSON (`cs2 {"cs2":4,"master":7}`), to paste into
/// ShiViz with its default parser, `(?<event>.*)\n(?<host>\S*) (?<clock>{.*})`. Each node counts
/// its own lines; a delivery also takes in the clock its request was sent with (linked by message
/// id), so the clocks order every line by happens-before as ShiViz draws it.
pub fn shiviz(lines: &[TraceLine]) -> String {
    let mut clocks: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut sent: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut out = String::new();
    for l in lines {
        let mut clock = clocks.get(l.node.as_str()).cloned().unwrap_or_default();
        if l.kind == "msg_delivered" {
            if let Some(at_send) = field(&l.detail, "msg").and_then(|id| sent.get(id)) {
                for (node, n) in at_send {
                    let mine = clock.entry(node).or_default();
                    *mine = (*mine).max(*n);
                }
            }
        }
        *clock.entry(l.node.as_str()).or_default() += 1;
        if l.kind == "msg_sent" {
            if let Some(id) = field(&l.detail, "msg") {
                sent.insert(id, clock.clone());
            }
        }
        let json: Vec<String> = clock.iter().map(|(n, c)| format!("\"{n}\":{c}")).collect();
        let _ = writeln!(
            out,
            "{:.3} ms {} {}\n{} {{{}}}",
            l.t_ns as f64 / 1e6,
            l.kind,
            l.detail.replace('\n', " "),
            l.node,
            json.join(",")
        );
        clocks.insert(l.node.as_str(), clock);
    }
    out
}

#[cfg(test)]
mod shiviz_tests {
    use super::*;

    #[test]
    fn vector_clocks_order_a_delivery_after_its_send() {
        let line = |node: &str, kind: &str, detail: &str| TraceLine {
            t_ns: 0,
            node: node.into(),
            kind: kind.into(),
            detail: detail.into(),
        };
        let lines = [
            line("cs0", "version_set", "chunk=c1"),
            line("cs0", "msg_sent", "msg=cs0#1 to=master kind=heartbeat"),
            line("master", "server_joined", "server=cs0"),
            line(
                "master",
                "msg_delivered",
                "msg=cs0#1 from=cs0 kind=heartbeat",
            ),
        ];
        let log = shiviz(&lines);
        let clocks: Vec<&str> = log.lines().skip(1).step_by(2).collect();
        assert_eq!(
            clocks,
            [
                r#"cs0 {"cs0":1}"#,
                r#"cs0 {"cs0":2}"#,
                r#"master {"master":1}"#,
                r#"master {"cs0":2,"master":2}"#
            ],
            "{log}"
        );
    }
}
