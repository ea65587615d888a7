//! Producer ids for the transaction coordinator from this broker's blocks
//! ([`ProducerIdService`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fjord_coordinator::txn::ProducerIdAllocator;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::producer_ids::ProducerIdService;

/// The coordinator allocates under its shard's lock and cannot wait for
/// the controller there: when the block is used up, this starts fetching
/// the next one and answers `None` (COORDINATOR_LOAD_IN_PROGRESS to the
/// client, which retries), as Kafka's `RPCProducerIdManager` does.
pub struct BrokerProducerIds {
    service: Arc<ProducerIdService>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    /// Set while a refill runs, so one runs at a time.
    refilling: Arc<AtomicBool>,
}

impl BrokerProducerIds {
    pub(crate) fn new(
        service: Arc<ProducerIdService>,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        BrokerProducerIds {
            service,
            tasks,
            cancel,
            refilling: Arc::default(),
        }
    }
}

impl ProducerIdAllocator for BrokerProducerIds {
    fn allocate(&mut self) -> Option<i64> {
        if let Some(id) = self.service.try_allocate() {
            return Some(id);
        }
        if !self.refilling.swap(true, Ordering::SeqCst) {
            let (service, refilling, cancel) = (
                self.service.clone(),
                self.refilling.clone(),
                self.cancel.clone(),
            );
            self.tasks.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    refilled = service.refill() => {
                        if let Err(err) = refilled {
                            tracing::warn!(%err, "cannot fetch a block of producer ids");
                        }
                    }
                }
                refilling.store(false, Ordering::SeqCst);
            });
        }
        None
    }
}
