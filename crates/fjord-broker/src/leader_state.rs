//! The leader's view of its replicas: the ISR and each follower's log end
//! offset, and the high watermark that follows from them. Plain data and
//! rules, no I/O, so the rules are tested without sockets.

use std::collections::BTreeMap;

use fjord_types::{BrokerId, Offset};

/// What a partition leader tracks about its replica set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderState {
    /// This broker (the leader).
    pub leader: BrokerId,
    /// The in-sync replicas, the leader included, as the controller last committed them.
    pub isr: Vec<BrokerId>,
    /// Follower log end offsets, as their fetches report them.
    pub follower_leo: BTreeMap<BrokerId, Offset>,
    /// Never moves backwards while this broker leads.
    pub high_watermark: Offset,
}

impl LeaderState {
    pub fn new(leader: BrokerId, isr: Vec<BrokerId>, high_watermark: Offset) -> Self {
        LeaderState {
            leader,
            isr,
            follower_leo: BTreeMap::new(),
            high_watermark,
        }
    }

    /// Whether acks=all may be accepted: the ISR is at least `min.insync.replicas`.
    pub fn has_min_isr(&self, min_insync_replicas: usize) -> bool {
        self.isr.len() >= min_insync_replicas
    }

    /// Recompute the high watermark after the leader's log end offset moved
    /// to `leader_leo`: the minimum LEO over the ISR. It only moves forward, and
    /// not at all while the ISR is below `min.insync.replicas`.
    /// Returns the new high watermark when it advanced.
    pub fn maybe_advance_hw(
        &mut self,
        leader_leo: Offset,
        min_insync_replicas: usize,
    ) -> Option<Offset> {
        if !self.has_min_isr(min_insync_replicas) {
            return None;
        }
        let candidate = self
            .isr
            .iter()
            .map(|id| {
                if *id == self.leader {
                    leader_leo
                } else {
                    self.follower_leo.get(id).copied().unwrap_or(0)
                }
            })
            .min()
            .unwrap_or(leader_leo);
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            Some(candidate)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_watermark_is_min_leo_over_isr() {
        struct Case {
            isr: Vec<BrokerId>,
            followers: Vec<(BrokerId, Offset)>,
            leader_leo: Offset,
            min_isr: usize,
            start_hw: Offset,
            want: Option<Offset>,
        }
        let cases = [
            // Alone in the ISR: the HW follows the leader.
            Case {
                isr: vec![1],
                followers: vec![],
                leader_leo: 10,
                min_isr: 1,
                start_hw: 0,
                want: Some(10),
            },
            // A lagging follower in the ISR holds it back.
            Case {
                isr: vec![1, 2],
                followers: vec![(2, 4)],
                leader_leo: 10,
                min_isr: 1,
                start_hw: 0,
                want: Some(4),
            },
            // A follower outside the ISR does not.
            Case {
                isr: vec![1],
                followers: vec![(2, 4)],
                leader_leo: 10,
                min_isr: 1,
                start_hw: 0,
                want: Some(10),
            },
            // Never backwards.
            Case {
                isr: vec![1, 2],
                followers: vec![(2, 3)],
                leader_leo: 10,
                min_isr: 1,
                start_hw: 5,
                want: None,
            },
            // Not while the ISR is below min.insync.replicas.
            Case {
                isr: vec![1],
                followers: vec![],
                leader_leo: 10,
                min_isr: 2,
                start_hw: 0,
                want: None,
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let mut state = LeaderState::new(1, c.isr, c.start_hw);
            state.follower_leo.extend(c.followers);
            assert_eq!(
                state.maybe_advance_hw(c.leader_leo, c.min_isr),
                c.want,
                "case {i}"
            );
        }
    }
}
