//! The group coordinator has one shard and lock per led `__consumer_offsets` partition: a
//! stalled append on one partition must not hold up groups on another (issue 13).
//!
//! Layout: 3 nodes, `__consumer_offsets` with 4 partitions, RF 2 and min.insync.replicas 2
//! (every topic's default here). Placement is read from Metadata, not assumed: node L leads
//! partition A (replicas {L, F}) and partition B (replicas {L, M}). Group G1 hashes to A, the
//! "unrelated" groups to B, so all of them have L as coordinator. SIGSTOP of F stalls every
//! append to A (acks=all cannot reach 2 in-sync replicas: first the append waits for F, then
//! F leaves the ISR and appends are refused) while B keeps both of its replicas.
//!
//! Why this fails on a broker with one coordinator lock (as before commit 7639257): G1's
//! OffsetCommit held that lock across its acks=all append (up to 30 s), so the Heartbeats and
//! commits of the groups on B waited behind it: latencies of seconds, expired 6 s sessions,
//! rebalances. `bench_coordinator_heartbeats` (in `bench_cluster`) measures exactly this.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fjord_e2e::{ClusterOptions, FjordCluster, KafkaConn, bounded, topic_name, wait_for};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::block_in_place;

pub(crate) const OFFSETS: &str = "__consumer_offsets";
/// `offsets_topic_num_partitions` in the harness's node config.
pub(crate) const OFFSETS_PARTITIONS: i32 = 4;
const MEMBER_ID_REQUIRED: i16 = 79;
/// Errors a commit whose append failed may get: REQUEST_TIMED_OUT, COORDINATOR_NOT_AVAILABLE,
/// NOT_COORDINATOR, NOT_ENOUGH_REPLICAS(_AFTER_APPEND).
const COMMIT_FAILED: [i16; 5] = [7, 15, 16, 19, 20];
const SESSION_MS: i32 = 6000;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Java's `String.hashCode` (UTF-16 code units, wrapping), as the broker's `partition_for`.
fn java_string_hash(v: &str) -> i32 {
    v.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group (Kafka: `Utils.abs(hashCode) % n`).
pub(crate) fn offsets_partition(group: &str) -> i32 {
    let h = java_string_hash(group);
    (if h == i32::MIN { 0 } else { h.abs() }) % OFFSETS_PARTITIONS
}

/// `count` group ids with `prefix` that hash to `partition`.
pub(crate) fn groups_on(prefix: &str, partition: i32, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|g| offsets_partition(g) == partition)
        .take(count)
        .collect()
}

/// Where the test runs: L leads A (replicas {L, F}) and B (replicas {L, M}).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub leader: i32,
    pub stalled_follower: i32,
    pub stalled_partition: i32,
    pub healthy_partition: i32,
}

/// A 3-node cluster (RF 2, min ISR 2) whose `__consumer_offsets` exists and is healthy, and
/// a [`Layout`] read from its Metadata.
pub(crate) fn offsets_cluster(options: ClusterOptions) -> (FjordCluster, Layout) {
    let mut cluster = FjordCluster::start_with(options);
    // The first FindCoordinator creates `__consumer_offsets`.
    wait_for(
        Duration::from_secs(20),
        "FindCoordinator to succeed",
        || {
            let mut conn =
                KafkaConn::connect(&cluster.node(1).bootstrap(), Duration::from_secs(5)).ok()?;
            let req = FindCoordinatorRequest::default().with_key(s("cs-probe"));
            let resp = conn.request(2, &req).ok()?;
            (resp.error_code == 0).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    cluster.wait_for_healthy_topic(OFFSETS, OFFSETS_PARTITIONS, Duration::from_secs(30));
    let parts = cluster
        .topic_from(1, OFFSETS)
        .expect("offsets topic layout");
    let mut layout = None;
    for (&a, pa) in &parts {
        for (&b, pb) in &parts {
            let follower =
                |p: &fjord_e2e::PartitionState| p.replicas.iter().copied().find(|&r| r != p.leader);
            if pa.leader == pb.leader
                && pa.replicas.len() == 2
                && pb.replicas.len() == 2
                && follower(pa) != follower(pb)
            {
                layout.get_or_insert(Layout {
                    leader: pa.leader,
                    stalled_follower: follower(pa).expect("RF 2"),
                    stalled_partition: a,
                    healthy_partition: b,
                });
            }
        }
    }
    let layout = layout.unwrap_or_else(|| {
        panic!("no node leads two {OFFSETS} partitions with different followers: {parts:?}")
    });
    (cluster, layout)
}

/// RF 2 and min.insync.replicas 2 for every topic, `__consumer_offsets` included.
pub(crate) fn rf2_min_isr2(mut options: ClusterOptions) -> ClusterOptions {
    options.replication_factor = 2;
    options.min_insync_replicas = 2;
    options
}

/// A member of a classic group with one member, on its own connection to the coordinator.
pub(crate) struct Member {
    conn: KafkaConn,
    pub group: String,
    member_id: String,
    pub generation: i32,
}

impl Member {
    /// Joins `group` at `addr` (JoinGroup, MEMBER_ID_REQUIRED, JoinGroup, SyncGroup).
    pub(crate) fn join(addr: &str, group: &str) -> anyhow::Result<Member> {
        let mut conn = KafkaConn::connect(addr, Duration::from_secs(15))?;
        let mut member_id = String::new();
        for _ in 0..2 {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_session_timeout_ms(SESSION_MS)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(s(&member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::new()),
                ]);
            let resp = conn.request(5, &req)?;
            member_id = resp.member_id.to_string();
            match resp.error_code {
                MEMBER_ID_REQUIRED => continue,
                0 => {
                    let sync = SyncGroupRequest::default()
                        .with_group_id(GroupId(s(group)))
                        .with_generation_id(resp.generation_id)
                        .with_member_id(s(&member_id))
                        .with_assignments(vec![
                            SyncGroupRequestAssignment::default()
                                .with_member_id(s(&member_id))
                                .with_assignment(Bytes::new()),
                        ]);
                    let sresp = conn.request(3, &sync)?;
                    anyhow::ensure!(
                        sresp.error_code == 0,
                        "SyncGroup {group}: {}",
                        sresp.error_code
                    );
                    return Ok(Member {
                        conn,
                        group: group.to_string(),
                        member_id,
                        generation: resp.generation_id,
                    });
                }
                code => anyhow::bail!("JoinGroup {group}: error {code}"),
            }
        }
        anyhow::bail!("JoinGroup {group}: MEMBER_ID_REQUIRED twice")
    }

    /// How long a request on the member's connection may wait for its answer.
    pub(crate) fn set_read_timeout(&self, timeout: Duration) {
        self.conn
            .set_read_timeout(timeout)
            .expect("set_read_timeout");
    }

    /// Heartbeat in the member's generation: its error code and latency.
    pub(crate) fn heartbeat(&mut self) -> anyhow::Result<(i16, Duration)> {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id));
        let start = Instant::now();
        let resp = self.conn.request(3, &req)?;
        Ok((resp.error_code, start.elapsed()))
    }

    /// OffsetCommit of `offset` for `topic`-0 in the member's generation.
    fn commit(&mut self, topic: &str, offset: i64) -> anyhow::Result<i16> {
        commit_on(
            &mut self.conn,
            &self.group,
            self.generation,
            &self.member_id,
            topic,
            offset,
        )
    }
}

fn commit_on(
    conn: &mut KafkaConn,
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    offset: i64,
) -> anyhow::Result<i16> {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(s(""))),
                ]),
        ]);
    let resp = conn.request(5, &req)?;
    let code = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .ok_or_else(|| anyhow::anyhow!("OffsetCommit response without the partition"))?;
    Ok(code)
}

/// A commit outside any generation (a simple consumer's commit) of `topic`-0 at `addr`.
pub(crate) fn simple_commit(
    addr: &str,
    group: &str,
    topic: &str,
    offset: i64,
) -> anyhow::Result<i16> {
    let mut conn = KafkaConn::connect(addr, Duration::from_secs(60))?;
    commit_on(&mut conn, group, -1, "", topic, offset)
}

/// OffsetFetch of `topic`-0 for `group` at `addr`: the top-level error code and the
/// committed offset (-1: none).
pub(crate) fn fetch_answer(addr: &str, group: &str, topic: &str) -> anyhow::Result<(i16, i64)> {
    let mut conn = KafkaConn::connect(addr, Duration::from_secs(10))?;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0]),
        ]));
    let resp = conn.request(5, &req)?;
    if resp.error_code != 0 {
        return Ok((resp.error_code, -1));
    }
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow::anyhow!("OffsetFetch response without the partition"))?;
    Ok((p.error_code, p.committed_offset))
}

/// The committed offset of `topic`-0 for `group` (-1: none).
fn fetch_committed(addr: &str, group: &str, topic: &str) -> anyhow::Result<i64> {
    let (code, offset) = fetch_answer(addr, group, topic)?;
    anyhow::ensure!(code == 0, "OffsetFetch {group}: {code}");
    Ok(offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_shards_stalled_partition_leaves_other_groups_alone() {
    bounded(Duration::from_secs(90), async {
        let (mut cluster, layout) =
            block_in_place(|| offsets_cluster(rf2_min_isr2(ClusterOptions::fast(3))));
        let topic = topic_name("cs-data");
        cluster.create_topic(&topic, 1, 2, &[]).await;
        block_in_place(|| run(&mut cluster, layout, &topic));
    })
    .await;
}

fn run(cluster: &mut FjordCluster, layout: Layout, topic: &str) {
    let Layout {
        leader,
        stalled_follower,
        stalled_partition,
        healthy_partition,
    } = layout;
    let addr = cluster.node(leader).bootstrap();
    let stalled_group = groups_on("cs-stalled", stalled_partition, 1).remove(0);
    let others = groups_on("cs-other", healthy_partition, 20);

    // Healthy: G1 commits 5; every other group joins and commits 1.
    let code = simple_commit(&addr, &stalled_group, topic, 5).expect("commit G1");
    assert_eq!(code, 0, "healthy commit of {stalled_group}");
    let mut members: Vec<Member> = others
        .iter()
        .map(|g| Member::join(&addr, g).unwrap_or_else(|e| panic!("{e:#}")))
        .collect();
    for m in &mut members {
        assert_eq!(
            m.commit(topic, 1).expect("commit"),
            0,
            "healthy commit of {}",
            m.group
        );
    }

    // F stops. G1's commit (from its own thread) stalls on the acks=all append to A.
    cluster.sigstop(stalled_follower);
    let stopped_at = Instant::now();
    let g1_addr = addr.clone();
    let g1 = stalled_group.clone();
    let g1_topic = topic.to_string();
    let stalled_commit = std::thread::spawn(move || {
        let start = Instant::now();
        let code = simple_commit(&g1_addr, &g1, &g1_topic, 10);
        (code, start.elapsed())
    });

    // Meanwhile every other group heartbeats once a second and commits; for 12 s, twice the
    // session timeout.
    let mut worst = Duration::ZERO;
    let mut round = 0i64;
    while stopped_at.elapsed() < Duration::from_secs(12) {
        let tick = Instant::now();
        round += 1;
        for m in &mut members {
            let (code, took) = m
                .heartbeat()
                .unwrap_or_else(|e| panic!("heartbeat {} with F stopped: {e:#}", m.group));
            assert_eq!(
                code, 0,
                "heartbeat of {} (generation {}) with F stopped",
                m.group, m.generation
            );
            worst = worst.max(took);
        }
        if round % 3 == 0 {
            for m in &mut members {
                let code = m.commit(topic, 1 + round).expect("commit");
                assert_eq!(code, 0, "commit of {} with F stopped", m.group);
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    assert!(
        worst < Duration::from_secs(2),
        "slowest heartbeat of a group on partition {healthy_partition}: {worst:?}"
    );
    let (code, took) = stalled_commit.join().expect("G1 commit thread");
    let code = code.unwrap_or_else(|e| panic!("G1 commit with F stopped: {e:#}"));
    eprintln!(
        "{layout:?}: G1's stalled commit answered {code} after {took:?}; \
         slowest of {} heartbeat rounds x {} groups: {worst:?}",
        round,
        members.len()
    );
    assert!(
        COMMIT_FAILED.contains(&code),
        "G1's commit with F stopped answered {code} after {took:?}"
    );
    assert!(took < Duration::from_secs(10), "G1's commit took {took:?}");
    // Once F has left A's ISR, a commit is refused without waiting.
    wait_for(Duration::from_secs(20), "F to leave A's ISR", || {
        let p = cluster.partition_from(leader, OFFSETS, stalled_partition)?;
        (p.isr == [leader]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let start = Instant::now();
    let code = simple_commit(&addr, &stalled_group, topic, 20).expect("second G1 commit");
    let took = start.elapsed();
    eprintln!("G1's commit with A's ISR {{L}} answered {code} after {took:?}");
    assert!(
        COMMIT_FAILED.contains(&code),
        "second G1 commit answered {code}"
    );
    assert!(
        took < Duration::from_secs(2),
        "second G1 commit took {took:?}"
    );

    // F resumes; once A is in sync again nobody rebalanced, and G1's committed offset is what
    // L's log holds: the first commit (10) reached L's log before its replication timed out,
    // so it was kept (as Kafka's runtime keeps an uncommitted write whose answer timed out)
    // and is committed now; the second (20) was refused before anything was written and
    // reverted. Memory and log agree, so a shard loaded elsewhere would read 10 too.
    cluster.sigcont(stalled_follower);
    cluster.wait_for_healthy_topic(OFFSETS, OFFSETS_PARTITIONS, Duration::from_secs(30));
    let committed = fetch_committed(&addr, &stalled_group, topic).expect("OffsetFetch G1");
    assert_eq!(
        committed, 10,
        "{stalled_group}'s committed offset after a timed-out and a refused commit"
    );
    for m in &mut members {
        let (code, _) = m.heartbeat().expect("heartbeat");
        assert_eq!(code, 0, "heartbeat of {} after F resumed", m.group);
    }
}
