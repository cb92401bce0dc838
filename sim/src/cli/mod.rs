//! The `sim` command's subcommands that live in files of their own (main.rs holds the older
//! ones; each moves here as it changes).

pub mod coverage;
pub mod explore;
