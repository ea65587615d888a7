//! The one place where broker errors become Kafka error codes.
//!
//! Handlers never pick a code for a [`PartitionError`], [`AdminError`] or
//! [`GroupError`] themselves; they call [`partition_error`],
//! [`admin_error`] or [`group_error`]. Codes the
//! gateway decides on its own (an unknown topic id in a request, a fenced
//! leader epoch, an unsupported fetch session) are plain
//! [`ResponseError`] values in the handler that detects them.

use fjord_broker::{AdminError, PartitionError};
use fjord_coordinator::group::GroupError;
use fjord_coordinator::txn::TxnError;
use kafka_protocol::ResponseError;

/// The Kafka error for a failed produce, fetch or offset lookup on one partition.
pub fn partition_error(err: &PartitionError) -> ResponseError {
    match err {
        PartitionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        PartitionError::NotLeaderOrFollower { .. } => ResponseError::NotLeaderOrFollower,
        PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        PartitionError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        PartitionError::CorruptMessage(_) => ResponseError::CorruptMessage,
        PartitionError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        PartitionError::InvalidRecord(_) => ResponseError::InvalidRecord,
        PartitionError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        PartitionError::RecordListTooLarge(_) => ResponseError::RecordListTooLarge,
        PartitionError::UnsupportedForMessageFormat(_) => {
            ResponseError::UnsupportedForMessageFormat
        }
        PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        PartitionError::RequestTimedOut => ResponseError::RequestTimedOut,
        PartitionError::PolicyViolation { .. } => ResponseError::PolicyViolation,
        PartitionError::KafkaStorage(_)
        | PartitionError::LogDirOffline
        | PartitionError::FlushFailed => ResponseError::KafkaStorageError,
        // Retriable and makes the client refresh metadata and find the new
        // leader, which is what Kafka's controlled shutdown achieves too.
        PartitionError::ShuttingDown => ResponseError::NotLeaderOrFollower,
        PartitionError::OutOfOrderSequenceNumber(_) => ResponseError::OutOfOrderSequenceNumber,
        PartitionError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        PartitionError::TransactionCoordinatorFenced(_) => {
            ResponseError::TransactionCoordinatorFenced
        }
        PartitionError::ControlBatchFromClient { .. } => ResponseError::InvalidRecord,
        PartitionError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        PartitionError::RecordsRejected { errors, .. } => {
            if errors.iter().any(fjord_broker::RecordError::is_timestamp) {
                ResponseError::InvalidTimestamp
            } else {
                ResponseError::InvalidRecord
            }
        }
    }
}

/// The Kafka error for a failed topic administration call.
pub fn admin_error(err: &AdminError) -> ResponseError {
    match err {
        AdminError::TopicAlreadyExists => ResponseError::TopicAlreadyExists,
        AdminError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        AdminError::UnknownTopicId => ResponseError::UnknownTopicId,
        AdminError::InvalidTopicName => ResponseError::InvalidTopicException,
        AdminError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        AdminError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        AdminError::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
        AdminError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        AdminError::InvalidRequest { .. } => ResponseError::InvalidRequest,
        AdminError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
        AdminError::NotController => ResponseError::NotController,
        AdminError::RequestTimedOut => ResponseError::RequestTimedOut,
        // Retried by the admin service until its timeout; should it ever
        // escape, the client may retry too.
        AdminError::ConfigsChanged => ResponseError::RequestTimedOut,
        // The controller failed in a way the broker did not classify.
        AdminError::Controller(_) | AdminError::UnexpectedControllerResponse { .. } => {
            ResponseError::UnknownServerError
        } // No transaction coordinator yet: tell the client plainly that this
          // broker does not do what it asked.
    }
}

/// The Kafka error for a failed consumer-group call: each variant is named
/// after its code.
pub fn group_error(err: &GroupError) -> ResponseError {
    match err {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::UnknownServerError => ResponseError::UnknownServerError,
        GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::UnknownMemberId { .. } => ResponseError::UnknownMemberId,
        GroupError::MemberIdRequired { .. } => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId { .. } => ResponseError::FencedInstanceId,
        GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::GroupMaxSizeReached { .. } => ResponseError::GroupMaxSizeReached,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
        GroupError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
    }
}

/// The Kafka error for a failed transaction coordinator call (the
/// coordinator crate's table: partition leaders need it too, for
/// verifications).
pub fn txn_error(err: &TxnError) -> ResponseError {
    err.kafka_error()
}

/// The code of one partition in a group call's per-partition results; a
/// partition the coordinator did not see (unknown topic) is
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn partition_group_result(
    results: &std::collections::HashMap<
        fjord_types::TopicPartition,
        Result<(), fjord_coordinator::group::GroupError>,
    >,
    tp: &fjord_types::TopicPartition,
) -> i16 {
    match results.get(tp) {
        Some(Ok(())) => 0,
        Some(Err(err)) => {
            tracing::debug!(%err, %tp, "group call failed for a partition");
            group_error(err).code()
        }
        None => ResponseError::UnknownTopicOrPartition.code(),
    }
}

/// The message Kafka would put next to an admin error code: the error's
/// own text with its causes, for the client to show.
pub fn admin_error_message(err: &AdminError) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_log::LogError;

    fn corrupt() -> LogError {
        LogError::CorruptRecord {
            position: 0,
            reason: "bad crc",
        }
    }

    #[test]
    fn partition_errors_map_to_kafka_codes() {
        let table: Vec<(PartitionError, i16)> = vec![
            (PartitionError::UnknownTopicOrPartition, 3),
            (PartitionError::NotLeaderOrFollower { leader: Some(2) }, 6),
            (
                PartitionError::FencedLeaderEpoch {
                    given: 1,
                    current: 2,
                },
                74,
            ),
            (
                PartitionError::UnknownLeaderEpoch {
                    given: 3,
                    current: 2,
                },
                75,
            ),
            (
                PartitionError::OffsetOutOfRange {
                    requested: 10,
                    log_start: 0,
                    log_end: 5,
                },
                1,
            ),
            (PartitionError::MessageTooLarge { size: 10, max: 5 }, 10),
            (PartitionError::NotEnoughReplicas { isr: 1, min_isr: 2 }, 19),
            (PartitionError::RequestTimedOut, 7),
            (PartitionError::ShuttingDown, 6),
            (PartitionError::CorruptMessage(corrupt()), 2),
            (
                PartitionError::InvalidRecord(LogError::InvalidRecord { reason: "x" }),
                87,
            ),
            (
                PartitionError::UnsupportedForMessageFormat(LogError::UnsupportedMagic {
                    magic: 1,
                }),
                43,
            ),
            (PartitionError::KafkaStorage(corrupt()), 56),
            (PartitionError::LogDirOffline, 56),
            (PartitionError::FlushFailed, 56),
            (
                PartitionError::InvalidTimestamp(LogError::InvalidTimestamp { reason: "x" }),
                32,
            ),
            (
                PartitionError::RecordListTooLarge(LogError::RecordSetTooLarge {
                    size: 10,
                    segment_bytes: 5,
                }),
                18,
            ),
            (
                PartitionError::ControlBatchFromClient { producer_id: 1 },
                87,
            ),
            (
                PartitionError::InvalidTxnState {
                    producer_id: 1,
                    producer_epoch: 0,
                },
                48,
            ),
            (
                PartitionError::RecordsRejected {
                    tp: fjord_types::TopicPartition::new("t", 0),
                    errors: vec![fjord_broker::RecordError {
                        batch_index: 0,
                        kind: fjord_broker::RecordErrorKind::MissingKey,
                    }],
                },
                87,
            ),
            (
                PartitionError::RecordsRejected {
                    tp: fjord_types::TopicPartition::new("t", 0),
                    errors: vec![fjord_broker::RecordError {
                        batch_index: 1,
                        kind: fjord_broker::RecordErrorKind::TimestampOutOfRange {
                            timestamp: 5,
                            offset: 1,
                            earliest: 10,
                            latest: 20,
                        },
                    }],
                },
                32,
            ),
        ];
        for (err, code) in table {
            assert_eq!(partition_error(&err).code(), code, "{err:?}");
        }
    }

    #[test]
    fn admin_errors_map_to_kafka_codes() {
        let table: Vec<(AdminError, i16)> = vec![
            (AdminError::TopicAlreadyExists, 36),
            (AdminError::UnknownTopicOrPartition, 3),
            (AdminError::UnknownTopicId, 100),
            (AdminError::InvalidTopicName, 17),
            (AdminError::InvalidPartitions { reason: "x".into() }, 37),
            (
                AdminError::InvalidReplicationFactor { reason: "x".into() },
                38,
            ),
            (
                AdminError::InvalidReplicaAssignment { reason: "x".into() },
                39,
            ),
            (AdminError::InvalidConfig { reason: "x".into() }, 40),
            (AdminError::TopicAuthorizationFailed, 29),
            (AdminError::NotController, 41),
            (AdminError::RequestTimedOut, 7),
        ];
        for (err, code) in table {
            assert_eq!(admin_error(&err).code(), code, "{err:?}");
        }
    }

    #[test]
    fn txn_errors_map_to_kafka_codes() {
        use fjord_coordinator::txn::TransactionState;
        let state = TransactionState::Ongoing;
        let table: Vec<(TxnError, i16)> = vec![
            (TxnError::EmptyTransactionalId, 42),
            (TxnError::CoordinatorNotAvailable, 15),
            (TxnError::NotCoordinator, 16),
            (TxnError::CoordinatorLoadInProgress, 14),
            (TxnError::UnknownServerError, -1),
            (
                TxnError::InvalidTransactionTimeout {
                    timeout_ms: 0,
                    max_ms: 1,
                },
                50,
            ),
            (TxnError::InvalidProducerIdMapping { producer_id: 1 }, 49),
            (
                TxnError::ProducerFenced {
                    epoch: 1,
                    current: 2,
                },
                90,
            ),
            (
                TxnError::InvalidProducerEpoch {
                    epoch: 1,
                    current: 2,
                },
                47,
            ),
            (TxnError::InvalidTxnState { state }, 48),
            (TxnError::ConcurrentTransactions { state }, 51),
            (TxnError::TransactionalIdNotFound, 105),
            (TxnError::TransactionAbortable, 120),
        ];
        for (err, code) in table {
            assert_eq!(txn_error(&err).code(), code, "{err:?}");
        }
    }

    #[test]
    fn group_errors_map_to_kafka_codes() {
        let table: Vec<(GroupError, i16)> = vec![
            (GroupError::InvalidGroupId, 24),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::NotCoordinator, 16),
            (GroupError::CoordinatorLoadInProgress, 14),
            (GroupError::UnknownServerError, -1),
            (
                GroupError::InvalidSessionTimeout {
                    timeout_ms: 1,
                    min_ms: 6000,
                    max_ms: 1_800_000,
                },
                26,
            ),
            (GroupError::InconsistentGroupProtocol, 23),
            (
                GroupError::UnknownMemberId {
                    member_id: "m".into(),
                },
                25,
            ),
            (
                GroupError::MemberIdRequired {
                    member_id: "m".into(),
                },
                79,
            ),
            (
                GroupError::FencedInstanceId {
                    group_instance_id: "i".into(),
                    member_id: "m".into(),
                },
                82,
            ),
            (
                GroupError::IllegalGeneration {
                    generation_id: 1,
                    current: 2,
                },
                22,
            ),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::GroupMaxSizeReached { max: 1 }, 81),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::GroupSubscribedToTopic, 86),
            (GroupError::OffsetMetadataTooLarge { size: 5, max: 4 }, 12),
            (GroupError::UnstableOffsetCommit, 88),
        ];
        for (err, code) in table {
            assert_eq!(group_error(&err).code(), code, "{err:?}");
        }
    }

    #[test]
    fn gateway_side_codes_have_kafka_numbers() {
        assert_eq!(ResponseError::UnknownTopicId.code(), 100);
        assert_eq!(ResponseError::InvalidTopicException.code(), 17);
        assert_eq!(ResponseError::LeaderNotAvailable.code(), 5);
        assert_eq!(ResponseError::FencedLeaderEpoch.code(), 74);
        assert_eq!(ResponseError::UnknownLeaderEpoch.code(), 75);
        assert_eq!(ResponseError::FetchSessionIdNotFound.code(), 70);
        assert_eq!(ResponseError::InvalidFetchSessionEpoch.code(), 71);
        assert_eq!(ResponseError::InvalidRequiredAcks.code(), 21);
        assert_eq!(ResponseError::UnsupportedVersion.code(), 35);
        assert_eq!(ResponseError::CoordinatorNotAvailable.code(), 15);
        assert_eq!(ResponseError::InvalidRequest.code(), 42);
        assert_eq!(ResponseError::UnknownTopicOrPartition.code(), 3);
    }
}
