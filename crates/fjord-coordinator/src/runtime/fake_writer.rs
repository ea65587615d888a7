//! An in-memory [`PartitionWriter`] for the runtime's tests and simulation:
//! a log per partition that assigns offsets like a real one, leadership set
//! by the test, and faults per partition.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_types::{LeaderEpoch, Offset, TopicPartition};
use futures::future::BoxFuture;
use kafka_protocol::records::Record;
use tokio::sync::Notify;

use super::batch::visit_batches;
use super::writer::{Cause, PartitionWriter, ReadChunk, ReadError, WriteError};

/// What the next appends to a partition do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Refused before writing: too few in-sync replicas.
    NotEnoughReplicas,
    /// Refused before writing: leadership moved.
    NotLeader,
    /// Refused before writing: the batch is too large.
    TooLarge,
    /// Refused before writing: the log directory failed.
    Storage,
    /// Written, then the wait for replication timed out.
    TimeOut,
    /// Waits for [`FakeWriter::release`] before writing; refused (not
    /// leader, nothing written) if leadership moved meanwhile.
    Stall,
}

#[derive(Default)]
struct State {
    led: BTreeMap<i32, LeaderEpoch>,
    /// Each partition's batches with their base offsets.
    log: BTreeMap<i32, Vec<(Offset, Bytes)>>,
    reads: BTreeMap<i32, usize>,
    faults: BTreeMap<i32, Fault>,
    /// Partitions whose reads wait for [`FakeWriter::release_reads`].
    held_reads: HashSet<i32>,
    /// Partitions whose reads fail with a storage error.
    failed_reads: HashSet<i32>,
    /// Appends waiting in a [`Fault::Stall`].
    stalled: usize,
    /// Appends that did not answer success, by partition.
    failed_appends: BTreeMap<i32, u64>,
}

#[derive(Default)]
pub(crate) struct FakeWriter {
    state: Mutex<State>,
    /// Notified when an append stalls.
    pub(crate) stalled: Notify,
    /// Lets one stalled append go on.
    pub(crate) release: Notify,
    /// Lets held reads go on.
    pub(crate) release_reads: Notify,
}

impl FakeWriter {
    pub(crate) fn leading(partitions: impl IntoIterator<Item = i32>) -> Arc<Self> {
        let writer = FakeWriter::default();
        writer.state().led = partitions.into_iter().map(|p| (p, 1)).collect();
        Arc::new(writer)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lead(&self, partition: i32, leader_epoch: LeaderEpoch) {
        self.state().led.insert(partition, leader_epoch);
    }

    pub(crate) fn resign(&self, partition: i32) {
        self.state().led.remove(&partition);
    }

    pub(crate) fn set_fault(&self, partition: i32, fault: Option<Fault>) {
        let mut state = self.state();
        match fault {
            Some(fault) => state.faults.insert(partition, fault),
            None => state.faults.remove(&partition),
        };
    }

    pub(crate) fn hold_reads(&self, partition: i32, held: bool) {
        let mut state = self.state();
        if held {
            state.held_reads.insert(partition);
        } else {
            state.held_reads.remove(&partition);
        }
    }

    /// How many appends wait in a [`Fault::Stall`].
    pub(crate) fn stalled_appends(&self) -> usize {
        self.state().stalled
    }

    pub(crate) fn fail_reads(&self, partition: i32) {
        self.state().failed_reads.insert(partition);
    }

    pub(crate) fn reads(&self, partition: i32) -> usize {
        self.state().reads.get(&partition).copied().unwrap_or(0)
    }

    /// How many appends to `partition` did not answer success.
    pub(crate) fn failed_appends(&self, partition: i32) -> u64 {
        self.state()
            .failed_appends
            .get(&partition)
            .copied()
            .unwrap_or(0)
    }

    /// The log end offset of `partition`.
    pub(crate) fn log_end(&self, partition: i32) -> Offset {
        let state = self.state();
        log_end(state.log.get(&partition).map_or(&[][..], Vec::as_slice))
    }

    /// Every record of `partition`, in order.
    pub(crate) fn records(&self, partition: i32) -> Vec<Record> {
        let batches = self
            .state()
            .log
            .get(&partition)
            .cloned()
            .unwrap_or_default();
        let mut records = Vec::new();
        for (_, batch) in batches {
            visit_batches(batch, &mut |r| records.push(r.clone())).expect("decodable");
        }
        records
    }

    /// The records of the last batch appended to `partition`.
    pub(crate) fn last_batch(&self, partition: i32) -> Vec<Record> {
        let last = self
            .state()
            .log
            .get(&partition)
            .and_then(|log| log.last().cloned());
        let mut records = Vec::new();
        if let Some((_, batch)) = last {
            visit_batches(batch, &mut |r| records.push(r.clone())).expect("decodable");
        }
        records
    }

    fn write(&self, partition: i32, batch: Bytes) {
        let mut state = self.state();
        let log = state.log.entry(partition).or_default();
        let base = log_end(log);
        // Assign offsets as a leader does: only the base offset changes,
        // which the batch CRC does not cover.
        let mut stamped = BytesMut::from(&batch[..]);
        stamped[0..8].copy_from_slice(&base.to_be_bytes());
        log.push((base, stamped.freeze()));
    }

    fn failed(&self, partition: i32) {
        *self.state().failed_appends.entry(partition).or_default() += 1;
    }
}

/// The offset after the last batch of `log`.
fn log_end(log: &[(Offset, Bytes)]) -> Offset {
    log.last()
        .map_or(0, |(base, batch)| batch_end(*base, batch))
}

/// The offset after a batch (`lastOffsetDelta` is at bytes 23..27).
fn batch_end(base: Offset, batch: &Bytes) -> Offset {
    let delta = i32::from_be_bytes(batch[23..27].try_into().expect("a v2 header"));
    base + i64::from(delta) + 1
}

impl PartitionWriter for FakeWriter {
    fn append(
        &self,
        tp: &TopicPartition,
        records: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), WriteError>> {
        let tp = tp.clone();
        Box::pin(async move {
            let (led, fault) = {
                let state = self.state();
                let led = state.led.contains_key(&tp.partition);
                (led, state.faults.get(&tp.partition).copied())
            };
            let partition = tp.partition;
            let refused = |err: WriteError| -> Result<(), WriteError> {
                self.failed(partition);
                Err(err)
            };
            let cause: Cause = Arc::new(std::io::Error::other("fake disk"));
            if !led {
                return refused(WriteError::NotLeader { tp });
            }
            match fault {
                Some(Fault::NotEnoughReplicas) => refused(WriteError::NotEnoughReplicas {
                    tp,
                    isr: 1,
                    min_isr: 2,
                }),
                Some(Fault::NotLeader) => refused(WriteError::NotLeader { tp }),
                Some(Fault::TooLarge) => refused(WriteError::RecordTooLarge {
                    tp,
                    size: records.len(),
                }),
                Some(Fault::Storage) => refused(WriteError::Storage { tp, source: cause }),
                Some(Fault::TimeOut) => {
                    self.write(tp.partition, records);
                    refused(WriteError::Timeout { tp, timeout })
                }
                Some(Fault::Stall) => {
                    self.state().stalled += 1;
                    self.stalled.notify_one();
                    self.release.notified().await;
                    let led = {
                        let mut state = self.state();
                        state.stalled -= 1;
                        state.led.contains_key(&tp.partition)
                    };
                    if !led {
                        return refused(WriteError::NotLeader { tp });
                    }
                    self.write(tp.partition, records);
                    Ok(())
                }
                None => {
                    self.write(tp.partition, records);
                    Ok(())
                }
            }
        })
    }

    fn read(
        &self,
        tp: &TopicPartition,
        from: Offset,
    ) -> BoxFuture<'_, Result<ReadChunk, ReadError>> {
        let tp = tp.clone();
        Box::pin(async move {
            *self.state().reads.entry(tp.partition).or_default() += 1;
            if self.state().held_reads.contains(&tp.partition) {
                self.release_reads.notified().await;
            }
            let state = self.state();
            if state.failed_reads.contains(&tp.partition) {
                return Err(ReadError::Storage {
                    tp,
                    offset: from,
                    source: Arc::new(std::io::Error::other("fake disk")),
                });
            }
            let log = state.log.get(&tp.partition).map_or(&[][..], Vec::as_slice);
            let mut records = BytesMut::new();
            // Whole batches from the one holding `from`, as a log reads.
            for (base, batch) in log {
                if batch_end(*base, batch) > from {
                    records.extend_from_slice(batch);
                }
            }
            Ok(ReadChunk {
                records: records.freeze(),
                log_end_offset: log_end(log),
            })
        })
    }

    fn leader_epoch(&self, tp: &TopicPartition) -> Option<LeaderEpoch> {
        self.state().led.get(&tp.partition).copied()
    }
}
