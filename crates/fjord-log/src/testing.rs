//! Record batches for tests (feature `testing`, and this crate's own tests):
//! real magic v2 batches encoded by `kafka-protocol`, as clients send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// The timestamp of the first record when a test does not care.
pub const TIMESTAMP: i64 = 1_700_000_000_000;

/// A plain record (no producer id) at `offset_delta` with timestamp `timestamp`.
pub fn record(offset_delta: i64, timestamp: i64, key: Option<Bytes>, value: Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: offset_delta,
        // offset - sequence must be constant or the encoder splits the batch.
        sequence: offset_delta as i32,
        timestamp,
        key,
        value: Some(value),
        headers: Default::default(),
        delete_horizon: false,
    }
}

/// One batch holding `records`.
pub fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode test batch");
    buf.freeze()
}

/// One uncompressed batch with one keyless record per value.
pub fn batch_of_values(values: impl IntoIterator<Item = Bytes>) -> Bytes {
    let records: Vec<Record> = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| record(i as i64, TIMESTAMP, None, value))
        .collect();
    encode(&records, Compression::None)
}

/// One uncompressed batch of `count` records with the value `value`.
pub fn batch(count: usize) -> Bytes {
    batch_of_values((0..count).map(|_| Bytes::from_static(b"value")))
}

/// One uncompressed batch of `count` records from idempotent producer `pid`
/// at `epoch`, sequences from `first_seq`, every record at `timestamp`.
pub fn idempotent_batch(pid: i64, epoch: i16, first_seq: i32, count: i32, timestamp: i64) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            producer_id: pid,
            producer_epoch: epoch,
            sequence: first_seq.wrapping_add(i),
            ..record(i64::from(i), timestamp, None, Bytes::from_static(b"value"))
        })
        .collect();
    encode(&records, Compression::None)
}

/// Like [`idempotent_batch`], with the transactional attribute bit (0x10):
/// a batch of producer `pid`'s ongoing transaction.
pub fn transactional_batch(
    pid: i64,
    epoch: i16,
    first_seq: i32,
    count: i32,
    timestamp: i64,
) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: true,
            producer_id: pid,
            producer_epoch: epoch,
            sequence: first_seq.wrapping_add(i),
            ..record(i64::from(i), timestamp, None, Bytes::from_static(b"value"))
        })
        .collect();
    encode(&records, Compression::None)
}

/// A COMMIT (`commit`) or ABORT marker of producer `pid` at `epoch` from a
/// coordinator at `coordinator_epoch`.
pub fn marker_batch(pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Bytes {
    use crate::control::{EndTxnMarker, TxnResult, end_txn_marker_batch};
    let result = if commit {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    end_txn_marker_batch(
        pid,
        epoch,
        EndTxnMarker {
            result,
            coordinator_epoch,
        },
        TIMESTAMP,
    )
}

/// A size-limited tmpfs mounted on a directory, unmounted on drop: a
/// filesystem that fills up, for full-disk tests (this crate's and the e2e
/// suite's). Needs root, as the test command runs; a failed mount fails the
/// test with the reason rather than skipping it.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs root to mount a tmpfs: mount -t tmpfs -o size={size} tmpfs {} failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
