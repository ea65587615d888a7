//! ACLs on a 3-node cluster of real processes with the authorizer on
//! (`allow_everyone_if_no_acl_found`, so the first ACL can be created by
//! User:ANONYMOUS, every PLAINTEXT client): ACLs created through one node
//! are enforced by every node (they are in the metadata log), and survive
//! a restart of a node.

use std::time::Duration;

use fjord_e2e::{ClusterOptions, FjordCluster, KafkaConn, bounded, topic_name, wait_for};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, DescribeAclsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(150);
const WAIT: Duration = Duration::from_secs(30);
const TOPIC: i8 = 2;
const CLUSTER: i8 = 4;
const ANY: i8 = 1;
const LITERAL: i8 = 3;
const DENY: i8 = 2;
const ALLOW: i8 = 3;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;
const ANON: &str = "User:ANONYMOUS";

fn conn(cluster: &FjordCluster, id: i32) -> KafkaConn {
    KafkaConn::connect(&cluster.node(id).bootstrap(), Duration::from_secs(10)).expect("connect")
}

fn acl(resource_type: i8, name: &str, operation: i8, permission: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_owned()))
        .with_resource_pattern_type(LITERAL)
        .with_principal(StrBytes::from_static_str(ANON))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

/// The topics node `id` lists in an all-topics Metadata.
fn listed_topics(cluster: &FjordCluster, id: i32) -> Vec<String> {
    let response = conn(cluster, id)
        .request(12, &MetadataRequest::default().with_topics(None))
        .expect("Metadata");
    response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect()
}

/// How many ACLs node `id` describes.
fn acl_count(cluster: &FjordCluster, id: i32) -> usize {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let response = conn(cluster, id)
        .request(3, &request)
        .expect("DescribeAcls");
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    response.resources.iter().map(|r| r.acls.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_reach_every_node_and_survive_a_restart() {
    bounded(LIMIT, async {
        let options = ClusterOptions {
            extra_broker_config: vec![
                "authorizer_enable = true".into(),
                "allow_everyone_if_no_acl_found = true".into(),
            ],
            ..ClusterOptions::fast(3)
        };
        let mut cluster = block_in_place(|| FjordCluster::start_with(options));
        let (hidden, visible) = (topic_name("acl-hidden"), topic_name("acl-visible"));
        cluster.create_topic(&hidden, 1, 3, &[]).await;
        cluster.create_topic(&visible, 1, 3, &[]).await;
        for id in cluster.ids() {
            let listed = listed_topics(&cluster, id);
            assert!(
                listed.contains(&hidden),
                "node {id}: no ACL yet: {listed:?}"
            );
        }

        // Phase 1: through node 1, keep ALTER on the cluster and deny
        // DESCRIBE of one topic; every node hides it, the other stays.
        let request = CreateAclsRequest::default().with_creations(vec![
            acl(CLUSTER, "kafka-cluster", ALTER, ALLOW),
            acl(TOPIC, &hidden, DESCRIBE, DENY),
        ]);
        let response = conn(&cluster, 1).request(3, &request).expect("CreateAcls");
        for r in &response.results {
            assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        }
        for id in cluster.ids() {
            block_in_place(|| {
                wait_for(WAIT, &format!("node {id} to hide {hidden}"), || {
                    let listed = listed_topics(&cluster, id);
                    (!listed.contains(&hidden) && listed.contains(&visible)).then_some(())
                })
            })
            .expect("hidden everywhere");
            assert_eq!(acl_count(&cluster, id), 2, "node {id}");
        }

        // Phase 2: node 2 restarts and still enforces them.
        block_in_place(|| cluster.restart(2));
        let listed = listed_topics(&cluster, 2);
        assert!(!listed.contains(&hidden), "after restart: {listed:?}");
        assert!(listed.contains(&visible), "after restart: {listed:?}");
        assert_eq!(acl_count(&cluster, 2), 2);
    })
    .await;
}
