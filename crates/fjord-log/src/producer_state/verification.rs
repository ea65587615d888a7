//! Transaction verification guards (KIP-890 part 1, Kafka's
//! `VerificationStateEntry`): before a producer's first transactional batch
//! may open a transaction on this partition, the leader asks the
//! transaction coordinator whether the partition is in the producer's
//! ongoing transaction. The guard taken when the question is asked ties the
//! answer to the partition's state at that moment: a marker of the producer
//! (its transaction ended meanwhile) or the transaction starting removes
//! it, so an append carrying a stale answer is refused — a late retry
//! after an abort can no longer open a transaction that never ends.

use std::collections::HashMap;

/// Proof that the append of a producer's first transactional batch was
/// verified with the coordinator, valid until that producer's next marker
/// or transaction start on the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationGuard(u64);

/// The guards of the producers whose verification is under way.
#[derive(Debug, Default)]
pub(crate) struct Verifications {
    guards: HashMap<i64, VerificationGuard>,
    next: u64,
}

impl Verifications {
    /// The producer's guard, a new one unless a verification is already
    /// under way (concurrent requests of one producer share it, as Kafka's).
    pub(crate) fn start(&mut self, producer_id: i64) -> VerificationGuard {
        let next = &mut self.next;
        *self.guards.entry(producer_id).or_insert_with(|| {
            *next += 1;
            VerificationGuard(*next)
        })
    }

    pub(crate) fn get(&self, producer_id: i64) -> Option<VerificationGuard> {
        self.guards.get(&producer_id).copied()
    }

    /// The producer's transaction started or ended here: its guard is spent.
    pub(crate) fn clear(&mut self, producer_id: i64) {
        self.guards.remove(&producer_id);
    }
}
