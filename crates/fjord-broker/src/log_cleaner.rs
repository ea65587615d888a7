//! The log cleaner manager (Kafka's `LogCleaner` thread and
//! `LogCleanerManager`): every `log.cleaner.backoff.ms` it picks the
//! dirtiest compacted log this broker hosts — led or followed: every replica
//! cleans its own copy, as in Kafka — and runs one pass on it
//! ([`fjord_log::cleaner`]), then looks again at once; it backs off only
//! when no log is due.
//!
//! `log.cleaner.backoff.ms`, `log.cleaner.dedupe.buffer.size` and
//! `log.cleaner.io.buffer.size` are read before each pass: the static
//! values with the dynamic broker configs of the applied metadata image
//! laid over them (IncrementalAlterConfigs on the cluster default or this
//! broker), so changing them needs no restart.
//!
//! Passes run on a blocking thread (`spawn_blocking`), never on a tokio
//! worker. Each pass takes the partition's lock twice, briefly: to plan and
//! to swap; the offset map and the rewrite run without it, so produce and
//! fetch go on meanwhile.
//!
//! A pass that fails while reading or writing its own files (the segments
//! it read may have been truncated under it) marks the partition
//! uncleanable until the broker restarts (Kafka's `uncleanable-partitions`)
//! and is logged; a failure while planning or swapping goes to the log
//! directory's fault handler like any other log I/O error.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_config::ConfigLayers;
use fjord_log::SwapOutcome;
use fjord_types::{BrokerId, TopicPartition};
use tokio_util::sync::CancellationToken;

use crate::metadata_cache::MetadataCache;
use crate::replica_manager::{ReplicaManager, now_ms};

/// `log.cleaner.*` broker configs (Kafka's names and defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCleanerConfig {
    /// `log.cleaner.enable` (true).
    pub enable: bool,
    /// `log.cleaner.dedupe.buffer.size` (128 MiB): the offset map's memory
    /// (one cleaner thread; a small log allocates only what it needs).
    pub dedupe_buffer_size: usize,
    /// `log.cleaner.io.buffer.size` (512 KiB): the write buffer of a
    /// cleaned segment.
    pub io_buffer_size: usize,
    /// `log.cleaner.backoff.ms` (15 s): the pause when no log needs cleaning.
    pub backoff: Duration,
}

impl Default for LogCleanerConfig {
    fn default() -> Self {
        LogCleanerConfig {
            enable: true,
            dedupe_buffer_size: 128 * 1024 * 1024,
            io_buffer_size: 512 * 1024,
            backoff: Duration::from_millis(15_000),
        }
    }
}

/// See the module docs.
pub(crate) struct LogCleaner {
    replicas: Arc<ReplicaManager>,
    /// The static config (the node's config file).
    config: LogCleanerConfig,
    /// Where the dynamic `log.cleaner.*` configs come from.
    metadata: MetadataCache,
    node_id: BrokerId,
    /// Partitions whose pass failed: skipped until restart.
    uncleanable: Mutex<HashSet<TopicPartition>>,
}

impl LogCleaner {
    pub(crate) fn new(
        replicas: Arc<ReplicaManager>,
        config: LogCleanerConfig,
        metadata: MetadataCache,
        node_id: BrokerId,
    ) -> Self {
        LogCleaner {
            replicas,
            config,
            metadata,
            node_id,
            uncleanable: Mutex::new(HashSet::new()),
        }
    }

    /// The effective config now: the static one with the dynamic broker
    /// configs of the applied image over it.
    fn current_config(&self) -> LogCleanerConfig {
        let image = self.metadata.image();
        let dynamic = &image.broker_configs;
        self.config.with_dynamic(&ConfigLayers {
            topic: None,
            per_broker: dynamic.broker(self.node_id),
            cluster_default: Some(&dynamic.cluster_default),
            static_configs: None,
        })
    }

    /// The manager loop, until `cancel`.
    pub(crate) async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            let cleaner = self.clone();
            let cleaned = tokio::task::spawn_blocking(move || cleaner.clean_dirtiest())
                .await
                .unwrap_or(false);
            if cleaned && !cancel.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.current_config().backoff) => {}
            }
        }
    }

    /// One round (blocking): clean the dirtiest due log, if any. Returns
    /// whether a pass was swapped in.
    pub(crate) fn clean_dirtiest(&self) -> bool {
        let now = now_ms();
        let skip = self
            .uncleanable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut max_ratio = 0.0f64;
        let mut dirtiest = None;
        for p in self.replicas.all() {
            if skip.contains(&p.tp) {
                continue;
            }
            let Some((range, due)) = p.cleanable_range(now) else {
                continue;
            };
            let ratio = range.dirty_ratio();
            max_ratio = max_ratio.max(ratio);
            // Forced passes (max.compaction.lag.ms) first, then by ratio.
            let rank = (range.forced, ratio);
            if due && dirtiest.as_ref().is_none_or(|(r, _)| rank > *r) {
                dirtiest = Some((rank, p));
            }
        }
        fjord_metrics::CLEANER_MAX_DIRTY_RATIO_PPM.set((max_ratio * 1e6) as i64);
        let Some((_, p)) = dirtiest else {
            return false;
        };
        let Some(plan) = p.plan_cleaning(now) else {
            return false;
        };
        let range = plan.range();
        let config = self.current_config();
        let cleaned = match plan.clean(config.dedupe_buffer_size, config.io_buffer_size, now) {
            Ok(cleaned) => cleaned,
            Err(err) if p.cleanable_range(now_ms()).is_none() => {
                // The partition was deleted (or went offline) under the pass.
                tracing::debug!(tp = %p.tp, error = %err, "log cleaning abandoned");
                return false;
            }
            Err(err) => {
                tracing::error!(tp = %p.tp, error = %err, "log cleaning failed; the partition is left uncleaned until restart");
                self.uncleanable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(p.tp.clone());
                return false;
            }
        };
        let stats = cleaned.stats;
        match p.swap_cleaned(cleaned) {
            Some(SwapOutcome::Swapped { replaced, cleaned }) => {
                fjord_metrics::CLEANER_BYTES_CLEANED.add(stats.bytes_read);
                fjord_metrics::CLEANER_BYTES_WRITTEN.add(stats.bytes_written);
                fjord_metrics::CLEANER_PASSES.inc();
                fjord_metrics::CLEANER_LAST_PASS_MS.set(stats.duration.as_millis() as i64);
                tracing::info!(tp = %p.tp, first_dirty = range.first_dirty, end = range.end,
                    dirty_ratio = stats.dirty_ratio, replaced, cleaned,
                    bytes_read = stats.bytes_read, bytes_written = stats.bytes_written,
                    records_removed = stats.records_removed, map_keys = stats.map_keys,
                    took = ?stats.duration, "cleaned log");
                // No progress (the map could not take one record): back off.
                cleaned > 0
            }
            Some(SwapOutcome::Discarded) => {
                tracing::debug!(tp = %p.tp, "the log changed during cleaning; pass discarded");
                false
            }
            None => false,
        }
    }
}
