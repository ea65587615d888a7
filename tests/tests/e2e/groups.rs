//! Consumer groups with rdkafka on `fjord dev` defaults: offsets committed by a group member
//! (synchronous OffsetCommit after each record) survive a SIGKILL of the node, and a new member
//! of the group resumes exactly after them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fjord_e2e::{
    FjordNode, bounded, client_config, create_topic, expect_no_more, producer, topic_name, wait_for,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const LIMIT: Duration = Duration::from_secs(150);
const PARTITIONS: i32 = 2;
const PER_PARTITION: i64 = 20;

/// A group member; its session timeout is 6 s so that after the node restarts, the member the
/// coordinator reloads from the log (dead with the old node) expires quickly.
fn group_consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create group consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Polls until `n` records arrived, committing each (synchronously) right after it.
fn consume_and_commit(c: &BaseConsumer, n: usize, timeout: Duration) -> Vec<(i32, i64)> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {n} records within {timeout:?}; client errors: {errors:?}",
            out.len()
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                out.push((m.partition(), m.offset()));
                c.commit_message(&m, CommitMode::Sync)
                    .unwrap_or_else(|e| panic!("commit of {}@{}: {e}", m.partition(), m.offset()));
            }
            Some(Err(e)) => {
                let e = e.to_string();
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
    }
    out
}

/// The group's committed offsets (OffsetFetch), `None` for a partition without one.
fn committed(bootstrap: &str, group: &str, topic: &str) -> Option<BTreeMap<i32, Option<i64>>> {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .ok()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let res = c.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
    let mut out = BTreeMap::new();
    for e in res.elements() {
        if e.error().is_err() {
            return None;
        }
        let off = match e.offset() {
            Offset::Offset(o) => Some(o),
            Offset::Invalid => None,
            _ => return None,
        };
        out.insert(e.partition(), off);
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_sigkill_and_a_new_member_resumes() {
    bounded(LIMIT, async {
        let mut node = FjordNode::start();
        let bootstrap = node.bootstrap();
        let topic = topic_name("groups-kill");
        let group = format!("{topic}-group");
        create_topic(&bootstrap, &topic, PARTITIONS).await;
        let p = producer(&bootstrap, "all", "none");
        for part in 0..PARTITIONS {
            for i in 0..PER_PARTITION {
                let v = format!("{part}/{i}");
                let rec = FutureRecord::to(&topic).payload(&v).key(&v).partition(part);
                let delivery = p
                    .send(rec, Duration::from_secs(30))
                    .await
                    .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
                assert_eq!(delivery.offset, i, "offset of {v}");
            }
        }
        drop(p);
        let all: BTreeSet<(i32, i64)> = (0..PARTITIONS)
            .flat_map(|p| (0..PER_PARTITION).map(move |o| (p, o)))
            .collect();

        // A member reads and commits part of the records.
        let c1 = group_consumer(&bootstrap, &group, &topic);
        let first = consume_and_commit(&c1, 15, Duration::from_secs(60));
        let mut expected: BTreeMap<i32, Option<i64>> = (0..PARTITIONS).map(|p| (p, None)).collect();
        for &(p, o) in &first {
            let e = expected.entry(p).or_default();
            *e = Some(e.map_or(o + 1, |x| x.max(o + 1)));
        }
        assert_eq!(
            committed(&bootstrap, &group, &topic),
            Some(expected.clone()),
            "committed offsets before the kill"
        );

        // The node dies without warning (the member too: no LeaveGroup, no more commits).
        node.kill9();
        drop(c1);
        node.restart();

        let after = wait_for(
            Duration::from_secs(30),
            "committed offsets readable after restart",
            || committed(&bootstrap, &group, &topic),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            after, expected,
            "committed offsets after SIGKILL and restart"
        );

        // A new member resumes exactly after the committed offsets.
        let rest: BTreeSet<(i32, i64)> = all
            .iter()
            .copied()
            .filter(|&(p, o)| expected[&p].is_none_or(|c| o >= c))
            .collect();
        let c2 = group_consumer(&bootstrap, &group, &topic);
        let second = consume_and_commit(&c2, rest.len(), Duration::from_secs(60));
        expect_no_more(&c2, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e:#}"));
        let second_set: BTreeSet<(i32, i64)> = second.iter().copied().collect();
        assert_eq!(
            second_set.len(),
            second.len(),
            "a record read twice: {second:?}"
        );
        assert_eq!(second_set, rest, "records read by the new member");
        let ends: BTreeMap<i32, Option<i64>> =
            (0..PARTITIONS).map(|p| (p, Some(PER_PARTITION))).collect();
        assert_eq!(committed(&bootstrap, &group, &topic), Some(ends));
    })
    .await;
}

/// The group's state as DescribeGroups tells it (`None` while the coordinator is not ready).
fn group_state(bootstrap: &str, group: &str) -> Option<String> {
    use fjord_e2e::KafkaConn;
    use kafka_protocol::messages::{DescribeGroupsRequest, GroupId};
    use kafka_protocol::protocol::StrBytes;
    let mut conn = KafkaConn::connect(bootstrap, Duration::from_secs(5)).ok()?;
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let resp = conn.request(5, &req).ok()?;
    let described = resp.groups.first()?;
    (described.error_code == 0).then(|| described.group_state.to_string())
}

/// As in Kafka, a group whose only member left without committing stays Empty (listed,
/// described, deletable) instead of vanishing, also after the node restarts and its coordinator
/// reloads `__consumer_offsets` (the Empty group's metadata record); DeleteGroups removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_left_without_offsets_stays_empty_across_a_restart() {
    use fjord_e2e::KafkaConn;
    use kafka_protocol::messages::{DeleteGroupsRequest, GroupId};
    use kafka_protocol::protocol::StrBytes;
    bounded(LIMIT, async {
        let mut node = FjordNode::start();
        let bootstrap = node.bootstrap();
        let topic = topic_name("groups-empty");
        let group = format!("{topic}-group");
        create_topic(&bootstrap, &topic, 1).await;

        // Phase 1: a member joins, gets its partition, and leaves without committing.
        let c = group_consumer(&bootstrap, &group, &topic);
        wait_for(Duration::from_secs(30), "an assignment", || {
            let _ = c.poll(Duration::from_millis(100));
            c.assignment().ok().filter(|a| a.count() == 1)
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        drop(c);
        let empty = |what: &str| {
            wait_for(Duration::from_secs(30), what, || {
                group_state(&bootstrap, &group).filter(|s| s == "Empty")
            })
            .unwrap_or_else(|e| panic!("{e:#}"));
        };
        empty("the group Empty after its member left");

        // Phase 2: the restarted node's coordinator loads it as Empty.
        node.restart();
        empty("the group Empty after the restart");

        // Phase 3: DeleteGroups removes it.
        let mut conn = KafkaConn::connect(&bootstrap, Duration::from_secs(5)).expect("connect");
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_string(group.clone()))]);
        let resp = conn.request(2, &req).expect("DeleteGroups");
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, vec![0], "DeleteGroups");
        assert_eq!(group_state(&bootstrap, &group).as_deref(), Some("Dead"));
    })
    .await;
}
