//! Replica placement for new topics and partitions, as pure code.
//!
//! The algorithm is Kafka's `assignReplicasToBrokers` with a fixed start index instead
//! of a random one, so the result is a function of the image and the arguments:
//!
//! - Partition `p`'s leader is broker `p mod n` of the (rack-alternated) broker list, so
//!   leaders go round-robin, and numbering from `start_partition` lets CreatePartitions
//!   continue the pattern.
//! - Followers follow the leader at a shift that changes every `n` partitions, so
//!   follower sets spread too.
//! - Rack-aware when every eligible broker has a rack: the broker list alternates racks,
//!   and a partition takes a second replica from a rack only once every rack has one.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use fjord_types::BrokerId;

use crate::image::MetadataImage;

/// Why replicas could not be placed. Maps to Kafka's INVALID_PARTITIONS /
/// INVALID_REPLICATION_FACTOR in the gateway.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("partition count must be > 0, got {num_partitions}")]
    InvalidPartitions { num_partitions: i32 },
    #[error("start partition must be >= 0, got {start_partition}")]
    InvalidStartPartition { start_partition: i32 },
    #[error(
        "replication factor {replication_factor} is invalid with {available_brokers} unfenced brokers"
    )]
    InvalidReplicationFactor {
        replication_factor: i16,
        available_brokers: usize,
    },
    #[error("brokers {without_rack:?} have no rack while others do")]
    MixedRackInformation { without_rack: Vec<BrokerId> },
}

/// Replica lists for partitions `start_partition .. start_partition + num_partitions`
/// over the image's unfenced brokers; the first replica of each list is its leader.
pub fn assign_replicas(
    image: &MetadataImage,
    num_partitions: i32,
    replication_factor: i16,
    start_partition: i32,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    if num_partitions <= 0 {
        return Err(PlacementError::InvalidPartitions { num_partitions });
    }
    if start_partition < 0 {
        return Err(PlacementError::InvalidStartPartition { start_partition });
    }
    // BTreeMap iteration: brokers sorted by id.
    let eligible: Vec<(BrokerId, Option<&str>)> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| (b.broker_id, b.rack.as_deref()))
        .collect();
    let n = eligible.len();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > n {
        return Err(PlacementError::InvalidReplicationFactor {
            replication_factor,
            available_brokers: n,
        });
    }

    let without_rack: Vec<BrokerId> = eligible
        .iter()
        .filter(|(_, rack)| rack.is_none())
        .map(|(id, _)| *id)
        .collect();
    let partitions = (start_partition..).take(num_partitions as usize);
    if without_rack.len() == n {
        let brokers: Vec<BrokerId> = eligible.iter().map(|(id, _)| *id).collect();
        Ok(partitions
            .map(|p| rack_unaware(&brokers, rf, p as usize))
            .collect())
    } else if without_rack.is_empty() {
        let racks: BTreeMap<BrokerId, &str> = eligible
            .iter()
            .filter_map(|(id, rack)| rack.map(|r| (*id, r)))
            .collect();
        let brokers = rack_alternated(&racks);
        let num_racks = racks.values().collect::<BTreeSet<_>>().len();
        Ok(partitions
            .map(|p| rack_aware(&brokers, &racks, num_racks, rf, p as usize))
            .collect())
    } else {
        Err(PlacementError::MixedRackInformation { without_rack })
    }
}

/// Index of the `j`-th follower: never the leader itself, as Kafka's `replicaIndex`.
fn follower_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let step = 1 + (shift + j) % (n - 1);
    (first + step) % n
}

fn rack_unaware(brokers: &[BrokerId], rf: usize, partition: usize) -> Vec<BrokerId> {
    let n = brokers.len();
    let first = partition % n;
    let shift = partition / n;
    let mut replicas = vec![brokers[first]];
    replicas.extend((0..rf - 1).map(|j| brokers[follower_index(first, shift, j, n)]));
    replicas
}

fn rack_aware(
    brokers: &[BrokerId],
    racks: &BTreeMap<BrokerId, &str>,
    num_racks: usize,
    rf: usize,
    partition: usize,
) -> Vec<BrokerId> {
    let n = brokers.len();
    let first = partition % n;
    let shift = (partition / n) * num_racks;
    let leader = brokers[first];
    let mut replicas = vec![leader];
    let mut used_racks: BTreeSet<&str> = racks.get(&leader).copied().into_iter().collect();
    let mut used_brokers = BTreeSet::from([leader]);
    for k in 0..n.saturating_sub(1) {
        if replicas.len() == rf {
            break;
        }
        let broker = brokers[follower_index(first, shift, k, n)];
        let rack = racks.get(&broker).copied().unwrap_or_default();
        let rack_ok = !used_racks.contains(rack) || used_racks.len() == num_racks;
        let broker_ok = !used_brokers.contains(&broker) || used_brokers.len() == n;
        if rack_ok && broker_ok {
            replicas.push(broker);
            used_racks.insert(rack);
            used_brokers.insert(broker);
        }
    }
    // With rf <= n the loop above always fills the list (Kafka's argument: it walks all
    // other brokers, and the rack condition relaxes once every rack is used). Keep the
    // invariant explicit rather than trusting it: top up with unused brokers in order.
    for &broker in brokers {
        if replicas.len() == rf {
            break;
        }
        if !used_brokers.contains(&broker) {
            replicas.push(broker);
            used_brokers.insert(broker);
        }
    }
    replicas
}

/// Brokers ordered so that consecutive ones are on different racks: the first broker
/// of each rack (racks by name), then the second of each, and so on.
fn rack_alternated(racks: &BTreeMap<BrokerId, &str>) -> Vec<BrokerId> {
    let mut by_rack: BTreeMap<&str, Vec<BrokerId>> = BTreeMap::new();
    for (&id, &rack) in racks {
        by_rack.entry(rack).or_default().push(id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| by_rack.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::image::BrokerRegistration;
    use crate::image::Listener;

    fn image(brokers: &[(BrokerId, Option<&str>, bool)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(id, rack, fenced) in brokers {
            image.brokers.insert(
                id,
                BrokerRegistration {
                    broker_id: id,
                    incarnation_id: Uuid::nil(),
                    broker_epoch: 1,
                    listeners: vec![Listener {
                        name: "PLAINTEXT".into(),
                        host: "h".into(),
                        port: 9092,
                    }],
                    rack: rack.map(str::to_owned),
                    fenced,
                },
            );
        }
        image
    }

    fn assert_well_formed(assignment: &[Vec<BrokerId>], rf: usize) {
        for replicas in assignment {
            assert_eq!(replicas.len(), rf, "{assignment:?}");
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), rf, "duplicate replica in {assignment:?}");
        }
    }

    #[test]
    fn errors() {
        let img = image(&[(1, None, false), (2, None, false), (3, None, true)]);
        let cases = [
            (
                0,
                1,
                0,
                PlacementError::InvalidPartitions { num_partitions: 0 },
            ),
            (
                1,
                1,
                -1,
                PlacementError::InvalidStartPartition {
                    start_partition: -1,
                },
            ),
            (
                1,
                0,
                0,
                PlacementError::InvalidReplicationFactor {
                    replication_factor: 0,
                    available_brokers: 2,
                },
            ),
            (
                1,
                -1,
                0,
                PlacementError::InvalidReplicationFactor {
                    replication_factor: -1,
                    available_brokers: 2,
                },
            ),
            // Broker 3 is fenced, so only two are available.
            (
                1,
                3,
                0,
                PlacementError::InvalidReplicationFactor {
                    replication_factor: 3,
                    available_brokers: 2,
                },
            ),
        ];
        for (partitions, rf, start, expected) in cases {
            assert_eq!(
                assign_replicas(&img, partitions, rf, start),
                Err(expected.clone()),
                "{expected}"
            );
        }
        assert_eq!(
            assign_replicas(&MetadataImage::default(), 1, 1, 0),
            Err(PlacementError::InvalidReplicationFactor {
                replication_factor: 1,
                available_brokers: 0
            })
        );
        let mixed = image(&[(1, Some("a"), false), (2, None, false)]);
        assert_eq!(
            assign_replicas(&mixed, 1, 1, 0),
            Err(PlacementError::MixedRackInformation {
                without_rack: vec![2]
            })
        );
    }

    #[test]
    fn leaders_round_robin_over_unfenced_brokers() {
        let img = image(&[
            (1, None, false),
            (2, None, true),
            (3, None, false),
            (4, None, false),
        ]);
        let a = assign_replicas(&img, 6, 2, 0).expect("assign");
        assert_well_formed(&a, 2);
        let leaders: Vec<_> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 3, 4, 1, 3, 4]);
        assert!(a.iter().flatten().all(|&b| b != 2), "fenced broker used");
        // Followers shift after each round of leaders.
        assert_ne!(a[0], a[3]);
    }

    #[test]
    fn start_partition_continues_the_pattern() {
        let img = image(&[(1, None, false), (2, None, false), (3, None, false)]);
        let all = assign_replicas(&img, 5, 3, 0).expect("assign");
        let tail = assign_replicas(&img, 2, 3, 3).expect("assign");
        assert_eq!(&all[3..], &tail[..]);
        assert_well_formed(&all, 3);
    }

    #[test]
    fn single_broker() {
        let img = image(&[(7, None, false)]);
        assert_eq!(
            assign_replicas(&img, 3, 1, 0).expect("assign"),
            vec![vec![7], vec![7], vec![7]]
        );
    }

    #[test]
    fn rack_aware_spreads_replicas_over_racks() {
        let img = image(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
            (4, Some("b"), false),
            (5, Some("c"), false),
            (6, Some("c"), false),
        ]);
        let rack = |b: BrokerId| img.brokers[&b].rack.clone();
        let a = assign_replicas(&img, 12, 3, 0).expect("assign");
        assert_well_formed(&a, 3);
        for replicas in &a {
            let racks: BTreeSet<_> = replicas.iter().map(|&b| rack(b)).collect();
            assert_eq!(racks.len(), 3, "replicas {replicas:?} share a rack");
        }
        // Every broker leads equally often.
        let mut leads: BTreeMap<BrokerId, usize> = BTreeMap::new();
        for replicas in &a {
            *leads.entry(replicas[0]).or_default() += 1;
        }
        assert!(leads.values().all(|&c| c == 2), "{leads:?}");
    }

    #[test]
    fn rack_aware_with_more_replicas_than_racks() {
        let img = image(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
        ]);
        let a = assign_replicas(&img, 4, 3, 0).expect("assign");
        assert_well_formed(&a, 3);
        let b = assign_replicas(&img, 4, 2, 0).expect("assign");
        for replicas in &b {
            let racks: BTreeSet<_> = replicas
                .iter()
                .map(|id| img.brokers[id].rack.clone())
                .collect();
            assert_eq!(racks.len(), 2, "{replicas:?}");
        }
    }
}
