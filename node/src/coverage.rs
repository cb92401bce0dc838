//! Coverage probes: counters on the protocol's defensive paths.
//!
//! A check can only judge code that runs. The refusals, adoptions and bounds below exist for
//! situations a plain run seldom makes (a serial that overtakes another, a read at an old version,
//! a full push buffer); a mistake in one of them is invisible to every check until a run reaches
//! it. Each such place calls [`hit`] with its [`Probe`], and the harness reads the counts of each
//! run ([`install`], [`take`]) into its counters, so a sweep says how often each path ran, and
//! which never did.
//!
//! Counts live in a thread-local table, like the trace sink: a run owns its thread, and counting
//! changes nothing the run does.

use std::cell::RefCell;

macro_rules! probes {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal;)*) => {
        /// One defensive path of the protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Probe {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Probe {
            /// Every probe, in declaration order.
            pub const ALL: &'static [Probe] = &[$(Probe::$variant),*];

            /// The probe's name in counters and reports.
            pub fn name(self) -> &'static str {
                match self {
                    $(Probe::$variant => $name,)*
                }
            }
        }
    };
}

probes! {
    /// A secondary held a mutation that arrived before an earlier serial (GFS §3.1 step 5).
    SerialHeld = "secondary held a mutation for an earlier serial";
    /// A secondary refused a mutation that arrived after a later serial was applied.
    SerialRefused = "secondary refused an out-of-order serial";
    /// A secondary refused a mutation because too many already wait (the request window bound).
    SerialWindowFull = "secondary's window of held mutations full";
    /// A secondary refused a mutation sent at another version than its replica's (GFS §4.5).
    MutationStaleVersion = "secondary refused a mutation at another version";
    /// A primary refused a mutation because its lease had run out (GFS §3.1).
    LeaseExpiredRefusal = "primary refused a mutation after its lease ran out";
    /// A chunkserver refused a read for a version newer than its replica's (GFS §4.5).
    ReadStaleVersion = "chunkserver refused a read at a newer version";
    /// The master adopted a version a chunkserver reported above its own (GFS §4.5).
    VersionAdopted = "master adopted a higher reported version";
    /// The push buffer evicted its oldest data to stay within its bounds (GFS §3.2).
    PushBufferEvicted = "push buffer evicted its oldest data";
    /// A mutation named pushed data the chunkserver no longer (or never) had.
    PushedDataMissing = "mutation found its pushed data missing";
    /// A record append moved on past a full chunk (GFS §3.3).
    AppendHopped = "append moved past a full chunk";
    /// A record append attempt ran out of chunk hops.
    AppendHopsExhausted = "append ran out of chunk hops";
    /// The master had more chunks to copy than its concurrent-clone bound allowed (GFS §4.3).
    CloneLimitReached = "master's concurrent clone bound reached";
    /// A server dropped a request that arrived after its caller's deadline ([`crate::rpc`]).
    RequestExpired = "server dropped a request past its deadline";
}

/// Probes no fault of this testbed can reach in a correct cluster: last lines of defence against
/// state a node lost after it was synced. The master logs a version before any replica hears of it
/// (`MasterState::grant_lease`), so a replica can report a version above the master's only if the
/// master's disk lost a synced record; and a client learns a version only from the master, after
/// every replica it lists has synced it, so a replica can be below it only if that replica's disk
/// lost the version it synced. A secondary refuses a forwarded mutation at another version only if
/// it lost a synced version too: every secondary a lease lists synced the lease's version before
/// the grant (`settle_grant`), the master issues the next version only once the lease is over, and
/// a forward's deadline is the lease's expiry, so no secondary serves it later (before forwards
/// expired with their lease, a primary paused past its lease reached this path). Disks here lose
/// only unsynced writes (and tear or rot blocks, which checksums catch). Sweeps name these apart
/// from the paths a run should reach.
pub const LOST_STATE_ONLY: &[Probe] = &[
    Probe::MutationStaleVersion,
    Probe::ReadStaleVersion,
    Probe::VersionAdopted,
];

impl Probe {
    /// The probe named `name` ([`Probe::name`]).
    pub fn by_name(name: &str) -> Option<Probe> {
        Probe::ALL.iter().copied().find(|p| p.name() == name)
    }
}

thread_local! {
    static HITS: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
}

/// Starts counting on this thread, from zero.
pub fn install() {
    HITS.with(|h| *h.borrow_mut() = Some(vec![0; Probe::ALL.len()]));
}

/// Stops counting and returns each probe's count (every probe, zeros included).
pub fn take() -> Vec<(Probe, u64)> {
    let hits = HITS
        .with(|h| h.borrow_mut().take())
        .unwrap_or_else(|| vec![0; Probe::ALL.len()]);
    Probe::ALL.iter().copied().zip(hits).collect()
}

/// Counts one pass through `probe`'s path (nothing if no counting is installed).
pub fn hit(probe: Probe) {
    HITS.with(|h| {
        if let Some(hits) = h.borrow_mut().as_mut() {
            hits[probe as usize] += 1;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_installation_and_only_while_installed() {
        hit(Probe::SerialHeld); // nothing installed: not counted anywhere
        install();
        hit(Probe::SerialHeld);
        hit(Probe::SerialHeld);
        hit(Probe::VersionAdopted);
        let got = take();
        assert_eq!(got.len(), Probe::ALL.len());
        assert!(got.contains(&(Probe::SerialHeld, 2)));
        assert!(got.contains(&(Probe::VersionAdopted, 1)));
        assert!(got.contains(&(Probe::SerialRefused, 0)));
        // Taken: a new installation starts from zero.
        install();
        assert!(take().iter().all(|&(_, n)| n == 0));
        let names: std::collections::BTreeSet<_> = Probe::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Probe::ALL.len(), "probe names are unique");
    }
}
