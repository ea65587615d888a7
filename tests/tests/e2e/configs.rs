//! Topic and broker configs on a 3-node cluster of real processes: an
//! IncrementalAlterConfigs sent to one node is seen by DescribeConfigs on
//! another (it went through the controller's metadata log), and a dynamic
//! cluster-default `log.retention.ms` reaches a running log that has no
//! topic override: its old segments are deleted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fjord_e2e::{
    ClusterOptions, FjordCluster, KafkaConn, bounded, client_config, producer, topic_name, wait_for,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(150);
const WAIT: Duration = Duration::from_secs(30);
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;

fn conn(cluster: &FjordCluster, id: i32) -> KafkaConn {
    KafkaConn::connect(&cluster.node(id).bootstrap(), Duration::from_secs(10)).expect("connect")
}

/// One IncrementalAlterConfigs entry at node `id`; the resource's error code.
fn alter(
    cluster: &FjordCluster,
    id: i32,
    resource: (i8, &str),
    ops: &[(&str, i8, Option<&str>)],
) -> i16 {
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_config_operation(*op)
                .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource.0)
            .with_resource_name(StrBytes::from_string(resource.1.to_string()))
            .with_configs(configs),
    ]);
    let response = conn(cluster, id)
        .request(1, &request)
        .expect("IncrementalAlterConfigs");
    response.responses[0].error_code
}

/// `name` of a topic as node `id` describes it: (value, source, synonym sources).
fn describe(cluster: &FjordCluster, id: i32, topic: &str, name: &str) -> (String, i8, Vec<i8>) {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configuration_keys(Some(vec![StrBytes::from_string(name.to_string())])),
        ]);
    let response = conn(cluster, id)
        .request(4, &request)
        .expect("DescribeConfigs");
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let c = &result.configs[0];
    (
        c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        c.config_source,
        c.synonyms.iter().map(|s| s.source).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_on_one_node_seen_on_another_and_cluster_default_retention_applies() {
    bounded(LIMIT, async {
        let options = ClusterOptions {
            log_retention_check_interval_ms: 500,
            ..ClusterOptions::fast(3)
        };
        let mut cluster = block_in_place(|| FjordCluster::start_with(options));
        let topic = topic_name("configs");
        // Small segments, so old records fill closed segments retention can delete.
        cluster
            .create_topic(&topic, 1, 3, &[("segment.bytes", "1024")])
            .await;

        // Phase 1: a topic override set through node 2 is described by node 3,
        // with the topic level first and the broker synonym's default after it.
        assert_eq!(
            alter(
                &cluster,
                2,
                (TOPIC, &topic),
                &[("retention.ms", SET, Some("3600000"))]
            ),
            0
        );
        let seen = block_in_place(|| {
            wait_for(WAIT, "node 3 to describe the override", || {
                let d = describe(&cluster, 3, &topic, "retention.ms");
                (d.0 == "3600000").then_some(d)
            })
        })
        .expect("override seen");
        assert_eq!(seen.1, 1, "DYNAMIC_TOPIC_CONFIG");
        assert_eq!(
            seen.2,
            vec![1, 5],
            "topic override, then log.retention.ms's default"
        );

        // Phase 2: deleted through node 1, node 3 falls back to the default.
        assert_eq!(
            alter(
                &cluster,
                1,
                (TOPIC, &topic),
                &[("retention.ms", DELETE, None)]
            ),
            0
        );
        block_in_place(|| {
            wait_for(WAIT, "node 3 to see the default again", || {
                (describe(&cluster, 3, &topic, "retention.ms").1 == 5).then_some(())
            })
        })
        .expect("override deleted");

        // Phase 3: records two days old stay under the default 7-day retention.
        let p = producer(&cluster.bootstrap(), "all", "none");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let old = now - 2 * 24 * 3600 * 1000;
        let value = vec![b'x'; 200];
        for i in 0..40 {
            let key = i.to_string();
            let record = FutureRecord::to(&topic)
                .key(&key)
                .payload(&value)
                .partition(0)
                .timestamp(old);
            p.send(record, Duration::from_secs(10))
                .await
                .expect("produce");
        }
        let consumer: BaseConsumer = client_config(&cluster.bootstrap())
            .set("group.id", "configs-e2e")
            .create()
            .expect("consumer");
        let low = |c: &BaseConsumer| {
            c.fetch_watermarks(&topic, 0, Duration::from_secs(5))
                .map(|(low, _)| low)
                .unwrap_or(-1)
        };
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            block_in_place(|| low(&consumer)),
            0,
            "nothing deleted under the default retention"
        );

        // Phase 4: a cluster-wide dynamic default of one day (broker resource
        // ""), sent to node 3, deletes the old segments on the running logs.
        assert_eq!(
            alter(
                &cluster,
                3,
                (BROKER, ""),
                &[("log.retention.ms", SET, Some("86400000"))]
            ),
            0
        );
        let start = block_in_place(|| {
            wait_for(WAIT, "retention to delete old segments", || {
                let l = low(&consumer);
                (l > 0).then_some(l)
            })
        })
        .expect("cluster default retention applied");
        assert!(start > 0);
        let d = block_in_place(|| describe(&cluster, 1, &topic, "retention.ms"));
        assert_eq!(
            (d.0.as_str(), d.1),
            ("86400000", 3),
            "DYNAMIC_DEFAULT_BROKER_CONFIG"
        );

        // A read-only broker config is refused with INVALID_REQUEST (42).
        assert_eq!(
            alter(&cluster, 1, (BROKER, "1"), &[("node.id", SET, Some("9"))]),
            42
        );
    })
    .await;
}
