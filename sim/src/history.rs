//! The history of a run: every client operation as an invocation and a completion, with
//! simulated times and the result, including operations that failed or never returned.

use crate::workload::OpSpec;
use node::client::FileInfo;
use node::GfsError;
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// What an operation returned. Errors are kept as the client returned them, so every reader
/// classifies them the same way ([`GfsError::class`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OpResult {
    Ok,
    Offset { offset: u64 },
    Data { data: Vec<u8> },
    Files { files: Vec<FileInfo> },
    Err { error: GfsError },
}

impl OpResult {
    pub fn from_err(e: &GfsError) -> Self {
        OpResult::Err { error: e.clone() }
    }

    /// The outcome for people: `ok`, `ok at offset 15`, `ok, 38 bytes: 00 01 ... (hex)`,
    /// `ok, 2 files: /f0 (64 bytes), /f1 (0 bytes)`, `error not_found: no such file: /f2`.
    pub fn plain(&self) -> String {
        match self {
            OpResult::Ok => "ok".to_string(),
            OpResult::Offset { offset } => format!("ok at offset {offset}"),
            OpResult::Data { data } if data.is_empty() => "ok, 0 bytes".to_string(),
            OpResult::Data { data } => {
                const SHOWN: usize = 16;
                let hex: Vec<String> = data
                    .iter()
                    .take(SHOWN)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let more = if data.len() > SHOWN { " ..." } else { "" };
                format!("ok, {} bytes: {}{more}", data.len(), hex.join(" "))
            }
            OpResult::Files { files } => {
                let names: Vec<String> = files
                    .iter()
                    .map(|f| format!("{} ({} bytes)", f.path, f.size_bytes))
                    .collect();
                format!("ok, {} files: {}", files.len(), names.join(", "))
            }
            OpResult::Err { error } => format!("error {}: {error}", error.kind()),
        }
    }

    pub fn is_ok(&self) -> bool {
        !matches!(self, OpResult::Err { .. })
    }

    /// An error that says the system misbehaved or could not answer, as opposed to a correct
    /// refusal (no such file, already exists, record too large, ...).
    pub fn is_failure(&self) -> bool {
        matches!(self, OpResult::Err { error } if error.is_failure())
    }

    /// The error, if the operation ended in one.
    pub fn error(&self) -> Option<&GfsError> {
        match self {
            OpResult::Err { error } => Some(error),
            _ => None,
        }
    }

    /// `ok`, or the error's kind (`not_found`, `retries_exhausted`, ...).
    pub fn outcome_name(&self) -> &'static str {
        match self {
            OpResult::Err { error } => error.kind(),
            _ => "ok",
        }
    }
}

/// One operation: invoked at `invoke_ns`, completed at `complete_ns` (None: never returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpRecord {
    pub id: usize,
    pub client: u32,
    #[serde(flatten)]
    pub op: OpSpec,
    pub invoke_ns: u64,
    pub complete_ns: Option<u64>,
    pub outcome: Option<OpResult>,
    /// Issued after every fault was healed and the cluster converged: it must succeed.
    pub after_heal: bool,
    /// Times the client tried it again after a failed attempt.
    pub retries: u64,
}

impl OpRecord {
    /// True if this operation certainly finished before `other` started (real-time order).
    pub fn precedes(&self, other: &OpRecord) -> bool {
        self.complete_ns.is_some_and(|c| c < other.invoke_ns)
    }
}

/// Shared, append-only record of a run's operations.
#[derive(Clone, Default)]
pub struct History {
    ops: Arc<Mutex<Vec<OpRecord>>>,
}

impl History {
    pub fn invoke(&self, client: u32, op: OpSpec) -> usize {
        self.push(client, op, false)
    }

    /// Records an operation issued after healing (see [`OpRecord::after_heal`]).
    pub fn invoke_after_heal(&self, client: u32, op: OpSpec) -> usize {
        self.push(client, op, true)
    }

    fn push(&self, client: u32, op: OpSpec, after_heal: bool) -> usize {
        let mut ops = self.ops.lock().unwrap();
        let id = ops.len();
        ops.push(OpRecord {
            id,
            client,
            op,
            invoke_ns: node::now_ns(),
            complete_ns: None,
            outcome: None,
            after_heal,
            retries: 0,
        });
        id
    }

    /// Records how operation `id` ended, after `retries` retries.
    pub fn complete(&self, id: usize, outcome: OpResult, retries: u64) {
        let mut ops = self.ops.lock().unwrap();
        let rec = &mut ops[id];
        assert!(rec.outcome.is_none(), "operation {id} completed twice");
        rec.complete_ns = Some(node::now_ns());
        rec.outcome = Some(outcome);
        rec.retries = retries;
    }

    /// The operation invoked as `id`.
    pub fn op(&self, id: usize) -> OpSpec {
        self.ops.lock().unwrap()[id].op.clone()
    }

    pub fn snapshot(&self) -> Vec<OpRecord> {
        self.ops.lock().unwrap().clone()
    }
}
