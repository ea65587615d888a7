//! Partition leadership and ISR changes, applied to the image as pure code:
//! broker fencing and unfencing, controlled shutdown, AlterPartition and
//! ElectLeaders (Kafka's `ReplicationControlManager` rules).
//!
//! Every change to a partition's leader bumps its leader epoch; every change to
//! its leader or ISR bumps its partition epoch (the compare-and-set version
//! AlterPartition checks).

use fjord_types::BrokerId;
use fjord_types::NO_BROKER;
use fjord_types::TopicId;

use crate::command::AlterPartitionError;
use crate::command::ElectionError;
use crate::command::ElectionResult;
use crate::command::ElectionType;
use crate::command::MetadataError;
use crate::command::MetadataResponse;
use crate::image::BrokerRegistration;
use crate::image::MetadataImage;
use crate::image::PartitionRegistration;

/// `unclean.leader.election.enable`: Kafka's topic config, default false.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// The two versions an AlterPartition compares and sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartitionVersion {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl MetadataImage {
    /// FenceBroker and ControlledShutdown.
    pub(crate) fn fence_broker(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<MetadataResponse, MetadataError> {
        self.check_broker_epoch(broker_id, broker_epoch)?;
        Ok(self.fence(broker_id))
    }

    pub(crate) fn unfence_broker(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<MetadataResponse, MetadataError> {
        self.check_broker_epoch(broker_id, broker_epoch)?;
        Ok(self.unfence(broker_id))
    }

    fn check_broker_epoch(
        &self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<(), MetadataError> {
        match self.brokers.get(&broker_id) {
            Some(b) if b.broker_epoch == broker_epoch => Ok(()),
            _ => Err(MetadataError::StaleBrokerEpoch {
                broker_id,
                broker_epoch,
            }),
        }
    }

    /// Whether `broker_id` may lead or join an ISR: registered and not fenced.
    pub fn is_live(&self, broker_id: BrokerId) -> bool {
        self.brokers.get(&broker_id).is_some_and(is_unfenced)
    }

    /// Fence `broker_id`: it leaves every ISR it is not the last member of (the last
    /// one stays, so it can lead again when it returns with the data), and each
    /// partition it led elects a new leader from the rest of its ISR, or goes
    /// offline (leader -1) when none is live.
    pub(crate) fn fence(&mut self, broker_id: BrokerId) -> MetadataResponse {
        if let Some(b) = self.brokers.get_mut(&broker_id) {
            b.fenced = true;
        }
        let live = self.live_set();
        let mut leaders_moved = 0;
        // Only topics with a partition to change are taken (copy on write).
        let affected = |p: &PartitionRegistration| {
            p.replicas.contains(&broker_id)
                && ((p.isr.len() > 1 && p.isr.contains(&broker_id)) || p.leader == broker_id)
        };
        let cluster_default = self.broker_configs.cluster_default.clone();
        for topic in self.topics.values_mut() {
            if !topic.partitions.iter().any(affected) {
                continue;
            }
            let topic = std::sync::Arc::make_mut(topic);
            let unclean = unclean_enabled(&topic.configs, &cluster_default);
            for p in &mut topic.partitions {
                if !p.replicas.contains(&broker_id) {
                    continue;
                }
                let mut changed = false;
                if p.isr.len() > 1 && p.isr.contains(&broker_id) {
                    p.isr.retain(|&r| r != broker_id);
                    changed = true;
                }
                if p.leader == broker_id {
                    let next = choose_leader(p, &live, unclean);
                    set_leader(p, next);
                    leaders_moved += 1;
                    changed = true;
                }
                if changed {
                    p.partition_epoch += 1;
                }
            }
        }
        MetadataResponse::BrokerFencingChanged {
            broker_id,
            fenced: true,
            leaders_moved,
        }
    }

    /// Unfence `broker_id`: partitions left without a leader elect it when it is
    /// in their ISR (or, with unclean election enabled, when it is a replica).
    fn unfence(&mut self, broker_id: BrokerId) -> MetadataResponse {
        if let Some(b) = self.brokers.get_mut(&broker_id) {
            b.fenced = false;
        }
        let live = self.live_set();
        let mut leaders_moved = 0;
        let cluster_default = self.broker_configs.cluster_default.clone();
        for topic in self.topics.values_mut() {
            let unclean = unclean_enabled(&topic.configs, &cluster_default);
            let electable = |p: &PartitionRegistration| {
                p.leader == NO_BROKER
                    && p.replicas.contains(&broker_id)
                    && choose_leader(p, &live, unclean) != NO_BROKER
            };
            if !topic.partitions.iter().any(electable) {
                continue;
            }
            let topic = std::sync::Arc::make_mut(topic);
            for p in &mut topic.partitions {
                if p.leader == NO_BROKER && p.replicas.contains(&broker_id) {
                    let next = choose_leader(p, &live, unclean);
                    if next != NO_BROKER {
                        set_leader(p, next);
                        p.partition_epoch += 1;
                        leaders_moved += 1;
                    }
                }
            }
        }
        MetadataResponse::BrokerFencingChanged {
            broker_id,
            fenced: false,
            leaders_moved,
        }
    }

    /// Kafka's AlterPartition validation, in its order (broker epoch first); on
    /// success the ISR is replaced and the partition epoch bumped (an unchanged
    /// ISR changes nothing).
    pub(crate) fn alter_partition(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: TopicId,
        partition: i32,
        version: PartitionVersion,
        new_isr: &[BrokerId],
    ) -> Result<MetadataResponse, MetadataError> {
        self.check_broker_epoch(broker_id, broker_epoch)?;
        self.change_isr(broker_id, topic_id, partition, version, new_isr)
            .map_err(|reason| MetadataError::AlterPartition { reason })
    }

    fn change_isr(
        &mut self,
        broker_id: BrokerId,
        topic_id: TopicId,
        partition: i32,
        version: PartitionVersion,
        new_isr: &[BrokerId],
    ) -> Result<MetadataResponse, AlterPartitionError> {
        let PartitionVersion {
            leader_epoch,
            partition_epoch,
        } = version;
        let live = self.live_set();
        let p = self
            .partition(topic_id, partition)
            .ok_or(AlterPartitionError::UnknownTopicOrPartition)?;
        if p.leader != broker_id {
            return Err(AlterPartitionError::NotLeader {
                broker_id,
                leader: p.leader,
            });
        }
        if leader_epoch != p.leader_epoch {
            return Err(AlterPartitionError::FencedLeaderEpoch {
                given: leader_epoch,
                current: p.leader_epoch,
            });
        }
        if partition_epoch != p.partition_epoch {
            return Err(AlterPartitionError::InvalidUpdateVersion {
                given: partition_epoch,
                current: p.partition_epoch,
            });
        }
        let invalid = |why: &str| AlterPartitionError::InvalidIsr {
            isr: new_isr.to_vec(),
            why: why.to_owned(),
        };
        if !new_isr.contains(&broker_id) {
            return Err(invalid("the leader must stay in the ISR"));
        }
        for (i, r) in new_isr.iter().enumerate() {
            if !p.replicas.contains(r) {
                return Err(invalid("every ISR member must be a replica"));
            }
            if new_isr[..i].contains(r) {
                return Err(invalid("an ISR member is listed twice"));
            }
        }
        // Only additions need to be live: a leader may always shrink.
        if let Some(&ineligible) = new_isr
            .iter()
            .find(|r| !p.isr.contains(r) && !live.contains(r))
        {
            return Err(AlterPartitionError::IneligibleReplica {
                broker_id: ineligible,
            });
        }
        if !same_members(&p.isr, new_isr) {
            let p = self
                .partition_mut(topic_id, partition)
                .ok_or(AlterPartitionError::UnknownTopicOrPartition)?;
            // Keep replica order, so the ISR reads the same on every node.
            p.isr = p
                .replicas
                .iter()
                .copied()
                .filter(|r| new_isr.contains(r))
                .collect();
            p.partition_epoch += 1;
            // The leader's ISR expansion is what finishes a reassignment.
            crate::reassignment::complete_if_caught_up(p, &live);
        }
        let p = self
            .partition(topic_id, partition)
            .ok_or(AlterPartitionError::UnknownTopicOrPartition)?;
        Ok(MetadataResponse::PartitionAltered {
            topic_id,
            partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr: p.isr.clone(),
            partition_epoch: p.partition_epoch,
        })
    }

    /// Kafka's ElectLeaders. With `partitions == None` every partition is
    /// considered and only the ones that got a new leader are reported.
    pub(crate) fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: Option<&[(TopicId, i32)]>,
    ) -> MetadataResponse {
        let live = self.live_set();
        let mut results = Vec::new();
        // Elect on a copy; only a partition that got a new leader is written
        // back, so topics without one keep their `Arc` (copy on write).
        let elect_one = |image: &mut Self, topic_id: TopicId, partition: i32| {
            let found = image.topics.get(&topic_id).and_then(|t| {
                let p = t.partitions.get(usize::try_from(partition).ok()?)?;
                Some((
                    p.clone(),
                    unclean_enabled(&t.configs, &image.broker_configs.cluster_default),
                ))
            });
            let outcome = match found {
                Some((mut p, unclean)) => {
                    let outcome = elect(&mut p, election, &live, unclean);
                    if outcome.is_ok()
                        && let Some(slot) = image.partition_mut(topic_id, partition)
                    {
                        *slot = p;
                    }
                    outcome
                }
                None => Err(ElectionError::UnknownTopicOrPartition),
            };
            ElectionResult {
                topic_id,
                partition,
                outcome,
            }
        };
        match partitions {
            Some(list) => {
                for &(topic_id, partition) in list {
                    results.push(elect_one(self, topic_id, partition));
                }
            }
            None => {
                let all: Vec<(TopicId, i32)> = self
                    .topics
                    .iter()
                    .flat_map(|(&topic_id, t)| {
                        (0..).zip(&t.partitions).map(move |(i, _)| (topic_id, i))
                    })
                    .collect();
                for (topic_id, partition) in all {
                    let result = elect_one(self, topic_id, partition);
                    if result.outcome.is_ok() {
                        results.push(result);
                    }
                }
            }
        }
        MetadataResponse::LeadersElected { results }
    }

    /// Registering a new incarnation of a known broker: the old process is gone,
    /// so it is fenced first (leadership moves, ISRs shrink) and the new one stays
    /// fenced until its heartbeats show it caught up (`UnfenceBroker`).
    pub(crate) fn fence_previous_incarnation(&mut self, broker_id: BrokerId) {
        if self.brokers.contains_key(&broker_id) {
            self.fence(broker_id);
        }
    }

    /// Kafka's `auto.leader.rebalance.enable` check: the partitions whose preferred
    /// (first) replica is live and in sync but does not lead, for every broker whose
    /// share of such partitions exceeds `max_imbalance_percent`
    /// (`leader.imbalance.per.broker.percentage`, default 10).
    pub fn preferred_leader_imbalance(&self, max_imbalance_percent: u32) -> Vec<(TopicId, i32)> {
        let live = self.live_set();
        // Per preferred broker: (partitions it should lead, of those: led elsewhere but movable).
        let mut per_broker: std::collections::BTreeMap<BrokerId, (u64, Vec<(TopicId, i32)>)> =
            std::collections::BTreeMap::new();
        for (&topic_id, topic) in &self.topics {
            for (partition, p) in (0..).zip(&topic.partitions) {
                let Some(&preferred) = p.replicas.first() else {
                    continue;
                };
                let entry = per_broker.entry(preferred).or_default();
                entry.0 += 1;
                if p.leader != preferred && p.isr.contains(&preferred) && live.contains(&preferred)
                {
                    entry.1.push((topic_id, partition));
                }
            }
        }
        per_broker
            .into_values()
            .filter(|(total, movable)| {
                // movable / total > percent / 100, in integers.
                (movable.len() as u64) * 100 > u64::from(max_imbalance_percent) * total
            })
            .flat_map(|(_, movable)| movable)
            .collect()
    }

    pub(crate) fn live_set(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|b| is_unfenced(b))
            .map(|b| b.broker_id)
            .collect()
    }
}

fn is_unfenced(b: &BrokerRegistration) -> bool {
    !b.fenced
}

/// `unclean.leader.election.enable` for a topic, by Kafka's precedence as
/// far as the controller sees it: the topic's override, else the dynamic
/// cluster default, else the registry's default (false). Per-broker dynamic
/// and static broker values are the brokers' and play no part in elections
/// (Kafka's KRaft controller reads its own node's config there, which a
/// Fjord controller does not have for this config).
fn unclean_enabled(
    topic: &std::collections::BTreeMap<String, String>,
    cluster_default: &std::collections::BTreeMap<String, String>,
) -> bool {
    let Some(def) = fjord_config::topic_config(UNCLEAN_LEADER_ELECTION) else {
        return false;
    };
    let layers = fjord_config::ConfigLayers {
        topic: Some(topic),
        cluster_default: Some(cluster_default),
        ..Default::default()
    };
    fjord_config::topic_synonyms(def, &layers)
        .first()
        .is_some_and(|s| s.value.trim().eq_ignore_ascii_case("true"))
}

fn same_members(a: &[BrokerId], b: &[BrokerId]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The leader a partition should have now, in replica order: a live ISR member;
/// failing that (and only if the topic allows unclean election) any live
/// replica; otherwise none.
pub(crate) fn choose_leader(
    p: &PartitionRegistration,
    live: &[BrokerId],
    unclean: bool,
) -> BrokerId {
    let clean = p
        .replicas
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && live.contains(r));
    let unclean_pick = || {
        p.replicas
            .iter()
            .copied()
            .find(|r| live.contains(r))
            .filter(|_| unclean)
    };
    clean.or_else(unclean_pick).unwrap_or(NO_BROKER)
}

/// Install `leader` (or none) with a new leader epoch. An unclean leader
/// (outside the ISR) becomes the whole ISR, as in Kafka.
pub(crate) fn set_leader(p: &mut PartitionRegistration, leader: BrokerId) {
    if leader != NO_BROKER && !p.isr.contains(&leader) {
        p.isr = vec![leader];
    }
    p.leader = leader;
    p.leader_epoch += 1;
}

fn elect(
    p: &mut PartitionRegistration,
    election: ElectionType,
    live: &[BrokerId],
    unclean_config: bool,
) -> Result<BrokerId, ElectionError> {
    let wanted = match election {
        ElectionType::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(NO_BROKER);
            if p.leader == preferred {
                return Err(ElectionError::ElectionNotNeeded);
            }
            if !(p.isr.contains(&preferred) && live.contains(&preferred)) {
                return Err(ElectionError::EligibleLeadersNotAvailable);
            }
            preferred
        }
        ElectionType::Unclean => {
            if p.leader != NO_BROKER {
                return Err(ElectionError::ElectionNotNeeded);
            }
            // An explicit unclean election overrides the topic config.
            let _ = unclean_config;
            match choose_leader(p, live, true) {
                NO_BROKER => return Err(ElectionError::EligibleLeadersNotAvailable),
                leader => leader,
            }
        }
    };
    set_leader(p, wanted);
    p.partition_epoch += 1;
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::command::MetadataCommand;
    use crate::test_support::{T, image_with, partition};

    /// Brokers 1..=4 (epoch = 10 * id), `fenced` of them fenced, and topic T
    /// with the given partitions (replicas, isr, leader).
    fn image(
        fenced: &[BrokerId],
        partitions: &[(&[BrokerId], &[BrokerId], BrokerId)],
    ) -> MetadataImage {
        image_with(
            fenced,
            partitions
                .iter()
                .map(|(replicas, isr, leader)| partition(replicas, isr, *leader))
                .collect(),
        )
    }

    fn part(image: &MetadataImage, p: usize) -> &PartitionRegistration {
        &image.topics[&T].partitions[p]
    }

    /// (leader, isr, leader_epoch, partition_epoch)
    fn state(image: &MetadataImage, p: usize) -> (BrokerId, Vec<BrokerId>, i32, i32) {
        let p = part(image, p);
        (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch)
    }

    #[test]
    fn fencing_moves_leadership_and_shrinks_isrs() {
        struct Case {
            name: &'static str,
            already_fenced: &'static [BrokerId],
            replicas: &'static [BrokerId],
            isr: &'static [BrokerId],
            leader: BrokerId,
            unclean: bool,
            fence: BrokerId,
            want: (BrokerId, &'static [BrokerId], i32, i32),
        }
        let cases = [
            Case {
                name: "leader fenced: next live ISR member in replica order leads",
                already_fenced: &[],
                replicas: &[1, 2, 3],
                isr: &[1, 2, 3],
                leader: 1,
                unclean: false,
                fence: 1,
                want: (2, &[2, 3], 6, 9),
            },
            Case {
                name: "follower fenced: leaves the ISR, leader epoch unchanged",
                already_fenced: &[],
                replicas: &[1, 2, 3],
                isr: &[1, 2, 3],
                leader: 1,
                unclean: false,
                fence: 3,
                want: (1, &[1, 2], 5, 9),
            },
            Case {
                name: "last ISR member stays in the ISR; partition goes offline",
                already_fenced: &[],
                replicas: &[1, 2, 3],
                isr: &[1],
                leader: 1,
                unclean: false,
                fence: 1,
                want: (NO_BROKER, &[1], 6, 9),
            },
            Case {
                name: "other ISR members fenced: offline, never an out-of-sync leader",
                already_fenced: &[2],
                replicas: &[1, 2, 3],
                isr: &[1, 2],
                leader: 1,
                unclean: false,
                fence: 1,
                want: (NO_BROKER, &[2], 6, 9),
            },
            Case {
                name: "unclean election enabled: a live out-of-sync replica leads alone",
                already_fenced: &[],
                replicas: &[1, 2, 3],
                isr: &[1],
                leader: 1,
                unclean: true,
                fence: 1,
                want: (2, &[2], 6, 9),
            },
            Case {
                name: "a broker outside the partition changes nothing",
                already_fenced: &[],
                replicas: &[1, 2, 3],
                isr: &[1, 2, 3],
                leader: 1,
                unclean: false,
                fence: 4,
                want: (1, &[1, 2, 3], 5, 8),
            },
        ];
        for c in cases {
            let mut img = image(c.already_fenced, &[(c.replicas, c.isr, c.leader)]);
            if c.unclean {
                img.topic_mut(T)
                    .unwrap()
                    .configs
                    .insert(UNCLEAN_LEADER_ELECTION.into(), "true".into());
            }
            let epoch = img.brokers[&c.fence].broker_epoch;
            let resp = img.apply(
                100,
                &MetadataCommand::FenceBroker {
                    broker_id: c.fence,
                    broker_epoch: epoch,
                },
            );
            assert!(
                matches!(
                    resp,
                    MetadataResponse::BrokerFencingChanged { fenced: true, .. }
                ),
                "{}: {resp:?}",
                c.name
            );
            assert!(img.brokers[&c.fence].fenced, "{}", c.name);
            let (l, isr, le, pe) = c.want;
            assert_eq!(state(&img, 0), (l, isr.to_vec(), le, pe), "{}", c.name);
        }
    }

    #[test]
    fn fencing_with_a_stale_epoch_is_rejected() {
        let mut img = image(&[], &[(&[1, 2], &[1, 2], 1)]);
        for cmd in [
            MetadataCommand::FenceBroker {
                broker_id: 1,
                broker_epoch: 9,
            },
            MetadataCommand::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 9,
            },
            MetadataCommand::ControlledShutdown {
                broker_id: 9,
                broker_epoch: 90,
            },
        ] {
            assert!(matches!(
                img.apply(100, &cmd),
                MetadataResponse::Error(MetadataError::StaleBrokerEpoch { .. })
            ));
        }
        assert_eq!(state(&img, 0), (1, vec![1, 2], 5, 8));
    }

    #[test]
    fn unfencing_elects_the_broker_where_partitions_have_no_leader() {
        let mut img = image(
            &[1],
            &[
                (&[1, 2], &[1], NO_BROKER), // offline, 1 in ISR: elect 1
                (&[2, 1], &[2, 1], 2),      // has a leader: untouched
                (&[1, 3], &[3], NO_BROKER), // 1 not in ISR: stays offline
            ],
        );
        img.brokers.get_mut(&3).unwrap().fenced = true;
        let resp = img.apply(
            100,
            &MetadataCommand::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 10,
            },
        );
        assert_eq!(
            resp,
            MetadataResponse::BrokerFencingChanged {
                broker_id: 1,
                fenced: false,
                leaders_moved: 1
            }
        );
        assert_eq!(state(&img, 0), (1, vec![1], 6, 9));
        assert_eq!(state(&img, 1), (2, vec![2, 1], 5, 8));
        assert_eq!(state(&img, 2), (NO_BROKER, vec![3], 5, 8));
    }

    #[test]
    fn alter_partition_validates_in_kafka_order() {
        use AlterPartitionError as E;
        let v = |leader_epoch, partition_epoch| PartitionVersion {
            leader_epoch,
            partition_epoch,
        };
        // (name, broker, broker epoch, partition, version, new isr, expected error)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            BrokerId,
            i64,
            i32,
            PartitionVersion,
            Vec<BrokerId>,
            MetadataError,
        )> = vec![
            (
                "stale broker epoch first",
                1,
                11,
                9,
                v(0, 0),
                vec![],
                MetadataError::StaleBrokerEpoch {
                    broker_id: 1,
                    broker_epoch: 11,
                },
            ),
            (
                "unknown partition",
                1,
                10,
                9,
                v(5, 8),
                vec![1],
                MetadataError::AlterPartition {
                    reason: E::UnknownTopicOrPartition,
                },
            ),
            (
                "not the leader",
                2,
                20,
                0,
                v(5, 8),
                vec![2],
                MetadataError::AlterPartition {
                    reason: E::NotLeader {
                        broker_id: 2,
                        leader: 1,
                    },
                },
            ),
            (
                "old leader epoch",
                1,
                10,
                0,
                v(4, 8),
                vec![1],
                MetadataError::AlterPartition {
                    reason: E::FencedLeaderEpoch {
                        given: 4,
                        current: 5,
                    },
                },
            ),
            (
                "old partition epoch",
                1,
                10,
                0,
                v(5, 7),
                vec![1],
                MetadataError::AlterPartition {
                    reason: E::InvalidUpdateVersion {
                        given: 7,
                        current: 8,
                    },
                },
            ),
            (
                "leader left out",
                1,
                10,
                0,
                v(5, 8),
                vec![2],
                MetadataError::AlterPartition {
                    reason: E::InvalidIsr {
                        isr: vec![2],
                        why: "the leader must stay in the ISR".into(),
                    },
                },
            ),
            (
                "not a replica",
                1,
                10,
                0,
                v(5, 8),
                vec![1, 4],
                MetadataError::AlterPartition {
                    reason: E::InvalidIsr {
                        isr: vec![1, 4],
                        why: "every ISR member must be a replica".into(),
                    },
                },
            ),
            (
                "duplicate",
                1,
                10,
                0,
                v(5, 8),
                vec![1, 1],
                MetadataError::AlterPartition {
                    reason: E::InvalidIsr {
                        isr: vec![1, 1],
                        why: "an ISR member is listed twice".into(),
                    },
                },
            ),
            (
                "fenced broker may not join",
                1,
                10,
                0,
                v(5, 8),
                vec![1, 2, 3],
                MetadataError::AlterPartition {
                    reason: E::IneligibleReplica { broker_id: 3 },
                },
            ),
        ];
        for (name, broker_id, broker_epoch, partition, version, new_isr, want) in cases {
            let mut img = image(&[3], &[(&[1, 2, 3], &[1, 2], 1)]);
            let before = img.topics.clone();
            let resp = img.apply(
                100,
                &MetadataCommand::AlterPartition {
                    broker_id,
                    broker_epoch,
                    topic_id: T,
                    partition,
                    leader_epoch: version.leader_epoch,
                    partition_epoch: version.partition_epoch,
                    new_isr,
                },
            );
            assert_eq!(resp, MetadataResponse::Error(want), "{name}");
            assert_eq!(img.topics, before, "{name}: nothing changes");
        }
    }

    #[test]
    fn alter_partition_shrinks_expands_and_compares_epochs() {
        let mut img = image(&[], &[(&[1, 2, 3], &[1, 2, 3], 1)]);
        let alter = |img: &mut MetadataImage, pe: i32, isr: Vec<BrokerId>| {
            img.apply(
                100,
                &MetadataCommand::AlterPartition {
                    broker_id: 1,
                    broker_epoch: 10,
                    topic_id: T,
                    partition: 0,
                    leader_epoch: 5,
                    partition_epoch: pe,
                    new_isr: isr,
                },
            )
        };
        // Shrink.
        assert!(matches!(
            alter(&mut img, 8, vec![1, 2]),
            MetadataResponse::PartitionAltered {
                partition_epoch: 9,
                ..
            }
        ));
        assert_eq!(state(&img, 0), (1, vec![1, 2], 5, 9));
        // The same epoch again loses the race.
        assert!(matches!(
            alter(&mut img, 8, vec![1]),
            MetadataResponse::Error(MetadataError::AlterPartition {
                reason: AlterPartitionError::InvalidUpdateVersion { .. }
            })
        ));
        // Expand; the ISR is kept in replica order.
        assert!(matches!(
            alter(&mut img, 9, vec![3, 1, 2]),
            MetadataResponse::PartitionAltered {
                partition_epoch: 10,
                ..
            }
        ));
        assert_eq!(state(&img, 0), (1, vec![1, 2, 3], 5, 10));
        // Unchanged: no new epoch.
        assert!(matches!(
            alter(&mut img, 10, vec![1, 2, 3]),
            MetadataResponse::PartitionAltered {
                partition_epoch: 10,
                ..
            }
        ));
    }

    #[test]
    fn elect_leaders_preferred_and_unclean() {
        let mut img = image(
            &[4],
            &[
                (&[1, 2], &[1, 2], 2),      // preferred 1 in ISR: elected
                (&[1, 2], &[1, 2], 1),      // already preferred: not needed
                (&[3, 1], &[1], 1),         // preferred out of ISR: not available
                (&[2, 3], &[4], NO_BROKER), // unclean: 2 (live) leads alone
                (&[4], &[4], NO_BROKER),    // unclean: nobody live
            ],
        );
        let preferred = img.elect_leaders(
            ElectionType::Preferred,
            Some(&[(T, 0), (T, 1), (T, 2), (T, 9)]),
        );
        let outcomes = |resp: MetadataResponse| match resp {
            MetadataResponse::LeadersElected { results } => results
                .into_iter()
                .map(|r| (r.partition, r.outcome))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            outcomes(preferred),
            vec![
                (0, Ok(1)),
                (1, Err(ElectionError::ElectionNotNeeded)),
                (2, Err(ElectionError::EligibleLeadersNotAvailable)),
                (9, Err(ElectionError::UnknownTopicOrPartition)),
            ]
        );
        assert_eq!(state(&img, 0), (1, vec![1, 2], 6, 9));
        let unclean = img.elect_leaders(ElectionType::Unclean, None);
        assert_eq!(outcomes(unclean), vec![(3, Ok(2))]);
        assert_eq!(state(&img, 3), (2, vec![2], 6, 9));
        assert_eq!(part(&img, 4).leader, NO_BROKER);
    }

    /// `unclean.leader.election.enable`: the topic override wins over the
    /// dynamic cluster default, which wins over the default (false).
    #[test]
    fn unclean_election_follows_topic_then_cluster_default() {
        for (topic, cluster, want_leader) in [
            (None, None, NO_BROKER),
            (None, Some("true"), 2),
            (Some("false"), Some("true"), NO_BROKER),
            (Some("true"), None, 2),
        ] {
            // Leader 1 alone in the ISR; 2 is a live replica out of it.
            let mut img = image(&[], &[(&[1, 2], &[1], 1)]);
            if let Some(v) = cluster {
                let set = [(UNCLEAN_LEADER_ELECTION.to_string(), v.to_string())].into();
                let alter = MetadataCommand::AlterBrokerConfigs {
                    broker_id: None,
                    set,
                    delete: vec![],
                    expected: None,
                };
                assert!(!matches!(img.apply(50, &alter), MetadataResponse::Error(_)));
            }
            if let Some(v) = topic {
                std::sync::Arc::make_mut(img.topics.get_mut(&T).unwrap())
                    .configs
                    .insert(UNCLEAN_LEADER_ELECTION.into(), v.into());
            }
            let fence = MetadataCommand::FenceBroker {
                broker_id: 1,
                broker_epoch: 10,
            };
            assert!(!matches!(img.apply(51, &fence), MetadataResponse::Error(_)));
            assert_eq!(
                part(&img, 0).leader,
                want_leader,
                "topic {topic:?} cluster {cluster:?}"
            );
        }
    }

    #[test]
    fn preferred_leader_imbalance_follows_kafkas_ratio() {
        // Broker 1 prefers 4 partitions; it leads 2, and of the 2 others one has it
        // in sync (movable). 1/4 = 25% > 10%: that one is reported.
        let img = image(
            &[],
            &[
                (&[1, 2], &[1, 2], 1),
                (&[1, 2], &[1, 2], 1),
                (&[1, 2], &[1, 2], 2),
                (&[1, 2], &[2], 2),
                (&[2, 1], &[2, 1], 2),
            ],
        );
        assert_eq!(img.preferred_leader_imbalance(10), vec![(T, 2)]);
        assert_eq!(img.preferred_leader_imbalance(25), vec![]);
        // A fenced preferred replica cannot take over.
        let fenced = image(&[1], &[(&[1, 2], &[1, 2], 2)]);
        assert_eq!(fenced.preferred_leader_imbalance(0), vec![]);
    }

    #[test]
    fn a_new_incarnation_fences_the_old_one_until_unfenced() {
        let mut img = image(&[], &[(&[1, 2], &[1, 2], 1)]);
        let resp = img.apply(
            100,
            &MetadataCommand::RegisterBroker {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(99),
                listeners: img.brokers[&1].listeners.clone(),
                rack: None,
            },
        );
        assert_eq!(
            resp,
            MetadataResponse::BrokerRegistered {
                broker_id: 1,
                broker_epoch: 100
            }
        );
        assert!(img.brokers[&1].fenced);
        assert_eq!(state(&img, 0), (2, vec![2], 6, 9));
        img.apply(
            101,
            &MetadataCommand::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 100,
            },
        );
        assert!(!img.brokers[&1].fenced);
        // It leads nothing until it rejoins the ISR (AlterPartition by leader 2).
        assert_eq!(state(&img, 0), (2, vec![2], 6, 9));
    }
}
