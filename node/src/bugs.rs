//! Planted bugs: classic GFS mistakes, each behind a switch, all off by default.
//!
//! A testbed is only as good as the bugs it finds. Each switch changes exactly the one behaviour
//! it names, in the node that makes the mistake, so the harness can show which check catches it
//! and how many seeds that takes. They travel in [`crate::ClusterConfig::bugs`], so every replay
//! command carries them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One planted bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bug {
    /// The primary acknowledges a mutation without waiting for its secondaries (GFS §3.1 step 7).
    AckBeforeSecondaries,
    /// The primary lets go of a chunk between applying a mutation and forwarding it, and
    /// secondaries apply mutations in arrival order instead of the primary's serial order.
    ArrivalOrder,
    /// A lease grant keeps the chunk's version: stale replicas look current (GFS §4.5).
    NoVersionBump,
    /// The master grants a new lease while the old one may still be held (GFS §3.1).
    EarlyLease,
    /// Heartbeats count replicas at an old version as current locations (GFS §4.5).
    StaleReplicasCurrent,
    /// Chunkservers never verify block checksums (GFS §5.2).
    NoChecksumVerify,
    /// The master replies before its operation log is synced (GFS §2.6.3).
    UnsyncedLog,
    /// Re-replication may copy from a replica excluded as stale (GFS §4.3).
    CloneFromStale,
    /// Record append does not pad: a record that does not fit is cut at the chunk's end (§3.3).
    AppendNoPad,
    /// Garbage collection deletes every chunk of a path that was ever deleted, including those of
    /// the file re-created under the same name (GFS §4.4).
    GcDeletesReferenced,
    /// A restarted master grants leases at once, while leases of its previous life may run (§4.5).
    NoGraceAfterRestart,
    /// The primary keeps numbering mutations after its lease ran out (GFS §3.1): it checks the
    /// lease's version but not its expiry.
    PrimaryIgnoresExpiry,
    /// A listing shows deleted files under their hidden names (GFS §4.4: deletion renames a file
    /// into a hidden namespace).
    ListShowsHidden,
    /// Record-append padding stops one byte short of the chunk's end (GFS §3.3: the primary pads
    /// the chunk to its maximum size).
    ShortPad,
    /// Garbage collection reclaims a deleted file at its first pass, without waiting out the
    /// grace period (GFS §4.4).
    GcIgnoresGrace,
    /// The primary never asks the master to extend its lease, so a chunk under steady load gets a
    /// new lease, and a new version, every lease period (GFS §3.1: extensions ride on heartbeats).
    NoLeaseExtension,
    /// Clients keep cached chunk locations forever (GFS §2.7.1: the cache entry's timeout bounds
    /// how long a client may read a stale replica).
    CacheNeverExpires,
    /// The master looks up every path as a user's, so a deleted file cannot be read under its
    /// hidden name (GFS §4.4: it can, until it is reclaimed).
    HiddenUnreadable,
    /// Re-replication counts a chunk with its goal of replicas as short, so it is copied again and
    /// the extra replica trimmed, over and over (GFS §4.3: copy when below the goal).
    CopiesAtGoal,
}

pub const ALL_BUGS: [Bug; 19] = [
    Bug::AckBeforeSecondaries,
    Bug::ArrivalOrder,
    Bug::NoVersionBump,
    Bug::EarlyLease,
    Bug::StaleReplicasCurrent,
    Bug::NoChecksumVerify,
    Bug::UnsyncedLog,
    Bug::CloneFromStale,
    Bug::AppendNoPad,
    Bug::GcDeletesReferenced,
    Bug::NoGraceAfterRestart,
    Bug::PrimaryIgnoresExpiry,
    Bug::ListShowsHidden,
    Bug::ShortPad,
    Bug::GcIgnoresGrace,
    Bug::NoLeaseExtension,
    Bug::CacheNeverExpires,
    Bug::HiddenUnreadable,
    Bug::CopiesAtGoal,
];

impl Bug {
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeSecondaries => "ack_before_secondaries",
            Bug::ArrivalOrder => "arrival_order",
            Bug::NoVersionBump => "no_version_bump",
            Bug::EarlyLease => "early_lease",
            Bug::StaleReplicasCurrent => "stale_replicas_current",
            Bug::NoChecksumVerify => "no_checksum_verify",
            Bug::UnsyncedLog => "unsynced_log",
            Bug::CloneFromStale => "clone_from_stale",
            Bug::AppendNoPad => "append_no_pad",
            Bug::GcDeletesReferenced => "gc_deletes_referenced",
            Bug::NoGraceAfterRestart => "no_grace_after_restart",
            Bug::PrimaryIgnoresExpiry => "primary_ignores_expiry",
            Bug::ListShowsHidden => "list_shows_hidden",
            Bug::ShortPad => "short_pad",
            Bug::GcIgnoresGrace => "gc_ignores_grace",
            Bug::NoLeaseExtension => "no_lease_extension",
            Bug::CacheNeverExpires => "cache_never_expires",
            Bug::HiddenUnreadable => "hidden_unreadable",
            Bug::CopiesAtGoal => "copies_at_goal",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().replace('-', "_");
        ALL_BUGS.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<_> = ALL_BUGS.iter().map(|b| b.name()).collect();
            format!("unknown bug {s:?}; known bugs: {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in ALL_BUGS {
            assert_eq!(b.name().parse::<Bug>(), Ok(b));
        }
        assert!("off-by-one"
            .parse::<Bug>()
            .unwrap_err()
            .contains("known bugs"));
    }
}
