//! InitProducerId for idempotent producers: producer ids come from blocks
//! the controller hands this broker (committed through Raft, so no id is
//! ever given twice, across brokers or restarts).

use fjord_controller::{Controller, MetadataCommand, MetadataResponse};
use fjord_types::BrokerId;
use tokio::sync::Mutex;

use crate::error::AdminError;

/// Ids fetched from the controller at a time (Kafka's block size).
const BLOCK_SIZE: i32 = 1000;

/// The unused rest of this broker's current block: `next..end`.
#[derive(Debug, Default)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// Hands out producer ids (Kafka's `ProducerIdManager`): the idempotent
/// producers' InitProducerId now, the transaction coordinator's later.
pub struct ProducerIdService {
    node_id: BrokerId,
    controller: Controller,
    block: Mutex<ProducerIdBlock>,
}

impl ProducerIdService {
    pub(crate) fn new(node_id: BrokerId, controller: Controller) -> Self {
        ProducerIdService {
            node_id,
            controller,
            block: Mutex::default(),
        }
    }

    /// InitProducerId of an idempotent producer (no transactional id):
    /// every call gets a fresh producer id at epoch 0, as Kafka does.
    /// Transactional ids go to the transaction coordinator.
    pub async fn init_producer_id(&self) -> Result<(i64, i16), AdminError> {
        // A tokio mutex: held across the controller round trip so that
        // concurrent callers wait for one new block instead of each fetching one.
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            self.fetch_block(&mut block).await?;
        }
        let id = block.next;
        block.next += 1;
        Ok((id, 0))
    }

    /// A producer id now, without waiting: `None` when the block is used up
    /// or being fetched (then call [`refill`](Self::refill)). The
    /// transaction coordinator allocates under its shard's lock, so it
    /// cannot wait for the controller there; Kafka's coordinator answers
    /// COORDINATOR_LOAD_IN_PROGRESS meanwhile too.
    pub fn try_allocate(&self) -> Option<i64> {
        let mut block = self.block.try_lock().ok()?;
        if block.next >= block.end {
            return None;
        }
        let id = block.next;
        block.next += 1;
        Some(id)
    }

    /// Fetch a new block if the current one is used up.
    pub async fn refill(&self) -> Result<(), AdminError> {
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            self.fetch_block(&mut block).await?;
        }
        Ok(())
    }

    async fn fetch_block(&self, block: &mut ProducerIdBlock) -> Result<(), AdminError> {
        let command = MetadataCommand::AllocateProducerIds {
            broker_id: self.node_id,
            count: BLOCK_SIZE,
        };
        match self.controller.write(command).await {
            Ok(MetadataResponse::ProducerIdsAllocated {
                first_producer_id,
                count,
            }) => {
                block.next = first_producer_id;
                block.end = first_producer_id + i64::from(count);
                Ok(())
            }
            Ok(other) => Err(AdminError::UnexpectedControllerResponse {
                response: format!("{other:?}"),
            }),
            Err(err) => Err(AdminError::from_controller(err)),
        }
    }
}
