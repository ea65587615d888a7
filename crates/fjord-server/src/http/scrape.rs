//! One `/metrics` scrape: the process-wide counters of [`fjord_metrics`]
//! plus gauges computed now from the broker's applied metadata image, the
//! group coordinator and the controller's Raft state.
//!
//! Metric names and meanings are listed in docs/metrics.md.

use fjord_broker::Broker;
use fjord_metrics::{MetricKind, TextEncoder};
use kafka_protocol::messages::ApiKey;

use super::status::NodeStatus;

/// How long a scrape waits for the group coordinator before leaving the
/// lag series out.
const LAG_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The whole exposition text for `status`'s node.
pub(crate) async fn render(status: &NodeStatus) -> String {
    let mut e = TextEncoder::new();
    requests(&mut e);
    e.single(
        "fjord_bytes_in_total",
        "Record bytes appended by Kafka Produce requests.",
        MetricKind::Counter,
        fjord_metrics::BYTES_IN.get(),
    );
    e.single(
        "fjord_bytes_out_total",
        "Record bytes returned by Kafka Fetch requests.",
        MetricKind::Counter,
        fjord_metrics::BYTES_OUT.get(),
    );
    e.single(
        "fjord_isr_shrinks_total",
        "ISR shrinks this node proposed as partition leader and the controller committed.",
        MetricKind::Counter,
        fjord_metrics::ISR_SHRINKS.get(),
    );
    e.single(
        "fjord_isr_expands_total",
        "ISR expansions this node proposed as partition leader and the controller committed.",
        MetricKind::Counter,
        fjord_metrics::ISR_EXPANDS.get(),
    );
    sasl(&mut e);
    log_cleaner(&mut e);
    if let Some(broker) = status.broker() {
        partitions(&mut e, broker);
        last_stable_offset_lag(&mut e, broker);
        transactions(&mut e, broker).await;
        consumer_group_lag(&mut e, broker).await;
    }
    controller(&mut e, status);
    process(&mut e);
    e.finish()
}

/// SASL authentication counters (docs/metrics.md, "SASL").
fn sasl(e: &mut TextEncoder) {
    e.single(
        "fjord_sasl_authentications_total",
        "SASL authentications that succeeded (re-authentications not counted).",
        MetricKind::Counter,
        fjord_metrics::SASL_AUTHENTICATIONS.get(),
    );
    e.single(
        "fjord_sasl_reauthentications_total",
        "SASL re-authentications (KIP-368) that succeeded.",
        MetricKind::Counter,
        fjord_metrics::SASL_REAUTHENTICATIONS.get(),
    );
    e.single(
        "fjord_sasl_failed_authentications_total",
        "SASL authentications and re-authentications that failed.",
        MetricKind::Counter,
        fjord_metrics::SASL_FAILED_AUTHENTICATIONS.get(),
    );
}

/// The log cleaner's counters (docs/metrics.md, "Log cleaner").
fn log_cleaner(e: &mut TextEncoder) {
    e.single(
        "fjord_log_cleaner_bytes_cleaned_total",
        "Bytes of log segments the log cleaner rewrote.",
        MetricKind::Counter,
        fjord_metrics::CLEANER_BYTES_CLEANED.get(),
    );
    e.single(
        "fjord_log_cleaner_bytes_written_total",
        "Bytes of cleaned segments the log cleaner wrote.",
        MetricKind::Counter,
        fjord_metrics::CLEANER_BYTES_WRITTEN.get(),
    );
    e.single(
        "fjord_log_cleaner_passes_total",
        "Log cleaning passes swapped in.",
        MetricKind::Counter,
        fjord_metrics::CLEANER_PASSES.get(),
    );
    e.single(
        "fjord_log_cleaner_last_pass_seconds",
        "Wall time of the last log cleaning pass.",
        MetricKind::Gauge,
        fjord_metrics::CLEANER_LAST_PASS_MS.get() as f64 / 1000.0,
    );
    e.single(
        "fjord_log_cleaner_max_dirty_ratio",
        "Largest dirty ratio among this node's compacted logs at the last cleaner check.",
        MetricKind::Gauge,
        fjord_metrics::CLEANER_MAX_DIRTY_RATIO_PPM.get() as f64 / 1e6,
    );
}

/// `fjord_requests_total` and `fjord_request_duration_seconds` per API.
fn requests(e: &mut TextEncoder) {
    let snapshots = fjord_metrics::REQUESTS.snapshots();
    let named: Vec<(String, fjord_metrics::HistogramSnapshot)> = snapshots
        .into_iter()
        .map(|(key, h)| (api_name(key), h))
        .collect();
    e.family(
        "fjord_requests_total",
        "Kafka requests handled, by API.",
        MetricKind::Counter,
    );
    for (api, h) in &named {
        e.sample("fjord_requests_total", &[("api", api.as_str())], h.count);
    }
    e.family(
        "fjord_request_duration_seconds",
        "Time from a Kafka request decoded to its response ready, by API.",
        MetricKind::Histogram,
    );
    for (api, h) in &named {
        e.histogram(
            "fjord_request_duration_seconds",
            &[("api", api.as_str())],
            h,
        );
    }
}

/// Kafka's name of an API key ("Produce"), or the number for keys this
/// kafka-protocol version does not know.
fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| key.to_string(), |api| format!("{api:?}"))
}

/// Leadership and replication health from the applied metadata image.
fn partitions(e: &mut TextEncoder, broker: &Broker) {
    let image = broker.metadata();
    let me = broker.node_id();
    let (mut led, mut under_replicated, mut offline) = (0u64, 0u64, 0u64);
    for partition in image.topics.values().flat_map(|t| &t.partitions) {
        if partition.leader < 0 {
            offline += 1;
        }
        if partition.leader == me {
            led += 1;
            if partition.isr.len() < partition.replicas.len() {
                under_replicated += 1;
            }
        }
    }
    e.single(
        "fjord_partitions_led",
        "Partitions this broker leads (internal topics included).",
        MetricKind::Gauge,
        led,
    );
    e.single(
        "fjord_under_replicated_partitions",
        "Partitions this broker leads whose ISR is smaller than the replica set.",
        MetricKind::Gauge,
        under_replicated,
    );
    e.single(
        "fjord_offline_partitions",
        "Partitions of the cluster without a leader, as this node's metadata shows them.",
        MetricKind::Gauge,
        offline,
    );
}

/// `fjord_partition_last_stable_offset_lag`: per partition led here, how
/// far open transactions hold read_committed consumers back (Kafka's
/// `LastStableOffsetLag`).
fn last_stable_offset_lag(e: &mut TextEncoder, broker: &Broker) {
    e.family(
        "fjord_partition_last_stable_offset_lag",
        "High watermark minus last stable offset of a partition this broker leads.",
        MetricKind::Gauge,
    );
    let mut led: Vec<_> = broker
        .replicas()
        .all()
        .into_iter()
        .filter(|p| p.is_leader())
        .collect();
    led.sort_by(|a, b| a.tp.cmp(&b.tp));
    for replica in led {
        let Some(lso) = replica.last_stable_offset() else {
            continue;
        };
        let lag = (replica.high_watermark() - lso).max(0);
        let partition = replica.tp.partition.to_string();
        e.sample(
            "fjord_partition_last_stable_offset_lag",
            &[
                ("topic", replica.tp.topic.as_str()),
                ("partition", partition.as_str()),
            ],
            lag,
        );
    }
}

/// `fjord_transactions`: the transactional ids this broker coordinates, by
/// state (Ongoing and Prepare* are transactions in flight). Left out while
/// a coordinator partition loads, or when its shard does not answer within
/// a second.
async fn transactions(e: &mut TextEncoder, broker: &Broker) {
    use fjord_coordinator::txn::{ListTransactionsFilter, TransactionState};
    let filter = ListTransactionsFilter {
        duration_ms: -1,
        ..ListTransactionsFilter::default()
    };
    let Ok(Ok(listed)) = tokio::time::timeout(LAG_LOCK_WAIT, broker.txns().list(&filter)).await
    else {
        return;
    };
    e.family(
        "fjord_transactions",
        "Transactional ids this broker coordinates, by transaction state.",
        MetricKind::Gauge,
    );
    for state in TransactionState::ALL {
        if state == TransactionState::Dead {
            continue;
        }
        let count = listed
            .transactions
            .iter()
            .filter(|t| t.state == state)
            .count();
        e.sample(
            "fjord_transactions",
            &[("state", state.as_str())],
            count as u64,
        );
    }
}

/// `fjord_consumergroup_lag`: high watermark minus committed offset, for
/// the groups this broker coordinates and the partitions it has a replica
/// of (other partitions' offsets are not known here).
async fn consumer_group_lag(e: &mut TextEncoder, broker: &Broker) {
    // The coordinator's lock is held across its log appends; a scrape does
    // not wait behind a slow one.
    let offsets = tokio::time::timeout(LAG_LOCK_WAIT, broker.groups().coordinated_offsets())
        .await
        .unwrap_or_default();
    e.family(
        "fjord_consumergroup_lag",
        "Messages a consumer group is behind: partition high watermark minus its committed offset.",
        MetricKind::Gauge,
    );
    for committed in offsets {
        let Some(replica) = broker.local_replica(&committed.tp) else {
            continue;
        };
        let lag = (replica.high_watermark() - committed.offset).max(0);
        let partition = committed.tp.partition.to_string();
        e.sample(
            "fjord_consumergroup_lag",
            &[
                ("group", committed.group_id.as_str()),
                ("topic", committed.tp.topic.as_str()),
                ("partition", partition.as_str()),
            ],
            lag,
        );
    }
}

/// The local Raft node's view of the controller quorum.
fn controller(e: &mut TextEncoder, status: &NodeStatus) {
    let Some(controller) = status.controller() else {
        return;
    };
    let raft = controller.raft_status();
    e.single(
        "fjord_controller_is_leader",
        "1 if this node is the active controller (Raft leader), else 0.",
        MetricKind::Gauge,
        u8::from(raft.is_leader),
    );
    e.single(
        "fjord_controller_raft_term",
        "The current Raft term of the metadata quorum.",
        MetricKind::Gauge,
        raft.term,
    );
    e.single(
        "fjord_controller_metadata_applied_offset",
        "Raft log index of the last metadata record applied on this node.",
        MetricKind::Gauge,
        raft.last_applied.unwrap_or(0),
    );
}

/// Resident memory and open file descriptors, from /proc (Linux only;
/// left out where /proc is missing).
fn process(e: &mut TextEncoder) {
    if let Some(bytes) = resident_memory_bytes() {
        e.single(
            "fjord_process_resident_memory_bytes",
            "Resident memory of the fjord process.",
            MetricKind::Gauge,
            bytes,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        e.single(
            "fjord_process_open_fds",
            "Open file descriptors of the fjord process.",
            MetricKind::Gauge,
            fds.count(),
        );
    }
}

/// `VmRSS` of /proc/self/status (in kB there), in bytes.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_kafkas() {
        assert_eq!(api_name(0), "Produce");
        assert_eq!(api_name(1), "Fetch");
        assert_eq!(api_name(18), "ApiVersions");
        assert_eq!(api_name(999), "999");
    }

    #[test]
    fn resident_memory_is_read_from_proc() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
    }
}
