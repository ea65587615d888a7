//! A seeded random walk over the transaction coordinator's APIs, marker
//! acknowledgements, the clock and reloads from the log, checking
//! invariants after every step. A failure prints the seed and step.

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::TopicPartition;

use super::test_support::*;
use super::*;
use crate::group::test_support::Rng;

const IDS: [&str; 3] = ["a", "b", "c"];
const CLIENTS_PER_ID: usize = 2;

/// One marker still to acknowledge: (the id's transaction number, id,
/// producer id, epoch, result, partition). Under TV1 successive
/// transactions may share an epoch, so the number tells them apart.
type Outstanding = (u64, String, i64, i16, TransactionResult, TopicPartition);

struct Sim {
    h: Harness,
    rng: Rng,
    /// What each client believes it is: (id, producer id and epoch).
    clients: Vec<(&'static str, Option<ProducerIdAndEpoch>)>,
    outstanding: Vec<Outstanding>,
    /// Loads so far: marker requests are counted per load.
    generation: u32,
    requested: BTreeMap<(u32, Outstanding), u32>,
    acked: BTreeSet<(u32, Outstanding)>,
    /// The Prepare* of each id, as last written or loaded.
    prepared: BTreeMap<String, (i64, i16, TransactionResult, BTreeSet<TopicPartition>)>,
    /// Highest (producer id, epoch) seen per id, until it expires.
    highest: BTreeMap<String, (i64, i16)>,
    fenced: BTreeSet<(String, i64, i16)>,
    /// Prepare* records written per id.
    transactions: BTreeMap<String, u64>,
    completed: usize,
}

fn result_of(state: TransactionState) -> Option<TransactionResult> {
    match state {
        TransactionState::PrepareCommit | TransactionState::CompleteCommit => {
            Some(TransactionResult::Commit)
        }
        TransactionState::PrepareAbort | TransactionState::CompleteAbort => {
            Some(TransactionResult::Abort)
        }
        _ => None,
    }
}

impl Sim {
    fn new(seed: u64) -> Self {
        let config = TxnConfig {
            transactional_id_expiration_ms: 200_000,
            ..TxnConfig::default()
        };
        let clients = IDS
            .iter()
            .flat_map(|id| std::iter::repeat_n((*id, None), CLIENTS_PER_ID))
            .collect();
        Sim {
            h: Harness::with_config(config),
            rng: Rng(seed),
            clients,
            outstanding: Vec::new(),
            generation: 0,
            requested: BTreeMap::new(),
            acked: BTreeSet::new(),
            prepared: BTreeMap::new(),
            highest: BTreeMap::new(),
            fenced: BTreeSet::new(),
            transactions: BTreeMap::new(),
            completed: 0,
        }
    }

    fn producer(&self, client: usize) -> Option<TxnProducer> {
        let (id, pe) = self.clients[client];
        pe.map(|pe| TxnProducer {
            transactional_id: id.into(),
            producer_id: pe.producer_id,
            producer_epoch: pe.epoch,
        })
    }

    /// Checks a client call's answer against the fenced set.
    fn answered<T>(&mut self, ctx: &str, p: &TxnProducer, reply: &Result<T, TxnError>) {
        let key = (p.transactional_id.clone(), p.producer_id, p.producer_epoch);
        match reply {
            Err(TxnError::ProducerFenced { .. }) => {
                self.fenced.insert(key);
            }
            Ok(_) => assert!(
                !self.fenced.contains(&key),
                "{ctx}: fenced {key:?} succeeded"
            ),
            Err(_) => {}
        }
    }

    fn step(&mut self, ctx: &str) {
        let log_before = self.h.log.len();
        let client = self.rng.below(self.clients.len() as u64) as usize;
        match self.rng.below(20) {
            0..=3 => {
                let id = self.clients[client].0;
                let expected = self.clients[client].1.filter(|_| self.rng.below(2) == 0);
                if let Ok(pe) = self.h.init(id, expected) {
                    self.clients[client].1 = Some(pe);
                }
            }
            4..=7 => {
                if let Some(p) = self.producer(client) {
                    let partition = self.rng.below(3) as i32;
                    let topic = ["x", "y"][self.rng.below(2) as usize];
                    let reply = self.h.add(&p, &[(topic, partition)]);
                    self.answered(ctx, &p, &reply);
                }
            }
            8..=9 => {
                if let Some(p) = self.producer(client) {
                    let result = if self.rng.below(2) == 0 {
                        TransactionResult::Commit
                    } else {
                        TransactionResult::Abort
                    };
                    let reply = self.h.end(&p, result);
                    self.answered(ctx, &p, &reply);
                }
            }
            10..=15 => {
                if !self.outstanding.is_empty() {
                    let i = self.rng.below(self.outstanding.len() as u64) as usize;
                    let m = self.outstanding.swap_remove(i);
                    self.acked.insert((self.generation, m.clone()));
                    let out = self
                        .h
                        .coord
                        .marker_written(&m.1, m.2, m.3, &m.5, self.h.now);
                    self.h.take(out);
                }
            }
            16..=18 => {
                self.h.now += self.rng.below(70_000) as i64;
                self.h.tick();
            }
            _ => {
                let (coord, markers) = self.h.reloaded();
                self.h.coord = coord;
                self.h.markers = markers;
                self.outstanding.clear();
                self.generation += 1;
                self.prepared.clear();
                for md in self.h.coord.transactions() {
                    if md.state.is_prepare() {
                        let result = result_of(md.state).unwrap_or(TransactionResult::Abort);
                        self.prepared.insert(
                            md.transactional_id.clone(),
                            (
                                md.producer_id,
                                md.producer_epoch,
                                result,
                                md.partitions.clone(),
                            ),
                        );
                    }
                }
            }
        }
        self.check_records(ctx, log_before);
        self.check_markers(ctx);
        self.check_state(ctx);
    }

    fn check_records(&mut self, ctx: &str, from: usize) {
        for record in self.h.log[from..].iter().cloned() {
            match record {
                TxnRecord::Tombstone { transactional_id } => {
                    self.highest.remove(&transactional_id);
                    self.prepared.remove(&transactional_id);
                }
                TxnRecord::Metadata {
                    transactional_id: id,
                    value,
                } => {
                    let result = result_of(value.state);
                    if value.state.is_prepare() {
                        let result = result.unwrap_or(TransactionResult::Abort);
                        let entry = (
                            value.producer_id,
                            value.producer_epoch,
                            result,
                            value.partitions,
                        );
                        *self.transactions.entry(id.clone()).or_default() += 1;
                        self.prepared.insert(id, entry);
                    } else if let Some(result) = result {
                        let (pid, epoch, prepared_result, partitions) = self
                            .prepared
                            .remove(&id)
                            .unwrap_or_else(|| panic!("{ctx}: {id} completed without Prepare"));
                        assert_eq!(result, prepared_result, "{ctx}: {id}");
                        let n = self.transactions.get(&id).copied().unwrap_or_default();
                        for tp in partitions {
                            let m = (n, id.clone(), pid, epoch, result, tp);
                            assert!(
                                self.acked.contains(&(self.generation, m.clone())),
                                "{ctx}: {m:?} completed before its marker was written"
                            );
                        }
                        self.completed += 1;
                    }
                }
            }
        }
    }

    fn check_markers(&mut self, ctx: &str) {
        for m in std::mem::take(&mut self.h.markers) {
            for tp in m.partitions {
                let n = self
                    .transactions
                    .get(&m.transactional_id)
                    .copied()
                    .unwrap_or_default();
                let o = (
                    n,
                    m.transactional_id.clone(),
                    m.producer_id,
                    m.producer_epoch,
                    m.result,
                    tp,
                );
                let count = self
                    .requested
                    .entry((self.generation, o.clone()))
                    .or_default();
                *count += 1;
                assert_eq!(*count, 1, "{ctx}: marker {o:?} requested twice in one load");
                self.outstanding.push(o);
            }
        }
    }

    fn check_state(&mut self, ctx: &str) {
        for md in self.h.coord.transactions() {
            let now = (md.producer_id, md.producer_epoch);
            let seen = self
                .highest
                .entry(md.transactional_id.clone())
                .or_insert(now);
            assert!(
                now >= *seen,
                "{ctx}: {} went back from {seen:?} to {now:?}",
                md.transactional_id
            );
            *seen = now;
            assert!(
                md.state != TransactionState::PrepareEpochFence
                    && md.state != TransactionState::Dead
            );
        }
        self.h.assert_replay_matches();
    }
}

/// Runs one walk: (transactions completed, producers fenced, loads).
fn run(seed: u64, steps: usize) -> (usize, usize, u32) {
    let mut sim = Sim::new(seed);
    for step in 0..steps {
        sim.step(&format!("seed {seed} step {step}"));
    }
    (sim.completed, sim.fenced.len(), sim.generation)
}

#[test]
fn random_walks_keep_the_invariants() {
    let (mut completed, mut fenced, mut loads) = (0, 0, 0);
    for seed in 0..100 {
        let (c, f, l) = run(seed, 400);
        (completed, fenced, loads) = (completed + c, fenced + f, loads + l);
    }
    // The walks must reach completions, fences and reloads to mean anything.
    assert!(
        completed > 500 && fenced > 100 && loads > 500,
        "completed {completed}, fenced {fenced}, loads {loads}"
    );
}
