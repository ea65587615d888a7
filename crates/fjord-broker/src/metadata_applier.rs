//! Brings the partitions this broker hosts in line with the committed
//! metadata image: opens (recovering) the logs of new partitions, updates
//! leadership and configs, and deletes the logs of deleted topics.

use std::collections::HashSet;
use std::sync::Arc;

use fjord_controller::{MetadataImage, TopicImage};
use fjord_log::{Log, LogConfig};
use fjord_types::TopicPartition;

use crate::config::BrokerConfig;
use crate::hw_checkpoint;
use crate::log_dir_failure::LogOperation;
use crate::log_dirs::LogDirs;
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

/// Apply `image`. Blocking: opening a log runs its recovery. Run it off the
/// async threads.
pub fn apply_image(
    replicas: &ReplicaManager,
    log_dirs: &LogDirs,
    config: &BrokerConfig,
    image: &MetadataImage,
) {
    let node_id = replicas.node_id();
    let failure = replicas.log_dir_failure();
    if failure.is_offline() {
        // The directory failed: the node is stopping; touch no log.
        return;
    }
    let now = now_ms();
    let mut wanted = HashSet::new();
    for topic in image.topics.values() {
        let log_config = topic_log_config(config, topic);
        let min_isr = topic_min_isr(config, topic);
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
                Some(p) if p.topic_id == topic.id => {
                    p.update(assignment, log_config.clone(), min_isr, now);
                }
                existing => {
                    if let Some(old) = existing {
                        delete_partition(replicas, log_dirs, &old);
                    }
                    let dir = match log_dirs.prepare(&tp, topic.id) {
                        Ok(dir) => dir,
                        Err(err) => {
                            failure.fail(LogOperation::MetadataApply, Some(&tp), &err);
                            return;
                        }
                    };
                    let opened = Log::open(&dir, log_config.clone()).and_then(|log| {
                        let checkpoint = hw_checkpoint::read(&dir).map_err(|source| {
                            fjord_log::LogError::Io {
                                context: "reading the high watermark checkpoint in",
                                path: dir.clone(),
                                source,
                            }
                        })?;
                        Ok((log, checkpoint))
                    });
                    match opened {
                        Ok((log, checkpoint)) => {
                            let partition = Partition::open(
                                tp.clone(),
                                topic.id,
                                node_id,
                                log,
                                assignment,
                                min_isr,
                                checkpoint,
                                failure.clone(),
                            );
                            replicas.insert(Arc::new(partition));
                            tracing::info!(%tp, topic_id = %topic.id, "partition log opened");
                        }
                        Err(err) => {
                            // Kafka takes the log dir offline when a log cannot be
                            // loaded or created; with one dir, the node stops.
                            failure.fail(LogOperation::MetadataApply, Some(&tp), &err);
                            return;
                        }
                    }
                }
            }
        }
    }
    for partition in replicas.all() {
        if !wanted.contains(&partition.tp) && !failure.is_offline() {
            delete_partition(replicas, log_dirs, &partition);
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
