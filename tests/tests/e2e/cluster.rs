//! A 3-node cluster of real processes: replication, leader failover (SIGKILL and SIGSTOP),
//! controller failover, and a follower leaving and rejoining the ISR.
//!
//! Every test uses `ClusterOptions::fast` timings (broker session 2.5 s, heartbeat 0.5 s,
//! replica lag 3 s, Raft election 0.5–1 s) and an acks=all producer with idempotence off and
//! retries on; afterwards every acknowledged record must be at its acknowledged offset, the log
//! dense, and records stored twice only if they were in flight during a fault.

use std::path::Path;
use std::time::{Duration, Instant};

use fjord_e2e::produce_loop::{
    FaultWindow, ProduceLoop, ProduceSummary, check_partition, fault_test_producer,
    read_partition_seqs,
};
use fjord_e2e::{
    ClusterOptions, FjordCluster, assign_from, bounded, consume_n, consumer, producer, topic_name,
    wait_for,
};
use rdkafka::Offset;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio::task::block_in_place;

const LIMIT: Duration = Duration::from_secs(90);
/// How long a failover may take in these tests (fencing after 2.5 s, then an election).
const FAILOVER: Duration = Duration::from_secs(20);
/// How long the producer may take to get an acks=all record through after a fault. Printed,
/// not asserted tight: a paused leader still accepts TCP connections, so the client needs its
/// request and connection-setup timeouts (5 s, 3 s) plus a metadata refresh to move on, and
/// tests run in parallel on a loaded host.
const CLIENT_RECOVERY: Duration = Duration::from_secs(45);
/// How long a restarted or resumed replica may take to rejoin the ISR.
const REJOIN: Duration = Duration::from_secs(30);

fn start_cluster() -> FjordCluster {
    block_in_place(|| FjordCluster::start(3))
}

/// Size of the partition's `.log` segments on one node (0 if it has none).
fn log_bytes(data_dir: &Path, topic: &str, partition: i32) -> u64 {
    let dir = data_dir.join("logs").join(format!("{topic}-{partition}"));
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What a failed wait for the producer shows: the partition on every live node and the
/// producer's counts.
fn stuck_report(cluster: &mut FjordCluster, topic: &str, plo: &ProduceLoop) -> String {
    let live = cluster.live_ids();
    let views: Vec<String> = live
        .iter()
        .map(|&id| format!("node {id}: {:?}", cluster.partition_from(id, topic, 0)))
        .collect();
    format!(
        "partition views: {}; producer: {} acknowledged, {} failed so far",
        views.join("; "),
        plo.acked_count(),
        plo.failed_count()
    )
}

/// Reads the partition back and checks it against the acknowledgements; prints the counts.
fn verify(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    summary: &ProduceSummary,
    faults: &[FaultWindow],
) {
    let log = read_partition_seqs(bootstrap, topic, partition, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let check =
        check_partition(&log, partition, summary, faults).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "{topic}-{partition}: sent {}, acknowledged {}, failed {}; log has {} records, {} duplicates (retries during faults)",
        summary.sent, check.acked, summary.failed, check.records, check.duplicates
    );
    assert!(check.acked > 0, "nothing was acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_acks_all_across_nodes() {
    bounded(LIMIT, async {
        // Phase 1: three nodes see each other and agree on one controller.
        let mut cluster = start_cluster();
        let controller = block_in_place(|| cluster.wait_for_controller(FAILOVER));
        for id in cluster.ids() {
            let md = cluster.metadata_from(id).expect("metadata");
            assert_eq!(md.brokers.len(), 3, "node {id} lists every broker");
        }
        eprintln!("controller leader: node {controller}");

        // Phase 2: a topic RF=3 min.insync.replicas=2; every partition fully replicated and
        // every node agreeing on its leader (wait_for_healthy_topic compares all views).
        let topic = topic_name("cluster-basic");
        cluster
            .create_topic(&topic, 3, 3, &[("min.insync.replicas", "2")])
            .await;
        let layout = cluster.topic_from(1, &topic).expect("topic on node 1");
        let mut leaders: Vec<i32> = layout.values().map(|p| p.leader).collect();
        leaders.sort_unstable();
        leaders.dedup();
        assert_eq!(
            leaders.len(),
            3,
            "leaders spread over the nodes: {layout:?}"
        );
        for p in layout.values() {
            let mut replicas = p.replicas.clone();
            replicas.sort_unstable();
            assert_eq!(replicas, vec![1, 2, 3]);
        }

        // Phase 3: produce with acks=all through node 1 only; clients are sent to each
        // partition's leader by the metadata.
        let p = producer(&cluster.node(1).bootstrap(), "all", "none");
        let mut expected: Vec<Vec<String>> = vec![Vec::new(); 3];
        let mut futures = Vec::new();
        for i in 0..300 {
            let part = i % 3;
            let value = format!("v-{i}");
            expected[part as usize].push(value.clone());
            let rec: FutureRecord<'_, (), String> =
                FutureRecord::to(&topic).payload(&value).partition(part);
            futures.push((
                part,
                p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"),
            ));
        }
        for (part, f) in futures {
            let d = f
                .await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("acks=all produce to partition {part}: {e}"));
            assert_eq!(d.partition, part);
        }

        // Phase 4: consume through node 3 only: every partition reads back in order.
        let c = consumer(&cluster.node(3).bootstrap());
        assign_from(&c, &topic, &[0, 1, 2], Offset::Beginning);
        let msgs = block_in_place(|| consume_n(&c, 300, Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let mut got: Vec<Vec<String>> = vec![Vec::new(); 3];
        for m in &msgs {
            got[m.partition() as usize]
                .push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
        assert_eq!(got, expected);

        // Phase 5: the followers hold the data too (their segment files grew), and the
        // nodes still agree on leaders and full ISRs.
        block_in_place(|| {
            wait_for(
                Duration::from_secs(20),
                "every replica's log to hold the records",
                || {
                    cluster
                        .ids()
                        .iter()
                        .all(|&id| {
                            (0..3).all(|part| {
                                log_bytes(&cluster.node(id).data_dir(), &topic, part) > 0
                            })
                        })
                        .then_some(())
                },
            )
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        block_in_place(|| cluster.wait_for_healthy_topic(&topic, 3, Duration::from_secs(10)));
    })
    .await;
}

/// A 3-node cluster, a one-partition topic with RF=3 and min.insync.replicas=2, and
/// an acks=all producer loop writing to it.
async fn cluster_with_producer(prefix: &str) -> (FjordCluster, String, ProduceLoop) {
    let mut cluster = start_cluster();
    let topic = topic_name(prefix);
    cluster
        .create_topic(&topic, 1, 3, &[("min.insync.replicas", "2")])
        .await;
    let plo = ProduceLoop::start(
        fault_test_producer(&cluster.bootstrap()),
        &topic,
        vec![0],
        32,
        Duration::from_millis(2),
    );
    (cluster, topic, plo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_in_a_loop_loses_no_acknowledged_record() {
    bounded(LIMIT, async {
        // Phase 1: cluster, topic RF=3 min.insync.replicas=2 (one partition), producer running.
        let (mut cluster, topic, plo) = cluster_with_producer("leader-kill").await;
        plo.wait_for_more_acks(200, Duration::from_secs(20), "200 records before the first kill");

        // Phase 2: three rounds of SIGKILL the leader, wait for the clients to get through
        // to a new one, restart the old one and wait until it is back in the ISR.
        let mut faults = Vec::new();
        for round in 1..=3 {
            let any_live = cluster.live_ids()[0];
            let before = cluster
                .partition_from(any_live, &topic, 0)
                .expect("partition state");
            let old = before.leader;
            let killed_at = Instant::now();
            cluster.kill9(old);
            let after = block_in_place(|| {
                cluster.wait_for_partition(&topic, 0, FAILOVER, "a new leader", |s| {
                    s.leader >= 0 && s.leader != old && s.leader_epoch > before.leader_epoch
                })
            });
            let first_ack = block_in_place(|| {
                wait_for(CLIENT_RECOVERY, "an acks=all produce after the kill", || {
                    plo.first_ack_sent_after(0, killed_at)
                })
            })
            .unwrap_or_else(|e| panic!("{e:#}; {}", stuck_report(&mut cluster, &topic, &plo)));
            eprintln!(
                "round {round}: killed leader {old}; node {} leads at epoch {}; first acks=all produce {:?} after SIGKILL",
                after.leader,
                after.leader_epoch,
                first_ack - killed_at
            );
            block_in_place(|| cluster.restart(old));
            block_in_place(|| {
                cluster.wait_for_partition(&topic, 0, REJOIN, "the full ISR back", |s| {
                    s.isr.len() == 3
                })
            });
            faults.push(FaultWindow {
                start: killed_at,
                end: Instant::now(),
            });
            plo.wait_for_more_acks(100, Duration::from_secs(20), "progress after the rejoin");
        }

        // Phase 3: every acknowledged record is in the log where it was acknowledged.
        let summary = plo.finish().await;
        block_in_place(|| verify(&cluster.bootstrap(), &topic, 0, &summary, &faults));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_leader_loses_no_acknowledged_record() {
    bounded(LIMIT, async {
        // Phase 1: cluster, topic RF=3 min.insync.replicas=2, producer running.
        let (mut cluster, topic, plo) = cluster_with_producer("leader-pause").await;
        plo.wait_for_more_acks(200, Duration::from_secs(20), "200 records before the pause");

        // Phase 2: SIGSTOP the leader past its session timeout: it is fenced and another
        // replica leads; the producer gets through to it.
        let before = cluster.partition_from(1, &topic, 0).expect("partition state");
        let old = before.leader;
        let paused_at = Instant::now();
        cluster.sigstop(old);
        let after = block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, FAILOVER, "a new leader", |s| {
                s.leader >= 0 && s.leader != old
            })
        });
        let first_ack = block_in_place(|| {
            wait_for(CLIENT_RECOVERY, "an acks=all produce after the pause", || {
                plo.first_ack_sent_after(0, paused_at)
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}; {}", stuck_report(&mut cluster, &topic, &plo)));
        eprintln!(
            "paused leader {old}; node {} leads at epoch {}; first acks=all produce {:?} after SIGSTOP",
            after.leader,
            after.leader_epoch,
            first_ack - paused_at
        );
        plo.wait_for_more_acks(100, Duration::from_secs(20), "progress with the leader paused");

        // Phase 3: SIGCONT: the old leader finds it was replaced, follows, and rejoins the ISR.
        cluster.sigcont(old);
        block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, REJOIN, "the old leader back in the ISR", |s| {
                s.isr.len() == 3
            })
        });
        let faults = [FaultWindow {
            start: paused_at,
            end: Instant::now(),
        }];
        plo.wait_for_more_acks(100, Duration::from_secs(20), "progress after the resume");

        // Phase 4: every acknowledged record is in the log where it was acknowledged.
        let summary = plo.finish().await;
        block_in_place(|| verify(&cluster.bootstrap(), &topic, 0, &summary, &faults));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_leader_elects_another() {
    bounded(LIMIT, async {
        // Phase 1: find the active controller.
        let mut cluster = start_cluster();
        let old = block_in_place(|| cluster.wait_for_controller(FAILOVER));

        // Phase 2: SIGKILL it: the other voters elect a new one, and its broker is fenced.
        let killed_at = Instant::now();
        cluster.kill9(old);
        let new = block_in_place(|| cluster.wait_for_controller(FAILOVER));
        assert_ne!(new, old);
        let elected_after = killed_at.elapsed();
        block_in_place(|| {
            wait_for(
                FAILOVER,
                "the dead node fenced (gone from Metadata)",
                || {
                    let live = [new].into_iter().chain(
                        cluster
                            .ids()
                            .into_iter()
                            .filter(|&id| id != old && id != new),
                    );
                    live.map(|id| cluster.metadata_from(id).ok())
                        .all(|md| md.is_some_and(|md| md.brokers.len() == 2))
                        .then_some(())
                },
            )
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!("controller {old} killed; node {new} took over within {elected_after:?}");

        // Phase 3: topics can still be created (on the two live brokers) and written.
        let topic = topic_name("after-controller-kill");
        cluster.create_topic(&topic, 2, 2, &[]).await;
        let p = producer(&cluster.bootstrap(), "all", "none");
        for part in 0..2 {
            let rec: FutureRecord<'_, (), str> =
                FutureRecord::to(&topic).payload("x").partition(part);
            p.send(rec, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("produce to the new topic: {e}"));
        }

        // Phase 4: the old controller comes back as a follower and learns about the topic.
        block_in_place(|| cluster.restart(old));
        block_in_place(|| {
            wait_for(FAILOVER, "the restarted node to know the new topic", || {
                cluster.topic_from(old, &topic).filter(|t| t.len() == 2)
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        let now = block_in_place(|| cluster.wait_for_controller(FAILOVER));
        eprintln!("after the restart the controller is node {now}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_controller_leader_fences_only_that_node() {
    bounded(LIMIT, async {
        // Phase 1: find the active controller and SIGSTOP it.
        let mut cluster = start_cluster();
        let old = block_in_place(|| cluster.wait_for_controller(FAILOVER));
        cluster.sigstop(old);
        let others: Vec<i32> = cluster.ids().into_iter().filter(|&id| id != old).collect();

        // Phase 2: the others elect a new controller; heartbeats that were on their
        // way to the paused one are re-routed in time, so only the paused node is
        // fenced (a forward stuck on the paused leader used to outlive the session
        // and fence every broker for a while). Watched throughout, for four sessions.
        let session = Duration::from_millis(cluster.options().broker_session_timeout_ms);
        let watch_until = Instant::now() + session * 4;
        let mut fenced_old = false;
        while Instant::now() < watch_until {
            for &id in &others {
                let Ok(md) = block_in_place(|| cluster.metadata_from(id)) else {
                    continue;
                };
                let ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
                for live in &others {
                    assert!(
                        ids.contains(live),
                        "node {id} lists brokers {ids:?}: live broker {live} was fenced \
                         while controller {old} was paused"
                    );
                }
                fenced_old |= !ids.contains(&old);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(fenced_old, "the paused node {old} was never fenced");

        // Phase 3: resumed, the old controller's broker comes back unfenced.
        cluster.sigcont(old);
        block_in_place(|| {
            wait_for(FAILOVER, "all three brokers unfenced again", || {
                cluster
                    .metadata_from(others[0])
                    .ok()
                    .filter(|md| md.brokers.len() == 3)
                    .map(|_| ())
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_leaves_the_isr_and_rejoins_after_catching_up() {
    bounded(LIMIT, async {
        // Phase 1: cluster, topic RF=3 min.insync.replicas=2, producer running.
        let (mut cluster, topic, plo) = cluster_with_producer("follower-lag").await;
        plo.wait_for_more_acks(100, Duration::from_secs(20), "100 records");
        let state = cluster
            .partition_from(1, &topic, 0)
            .expect("partition state");
        let follower = *state
            .replicas
            .iter()
            .find(|&&r| r != state.leader)
            .expect("a follower");

        // Phase 2: SIGSTOP the follower longer than replica.lag.time.max.ms (3 s): it leaves
        // the ISR, and acks=all keeps working with the other two.
        let paused_at = Instant::now();
        cluster.sigstop(follower);
        let shrunk = block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, FAILOVER, "the follower out of the ISR", |s| {
                !s.isr.contains(&follower) && s.leader >= 0
            })
        });
        eprintln!(
            "follower {follower} paused; ISR {:?} after {:?}",
            shrunk.isr,
            paused_at.elapsed()
        );
        plo.wait_for_more_acks(300, Duration::from_secs(20), "records the follower misses");

        // Phase 3: SIGCONT: it fetches what it missed and rejoins the ISR.
        let resumed_at = Instant::now();
        cluster.sigcont(follower);
        let grown = block_in_place(|| {
            cluster.wait_for_partition(&topic, 0, REJOIN, "the follower back in the ISR", |s| {
                s.isr.contains(&follower)
            })
        });
        eprintln!(
            "follower {follower} resumed; ISR {:?} after {:?}",
            grown.isr,
            resumed_at.elapsed()
        );
        let faults = [FaultWindow {
            start: paused_at,
            end: Instant::now(),
        }];

        // Phase 4: the log is intact, and the follower's copy is as long as the leader's.
        let summary = plo.finish().await;
        block_in_place(|| verify(&cluster.bootstrap(), &topic, 0, &summary, &faults));
        let leader = grown.leader;
        block_in_place(|| {
            wait_for(
                Duration::from_secs(10),
                "the follower's log as long as the leader's",
                || {
                    let (l, f) = (
                        log_bytes(&cluster.node(leader).data_dir(), &topic, 0),
                        log_bytes(&cluster.node(follower).data_dir(), &topic, 0),
                    );
                    (l > 0 && l == f).then_some(())
                },
            )
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_follows_the_quorum_and_hosts_replicas() {
    bounded(LIMIT, async {
        // Phase 1: three voters and a broker-only node (a Raft learner) form one cluster.
        let options = ClusterOptions {
            broker_only: 1,
            ..ClusterOptions::fast(3)
        };
        let mut cluster = block_in_place(|| FjordCluster::start_with(options));
        let controller = block_in_place(|| cluster.wait_for_controller(FAILOVER));
        assert!(
            controller <= 3,
            "the learner (node 4) never leads the quorum"
        );
        assert_eq!(
            cluster.controller_id_from(4).expect("DescribeCluster"),
            controller
        );

        // Phase 2: a topic with a replica on every node, written through the learner only.
        let topic = topic_name("learner");
        cluster
            .create_topic(&topic, 2, 4, &[("min.insync.replicas", "3")])
            .await;
        let p = producer(&cluster.node(4).bootstrap(), "all", "none");
        for i in 0..50 {
            let value = format!("v-{i}");
            let rec: FutureRecord<'_, (), String> =
                FutureRecord::to(&topic).payload(&value).partition(i % 2);
            p.send(rec, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("acks=all produce through the learner: {e}"));
        }

        // Phase 3: the learner's copy of each partition holds the records.
        block_in_place(|| {
            wait_for(
                Duration::from_secs(20),
                "node 4's replicas to hold the records",
                || {
                    (0..2)
                        .all(|part| log_bytes(&cluster.node(4).data_dir(), &topic, part) > 0)
                        .then_some(())
                },
            )
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        block_in_place(|| cluster.wait_for_healthy_topic(&topic, 2, Duration::from_secs(10)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_quorum_waits_for_it_and_still_stops_on_sigterm() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::fast(3)));
        block_in_place(|| {
            for id in [1, 2, 3] {
                assert!(cluster.stop(id).success(), "node {id} stops cleanly");
            }

            // Phase 1: node 1 alone cannot reach a quorum: it keeps waiting (it does not
            // exit), and SIGTERM ends the wait at once with a clean exit.
            cluster
                .node_mut(1)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn node 1: {e:#}"));
            std::thread::sleep(Duration::from_secs(3));
            assert!(
                cluster.node_mut(1).is_running(),
                "node 1 waits for the quorum"
            );
            let asked = Instant::now();
            let status = cluster.stop(1);
            assert!(status.success(), "node 1 exits cleanly: {status:?}");
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "SIGTERM during the wait took {:?}",
                asked.elapsed()
            );

            // Phase 2: started first and alone again, node 1 comes up once the others return.
            cluster
                .node_mut(1)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn node 1: {e:#}"));
            std::thread::sleep(Duration::from_secs(3));
            cluster.restart(2);
            cluster.restart(3);
            cluster
                .node_mut(1)
                .wait_ready()
                .unwrap_or_else(|e| panic!("node 1 joins the returned quorum: {e:#}"));
            cluster.wait_for_controller(FAILOVER);
        });
    })
    .await;
}
