//! Group coordinator shards follow leadership of `__consumer_offsets` (loads driven by the
//! broker's local replica changes, in the background): a coordinator that lost its partition
//! stops answering for its groups, and one that gets it back answers from its log, never from
//! the state it had before it moved away.
//!
//! Layout: 3 nodes, RF 3, min ISR 1, fast fencing. L, the preferred leader of group G's
//! `__consumer_offsets` partition, commits 7; L is SIGSTOPped until fenced, M takes over and
//! commits 9; L resumes as a follower (NOT_COORDINATOR for G); a preferred election gives the
//! partition back to L at a new leader epoch, which must answer 9 (its log), not 7 (its old
//! shard).

use std::time::Duration;

use fjord_e2e::{ClusterOptions, FjordCluster, KafkaConn, bounded, topic_name, wait_for};
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId};
use kafka_protocol::protocol::StrBytes;
use tokio::task::block_in_place;

use crate::coordinator_shards::{
    OFFSETS, OFFSETS_PARTITIONS, fetch_answer, offsets_partition, simple_commit,
};
use crate::elect_leaders::elect;

const NOT_COORDINATOR: i16 = 16;
const WAIT: Duration = Duration::from_secs(30);

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// Commits `offset` at node `id` until it is accepted (retrying the retriable coordinator
/// errors a client retries: loading, not coordinator yet, not available).
fn commit_at(cluster: &FjordCluster, id: i32, group: &str, topic: &str, offset: i64) {
    let addr = cluster.node(id).bootstrap();
    wait_for(
        WAIT,
        &format!("commit {offset} of {group} at node {id}"),
        || (simple_commit(&addr, group, topic, offset).ok()? == 0).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Waits until node `id` answers `expected` (code, offset) to OffsetFetch; `never` is an
/// answer that would mean stale state and fails at once.
fn wait_answer(
    cluster: &FjordCluster,
    id: i32,
    group: &str,
    topic: &str,
    expected: (i16, i64),
    never: Option<(i16, i64)>,
) {
    let addr = cluster.node(id).bootstrap();
    wait_for(WAIT, &format!("{expected:?} from node {id}"), || {
        let answer = fetch_answer(&addr, group, topic).ok()?;
        assert_ne!(Some(answer), never, "node {id} answered from stale state");
        (answer == expected).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_loads_follow_leadership_and_never_serve_an_old_shard() {
    bounded(Duration::from_secs(150), async {
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::fast(3)));
        let topic = topic_name("cl-data");
        cluster.create_topic(&topic, 1, 3, &[]).await;
        block_in_place(|| run(&mut cluster, &topic));
    })
    .await;
}

fn run(cluster: &mut FjordCluster, topic: &str) {
    let group = "cl-group";
    let p = offsets_partition(group);

    // Phase: FindCoordinator creates `__consumer_offsets`; G's partition settles on its
    // preferred leader L.
    wait_for(WAIT, "FindCoordinator to succeed", || {
        let mut conn =
            KafkaConn::connect(&cluster.node(1).bootstrap(), Duration::from_secs(5)).ok()?;
        let req = FindCoordinatorRequest::default().with_key(group_id(group).0);
        (conn.request(2, &req).ok()?.error_code == 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    cluster.wait_for_healthy_topic(OFFSETS, OFFSETS_PARTITIONS, WAIT);
    let start = cluster.wait_for_partition(OFFSETS, p, WAIT, "led by its preferred replica", |s| {
        s.leader >= 0 && s.replicas.first() == Some(&s.leader) && s.isr.len() == 3
    });
    let l = start.leader;
    commit_at(cluster, l, group, topic, 7);

    // Phase: L stops; once fenced, M leads the partition, loads it from its log and serves 7.
    cluster.sigstop(l);
    let moved = cluster.wait_for_partition(OFFSETS, p, WAIT, "led by another node", |s| {
        s.leader >= 0 && s.leader != l
    });
    let m = moved.leader;
    wait_answer(cluster, m, group, topic, (0, 7), None);
    commit_at(cluster, m, group, topic, 9);

    // Phase: L resumes as a follower; its shard was unloaded on the change: NOT_COORDINATOR.
    cluster.sigcont(l);
    cluster.wait_for_partition(OFFSETS, p, WAIT, "L back in the ISR", |s| {
        s.leader == m && s.isr.contains(&l)
    });
    wait_answer(cluster, l, group, topic, (NOT_COORDINATOR, -1), None);

    // Phase: the preferred election gives the partition back to L at a new epoch: L loads it
    // from its log (9), never from the shard it had before it moved away (7); M stops
    // answering for G.
    let results = elect(cluster, m, OFFSETS, &[p]);
    assert_eq!(results, vec![(p, 0)], "preferred election of {OFFSETS}-{p}");
    cluster.wait_for_partition(OFFSETS, p, WAIT, "led by L again", |s| s.leader == l);
    wait_answer(cluster, l, group, topic, (0, 9), Some((0, 7)));
    wait_answer(cluster, m, group, topic, (NOT_COORDINATOR, -1), None);
}
