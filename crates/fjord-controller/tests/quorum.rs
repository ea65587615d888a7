//! Multi-node controller quorums over real gRPC (tonic servers on 127.0.0.1): election,
//! write forwarding, leader failover, learners, lagging followers catching up by
//! snapshot, and broker session expiry.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use fjord_controller::Controller;
use fjord_controller::ControllerConfig;
use fjord_controller::Heartbeat;
use fjord_controller::Listener;
use fjord_controller::MetadataCommand;
use fjord_controller::MetadataImage;
use fjord_controller::MetadataResponse;
use fjord_types::BrokerId;
use openraft::async_runtime::WatchReceiver;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;

/// Every test finishes well within this, or fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a condition may take to become true across the cluster.
const CONVERGE: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out")
}

/// Poll `cond` until it holds or `CONVERGE` passes.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(
    node_id: BrokerId,
    dir: &Path,
    voters: &BTreeMap<BrokerId, String>,
    own_addr: &str,
) -> ControllerConfig {
    ControllerConfig {
        voters: voters.clone(),
        rpc_addr: Some(own_addr.to_owned()),
        election_timeout_ms: (300, 600),
        heartbeat_interval_ms: 50,
        startup_timeout_ms: 20_000,
        write_timeout_ms: 10_000,
        ..ControllerConfig::single_voter(node_id, dir.to_owned(), own_addr.to_owned())
    }
}

/// One node: its controller and the tonic server carrying its `ControllerService`.
struct Node {
    id: BrokerId,
    addr: SocketAddr,
    dir: Arc<tempfile::TempDir>,
    controller: Controller,
    server: JoinHandle<()>,
    stop_server: oneshot::Sender<()>,
}

impl Node {
    /// Open the controller and serve it on `listener`; `ready` is left to the caller.
    async fn open(
        id: BrokerId,
        listener: TcpListener,
        dir: Arc<tempfile::TempDir>,
        voters: &BTreeMap<BrokerId, String>,
        tweak: impl FnOnce(&mut ControllerConfig),
    ) -> Node {
        let addr = listener.local_addr().expect("local addr");
        let mut cfg = config(id, dir.path(), voters, &addr.to_string());
        tweak(&mut cfg);
        let controller = Controller::open(cfg).await.expect("open");
        let (stop_server, stopped) = oneshot::channel::<()>();
        let service = controller.rpc_service();
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("server of node {id} failed: {e}");
            }
        });
        Node {
            id,
            addr,
            dir,
            controller,
            server,
            stop_server,
        }
    }

    /// Stop like a dying process: the Raft node and the server (connections closed).
    async fn stop(self) -> (BrokerId, SocketAddr, Arc<tempfile::TempDir>) {
        self.controller.shutdown().await.expect("shutdown");
        let _ = self.stop_server.send(());
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(3), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        (self.id, self.addr, self.dir)
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Start `n` voters (ids 1..=n) on fresh directories and wait until all are ready.
async fn start_voters(n: BrokerId, tweak: impl Fn(&mut ControllerConfig)) -> Vec<Node> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(bind().await);
    }
    let voters: BTreeMap<BrokerId, String> = listeners
        .iter()
        .zip(1..)
        .map(|(l, id)| (id, l.local_addr().expect("addr").to_string()))
        .collect();
    let mut nodes = Vec::new();
    for (listener, id) in listeners.into_iter().zip(1..) {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        nodes.push(Node::open(id, listener, dir, &voters, &tweak).await);
    }
    let readies: Vec<_> = nodes
        .iter()
        .map(|n| {
            let c = n.controller.clone();
            tokio::spawn(async move { c.ready().await })
        })
        .collect();
    for r in readies {
        r.await.expect("join").expect("ready");
    }
    nodes
}

fn voters_of(nodes: &[Node]) -> BTreeMap<BrokerId, String> {
    nodes.iter().map(|n| (n.id, n.addr.to_string())).collect()
}

fn register(broker_id: BrokerId) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        broker_id,
        incarnation_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }],
        rack: None,
    }
}

fn image(c: &Controller) -> Arc<MetadataImage> {
    c.image().borrow().clone()
}

/// The leader every node agrees on, once they do.
async fn agreed_leader(nodes: &[&Node]) -> BrokerId {
    let mut leader = None;
    eventually("all nodes agree on a leader", || {
        let leaders: Vec<_> = nodes.iter().map(|n| n.controller.leader_id()).collect();
        leader = leaders[0];
        leader.is_some() && leaders.iter().all(|l| *l == leader)
    })
    .await;
    leader.expect("leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_forward_writes_and_fail_over() {
    bounded(async {
        let nodes = start_voters(3, |_| {}).await;
        let all: Vec<&Node> = nodes.iter().collect();
        let leader = agreed_leader(&all).await;
        let cluster_id = image(&nodes[0].controller).cluster_id.clone();
        assert_eq!(cluster_id.len(), 22);
        for n in &nodes {
            assert_eq!(image(&n.controller).cluster_id, cluster_id, "node {}", n.id);
        }

        // A write on a follower is forwarded to the leader and visible everywhere.
        let follower = nodes.iter().find(|n| n.id != leader).expect("follower");
        let resp = follower.controller.write(register(7)).await.expect("write");
        assert!(
            matches!(resp, MetadataResponse::BrokerRegistered { broker_id: 7, .. }),
            "{resp:?}"
        );
        eventually("the registration reaches every node", || {
            nodes
                .iter()
                .all(|n| image(&n.controller).brokers.contains_key(&7))
        })
        .await;

        // Kill the leader: the other two elect a new one and take writes.
        let mut nodes = nodes;
        let idx = nodes.iter().position(|n| n.id == leader).expect("leader");
        let old = nodes.remove(idx);
        let killed = Instant::now();
        old.stop().await;
        let rest: Vec<&Node> = nodes.iter().collect();
        let new_leader = {
            let mut l = None;
            eventually("a new leader", || {
                let leaders: Vec<_> = rest.iter().map(|n| n.controller.leader_id()).collect();
                l = leaders[0];
                l.is_some_and(|l| l != leader) && leaders.iter().all(|x| *x == l)
            })
            .await;
            l.expect("new leader")
        };
        let took = killed.elapsed();
        println!("old leader {leader} stopped; node {new_leader} leads after {took:?}");
        assert!(took < Duration::from_secs(5), "failover took {took:?}");

        for n in &nodes {
            let b = 20 + n.id;
            let resp = n.controller.write(register(b)).await.expect("write");
            assert!(
                matches!(resp, MetadataResponse::BrokerRegistered { broker_id, .. } if broker_id == b),
                "{resp:?}"
            );
        }
        eventually("both survivors see all writes", || {
            nodes.iter().all(|n| {
                let img = image(&n.controller);
                nodes.iter().all(|m| img.brokers.contains_key(&(20 + m.id)))
            })
        })
        .await;
        let a = image(&nodes[0].controller);
        let b = image(&nodes[1].controller);
        assert_eq!(a.brokers, b.brokers);
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_follows_the_image_and_forwards_writes() {
    bounded(async {
        let voters = start_voters(3, |_| {}).await;
        let resp = voters[0]
            .controller
            .write(register(1))
            .await
            .expect("write");
        assert!(matches!(resp, MetadataResponse::BrokerRegistered { .. }));

        let voter_addrs = voters_of(&voters);
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let learner = Node::open(4, bind().await, dir, &voter_addrs, |_| {}).await;
        assert!(!learner.controller.is_voter());
        learner.controller.ready().await.expect("learner ready");
        let cluster_id = image(&voters[0].controller).cluster_id.clone();
        assert_eq!(image(&learner.controller).cluster_id, cluster_id);
        eventually("the learner sees broker 1", || {
            image(&learner.controller).brokers.contains_key(&1)
        })
        .await;
        let membership = voters[0]
            .controller
            .raft()
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        assert!(
            membership.membership().learner_ids().any(|id| id == 4),
            "{membership:?}"
        );
        assert!(!membership.membership().voter_ids().any(|id| id == 4));

        // A write on the learner goes to the leader; the delta comes back by replication.
        let resp = learner.controller.write(register(2)).await.expect("write");
        assert!(matches!(
            resp,
            MetadataResponse::BrokerRegistered { broker_id: 2, .. }
        ));
        eventually("the learner sees its own write", || {
            image(&learner.controller).brokers.contains_key(&2)
        })
        .await;
        learner.stop().await;
        for n in voters {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_catches_up_from_a_snapshot() {
    bounded(async {
        let tweak = |c: &mut ControllerConfig| c.snapshot_every_logs = 5;
        let mut nodes = start_voters(3, tweak).await;
        let voters = voters_of(&nodes);
        let all: Vec<&Node> = nodes.iter().collect();
        let leader = agreed_leader(&all).await;

        // Stop a follower, then move the log far past what the leader keeps.
        let idx = nodes.iter().position(|n| n.id != leader).expect("follower");
        let lagging_last_log = nodes[idx]
            .controller
            .raft()
            .metrics()
            .borrow_watched()
            .last_log_index
            .expect("log");
        let (id, addr, dir) = nodes.remove(idx).stop().await;
        let leader_node = nodes.iter().find(|n| n.id == leader).expect("leader");
        for b in 100..140 {
            leader_node
                .controller
                .write(register(b))
                .await
                .expect("write");
        }
        let purged = leader_node
            .controller
            .raft()
            .wait(Some(CONVERGE))
            .metrics(
                |m| {
                    m.purged
                        .as_ref()
                        .is_some_and(|p| p.index() > lagging_last_log + 1)
                },
                "leader purges past the stopped follower",
            )
            .await
            .expect("purge")
            .purged
            .expect("purged");
        println!(
            "follower {id} stopped at log index {lagging_last_log}; leader purged up to {}",
            purged.index()
        );

        // Restart it on the same directory and address: the entries it misses are
        // gone from the leader's log, so only a snapshot can bring it up to date.
        let listener = TcpListener::bind(addr).await.expect("rebind");
        let back = Node::open(id, listener, dir, &voters, tweak).await;
        back.controller.ready().await.expect("ready");
        let leader_image = image(&leader_node.controller);
        eventually("the restarted follower has the leader's brokers", || {
            image(&back.controller).brokers == leader_image.brokers
        })
        .await;
        let m = back.controller.raft().metrics().borrow_watched().clone();
        assert!(
            m.snapshot
                .as_ref()
                .is_some_and(|s| s.index() > lagging_last_log),
            "no snapshot installed: {:?}",
            m.snapshot
        );
        back.stop().await;
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_after_the_session_timeout() {
    bounded(async {
        let tweak = |c: &mut ControllerConfig| c.broker_session_timeout_ms = 1000;
        let nodes = start_voters(3, tweak).await;
        let all: Vec<&Node> = nodes.iter().collect();
        let leader = agreed_leader(&all).await;
        let follower = nodes.iter().find(|n| n.id != leader).expect("follower");
        let c = &follower.controller;

        let resp = c.write(register(5)).await.expect("register");
        let MetadataResponse::BrokerRegistered { broker_epoch, .. } = resp else {
            panic!("{resp:?}");
        };
        let hb = Heartbeat {
            broker_id: 5,
            broker_epoch,
            metadata_offset: u64::try_from(broker_epoch).expect("epoch"),
            want_shut_down: false,
        };
        // Heartbeats (forwarded from a follower) keep the session alive past the timeout.
        let mut last_beat = Instant::now();
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let state = c.heartbeat(hb).await.expect("heartbeat");
            last_beat = Instant::now();
            assert!(!state.stale_broker_epoch);
            assert!(!state.fenced);
        }
        let offset_alive = image(c).metadata_offset;
        assert!(!image(c).brokers[&5].fenced);

        // A stale epoch is reported as such.
        let stale = c
            .heartbeat(Heartbeat {
                broker_epoch: broker_epoch - 1,
                ..hb
            })
            .await
            .expect("heartbeat");
        assert!(stale.stale_broker_epoch);

        // Silence: the leader writes FenceBroker once the session expires, and only once.
        eventually("the broker is fenced", || image(c).brokers[&5].fenced).await;
        let took = last_beat.elapsed();
        println!("broker fenced {took:?} after its last heartbeat (session timeout 1 s)");
        assert!(
            took >= Duration::from_millis(900),
            "fenced too early: {took:?}"
        );
        assert_eq!(
            image(c).metadata_offset,
            offset_alive + 1,
            "exactly one entry (FenceBroker) after the last heartbeat"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            image(c).metadata_offset,
            offset_alive + 1,
            "FenceBroker written more than once"
        );

        // It heartbeats again, caught up: unfenced.
        let state = c.heartbeat(hb).await.expect("heartbeat");
        assert!(!state.fenced, "{state:?}");
        eventually("the broker is unfenced everywhere", || {
            nodes
                .iter()
                .all(|n| !image(&n.controller).brokers[&5].fenced)
        })
        .await;

        // Not caught up to its own registration: stays fenced until it is.
        let resp = c.write(register(6)).await.expect("register");
        let MetadataResponse::BrokerRegistered {
            broker_epoch: epoch6,
            ..
        } = resp
        else {
            panic!("{resp:?}");
        };
        let hb6 = Heartbeat {
            broker_id: 6,
            broker_epoch: epoch6,
            metadata_offset: 0,
            want_shut_down: false,
        };
        c.heartbeat(hb6).await.expect("heartbeat");
        eventually("broker 6 is fenced after its silence", || {
            image(c).brokers.get(&6).is_some_and(|b| b.fenced)
        })
        .await;
        let lagging = c.heartbeat(hb6).await.expect("heartbeat");
        assert!(lagging.fenced, "unfenced before catching up");
        let caught_up = c
            .heartbeat(Heartbeat {
                metadata_offset: u64::try_from(epoch6).expect("epoch"),
                ..hb6
            })
            .await
            .expect("heartbeat");
        assert!(!caught_up.fenced);

        // Controlled shutdown: written once, then shutdown_ready, and it stays fenced.
        let bye = Heartbeat {
            want_shut_down: true,
            ..hb
        };
        let state = c.heartbeat(bye).await.expect("heartbeat");
        assert!(state.shutdown_ready && state.fenced, "{state:?}");
        let state = c.heartbeat(bye).await.expect("heartbeat");
        assert!(state.shutdown_ready && state.fenced, "{state:?}");
        let state = c.heartbeat(hb).await.expect("heartbeat");
        assert!(
            state.fenced,
            "unfenced after controlled shutdown: {state:?}"
        );
        eventually("the shutdown reaches the follower", || {
            image(c).brokers[&5].fenced
        })
        .await;
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_starting_at_different_times_form_one_quorum() {
    bounded(async {
        let listeners = [bind().await, bind().await, bind().await];
        let voters: BTreeMap<BrokerId, String> = listeners
            .iter()
            .zip(1..)
            .map(|(l, id)| (id, l.local_addr().expect("addr").to_string()))
            .collect();
        let [l1, l2, l3] = listeners;
        let dir = || Arc::new(tempfile::tempdir().expect("tempdir"));

        // Alone, a voter waits (and keeps waiting) for a quorum.
        let n1 = Node::open(1, l1, dir(), &voters, |_| {}).await;
        let c1 = n1.controller.clone();
        let ready1 = tokio::spawn(async move { c1.ready().await });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!ready1.is_finished(), "ready without a quorum");
        assert_eq!(n1.controller.leader_id(), None);

        // A second voter makes a quorum: both get ready with the same cluster id.
        let n2 = Node::open(2, l2, dir(), &voters, |_| {}).await;
        n2.controller.ready().await.expect("ready 2");
        ready1.await.expect("join").expect("ready 1");
        let cluster_id = image(&n1.controller).cluster_id.clone();
        assert!(!cluster_id.is_empty());
        assert_eq!(image(&n2.controller).cluster_id, cluster_id);
        n1.controller.write(register(1)).await.expect("write");

        // The third starts on a fresh store after the quorum formed: it initializes
        // the same membership, does not disturb the leader, and catches up.
        let leader = agreed_leader(&[&n1, &n2]).await;
        let n3 = Node::open(3, l3, dir(), &voters, |_| {}).await;
        n3.controller.ready().await.expect("ready 3");
        assert_eq!(image(&n3.controller).cluster_id, cluster_id);
        eventually("node 3 catches up", || {
            image(&n3.controller).brokers.contains_key(&1)
        })
        .await;
        assert_eq!(agreed_leader(&[&n1, &n2, &n3]).await, leader);
        for n in [n1, n2, n3] {
            n.stop().await;
        }
    })
    .await;
}
