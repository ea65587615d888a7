//! KIP-890 part 1 between brokers: a partition leader asks the
//! transactional id's coordinator whether partitions are in the producer's
//! ongoing transaction before the producer's first transactional batch
//! opens a transaction there (Kafka's `AddPartitionsToTxnManager`, which
//! sends AddPartitionsToTxn v4+ with VerifyOnly; Fjord uses the
//! `ReplicaService.VerifyTxnPartitions` gRPC between nodes, and a direct
//! call when this node is the coordinator).
//!
//! Answers are Kafka error codes per partition, as the coordinator gives
//! them; the gateway turns them into Produce errors.

use std::collections::BTreeSet;

use fjord_coordinator::txn::{TRANSACTION_STATE, TxnProducer};
use fjord_rpc::{TxnPartition, VerifyTxnPartitionsRequest, VerifyTxnPartitionsResponse};
use fjord_types::{BrokerId, TopicPartition};
use kafka_protocol::ResponseError;

use super::TransactionCoordinatorAdapter;
use super::peers::PeerError;
use crate::broker::Broker;
use crate::internal_topics::partition_leader;

/// Why the coordinator could not be asked (the partitions are not
/// verified; a retry may work).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The id's `__transaction_state` partition has no leader (or the
    /// topic does not exist yet).
    #[error("no transaction coordinator for the transactional id")]
    NoCoordinator,
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("broker {node}: VerifyTxnPartitions failed")]
    Rpc {
        node: BrokerId,
        #[source]
        source: tonic::Status,
    },
    /// The coordinator answered for the whole request with this code.
    #[error("the coordinator answered error code {code}")]
    Refused { code: i16 },
}

/// Per partition: verified, or the coordinator's Kafka error code.
pub type Verified = Vec<(TopicPartition, Result<(), i16>)>;

impl TransactionCoordinatorAdapter {
    /// Ask the id's coordinator, here or on its node, whether `partitions`
    /// are in the producer's ongoing transaction.
    pub async fn verify(
        &self,
        producer: TxnProducer,
        partitions: BTreeSet<TopicPartition>,
    ) -> Result<Verified, VerifyError> {
        let state_partition = self.service.partition_of(&producer.transactional_id);
        let coordinator =
            partition_leader(&self.metadata.image(), TRANSACTION_STATE, state_partition)
                .ok_or(VerifyError::NoCoordinator)?;
        if coordinator == self.node_id {
            return self
                .verify_here(producer, partitions)
                .await
                .map_err(|code| VerifyError::Refused { code });
        }
        let request = VerifyTxnPartitionsRequest {
            transactional_id: producer.transactional_id,
            producer_id: producer.producer_id,
            producer_epoch: i32::from(producer.producer_epoch),
            partitions: partitions
                .iter()
                .map(|tp| TxnPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                })
                .collect(),
        };
        let mut client = self.peers.client(coordinator)?;
        let response = client
            .verify_txn_partitions(request)
            .await
            .map_err(|source| VerifyError::Rpc {
                node: coordinator,
                source,
            })?
            .into_inner();
        let code = |c: i32| i16::try_from(c).unwrap_or(ResponseError::UnknownServerError.code());
        if response.error_code != 0 {
            return Err(VerifyError::Refused {
                code: code(response.error_code),
            });
        }
        let mut codes = response.partition_error_codes.into_iter();
        Ok(partitions
            .into_iter()
            .map(|tp| {
                // A short answer leaves the rest unverified.
                let c = codes
                    .next()
                    .map_or(ResponseError::UnknownServerError.code(), code);
                (tp, if c == 0 { Ok(()) } else { Err(c) })
            })
            .collect())
    }

    /// The verification on this node's coordinator: per-partition codes,
    /// or one code for the whole request (not the coordinator, loading).
    async fn verify_here(
        &self,
        producer: TxnProducer,
        partitions: BTreeSet<TopicPartition>,
    ) -> Result<Verified, i16> {
        let answers = self
            .service
            .verify(producer, partitions)
            .await
            .map_err(|err| err.kafka_error().code())?;
        Ok(answers
            .into_iter()
            .map(|(tp, r)| (tp, r.map_err(|err| err.kafka_error().code())))
            .collect())
    }
}

impl Broker {
    /// VerifyTxnPartitions from another broker: this node's coordinator's
    /// answer, per partition in request order.
    pub(crate) async fn serve_verify_txn_partitions(
        &self,
        req: VerifyTxnPartitionsRequest,
    ) -> VerifyTxnPartitionsResponse {
        let Ok(producer_epoch) = i16::try_from(req.producer_epoch) else {
            return VerifyTxnPartitionsResponse {
                error_code: i32::from(ResponseError::InvalidRequest.code()),
                partition_error_codes: Vec::new(),
            };
        };
        let requested: Vec<TopicPartition> = req
            .partitions
            .into_iter()
            .map(|p| TopicPartition::new(p.topic, p.partition))
            .collect();
        let producer = TxnProducer {
            transactional_id: req.transactional_id,
            producer_id: req.producer_id,
            producer_epoch,
        };
        match self
            .txns
            .verify_here(producer, requested.iter().cloned().collect())
            .await
        {
            Err(code) => VerifyTxnPartitionsResponse {
                error_code: i32::from(code),
                partition_error_codes: Vec::new(),
            },
            Ok(answers) => VerifyTxnPartitionsResponse {
                error_code: 0,
                partition_error_codes: requested
                    .iter()
                    .map(|tp| {
                        let answer = answers.iter().find(|(t, _)| t == tp).map(|(_, r)| *r);
                        i32::from(match answer {
                            Some(Ok(())) => 0,
                            Some(Err(code)) => code,
                            None => ResponseError::UnknownServerError.code(),
                        })
                    })
                    .collect(),
            },
        }
    }
}
