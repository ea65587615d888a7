//! Client quota enforcement at the gateway (Kafka's `KafkaApis` use of
//! its quota managers, KIP-219 throttling): produce request bytes, fetch
//! response bytes and handling time are recorded against the quota that
//! applies to the request's (principal name, client id); a request over
//! its quota gets `throttle_time_ms` in its response and the connection
//! holds its next request for that long ([`Throttle`]).
//!
//! With no quota configured a request costs one snapshot load
//! ([`fjord_broker::quota::QuotaManager::snapshot`]) and nothing else.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fjord_broker::quota::{Applied, QuotaKind, QuotaSnapshot};
use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::context::RequestContext;
use crate::handlers::Reply;
use crate::services::Services;

/// How long the connection must hold the next request after this one's
/// response (Kafka mutes the channel). Set once per request by the
/// quota check; an atomic only so `&RequestContext` can carry it.
#[derive(Debug, Default)]
pub(crate) struct Throttle(AtomicU32);

impl Clone for Throttle {
    fn clone(&self) -> Self {
        Throttle(AtomicU32::new(self.0.load(Ordering::Relaxed)))
    }
}

impl Throttle {
    pub(crate) fn set_ms(&self, ms: u32) {
        self.0.store(ms, Ordering::Relaxed);
    }

    /// The hold, if any.
    pub(crate) fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        }
    }
}

/// What a request's quotas need after it was handled.
pub(crate) struct Pending {
    produce: Option<(Applied, f64)>,
    fetch: Option<Applied>,
    request: Option<Applied>,
}

fn user(ctx: &RequestContext) -> &str {
    &ctx.connection.principal.name
}

/// Before handling: find the quotas that apply, and cap a fetch to what
/// its byte quota lets through in one window (Kafka's
/// `getMaxValueInQuotaWindow`), so a response never needs more than the
/// window to pay off. `None`, the common case, when no quota is set.
pub(crate) fn before(
    ctx: &RequestContext,
    svc: &Services,
    request: &mut RequestKind,
) -> Option<Pending> {
    let snapshot = svc.quotas.snapshot();
    if snapshot.is_empty() {
        return None;
    }
    let resolve =
        |snapshot: &QuotaSnapshot, kind| snapshot.resolve(kind, user(ctx), ctx.client_id());
    let mut pending = Pending {
        produce: None,
        fetch: None,
        request: resolve(&snapshot, QuotaKind::Request),
    };
    match request {
        RequestKind::Produce(r) => {
            if let Some(applied) = resolve(&snapshot, QuotaKind::Produce) {
                let bytes: usize = r
                    .topic_data
                    .iter()
                    .flat_map(|t| &t.partition_data)
                    .filter_map(|p| p.records.as_ref().map(|b| b.len()))
                    .sum();
                pending.produce = Some((applied, bytes as f64));
            }
        }
        RequestKind::Fetch(r) => {
            if let Some(applied) = resolve(&snapshot, QuotaKind::Fetch) {
                let cap = svc.quotas.max_value_in_window(applied).min(i32::MAX as f64) as i32;
                r.max_bytes = r.max_bytes.min(cap.max(1));
                r.min_bytes = r.min_bytes.min(r.max_bytes);
                pending.fetch = Some(applied);
            }
        }
        _ => {}
    }
    Some(pending)
}

/// After handling: record, throttle, and set the response's
/// `throttle_time_ms` and the connection's hold.
pub(crate) fn after(
    ctx: &RequestContext,
    svc: &Services,
    pending: Pending,
    reply: &mut Reply,
    handling: Duration,
) {
    let (user, client_id) = (user(ctx), ctx.client_id());
    let quotas = &svc.quotas;
    let mut throttle = 0;
    if let Some((applied, bytes)) = pending.produce {
        throttle = throttle.max(quotas.record(QuotaKind::Produce, applied, user, client_id, bytes));
    }
    if let (
        Some(applied),
        Reply::Response {
            body: ResponseKind::Fetch(response),
            ..
        },
    ) = (pending.fetch, &mut *reply)
    {
        let bytes: usize = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref().map(|b| b.len()))
            .sum();
        let fetch = quotas.record(QuotaKind::Fetch, applied, user, client_id, bytes as f64);
        if fetch > 0 {
            // Kafka answers a throttled fetch empty and takes the bytes
            // back: the consumer fetches them again after the throttle.
            quotas.unrecord(QuotaKind::Fetch, applied, user, client_id, bytes as f64);
            response.responses.clear();
        }
        throttle = throttle.max(fetch);
    }
    if let Some(applied) = pending.request {
        let nanos = handling.as_nanos() as f64;
        throttle = throttle.max(quotas.record(QuotaKind::Request, applied, user, client_id, nanos));
    }
    if throttle == 0 {
        return;
    }
    let ms = i32::try_from(throttle).unwrap_or(i32::MAX);
    if let Reply::Response { body, .. } = reply {
        set_throttle_time(body, ms);
    }
    ctx.throttle.set_ms(throttle);
}

/// Put `ms` in the response's `throttle_time_ms` (keeping a larger one a
/// handler set). Every served response has the field but WriteTxnMarkers
/// (a broker-to-broker call Kafka exempts) and the SASL ones.
fn set_throttle_time(body: &mut ResponseKind, ms: i32) {
    macro_rules! set {
        ($($api:ident),* $(,)?) => {
            match body {
                $(ResponseKind::$api(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    set!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        DescribeConfigs,
        AlterConfigs,
        CreatePartitions,
        DescribeCluster,
        InitProducerId,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        DeleteGroups,
        OffsetDelete,
        OffsetForLeaderEpoch,
        ElectLeaders,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeProducers,
        DescribeTransactions,
        ListTransactions,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        DescribeClientQuotas,
        AlterClientQuotas,
    );
}
