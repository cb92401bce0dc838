//! The named checks a run must pass. Each is one file with one property; each reports what it saw.
//!
//! All checks work on the same inputs, gathered after the workload ends and the cluster has had
//! time to settle: the [`OpRecord`] history, the bytes of every file read back through a fresh
//! client, the master's chunk table and every listed replica's bytes read directly from its
//! chunkserver. [`model`] turns the history into per-byte expectations.

pub mod acked_creates;
pub mod acked_on_replicas;
pub mod acked_readback;
pub mod after_heal;
pub mod available;
pub mod available_replicas;
pub mod converged;
pub mod copies_prompt;
pub mod copy_budget;
pub mod deleted_readable;
pub mod deletes_only_garbage;
pub mod divergence_explained;
pub mod gc_after_grace;
pub mod grants_inform_current;
pub mod handles_unique;
pub mod lease_budget;
pub mod linearizable;
pub mod model;
pub mod moved_when_quiet;
pub mod ordered_under_lease;
pub mod padding_whole;
pub mod placement_spread;
pub mod reads_not_invented;
pub mod records_readable;
pub mod replicas_identical;
pub mod single_primary;
pub mod stale_reads_bounded;
pub mod table1;
pub mod versions_monotonic;

use crate::history::{OpRecord, OpResult};
use node::msg::{ChunkDump, ReplicaContent};
use node::sparse::SparseBytes;
use node::ServerId;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A check that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check's name (its file name).
    pub check: &'static str,
    /// What was seen: operations, offsets, bytes.
    pub report: String,
}

/// How many findings a report lists before it says how many more there were.
pub const REPORT_LINES: usize = 8;

impl Violation {
    /// A violation whose report is `header`, then the first [`REPORT_LINES`] of `lines` (out of
    /// `total` findings), one per indented line, then how many more there were. `lines` is only
    /// drawn from as far as it is shown, so findings past those cost nothing to describe.
    pub fn listing(
        check: &'static str,
        header: String,
        total: usize,
        lines: impl IntoIterator<Item = String>,
    ) -> Violation {
        let mut report = header;
        report.push('\n');
        for line in lines.into_iter().take(REPORT_LINES) {
            let _ = writeln!(report, "  {line}");
        }
        if total > REPORT_LINES {
            let _ = writeln!(report, "  ... and {} more", total - REPORT_LINES);
        }
        Violation { check, report }
    }
}

/// What the harness read at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Each file's bytes read through a client (`Err`: the read failed), sparse: padding and
    /// holes are not stored.
    pub files: BTreeMap<String, Result<SparseBytes, String>>,
    /// The master's chunk table.
    pub chunks: Vec<ChunkDump>,
    /// Each listed replica's content, by chunk handle and server.
    pub replicas: BTreeMap<(node::ChunkHandle, ServerId), Result<ReplicaContent, String>>,
}

/// Everything the checks need to know.
pub struct Inputs<'a> {
    pub history: &'a [OpRecord],
    pub state: &'a FinalState,
    pub chunk_size_bytes: u64,
    pub replication: u32,
    /// Mutations a primary applied but could not get every secondary to apply.
    pub partial_mutations: u64,
    /// The run's protocol and fault events, in time order.
    pub events: &'a [node::trace::Entry],
    /// Client attempts that failed and were retried (a failed attempt may leave a partial region).
    pub failed_attempts: u64,
    /// How long the master keeps a deleted file's hidden name before reclaiming it (GFS §4.4).
    pub gc_delay_ms: u64,
    /// How long a lease lasts unless extended (GFS §3.1).
    pub lease_ms: u64,
    /// How long before its expiry a used lease is due an extension ([`lease_budget::slack_ns`]).
    pub lease_slack_ns: u64,
    /// How long a node waits for an answer before it gives up on a request.
    pub rpc_timeout_ms: u64,
    /// How long a client trusts a cached chunk location (GFS §2.7.1).
    pub location_cache_ms: u64,
    /// When and how many copies the master makes (GFS §4.3).
    pub copy_rules: copies_prompt::CopyRules,
    /// When the run ended, in simulated nanoseconds: a check that judges a wait judges it up to
    /// here, even if no event came after it.
    pub end_ns: u64,
}

/// Inputs for the checks' unit tests.
#[cfg(test)]
pub(crate) fn test_inputs<'a>(
    history: &'a [OpRecord],
    state: &'a FinalState,
    chunk_size_bytes: u64,
    replication: u32,
    partial_mutations: u64,
) -> Inputs<'a> {
    Inputs {
        history,
        state,
        chunk_size_bytes,
        replication,
        partial_mutations,
        events: &[],
        failed_attempts: 0,
        gc_delay_ms: node::ClusterConfig::default().gc_delay_ms,
        lease_ms: node::ClusterConfig::default().lease_ms,
        lease_slack_ns: lease_budget::slack_ns(
            node::ClusterConfig::default().heartbeat_ms,
            node::ClusterConfig::default().rpc_timeout_ms,
        ),
        rpc_timeout_ms: node::ClusterConfig::default().rpc_timeout_ms,
        location_cache_ms: node::ClusterConfig::default().location_cache_ms,
        copy_rules: copies_prompt::CopyRules::of(&node::ClusterConfig::default()),
        end_ns: 0,
    }
}

/// For the checks' unit tests: `event` on `node` at `t_ms` simulated milliseconds.
#[cfg(test)]
pub(crate) fn event_at_ms(
    t_ms: u64,
    node: node::trace::NodeName,
    event: node::trace::Event,
) -> node::trace::Entry {
    node::trace::Entry {
        time_ns: t_ms * 1_000_000,
        node,
        event,
    }
}

/// For the checks' unit tests: the master hearing from chunkservers 0 to `n - 1` at time 0.
#[cfg(test)]
pub(crate) fn servers_joined(n: u32) -> Vec<node::trace::Entry> {
    (0..n)
        .map(|s| {
            event_at_ms(
                0,
                node::trace::NodeName::Master,
                node::trace::Event::ServerJoined {
                    server: ServerId(s),
                    chunks: 0,
                },
            )
        })
        .collect()
}

/// For the checks' unit tests: the final state of one chunk (`/f` #0, handle 1, version 1) whose
/// replicas on servers 0, 1, ... hold `replicas`.
#[cfg(test)]
pub(crate) fn one_chunk_state(replicas: &[&[u8]]) -> FinalState {
    let mut state = FinalState::default();
    let servers: Vec<ServerId> = (0..replicas.len() as u32).map(ServerId).collect();
    state.chunks.push(ChunkDump {
        path: "/f".into(),
        index: 0,
        handle: node::ChunkHandle(1),
        version: 1,
        issued: 1,
        replicas: servers.clone(),
    });
    for (s, data) in servers.iter().zip(replicas) {
        let r = ReplicaContent {
            version: 1,
            data: data.to_vec().into(),
            checksums_ok: true,
        };
        state.replicas.insert((node::ChunkHandle(1), *s), Ok(r));
    }
    state
}

/// Servers as a report lists them (`cs0, cs2`), or `none`.
pub(crate) fn names(servers: &[ServerId]) -> String {
    let v: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// `ns` as milliseconds with three decimals, for reports (`1234.568 ms`).
pub(crate) fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// The checks [`run_all`] runs, by name, in its order.
pub const NAMES: [&str; 25] = [
    acked_readback::NAME,
    acked_on_replicas::NAME,
    replicas_identical::NAME,
    divergence_explained::NAME,
    acked_creates::NAME,
    linearizable::NAME,
    table1::NAME,
    reads_not_invented::NAME,
    stale_reads_bounded::NAME,
    records_readable::NAME,
    padding_whole::NAME,
    single_primary::NAME,
    ordered_under_lease::NAME,
    versions_monotonic::NAME,
    handles_unique::NAME,
    gc_after_grace::NAME,
    deletes_only_garbage::NAME,
    grants_inform_current::NAME,
    deleted_readable::NAME,
    lease_budget::NAME,
    copy_budget::NAME,
    copies_prompt::NAME,
    placement_spread::NAME,
    moved_when_quiet::NAME,
    available::NAME,
];

/// Every check's verdict, and Table 1 as this run observed it.
pub struct Verdicts {
    /// Each check of [`NAMES`], in order, with its violation if any.
    pub results: Vec<(&'static str, Option<Violation>)>,
    /// The `table1` judgement's counts and forbidden findings, kept for `sim table` and sweeps
    /// so they need not judge the run again.
    pub table1: table1::Table,
    pub table1_forbidden: u64,
}

/// Runs every check, in the order of [`NAMES`].
pub fn run_each(inputs: &Inputs) -> Verdicts {
    let exps = model::expectations(inputs.history);
    let judged = table1::judge_all(inputs);
    let files: Vec<&str> = inputs.state.files.keys().map(String::as_str).collect();
    let out = vec![
        (acked_readback::NAME, acked_readback::check(inputs, &exps)),
        (
            acked_on_replicas::NAME,
            acked_on_replicas::check(inputs, &exps),
        ),
        (replicas_identical::NAME, replicas_identical::check(inputs)),
        (
            divergence_explained::NAME,
            divergence_explained::check(inputs),
        ),
        (
            acked_creates::NAME,
            acked_creates::check(inputs.history, &files),
        ),
        (linearizable::NAME, linearizable::check(inputs.history)),
        (table1::NAME, table1::violation(&judged.forbidden)),
        (
            reads_not_invented::NAME,
            reads_not_invented::check(inputs.history),
        ),
        (
            stale_reads_bounded::NAME,
            stale_reads_bounded::check(inputs.history, inputs.location_cache_ms),
        ),
        (records_readable::NAME, records_readable::check(inputs)),
        (padding_whole::NAME, padding_whole::check(inputs)),
        (single_primary::NAME, single_primary::check(inputs.events)),
        (
            ordered_under_lease::NAME,
            ordered_under_lease::check(inputs.events),
        ),
        (
            versions_monotonic::NAME,
            versions_monotonic::check(inputs.events),
        ),
        (
            handles_unique::NAME,
            handles_unique::check(inputs.events, inputs.state),
        ),
        (
            gc_after_grace::NAME,
            gc_after_grace::check(inputs.history, inputs.events, inputs.gc_delay_ms),
        ),
        (
            deletes_only_garbage::NAME,
            deletes_only_garbage::check(inputs.events),
        ),
        (
            grants_inform_current::NAME,
            grants_inform_current::check(inputs.events),
        ),
        (
            deleted_readable::NAME,
            deleted_readable::check(inputs.history, inputs.gc_delay_ms),
        ),
        (
            lease_budget::NAME,
            lease_budget::check(inputs.events, inputs.lease_ms, inputs.lease_slack_ns),
        ),
        (
            copy_budget::NAME,
            copy_budget::check(inputs.events, inputs.replication),
        ),
        (
            copies_prompt::NAME,
            copies_prompt::check(inputs.events, &inputs.copy_rules, inputs.end_ns),
        ),
        (
            placement_spread::NAME,
            placement_spread::check(inputs.events, inputs.copy_rules.heartbeat_ms),
        ),
        (
            moved_when_quiet::NAME,
            moved_when_quiet::check(inputs.events, inputs.copy_rules.clone_quiet_ms),
        ),
        (available::NAME, available::check(inputs)),
    ];
    // The trace's check_passed lines list NAMES: the two lists must not drift apart.
    assert!(
        out.iter().map(|(n, _)| *n).eq(NAMES),
        "checks::NAMES is out of date"
    );
    Verdicts {
        results: out,
        table1_forbidden: judged.forbidden.len() as u64,
        table1: judged.table,
    }
}

/// Runs every check; returns all violations.
pub fn run_all(inputs: &Inputs) -> Vec<Violation> {
    run_each(inputs)
        .results
        .into_iter()
        .filter_map(|(_, v)| v)
        .collect()
}

/// The master's chunks by (path, chunk index), for checks that look bytes up by file offset.
pub fn chunks_by_position(state: &FinalState) -> BTreeMap<(&str, u64), &ChunkDump> {
    state
        .chunks
        .iter()
        .map(|c| ((c.path.as_str(), c.index), c))
        .collect()
}

/// Byte strings a report can show a window of.
pub trait Window {
    fn byte_len(&self) -> u64;
    /// The bytes of `[lo, hi)` (within the length).
    fn window(&self, lo: u64, hi: u64) -> Vec<u8>;
}

impl Window for [u8] {
    fn byte_len(&self) -> u64 {
        self.len() as u64
    }
    fn window(&self, lo: u64, hi: u64) -> Vec<u8> {
        self[lo as usize..hi as usize].to_vec()
    }
}

impl Window for Vec<u8> {
    fn byte_len(&self) -> u64 {
        self.len() as u64
    }
    fn window(&self, lo: u64, hi: u64) -> Vec<u8> {
        self[lo as usize..hi as usize].to_vec()
    }
}

impl Window for SparseBytes {
    fn byte_len(&self) -> u64 {
        self.len()
    }
    fn window(&self, lo: u64, hi: u64) -> Vec<u8> {
        self.read(lo, hi - lo)
    }
}

/// Hex and printable views of `bytes[at - 8 .. at + 8]`, the judged byte in brackets.
pub fn context(bytes: &(impl Window + ?Sized), at: u64) -> String {
    let lo = at.saturating_sub(8);
    let hi = (at + 8).min(bytes.byte_len());
    let mut hex = String::new();
    let mut text = String::new();
    let window = if lo < hi {
        bytes.window(lo, hi)
    } else {
        Vec::new()
    };
    for (i, &b) in (lo..).zip(window.iter()) {
        if i == at {
            let _ = write!(hex, "[{b:02x}]");
        } else {
            let _ = write!(hex, " {b:02x} ");
        }
        text.push(if b.is_ascii_graphic() { b as char } else { '.' });
    }
    format!("bytes {lo}..{hi}: {hex} |{text}|")
}

/// One line describing an operation of the history.
pub fn describe(op: &OpRecord) -> String {
    let args = match &op.op {
        crate::workload::OpSpec::Write { path, offset, data } => {
            format!("write {path} @{offset} len {}", data.len())
        }
        crate::workload::OpSpec::Append { path, data } => {
            format!("append {path} len {}", data.len())
        }
        crate::workload::OpSpec::Create { path } => format!("create {path}"),
        crate::workload::OpSpec::Delete { path } => format!("delete {path}"),
        crate::workload::OpSpec::List => "list".to_string(),
        crate::workload::OpSpec::Read { path, offset, len } => {
            format!("read {path} @{offset} len {len}")
        }
        crate::workload::OpSpec::ReadDeleted { path, offset, len } => {
            format!("read deleted {path} @{offset} len {len}")
        }
    };
    let done = op.complete_ns.map_or("never returned".to_string(), |c| {
        format!("{:.3} ms", c as f64 / 1e6)
    });
    let outcome = op
        .outcome
        .as_ref()
        .map_or("pending".to_string(), OpResult::plain);
    let outcome: String = outcome.chars().take(120).collect();
    format!(
        "op #{} client{} {args} invoked {:.3} ms, completed {done} -> {outcome}",
        op.id,
        op.client,
        op.invoke_ns as f64 / 1e6
    )
}

/// Groups mismatches per operation and renders them, at most `limit` operations.
pub fn render_mismatches(
    history: &[OpRecord],
    mismatches: &[(usize, String)],
    limit: usize,
) -> String {
    let mut by_op: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
    for (op, line) in mismatches {
        by_op.entry(*op).or_default().push(line);
    }
    let mut out = String::new();
    for (op, lines) in by_op.iter().take(limit) {
        let _ = writeln!(out, "  {}", describe(&history[*op]));
        for l in lines.iter().take(3) {
            let _ = writeln!(out, "    {l}");
        }
        if lines.len() > 3 {
            let _ = writeln!(out, "    ... and {} more bytes", lines.len() - 3);
        }
    }
    if by_op.len() > limit {
        let _ = writeln!(out, "  ... and {} more operations", by_op.len() - limit);
    }
    out
}
