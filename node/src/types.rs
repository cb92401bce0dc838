//! Identifiers, addresses and errors shared by every node.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// A chunk's globally unique, immutable handle, assigned by the master at creation (GFS §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkHandle(pub u64);

impl fmt::Display for ChunkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// A chunkserver's identity: its index in the cluster, stable across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerId(pub u32);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cs{}", self.0)
    }
}

/// Identifies one namespace request of one client, the same across its retries, so the master
/// executes it at most once (a retried delete must not delete a file re-created meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub client: u32,
    pub seq: u64,
}

/// Identifies data pushed to chunkservers ahead of the mutation that uses it (GFS §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DataId {
    pub client: u32,
    pub seq: u64,
}

impl fmt::Display for DataId {
    /// `client3#17`: the pushing client and its number there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client{}#{}", self.client, self.seq)
    }
}

/// A node as traces name it: the master, a chunkserver, a client, or one of the harness's own
/// nodes (the checker that reads everything back, the nemesis that injects faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeName {
    Master,
    Cs(ServerId),
    Client(u32),
    Checker,
    Nemesis,
    /// An address that names none of the above.
    Addr(std::net::IpAddr),
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeName::Master => f.write_str("master"),
            NodeName::Cs(s) => write!(f, "{s}"),
            NodeName::Client(i) => write!(f, "client{i}"),
            NodeName::Checker => f.write_str("checker"),
            NodeName::Nemesis => f.write_str("nemesis"),
            NodeName::Addr(ip) => write!(f, "{ip}"),
        }
    }
}

/// Where each node listens. The simulated network is flat; addresses only name nodes.
pub mod addr {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    pub const PORT: u16 = 7000;

    pub fn master_ip() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
    }
    pub fn master() -> SocketAddr {
        SocketAddr::new(master_ip(), PORT)
    }
    /// Node `index` of a group on the `10.<group>.0.0/16` network: 250 hosts per third octet,
    /// 64 000 in all (no host ends in .0 or above .250).
    fn numbered(group: u8, index: u32) -> IpAddr {
        assert!(
            index < MAX_NUMBERED,
            "node index {index} out of the address plan"
        );
        let (hi, lo) = (index / 250, 1 + index % 250);
        IpAddr::V4(Ipv4Addr::new(10, group, hi as u8, lo as u8))
    }

    /// How many chunkservers, and how many clients, the address plan has room for.
    pub const MAX_NUMBERED: u32 = 256 * 250;

    /// Chunkservers live on 10.1.0.0/16.
    pub fn chunkserver_ip(id: ServerId) -> IpAddr {
        numbered(1, id.0)
    }
    pub fn chunkserver(id: ServerId) -> SocketAddr {
        SocketAddr::new(chunkserver_ip(id), PORT)
    }
    /// Clients live on 10.2.0.0/16.
    pub fn client_ip(index: u32) -> IpAddr {
        numbered(2, index)
    }

    /// The node an address belongs to, inverting the functions above (`master`, `cs2`,
    /// `client7`); any other address is named by itself.
    pub fn node_name(ip: IpAddr) -> NodeName {
        match ip {
            IpAddr::V4(v4) => match v4.octets() {
                [10, 0, 0, 1] => NodeName::Master,
                [10, group @ (1 | 2), hi, lo @ 1..=250] => {
                    let index = hi as u32 * 250 + lo as u32 - 1;
                    if group == 1 {
                        NodeName::Cs(ServerId(index))
                    } else {
                        NodeName::Client(index)
                    }
                }
                _ => NodeName::Addr(ip),
            },
            IpAddr::V6(_) => NodeName::Addr(ip),
        }
    }
}

/// Every error a GFS operation can return, to a client or between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GfsError {
    /// The path does not name a file.
    NotFound(String),
    /// `create` on a path that already names a file.
    AlreadyExists(String),
    /// A path that is not absolute, has empty or relative components, or is too long.
    InvalidPath(String),
    /// A read or write whose offset or length is out of range.
    InvalidRange(String),
    /// A record append larger than a quarter of a chunk (GFS §3.3).
    RecordTooLarge { len_bytes: u64, max_bytes: u64 },
    /// The chunk has no chunk with that index (reads past the end of a file).
    NoSuchChunk,
    /// The record does not fit in the rest of the chunk: the primary padded it; retry on the next
    /// chunk (GFS §3.3).
    ChunkFull,
    /// The replica's version differs from the one the request was made for (GFS §4.5).
    StaleVersion { have: u64, want: u64 },
    /// The chunkserver holds no valid lease for the chunk.
    NotPrimary,
    /// Pushed data is not (or no longer) in the chunkserver's buffer.
    DataNotFound,
    /// A stored block failed its checksum (GFS §5.2).
    ChecksumMismatch(ChunkHandle),
    /// A secondary did not apply the mutation; the region may now be inconsistent (GFS §3.1 step 7).
    SecondaryFailed(String),
    /// The chunkserver does not hold this chunk.
    NoSuchReplica(ChunkHandle),
    /// The master cannot serve this now (recovering, no live replica, no server to place on).
    Unavailable(String),
    /// An RPC timed out or could not be sent.
    Network(String),
    /// A disk operation failed.
    Io(String),
    /// A retry found the effect of an earlier attempt whose answer was lost (a `create` retried
    /// after a timeout finds the file): the operation may or may not have been done by this call.
    Ambiguous(String),
    /// The client gave up after its bounded number of attempts; carries the last error.
    RetriesExhausted { attempts: u32, last: Box<GfsError> },
}

/// What an error says about the system: the one classification that the client's retries and
/// the harness's checks both use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// A correct, final answer about the request itself: no such file, already exists, a bad path
    /// or range, a record too large, no chunk at that index. Retrying cannot change it, and the
    /// system did nothing wrong by giving it.
    Refusal,
    /// This attempt could not be served (the network, a stale or missing replica, no lease, a
    /// checksum, a busy master): another attempt, with fresh locations, may succeed.
    Transient,
    /// The client gave up (retries exhausted) or cannot tell whether the operation took effect
    /// (ambiguous): final, and the operation failed.
    GaveUp,
}

impl GfsError {
    /// The error's class (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            GfsError::NotFound(_)
            | GfsError::AlreadyExists(_)
            | GfsError::InvalidPath(_)
            | GfsError::InvalidRange(_)
            | GfsError::RecordTooLarge { .. }
            | GfsError::NoSuchChunk => ErrorClass::Refusal,
            GfsError::RetriesExhausted { .. } | GfsError::Ambiguous(_) => ErrorClass::GaveUp,
            GfsError::ChunkFull
            | GfsError::StaleVersion { .. }
            | GfsError::NotPrimary
            | GfsError::DataNotFound
            | GfsError::ChecksumMismatch(_)
            | GfsError::SecondaryFailed(_)
            | GfsError::NoSuchReplica(_)
            | GfsError::Unavailable(_)
            | GfsError::Network(_)
            | GfsError::Io(_) => ErrorClass::Transient,
        }
    }

    /// Errors worth retrying with fresh locations; the rest are final answers.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// Whether an operation that ended in this error failed, as opposed to being correctly refused.
    /// A failed operation may or may not have taken effect, in part or whole.
    pub fn is_failure(&self) -> bool {
        self.class() != ErrorClass::Refusal
    }

    /// A short stable name, used in summaries and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            GfsError::NotFound(_) => "not_found",
            GfsError::AlreadyExists(_) => "already_exists",
            GfsError::InvalidPath(_) => "invalid_path",
            GfsError::InvalidRange(_) => "invalid_range",
            GfsError::RecordTooLarge { .. } => "record_too_large",
            GfsError::NoSuchChunk => "no_such_chunk",
            GfsError::ChunkFull => "chunk_full",
            GfsError::StaleVersion { .. } => "stale_version",
            GfsError::NotPrimary => "not_primary",
            GfsError::DataNotFound => "data_not_found",
            GfsError::ChecksumMismatch(_) => "checksum_mismatch",
            GfsError::SecondaryFailed(_) => "secondary_failed",
            GfsError::NoSuchReplica(_) => "no_such_replica",
            GfsError::Unavailable(_) => "unavailable",
            GfsError::Network(_) => "network",
            GfsError::Io(_) => "io",
            GfsError::Ambiguous(_) => "ambiguous",
            GfsError::RetriesExhausted { .. } => "retries_exhausted",
        }
    }
}

impl fmt::Display for GfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GfsError::NotFound(p) => write!(f, "no such file: {p}"),
            GfsError::AlreadyExists(p) => write!(f, "file already exists: {p}"),
            GfsError::InvalidPath(why) => write!(f, "invalid path: {why}"),
            GfsError::InvalidRange(why) => write!(f, "invalid range: {why}"),
            GfsError::RecordTooLarge { len_bytes, max_bytes } => write!(
                f,
                "record of {len_bytes} bytes is larger than the limit of {max_bytes} (a quarter of a chunk)"
            ),
            GfsError::NoSuchChunk => write!(f, "no chunk at that index"),
            GfsError::ChunkFull => write!(f, "chunk full: retry on the next chunk"),
            GfsError::StaleVersion { have, want } => {
                write!(f, "stale replica: has version {have}, request wants {want}")
            }
            GfsError::NotPrimary => write!(f, "not the primary (no valid lease)"),
            GfsError::DataNotFound => write!(f, "pushed data not in buffer"),
            GfsError::ChecksumMismatch(h) => write!(f, "checksum mismatch in chunk {h}"),
            GfsError::SecondaryFailed(why) => write!(f, "secondary failed: {why}"),
            GfsError::NoSuchReplica(h) => write!(f, "chunkserver has no replica of {h}"),
            GfsError::Unavailable(why) => write!(f, "unavailable: {why}"),
            GfsError::Network(why) => write!(f, "network: {why}"),
            GfsError::Io(why) => write!(f, "disk: {why}"),
            GfsError::Ambiguous(why) => write!(f, "outcome unknown: {why}"),
            GfsError::RetriesExhausted { attempts, last } => {
                write!(f, "gave up after {attempts} attempts: {last}")
            }
        }
    }
}

impl std::error::Error for GfsError {}

/// Longest path the namespace accepts, in bytes.
pub const MAX_PATH_BYTES: usize = 256;

/// Checks a path: absolute, `/`-separated, no empty, `.` or `..` components, no NUL, bounded length.
/// GFS §4.1 uses full pathnames as keys of a lookup table; this keeps those keys canonical.
pub fn validate_path(path: &str) -> Result<(), GfsError> {
    let bad = |why: &str| Err(GfsError::InvalidPath(format!("{path:?}: {why}")));
    if path.len() > MAX_PATH_BYTES {
        return bad("longer than 256 bytes");
    }
    let Some(rest) = path.strip_prefix('/') else {
        return bad("must start with '/'");
    };
    if rest.is_empty() {
        return bad("the root is not a file");
    }
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    for part in rest.split('/') {
        match part {
            "" => return bad("has an empty component"),
            "." | ".." => return bad("has a '.' or '..' component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        validate_path("/a").unwrap();
        validate_path("/dir/file.txt").unwrap();
        for bad in ["", "/", "a", "/a/", "//a", "/a/../b", "/./a", "/a\0b"] {
            assert!(validate_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_path(&format!("/{}", "x".repeat(300))).is_err());
    }

    #[test]
    fn every_error_has_one_class() {
        use ErrorClass::*;
        let cases = [
            (GfsError::NotFound("/a".into()), Refusal),
            (GfsError::AlreadyExists("/a".into()), Refusal),
            (GfsError::InvalidPath("x".into()), Refusal),
            (GfsError::InvalidRange("x".into()), Refusal),
            (
                GfsError::RecordTooLarge {
                    len_bytes: 9,
                    max_bytes: 8,
                },
                Refusal,
            ),
            (GfsError::NoSuchChunk, Refusal),
            (GfsError::ChunkFull, Transient),
            (GfsError::StaleVersion { have: 1, want: 2 }, Transient),
            (GfsError::NotPrimary, Transient),
            (GfsError::DataNotFound, Transient),
            (GfsError::ChecksumMismatch(ChunkHandle(1)), Transient),
            (GfsError::SecondaryFailed("cs1".into()), Transient),
            (GfsError::NoSuchReplica(ChunkHandle(1)), Transient),
            (GfsError::Unavailable("x".into()), Transient),
            (GfsError::Network("x".into()), Transient),
            (GfsError::Io("x".into()), Transient),
            (GfsError::Ambiguous("x".into()), GaveUp),
            (
                GfsError::RetriesExhausted {
                    attempts: 6,
                    last: Box::new(GfsError::NotPrimary),
                },
                GaveUp,
            ),
        ];
        for (e, class) in cases {
            assert_eq!(e.class(), class, "{e:?}");
            assert_eq!(e.is_retryable(), class == Transient, "{e:?}");
            assert_eq!(e.is_failure(), class != Refusal, "{e:?}");
        }
    }

    #[test]
    fn node_names_invert_addresses() {
        let name = |ip| addr::node_name(ip).to_string();
        assert_eq!(name(addr::master_ip()), "master");
        assert_eq!(name(addr::chunkserver_ip(ServerId(4))), "cs4");
        for i in [0, 7, 249, 250, 499, 1_000, 63_999] {
            assert_eq!(name(addr::client_ip(i)), format!("client{i}"));
            assert_eq!(name(addr::chunkserver_ip(ServerId(i))), format!("cs{i}"));
        }
        assert_eq!(name("10.9.9.9".parse().unwrap()), "10.9.9.9");
    }
}
