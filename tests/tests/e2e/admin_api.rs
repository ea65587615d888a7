//! Topic administration through a real client's admin API (librdkafka's CreateTopics,
//! DescribeConfigs, CreatePartitions, DeleteTopics).

use std::time::Duration;

use fjord_e2e::{
    FjordNode, bounded, client_config, probe_metadata, producer, topic_name, wait_for,
    wait_for_topic,
};
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureRecord;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(15)))
        .operation_timeout(Some(Duration::from_secs(10)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_describe_configs_add_partitions_delete() {
    bounded(Duration::from_secs(90), async {
        let node = FjordNode::start();
        let b = node.bootstrap();
        let a = admin(&b);
        let topic = topic_name("admin");

        // Phase 1: create with a topic config; a second create fails with TOPIC_ALREADY_EXISTS.
        let new =
            NewTopic::new(&topic, 2, TopicReplication::Fixed(1)).set("retention.ms", "123456");
        let res = a
            .create_topics([&new], &opts())
            .await
            .expect("CreateTopics");
        assert_eq!(res, vec![Ok(topic.clone())]);
        wait_for_topic(&b, &topic, 2);
        let res = a
            .create_topics([&new], &opts())
            .await
            .expect("CreateTopics again");
        assert_eq!(
            res,
            vec![Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
        );

        // Zero partitions is invalid.
        let bad_name = format!("{topic}-zero");
        let bad = NewTopic::new(&bad_name, 0, TopicReplication::Fixed(1));
        let res = a.create_topics([&bad], &opts()).await;
        match res {
            Ok(v) => assert!(
                matches!(
                    v.as_slice(),
                    [Err((_, RDKafkaErrorCode::InvalidPartitions))]
                ),
                "0 partitions: {v:?}"
            ),
            Err(e) => eprintln!("0 partitions rejected client-side: {e}"),
        }

        // Phase 2: DescribeConfigs shows the override.
        let res = a
            .describe_configs([&ResourceSpecifier::Topic(&topic)], &opts())
            .await
            .expect("DescribeConfigs");
        let cfg = res
            .into_iter()
            .next()
            .expect("one resource")
            .expect("topic configs");
        let retention = cfg.get("retention.ms").expect("retention.ms listed");
        assert_eq!(retention.value.as_deref(), Some("123456"));
        assert!(!retention.is_default, "retention.ms was set explicitly");

        // Phase 3: CreatePartitions to 4; the new partition takes records.
        let res = a
            .create_partitions([&NewPartitions::new(&topic, 4)], &opts())
            .await
            .expect("CreatePartitions");
        assert_eq!(res, vec![Ok(topic.clone())]);
        wait_for_topic(&b, &topic, 4);
        let p = producer(&b, "all", "none");
        let d = p
            .send(
                FutureRecord::<(), _>::to(&topic).payload("p3").partition(3),
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to new partition 3: {e}"));
        assert_eq!((d.partition, d.offset), (3, 0));
        // Shrinking is refused.
        let res = a
            .create_partitions([&NewPartitions::new(&topic, 2)], &opts())
            .await
            .expect("CreatePartitions shrink");
        assert!(res[0].is_err(), "shrinking partitions must fail: {res:?}");

        // Phase 4: DeleteTopics; Metadata stops listing it.
        let res = a
            .delete_topics(&[&topic], &opts())
            .await
            .expect("DeleteTopics");
        assert_eq!(res, vec![Ok(topic.clone())]);
        wait_for(
            Duration::from_secs(20),
            "deleted topic gone from Metadata",
            || {
                let md = probe_metadata(&b).ok()?;
                (!md.topics
                    .iter()
                    .any(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str())))
                .then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    })
    .await;
}

#[test]
fn describe_cluster_lists_this_broker() {
    use fjord_e2e::KafkaConn;
    use kafka_protocol::messages::DescribeClusterRequest;
    let node = FjordNode::start();
    let mut conn = KafkaConn::connect(&node.bootstrap(), Duration::from_secs(10)).expect("connect");
    let v = conn
        .best_version::<DescribeClusterRequest>()
        .expect("DescribeCluster advertised");
    let resp = conn
        .request(v, &DescribeClusterRequest::default().with_endpoint_type(1))
        .expect("DescribeCluster");
    assert_eq!(
        resp.error_code, 0,
        "DescribeCluster error: {:?}",
        resp.error_message
    );
    assert!(!resp.cluster_id.is_empty(), "cluster id is set");
    let md = probe_metadata(&node.bootstrap()).expect("Metadata");
    assert_eq!(
        md.cluster_id.as_ref().map(|s| s.to_string()),
        Some(resp.cluster_id.to_string()),
        "same cluster id as Metadata"
    );
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(
        (resp.brokers[0].host.as_str(), resp.brokers[0].port),
        ("127.0.0.1", i32::from(node.port()))
    );
    assert!(resp.controller_id.0 >= 0, "a controller is known");
}

/// Answers the Java client relies on, over the wire: FindCoordinator for a
/// transactional id names this node once `__transaction_state` exists
/// (created by the first lookup, which may answer the retriable
/// COORDINATOR_NOT_AVAILABLE meanwhile), unbatched and batched, and
/// Metadata v12+ looks a topic up by its id whenever the id is non-zero,
/// also beside the name "" the Java client sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_coordinator_lookup_and_metadata_by_topic_id() {
    use fjord_e2e::{KafkaConn, create_topic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{FindCoordinatorRequest, MetadataRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    const UNKNOWN_TOPIC_ID: i16 = 100;

    bounded(Duration::from_secs(90), async {
        let node = FjordNode::start();
        let b = node.bootstrap();
        let topic = topic_name("by-id");
        create_topic(&b, &topic, 2).await;
        let mut conn = KafkaConn::connect(&b, Duration::from_secs(10)).expect("connect");

        // Phase 1: FindCoordinator key type 1, unbatched (v3) and batched (v4+).
        let txn = StrBytes::from_static_str("txn-1");
        let req = FindCoordinatorRequest::default()
            .with_key(txn.clone())
            .with_key_type(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let resp = loop {
            let resp = conn.request(3, &req).expect("FindCoordinator v3");
            if resp.error_code != COORDINATOR_NOT_AVAILABLE || std::time::Instant::now() > deadline
            {
                break resp;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!((resp.error_code, resp.node_id.0), (0, 1));
        assert_eq!(resp.port, i32::from(node.port()));
        let v = conn
            .best_version::<FindCoordinatorRequest>()
            .expect("versions");
        assert!(v >= 4, "FindCoordinator v{v}");
        let req = FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![txn])
            .with_key_type(1);
        let resp = conn.request(v, &req).expect("FindCoordinator batched");
        let found: Vec<(i16, i32)> = resp
            .coordinators
            .iter()
            .map(|c| (c.error_code, c.node_id.0))
            .collect();
        assert_eq!(found, vec![(0, 1)]);

        // Phase 2: Metadata by id, with the name "" as the Java client sends it.
        let md = probe_metadata(&b).expect("Metadata");
        let id = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str()))
            .map(|t| t.topic_id)
            .expect("topic listed");
        assert!(!id.is_nil(), "topic id set");
        let by_id = |id| {
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str(""))))
                    .with_topic_id(id),
            ]))
        };
        let v = conn.best_version::<MetadataRequest>().expect("versions");
        assert!(v >= 12, "Metadata v{v}");
        let resp = conn.request(v, &by_id(id)).expect("Metadata by id");
        let found: Vec<_> = resp
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.to_string());
                (t.error_code, name, t.topic_id, t.partitions.len())
            })
            .collect();
        assert_eq!(found, vec![(0, Some(topic.clone()), id, 2)]);
        let unknown = parse_like(&id, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        let resp = conn.request(v, &by_id(unknown)).expect("Metadata by id");
        let found: Vec<_> = resp
            .topics
            .iter()
            .map(|t| (t.error_code, t.name.is_none(), t.topic_id))
            .collect();
        assert_eq!(found, vec![(UNKNOWN_TOPIC_ID, true, unknown)]);
    })
    .await;
}

/// Parses `s` as a value of `like`'s type (here a topic id: this crate does
/// not depend on `uuid` itself).
fn parse_like<U: std::str::FromStr>(_like: &U, s: &str) -> U
where
    U::Err: std::fmt::Debug,
{
    s.parse().expect("parses")
}
