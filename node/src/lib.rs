//! The Google File System protocol (Ghemawat, Gobioff, Leung, SOSP 2003), written against madsim.
//!
//! A GFS cluster is one master, many chunkservers and many clients (GFS §2.3). Files are split into
//! fixed-size chunks; each chunk is stored as a plain file on several chunkservers. The master holds
//! only metadata (namespace, file -> chunks, chunk -> version and replica locations) and hands out
//! leases; file data never flows through it. Clients ask the master where chunks live, then talk to
//! chunkservers directly.
//!
//! The crate is split the same way:
//! - [`master`]: the metadata server. Its state is a plain struct ([`master::MasterState`]) whose
//!   methods take time and random choices as arguments, so it is unit-tested without a simulator;
//!   [`master::run`] is the async madsim shell that logs, sends and sleeps around it.
//! - [`chunkserver`]: stores chunks with per-block checksums, buffers pushed data, applies
//!   mutations in the primary's serial order.
//! - [`client`]: the client library (`create`, `delete`, `list`, `read`, `write`, `append`).
//! - [`disk`]: the project's own disk model over `madsim::fs`, with a page cache that a crash loses.
//! - [`msg`]: every RPC message; [`types`] the identifiers and errors they carry.
//! - [`trace`]: protocol events (lease granted, version bumped, ...) collected per simulation run.
//!
//! Every build is a simulation build (`--cfg madsim`, set in `.cargo/config.toml`): time,
//! randomness, network and disk all come from madsim, so a seed fixes the whole run.

// Every build is a simulation build (`.cargo/config.toml` sets `--cfg madsim`). An environment
// RUSTFLAGS replaces that setting instead of adding to it, and madsim then builds for real
// networks and clocks: say so, rather than leave a page of unrelated type errors. (rustdoc reads
// the crate without the build's flags, to document it or collect its doctests: not for it.)
#[cfg(not(any(madsim, doc, doctest)))]
compile_error!(
    "built without `--cfg madsim`: a RUSTFLAGS environment variable replaces .cargo/config.toml's \
     flags; add `--cfg madsim` to it (RUSTFLAGS=\"--cfg madsim ...\") or unset it"
);

pub mod bugs;
pub mod chunkserver;
pub mod client;
pub mod config;
pub mod coverage;
pub mod disk;
pub mod master;
pub mod msg;
pub mod points;
pub mod rpc;
pub mod sparse;
pub mod trace;
pub mod types;

pub use bugs::Bug;
pub use config::ClusterConfig;
pub use types::{ChunkHandle, ErrorClass, GfsError, ServerId};

/// Simulated time since the start of the run, in nanoseconds. Every node shares madsim's single
/// clock, which is what makes lease expiry comparable across nodes (see `master::state`).
pub fn now_ns() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_nanos() as u64
}

/// Simulated time since the start of the run, in milliseconds.
pub fn now_ms() -> u64 {
    now_ns() / 1_000_000
}
