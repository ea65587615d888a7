//! ListGroups on a 3-node cluster: every broker answers with the groups it coordinates (those
//! whose `__consumer_offsets` partition it leads), as Kafka does, so the union over the
//! brokers — what clients and `fjord group list` build — holds every group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fjord_e2e::{
    FjordCluster, KafkaConn, bounded, cli_ok, client_config, commit_offsets, run_cli, topic_name,
    wait_for,
};
use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::BaseConsumer;
use tokio::task::block_in_place;

/// `offsets_topic_num_partitions` in the harness's node config.
const OFFSETS_PARTITIONS: i32 = 4;
const GROUPS_PER_PARTITION: usize = 3;

/// Kafka's `partitionFor`: `Utils.abs(groupId.hashCode) % partitions` (Java's String.hashCode).
fn partition_for(group: &str) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % OFFSETS_PARTITIONS
}

/// Group ids, `GROUPS_PER_PARTITION` on each `__consumer_offsets` partition.
fn spread_groups(prefix: &str) -> BTreeMap<String, i32> {
    let mut per_partition = BTreeMap::<i32, usize>::new();
    let mut groups = BTreeMap::new();
    for i in 0u32.. {
        let group = format!("{prefix}-{i}");
        let p = partition_for(&group);
        let n = per_partition.entry(p).or_default();
        if *n < GROUPS_PER_PARTITION {
            *n += 1;
            groups.insert(group, p);
        }
        if groups.len() == GROUPS_PER_PARTITION * OFFSETS_PARTITIONS as usize {
            return groups;
        }
    }
    groups
}

/// ListGroups at one node (highest common version), with optional v4 states filter.
fn list_at(cluster: &FjordCluster, id: i32, states: &[&str]) -> anyhow::Result<BTreeSet<String>> {
    let mut conn = KafkaConn::connect(&cluster.node(id).bootstrap(), Duration::from_secs(10))?;
    let version = conn.best_version::<ListGroupsRequest>()?;
    let request = ListGroupsRequest::default().with_states_filter(
        states
            .iter()
            .map(|s| StrBytes::from_string(s.to_string()))
            .collect(),
    );
    let response = conn.request(version, &request)?;
    anyhow::ensure!(response.error_code == 0, "error {}", response.error_code);
    Ok(response
        .groups
        .iter()
        .map(|g| g.group_id.0.to_string())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_lists_the_groups_it_coordinates() {
    bounded(Duration::from_secs(180), async {
        let mut cluster = block_in_place(|| FjordCluster::start(3));
        let topic = topic_name("list-groups");
        cluster.create_topic(&topic, 1, 3, &[]).await;

        // Phase 1: 12 groups with committed offsets, 3 on each `__consumer_offsets` partition.
        let groups = spread_groups(&topic);
        block_in_place(|| {
            for group in groups.keys() {
                let c: BaseConsumer = client_config(&cluster.bootstrap())
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .create()
                    .expect("create consumer");
                commit_offsets(&c, &topic, &[(0, 0)]);
            }
        });
        let all: BTreeSet<String> = groups.keys().cloned().collect();

        // Phase 2: each broker lists exactly the groups of the partitions it leads, and the
        // union is every group. Leaders are read before and after, so a move in between retries.
        let ids = cluster.ids();
        let per_broker = block_in_place(|| {
            wait_for(
                Duration::from_secs(30),
                "ListGroups per coordinator",
                || {
                    let leaders = cluster.topic_from(ids[0], "__consumer_offsets")?;
                    let listed: BTreeMap<i32, BTreeSet<String>> = ids
                        .iter()
                        .map(|&id| list_at(&cluster, id, &[]).map(|l| (id, l)))
                        .collect::<anyhow::Result<_>>()
                        .ok()?;
                    let expected: BTreeMap<i32, BTreeSet<String>> = ids
                        .iter()
                        .map(|&id| {
                            let mine = groups
                                .iter()
                                .filter(|(_, p)| leaders.get(p).is_some_and(|s| s.leader == id))
                                .map(|(g, _)| g.clone())
                                .collect();
                            (id, mine)
                        })
                        .collect();
                    let still = cluster.topic_from(ids[0], "__consumer_offsets")?;
                    let same_leaders = leaders.iter().all(|(p, s)| still[p].leader == s.leader);
                    (same_leaders && listed == expected).then_some(listed)
                },
            )
            .unwrap_or_else(|e| panic!("{e:#}"))
        });
        let union: BTreeSet<String> = per_broker.values().flatten().cloned().collect();
        assert_eq!(union, all, "union of ListGroups over the brokers");
        assert!(
            per_broker.values().filter(|l| !l.is_empty()).count() >= 2,
            "groups spread over several coordinators: {per_broker:?}"
        );

        // Phase 3: the v4 states filter, case-insensitive as Kafka parses it.
        block_in_place(|| {
            let mut empty = BTreeSet::new();
            for &id in &ids {
                empty.extend(list_at(&cluster, id, &["empty"]).expect("ListGroups Empty"));
                let stable = list_at(&cluster, id, &["Stable"]).expect("ListGroups Stable");
                assert!(stable.is_empty(), "node {id} Stable groups: {stable:?}");
            }
            assert_eq!(empty, all, "groups with only offsets are Empty");
        });

        // Phase 4: `fjord group list` against one node shows every group.
        let out = block_in_place(|| {
            let args = ["group", "list"];
            let bootstrap = cluster.node(ids[1]).bootstrap();
            cli_ok(
                &args,
                &run_cli(&bootstrap, &args, None, Duration::from_secs(30)),
            )
        });
        let listed: BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|g| all.contains(*g))
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, all, "fjord group list:\n{out}");
    })
    .await;
}
