//! The eight states of a transactional id and which transitions Kafka
//! allows (`TransactionState` in Kafka's transaction coordinator).

use std::fmt;

/// A transactional id's state. The discriminant is the id Kafka writes as
/// `TransactionStatus` in `__transaction_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    /// No transaction open (a producer id and epoch are assigned).
    Empty = 0,
    /// A transaction is open; partitions have been added to it.
    Ongoing = 1,
    /// EndTxn(commit) is durable; markers are being written.
    PrepareCommit = 2,
    /// EndTxn(abort), a timeout or a fence is durable; markers are being written.
    PrepareAbort = 3,
    /// Every COMMIT marker is written.
    CompleteCommit = 4,
    /// Every ABORT marker is written.
    CompleteAbort = 5,
    /// The transactional id expired; its tombstone is being written.
    Dead = 6,
    /// A new producer fences an Ongoing transaction: its abort is being
    /// prepared with a bumped epoch. Never persisted (Kafka writes the
    /// PrepareAbort that follows it).
    PrepareEpochFence = 7,
}

impl TransactionState {
    /// Every state, in id order.
    pub const ALL: [TransactionState; 8] = [
        TransactionState::Empty,
        TransactionState::Ongoing,
        TransactionState::PrepareCommit,
        TransactionState::PrepareAbort,
        TransactionState::CompleteCommit,
        TransactionState::CompleteAbort,
        TransactionState::Dead,
        TransactionState::PrepareEpochFence,
    ];

    /// The id written as `TransactionStatus`.
    pub fn id(self) -> i8 {
        self as i8
    }

    /// The state of a `TransactionStatus` id.
    pub fn from_id(id: i8) -> Option<TransactionState> {
        usize::try_from(id)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// Kafka's name of the state, as DescribeTransactions and
    /// ListTransactions show it and as ListTransactions filters by.
    pub fn as_str(self) -> &'static str {
        use TransactionState::*;
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name` (Kafka's names, case-sensitive).
    pub fn from_name(name: &str) -> Option<TransactionState> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether `self` may be entered from `from` (Kafka's valid previous
    /// states).
    pub fn can_transition_from(self, from: TransactionState) -> bool {
        use TransactionState::*;
        match self {
            Empty => matches!(from, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(from, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => matches!(from, Ongoing),
            PrepareAbort => matches!(from, Ongoing | PrepareEpochFence),
            CompleteCommit => matches!(from, PrepareCommit),
            CompleteAbort => matches!(from, PrepareAbort),
            Dead => matches!(from, Empty | CompleteCommit | CompleteAbort),
            PrepareEpochFence => matches!(from, Ongoing),
        }
    }

    /// PrepareCommit or PrepareAbort: markers are outstanding.
    pub fn is_prepare(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }

    /// Empty, CompleteCommit or CompleteAbort: no transaction open, a new
    /// one may start, the id may expire.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TransactionState::Empty
                | TransactionState::CompleteCommit
                | TransactionState::CompleteAbort
        )
    }
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::TransactionState::{self, *};

    #[test]
    fn transitions_follow_kafka() {
        // (to, every allowed from); every other pair is refused.
        let allowed: [(TransactionState, &[TransactionState]); 8] = [
            (Empty, &[Empty, CompleteCommit, CompleteAbort]),
            (Ongoing, &[Ongoing, Empty, CompleteCommit, CompleteAbort]),
            (PrepareCommit, &[Ongoing]),
            (PrepareAbort, &[Ongoing, PrepareEpochFence]),
            (CompleteCommit, &[PrepareCommit]),
            (CompleteAbort, &[PrepareAbort]),
            (Dead, &[Empty, CompleteCommit, CompleteAbort]),
            (PrepareEpochFence, &[Ongoing]),
        ];
        for (to, froms) in allowed {
            for from in TransactionState::ALL {
                assert_eq!(
                    to.can_transition_from(from),
                    froms.contains(&from),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn ids_and_names_round_trip() {
        for (i, s) in TransactionState::ALL.into_iter().enumerate() {
            assert_eq!(s.id() as usize, i);
            assert_eq!(TransactionState::from_id(s.id()), Some(s));
            assert_eq!(TransactionState::from_name(s.as_str()), Some(s));
        }
        assert_eq!(TransactionState::from_id(8), None);
        assert_eq!(TransactionState::from_id(-1), None);
        assert_eq!(TransactionState::from_name("ongoing"), None);
    }
}
