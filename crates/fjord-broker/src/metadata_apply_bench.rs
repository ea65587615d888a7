//! Benchmark (ignored by default; prints figures, asserts no timing): the cost
//! of one metadata change on a node hosting many partitions.
//!
//! Node 1 hosts `TOPICS × PARTITIONS_PER_TOPIC` partitions (RF 3, node 1 leads
//! them all). Each round commits one AlterPartition (one partition's ISR
//! shrinks) and measures
//! - publish: what the controller's state machine does per applied batch to
//!   publish the image (`Arc::new(image.clone())`);
//! - apply: the broker's metadata apply of the new image against the one
//!   applied before (only changed topics are walked).
//!
//! Run: `cargo test -p fjord-broker --release metadata_apply_bench -- --ignored --nocapture`
//! (opens 10,000 logs in a temporary directory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_controller::{Listener, MetadataCommand, MetadataImage, MetadataResponse};
use fjord_types::TopicId;
use uuid::Uuid;

use super::{apply_delta, apply_image};
use crate::config::BrokerConfig;
use crate::log_dir_failure::LogDirFailure;
use crate::log_dirs::LogDirs;
use crate::replica_manager::ReplicaManager;

const TOPICS: usize = 100;
const PARTITIONS_PER_TOPIC: usize = 100;
const ROUNDS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: p50 {:?}  p99 {:?}  max {:?}  ({} rounds)",
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}

#[test]
#[ignore = "benchmark: prints figures"]
fn metadata_apply_bench() {
    let mut image = MetadataImage::default();
    let mut index = 0u64;
    let mut commit = |image: &mut MetadataImage, cmd: MetadataCommand| {
        index += 1;
        (index, image.apply(index, &cmd))
    };
    let mut broker_epoch = 0;
    for broker_id in 1..=3 {
        let (at, response) = commit(
            &mut image,
            MetadataCommand::RegisterBroker {
                broker_id,
                incarnation_id: Uuid::from_u128(broker_id as u128),
                listeners: vec![Listener {
                    name: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9092,
                }],
                rack: None,
            },
        );
        assert!(
            !matches!(response, MetadataResponse::Error(_)),
            "{response:?}"
        );
        if broker_id == 1 {
            broker_epoch = at as i64;
        }
    }
    let mut topic_ids = Vec::new();
    for t in 0..TOPICS {
        let topic_id = TopicId(Uuid::from_u128(1000 + t as u128));
        let (_, response) = commit(
            &mut image,
            MetadataCommand::CreateTopic {
                topic_id,
                name: format!("bench-{t}"),
                partitions: vec![vec![1, 2, 3]; PARTITIONS_PER_TOPIC],
                configs: Default::default(),
            },
        );
        assert!(
            !matches!(response, MetadataResponse::Error(_)),
            "{response:?}"
        );
        topic_ids.push(topic_id);
    }

    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::new(1, dir.path().to_path_buf(), "localhost".into(), 9092);
    let log_dirs = LogDirs::open(&config.log_dir).unwrap();
    let replicas = ReplicaManager::new(1, LogDirFailure::new(config.log_dir.clone()));
    let mut applied = Arc::new(image.clone());
    let started = Instant::now();
    apply_image(&replicas, &log_dirs, &config, &applied);
    let opened = started.elapsed();
    let hosted = replicas.all().len();
    assert_eq!(hosted, TOPICS * PARTITIONS_PER_TOPIC);

    let (mut publish, mut apply) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let topic_id = topic_ids[round % TOPICS];
        let partition = (round / TOPICS) as i32;
        let (_, response) = commit(
            &mut image,
            MetadataCommand::AlterPartition {
                broker_id: 1,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch: 0,
                partition_epoch: 0,
                new_isr: vec![1, 2],
            },
        );
        assert!(
            matches!(response, MetadataResponse::PartitionAltered { .. }),
            "{response:?}"
        );
        let started = Instant::now();
        let next = Arc::new(image.clone());
        publish.push(started.elapsed());

        let started = Instant::now();
        let changes = apply_delta(&replicas, &log_dirs, &config, Some(&applied), &next);
        apply.push(started.elapsed());
        assert_eq!(changes.len(), 1, "{changes:?}");
        applied = next;
    }
    drop(applied);
    assert!(!replicas.log_dir_failure().is_offline());

    println!(
        "partitions hosted: {hosted} ({TOPICS} topics x {PARTITIONS_PER_TOPIC}), RF 3, all led here"
    );
    println!("first apply (opens every log): {opened:?}");
    summary("publish (state machine, per applied batch)", publish);
    summary("apply (broker, one-partition ISR change)", apply);
}
