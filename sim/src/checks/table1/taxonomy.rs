//! Table 1's vocabulary: its rows (how a mutation ended and whether others raced it), its
//! columns (write or record append), the states a region can be found in, and which states the
//! paper allows in each cell (GFS §2.7.1, Table 1).

use std::collections::BTreeMap;

/// Table 1's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    SerialSuccess,
    ConcurrentSuccesses,
    Failure,
}

/// Table 1's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    Write,
    RecordAppend,
}

/// What a region was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Defined,
    Consistent,
    Inconsistent,
    /// Another whole copy, on every replica, of a record appended at least once (GFS §3.3).
    Duplicate,
    /// The zeros a primary wrote to fill a chunk a record did not fit in (GFS §3.3).
    Padding,
    Superseded,
    /// A failed record append whose record is on no current replica: nothing of it landed.
    NotLanded,
    /// A failed record append that cannot be located: raw bytes rather than a record, or its
    /// file was deleted or re-created after it began.
    Unknown,
}

impl Row {
    pub fn name(self) -> &'static str {
        match self {
            Row::SerialSuccess => "serial success",
            Row::ConcurrentSuccesses => "concurrent successes",
            Row::Failure => "failure",
        }
    }
}

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::Write => "write",
            Column::RecordAppend => "record append",
        }
    }
}

impl State {
    pub const ALL: [State; 8] = [
        State::Defined,
        State::Consistent,
        State::Inconsistent,
        State::Duplicate,
        State::Padding,
        State::Superseded,
        State::NotLanded,
        State::Unknown,
    ];

    /// The state named `name` (as [`State::name`] spells it).
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Defined => "defined",
            State::Consistent => "consistent",
            State::Inconsistent => "inconsistent",
            State::Duplicate => "duplicate",
            State::Padding => "padding",
            State::Superseded => "superseded",
            State::NotLanded => "not landed",
            State::Unknown => "unknown offset",
        }
    }
}

/// Whether the paper allows `state` for the region a mutation was told it wrote, in cell (`row`,
/// `col`). The other regions a record append leaves (duplicates, failed attempts' leftovers,
/// padding) are allowed anywhere in its column: "defined interspersed with inconsistent".
pub fn allowed(row: Row, col: Column, state: State) -> bool {
    match (row, col, state) {
        (_, _, State::Superseded) => true,
        (Row::Failure, _, _) => true,
        (Row::SerialSuccess, Column::Write, s) => s == State::Defined,
        (Row::ConcurrentSuccesses, Column::Write, s) => {
            matches!(s, State::Defined | State::Consistent)
        }
        (_, Column::RecordAppend, s) => s == State::Defined,
    }
}

/// Counts per cell and state.
pub type Table = BTreeMap<(Row, Column, State), u64>;
