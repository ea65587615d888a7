//! The leader side of replica fetch.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_rpc::{
    EpochEndOffset, FetchPartition, FetchedPartition, ReplicaFetchRequest, ReplicaFetchResponse,
};
use fjord_types::{TopicId, TopicPartition};
use futures::future::select_all;
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::error_code;
use crate::broker::Broker;
use crate::error::PartitionError;
use crate::partition::{Partition, ReplicaFetch};
use crate::replica_manager::now_ms;

/// The longest a follower's fetch may long-poll, whatever it asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(10);

fn code(error: ResponseError) -> i32 {
    i32::from(error.code())
}

fn failed(req: &FetchPartition, error_code: i32) -> FetchedPartition {
    FetchedPartition {
        topic_id: req.topic_id.clone(),
        partition: req.partition,
        error_code,
        high_watermark: -1,
        log_start_offset: -1,
        log_end_offset: -1,
        diverging_epoch: None,
        records: Bytes::new(),
    }
}

impl Broker {
    /// Answer a follower's fetch; long-polls up to `max_wait_ms` while no
    /// partition has anything new.
    pub(crate) async fn serve_replica_fetch(
        self: &Arc<Self>,
        req: ReplicaFetchRequest,
    ) -> ReplicaFetchResponse {
        let image = self.metadata();
        // KIP-380: a fetch from an older incarnation of the follower is refused.
        if req.broker_epoch >= 0
            && image
                .brokers
                .get(&req.replica_id)
                .is_some_and(|b| b.broker_epoch > req.broker_epoch)
        {
            return ReplicaFetchResponse {
                error_code: code(ResponseError::StaleBrokerEpoch),
                partitions: Vec::new(),
            };
        }
        let partitions: Vec<Result<Arc<Partition>, i32>> = req
            .partitions
            .iter()
            .map(|p| {
                let id = Uuid::from_slice(&p.topic_id)
                    .map_err(|_| code(ResponseError::UnknownTopicId))?;
                let topic = image
                    .topics
                    .get(&TopicId(id))
                    .ok_or(code(ResponseError::UnknownTopicId))?;
                self.replicas
                    .get(&TopicPartition::new(topic.name.clone(), p.partition))
                    .filter(|partition| partition.topic_id == topic.id)
                    .ok_or(code(ResponseError::UnknownTopicOrPartition))
            })
            .collect();
        let max_wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_WAIT_CAP);
        let deadline = Instant::now() + max_wait;
        let min_bytes = (req.min_bytes as usize).max(1);
        loop {
            // Subscribe before reading, so an append between the read and
            // the wait still wakes us.
            let mut watchers: Vec<_> = partitions
                .iter()
                .flatten()
                .map(|p| p.subscribe_leo())
                .collect();
            let (response, bytes, complete) = self.replica_fetch_once(&req, &partitions);
            if bytes >= min_bytes || complete || watchers.is_empty() || Instant::now() >= deadline {
                return response;
            }
            let any_grew = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            if tokio::time::timeout_at(deadline, any_grew).await.is_err() {
                // Timed out: one last read (it also refreshes the follower's
                // fetch time and the high watermark it is told).
                return self.replica_fetch_once(&req, &partitions).0;
            }
        }
    }

    /// One pass over the requested partitions. Returns the response, its
    /// record bytes, and whether it must go back now (an error or a
    /// divergence the follower has to act on).
    fn replica_fetch_once(
        self: &Arc<Self>,
        req: &ReplicaFetchRequest,
        partitions: &[Result<Arc<Partition>, i32>],
    ) -> (ReplicaFetchResponse, usize, bool) {
        let now = now_ms();
        let mut remaining = req.max_bytes as usize;
        let mut total = 0usize;
        let mut complete = false;
        let mut out = Vec::with_capacity(partitions.len());
        for (p, partition) in req.partitions.iter().zip(partitions) {
            let partition = match partition {
                Ok(partition) => partition,
                Err(code) => {
                    complete = true;
                    out.push(failed(p, *code));
                    continue;
                }
            };
            let fetch = ReplicaFetch {
                replica: req.replica_id,
                current_leader_epoch: p.current_leader_epoch,
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: p.last_fetched_epoch,
                max_bytes: (p.max_bytes as usize).min(remaining),
                // KIP-74: the first partition with data returns at least one
                // whole batch, so a follower never stalls on a large batch.
                min_one_batch: total == 0,
                log_start_offset: p.log_start_offset,
            };
            match partition.read_for_follower(fetch, now) {
                Ok(fetched) => {
                    if let Some(proposal) = fetched.isr_change {
                        self.propose_isr(partition.clone(), proposal);
                    }
                    complete |= fetched.diverging.is_some();
                    total += fetched.records.len();
                    remaining = remaining.saturating_sub(fetched.records.len());
                    out.push(FetchedPartition {
                        topic_id: p.topic_id.clone(),
                        partition: p.partition,
                        error_code: 0,
                        high_watermark: fetched.high_watermark,
                        log_start_offset: fetched.log_start_offset,
                        log_end_offset: fetched.log_end_offset,
                        diverging_epoch: fetched.diverging.map(|d| EpochEndOffset {
                            epoch: d.epoch,
                            end_offset: d.end_offset,
                        }),
                        records: fetched.records,
                    });
                }
                Err(err) => {
                    complete = true;
                    tracing::debug!(tp = %partition.tp, replica = req.replica_id, %err, "replica fetch refused");
                    let mut answer = failed(p, error_code(&err));
                    if let PartitionError::OffsetOutOfRange {
                        log_start, log_end, ..
                    } = err
                    {
                        // The follower resets from these.
                        answer.log_start_offset = log_start;
                        answer.log_end_offset = log_end;
                    }
                    out.push(answer);
                }
            }
        }
        let response = ReplicaFetchResponse {
            error_code: 0,
            partitions: out,
        };
        (response, total, complete)
    }
}
