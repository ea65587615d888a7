//! A graceful stop in Kafka's order: the node moves its leaderships away
//! (controlled shutdown) while its clients are still served, and only then
//! closes their connections. An acks=all produce waiting on the stopping
//! leader is therefore answered NOT_LEADER_OR_FOLLOWER, which tells the client
//! to look for the new leader; in the reverse order (connections first) the
//! same request is cut off unanswered and the client learns nothing.

use std::process::Command;
use std::time::Duration;

use fjord_e2e::{ClusterOptions, FjordCluster, KafkaConn, bounded, topic_name};
use tokio::task::block_in_place;

use crate::idempotence::{batch, produce_at};

const LIMIT: Duration = Duration::from_secs(90);
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_answers_its_waiting_producer_before_closing_the_connection() {
    bounded(LIMIT, async {
        let mut cluster = block_in_place(|| FjordCluster::start_with(ClusterOptions::fast(3)));
        let topic = topic_name("shutdown-order");
        cluster.create_topic(&topic, 1, 3, &[]).await;
        block_in_place(|| {
            let leader = cluster
                .partition_from(cluster.ids()[0], &topic, 0)
                .expect("partition 0 in metadata")
                .leader;
            let follower = *cluster
                .ids()
                .iter()
                .find(|&&id| id != leader)
                .expect("a follower");
            let mut conn = KafkaConn::connect(&cluster.node(leader).bootstrap(), LIMIT)
                .expect("connect to the leader");
            let first = produce_at(&mut conn, &topic, batch(-1, -1, -1, 1), 10);
            assert_eq!(first.responses[0].partition_responses[0].error_code, 0);

            // A paused follower holds the high watermark: the next acks=all
            // produce waits (the ISR drops the follower only after 3 s).
            cluster.sigstop(follower);
            let waiting = std::thread::spawn({
                let topic = topic.clone();
                move || {
                    let response = produce_at(&mut conn, &topic, batch(-1, -1, -1, 1), 10);
                    response.responses[0].partition_responses[0].error_code
                }
            });
            std::thread::sleep(Duration::from_millis(300));
            let pid = cluster.node(leader).pid().expect("leader running");
            let term = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .expect("run kill");
            assert!(term.success(), "kill -TERM {pid}");

            // `produce_at` panics if the connection closes without an answer.
            let answered = waiting.join();
            cluster.sigcont(follower);
            let error_code = answered.expect(
                "the waiting produce was cut off unanswered: connections closed before the leaderships moved",
            );
            assert_eq!(
                error_code, NOT_LEADER_OR_FOLLOWER,
                "the waiting produce learns that the leadership moved"
            );
            assert!(cluster.stop(leader).success(), "the leader exits cleanly");
        });
    })
    .await;
}
