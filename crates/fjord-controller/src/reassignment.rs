//! Partition reassignment (Kafka's AlterPartitionReassignments, KIP-455), as
//! pure code over the image.
//!
//! A reassignment runs in three steps, each one a change of the partition's
//! registration:
//! 1. **Start**: the replica list becomes target ∪ original (target order
//!    first), `adding_replicas` = target − original, `removing_replicas` =
//!    original − target. The ISR is untouched; the brokers being added see
//!    themselves in `replicas`, open the log and start fetching.
//! 2. **Complete**: as soon as the ISR holds every target replica (the
//!    leader's AlterPartition that adds the last one, or at once when it
//!    already does), replicas = target, ISR = ISR ∩ target, and a leader
//!    outside the target hands over to the first live target replica in the
//!    ISR. The brokers removed no longer find themselves in `replicas` and
//!    delete their copy.
//! 3. **Cancel** (instead of completing): back to the original replicas
//!    (current − adding), ISR ∩ those, a new leader when the old one was an
//!    added replica.
//!
//! A new target for a partition already being reassigned replaces the old
//! one: it is computed from the original replicas, as if the first had been
//! cancelled. Every change bumps the partition epoch; a leader change bumps
//! the leader epoch too.

use std::collections::BTreeSet;

use fjord_types::BrokerId;
use fjord_types::NO_BROKER;
use fjord_types::TopicId;

use crate::command::MetadataResponse;
use crate::command::ReassignmentError;
use crate::command::ReassignmentResult;
use crate::command::ReplicaAssignmentError;
use crate::election::choose_leader;
use crate::election::set_leader;
use crate::image::MetadataImage;
use crate::image::PartitionRegistration;

impl MetadataImage {
    /// Apply every partition's reassignment (or cancellation) independently.
    pub(crate) fn alter_partition_reassignments(
        &mut self,
        reassignments: &[(TopicId, i32, Option<Vec<BrokerId>>)],
    ) -> MetadataResponse {
        let live = self.live_set();
        let results = reassignments
            .iter()
            .map(|(topic_id, partition, target)| ReassignmentResult {
                topic_id: *topic_id,
                partition: *partition,
                outcome: self.reassign_one(*topic_id, *partition, target.as_deref(), &live),
            })
            .collect();
        MetadataResponse::PartitionReassignmentsAltered { results }
    }

    fn reassign_one(
        &mut self,
        topic_id: TopicId,
        partition: i32,
        target: Option<&[BrokerId]>,
        live: &[BrokerId],
    ) -> Result<i32, ReassignmentError> {
        if let Some(target) = target {
            self.validate_target(target)
                .map_err(|reason| ReassignmentError::InvalidReplicaAssignment { reason })?;
        }
        let current = self
            .partition(topic_id, partition)
            .ok_or(ReassignmentError::UnknownTopicOrPartition)?;
        if target.is_none() && !current.is_reassigning() {
            return Err(ReassignmentError::NoReassignmentInProgress);
        }
        let p = self
            .partition_mut(topic_id, partition)
            .ok_or(ReassignmentError::UnknownTopicOrPartition)?;
        match target {
            Some(target) => {
                start(p, target, live);
                Ok(p.partition_epoch)
            }
            None if p.is_reassigning() => {
                cancel(p, live);
                Ok(p.partition_epoch)
            }
            None => Err(ReassignmentError::NoReassignmentInProgress),
        }
    }

    /// Kafka's INVALID_REPLICA_ASSIGNMENT rules for a target: non-empty,
    /// no broker twice, every broker registered.
    fn validate_target(&self, target: &[BrokerId]) -> Result<(), ReplicaAssignmentError> {
        if target.is_empty() {
            return Err(ReplicaAssignmentError::Empty);
        }
        let mut seen = BTreeSet::new();
        for &broker_id in target {
            if !seen.insert(broker_id) {
                return Err(ReplicaAssignmentError::DuplicateReplica { broker_id });
            }
            if !self.brokers.contains_key(&broker_id) {
                return Err(ReplicaAssignmentError::UnknownBroker { broker_id });
            }
        }
        Ok(())
    }
}

/// The replicas a partition had before its reassignment started.
fn original_replicas(p: &PartitionRegistration) -> Vec<BrokerId> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect()
}

/// The replicas a reassignment in progress moves to.
fn target_replicas(p: &PartitionRegistration) -> Vec<BrokerId> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.removing_replicas.contains(r))
        .collect()
}

fn start(p: &mut PartitionRegistration, target: &[BrokerId], live: &[BrokerId]) {
    let original = original_replicas(p);
    let mut replicas = target.to_vec();
    replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
    p.adding_replicas = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    p.removing_replicas = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    set_replicas(p, replicas, live);
    p.partition_epoch += 1;
    // Nothing to wait for when every target replica is already in sync
    // (a reorder, or only removals).
    complete_if_caught_up(p, live);
}

fn cancel(p: &mut PartitionRegistration, live: &[BrokerId]) {
    let original = original_replicas(p);
    p.adding_replicas.clear();
    p.removing_replicas.clear();
    set_replicas(p, original, live);
    p.partition_epoch += 1;
}

/// Finish the partition's reassignment if its ISR now holds every target
/// replica. Called after every ISR change (AlterPartition) and when a
/// reassignment starts.
pub(crate) fn complete_if_caught_up(p: &mut PartitionRegistration, live: &[BrokerId]) {
    if !p.is_reassigning() {
        return;
    }
    let target = target_replicas(p);
    if !target.iter().all(|r| p.isr.contains(r)) {
        return;
    }
    p.adding_replicas.clear();
    p.removing_replicas.clear();
    set_replicas(p, target, live);
    p.partition_epoch += 1;
}

/// Install a new replica list: the ISR keeps only replicas (in replica
/// order), and a leader that is no longer a replica, or no longer in the
/// ISR, hands over to the first live ISR member. The caller bumps the
/// partition epoch.
fn set_replicas(p: &mut PartitionRegistration, replicas: Vec<BrokerId>, live: &[BrokerId]) {
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|r| p.isr.contains(r))
        .collect();
    p.replicas = replicas;
    p.isr = isr;
    if p.leader != NO_BROKER && !p.isr.contains(&p.leader) {
        // Clean only: moving replicas must not lose acknowledged records.
        let next = choose_leader(p, live, false);
        set_leader(p, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::MetadataCommand;
    use uuid::Uuid;

    use crate::test_support::{T, image_with, partition};

    /// Brokers 1..=4 (epoch = 10 * id; `fenced` fenced), topic T with one
    /// partition at leader epoch 5, partition epoch 8.
    fn image(
        fenced: &[BrokerId],
        replicas: &[BrokerId],
        isr: &[BrokerId],
        leader: BrokerId,
        adding: &[BrokerId],
        removing: &[BrokerId],
    ) -> MetadataImage {
        image_with(
            fenced,
            vec![PartitionRegistration {
                adding_replicas: adding.to_vec(),
                removing_replicas: removing.to_vec(),
                ..partition(replicas, isr, leader)
            }],
        )
    }

    fn reassign(partition: i32, target: Option<&[BrokerId]>) -> MetadataCommand {
        MetadataCommand::AlterPartitionReassignments {
            reassignments: vec![(T, partition, target.map(<[BrokerId]>::to_vec))],
        }
    }

    /// The single result's outcome, without the partition epoch (checked
    /// through the image).
    fn outcome(resp: &MetadataResponse) -> Result<(), ReassignmentError> {
        match resp {
            MetadataResponse::PartitionReassignmentsAltered { results } => {
                assert_eq!(results.len(), 1);
                results[0].outcome.clone().map(|_| ())
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// (replicas, isr, leader, adding, removing, leader_epoch, partition_epoch)
    type State = (
        Vec<BrokerId>,
        Vec<BrokerId>,
        BrokerId,
        Vec<BrokerId>,
        Vec<BrokerId>,
        i32,
        i32,
    );

    fn state(image: &MetadataImage) -> State {
        let p = &image.topics[&T].partitions[0];
        (
            p.replicas.clone(),
            p.isr.clone(),
            p.leader,
            p.adding_replicas.clone(),
            p.removing_replicas.clone(),
            p.leader_epoch,
            p.partition_epoch,
        )
    }

    /// (replicas, isr, leader, adding, removing, leader_epoch, partition_epoch) after.
    type Want = (
        &'static [BrokerId],
        &'static [BrokerId],
        BrokerId,
        &'static [BrokerId],
        &'static [BrokerId],
        i32,
        i32,
    );

    #[test]
    fn reassignment_table() {
        struct Case {
            name: &'static str,
            fenced: &'static [BrokerId],
            /// (replicas, isr, leader, adding, removing) before.
            before: (
                &'static [BrokerId],
                &'static [BrokerId],
                BrokerId,
                &'static [BrokerId],
                &'static [BrokerId],
            ),
            partition: i32,
            target: Option<&'static [BrokerId]>,
            want: Result<Want, ReassignmentError>,
        }
        let cases = [
            Case {
                name: "start: move 1 to 2,3; target first, ISR unchanged",
                fenced: &[],
                before: (&[1], &[1], 1, &[], &[]),
                partition: 0,
                target: Some(&[2, 3]),
                want: Ok((&[2, 3, 1], &[1], 1, &[2, 3], &[1], 5, 9)),
            },
            Case {
                name: "start: grow RF keeps the old replica",
                fenced: &[],
                before: (&[1, 2], &[1, 2], 1, &[], &[]),
                partition: 0,
                target: Some(&[1, 2, 3]),
                want: Ok((&[1, 2, 3], &[1, 2], 1, &[3], &[], 5, 9)),
            },
            Case {
                name: "start: only removals completes at once, leader stays",
                fenced: &[],
                before: (&[1, 2, 3], &[1, 2, 3], 1, &[], &[]),
                partition: 0,
                target: Some(&[1, 2]),
                want: Ok((&[1, 2], &[1, 2], 1, &[], &[], 5, 10)),
            },
            Case {
                name: "start: removing the leader in sync hands leadership to the target",
                fenced: &[],
                before: (&[1, 2, 3], &[1, 2, 3], 1, &[], &[]),
                partition: 0,
                target: Some(&[3, 2]),
                want: Ok((&[3, 2], &[3, 2], 3, &[], &[], 6, 10)),
            },
            Case {
                name: "start: a reorder is done at once (ISR in replica order)",
                fenced: &[],
                before: (&[1, 2], &[1, 2], 1, &[], &[]),
                partition: 0,
                target: Some(&[2, 1]),
                want: Ok((&[2, 1], &[2, 1], 1, &[], &[], 5, 9)),
            },
            Case {
                name: "start: skips a fenced target replica when electing",
                fenced: &[2],
                before: (&[1, 2, 3], &[1, 2, 3], 1, &[], &[]),
                partition: 0,
                target: Some(&[2, 3]),
                want: Ok((&[2, 3], &[2, 3], 3, &[], &[], 6, 10)),
            },
            Case {
                name: "start over a reassignment in progress: computed from the original replicas",
                fenced: &[],
                before: (&[2, 3, 1], &[1, 2], 1, &[2, 3], &[1]),
                partition: 0,
                target: Some(&[4]),
                want: Ok((&[4, 1], &[1], 1, &[4], &[1], 5, 9)),
            },
            Case {
                name: "cancel: back to the original replicas",
                fenced: &[],
                before: (&[2, 3, 1], &[1, 2], 1, &[2, 3], &[1]),
                partition: 0,
                target: None,
                want: Ok((&[1], &[1], 1, &[], &[], 5, 9)),
            },
            Case {
                name: "cancel: an added leader hands back to an original replica",
                fenced: &[],
                before: (&[3, 1, 2], &[1, 2, 3], 3, &[3], &[2]),
                partition: 0,
                target: None,
                want: Ok((&[1, 2], &[1, 2], 1, &[], &[], 6, 9)),
            },
            Case {
                name: "cancel without a reassignment",
                fenced: &[],
                before: (&[1, 2], &[1, 2], 1, &[], &[]),
                partition: 0,
                target: None,
                want: Err(ReassignmentError::NoReassignmentInProgress),
            },
            Case {
                name: "empty target",
                fenced: &[],
                before: (&[1], &[1], 1, &[], &[]),
                partition: 0,
                target: Some(&[]),
                want: Err(ReassignmentError::InvalidReplicaAssignment {
                    reason: ReplicaAssignmentError::Empty,
                }),
            },
            Case {
                name: "duplicate in target",
                fenced: &[],
                before: (&[1], &[1], 1, &[], &[]),
                partition: 0,
                target: Some(&[2, 2]),
                want: Err(ReassignmentError::InvalidReplicaAssignment {
                    reason: ReplicaAssignmentError::DuplicateReplica { broker_id: 2 },
                }),
            },
            Case {
                name: "unregistered broker in target",
                fenced: &[],
                before: (&[1], &[1], 1, &[], &[]),
                partition: 0,
                target: Some(&[2, 9]),
                want: Err(ReassignmentError::InvalidReplicaAssignment {
                    reason: ReplicaAssignmentError::UnknownBroker { broker_id: 9 },
                }),
            },
            Case {
                name: "unknown partition",
                fenced: &[],
                before: (&[1], &[1], 1, &[], &[]),
                partition: 1,
                target: Some(&[2]),
                want: Err(ReassignmentError::UnknownTopicOrPartition),
            },
            Case {
                name: "negative partition",
                fenced: &[],
                before: (&[1], &[1], 1, &[], &[]),
                partition: -1,
                target: None,
                want: Err(ReassignmentError::UnknownTopicOrPartition),
            },
        ];
        for case in cases {
            let (replicas, isr, leader, adding, removing) = case.before;
            let mut img = image(case.fenced, replicas, isr, leader, adding, removing);
            let before = state(&img);
            let got = outcome(&img.apply(100, &reassign(case.partition, case.target)));
            match case.want {
                Ok((r, i, l, a, rm, le, pe)) => {
                    assert_eq!(got, Ok(()), "case {:?}", case.name);
                    assert_eq!(
                        state(&img),
                        (r.to_vec(), i.to_vec(), l, a.to_vec(), rm.to_vec(), le, pe),
                        "case {:?}",
                        case.name
                    );
                }
                Err(e) => {
                    assert_eq!(got, Err(e), "case {:?}", case.name);
                    assert_eq!(state(&img), before, "case {:?}: unchanged", case.name);
                }
            }
        }
    }

    #[test]
    fn unknown_topic_is_rejected_per_partition() {
        let mut img = image(&[], &[1], &[1], 1, &[], &[]);
        let resp = img.apply(
            100,
            &MetadataCommand::AlterPartitionReassignments {
                reassignments: vec![
                    (TopicId(Uuid::from_u128(99)), 0, Some(vec![2])),
                    (T, 0, Some(vec![2])),
                ],
            },
        );
        let MetadataResponse::PartitionReassignmentsAltered { results } = resp else {
            panic!("unexpected {resp:?}");
        };
        assert_eq!(
            results[0].outcome,
            Err(ReassignmentError::UnknownTopicOrPartition)
        );
        assert_eq!(results[1].outcome, Ok(9));
        assert_eq!(img.topics[&T].partitions[0].adding_replicas, vec![2]);
    }

    /// The leader's ISR expansions finish the move: not while a target
    /// replica is missing, at once when the last one joins.
    #[test]
    fn isr_expansion_completes_the_reassignment() {
        let mut img = image(&[], &[1], &[1], 1, &[], &[]);
        assert_eq!(
            outcome(&img.apply(100, &reassign(0, Some(&[2, 3])))),
            Ok(())
        );
        let alter =
            |isr: &[BrokerId], leader_epoch, partition_epoch| MetadataCommand::AlterPartition {
                broker_id: 1,
                broker_epoch: 10,
                topic_id: T,
                partition: 0,
                leader_epoch,
                partition_epoch,
                new_isr: isr.to_vec(),
            };
        let resp = img.apply(101, &alter(&[1, 2], 5, 9));
        assert!(
            matches!(resp, MetadataResponse::PartitionAltered { .. }),
            "{resp:?}"
        );
        assert_eq!(
            state(&img),
            (vec![2, 3, 1], vec![2, 1], 1, vec![2, 3], vec![1], 5, 10)
        );
        let resp = img.apply(102, &alter(&[1, 2, 3], 5, 10));
        // Completed in the same entry: 1 leaves, 2 (first target replica in
        // the ISR) leads with a new leader epoch.
        assert_eq!(
            resp,
            MetadataResponse::PartitionAltered {
                topic_id: T,
                partition: 0,
                leader: 2,
                leader_epoch: 6,
                isr: vec![2, 3],
                partition_epoch: 12,
            }
        );
        assert_eq!(
            state(&img),
            (vec![2, 3], vec![2, 3], 2, vec![], vec![], 6, 12)
        );
        // Finished: a cancel now has nothing to cancel.
        assert_eq!(
            outcome(&img.apply(103, &reassign(0, None))),
            Err(ReassignmentError::NoReassignmentInProgress)
        );
    }

    /// A partition being moved keeps its original replication factor for
    /// CreatePartitions until the move finishes.
    #[test]
    fn create_partitions_during_a_reassignment_uses_the_original_rf() {
        let mut img = image(&[], &[1], &[1], 1, &[], &[]);
        assert_eq!(
            outcome(&img.apply(100, &reassign(0, Some(&[2, 3])))),
            Ok(())
        );
        assert_eq!(img.topics[&T].partitions[0].replication_factor(), 1);
        let resp = img.apply(
            101,
            &MetadataCommand::CreatePartitions {
                topic_id: T,
                new_partitions: vec![vec![4]],
            },
        );
        assert_eq!(
            resp,
            MetadataResponse::PartitionsCreated {
                topic_id: T,
                partition_count: 2
            }
        );
    }

    /// Snapshots written before reassignment existed still load.
    #[test]
    fn old_partition_registration_deserializes() {
        let json = r#"{"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}"#;
        let p: PartitionRegistration = serde_json::from_str(json).expect("old format");
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        assert!(!p.is_reassigning());
    }
}
