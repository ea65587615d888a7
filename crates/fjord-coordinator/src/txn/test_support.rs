//! Test harness: a coordinator, a counting allocator and the log of every
//! record it emitted, so tests can reload from the log at any point.

use std::collections::BTreeSet;

use fjord_types::TopicPartition;

use super::*;

/// Hands out 1000, 1001, ... (or nothing while `exhausted`).
#[derive(Debug)]
pub(crate) struct CountingAllocator {
    pub next: i64,
    pub exhausted: bool,
}

impl Default for CountingAllocator {
    fn default() -> Self {
        CountingAllocator {
            next: 1000,
            exhausted: false,
        }
    }
}

impl ProducerIdAllocator for CountingAllocator {
    fn allocate(&mut self) -> Option<i64> {
        if self.exhausted {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

pub(crate) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

pub(crate) fn tps(list: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
    list.iter().map(|(t, p)| tp(t, *p)).collect()
}

/// A coordinator whose records go to `log` (through the codec, as the
/// runtime would write them) and whose markers go to `markers`.
pub(crate) struct Harness {
    pub coord: TransactionCoordinator,
    pub alloc: CountingAllocator,
    pub log: Vec<TxnRecord>,
    pub markers: Vec<MarkerRequest>,
    pub now: i64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(TxnConfig::default())
    }

    pub fn with_config(config: TxnConfig) -> Self {
        Harness {
            coord: TransactionCoordinator::new(config),
            alloc: CountingAllocator::default(),
            log: Vec::new(),
            markers: Vec::new(),
            now: 1_000_000,
        }
    }

    /// Takes an output as the runtime would: records durable, then markers.
    pub fn take<T>(&mut self, out: TxnOutput<T>) -> T {
        for record in out.records {
            let (key, value) = codec::encode(&record).expect("encodable");
            let decoded = codec::decode(&key, value.as_deref()).expect("decodable");
            assert_eq!(decoded.as_ref(), Some(&record));
            self.log.push(record);
        }
        self.markers.extend(out.markers);
        out.reply
    }

    pub fn producer(&self, id: &str) -> TxnProducer {
        let md = self.coord.get(id).expect("known transactional id");
        TxnProducer {
            transactional_id: id.into(),
            producer_id: md.producer_id,
            producer_epoch: md.producer_epoch,
        }
    }

    pub fn init(
        &mut self,
        id: &str,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        let req = InitProducerIdRequest {
            transactional_id: Some(id.into()),
            transaction_timeout_ms: 60_000,
            expected,
        };
        let out = self.coord.init_producer_id(req, &mut self.alloc, self.now);
        self.take(out)
    }

    pub fn add(&mut self, p: &TxnProducer, parts: &[(&str, i32)]) -> Result<(), TxnError> {
        let out = self.coord.add_partitions(p, &tps(parts), self.now);
        self.take(out)
    }

    pub fn end(
        &mut self,
        p: &TxnProducer,
        result: TransactionResult,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        let req = EndTxnRequest {
            transactional_id: p.transactional_id.clone(),
            producer_id: p.producer_id,
            producer_epoch: p.producer_epoch,
            result,
            client_transaction_version: 1,
        };
        let out = self.coord.end_txn(&req, &mut self.alloc, self.now);
        self.take(out)
    }

    /// Acknowledges every partition of every outstanding marker request.
    pub fn ack_all_markers(&mut self) {
        for m in std::mem::take(&mut self.markers) {
            for partition in &m.partitions {
                let out = self.coord.marker_written(
                    &m.transactional_id,
                    m.producer_id,
                    m.producer_epoch,
                    partition,
                    self.now,
                );
                self.take(out);
            }
        }
    }

    pub fn tick(&mut self) {
        let out = self.coord.on_tick(self.now);
        self.take(out);
    }

    /// A fresh coordinator loaded from the log (the records its load
    /// writes are not appended).
    pub fn reloaded(&self) -> (TransactionCoordinator, Vec<MarkerRequest>) {
        let mut coord = TransactionCoordinator::new(self.coord.config().clone());
        for record in &self.log {
            coord.replay(record.clone());
        }
        let out = coord.complete_load(self.now);
        assert!(
            out.records.is_empty(),
            "only empty Prepare* records complete on load"
        );
        (coord, out.markers)
    }

    /// Replaying the log gives the live state (but `last_producer_epoch`,
    /// which Kafka does not persist either).
    pub fn assert_replay_matches(&self) {
        let (loaded, _) = self.reloaded();
        let persisted = |c: &TransactionCoordinator| -> Vec<TransactionLogValue> {
            c.transactions().map(|md| md.to_value()).collect()
        };
        let ids = |c: &TransactionCoordinator| -> Vec<String> {
            c.transactions()
                .map(|md| md.transactional_id.clone())
                .collect()
        };
        assert_eq!(ids(&loaded), ids(&self.coord));
        assert_eq!(persisted(&loaded), persisted(&self.coord));
    }
}
