//! A seeded simulation of the coordinator runtime over a fake
//! `__consumer_offsets` log ([`FakeWriter`]).
//!
//! Real pieces: the runtime (shards, write → append → revert, background
//! loads, elections and resignations, ticks) and the group state machine.
//! The schedule is random: joins, syncs, heartbeats, leaves and commits of a
//! few groups over two partitions, the clock, appends that are refused
//! before writing (too few replicas, not leader, too large, storage),
//! written and then time out, or stall (a read meanwhile must answer at once
//! from the state before the write; leadership may move away before the
//! append goes on, which then refuses it), and leadership that moves away
//! and back (the shard unloaded, then replayed from the fake log, sometimes
//! observed while it loads).
//!
//! Invariants checked after every step:
//! - no success answer for a write that failed: on a partition whose append
//!   failed during a step, every answer completed in that step is an error;
//! - a commit answered success is in the log, a commit refused before
//!   writing is not visible, a commit written and timed out is visible (in
//!   memory and in the log alike); the committed offsets fetched always
//!   equal that model, also after a reload;
//! - the shard's state equals a replay of its log: committed offsets
//!   always, the generation when the group is in a persisted state (Stable,
//!   Empty), never behind it otherwise;
//! - requests for a partition not led get NOT_COORDINATOR, for one loading
//!   COORDINATOR_LOAD_IN_PROGRESS;
//! - at the end, with the faults gone, every parked request is answered.
//!
//! A failure prints its seed and the last steps; `FJORD_COORD_SIM_SEED=<seed>
//! cargo nextest run -p fjord-coordinator coordinator_sim` replays exactly
//! that schedule. `FJORD_COORD_SIM_SEEDS=<n>` runs more seeds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fake_writer::{FakeWriter, Fault};
use super::tests::{commit_req, committed};
use super::*;
use crate::group::GroupError;
use crate::group::test_support::{Rng, join_req, sync_req};
use crate::group::{
    GroupConfig, GroupState, HeartbeatRequest, JoinGroupResult, LeaveGroupRequest, LeavingMember,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupResult,
};
use crate::partition_for;

const PARTITIONS: i32 = 2;
const GROUPS: [&str; 4] = ["ga", "gb", "gc", "gd"];
const STEPS: usize = 300;
const SEEDS: u64 = 200;
const FAULTS: [Fault; 5] = [
    Fault::NotEnoughReplicas,
    Fault::NotLeader,
    Fault::TooLarge,
    Fault::Storage,
    Fault::TimeOut,
];

/// A parked-capable request running as its own task.
enum Answer {
    Join(Result<JoinGroupResult, GroupError>),
    Sync(Result<SyncGroupResult, GroupError>),
}

impl Answer {
    fn is_ok(&self) -> bool {
        match self {
            Answer::Join(r) => r.is_ok(),
            Answer::Sync(r) => r.is_ok(),
        }
    }
}

struct InFlight {
    group: &'static str,
    handle: JoinHandle<Answer>,
}

/// What the clients and the model know about one group.
#[derive(Default)]
struct Known {
    /// Member ids handed out.
    members: Vec<String>,
    generation: i32,
    /// The leader's member list of the last join phase it saw.
    leader_view: Option<(String, Vec<String>)>,
    /// The committed offset of partition `t-0`, per the answers and the log.
    committed: Option<i64>,
}

struct Sim {
    seed: u64,
    step: usize,
    rng: Rng,
    writer: Arc<FakeWriter>,
    service: Arc<GroupService>,
    now: Arc<AtomicI64>,
    epochs: BTreeMap<i32, i32>,
    /// Partitions this node leads (the rest moved away).
    led: BTreeSet<i32>,
    groups: BTreeMap<&'static str, Known>,
    inflight: Vec<InFlight>,
    next_offset: i64,
    trace: Vec<String>,
    stats: Stats,
}

#[derive(Debug, Default)]
struct Stats {
    commits_ok: usize,
    commits_refused: usize,
    reloads: usize,
    load_in_progress: usize,
    stable_checks: usize,
    reads_during_writes: usize,
}

fn partition(group: &str) -> i32 {
    partition_for(group, PARTITIONS)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let writer = FakeWriter::leading(0..PARTITIONS);
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock: Clock = {
            let now = now.clone();
            Arc::new(move || now.load(Ordering::SeqCst))
        };
        let ids = Arc::new(AtomicU64::new(0));
        let config = GroupServiceConfig {
            offsets_topic_num_partitions: PARTITIONS,
            group: GroupConfig {
                initial_rebalance_delay_ms: if seed.is_multiple_of(2) { 0 } else { 3_000 },
                ..GroupConfig::default()
            },
            ..GroupServiceConfig::default()
        };
        let service = GroupService::new(
            config,
            writer.clone(),
            TaskTracker::new(),
            CancellationToken::new(),
        )
        .with_clock(clock)
        .with_member_ids(Arc::new(move || {
            format!("m{}", ids.fetch_add(1, Ordering::Relaxed))
        }));
        Sim {
            seed,
            step: 0,
            rng: Rng(seed),
            writer,
            service: Arc::new(service),
            now,
            epochs: (0..PARTITIONS).map(|p| (p, 1)).collect(),
            led: (0..PARTITIONS).collect(),
            groups: GROUPS.iter().map(|g| (*g, Known::default())).collect(),
            inflight: Vec::new(),
            next_offset: 0,
            trace: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    /// Let spawned requests and loads run until they wait on something.
    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    fn pick_group(&mut self) -> &'static str {
        GROUPS[self.rng.below(GROUPS.len() as u64) as usize]
    }

    /// A member id: mostly one handed out, sometimes none.
    fn pick_member(&mut self, group: &str) -> String {
        let members = &self.groups[group].members;
        if members.is_empty() || self.rng.below(6) == 0 {
            return String::new();
        }
        let i = self.rng.below(members.len() as u64) as usize;
        members[i].clone()
    }

    /// The generation a client sends: mostly the last seen, sometimes stale.
    fn pick_generation(&mut self, group: &str) -> i32 {
        self.groups[group].generation - i32::from(self.rng.below(6) == 0)
    }

    async fn run(&mut self) {
        for step in 0..STEPS {
            self.step = step;
            let fault = (self.rng.below(6) == 0)
                .then(|| FAULTS[self.rng.below(FAULTS.len() as u64) as usize]);
            for p in 0..PARTITIONS {
                self.writer.set_fault(p, fault);
            }
            let failed_before: Vec<u64> = (0..PARTITIONS)
                .map(|p| self.writer.failed_appends(p))
                .collect();
            let mut answers: Vec<(&'static str, bool)> = Vec::new();
            match self.rng.below(100) {
                0..18 => self.join(),
                18..38 => self.sync(),
                38..50 => answers.push(self.heartbeat().await),
                50..54 => answers.push(self.leave().await),
                54..76 => answers.push(self.commit(fault).await),
                76..90 => self.tick().await,
                90..95 => self.resign(),
                _ => self.elect().await,
            }
            Self::settle().await;
            answers.extend(self.finished().await);
            for p in 0..PARTITIONS {
                self.writer.set_fault(p, None);
                if self.writer.failed_appends(p) > failed_before[p as usize] {
                    for (group, ok) in &answers {
                        assert!(
                            !(partition(group) == p && *ok),
                            "{}: success answered for {group} after a failed append",
                            self.ctx()
                        );
                    }
                }
            }
            self.check_offsets().await;
            if step % 5 == 0 {
                self.check_replay().await;
            }
        }
        self.drain().await;
    }

    fn join(&mut self) {
        let group = self.pick_group();
        let member = self.pick_member(group);
        let mut req = join_req(0, &member);
        req.group_id = group.to_string();
        req.require_known_member_id = self.rng.below(2) == 0;
        self.trace.push(format!("join {group} {member:?}"));
        let service = self.service.clone();
        let handle = tokio::spawn(async move { Answer::Join(service.join_group(req).await) });
        self.inflight.push(InFlight { group, handle });
    }

    fn sync(&mut self) {
        let group = self.pick_group();
        let member = self.pick_member(group);
        let generation = self.pick_generation(group);
        let mut req = sync_req(0, &member, generation);
        req.group_id = group.to_string();
        if let Some((leader, members)) = &self.groups[group].leader_view
            && *leader == member
        {
            req.assignments = members
                .iter()
                .map(|m| (m.clone(), bytes::Bytes::from_static(b"x")))
                .collect();
        }
        self.trace
            .push(format!("sync {group} {member:?} gen {generation}"));
        let service = self.service.clone();
        let handle = tokio::spawn(async move { Answer::Sync(service.sync_group(req).await) });
        self.inflight.push(InFlight { group, handle });
    }

    async fn heartbeat(&mut self) -> (&'static str, bool) {
        let group = self.pick_group();
        let member_id = self.pick_member(group);
        let generation_id = self.pick_generation(group);
        let result = self
            .service
            .heartbeat(HeartbeatRequest {
                group_id: group.to_string(),
                member_id,
                group_instance_id: None,
                generation_id,
            })
            .await;
        self.trace.push(format!("heartbeat {group}: {result:?}"));
        self.check_routing(group, result.as_ref().err());
        (group, result.is_ok())
    }

    async fn leave(&mut self) -> (&'static str, bool) {
        let group = self.pick_group();
        let member_id = self.pick_member(group);
        let result = self
            .service
            .leave_group(LeaveGroupRequest {
                group_id: group.to_string(),
                members: vec![LeavingMember {
                    member_id,
                    group_instance_id: None,
                }],
            })
            .await;
        self.trace.push(format!("leave {group}: {result:?}"));
        self.check_routing(group, result.as_ref().err());
        (
            group,
            result.is_ok_and(|left| left.iter().all(|(_, r)| r.is_ok())),
        )
    }

    async fn commit(&mut self, fault: Option<Fault>) -> (&'static str, bool) {
        let group = self.pick_group();
        let p = partition(group);
        let (member_id, generation_id) = if self.rng.below(2) == 0 {
            (String::new(), -1)
        } else {
            (self.pick_member(group), self.pick_generation(group))
        };
        self.next_offset += 1;
        let offset = self.next_offset;
        let log_end = self.writer.log_end(p);
        let failed = self.writer.failed_appends(p);
        let req = OffsetCommitRequest {
            generation_id,
            member_id,
            ..commit_req(group, offset)
        };
        let stall = fault.is_none() && self.rng.below(8) == 0;
        let results = if stall {
            self.stalled_commit(group, req).await
        } else {
            self.service.offset_commit(req).await
        };
        let result = results.first().map(|(_, r)| r.clone());
        self.trace
            .push(format!("commit {group} {offset} ({fault:?}): {result:?}"));
        let ctx = self.ctx();
        let written = self.writer.log_end(p) > log_end;
        match &result {
            Some(Ok(())) => {
                assert!(written, "{ctx}: commit answered success without a write");
                assert_eq!(
                    self.last_logged_offset(group),
                    Some(offset),
                    "{ctx}: the last batch does not hold the acknowledged commit"
                );
                self.groups.entry(group).or_default().committed = Some(offset);
                self.stats.commits_ok += 1;
            }
            Some(Err(err)) => {
                self.check_routing(group, Some(err));
                if written {
                    // Only a write that reached the log and timed out may
                    // leave records behind an error.
                    assert_eq!(fault, Some(Fault::TimeOut), "{ctx}: {err} after a write");
                    self.groups.entry(group).or_default().committed = Some(offset);
                } else if self.writer.failed_appends(p) > failed {
                    self.stats.commits_refused += 1;
                }
            }
            None => panic!("{ctx}: no answer for the committed partition"),
        }
        (group, matches!(result, Some(Ok(()))))
    }

    /// A commit whose append stalls: meanwhile a read answers at once from
    /// the state before it, and sometimes leadership moves away (then the
    /// append is refused, nothing written).
    async fn stalled_commit(
        &mut self,
        group: &'static str,
        req: OffsetCommitRequest,
    ) -> crate::group::PartitionResults {
        let p = partition(group);
        self.writer.set_fault(p, Some(Fault::Stall));
        let service = self.service.clone();
        let commit = tokio::spawn(async move { service.offset_commit(req).await });
        Self::settle().await;
        let ctx = self.ctx();
        if self.writer.stalled_appends() > 0 {
            let before = self.groups[group].committed;
            // Answered without waiting: a read that waited for the shard's
            // lock would not be ready.
            assert_eq!(
                self.fetch(group).now_or_never(),
                Some(Ok(before)),
                "{ctx}: a read during a write"
            );
            self.stats.reads_during_writes += 1;
            if self.rng.below(2) == 0 {
                self.resign_partition(p);
            }
            self.writer.release.notify_one();
            Self::settle().await;
        }
        self.writer.set_fault(p, None);
        assert!(
            commit.is_finished(),
            "{ctx}: the stalled commit is answered"
        );
        commit.await.unwrap_or_else(|e| panic!("{ctx}: {e}"))
    }

    /// The offset `group` committed in the last batch of its partition.
    fn last_logged_offset(&self, group: &str) -> Option<i64> {
        let mut last = None;
        for record in self.writer.last_batch(partition(group)) {
            let Some(key) = record.key.as_deref() else {
                continue;
            };
            if let Ok(Some(crate::group::GroupRecord::Offset {
                group_id,
                committed,
                ..
            })) = crate::group::codec::decode(key, record.value.as_deref())
                && group_id == group
            {
                last = Some(committed.offset);
            }
        }
        last
    }

    /// A request refused for routing reasons matches the partition's state.
    fn check_routing(&self, group: &str, err: Option<&GroupError>) {
        let p = partition(group);
        let expected = if !self.led.contains(&p) {
            Some(GroupError::NotCoordinator)
        } else if self.service.shard_status(p) == Some(ShardStatus::Loading) {
            Some(GroupError::CoordinatorLoadInProgress)
        } else {
            None
        };
        if let Some(expected) = expected {
            assert_eq!(
                err,
                Some(&expected),
                "{}: {group} on partition {p}",
                self.ctx()
            );
        }
    }

    async fn tick(&mut self) {
        let advance = if self.rng.below(10) == 0 {
            12_000
        } else {
            self.rng.below(3_000) as i64
        };
        self.now.fetch_add(advance, Ordering::SeqCst);
        self.trace.push(format!("tick +{advance} ms"));
        self.service.tick_due().await;
    }

    /// Leadership of a led partition moves away: its shard unloads.
    fn resign(&mut self) {
        let Some(p) = self
            .led
            .iter()
            .nth(self.rng.below(self.led.len().max(1) as u64) as usize)
            .copied()
        else {
            return;
        };
        self.resign_partition(p);
    }

    fn resign_partition(&mut self, p: i32) {
        let epoch = self.epochs[&p] + 1;
        self.epochs.insert(p, epoch);
        self.led.remove(&p);
        self.writer.resign(p);
        self.service.on_resignation(p, Some(epoch));
        self.trace.push(format!("resign {p} (epoch {epoch})"));
        assert_eq!(self.service.shard_status(p), None, "{}", self.ctx());
    }

    /// Leadership of a partition comes back at a new epoch: its shard
    /// replays the log, sometimes observed while loading.
    async fn elect(&mut self) {
        let gone: Vec<i32> = (0..PARTITIONS).filter(|p| !self.led.contains(p)).collect();
        if gone.is_empty() {
            return;
        }
        let p = gone[self.rng.below(gone.len() as u64) as usize];
        let epoch = self.epochs[&p] + 1;
        self.epochs.insert(p, epoch);
        self.led.insert(p);
        self.writer.lead(p, epoch);
        let observe = self.rng.below(3) == 0;
        self.writer.hold_reads(p, observe);
        self.service.on_election(p, epoch);
        self.trace
            .push(format!("elect {p} (epoch {epoch}, observed: {observe})"));
        let ctx = self.ctx();
        if observe {
            Self::settle().await;
            assert_eq!(
                self.service.shard_status(p),
                Some(ShardStatus::Loading),
                "{ctx}"
            );
            let group = GROUPS.iter().find(|g| partition(g) == p).copied();
            if let Some(group) = group {
                let fetched = self.fetch(group).await;
                assert_eq!(fetched, Err(GroupError::CoordinatorLoadInProgress), "{ctx}");
                self.stats.load_in_progress += 1;
            }
            self.writer.hold_reads(p, false);
            self.writer.release_reads.notify_one();
        }
        Self::settle().await;
        assert_eq!(
            self.service.shard_status(p),
            Some(ShardStatus::Active),
            "{ctx}"
        );
        self.stats.reloads += 1;
        self.check_replay().await;
    }

    async fn fetch(&self, group: &str) -> Result<Option<i64>, GroupError> {
        committed(&self.service, group).await
    }

    /// Requests that completed: their answers, and what clients learn.
    async fn finished(&mut self) -> Vec<(&'static str, bool)> {
        let mut answers = Vec::new();
        let mut still = Vec::new();
        for flight in std::mem::take(&mut self.inflight) {
            if !flight.handle.is_finished() {
                still.push(flight);
                continue;
            }
            let ctx = self.ctx();
            let answer = flight.handle.await.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let group = flight.group;
            let known = self.groups.entry(group).or_default();
            match &answer {
                Answer::Join(Ok(joined)) => {
                    known.members.push(joined.member_id.clone());
                    known.generation = known.generation.max(joined.generation_id);
                    if joined.leader == joined.member_id {
                        let members = joined.members.iter().map(|m| m.member_id.clone()).collect();
                        known.leader_view = Some((joined.member_id.clone(), members));
                    }
                }
                Answer::Join(Err(GroupError::MemberIdRequired { member_id })) => {
                    known.members.push(member_id.clone())
                }
                _ => {}
            }
            self.trace.push(format!(
                "answered {group}: {}",
                match &answer {
                    Answer::Join(r) => format!(
                        "join {:?}",
                        r.as_ref().map(|j| (&j.member_id, j.generation_id))
                    ),
                    Answer::Sync(r) => format!("sync {:?}", r.as_ref().map(|_| ())),
                }
            ));
            answers.push((group, answer.is_ok()));
        }
        self.inflight = still;
        answers
    }

    /// The committed offsets every loaded shard serves are the model's.
    async fn check_offsets(&mut self) {
        for group in GROUPS {
            let p = partition(group);
            if self.service.shard_status(p) != Some(ShardStatus::Active) {
                continue;
            }
            let fetched = self.fetch(group).await;
            assert_eq!(
                fetched,
                Ok(self.groups[group].committed),
                "{}: {group}'s committed offset",
                self.ctx()
            );
        }
    }

    /// Each loaded shard equals a replay of its log.
    async fn check_replay(&mut self) {
        let ctx = self.ctx();
        for p in 0..PARTITIONS {
            let Some(cell) = self.service.active_cell(p) else {
                continue;
            };
            let mut replayed = crate::group::GroupCoordinator::new(GroupConfig::default());
            for record in self.writer.records(p) {
                let Some(key) = record.key.as_deref() else {
                    continue;
                };
                if let Ok(Some(group_record)) =
                    crate::group::codec::decode(key, record.value.as_deref())
                {
                    replayed.replay(group_record);
                }
            }
            let shard = cell
                .lock(&self.service.runtime)
                .await
                .expect("active shard");
            for group in GROUPS.iter().filter(|g| partition(g) == p) {
                let all = OffsetFetchRequest {
                    group_id: group.to_string(),
                    partitions: None,
                    require_stable: false,
                };
                assert_eq!(
                    shard.coordinator.offset_fetch(&all),
                    replayed.offset_fetch(&all),
                    "{ctx}: {group}'s offsets differ from the log's"
                );
                let (Some(memory), Some(logged)) =
                    (shard.coordinator.group(group), replayed.group(group))
                else {
                    continue;
                };
                match memory.state() {
                    GroupState::Stable | GroupState::Empty => {
                        assert_eq!(
                            memory.generation_id(),
                            logged.generation_id(),
                            "{ctx}: {group}'s generation differs from the log's"
                        );
                        if memory.state() == GroupState::Stable {
                            self.stats.stable_checks += 1;
                        }
                    }
                    _ => assert!(
                        memory.generation_id() >= logged.generation_id(),
                        "{ctx}: {group} is behind its log"
                    ),
                }
            }
        }
    }

    /// Faults stop, every partition comes back, time passes: every parked
    /// request is answered.
    async fn drain(&mut self) {
        self.step = STEPS;
        for p in 0..PARTITIONS {
            self.writer.set_fault(p, None);
        }
        while self.led.len() < PARTITIONS as usize {
            self.elect().await;
        }
        for _ in 0..40 {
            if self.inflight.is_empty() {
                break;
            }
            self.now.fetch_add(30_000, Ordering::SeqCst);
            self.service.tick_due().await;
            Self::settle().await;
            self.finished().await;
        }
        assert!(
            self.inflight.is_empty(),
            "seed {}: {} requests never answered",
            self.seed,
            self.inflight.len()
        );
        self.check_offsets().await;
        self.check_replay().await;
    }
}

fn run(seed: u64) -> Stats {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let mut sim = Sim::new(seed);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(sim.run());
    }));
    if let Err(panic) = outcome {
        let tail = sim.trace.len().saturating_sub(40);
        for line in &sim.trace[tail..] {
            eprintln!("  {line}");
        }
        eprintln!(
            "coordinator simulation failed with seed {seed}; replay with FJORD_COORD_SIM_SEED={seed}"
        );
        std::panic::resume_unwind(panic);
    }
    sim.stats
}

#[test]
fn coordinator_sim_keeps_answers_true_to_the_log() {
    assert!(
        GROUPS.iter().any(|g| partition(g) == 0) && GROUPS.iter().any(|g| partition(g) == 1),
        "the groups cover both partitions"
    );
    if let Ok(seed) = std::env::var("FJORD_COORD_SIM_SEED") {
        let stats = run(seed.parse().expect("FJORD_COORD_SIM_SEED is a number"));
        eprintln!("seed {seed}: {stats:?}");
        return;
    }
    let seeds: u64 = std::env::var("FJORD_COORD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let mut total = Stats::default();
    for seed in 1..=seeds {
        let stats = run(seed);
        total.commits_ok += stats.commits_ok;
        total.commits_refused += stats.commits_refused;
        total.reloads += stats.reloads;
        total.load_in_progress += stats.load_in_progress;
        total.stable_checks += stats.stable_checks;
        total.reads_during_writes += stats.reads_during_writes;
    }
    eprintln!("{seeds} seeds × {STEPS} steps: {total:?}");
    // The walk must reach the interesting cases, not just bounce off errors.
    if seeds >= SEEDS {
        assert!(total.commits_ok > 1_000, "{total:?}");
        assert!(total.commits_refused > 100, "{total:?}");
        assert!(total.reloads > 200, "{total:?}");
        assert!(total.load_in_progress > 50, "{total:?}");
        assert!(total.stable_checks > 100, "{total:?}");
        assert!(total.reads_during_writes > 100, "{total:?}");
    }
}
