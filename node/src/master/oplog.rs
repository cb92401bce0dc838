//! The master's operation log and checkpoints on its disk (GFS §2.6.3).
//!
//! The log is JSON Lines, one `{"lsn":N,"rec":{...}}` per line, appended and synced before the
//! master answers the request that caused it. Every `checkpoint_every_records` records the master
//! writes its whole persistent state to `checkpoint.tmp`, syncs it, renames it over `checkpoint`
//! and starts an empty log. A crash between the rename and the new log leaves records the
//! checkpoint already holds; replay skips them by sequence number.
//!
//! Recovery = load the checkpoint (if any) + apply every later record. A last line without its
//! newline is a write torn by a crash before its sync: nobody was answered about it, so it is
//! dropped. Anything else that does not parse is corruption and recovery refuses to go on.

use super::state::{Checkpoint, LogRecord, MasterState};
use crate::disk::Disk;
use serde::{Deserialize, Serialize};
use std::io::{self, ErrorKind};

pub const LOG: &str = "oplog";
pub const CHECKPOINT: &str = "checkpoint";
const CHECKPOINT_TMP: &str = "checkpoint.tmp";

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    lsn: u64,
    rec: LogRecord,
}

/// Encodes records numbered from `first_lsn` as log lines.
pub fn encode(first_lsn: u64, recs: &[LogRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, rec) in recs.iter().enumerate() {
        let entry = Entry {
            lsn: first_lsn + i as u64,
            rec: rec.clone(),
        };
        serde_json::to_writer(&mut out, &entry).expect("log record serializes");
        out.push(b'\n');
    }
    out
}

/// Rebuilds the master's persistent state from a checkpoint and a log.
pub fn replay(checkpoint: Option<&[u8]>, log: &[u8]) -> Result<MasterState, String> {
    let mut state = match checkpoint {
        Some(bytes) => {
            let cp: Checkpoint =
                serde_json::from_slice(bytes).map_err(|e| format!("corrupt checkpoint: {e}"))?;
            MasterState::from_checkpoint(&cp)
        }
        None => MasterState::new(),
    };
    let mut rest = log;
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            break; // torn final write: never synced, never acknowledged
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|e| format!("corrupt log record after lsn {}: {e}", state.lsn()))?;
        if entry.lsn <= state.lsn() {
            continue; // already folded into the checkpoint
        }
        if entry.lsn != state.lsn() + 1 {
            return Err(format!(
                "log jumps from lsn {} to {}",
                state.lsn(),
                entry.lsn
            ));
        }
        state.apply(&entry.rec);
    }
    state.check_invariants();
    Ok(state)
}

/// The log on the master's disk.
pub struct OpLog {
    disk: Disk,
    log_bytes: u64,
    records_since_checkpoint: u64,
    checkpoint_every_records: u64,
    /// Sync before returning from `append` (always, but for the `unsynced_log` bug).
    sync: bool,
}

impl OpLog {
    /// Loads checkpoint and log from `disk` and returns the recovered state.
    pub async fn recover(
        disk: Disk,
        checkpoint_every_records: u64,
    ) -> io::Result<(OpLog, MasterState)> {
        let checkpoint = if disk.exists(CHECKPOINT).await {
            Some(disk.read_all(CHECKPOINT).await?)
        } else {
            None
        };
        let log = if disk.exists(LOG).await {
            disk.read_all(LOG).await?
        } else {
            Vec::new()
        };
        let state = replay(checkpoint.as_deref(), &log)
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        // Drop a torn tail so the next append starts on a line boundary.
        let valid = log.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
        if valid < log.len() as u64 {
            disk.set_len(LOG, valid).await?;
            disk.sync(LOG).await?;
        }
        let oplog = OpLog {
            disk,
            log_bytes: valid,
            records_since_checkpoint: log.iter().filter(|&&b| b == b'\n').count() as u64,
            checkpoint_every_records,
            sync: true,
        };
        Ok((oplog, state))
    }

    /// Whether `append` syncs (GFS §2.6.3 requires it; off only for the `unsynced_log` bug).
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Appends the records that `state` just applied (its last `recs.len()`) and syncs them.
    pub async fn append(&mut self, state: &MasterState, recs: &[LogRecord]) -> io::Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let first = state.lsn() + 1 - recs.len() as u64;
        let bytes = encode(first, recs);
        self.disk.write(LOG, self.log_bytes, &bytes).await?;
        if self.sync {
            self.disk.sync(LOG).await?;
        }
        self.log_bytes += bytes.len() as u64;
        self.records_since_checkpoint += recs.len() as u64;
        Ok(())
    }

    /// Writes a checkpoint and starts a new log when the log has grown long enough.
    pub async fn maybe_checkpoint(&mut self, state: &MasterState) -> io::Result<bool> {
        if self.records_since_checkpoint < self.checkpoint_every_records {
            return Ok(false);
        }
        state.check_invariants();
        let bytes = serde_json::to_vec(&state.checkpoint()).expect("checkpoint serializes");
        if self.disk.exists(CHECKPOINT_TMP).await {
            self.disk.remove(CHECKPOINT_TMP).await?;
        }
        self.disk.write(CHECKPOINT_TMP, 0, &bytes).await?;
        self.disk.sync(CHECKPOINT_TMP).await?;
        self.disk.rename(CHECKPOINT_TMP, CHECKPOINT).await?;
        if self.disk.exists(LOG).await {
            self.disk.remove(LOG).await?;
        }
        self.log_bytes = 0;
        self.records_since_checkpoint = 0;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ChunkHandle;

    fn sample() -> Vec<LogRecord> {
        let handle = ChunkHandle(0);
        vec![
            LogRecord::CreateFile {
                path: "/a".into(),
                request: None,
            },
            LogRecord::AddChunk {
                path: "/a".into(),
                index: 0,
                handle,
            },
            LogRecord::SetVersion {
                handle,
                version: 1,
                excluded: vec![],
            },
            LogRecord::CreateFile {
                path: "/b".into(),
                request: None,
            },
            LogRecord::DeleteFile {
                path: "/b".into(),
                hidden: "/.deleted/5/b".into(),
                deleted_ns: 7,
                request: None,
            },
        ]
    }

    #[test]
    fn torn_tail_is_dropped_and_checkpointed_records_skipped() {
        let recs = sample();
        let log = encode(1, &recs);
        let full = replay(None, &log).unwrap();
        assert_eq!(full.lsn(), 5);
        // Tear the last line: replay stops before it.
        let torn = replay(None, &log[..log.len() - 3]).unwrap();
        assert_eq!(torn.lsn(), 4);
        assert!(torn.exists("/b"));
        // A checkpoint after 3 records plus the whole log (crash before the log was reset).
        let mut three = MasterState::new();
        recs[..3].iter().for_each(|r| three.apply(r));
        let cp = serde_json::to_vec(&three.checkpoint()).unwrap();
        let again = replay(Some(&cp), &log).unwrap();
        assert!(again.persistent_eq(&full));
    }

    #[test]
    fn corruption_and_gaps_are_refused() {
        let log = encode(1, &sample());
        let mut bad = log.clone();
        bad[5] = b'#';
        assert!(replay(None, &bad)
            .unwrap_err()
            .contains("corrupt log record"));
        let gap = encode(3, &sample()[..1]);
        assert!(replay(None, &gap).unwrap_err().contains("jumps"));
    }
}
