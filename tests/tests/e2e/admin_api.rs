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
