//! What a client may not write with Produce, checked on the leader before
//! anything is appended (or answered as a duplicate).
//!
//! Kafka refuses, for `AppendOrigin.CLIENT`:
//! - control batches (COMMIT/ABORT markers): `LogValidator.validateBatch`
//!   throws `InvalidRecordException` (INVALID_RECORD) — only the
//!   transaction coordinator writes markers, through WriteTxnMarkers;
//! - transactional batches of a producer with no ongoing transaction whose
//!   append was not verified with the transaction coordinator (KIP-890):
//!   `UnifiedLog.analyzeAndValidateProducerState` throws
//!   `InvalidTxnStateException` (INVALID_TXN_STATE, "Record was not part of an
//!   ongoing transaction"). Fjord has no transaction coordinator, so no
//!   producer ever has an ongoing transaction and every transactional batch
//!   is refused this way, per partition. Kafka refuses a request with
//!   transactional batches but no `transactional_id` earlier and whole, with
//!   TRANSACTIONAL_ID_AUTHORIZATION_FAILED (`KafkaApis.handleProduceRequest`);
//!   Fjord does not tell the two apart: INVALID_TXN_STATE for both.
//!
//! Followers never come here: `Partition::append_from_leader` stores what
//! the leader wrote, control batches included. The group coordinator's
//! `__consumer_offsets` writes share the client path (they are neither
//! kind); the transaction coordinator's markers will need their own origin,
//! as Kafka's `AppendOrigin.COORDINATOR`.

use fjord_log::{BatchHeader, MAGIC_V2};

use crate::error::PartitionError;

/// Refuse the request's batches if any is a control batch or transactional.
/// Only v2 headers are judged; any other magic is left to the log's
/// validation (UNSUPPORTED_FOR_MESSAGE_FORMAT), as are framing and CRC.
pub(crate) fn validate_client_batches(headers: &[BatchHeader]) -> Result<(), PartitionError> {
    for header in headers.iter().filter(|h| h.magic == MAGIC_V2) {
        if header.is_control() {
            return Err(PartitionError::ControlBatchFromClient {
                producer_id: header.producer_id,
            });
        }
        if header.is_transactional() {
            return Err(PartitionError::InvalidTxnState {
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSACTIONAL: i16 = 1 << 4;
    const CONTROL: i16 = 1 << 5;

    fn header(magic: i8, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: -1,
            magic,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 0,
            records_count: 1,
        }
    }

    /// Each case: the request's batches' (magic, attributes) → what is answered.
    #[test]
    fn refuses_control_and_transactional_batches_from_clients() {
        let control = |e: &PartitionError| {
            matches!(e, PartitionError::ControlBatchFromClient { producer_id: 7 })
        };
        let txn = |e: &PartitionError| {
            matches!(
                e,
                PartitionError::InvalidTxnState {
                    producer_id: 7,
                    producer_epoch: 2
                }
            )
        };
        type Check = fn(&PartitionError) -> bool;
        /// (name, each batch's (magic, attributes), expected refusal).
        type Case = (&'static str, Vec<(i8, i16)>, Option<Check>);
        let cases: Vec<Case> = vec![
            ("plain batch", vec![(2, 0)], None),
            ("compressed, log-append-time", vec![(2, 0b1010)], None),
            (
                "commit/abort marker",
                vec![(2, CONTROL | TRANSACTIONAL)],
                Some(control),
            ),
            ("control bit alone", vec![(2, CONTROL)], Some(control)),
            ("transactional batch", vec![(2, TRANSACTIONAL)], Some(txn)),
            (
                "marker after a plain batch",
                vec![(2, 0), (2, CONTROL)],
                Some(control),
            ),
            (
                "transactional after plain",
                vec![(2, 0), (2, TRANSACTIONAL | 1)],
                Some(txn),
            ),
            // Old formats: the log answers UNSUPPORTED_FOR_MESSAGE_FORMAT.
            ("magic 1 is not judged here", vec![(1, CONTROL)], None),
            ("no batches", vec![], None),
        ];
        for (name, batches, expected) in cases {
            let headers: Vec<_> = batches.iter().map(|&(m, a)| header(m, a)).collect();
            match (validate_client_batches(&headers), expected) {
                (Ok(()), None) => {}
                (Err(e), Some(check)) => assert!(check(&e), "{name}: wrong error {e:?}"),
                (got, _) => panic!("{name}: unexpected {got:?}"),
            }
        }
    }
}
