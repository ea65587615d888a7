//! Brings the partitions this broker hosts in line with the committed
//! metadata image: opens (recovering) the logs of new partitions, updates
//! leadership and configs, and deletes the logs of deleted topics.
//!
//! Per applied image it walks only the topics that changed since the image it
//! applied before: the controller shares unchanged topics between images
//! (`Arc<TopicImage>`), so `Arc::ptr_eq` finds them. What changed for the
//! replicas this broker hosts comes back as [`LocalReplicaChange`]s (Kafka's
//! `LocalReplicaChanges`).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use fjord_controller::{MetadataImage, PartitionRegistration, TopicImage};
use fjord_log::{Log, LogConfig};
use fjord_types::{BrokerId, TopicId, TopicPartition};

use crate::config::BrokerConfig;
use crate::hw_checkpoint;
use crate::log_dir_failure::LogOperation;
use crate::log_dirs::LogDirs;
use crate::parallel::{LOG_PASS_THREADS, map_parallel};
use crate::partition::{Assignment, Partition};
use crate::replica_manager::{ReplicaManager, now_ms};

#[cfg(test)]
#[path = "metadata_apply_bench.rs"]
mod bench;

/// The effective log config of a topic: its overrides on the broker's defaults.
pub fn topic_log_config(config: &BrokerConfig, topic: &TopicImage) -> LogConfig {
    config
        .log_defaults
        .with_overrides(&topic.configs)
        .unwrap_or_else(|err| {
            // Configs are validated before the controller commits them, so
            // this only happens if validation rules tightened since.
            tracing::error!(topic = %topic.name, %err, "invalid topic config in metadata; using broker defaults");
            config.log_defaults.clone()
        })
}

/// `min.insync.replicas` of a topic.
pub fn topic_min_isr(config: &BrokerConfig, topic: &TopicImage) -> usize {
    topic
        .configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(config.min_insync_replicas.max(1) as usize)
}

/// What one applied image changed for a partition this broker hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalReplicaChange {
    /// This broker leads the partition: newly hosted, newly elected, or
    /// re-elected at a new leader epoch.
    BecameLeader {
        tp: TopicPartition,
        topic_id: TopicId,
        leader_epoch: i32,
    },
    /// This broker follows `leader` (`NO_BROKER`: none): newly hosted, or the
    /// leadership moved (a new leader epoch).
    BecameFollower {
        tp: TopicPartition,
        topic_id: TopicId,
        leader: BrokerId,
        leader_epoch: i32,
    },
    /// Same leader and leader epoch, new registration (partition epoch): the
    /// ISR or, during a reassignment, the replicas changed.
    Updated {
        tp: TopicPartition,
        topic_id: TopicId,
        partition_epoch: i32,
    },
    /// The topic was deleted or this broker left the partition's replicas: its
    /// copy is deleted.
    Deleted {
        tp: TopicPartition,
        topic_id: TopicId,
    },
}

/// The topics one image changed against the image applied before it.
struct TopicsDelta<'a> {
    /// New or changed topics, with the topic as it was (same id) if any.
    changed: Vec<(Option<&'a TopicImage>, &'a TopicImage)>,
    /// Topics the new image no longer has.
    deleted: Vec<&'a TopicImage>,
}

/// Topics whose `Arc` differs from `prev`'s (all of them without `prev`, or
/// when the dynamic broker configs changed: every topic's effective config
/// may have), and topics gone since `prev`.
fn topics_delta<'a>(prev: Option<&'a MetadataImage>, image: &'a MetadataImage) -> TopicsDelta<'a> {
    let Some(prev) = prev else {
        return TopicsDelta {
            changed: image.topics.values().map(|t| (None, &**t)).collect(),
            deleted: Vec::new(),
        };
    };
    let broker_configs_changed = prev.broker_configs != image.broker_configs;
    if broker_configs_changed {
        tracing::info!(
            cluster_default = ?image.broker_configs.cluster_default,
            brokers = ?image.broker_configs.brokers,
            "dynamic broker configs changed: every topic's effective config is recomputed"
        );
    }
    let changed = image
        .topics
        .iter()
        .filter_map(|(id, topic)| match prev.topics.get(id) {
            Some(old) if Arc::ptr_eq(old, topic) && !broker_configs_changed => None,
            old => Some((old.map(|t| &**t), &**topic)),
        })
        .collect();
    let deleted = prev
        .topics
        .iter()
        .filter(|(id, _)| !image.topics.contains_key(id))
        .map(|(_, t)| &**t)
        .collect();
    TopicsDelta { changed, deleted }
}

/// The partitions of `topic` that `node_id` hosts, with their index.
fn hosted(
    node_id: BrokerId,
    topic: Option<&TopicImage>,
) -> impl Iterator<Item = (usize, &PartitionRegistration)> {
    topic
        .into_iter()
        .flat_map(|t| t.partitions.iter().enumerate())
        .filter(move |(_, reg)| reg.replicas.contains(&node_id))
}

/// The local replica changes between two versions of one topic (`None`: the
/// topic does not exist on that side). Pure.
fn topic_changes(
    node_id: BrokerId,
    old: Option<&TopicImage>,
    new: Option<&TopicImage>,
) -> Vec<LocalReplicaChange> {
    let mut changes = Vec::new();
    // A topic re-created under its name is another topic.
    let old = old.filter(|o| new.is_none_or(|n| n.id == o.id));
    let mut kept = BTreeSet::new();
    if let Some(new) = new {
        for (index, reg) in hosted(node_id, Some(new)) {
            kept.insert(index);
            let before = hosted(node_id, old)
                .find(|&(i, _)| i == index)
                .map(|(_, r)| r);
            if before == Some(reg) {
                continue;
            }
            let (tp, topic_id) = (TopicPartition::new(new.name.clone(), index as i32), new.id);
            let moved =
                before.is_none_or(|b| b.leader != reg.leader || b.leader_epoch != reg.leader_epoch);
            changes.push(if !moved {
                LocalReplicaChange::Updated {
                    tp,
                    topic_id,
                    partition_epoch: reg.partition_epoch,
                }
            } else if reg.leader == node_id {
                LocalReplicaChange::BecameLeader {
                    tp,
                    topic_id,
                    leader_epoch: reg.leader_epoch,
                }
            } else {
                LocalReplicaChange::BecameFollower {
                    tp,
                    topic_id,
                    leader: reg.leader,
                    leader_epoch: reg.leader_epoch,
                }
            });
        }
    }
    if let Some(old) = old {
        for (index, _) in hosted(node_id, Some(old)) {
            if !kept.contains(&index) {
                changes.push(LocalReplicaChange::Deleted {
                    tp: TopicPartition::new(old.name.clone(), index as i32),
                    topic_id: old.id,
                });
            }
        }
    }
    changes
}

/// The local replica changes from `prev` (`None`: nothing applied yet) to
/// `image`, for the replicas `node_id` hosts. Pure; what [`apply_delta`]
/// returns, for the tests.
#[cfg(test)]
fn local_changes(
    node_id: BrokerId,
    prev: Option<&MetadataImage>,
    image: &MetadataImage,
) -> Vec<LocalReplicaChange> {
    let delta = topics_delta(prev, image);
    let mut changes = Vec::new();
    for old in delta.deleted {
        changes.extend(topic_changes(node_id, Some(old), None));
    }
    for (old, new) in delta.changed {
        changes.extend(topic_changes(node_id, old, Some(new)));
    }
    changes
}

/// Apply `image` in full (at start: no image applied before). Blocking:
/// opening a log runs its recovery. Run it off the async threads.
pub fn apply_image(
    replicas: &ReplicaManager,
    log_dirs: &LogDirs,
    config: &BrokerConfig,
    image: &MetadataImage,
) -> Vec<LocalReplicaChange> {
    apply_delta(replicas, log_dirs, config, None, image)
}

/// Apply `image`, touching only the topics that changed since `prev`, the
/// image applied before (`None`: walk every topic and delete every local
/// partition the image does not have). Returns the local replica changes.
/// Blocking: opening a log runs its recovery. Run it off the async threads.
pub fn apply_delta(
    replicas: &ReplicaManager,
    log_dirs: &LogDirs,
    config: &BrokerConfig,
    prev: Option<&MetadataImage>,
    image: &MetadataImage,
) -> Vec<LocalReplicaChange> {
    let node_id = replicas.node_id();
    let failure = replicas.log_dir_failure();
    if failure.is_offline() {
        // The directory failed: the node is stopping; touch no log.
        return Vec::new();
    }
    let now = now_ms();
    // Dynamic broker configs (log.retention.ms...) over the static ones.
    let config = &config.with_dynamic(&image.broker_configs);
    let delta = topics_delta(prev, image);
    let mut changes = Vec::new();
    // Deleted topics first: a topic re-created under the same name reuses
    // the directories' names.
    for old in delta.deleted {
        for index in 0..old.partitions.len() {
            let tp = TopicPartition::new(old.name.clone(), index as i32);
            if let Some(p) = replicas.get(&tp)
                && p.topic_id == old.id
                && !failure.is_offline()
            {
                delete_partition(replicas, log_dirs, &p);
            }
        }
        changes.extend(topic_changes(node_id, Some(old), None));
    }
    let mut wanted = HashSet::new();
    for (old, topic) in delta.changed {
        if !apply_topic(replicas, log_dirs, config, topic, now, &mut wanted) {
            return changes;
        }
        // Partitions this broker no longer hosts (reassigned away).
        for index in 0..topic.partitions.len() {
            let tp = TopicPartition::new(topic.name.clone(), index as i32);
            if !wanted.contains(&tp)
                && let Some(p) = replicas.get(&tp)
                && p.topic_id == topic.id
                && !failure.is_offline()
            {
                delete_partition(replicas, log_dirs, &p);
            }
        }
        changes.extend(topic_changes(node_id, old, Some(topic)));
    }
    if prev.is_none() {
        for partition in replicas.all() {
            if !wanted.contains(&partition.tp) && !failure.is_offline() {
                delete_partition(replicas, log_dirs, &partition);
            }
        }
    }
    changes
}

/// Bring the partitions of `topic` this broker hosts in line with it; adds
/// them to `wanted`. `false` when a log could not be opened (the log
/// directory failed: stop).
fn apply_topic(
    replicas: &ReplicaManager,
    log_dirs: &LogDirs,
    config: &BrokerConfig,
    topic: &TopicImage,
    now: i64,
    wanted: &mut HashSet<TopicPartition>,
) -> bool {
    let node_id = replicas.node_id();
    let failure = replicas.log_dir_failure();
    let log_config = topic_log_config(config, topic);
    let min_isr = topic_min_isr(config, topic);
    let mut to_open = Vec::new();
    let mut updates = Vec::new();
    for (index, reg) in topic.partitions.iter().enumerate() {
        if !reg.replicas.contains(&node_id) {
            continue;
        }
        let tp = TopicPartition::new(topic.name.clone(), index as i32);
        let assignment = Assignment {
            leader: reg.leader,
            leader_epoch: reg.leader_epoch,
            partition_epoch: reg.partition_epoch,
            replicas: reg.replicas.clone(),
            isr: reg.isr.clone(),
        };
        wanted.insert(tp.clone());
        match replicas.get(&tp) {
            Some(p) if p.topic_id == topic.id => updates.push((p, assignment)),
            existing => {
                if let Some(old) = existing {
                    delete_partition(replicas, log_dirs, &old);
                }
                to_open.push((tp, assignment));
            }
        }
    }
    // A new leader epoch is a checkpoint write (two fsyncs): after a
    // restart every partition of the node gets one.
    map_parallel(&updates, LOG_PASS_THREADS, |(p, assignment)| {
        p.update(assignment.clone(), log_config.clone(), min_isr, now);
    });
    // Opening is mostly waiting for fsyncs (see `parallel`).
    let opened = map_parallel(&to_open, LOG_PASS_THREADS, |(tp, assignment)| {
        let (log, checkpoint) = open_log(log_dirs, &log_config, topic.id, tp)?;
        Ok(Partition::open(
            tp.clone(),
            topic.id,
            node_id,
            log,
            assignment.clone(),
            min_isr,
            checkpoint,
            failure.clone(),
        ))
    });
    for ((tp, _), opened) in to_open.into_iter().zip(opened) {
        match opened {
            Ok(partition) => {
                replicas.insert(Arc::new(partition));
                tracing::info!(%tp, topic_id = %topic.id, "partition log opened");
            }
            Err(OpenError::Prepare(err)) if fjord_log::io_is_out_of_space(&err) => {
                failure.report_io(LogOperation::OpenLog, Some(&tp), &err);
                replicas.set_opens_pending(true);
            }
            Err(OpenError::Prepare(err)) => {
                failure.fail(LogOperation::MetadataApply, Some(&tp), &err);
                return false;
            }
            Err(OpenError::Log(err)) if err.is_out_of_space() => {
                // A full disk: leave it unhosted and retry (see
                // `open_pending`) rather than stop the node, which
                // would fail the same way at every restart.
                failure.report(LogOperation::OpenLog, Some(&tp), &err);
                replicas.set_opens_pending(true);
            }
            Err(OpenError::Log(err)) => {
                // Kafka takes the log dir offline when a log cannot be
                // loaded or created; with one dir, the node stops.
                failure.fail(LogOperation::MetadataApply, Some(&tp), &err);
                return false;
            }
        }
    }
    true
}

/// Why a partition's log did not open.
enum OpenError {
    /// Its directory could not be made ready.
    Prepare(std::io::Error),
    Log(fjord_log::LogError),
}

/// Open (or create) the log of `tp`, with its high watermark checkpoint.
fn open_log(
    log_dirs: &LogDirs,
    log_config: &LogConfig,
    topic_id: TopicId,
    tp: &TopicPartition,
) -> Result<(Log, Option<fjord_types::Offset>), OpenError> {
    let dir = log_dirs.prepare(tp, topic_id).map_err(OpenError::Prepare)?;
    let log = Log::open(&dir, log_config.clone()).map_err(OpenError::Log)?;
    let checkpoint = hw_checkpoint::read(&dir).map_err(|source| {
        OpenError::Log(fjord_log::LogError::Io {
            context: "reading the high watermark checkpoint in",
            path: dir.clone(),
            source,
        })
    })?;
    Ok((log, checkpoint))
}

/// Open the logs of hosted partitions that a full disk kept from opening
/// when `image` (the image applied last) was applied, and take up the
/// leaderships a full disk kept from starting ([`Partition::update`]
/// retries). The local replica changes were reported then; nothing is
/// reported again. Blocking.
pub fn open_pending(
    replicas: &ReplicaManager,
    log_dirs: &LogDirs,
    config: &BrokerConfig,
    image: &MetadataImage,
) {
    if replicas.log_dir_failure().is_offline() {
        return;
    }
    replicas.set_opens_pending(false);
    let config = &config.with_dynamic(&image.broker_configs);
    let now = now_ms();
    let mut wanted = HashSet::new();
    for topic in image.topics.values() {
        let node_id = replicas.node_id();
        let hosted = topic.partitions.iter().enumerate().any(|(index, reg)| {
            reg.replicas.contains(&node_id)
                && replicas
                    .get(&TopicPartition::new(topic.name.clone(), index as i32))
                    .is_none_or(|p| {
                        p.topic_id != topic.id || (reg.leader == node_id && !p.is_leader())
                    })
        });
        if hosted && !apply_topic(replicas, log_dirs, config, topic, now, &mut wanted) {
            return;
        }
    }
}

fn delete_partition(replicas: &ReplicaManager, log_dirs: &LogDirs, partition: &Partition) {
    replicas.remove(&partition.tp);
    drop(partition.take_log());
    let dir = log_dirs.partition_dir(&partition.tp);
    match log_dirs.delete(&dir, partition.topic_id) {
        Ok(()) => tracing::info!(tp = %partition.tp, "partition log deleted"),
        Err(err) => {
            replicas
                .log_dir_failure()
                .fail(LogOperation::MetadataApply, Some(&partition.tp), &err);
        }
    }
}

/// At start, delete directories of partitions the image no longer has
/// (deleted while this broker was down).
pub fn remove_stray_logs(replicas: &ReplicaManager, log_dirs: &LogDirs, image: &MetadataImage) {
    let (node_id, failure) = (replicas.node_id(), replicas.log_dir_failure());
    let found = match log_dirs.scan() {
        Ok(found) => found,
        Err(err) => {
            failure.fail(LogOperation::MetadataApply, None, &err);
            return;
        }
    };
    for dir in found {
        let live = image
            .topic_ids
            .get(&dir.tp.topic)
            .and_then(|id| image.topics.get(id));
        let keep = match (live, dir.topic_id) {
            (Some(topic), Some(id)) => {
                topic.id == id
                    && topic
                        .partitions
                        .get(dir.tp.partition as usize)
                        .is_some_and(|p| p.replicas.contains(&node_id))
            }
            _ => false,
        };
        if !keep {
            let id = dir
                .topic_id
                .unwrap_or(fjord_types::TopicId(uuid::Uuid::nil()));
            match log_dirs.delete(&dir.path, id) {
                Ok(()) => tracing::info!(tp = %dir.tp, "stray partition log deleted"),
                Err(err) => {
                    failure.fail(LogOperation::MetadataApply, Some(&dir.tp), &err);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fjord_controller::PartitionRegistration;
    use uuid::Uuid;

    use super::*;
    use crate::log_dir_failure::LogDirFailure;

    const A: TopicId = TopicId(Uuid::from_u128(1));
    const B: TopicId = TopicId(Uuid::from_u128(2));

    fn reg(
        replicas: &[BrokerId],
        isr: &[BrokerId],
        leader: BrokerId,
        epoch: i32,
    ) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: epoch,
            partition_epoch: epoch,
            adding_replicas: vec![],
            removing_replicas: vec![],
        }
    }

    fn topic(id: TopicId, name: &str, partitions: Vec<PartitionRegistration>) -> Arc<TopicImage> {
        Arc::new(TopicImage {
            id,
            name: name.into(),
            partitions,
            configs: BTreeMap::new(),
        })
    }

    fn image(topics: &[&Arc<TopicImage>]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for t in topics {
            image.topics.insert(t.id, Arc::clone(t));
            image.topic_ids.insert(t.name.clone(), t.id);
        }
        image
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic.to_string(), partition)
    }

    /// Node 1 leads a-0, follows a-1 and does not host a-2; b is unrelated.
    fn base() -> (Arc<TopicImage>, Arc<TopicImage>) {
        let a = topic(
            A,
            "a",
            vec![
                reg(&[1, 2], &[1, 2], 1, 0),
                reg(&[2, 1], &[2, 1], 2, 0),
                reg(&[2, 3], &[2, 3], 2, 0),
            ],
        );
        let b = topic(B, "b", vec![reg(&[1, 2], &[1, 2], 1, 0)]);
        (a, b)
    }

    #[test]
    fn unchanged_topics_yield_nothing() {
        let (a, b) = base();
        let prev = image(&[&a, &b]);
        let mut next = prev.clone();
        next.metadata_offset += 1;
        assert_eq!(local_changes(1, Some(&prev), &next), vec![]);
    }

    #[test]
    fn each_kind_of_change() {
        let (a, b) = base();
        let prev = image(&[&a, &b]);
        let with_a =
            |partitions: Vec<PartitionRegistration>| image(&[&topic(A, "a", partitions), &b]);
        let cases: Vec<(&str, MetadataImage, Vec<LocalReplicaChange>)> = vec![
            (
                "ISR change of a led partition",
                with_a(vec![
                    PartitionRegistration {
                        partition_epoch: 1,
                        ..reg(&[1, 2], &[1], 1, 0)
                    },
                    a.partitions[1].clone(),
                    a.partitions[2].clone(),
                ]),
                vec![LocalReplicaChange::Updated {
                    tp: tp("a", 0),
                    topic_id: A,
                    partition_epoch: 1,
                }],
            ),
            (
                "leader change: a-0 to 2, a-1 to 1",
                with_a(vec![
                    reg(&[1, 2], &[1, 2], 2, 1),
                    reg(&[2, 1], &[2, 1], 1, 1),
                    a.partitions[2].clone(),
                ]),
                vec![
                    LocalReplicaChange::BecameFollower {
                        tp: tp("a", 0),
                        topic_id: A,
                        leader: 2,
                        leader_epoch: 1,
                    },
                    LocalReplicaChange::BecameLeader {
                        tp: tp("a", 1),
                        topic_id: A,
                        leader_epoch: 1,
                    },
                ],
            ),
            (
                "an unhosted partition changes: nothing",
                with_a(vec![
                    a.partitions[0].clone(),
                    a.partitions[1].clone(),
                    reg(&[2, 3], &[2], 2, 1),
                ]),
                vec![],
            ),
            (
                "topic deleted",
                image(&[&b]),
                vec![
                    LocalReplicaChange::Deleted {
                        tp: tp("a", 0),
                        topic_id: A,
                    },
                    LocalReplicaChange::Deleted {
                        tp: tp("a", 1),
                        topic_id: A,
                    },
                ],
            ),
            (
                "new topic",
                image(&[
                    &a,
                    &b,
                    &topic(
                        TopicId(Uuid::from_u128(3)),
                        "c",
                        vec![reg(&[3, 1], &[3, 1], 3, 0), reg(&[1, 3], &[1, 3], 1, 0)],
                    ),
                ]),
                vec![
                    LocalReplicaChange::BecameFollower {
                        tp: tp("c", 0),
                        topic_id: TopicId(Uuid::from_u128(3)),
                        leader: 3,
                        leader_epoch: 0,
                    },
                    LocalReplicaChange::BecameLeader {
                        tp: tp("c", 1),
                        topic_id: TopicId(Uuid::from_u128(3)),
                        leader_epoch: 0,
                    },
                ],
            ),
            (
                "reassigned away from a-1",
                with_a(vec![
                    a.partitions[0].clone(),
                    reg(&[2, 3], &[2], 2, 1),
                    a.partitions[2].clone(),
                ]),
                vec![LocalReplicaChange::Deleted {
                    tp: tp("a", 1),
                    topic_id: A,
                }],
            ),
        ];
        for (name, next, want) in cases {
            assert_eq!(local_changes(1, Some(&prev), &next), want, "{name}");
        }
    }

    /// apply_delta walks only changed topics: a topic whose `Arc` is the one
    /// applied before is not looked at (here: its partition stays unopened),
    /// and the changes it returns are the pure ones.
    #[test]
    fn apply_delta_touches_only_changed_topics() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new(1, dir.path().to_path_buf(), "localhost".into(), 9092);
        let log_dirs = LogDirs::open(&config.log_dir).unwrap();
        let replicas = ReplicaManager::new(1, LogDirFailure::new(config.log_dir.clone()));
        let (a, b) = base();
        let first = image(&[&a]);
        let changes = apply_image(&replicas, &log_dirs, &config, &first);
        assert_eq!(changes, local_changes(1, None, &first));
        assert_eq!(replicas.all().len(), 2);

        // b appears in `prev` as if applied, but was never opened: skipped.
        let prev = image(&[&a, &b]);
        let a2 = topic(
            A,
            "a",
            vec![
                reg(&[1, 2], &[1, 2], 2, 1),
                a.partitions[1].clone(),
                a.partitions[2].clone(),
            ],
        );
        let next = image(&[&a2, &b]);
        let changes = apply_delta(&replicas, &log_dirs, &config, Some(&prev), &next);
        assert_eq!(changes, local_changes(1, Some(&prev), &next));
        assert!(replicas.get(&tp("b", 0)).is_none());
        assert!(!replicas.get(&tp("a", 0)).unwrap().is_leader());

        // Topic a deleted: its local partitions go.
        let gone = image(&[&b]);
        let changes = apply_delta(&replicas, &log_dirs, &config, Some(&next), &gone);
        assert_eq!(changes.len(), 2);
        assert!(replicas.all().is_empty());
        assert!(!replicas.log_dir_failure().is_offline());
    }
}
