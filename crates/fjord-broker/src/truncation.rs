//! Log divergence between a leader and a follower (KIP-101, KIP-279,
//! KIP-320), as plain rules over leader-epoch lookups.
//!
//! A follower fetches with the epoch of its last batch. The leader looks up
//! where that epoch ends in its own log; if its log has that epoch ending
//! before the fetch offset, or does not have the epoch at all, the follower's
//! tail diverges and the leader answers with the epoch and end offset it has
//! instead of records. The follower truncates to where its history and the
//! leader's provably agree and fetches again; when the leader's answer names
//! an epoch the follower lacks, the follower truncates to its own end of the
//! largest epoch below and the next fetch asks again (iterative truncation).

use fjord_types::{LeaderEpoch, Offset};

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: LeaderEpoch = -1;
pub const UNDEFINED_OFFSET: Offset = -1;

/// An epoch and the offset where it ends (the wire's `EpochEndOffset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: LeaderEpoch,
    pub end_offset: Offset,
}

/// The leader's divergence check for a fetch at `fetch_offset` whose last
/// batch had `last_fetched_epoch` (-1: empty log, no check).
/// `leader_end_for_epoch` is the leader log's `end_offset_for_epoch(last_fetched_epoch)`.
pub fn diverging_epoch(
    leader_end_for_epoch: Option<(LeaderEpoch, Offset)>,
    last_fetched_epoch: LeaderEpoch,
    fetch_offset: Offset,
) -> Option<EpochEndOffset> {
    if last_fetched_epoch < 0 {
        return None;
    }
    match leader_end_for_epoch {
        // The leader knows nothing at or below that epoch.
        None => Some(EpochEndOffset {
            epoch: UNDEFINED_EPOCH,
            end_offset: UNDEFINED_OFFSET,
        }),
        Some((epoch, end_offset)) if epoch < last_fetched_epoch || end_offset < fetch_offset => {
            Some(EpochEndOffset { epoch, end_offset })
        }
        Some(_) => None,
    }
}

/// Where the follower truncates to after the leader answered `diverging`.
/// `follower_end_for` is the follower log's `end_offset_for_epoch`.
/// Kafka's `getOffsetTruncationState`.
pub fn truncation_offset(
    diverging: EpochEndOffset,
    follower_end_for: impl Fn(LeaderEpoch) -> Option<(LeaderEpoch, Offset)>,
    follower_leo: Offset,
    follower_hw: Offset,
) -> Offset {
    if diverging.end_offset == UNDEFINED_OFFSET {
        // The leader has no epoch information to compare: fall back to the
        // high watermark, below which the follower's log is committed.
        return follower_hw.min(follower_leo);
    }
    if diverging.epoch == UNDEFINED_EPOCH {
        return diverging.end_offset.min(follower_leo);
    }
    match follower_end_for(diverging.epoch) {
        // The follower has the leader's epoch: both logs agree up to the
        // smaller of the two ends of it.
        Some((epoch, end)) if epoch == diverging.epoch => diverging.end_offset.min(end),
        // The follower lacks that epoch: cut to the end of its largest epoch
        // below it; the next fetch checks again from there.
        Some((_, end)) => end.min(follower_leo),
        None => diverging.end_offset.min(follower_leo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_log::LeaderEpochCache;

    /// A log reduced to what divergence needs: its epoch cache and end.
    #[derive(Clone, Debug)]
    struct Model {
        epochs: LeaderEpochCache,
        leo: Offset,
        hw: Offset,
    }

    impl Model {
        /// `batches`: (epoch, number of offsets), appended from offset 0.
        fn new(batches: &[(LeaderEpoch, Offset)], hw: Offset) -> Self {
            let mut epochs = LeaderEpochCache::default();
            let mut leo = 0;
            for &(epoch, n) in batches {
                epochs.assign(epoch, leo);
                leo += n;
            }
            Model { epochs, leo, hw }
        }

        fn end_for(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
            self.epochs.end_offset_for(epoch, self.leo)
        }

        fn truncate(&mut self, offset: Offset) {
            self.leo = self.leo.min(offset);
            self.hw = self.hw.min(self.leo);
            self.epochs.truncate_from_end(self.leo);
        }
    }

    /// Run fetches until the leader stops answering with a divergence;
    /// returns the follower's end offset and how many truncations it took.
    /// As the fetcher does, after an UNDEFINED answer (truncated to the
    /// high watermark) the next fetch skips the epoch check.
    fn converge(leader: &Model, follower: &mut Model) -> (Offset, usize) {
        let mut skip_check = false;
        for round in 0..10 {
            let last_epoch = match skip_check {
                true => UNDEFINED_EPOCH,
                false => follower.epochs.latest_epoch().unwrap_or(UNDEFINED_EPOCH),
            };
            let answer = diverging_epoch(leader.end_for(last_epoch), last_epoch, follower.leo);
            match answer {
                None => return (follower.leo, round),
                Some(d) => {
                    let to =
                        truncation_offset(d, |e| follower.end_for(e), follower.leo, follower.hw);
                    follower.truncate(to);
                    skip_check = d.end_offset == UNDEFINED_OFFSET;
                }
            }
        }
        panic!("truncation did not converge");
    }

    #[test]
    fn leader_answers_divergence_per_kip_320() {
        let leader = Model::new(&[(1, 10), (3, 10)], 20);
        let check = |last_epoch, fetch_offset| {
            diverging_epoch(leader.end_for(last_epoch), last_epoch, fetch_offset)
        };
        // Empty follower log: nothing to check.
        assert_eq!(check(-1, 0), None);
        // Consistent with the leader.
        assert_eq!(check(1, 10), None);
        assert_eq!(check(3, 15), None);
        assert_eq!(check(3, 20), None);
        // Epoch 1 ended at 10 on the leader; the follower has it up to 12.
        assert_eq!(
            check(1, 12),
            Some(EpochEndOffset {
                epoch: 1,
                end_offset: 10
            })
        );
        // An epoch the leader never had (2): its floor is epoch 1, ending at 10.
        assert_eq!(
            check(2, 11),
            Some(EpochEndOffset {
                epoch: 1,
                end_offset: 10
            })
        );
        // An epoch newer than any the leader knows.
        assert_eq!(
            check(4, 21),
            Some(EpochEndOffset {
                epoch: UNDEFINED_EPOCH,
                end_offset: UNDEFINED_OFFSET
            })
        );
    }

    #[test]
    fn followers_truncate_to_the_common_prefix() {
        struct Case {
            name: &'static str,
            leader: Vec<(LeaderEpoch, Offset)>,
            follower: Vec<(LeaderEpoch, Offset)>,
            follower_hw: Offset,
            want_leo: Offset,
            want_rounds: usize,
        }
        // The one case where the follower keeps an epoch the leader lacks:
        // the leader cannot tell, and the high watermark is all there is.
        let no_history = "leader lacks epoch history";
        let cases = [
            Case {
                name: "in sync",
                leader: vec![(1, 10), (2, 5)],
                follower: vec![(1, 10), (2, 3)],
                follower_hw: 10,
                want_leo: 13,
                want_rounds: 0,
            },
            Case {
                // KIP-101 scenario 1: the old leader (epoch 1) wrote offsets
                // 10..12 that never replicated; the new leader (epoch 2)
                // started at 10. The follower drops its uncommitted tail
                // even though its high watermark would have kept it.
                name: "extra uncommitted tail from an old epoch",
                leader: vec![(1, 10), (2, 4)],
                follower: vec![(1, 12)],
                follower_hw: 12,
                want_leo: 10,
                want_rounds: 1,
            },
            Case {
                // KIP-101 scenario 2: both wrote different records at the
                // same offsets in different epochs.
                name: "divergent epoch",
                leader: vec![(1, 5), (3, 5)],
                follower: vec![(1, 5), (2, 5)],
                follower_hw: 5,
                want_leo: 5,
                want_rounds: 1,
            },
            Case {
                // The leader answers with an epoch (2) the follower lacks: it
                // cuts to the end of its epoch below (1) and asks again.
                name: "iterative truncation",
                leader: vec![(0, 5), (2, 5), (4, 2)],
                follower: vec![(0, 3), (1, 3), (3, 3)],
                follower_hw: 3,
                want_leo: 3,
                want_rounds: 2,
            },
            Case {
                name: "follower shorter in the shared epoch",
                leader: vec![(1, 5), (2, 10)],
                follower: vec![(1, 5), (2, 4)],
                follower_hw: 5,
                want_leo: 9,
                want_rounds: 0,
            },
            Case {
                // The follower's epoch is newer than anything the leader has
                // (possible only after unclean election): fall back to its HW.
                name: no_history,
                leader: vec![(1, 5)],
                follower: vec![(1, 5), (2, 3)],
                follower_hw: 6,
                want_leo: 6,
                want_rounds: 1,
            },
            Case {
                name: "empty follower",
                leader: vec![(1, 5)],
                follower: vec![],
                follower_hw: 0,
                want_leo: 0,
                want_rounds: 0,
            },
            Case {
                // The shared epoch ends earlier on the leader (it was cut when
                // the leader truncated as a follower before its election).
                name: "shared epoch ends earlier on the leader",
                leader: vec![(1, 7), (4, 3)],
                follower: vec![(1, 9)],
                follower_hw: 6,
                want_leo: 7,
                want_rounds: 1,
            },
        ];
        for c in cases {
            let leader = Model::new(&c.leader, 0);
            let mut follower = Model::new(&c.follower, c.follower_hw);
            let (leo, rounds) = converge(&leader, &mut follower);
            assert_eq!(leo, c.want_leo, "{}: end offset", c.name);
            assert_eq!(rounds, c.want_rounds, "{}: rounds", c.name);
            // After converging, the follower's epochs are a prefix of the leader's.
            if c.name == no_history {
                continue;
            }
            for &(epoch, start) in follower.epochs.entries() {
                assert!(
                    leader.epochs.entries().contains(&(epoch, start)),
                    "{}: follower epoch ({epoch}, {start}) not in the leader's history",
                    c.name
                );
            }
        }
    }
}
