//! The deterministic simulation harness for the GFS nodes in the `node` crate.
//!
//! One run = one seed. [`run::run_seed`] builds a madsim runtime from the seed, starts a master,
//! the chunkservers and the clients as simulated nodes, plays a seeded random workload
//! ([`workload`]) while recording every invocation and completion ([`history`]), then reads every
//! file back through a fresh client and every replica directly, and hands it all to the named
//! checks in [`checks`]. [`sweep`] runs many seeds on several threads and lists every failure
//! with the one command that reproduces it.
//!
//! Everything a run depends on is its seed and its [`options::RunOptions`]: the same pair gives
//! the same run, byte for byte.

pub mod checks;
pub mod diagram;
pub mod explore;
pub mod failure;
pub mod faults;
pub mod history;
pub mod latency;
pub mod nemesis;
pub mod options;
pub mod records;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod sweep;
pub mod trace;
pub mod workload;
