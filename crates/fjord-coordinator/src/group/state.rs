//! The five states of a classic group and which transitions Kafka allows.

use std::fmt;

/// A classic group's state (Kafka's `GroupState`/`ClassicGroupState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; offsets may remain (and expire).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Join phase done; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment handed out; members heartbeat.
    Stable,
    /// Being deleted.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state, as DescribeGroups and ListGroups show it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Whether `self` may be entered from `from` (Kafka's valid previous states).
    pub fn can_transition_from(self, from: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => matches!(from, PreparingRebalance),
            PreparingRebalance => matches!(from, Stable | CompletingRebalance | Empty),
            CompletingRebalance => matches!(from, PreparingRebalance),
            Stable => matches!(from, CompletingRebalance),
            Dead => true,
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::GroupState::*;

    #[test]
    fn transitions_follow_kafka() {
        let cases = [
            (Empty, PreparingRebalance, true),
            (PreparingRebalance, CompletingRebalance, true),
            (PreparingRebalance, Empty, true),
            (CompletingRebalance, Stable, true),
            (Stable, PreparingRebalance, true),
            (CompletingRebalance, PreparingRebalance, true),
            (Empty, Dead, true),
            (Empty, Stable, false),
            (Empty, CompletingRebalance, false),
            (Stable, CompletingRebalance, false),
            (PreparingRebalance, Stable, false),
            (Stable, Empty, false),
        ];
        for (from, to, ok) in cases {
            assert_eq!(to.can_transition_from(from), ok, "{from} -> {to}");
        }
    }
}
