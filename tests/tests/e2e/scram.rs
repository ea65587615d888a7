//! SCRAM credentials on a 3-node cluster of real processes: credentials
//! altered through one node are in every node's DescribeUserScramCredentials
//! answer (they are in the metadata log, and each broker answers from its
//! applied image, the one its credential store is published from), a
//! deletion through another node reaches every node too, and both survive
//! a restart of a node.

use std::time::Duration;

use fjord_e2e::{ClusterOptions, FjordCluster, KafkaConn, bounded, wait_for};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(150);
const WAIT: Duration = Duration::from_secs(30);
const SHA256: i8 = 1;
const SHA512: i8 = 2;

fn conn(cluster: &FjordCluster, id: i32) -> KafkaConn {
    KafkaConn::connect(&cluster.node(id).bootstrap(), Duration::from_secs(10)).expect("connect")
}

fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.to_owned()))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(b"salt".to_vec().into())
        .with_salted_password(vec![7u8; 32].into())
}

/// Per user, node `id`'s (mechanism, iterations), sorted.
fn described(cluster: &FjordCluster, id: i32) -> Vec<(String, Vec<(i8, i32)>)> {
    let response = conn(cluster, id)
        .request(
            0,
            &DescribeUserScramCredentialsRequest::default().with_users(None),
        )
        .expect("DescribeUserScramCredentials");
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    response
        .results
        .iter()
        .map(|r| {
            assert_eq!(r.error_code, 0, "{:?}", r.error_message);
            let mut infos: Vec<_> = r
                .credential_infos
                .iter()
                .map(|c| (c.mechanism, c.iterations))
                .collect();
            infos.sort();
            (r.user.to_string(), infos)
        })
        .collect()
}

fn alter(cluster: &FjordCluster, id: i32, request: &AlterUserScramCredentialsRequest) {
    let response = conn(cluster, id)
        .request(0, request)
        .expect("AlterUserScramCredentials");
    for r in &response.results {
        assert_eq!(r.error_code, 0, "{}: {:?}", r.user, r.error_message);
    }
}

fn wait_everywhere(cluster: &FjordCluster, want: &[(String, Vec<(i8, i32)>)], what: &str) {
    for id in cluster.ids() {
        block_in_place(|| {
            wait_for(WAIT, &format!("node {id}: {what}"), || {
                (described(cluster, id) == want).then_some(())
            })
        })
        .expect("described everywhere");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_credentials_reach_every_node_and_survive_a_restart() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::fast(3)));
        for id in cluster.ids() {
            assert_eq!(described(&cluster, id), vec![], "node {id}: none yet");
        }

        // Phase 1: through node 1, two users; every node describes them.
        let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            upsert("alice", SHA512, 8192),
            upsert("bob", SHA256, 4096),
        ]);
        alter(&cluster, 1, &request);
        let both = vec![
            ("alice".to_owned(), vec![(SHA512, 8192)]),
            ("bob".to_owned(), vec![(SHA256, 4096)]),
        ];
        wait_everywhere(&cluster, &both, "alice and bob");

        // Phase 2: through node 3, delete bob and give alice SHA-256 too.
        let request = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_static_str("bob"))
                    .with_mechanism(SHA256),
            ])
            .with_upsertions(vec![upsert("alice", SHA256, 4096)]);
        // alice and bob are different users: one request may alter both.
        alter(&cluster, 3, &request);
        let alice = vec![("alice".to_owned(), vec![(SHA256, 4096), (SHA512, 8192)])];
        wait_everywhere(&cluster, &alice, "alice with both mechanisms, no bob");

        // Phase 3: node 2 restarts and still has them.
        block_in_place(|| cluster.restart(2));
        assert_eq!(described(&cluster, 2), alice, "after restart");
    })
    .await;
}
