//! `log_open_files_max`: a node serving many more segments than its bound of open files
//! answers produce and fetch on every partition, before and after a restart, while its
//! descriptors on log files never exceed the bound.

use std::time::Duration;

use fjord_e2e::procfs::{self, Fds};
use fjord_e2e::{ClusterOptions, FjordCluster, bounded, consume_n, consumer, producer, topic_name};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(240);
const BOUND: usize = 64;
const TOPICS: usize = 5;
const PARTITIONS: i32 = 100;

fn log_fds(cluster: &FjordCluster) -> Fds {
    let node = cluster.node(1);
    let pid = node.pid().expect("running");
    procfs::fds(pid, &node.data_dir().join("logs")).expect("/proc/PID/fd")
}

/// Produces `value(topic, p)` to every partition and waits for every ack.
async fn produce_each(bootstrap: &str, topics: &[String], round: u32) {
    let p = producer(bootstrap, "all", "none");
    let mut acks = Vec::new();
    for t in topics {
        for part in 0..PARTITIONS {
            let value = format!("{t}/{part}/{round}");
            let rec = FutureRecord::<(), _>::to(t).partition(part).payload(&value);
            acks.push(p.send_result(rec).map_err(|(e, _)| e).expect("queued"));
        }
    }
    for ack in acks {
        ack.await
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("produce acknowledged");
    }
}

/// Reads every partition from the beginning: `rounds` records each, as produced.
fn fetch_each(bootstrap: &str, topics: &[String], rounds: u32) {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for part in 0..PARTITIONS {
            tpl.add_partition_offset(t, part, Offset::Beginning)
                .expect("add partition");
        }
    }
    c.assign(&tpl).expect("assign");
    let total = topics.len() * PARTITIONS as usize * rounds as usize;
    let mut got: Vec<String> = consume_n(&c, total, Duration::from_secs(60))
        .expect("every record read back")
        .iter()
        .map(|m| {
            let v = String::from_utf8_lossy(m.payload().expect("value")).into_owned();
            assert!(
                v.starts_with(&format!("{}/{}/", m.topic(), m.partition())),
                "{v}"
            );
            v
        })
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), total, "each record once");
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_files_stay_within_log_open_files_max() {
    bounded(LIMIT, async {
        let mut options = ClusterOptions::fast(1);
        options
            .extra_broker_config
            .push(format!("log_open_files_max = {BOUND}"));
        let mut cluster = block_in_place(|| FjordCluster::start_with(options));
        let topics: Vec<String> = (0..TOPICS)
            .map(|i| topic_name(&format!("fds{i}")))
            .collect();
        for t in &topics {
            cluster.create_topic(t, PARTITIONS, 1, &[]).await;
        }
        let created = log_fds(&cluster);
        assert!(
            created.segments <= BOUND,
            "after creating 500 logs: {created:?}"
        );

        // Phase 1: a record to every partition, then read them all back.
        let bootstrap = cluster.bootstrap();
        produce_each(&bootstrap, &topics, 0).await;
        block_in_place(|| fetch_each(&bootstrap, &topics, 1));
        let served = log_fds(&cluster);
        println!("500 partitions, bound {BOUND}: {served:?}");
        assert!(
            served.segments <= BOUND,
            "after produce and fetch: {served:?}"
        );

        // Phase 2: after a clean restart segments open lazily: the same holds, and the
        // records written before it are all there.
        block_in_place(|| cluster.restart(1));
        let restarted = log_fds(&cluster);
        assert!(restarted.segments <= BOUND, "after restart: {restarted:?}");
        produce_each(&bootstrap, &topics, 1).await;
        block_in_place(|| fetch_each(&bootstrap, &topics, 2));
        let after = log_fds(&cluster);
        println!("after restart, produce and fetch: {after:?}");
        assert!(
            after.segments <= BOUND,
            "after restart, produce and fetch: {after:?}"
        );
        // Everything else the node holds is sockets and a fixed set (RocksDB, stdio, epoll).
        assert!(
            after.total <= BOUND + after.sockets + 64,
            "descriptors beyond the bound, sockets and 64 others: {after:?}"
        );
    })
    .await;
}
