//! The leader's view of its replicas: the ISR, each follower's log end
//! offset and catch-up time, the high watermark that follows from them, and
//! the ISR changes to propose. Plain data and rules, no I/O or clock, so the
//! rules are tested without sockets.
//!
//! ISR changes go through the controller (AlterPartition) and take effect
//! only when committed; at most one proposal is in flight per partition.
//! While one is, the high watermark is computed over the *maximal* ISR, the
//! committed ISR plus any member the proposal adds (Kafka's rule, KIP-497):
//! an expansion may already count the newcomer, and a shrink does not stop
//! counting the removed member until the controller committed it. Either way
//! the high watermark never runs ahead of a replica that the committed or
//! proposed ISR could still elect.

use std::collections::BTreeMap;

use fjord_types::{BrokerId, LeaderEpoch, Offset};

/// What the leader knows about one follower (Kafka's `Replica` state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerState {
    /// Its log end offset as its latest fetch reported; `None` until it
    /// fetched from this leader (then it counts as 0 for the high watermark).
    pub leo: Option<Offset>,
    /// The last time it was known to have caught up with the leader's log
    /// end (Kafka's `lastCaughtUpTimeMs`).
    pub last_caught_up_ms: i64,
    /// Time and leader log end of its previous fetch.
    pub last_fetch_ms: i64,
    pub last_fetch_leader_leo: Offset,
    /// Its log start offset as its latest fetch reported; `None` until it
    /// fetched from this leader. DeleteRecords' low watermark waits on it.
    pub log_start_offset: Option<Offset>,
}

impl FollowerState {
    /// A follower as a new leader first sees it: those in the ISR count as
    /// caught up now (so they are not shrunk at once), others never were.
    pub fn new(in_sync: bool, now_ms: i64) -> Self {
        FollowerState {
            leo: None,
            last_caught_up_ms: if in_sync { now_ms } else { 0 },
            last_fetch_ms: 0,
            last_fetch_leader_leo: -1,
            log_start_offset: None,
        }
    }

    /// A fetch at `fetch_offset`, when the leader's log ends at `leader_leo`.
    /// Kafka's rule: a fetch reaching the current log end means caught up now;
    /// one reaching the log end of the previous fetch means caught up as of
    /// that previous fetch.
    pub fn on_fetch(&mut self, fetch_offset: Offset, now_ms: i64, leader_leo: Offset) {
        if fetch_offset >= leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_leo {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.leo = Some(fetch_offset);
        self.last_fetch_ms = now_ms;
        self.last_fetch_leader_leo = leader_leo;
    }

    /// Kafka's `isCaughtUp`: at the leader's log end, or caught up within
    /// `replica.lag.time.max.ms`.
    pub fn is_caught_up(&self, leader_leo: Offset, now_ms: i64, lag_max_ms: i64) -> bool {
        self.leo == Some(leader_leo) || now_ms.saturating_sub(self.last_caught_up_ms) <= lag_max_ms
    }
}

/// An AlterPartition the leader wants the controller to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the proposal is based on (compare-and-set).
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
}

/// What a partition leader tracks about its replica set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderState {
    /// This broker (the leader).
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch of the committed state below.
    pub partition_epoch: i32,
    /// The in-sync replicas, the leader included, as the controller last committed them.
    pub isr: Vec<BrokerId>,
    /// Every replica except the leader.
    pub followers: BTreeMap<BrokerId, FollowerState>,
    /// Never moves backwards while this broker leads.
    pub high_watermark: Offset,
    /// Where this leader epoch starts in the log (the log end when this
    /// broker became leader): a follower below it cannot join the ISR yet.
    pub epoch_start_offset: Offset,
    /// The ISR change in flight, if any.
    pub pending: Option<IsrProposal>,
}

/// The committed state of a partition, as the metadata image has it.
#[derive(Clone, Debug)]
pub struct Committed<'a> {
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub replicas: &'a [BrokerId],
    pub isr: &'a [BrokerId],
}

impl LeaderState {
    pub fn new(
        leader: BrokerId,
        committed: Committed<'_>,
        high_watermark: Offset,
        epoch_start_offset: Offset,
        now_ms: i64,
    ) -> Self {
        let followers = committed
            .replicas
            .iter()
            .filter(|id| **id != leader)
            .map(|id| (*id, FollowerState::new(committed.isr.contains(id), now_ms)))
            .collect();
        LeaderState {
            leader,
            leader_epoch: committed.leader_epoch,
            partition_epoch: committed.partition_epoch,
            isr: committed.isr.to_vec(),
            followers,
            high_watermark,
            epoch_start_offset,
            pending: None,
        }
    }

    /// A newer committed state while this broker keeps leading: adopt its
    /// ISR and epochs, keep what is known about followers that remain
    /// replicas. A proposal based on an older partition epoch is settled
    /// (committed or overtaken) and no longer pending. Returns whether the
    /// leader epoch changed (the caller records the new epoch in the log).
    pub fn update_committed(
        &mut self,
        committed: Committed<'_>,
        log_end_offset: Offset,
        now_ms: i64,
    ) -> bool {
        let new_epoch = committed.leader_epoch != self.leader_epoch;
        if new_epoch {
            self.epoch_start_offset = log_end_offset;
        }
        self.leader_epoch = committed.leader_epoch;
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.partition_epoch != committed.partition_epoch || new_epoch)
        {
            self.pending = None;
        }
        self.partition_epoch = committed.partition_epoch;
        self.isr = committed.isr.to_vec();
        self.followers
            .retain(|id, _| committed.replicas.contains(id));
        for id in committed.replicas {
            if *id != self.leader {
                self.followers
                    .entry(*id)
                    .or_insert_with(|| FollowerState::new(committed.isr.contains(id), now_ms));
            }
        }
        new_epoch
    }

    /// Whether acks=all may be accepted: the committed ISR is at least `min.insync.replicas`.
    /// ISR followers whose last fetch is more than `silent_ms` old: they stopped
    /// fetching (dead, paused or cut off). One that has not fetched from this leader yet
    /// is not judged.
    pub fn silent_isr_followers(&self, now_ms: i64, silent_ms: i64) -> Vec<BrokerId> {
        self.followers
            .iter()
            .filter(|(id, f)| {
                self.isr.contains(id)
                    && f.last_fetch_ms > 0
                    && now_ms.saturating_sub(f.last_fetch_ms) > silent_ms
            })
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn has_min_isr(&self, min_insync_replicas: usize) -> bool {
        self.isr.len() >= min_insync_replicas
    }

    /// The committed ISR plus members a pending proposal adds.
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.isr.clone();
        if let Some(pending) = &self.pending {
            for id in &pending.new_isr {
                if !isr.contains(id) {
                    isr.push(*id);
                }
            }
        }
        isr
    }

    /// Recompute the high watermark after the leader's log end offset moved
    /// to `leader_leo` or a follower reported: the minimum LEO over the
    /// maximal ISR. It only moves forward, and not at all while the
    /// committed ISR is below `min.insync.replicas`.
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
            .maximal_isr()
            .iter()
            .map(|id| {
                if *id == self.leader {
                    leader_leo
                } else {
                    self.followers
                        .get(id)
                        .and_then(|f| f.leo)
                        .unwrap_or(0)
                        .min(leader_leo)
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

    /// Record a follower's fetch. `false` if `replica` is not a follower of
    /// this partition (the caller refuses the fetch).
    pub fn on_follower_fetch(
        &mut self,
        replica: BrokerId,
        fetch_offset: Offset,
        now_ms: i64,
        leader_leo: Offset,
    ) -> bool {
        match self.followers.get_mut(&replica) {
            Some(f) => {
                f.on_fetch(fetch_offset, now_ms, leader_leo);
                true
            }
            None => false,
        }
    }

    /// Record the log start offset a follower's fetch reported.
    pub fn on_follower_log_start(&mut self, replica: BrokerId, log_start_offset: Offset) {
        if let Some(f) = self.followers.get_mut(&replica) {
            f.log_start_offset = Some(log_start_offset);
        }
    }

    /// DeleteRecords' low watermark: the smallest log start offset over the
    /// committed ISR, the leader's (`leader_log_start`) included. A member
    /// that has not reported yet counts as -1, so a deletion waits for it.
    ///
    /// Kafka's `lowWatermarkIfLeader` takes every replica on a live broker;
    /// the ISR is what this leader knows to be alive and fetching (a replica
    /// outside it catches up through an out-of-range reset to the leader's
    /// log start anyway).
    pub fn low_watermark(&self, leader_log_start: Offset) -> Offset {
        self.isr
            .iter()
            .filter(|id| **id != self.leader)
            .map(|id| {
                self.followers
                    .get(id)
                    .and_then(|f| f.log_start_offset)
                    .unwrap_or(-1)
            })
            .fold(leader_log_start, Offset::min)
    }

    /// Kafka's `isFollowerInSync` for expansion: a follower outside the ISR
    /// joins once its log reaches the high watermark and the start of this
    /// leader's epoch (so it holds everything this leader may have committed).
    pub fn expansion(&self, replica: BrokerId) -> Option<IsrProposal> {
        if self.pending.is_some() || self.isr.contains(&replica) {
            return None;
        }
        let leo = self.followers.get(&replica)?.leo?;
        if leo < self.high_watermark || leo < self.epoch_start_offset {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(replica);
        Some(self.proposal(new_isr))
    }

    /// Followers in the ISR that have not caught up within `lag_max_ms`
    /// leave it (Kafka's `getOutOfSyncReplicas`). The leader always stays.
    pub fn shrink(&self, leader_leo: Offset, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let new_isr: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|id| {
                *id == self.leader
                    || self
                        .followers
                        .get(id)
                        .is_some_and(|f| f.is_caught_up(leader_leo, now_ms, lag_max_ms))
            })
            .collect();
        (new_isr.len() < self.isr.len()).then(|| self.proposal(new_isr))
    }

    fn proposal(&self, new_isr: Vec<BrokerId>) -> IsrProposal {
        IsrProposal {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(isr: &[BrokerId], replicas: &[BrokerId], hw: Offset) -> LeaderState {
        LeaderState::new(
            1,
            Committed {
                leader_epoch: 3,
                partition_epoch: 7,
                replicas,
                isr,
            },
            hw,
            0,
            0,
        )
    }

    #[test]
    fn silent_isr_followers_are_those_that_stopped_fetching() {
        let mut s = state(&[1, 2, 3], &[1, 2, 3, 4], 0);
        // Nobody fetched yet: nobody is judged.
        assert!(s.silent_isr_followers(10_000, 1000).is_empty());
        for id in [2, 3, 4] {
            s.followers.get_mut(&id).expect("follower").last_fetch_ms = 5_000;
        }
        s.followers.get_mut(&3).expect("follower").last_fetch_ms = 9_500;
        // 2 is silent for 5 s; 3 fetched 0.5 s ago; 4 is not in the ISR.
        assert_eq!(s.silent_isr_followers(10_000, 1000), vec![2]);
        assert!(s.silent_isr_followers(5_900, 1000).is_empty());
    }

    #[test]
    fn high_watermark_is_min_leo_over_the_maximal_isr() {
        struct Case {
            isr: Vec<BrokerId>,
            followers: Vec<(BrokerId, Offset)>,
            pending_isr: Option<Vec<BrokerId>>,
            leader_leo: Offset,
            min_isr: usize,
            start_hw: Offset,
            want: Option<Offset>,
        }
        let case = |isr: &[BrokerId], followers: &[(BrokerId, Offset)]| Case {
            isr: isr.to_vec(),
            followers: followers.to_vec(),
            pending_isr: None,
            leader_leo: 10,
            min_isr: 1,
            start_hw: 0,
            want: None,
        };
        let cases = [
            // Alone in the ISR: the HW follows the leader.
            Case {
                want: Some(10),
                ..case(&[1], &[])
            },
            // A lagging follower in the ISR holds it back.
            Case {
                want: Some(4),
                ..case(&[1, 2], &[(2, 4)])
            },
            // A follower outside the ISR does not.
            Case {
                want: Some(10),
                ..case(&[1], &[(2, 4)])
            },
            Case {
                want: Some(4),
                ..case(&[1, 2, 3], &[(2, 4), (3, 6)])
            },
            // A follower that has not fetched yet counts as 0.
            Case {
                want: None,
                ..case(&[1, 2, 3], &[])
            },
            // Never backwards.
            Case {
                start_hw: 5,
                want: None,
                ..case(&[1, 2], &[(2, 3)])
            },
            // Not while the ISR is below min.insync.replicas.
            Case {
                min_isr: 2,
                want: None,
                ..case(&[1], &[])
            },
            // A pending expansion already counts the newcomer...
            Case {
                pending_isr: Some(vec![1, 2]),
                want: Some(6),
                ..case(&[1], &[(2, 6)])
            },
            // ...and a pending shrink still counts the leaving member.
            Case {
                pending_isr: Some(vec![1]),
                want: Some(2),
                ..case(&[1, 2], &[(2, 2)])
            },
            // A follower ahead of the leader (impossible, but) counts as the leader's end.
            Case {
                want: Some(10),
                ..case(&[1, 2], &[(2, 12)])
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let mut state = state(&c.isr, &[1, 2, 3], c.start_hw);
            for (id, leo) in c.followers {
                state.on_follower_fetch(id, leo, 1, c.leader_leo);
            }
            state.pending = c.pending_isr.map(|new_isr| IsrProposal {
                leader_epoch: 3,
                partition_epoch: 7,
                new_isr,
            });
            assert_eq!(
                state.maybe_advance_hw(c.leader_leo, c.min_isr),
                c.want,
                "case {i}"
            );
        }
    }

    #[test]
    fn caught_up_time_follows_kafka() {
        // (fetch offset, now, leader leo) -> last caught up after the fetch.
        let mut f = FollowerState::new(false, 0);
        let steps = [
            // Behind on its first fetch: never caught up.
            (0, 100, 10, 0),
            // Reaches the log end of the previous fetch: caught up as of then.
            (10, 200, 20, 100),
            // Reaches the current log end: caught up now.
            (20, 300, 20, 300),
            // Falls behind: unchanged.
            (20, 400, 50, 300),
            (30, 500, 60, 300),
            // Never backwards.
            (60, 450, 60, 450),
        ];
        for (i, (offset, now, leo, want)) in steps.into_iter().enumerate() {
            f.on_fetch(offset, now, leo);
            assert_eq!(f.last_caught_up_ms, want, "step {i}");
        }
    }

    #[test]
    fn isr_expansion_needs_the_high_watermark_and_the_epoch_start() {
        struct Case {
            isr: Vec<BrokerId>,
            hw: Offset,
            epoch_start: Offset,
            follower_leo: Option<Offset>,
            pending: bool,
            want: Option<Vec<BrokerId>>,
        }
        let case = |follower_leo, hw, epoch_start| Case {
            isr: vec![1],
            hw,
            epoch_start,
            follower_leo,
            pending: false,
            want: None,
        };
        let cases = [
            Case {
                want: Some(vec![1, 2]),
                ..case(Some(10), 10, 5)
            },
            // Below the high watermark.
            case(Some(9), 10, 5),
            // At the high watermark but before this leader's epoch start.
            case(Some(10), 10, 12),
            Case {
                want: Some(vec![1, 2]),
                ..case(Some(12), 10, 12)
            },
            // Never fetched.
            case(None, 0, 0),
            // Already in the ISR.
            Case {
                isr: vec![1, 2],
                ..case(Some(10), 10, 0)
            },
            // One change in flight at a time.
            Case {
                pending: true,
                ..case(Some(10), 10, 0)
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let mut s = state(&c.isr, &[1, 2], c.hw);
            s.epoch_start_offset = c.epoch_start;
            if let Some(leo) = c.follower_leo {
                s.on_follower_fetch(2, leo, 1, 20);
            }
            if c.pending {
                s.pending = Some(s.proposal(vec![1]));
            }
            let got = s.expansion(2);
            assert_eq!(got.as_ref().map(|p| p.new_isr.clone()), c.want, "case {i}");
            if let Some(p) = got {
                assert_eq!((p.leader_epoch, p.partition_epoch), (3, 7), "case {i}");
            }
        }
    }

    #[test]
    fn isr_shrink_removes_followers_not_caught_up_within_the_lag() {
        const LAG: i64 = 30_000;
        struct Case {
            // (follower, last fetch offset, time of that fetch); leader leo 100 throughout.
            fetches: Vec<(BrokerId, Offset, i64)>,
            now: i64,
            want: Option<Vec<BrokerId>>,
        }
        let cases = [
            // Everyone fetched at the log end recently.
            Case {
                fetches: vec![(2, 100, 1_000), (3, 100, 1_000)],
                now: 20_000,
                want: None,
            },
            // At the log end (idle partition) long ago: still caught up.
            Case {
                fetches: vec![(2, 100, 1_000), (3, 100, 1_000)],
                now: 100_000,
                want: None,
            },
            // Follower 3 behind and not caught up for more than the lag.
            Case {
                fetches: vec![(2, 100, 40_000), (3, 50, 40_000)],
                now: 40_001,
                want: Some(vec![1, 2]),
            },
            // Behind but within the lag (ISR followers count as caught up
            // when the leader took over, at 0).
            Case {
                fetches: vec![(2, 100, 1_000), (3, 50, 1_000)],
                now: LAG,
                want: None,
            },
            // Never fetched since this leader took over, past the lag: both go.
            Case {
                fetches: vec![],
                now: LAG + 1,
                want: Some(vec![1]),
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let mut s = state(&[1, 2, 3], &[1, 2, 3], 50);
            for (id, offset, at) in c.fetches {
                s.on_follower_fetch(id, offset, at, 100);
            }
            let got = s.shrink(100, c.now, LAG).map(|p| p.new_isr);
            assert_eq!(got, c.want, "case {i}");
        }
    }

    #[test]
    fn committed_updates_settle_the_pending_proposal() {
        let mut s = state(&[1], &[1, 2], 10);
        s.on_follower_fetch(2, 10, 5, 10);
        let p = s.expansion(2).expect("expand");
        s.pending = Some(p);
        // A committed state with the same partition epoch (another image) keeps it.
        let same = Committed {
            leader_epoch: 3,
            partition_epoch: 7,
            replicas: &[1, 2],
            isr: &[1],
        };
        assert!(!s.update_committed(same, 20, 6));
        assert!(s.pending.is_some());
        // The committed expansion clears it and keeps the follower's state.
        let next = Committed {
            leader_epoch: 3,
            partition_epoch: 8,
            replicas: &[1, 2],
            isr: &[1, 2],
        };
        assert!(!s.update_committed(next, 20, 7));
        assert!(s.pending.is_none());
        assert_eq!(s.isr, vec![1, 2]);
        assert_eq!(s.followers[&2].leo, Some(10));
        // A new leader epoch moves the epoch start to the log end.
        let bumped = Committed {
            leader_epoch: 4,
            partition_epoch: 9,
            replicas: &[1, 2, 3],
            isr: &[1, 2],
        };
        assert!(s.update_committed(bumped, 25, 8));
        assert_eq!(s.epoch_start_offset, 25);
        assert_eq!(s.followers[&3].leo, None);
    }

    #[test]
    fn low_watermark_is_the_min_log_start_over_the_isr() {
        // ISR {1, 2}; 3 is a replica outside it.
        let mut s = state(&[1, 2], &[1, 2, 3], 0);
        // Follower 2 has not reported: the deletion must wait for it.
        assert_eq!(s.low_watermark(50), -1);
        s.on_follower_log_start(2, 20);
        assert_eq!(s.low_watermark(50), 20);
        s.on_follower_log_start(2, 50);
        assert_eq!(s.low_watermark(50), 50);
        // A replica outside the ISR does not hold it back.
        s.on_follower_log_start(3, 0);
        assert_eq!(s.low_watermark(50), 50);
        // The leader's own log start bounds it.
        s.on_follower_log_start(2, 70);
        assert_eq!(s.low_watermark(60), 60);
        // Unknown replicas are ignored.
        s.on_follower_log_start(9, 0);
        assert_eq!(s.low_watermark(60), 60);
    }
}
