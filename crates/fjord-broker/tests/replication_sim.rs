//! Deterministic simulation of one partition replicated over three brokers.
//!
//! Real pieces: the controller's [`MetadataImage::apply`] (registration, fencing,
//! unfencing, AlterPartition compare-and-set, elections from the ISR), the
//! partition [`Log`] on disk (leader and follower appends, leader epochs,
//! truncation, recovery after a "SIGKILL" that drops the open log), the
//! broker's [`LeaderState`] (high watermark over the maximal ISR, follower
//! tracking, ISR shrink and expansion proposals) and its divergence and
//! truncation rules ([`diverging_epoch`], [`truncation_offset`]). The network and the clock are a
//! seeded random schedule: fetches and their answers get lost, brokers are
//! killed, paused and restarted, and every broker sees the committed metadata
//! only when its own metadata step runs (so stale leaders exist and must be
//! fenced by leader epochs).
//!
//! Invariants checked after every step: an acknowledged record is never lost
//! (every live ISR member and the live leader hold it at its offset), a
//! leader's high watermark never moves back within its epoch, at most one
//! leader per leader epoch, ISR ⊆ replicas with the leader in it, and live
//! replicas' logs are identical below their high watermarks. After the faults
//! stop, the cluster must converge: everyone back in the ISR, logs equal, every
//! acknowledged record readable in offset order.
//!
//! A failure prints its seed; `FJORD_SIM_SEED=<seed> cargo nextest run -E
//! 'test(replication_sim)'` replays exactly that schedule.
//! `FJORD_SIM_SEEDS=<n>` runs more seeds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use fjord_broker::leader_state::{Committed, IsrProposal, LeaderState};
use fjord_broker::truncation::{diverging_epoch, truncation_offset};
use fjord_controller::{BrokerRegistration, Listener};
use fjord_controller::{MetadataCommand, MetadataImage, MetadataResponse};
use fjord_log::testing::batch_of_values;
use fjord_log::{Log, LogConfig};
use fjord_types::{BrokerId, NO_BROKER, TopicId};
use kafka_protocol::records::RecordBatchDecoder;
use uuid::Uuid;

const BROKERS: [BrokerId; 3] = [1, 2, 3];
const MIN_ISR: usize = 2;
/// Ticks without a heartbeat before the controller fences a broker.
const SESSION_TICKS: u64 = 12;
/// One tick of simulated time, for the broker's millisecond-based rules.
const TICK_MS: i64 = 100;
/// `replica.lag.time.max.ms`: ten ticks.
const LAG_MAX_MS: i64 = 10 * TICK_MS;
const STEPS: usize = 400;

/// xorshift64*: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Node {
    id: BrokerId,
    dir: PathBuf,
    /// `None` while the process is down.
    log: Option<Log>,
    paused: bool,
    incarnation: u128,
    /// The committed metadata as this broker last saw it.
    view: MetadataImage,
    /// This broker's high watermark (leader: computed; follower: from fetches).
    hw: i64,
    leading: Option<LeaderState>,
    last_heartbeat: u64,
}

impl Node {
    fn running(&self) -> bool {
        self.log.is_some() && !self.paused
    }
    fn leo(&self) -> i64 {
        self.log.as_ref().map_or(0, Log::log_end_offset)
    }
}

/// A produce waiting for the high watermark.
struct Pending {
    leader: BrokerId,
    epoch: i32,
    last_offset: i64,
    ids: Vec<u64>,
}

struct Sim {
    rng: Rng,
    tick: u64,
    topic: TopicId,
    controller: MetadataImage,
    metadata_index: u64,
    nodes: Vec<Node>,
    next_record: u64,
    pending: Vec<Pending>,
    /// Acknowledged records: offset → record id.
    acked: BTreeMap<i64, u64>,
    leader_of_epoch: BTreeMap<i32, BrokerId>,
    /// Highest HW each (leader, epoch) published.
    published_hw: BTreeMap<(BrokerId, i32), i64>,
    /// Whether fetches and answers get lost (false once the faults stop).
    lossy: bool,
    trace: Vec<String>,
    _dir: tempfile::TempDir,
}

/// (offset, record id) of every record in `log` below `end`.
fn records(log: &Log, end: i64) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = log.read(offset, 1 << 20, end, true).expect("read");
        if read.records.is_empty() {
            break;
        }
        let mut bytes = read.records.clone();
        let mut last = offset;
        while !bytes.is_empty() {
            let set = RecordBatchDecoder::decode(&mut bytes).expect("decode");
            for r in set.records {
                let value = r.value.expect("value");
                let id = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
                if r.offset < end {
                    out.push((r.offset, id));
                }
                last = r.offset + 1;
            }
        }
        if last <= offset {
            break;
        }
        offset = last;
    }
    out
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let topic = TopicId(Uuid::from_u128(42));
        let mut sim = Sim {
            rng: Rng::new(seed),
            tick: 0,
            topic,
            controller: MetadataImage::default(),
            metadata_index: 0,
            nodes: Vec::new(),
            next_record: 1,
            pending: Vec::new(),
            acked: BTreeMap::new(),
            leader_of_epoch: BTreeMap::new(),
            published_hw: BTreeMap::new(),
            lossy: true,
            trace: Vec::new(),
            _dir: dir,
        };
        for id in BROKERS {
            let node_dir = sim._dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).expect("mkdir");
            sim.nodes.push(Node {
                id,
                dir: node_dir.clone(),
                log: Some(Log::open(&node_dir, LogConfig::default()).expect("open")),
                paused: false,
                incarnation: 0,
                view: MetadataImage::default(),
                hw: 0,
                leading: None,
                last_heartbeat: 0,
            });
            sim.register(id);
        }
        sim.commit(MetadataCommand::CreateTopic {
            topic_id: topic,
            name: "sim".into(),
            partitions: vec![BROKERS.to_vec()],
            configs: BTreeMap::new(),
        });
        for i in 0..BROKERS.len() {
            sim.sync_metadata(i);
        }
        sim
    }

    fn commit(&mut self, cmd: MetadataCommand) -> MetadataResponse {
        self.metadata_index += 1;
        let resp = self.controller.apply(self.metadata_index, &cmd);
        self.trace
            .push(format!("t{} commit {cmd} -> {resp:?}", self.tick));
        let p = self.partition(&self.controller).clone();
        if p.leader != NO_BROKER {
            let previous = self.leader_of_epoch.insert(p.leader_epoch, p.leader);
            assert!(
                previous.is_none_or(|l| l == p.leader),
                "two leaders ({previous:?}, {}) in epoch {}",
                p.leader,
                p.leader_epoch
            );
        }
        resp
    }

    fn register(&mut self, id: BrokerId) {
        let node = self.node_mut(id);
        node.incarnation += 1;
        let incarnation = Uuid::from_u128(node.incarnation * 1000 + id as u128);
        self.commit(MetadataCommand::RegisterBroker {
            broker_id: id,
            incarnation_id: incarnation,
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "sim".into(),
                port: 9092,
            }],
            rack: None,
        });
    }

    fn partition<'a>(
        &self,
        image: &'a MetadataImage,
    ) -> &'a fjord_controller::PartitionRegistration {
        static EMPTY: std::sync::OnceLock<fjord_controller::PartitionRegistration> =
            std::sync::OnceLock::new();
        image
            .topics
            .get(&self.topic)
            .and_then(|t| t.partitions.first())
            .unwrap_or_else(|| {
                EMPTY.get_or_init(|| fjord_controller::PartitionRegistration {
                    replicas: vec![],
                    isr: vec![],
                    leader: NO_BROKER,
                    leader_epoch: -1,
                    partition_epoch: -1,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                })
            })
    }

    fn index(&self, id: BrokerId) -> usize {
        self.nodes.iter().position(|n| n.id == id).expect("node")
    }

    fn node_mut(&mut self, id: BrokerId) -> &mut Node {
        let i = self.index(id);
        &mut self.nodes[i]
    }

    fn registration(&self, id: BrokerId) -> &BrokerRegistration {
        &self.controller.brokers[&id]
    }

    fn now_ms(&self) -> i64 {
        self.tick as i64 * TICK_MS
    }

    /// The broker applies the committed image: it may start or stop leading.
    fn sync_metadata(&mut self, i: usize) {
        if !self.nodes[i].running() {
            return;
        }
        let image = self.controller.clone();
        let p = self.partition(&image).clone();
        let now_ms = self.now_ms();
        let node = &mut self.nodes[i];
        node.view = image;
        let leads_now = p.leader == node.id;
        let committed = Committed {
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: &p.replicas,
            isr: &p.isr,
        };
        let log = node.log.as_mut().expect("running");
        match node.leading.as_mut() {
            Some(state) if leads_now && state.leader_epoch == p.leader_epoch => {
                state.update_committed(committed, log.log_end_offset(), now_ms);
            }
            _ if leads_now => {
                // A new epoch starts at the log end: followers ahead of it in an
                // older epoch learn where that epoch ended on this leader.
                log.assign_leader_epoch(p.leader_epoch)
                    .expect("assign epoch");
                let leo = log.log_end_offset();
                node.leading = Some(LeaderState::new(node.id, committed, node.hw, leo, now_ms));
                self.trace.push(format!(
                    "t{} broker {} leads epoch {} at leo {leo} hw {}",
                    self.tick, node.id, p.leader_epoch, node.hw
                ));
            }
            _ => node.leading = None,
        }
        let id = node.id;
        // Produces waiting on a leadership this broker lost fail (not acknowledged).
        self.pending
            .retain(|w| !(w.leader == id && (!leads_now || w.epoch != p.leader_epoch)));
    }

    fn produce(&mut self, i: usize) {
        let count = 1 + self.rng.below(3);
        let node = &mut self.nodes[i];
        if !node.running() {
            return;
        }
        let Some(state) = node.leading.as_mut() else {
            return;
        };
        if !state.has_min_isr(MIN_ISR) {
            return; // NOT_ENOUGH_REPLICAS
        }
        let ids: Vec<u64> = (0..count).map(|k| self.next_record + k).collect();
        self.next_record += count;
        let log = node.log.as_mut().expect("running");
        let appended = log
            .append_as_leader(
                &batch_of_values(
                    ids.iter()
                        .map(|id| Bytes::copy_from_slice(&id.to_be_bytes())),
                ),
                state.leader_epoch,
                0,
            )
            .expect("leader append");
        self.pending.push(Pending {
            leader: node.id,
            epoch: state.leader_epoch,
            last_offset: appended.last_offset,
            ids,
        });
        if let Some(hw) = state.maybe_advance_hw(log.log_end_offset(), MIN_ISR) {
            node.hw = hw;
        }
        self.settle_acks(i);
    }

    /// Acknowledge the produces of broker `i` that its high watermark passed.
    fn settle_acks(&mut self, i: usize) {
        let node = &self.nodes[i];
        let Some(state) = node.leading.as_ref() else {
            return;
        };
        let (id, epoch, hw) = (node.id, state.leader_epoch, node.hw);
        let before = self
            .published_hw
            .get(&(id, epoch))
            .copied()
            .unwrap_or(i64::MIN);
        assert!(
            hw >= before,
            "HW of leader {id} in epoch {epoch} moved back: {before} -> {hw}"
        );
        self.published_hw.insert((id, epoch), hw);
        let mut done = Vec::new();
        self.pending.retain(|w| {
            let ok = w.leader == id && w.epoch == epoch && w.last_offset < hw;
            if ok {
                done.push((w.last_offset, w.ids.clone()));
            }
            !ok
        });
        for (last, ids) in done {
            let first = last + 1 - ids.len() as i64;
            for (k, rid) in ids.into_iter().enumerate() {
                self.acked.insert(first + k as i64, rid);
            }
        }
    }

    /// Follower `f` fetches from the leader it believes in.
    fn fetch(&mut self, f: usize) {
        if !self.nodes[f].running() {
            return;
        }
        let view = self.partition(&self.nodes[f].view).clone();
        let follower_id = self.nodes[f].id;
        if view.leader == NO_BROKER || view.leader == follower_id {
            return;
        }
        let l = self.index(view.leader);
        if !self.nodes[l].running() || (self.lossy && self.rng.chance(10)) {
            return; // unreachable, or the request was lost
        }
        let (fetch_offset, last_epoch) = {
            let log = self.nodes[f].log.as_ref().expect("running");
            (log.log_end_offset(), log.latest_epoch().unwrap_or(-1))
        };
        let now_ms = self.now_ms();
        // Leader side.
        let leader = &mut self.nodes[l];
        let Some(state) = leader.leading.as_mut() else {
            return; // NOT_LEADER_OR_FOLLOWER
        };
        if state.leader_epoch != view.leader_epoch {
            return; // FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH
        }
        let log = leader.log.as_ref().expect("running");
        let leader_leo = log.log_end_offset();
        let diverging = diverging_epoch(
            log.end_offset_for_epoch(last_epoch),
            last_epoch,
            fetch_offset,
        );
        let mut answer = None;
        if diverging.is_none() {
            if fetch_offset > leader_leo {
                return; // OFFSET_OUT_OF_RANGE
            }
            state.on_follower_fetch(follower_id, fetch_offset, now_ms, leader_leo);
            if let Some(hw) = state.maybe_advance_hw(leader_leo, MIN_ISR) {
                leader.hw = hw;
            }
            let read = log
                .read(fetch_offset, 1 << 16, leader_leo, true)
                .expect("leader read");
            answer = Some((read.records, leader.hw));
        }
        let expansion = state.expansion(follower_id);
        self.settle_acks(l);
        if let Some(proposal) = expansion {
            self.propose(l, proposal);
        }
        if self.lossy && self.rng.chance(10) {
            return; // the answer was lost
        }
        // Follower side.
        let node = &mut self.nodes[f];
        let log = node.log.as_mut().expect("running");
        if let Some(diverging) = diverging {
            let leo = log.log_end_offset();
            let to = truncation_offset(diverging, |e| log.end_offset_for_epoch(e), leo, node.hw);
            self.trace.push(format!(
                "t{} broker {follower_id} truncates {leo} -> {to} ({diverging:?})",
                self.tick
            ));
            log.truncate_to(to).expect("truncate");
            node.hw = node.hw.min(to);
        } else if let Some((records, hw)) = answer {
            if !records.is_empty() {
                log.append_as_follower(&records).expect("follower append");
            }
            let leo = log.log_end_offset();
            node.hw = node.hw.max(hw.min(leo)).min(leo);
        }
    }

    /// The leader at index `l` sends AlterPartition; the answer (the committed
    /// state) is applied at once, as the broker does with the response.
    fn propose(&mut self, l: usize, proposal: IsrProposal) {
        let node = &mut self.nodes[l];
        let Some(state) = node.leading.as_mut() else {
            return;
        };
        state.pending = Some(proposal.clone());
        let cmd = MetadataCommand::AlterPartition {
            broker_id: node.id,
            broker_epoch: node
                .view
                .brokers
                .get(&node.id)
                .map_or(-1, |b| b.broker_epoch),
            topic_id: self.topic,
            partition: 0,
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.new_isr,
        };
        let rejected = matches!(self.commit(cmd), MetadataResponse::Error(_));
        // Accepted or not, the broker learns the committed state.
        self.sync_metadata(l);
        if rejected && let Some(state) = self.nodes[l].leading.as_mut() {
            // The broker drops a rejected proposal (after a pause) and proposes anew.
            state.pending = None;
        }
    }

    /// Leaders drop followers that stayed behind for `replica.lag.time.max.ms`.
    fn shrink_isr(&mut self, l: usize) {
        let now_ms = self.now_ms();
        let node = &self.nodes[l];
        if !node.running() {
            return;
        }
        let Some(state) = node.leading.as_ref() else {
            return;
        };
        if let Some(proposal) = state.shrink(node.leo(), now_ms, LAG_MAX_MS) {
            self.propose(l, proposal);
        }
    }

    /// Heartbeats and the controller's session timeouts.
    fn liveness(&mut self) {
        for i in 0..self.nodes.len() {
            let id = self.nodes[i].id;
            if self.nodes[i].running() {
                self.nodes[i].last_heartbeat = self.tick;
                let reg = self.registration(id).clone();
                let caught_up = self.nodes[i].view.metadata_offset >= reg.broker_epoch as u64;
                if reg.fenced && caught_up {
                    self.commit(MetadataCommand::UnfenceBroker {
                        broker_id: id,
                        broker_epoch: reg.broker_epoch,
                    });
                }
            } else if self.tick - self.nodes[i].last_heartbeat > SESSION_TICKS
                && !self.registration(id).fenced
            {
                let broker_epoch = self.registration(id).broker_epoch;
                self.commit(MetadataCommand::FenceBroker {
                    broker_id: id,
                    broker_epoch,
                });
            }
        }
    }

    fn kill(&mut self, i: usize) {
        // Dropped without close: what was written is in the files, as after SIGKILL.
        let node = &mut self.nodes[i];
        if node.log.take().is_some() {
            node.leading = None;
            node.paused = false;
            self.trace.push(format!("t{} kill {}", self.tick, node.id));
            let id = node.id;
            self.pending.retain(|w| w.leader != id);
        }
    }

    fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.log.is_some() {
            return;
        }
        node.log = Some(Log::open(&node.dir, LogConfig::default()).expect("reopen"));
        // The HW is not persisted in this model: a restarted replica starts at 0
        // and learns it from the leader (never trusting its own log end).
        node.hw = 0;
        node.last_heartbeat = self.tick;
        let id = node.id;
        self.trace.push(format!("t{} restart {id}", self.tick));
        self.register(id);
        self.sync_metadata(i);
    }

    fn step(&mut self) {
        self.tick += 1;
        let i = self.rng.below(self.nodes.len() as u64) as usize;
        match self.rng.below(100) {
            0..=29 => {
                // Clients send to whoever the freshest metadata names.
                let leader = self.partition(&self.controller).leader;
                let target = if self.rng.chance(80) && leader != NO_BROKER {
                    self.index(leader)
                } else {
                    i
                };
                self.produce(target)
            }
            30..=64 => self.fetch(i),
            65..=74 => self.sync_metadata(i),
            75..=79 => self.shrink_isr(i),
            80..=81 => self.kill(i),
            82..=84 => self.restart(i),
            85..=86 if self.nodes[i].log.is_some() => self.nodes[i].paused = true,
            87..=90 => self.nodes[i].paused = false,
            _ => {}
        }
        self.liveness();
        self.check_invariants();
    }

    fn check_invariants(&self) {
        let p = self.partition(&self.controller);
        assert!(
            p.isr.iter().all(|r| p.replicas.contains(r)),
            "ISR {:?} not within replicas {:?}",
            p.isr,
            p.replicas
        );
        assert!(!p.isr.is_empty(), "empty ISR");
        assert!(
            p.leader == NO_BROKER || p.isr.contains(&p.leader),
            "leader {} outside the ISR {:?}",
            p.leader,
            p.isr
        );
        let max_acked = self.acked.keys().next_back().copied();
        for node in &self.nodes {
            let Some(log) = node.log.as_ref() else {
                continue;
            };
            let in_isr = p.isr.contains(&node.id);
            let leads = p.leader == node.id;
            if (in_isr || leads)
                && let Some(max) = max_acked
            {
                // Everything acknowledged is below the leader's HW at the time, which
                // every ISR member had reached.
                let have: BTreeMap<i64, u64> =
                    records(log, log.log_end_offset()).into_iter().collect();
                for (offset, id) in &self.acked {
                    assert_eq!(
                        have.get(offset),
                        Some(id),
                        "acknowledged record {id} at offset {offset} missing on broker {} \
                         (ISR {:?}, leader {}, its log end {}, max acked {max})",
                        node.id,
                        p.isr,
                        p.leader,
                        log.log_end_offset()
                    );
                }
            }
        }
        // Logs agree below the high watermarks.
        let logs: Vec<(BrokerId, Vec<(i64, u64)>)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let log = n.log.as_ref()?;
                Some((n.id, records(log, n.hw.min(log.log_end_offset()))))
            })
            .collect();
        for pair in logs.windows(2) {
            let ((a, la), (b, lb)) = (&pair[0], &pair[1]);
            let n = la.len().min(lb.len());
            assert_eq!(
                la[..n],
                lb[..n],
                "brokers {a} and {b} disagree below their high watermarks"
            );
        }
    }

    /// Stop the faults and let replication catch up; returns the rounds it took.
    fn heal(&mut self) -> usize {
        self.lossy = false;
        for i in 0..self.nodes.len() {
            self.nodes[i].paused = false;
            self.restart(i);
        }
        for round in 0..200 {
            self.tick += 1;
            self.liveness();
            for i in 0..self.nodes.len() {
                self.sync_metadata(i);
            }
            for i in 0..self.nodes.len() {
                self.fetch(i);
            }
            self.check_invariants();
            let p = self.partition(&self.controller).clone();
            if p.leader == NO_BROKER {
                continue;
            }
            let l = self.index(p.leader);
            let leo = self.nodes[l].leo();
            let converged = p.isr.len() == BROKERS.len()
                && self
                    .nodes
                    .iter()
                    .all(|n| n.leo() == leo && n.hw == leo && n.view == self.controller);
            if converged {
                return round;
            }
        }
        let p = self.partition(&self.controller).clone();
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "broker {}: leo {} hw {} epochs {:?} leads {:?} fenced {}",
                    n.id,
                    n.leo(),
                    n.hw,
                    n.log.as_ref().map(|l| l.leader_epochs().to_vec()),
                    n.leading.as_ref().map(|l| (l.leader_epoch, l.isr.clone())),
                    self.registration(n.id).fenced
                )
            })
            .collect();
        panic!("did not converge after the faults stopped: {p:?}; {nodes:#?}");
    }
}

fn run(seed: u64) {
    let mut sim = Sim::new(seed);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..STEPS {
            sim.step();
        }
        let rounds = sim.heal();
        // Every acknowledged record is readable from the leader, in offset order.
        let p = sim.partition(&sim.controller).clone();
        let leader = &sim.nodes[sim.index(p.leader)];
        let log = leader.log.as_ref().expect("leader up");
        let all: BTreeMap<i64, u64> = records(log, log.log_end_offset()).into_iter().collect();
        for (offset, id) in &sim.acked {
            assert_eq!(
                all.get(offset),
                Some(id),
                "lost acknowledged record at {offset}"
            );
        }
        (rounds, sim.acked.len(), p.leader_epoch)
    }));
    match outcome {
        Ok((rounds, acked, epochs)) => {
            eprintln!(
                "seed {seed}: {acked} records acknowledged, {epochs} leader epochs, converged in {rounds} rounds"
            );
        }
        Err(panic) => {
            let tail = sim.trace.len().saturating_sub(40);
            for line in &sim.trace[tail..] {
                eprintln!("  {line}");
            }
            eprintln!(
                "replication simulation failed with seed {seed}; replay with FJORD_SIM_SEED={seed}"
            );
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn replication_sim_keeps_acknowledged_records_through_faults() {
    if let Ok(seed) = std::env::var("FJORD_SIM_SEED") {
        run(seed.parse().expect("FJORD_SIM_SEED is a number"));
        return;
    }
    let seeds: u64 = std::env::var("FJORD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    for seed in 1..=seeds {
        run(seed);
    }
}
