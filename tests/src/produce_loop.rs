//! A continuous acks=all producer for fault tests, and the check that every acknowledged record
//! is in the log afterwards.
//!
//! [`ProduceLoop`] sends numbered records (payload `seq-N`) to chosen partitions with a bounded
//! number in flight, through rdkafka with retries on and idempotence off (so a retry after a
//! lost response can write a record twice: Kafka's at-least-once). It records when each record
//! was sent and acknowledged. [`check_partition`] then reads a partition back and verifies:
//! offsets are dense, every acknowledged record sits at the offset it was acknowledged with,
//! and a record found at several offsets was in flight during a fault (a retry explains it).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset};

use crate::{assign_from, client_config, consumer, wait_for};

/// One acknowledged record.
#[derive(Clone, Debug)]
pub struct AckedRecord {
    pub seq: u64,
    pub partition: i32,
    pub offset: i64,
    pub sent_at: Instant,
    pub acked_at: Instant,
}

/// What a finished [`ProduceLoop`] did.
#[derive(Clone, Debug)]
pub struct ProduceSummary {
    pub sent: u64,
    pub acked: Vec<AckedRecord>,
    /// Records whose delivery failed (e.g. message timeout): neither promised nor ruled out.
    pub failed: usize,
    /// Send time of every record, by seq (for deciding which duplicates retries explain).
    pub sent_at: HashMap<u64, Instant>,
    pub finished_at: Instant,
}

/// The producer settings fault tests use: acks=all, idempotence off, retries on, and short
/// socket timeouts: a SIGSTOPped broker still accepts TCP connections (the kernel completes
/// the handshake) but never answers, so the client must give up on it quickly.
pub fn fault_test_producer(bootstrap: &str) -> FutureProducer {
    let mut cfg: ClientConfig = client_config(bootstrap);
    cfg.set("acks", "all")
        .set("socket.timeout.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("linger.ms", "2")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "5000")
        .set("retries", "1000000")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500");
    cfg.create().expect("producer")
}

/// A producer task sending `seq-N` records round-robin over `partitions` until stopped.
pub struct ProduceLoop {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<AckedRecord>>>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<(u64, HashMap<u64, Instant>)>,
}

impl ProduceLoop {
    /// Starts the loop on the current tokio runtime with at most `max_in_flight` records
    /// unacknowledged, pausing `pause` between sends (zero: as fast as acks allow).
    pub fn start(
        producer: FutureProducer,
        topic: &str,
        partitions: Vec<i32>,
        max_in_flight: usize,
        pause: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<AckedRecord>>> = Arc::default();
        let failed = Arc::new(AtomicUsize::new(0));
        let task = {
            let (stop, acked, failed, topic) = (
                stop.clone(),
                acked.clone(),
                failed.clone(),
                topic.to_owned(),
            );
            tokio::spawn(async move {
                // One task per record awaits its delivery report, so acknowledgement times
                // are exact; the semaphore bounds the records in flight.
                let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
                let mut sent_at = HashMap::new();
                let mut seq: u64 = 0;
                while !stop.load(Ordering::SeqCst) {
                    let permit = permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore is never closed");
                    let value = format!("seq-{seq}");
                    let partition = partitions[(seq % partitions.len() as u64) as usize];
                    let rec: FutureRecord<'_, (), String> = FutureRecord::to(&topic)
                        .payload(&value)
                        .partition(partition);
                    let sent = Instant::now();
                    let delivery = match producer.send_result(rec) {
                        Ok(f) => f,
                        Err((e, _)) => panic!("enqueue failed: {e}"),
                    };
                    sent_at.insert(seq, sent);
                    let (acked, failed) = (acked.clone(), failed.clone());
                    tokio::spawn(async move {
                        match delivery.await {
                            Ok(Ok(d)) => acked.lock().expect("ack ledger").push(AckedRecord {
                                seq,
                                partition: d.partition,
                                offset: d.offset,
                                sent_at: sent,
                                acked_at: Instant::now(),
                            }),
                            Ok(Err((e, _))) => {
                                eprintln!("produce seq-{seq} failed: {e}");
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        drop(permit);
                    });
                    seq += 1;
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                // Every outcome is in once all permits are back.
                let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
                let _ = permits.acquire_many(all).await;
                (seq, sent_at)
            })
        };
        ProduceLoop {
            stop,
            acked,
            failed,
            task,
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().expect("ack ledger").len()
    }

    /// Records whose delivery failed so far.
    pub fn failed_count(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// When the first record on `partition` sent at or after `since` was acknowledged.
    pub fn first_ack_sent_after(&self, partition: i32, since: Instant) -> Option<Instant> {
        self.acked
            .lock()
            .expect("ack ledger")
            .iter()
            .filter(|a| a.partition == partition && a.sent_at >= since)
            .map(|a| a.acked_at)
            .min()
    }

    /// When the first acknowledgement on `partition` after `since` arrived.
    pub fn first_ack_after(&self, partition: i32, since: Instant) -> Option<Instant> {
        self.acked
            .lock()
            .expect("ack ledger")
            .iter()
            .filter(|a| a.partition == partition && a.acked_at >= since)
            .map(|a| a.acked_at)
            .min()
    }

    /// Blocks (in place) until `n` more records than now are acknowledged.
    pub fn wait_for_more_acks(&self, n: usize, timeout: Duration, what: &str) {
        let target = self.acked_count() + n;
        tokio::task::block_in_place(|| {
            wait_for(timeout, what, || {
                (self.acked_count() >= target).then_some(())
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Stops sending, waits for every in-flight record's outcome, and returns the ledger.
    pub async fn finish(self) -> ProduceSummary {
        self.stop.store(true, Ordering::SeqCst);
        let (sent, sent_at) = self.task.await.expect("produce loop task");
        let acked = self.acked.lock().expect("ack ledger").clone();
        ProduceSummary {
            sent,
            acked,
            failed: self.failed.load(Ordering::SeqCst),
            sent_at,
            finished_at: Instant::now(),
        }
    }
}

/// A fault (kill, pause) from its start until the cluster served again.
#[derive(Clone, Copy, Debug)]
pub struct FaultWindow {
    pub start: Instant,
    pub end: Instant,
}

/// Reads `topic`/`partition` from the beginning to its high watermark: (offset, seq) pairs.
pub fn read_partition_seqs(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> anyhow::Result<Vec<(i64, u64)>> {
    let c: BaseConsumer = consumer(bootstrap);
    let (lo, hi) = c.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    ensure!(lo == 0, "{topic}-{partition}: log start {lo}, expected 0");
    assign_from(&c, topic, &[partition], Offset::Beginning);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(usize::try_from(hi).unwrap_or(0));
    while (out.len() as i64) < hi {
        if Instant::now() >= deadline {
            bail!(
                "{topic}-{partition}: read {} of {hi} records within {timeout:?}",
                out.len()
            );
        }
        match c.poll(Duration::from_millis(200)) {
            None | Some(Err(_)) => {}
            Some(Ok(m)) => {
                let payload = String::from_utf8_lossy(m.payload().unwrap_or_default());
                let seq = payload
                    .strip_prefix("seq-")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("unexpected payload {payload:?}"))?;
                out.push((m.offset(), seq));
            }
        }
    }
    Ok(out)
}

/// What [`check_partition`] found (for printing).
#[derive(Clone, Debug, Default)]
pub struct LogCheck {
    pub records: usize,
    pub acked: usize,
    /// Records stored more than once (at different offsets), all explained by retries.
    pub duplicates: usize,
}

/// Checks a partition's log against the acknowledgements for it (see the module docs).
pub fn check_partition(
    log: &[(i64, u64)],
    partition: i32,
    summary: &ProduceSummary,
    faults: &[FaultWindow],
) -> anyhow::Result<LogCheck> {
    for (i, (offset, _)) in log.iter().enumerate() {
        ensure!(
            *offset == i as i64,
            "partition {partition}: offset {offset} at position {i}: the log has a gap"
        );
    }
    let acked: Vec<&AckedRecord> = summary
        .acked
        .iter()
        .filter(|a| a.partition == partition)
        .collect();
    for a in &acked {
        let found = usize::try_from(a.offset).ok().and_then(|i| log.get(i));
        match found {
            Some((_, seq)) if *seq == a.seq => {}
            Some((_, seq)) => bail!(
                "partition {partition}: seq-{} was acknowledged at offset {} but the log has seq-{seq} there (acknowledged record lost)",
                a.seq,
                a.offset
            ),
            None => bail!(
                "partition {partition}: seq-{} was acknowledged at offset {} but the log ends at {} (acknowledged record lost)",
                a.seq,
                a.offset,
                log.len()
            ),
        }
    }
    let acked_at: HashMap<u64, Instant> = acked.iter().map(|a| (a.seq, a.acked_at)).collect();
    let mut offsets_of: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for (offset, seq) in log {
        offsets_of.entry(*seq).or_default().push(*offset);
    }
    let mut duplicates = 0;
    for (seq, offsets) in offsets_of.iter().filter(|(_, o)| o.len() > 1) {
        duplicates += offsets.len() - 1;
        let sent = summary.sent_at.get(seq).copied();
        let done = acked_at.get(seq).copied().unwrap_or(summary.finished_at);
        let explained =
            sent.is_some_and(|sent| faults.iter().any(|f| sent <= f.end && done >= f.start));
        ensure!(
            explained,
            "partition {partition}: seq-{seq} is stored at offsets {offsets:?} but was not in flight during any fault (a duplicate no retry explains)"
        );
    }
    Ok(LogCheck {
        records: log.len(),
        acked: acked.len(),
        duplicates,
    })
}
