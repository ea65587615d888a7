//! Scenario tests of each transaction coordinator API, with replay checks.

use super::TransactionResult::{Abort, Commit};
use super::TransactionState::*;
use super::test_support::*;
use super::*;

fn pe(producer_id: i64, epoch: i16) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch { producer_id, epoch }
}

#[test]
fn init_producer_id_allocates_then_bumps() {
    let mut h = Harness::new();
    assert_eq!(h.init("t", None), Ok(pe(1000, 0)));
    assert_eq!(h.coord.get("t").unwrap().state, Empty);
    assert_eq!(h.init("t", None), Ok(pe(1000, 1)));
    assert_eq!(h.log.len(), 2);
    h.assert_replay_matches();
}

#[test]
fn init_producer_id_validates_its_request() {
    let mut h = Harness::new();
    assert_eq!(h.init("", None), Err(TxnError::EmptyTransactionalId));
    let req = |timeout| InitProducerIdRequest {
        transactional_id: Some("t".into()),
        transaction_timeout_ms: timeout,
        expected: None,
    };
    for bad in [0, -1, 900_001] {
        let out = h.coord.init_producer_id(req(bad), &mut h.alloc, h.now);
        assert!(matches!(
            out.reply,
            Err(TxnError::InvalidTransactionTimeout { .. })
        ));
        assert!(out.records.is_empty());
    }
    // An idempotent producer just gets an id.
    let idempotent = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: 0,
        expected: None,
    };
    let out = h
        .coord
        .init_producer_id(idempotent.clone(), &mut h.alloc, h.now);
    assert_eq!(out.reply, Ok(pe(1000, 0)));
    assert!(out.records.is_empty());
    h.alloc.exhausted = true;
    let out = h.coord.init_producer_id(idempotent, &mut h.alloc, h.now);
    assert_eq!(out.reply, Err(TxnError::CoordinatorLoadInProgress));
    assert_eq!(h.init("t", None), Err(TxnError::CoordinatorLoadInProgress));
    assert!(h.coord.get("t").is_none());
}

#[test]
fn commit_writes_prepare_then_markers_then_complete() {
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    let p = h.producer("t");
    h.add(&p, &[("a", 0)]).unwrap();
    h.now += 5;
    h.add(&p, &[("a", 1), ("b", 0)]).unwrap();
    let md = h.coord.get("t").unwrap();
    assert_eq!(md.state, Ongoing);
    assert_eq!(md.start_timestamp_ms, 1_000_000);
    assert_eq!(md.partitions, tps(&[("a", 0), ("a", 1), ("b", 0)]));
    // Adding partitions already in the transaction writes nothing.
    let out = h.coord.add_partitions(&p, &tps(&[("a", 0)]), h.now);
    assert_eq!((out.reply, out.records.len()), (Ok(()), 0));

    assert_eq!(h.end(&p, Commit), Ok(pe(1000, 0)));
    assert_eq!(h.coord.get("t").unwrap().state, PrepareCommit);
    assert!(matches!(
        h.log.last(),
        Some(TxnRecord::Metadata { value, .. }) if value.state == PrepareCommit
    ));
    assert_eq!(h.markers.len(), 1);
    let m = h.markers[0].clone();
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.result),
        (1000, 0, Commit)
    );
    assert_eq!(m.partitions, tps(&[("a", 0), ("a", 1), ("b", 0)]));

    // Complete only after the last partition is acknowledged.
    for (i, partition) in m.partitions.iter().enumerate() {
        assert_eq!(h.coord.get("t").unwrap().state, PrepareCommit);
        let out = h.coord.marker_written("t", 1000, 0, partition, h.now);
        assert_eq!(out.records.len(), usize::from(i == 2));
        h.take(out);
    }
    let md = h.coord.get("t").unwrap();
    assert_eq!(md.state, CompleteCommit);
    assert!(md.partitions.is_empty());
    // Late, stale or repeated acks change nothing.
    let out = h.coord.marker_written("t", 1000, 0, &tp("a", 0), h.now);
    assert!(out.records.is_empty());
    h.assert_replay_matches();

    // A retried EndTxn(commit) succeeds; an abort now is invalid.
    assert_eq!(h.end(&p, Commit), Ok(pe(1000, 0)));
    assert_eq!(
        h.end(&p, Abort),
        Err(TxnError::InvalidTxnState {
            state: CompleteCommit
        })
    );
    // The next transaction starts from CompleteCommit.
    h.add(&p, &[("c", 0)]).unwrap();
    assert_eq!(h.coord.get("t").unwrap().partitions, tps(&[("c", 0)]));
}

#[test]
fn end_txn_errors_follow_the_state() {
    let mut h = Harness::new();
    let unknown = TxnProducer {
        transactional_id: "nope".into(),
        producer_id: 1,
        producer_epoch: 0,
    };
    assert_eq!(
        h.end(&unknown, Commit),
        Err(TxnError::InvalidProducerIdMapping { producer_id: 1 })
    );
    h.init("t", None).unwrap();
    let p = h.producer("t");
    assert_eq!(
        h.end(&p, Commit),
        Err(TxnError::InvalidTxnState { state: Empty })
    );
    let wrong_id = TxnProducer {
        producer_id: 7,
        ..p.clone()
    };
    assert_eq!(
        h.end(&wrong_id, Commit),
        Err(TxnError::InvalidProducerIdMapping { producer_id: 7 })
    );
    assert_eq!(
        h.add(&wrong_id, &[("a", 0)]),
        Err(TxnError::InvalidProducerIdMapping { producer_id: 7 })
    );
    h.add(&p, &[("a", 0)]).unwrap();
    h.end(&p, Commit).unwrap();
    let concurrent = Err(TxnError::ConcurrentTransactions {
        state: PrepareCommit,
    });
    assert_eq!(h.end(&p, Commit), concurrent.clone().map(|()| pe(0, 0)));
    assert_eq!(
        h.end(&p, Abort),
        Err(TxnError::InvalidTxnState {
            state: PrepareCommit
        })
    );
    assert_eq!(h.add(&p, &[("b", 0)]), concurrent.clone());
    assert_eq!(h.init("t", None), concurrent.map(|()| pe(0, 0)));
    let records = h.log.len();
    h.ack_all_markers();
    assert_eq!(h.log.len(), records + 1);
    assert_eq!(h.init("t", None), Ok(pe(1000, 1)));
}

#[test]
fn init_producer_id_fences_an_ongoing_transaction() {
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    let old = h.producer("t");
    h.add(&old, &[("a", 0), ("b", 1)]).unwrap();

    // A new producer with the same id: the open transaction is aborted at
    // epoch 1, never handed out, and the caller retries.
    assert_eq!(
        h.init("t", None),
        Err(TxnError::ConcurrentTransactions { state: Ongoing })
    );
    let md = h.coord.get("t").unwrap();
    assert_eq!((md.state, md.producer_epoch), (PrepareAbort, 1));
    assert_eq!(h.markers.len(), 1);
    assert_eq!(
        (h.markers[0].result, h.markers[0].producer_epoch),
        (Abort, 1)
    );
    assert_eq!(h.markers[0].partitions, tps(&[("a", 0), ("b", 1)]));
    let fenced = Err(TxnError::ProducerFenced {
        epoch: 0,
        current: 1,
    });
    assert_eq!(h.add(&old, &[("c", 0)]), fenced.clone());
    assert_eq!(h.end(&old, Commit), fenced.clone().map(|()| pe(0, 0)));
    assert_eq!(
        h.init("t", None),
        Err(TxnError::ConcurrentTransactions {
            state: PrepareAbort
        })
    );
    h.ack_all_markers();
    assert_eq!(h.coord.get("t").unwrap().state, CompleteAbort);
    assert_eq!(h.init("t", None), Ok(pe(1000, 2)));
    assert_eq!(
        h.add(&old, &[("c", 0)]),
        Err(TxnError::ProducerFenced {
            epoch: 0,
            current: 2
        })
    );
    h.assert_replay_matches();
}

#[test]
fn kip_360_expected_producer_id_and_epoch() {
    let mut h = Harness::new();
    assert_eq!(h.init("t", Some(pe(-1, -1))), Ok(pe(1000, 0)));
    // The producer bumps its own epoch after an error.
    assert_eq!(h.init("t", Some(pe(1000, 0))), Ok(pe(1000, 1)));
    assert_eq!(h.coord.get("t").unwrap().last_producer_epoch, 0);
    // Its retry (the answer was lost) gets the same epoch again.
    assert_eq!(h.init("t", Some(pe(1000, 0))), Ok(pe(1000, 1)));
    // Another producer takes over without expectations: the last epoch
    // is forgotten, so the first producer is now fenced.
    assert_eq!(h.init("t", None), Ok(pe(1000, 2)));
    assert_eq!(
        h.init("t", Some(pe(1000, 0))),
        Err(TxnError::ProducerFenced {
            epoch: 0,
            current: 2
        })
    );
    assert_eq!(
        h.init("t", Some(pe(999, 2))),
        Err(TxnError::ProducerFenced {
            epoch: 2,
            current: 2
        })
    );
    h.assert_replay_matches();
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    let mut md = h.coord.get("t").unwrap().clone();
    md.producer_epoch = i16::MAX - 2;
    h.coord.replay(md.to_record());
    h.log.push(md.to_record());
    assert_eq!(h.init("t", None), Ok(pe(1000, i16::MAX - 1)));
    // Exhausted: a new producer id, the old one remembered.
    assert_eq!(h.init("t", Some(pe(1000, i16::MAX - 1))), Ok(pe(1001, 0)));
    let md = h.coord.get("t").unwrap();
    assert_eq!(
        (md.previous_producer_id, md.last_producer_epoch),
        (1000, i16::MAX - 1)
    );
    // The retry with the old id and exhausted epoch gets the same answer.
    assert_eq!(h.init("t", Some(pe(1000, i16::MAX - 1))), Ok(pe(1001, 0)));
    h.assert_replay_matches();
    // A fence at i16::MAX - 1 reaches i16::MAX; the retry then rotates.
    let mut md = h.coord.get("t").unwrap().clone();
    md.producer_epoch = i16::MAX - 1;
    h.coord.replay(md.to_record());
    h.log.push(md.to_record());
    let p = h.producer("t");
    h.add(&p, &[("a", 0)]).unwrap();
    assert!(h.init("t", None).is_err());
    assert_eq!(h.coord.get("t").unwrap().producer_epoch, i16::MAX);
    h.ack_all_markers();
    assert_eq!(h.init("t", None), Ok(pe(1002, 0)));
}

#[test]
fn verify_only_answers_per_partition() {
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    let p = h.producer("t");
    h.add(&p, &[("a", 0)]).unwrap();
    let ask = tps(&[("a", 0), ("a", 1)]);
    assert_eq!(
        h.coord.verify_partitions(&p, &ask),
        vec![
            (tp("a", 0), Ok(())),
            (tp("a", 1), Err(TxnError::TransactionAbortable))
        ]
    );
    let stale = TxnProducer {
        producer_epoch: -5,
        ..p.clone()
    };
    assert!(
        h.coord
            .verify_partitions(&stale, &ask)
            .iter()
            .all(|(_, r)| matches!(r, Err(TxnError::ProducerFenced { .. })))
    );
    h.end(&p, Abort).unwrap();
    assert!(h.coord.verify_partitions(&p, &ask).iter().all(|(_, r)| *r
        == Err(TxnError::ConcurrentTransactions {
            state: PrepareAbort
        })));
    let unknown = TxnProducer {
        transactional_id: "u".into(),
        ..p
    };
    assert!(
        h.coord
            .verify_partitions(&unknown, &ask)
            .iter()
            .all(|(_, r)| matches!(r, Err(TxnError::InvalidProducerIdMapping { .. })))
    );
    assert!(
        h.markers.len() == 1 && h.log.len() == 3,
        "verification writes nothing"
    );
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    let p = h.producer("t");
    let out = h.coord.add_offsets(&p, "my-group", h.now);
    assert_eq!(h.take(out), Ok(()));
    // partition_for("my-group", 50) is 12 (see offsets_topic).
    assert_eq!(
        h.coord.get("t").unwrap().partitions,
        tps(&[("__consumer_offsets", 12)])
    );
}

#[test]
fn timed_out_transactions_are_aborted_and_their_producer_fenced() {
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    h.init("idle", None).unwrap();
    let p = h.producer("t");
    h.add(&p, &[("a", 0)]).unwrap();
    assert_eq!(h.coord.next_deadline(), Some(1_000_000 + 60_000 + 1));
    h.now += 60_000;
    h.tick();
    assert_eq!(h.coord.get("t").unwrap().state, Ongoing);
    h.now += 1;
    h.tick();
    let md = h.coord.get("t").unwrap();
    assert_eq!((md.state, md.producer_epoch), (PrepareAbort, 1));
    assert_eq!(h.markers.len(), 1);
    assert_eq!(h.coord.get("idle").unwrap().state, Empty);
    assert_eq!(
        h.end(&p, Commit),
        Err(TxnError::ProducerFenced {
            epoch: 0,
            current: 1
        })
    );
    h.ack_all_markers();
    assert_eq!(h.coord.get("t").unwrap().state, CompleteAbort);
    assert_eq!(
        h.init("t", Some(pe(1000, 0))),
        Err(TxnError::ProducerFenced {
            epoch: 0,
            current: 1
        })
    );
    h.assert_replay_matches();
}

#[test]
fn idle_transactional_ids_expire_with_a_tombstone() {
    let config = TxnConfig {
        transactional_id_expiration_ms: 10_000,
        ..TxnConfig::default()
    };
    let mut h = Harness::with_config(config);
    h.init("idle", None).unwrap();
    h.init("busy", None).unwrap();
    let p = h.producer("busy");
    h.now += 5_000;
    h.add(&p, &[("a", 0)]).unwrap();
    h.end(&p, Commit).unwrap();
    h.now += 5_000;
    h.tick();
    assert!(h.coord.get("idle").is_none());
    assert_eq!(
        h.log.last(),
        Some(&TxnRecord::Tombstone {
            transactional_id: "idle".into()
        })
    );
    assert_eq!(
        h.coord.describe("idle"),
        Err(TxnError::TransactionalIdNotFound)
    );
    // A Prepare* id never expires; once complete, it waits its own time.
    h.now += 50_000;
    h.tick();
    assert_eq!(h.coord.get("busy").unwrap().state, PrepareCommit);
    h.ack_all_markers();
    h.now += 9_999;
    h.tick();
    assert!(h.coord.get("busy").is_some());
    h.now += 1;
    h.tick();
    assert!(h.coord.get("busy").is_none());
    h.assert_replay_matches();
    // An expired id starts over with a new producer id.
    assert_eq!(h.init("idle", None), Ok(pe(1002, 0)));
}

#[test]
fn describe_and_list() {
    let mut h = Harness::new();
    h.init("a", None).unwrap();
    h.init("b", None).unwrap();
    let pb = h.producer("b");
    h.now += 100;
    h.add(&pb, &[("x", 3)]).unwrap();
    assert_eq!(
        h.coord.describe("b"),
        Ok(TransactionDescription {
            transactional_id: "b".into(),
            state: Ongoing,
            timeout_ms: 60_000,
            start_timestamp_ms: 1_000_100,
            producer_id: 1001,
            producer_epoch: 0,
            partitions: tps(&[("x", 3)]),
        })
    );
    assert_eq!(
        h.coord.describe("zz"),
        Err(TxnError::TransactionalIdNotFound)
    );
    let ids = |filter: ListTransactionsFilter, now| -> (Vec<String>, Vec<String>) {
        let data = h.coord.list(&filter, now);
        (
            data.transactions
                .into_iter()
                .map(|t| t.transactional_id)
                .collect(),
            data.unknown_state_filters,
        )
    };
    let all = ListTransactionsFilter {
        duration_ms: -1,
        ..Default::default()
    };
    assert_eq!(
        ids(all.clone(), h.now),
        (vec!["a".into(), "b".into()], vec![])
    );
    let ongoing = ListTransactionsFilter {
        states: vec!["Ongoing".into(), "Bogus".into()],
        ..all.clone()
    };
    assert_eq!(
        ids(ongoing, h.now),
        (vec!["b".into()], vec!["Bogus".into()])
    );
    let by_pid = ListTransactionsFilter {
        producer_ids: [1000].into(),
        ..all.clone()
    };
    assert_eq!(ids(by_pid, h.now).0, vec!["a".to_string()]);
    let long = ListTransactionsFilter {
        states: vec!["Ongoing".into()],
        duration_ms: 500,
        ..all
    };
    assert!(ids(long.clone(), h.now + 500).0.is_empty());
    assert_eq!(ids(long, h.now + 501).0, vec!["b".to_string()]);
}

#[test]
fn a_load_resumes_the_markers_of_prepared_transactions() {
    let mut h = Harness::new();
    for id in ["c", "a", "o"] {
        h.init(id, None).unwrap();
        let p = h.producer(id);
        h.add(&p, &[("t", 0), ("t", 1)]).unwrap();
    }
    let (pc, pa) = (h.producer("c"), h.producer("a"));
    h.end(&pc, Commit).unwrap();
    h.end(&pa, Abort).unwrap();
    // The coordinator moves before any marker is acknowledged.
    h.markers.clear();
    let (loaded, markers) = h.reloaded();
    h.coord = loaded;
    h.assert_replay_matches();
    let resumed: Vec<_> = markers
        .iter()
        .map(|m| (m.transactional_id.as_str(), m.result, m.partitions.len()))
        .collect();
    assert_eq!(resumed, vec![("a", Abort, 2), ("c", Commit, 2)]);
    h.markers = markers;
    h.ack_all_markers();
    assert_eq!(h.coord.get("c").unwrap().state, CompleteCommit);
    assert_eq!(h.coord.get("a").unwrap().state, CompleteAbort);
    assert_eq!(h.coord.get("o").unwrap().state, Ongoing);
    h.assert_replay_matches();
    h.coord.unload();
    assert!(h.coord.transactions().next().is_none());
}

#[test]
fn kip_890_epoch_bump_per_transaction_is_behind_a_flag() {
    // Off (the default): EndTxn v5 keeps the epoch.
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    let p = h.producer("t");
    h.add(&p, &[("a", 0)]).unwrap();
    let req = EndTxnRequest {
        transactional_id: "t".into(),
        producer_id: p.producer_id,
        producer_epoch: p.producer_epoch,
        result: Commit,
        client_transaction_version: 2,
    };
    let out = h.coord.end_txn(&req, &mut h.alloc, h.now);
    assert_eq!(h.take(out), Ok(pe(1000, 0)));

    // On: the epoch bumps at EndTxn, and at exhaustion the next producer id
    // takes over once the markers are written.
    let config = TxnConfig {
        epoch_bump_per_transaction: true,
        ..TxnConfig::default()
    };
    let mut h = Harness::with_config(config);
    h.init("t", None).unwrap();
    let p = h.producer("t");
    h.add(&p, &[("a", 0)]).unwrap();
    let out = h.coord.end_txn(&req, &mut h.alloc, h.now);
    assert_eq!(h.take(out), Ok(pe(1000, 1)));
    assert_eq!(h.markers[0].producer_epoch, 1);
    h.ack_all_markers();
    let mut md = h.coord.get("t").unwrap().clone();
    md.producer_epoch = i16::MAX - 1;
    h.coord.replay(md.to_record());
    h.log.push(md.to_record());
    let p = h.producer("t");
    h.add(&p, &[("a", 0)]).unwrap();
    let req = EndTxnRequest {
        producer_epoch: i16::MAX - 1,
        ..req
    };
    let out = h.coord.end_txn(&req, &mut h.alloc, h.now);
    assert_eq!(h.take(out), Ok(pe(1001, 0)));
    assert_eq!(h.coord.get("t").unwrap().next_producer_id, 1001);
    h.assert_replay_matches();
    h.ack_all_markers();
    let md = h.coord.get("t").unwrap();
    assert_eq!(
        (md.producer_id, md.producer_epoch, md.previous_producer_id),
        (1001, 0, 1000)
    );
    h.assert_replay_matches();
}

#[test]
fn a_transaction_without_partitions_completes_at_once() {
    let mut h = Harness::new();
    h.init("t", None).unwrap();
    let p = h.producer("t");
    h.add(&p, &[]).unwrap();
    assert_eq!(h.coord.get("t").unwrap().state, Ongoing);
    assert_eq!(h.end(&p, Commit), Ok(pe(1000, 0)));
    assert!(h.markers.is_empty());
    assert_eq!(h.coord.get("t").unwrap().state, CompleteCommit);
    let states: Vec<_> = h.log[h.log.len() - 2..]
        .iter()
        .map(|r| match r {
            TxnRecord::Metadata { value, .. } => value.state,
            TxnRecord::Tombstone { .. } => Dead,
        })
        .collect();
    assert_eq!(states, vec![PrepareCommit, CompleteCommit]);
    h.assert_replay_matches();

    // A PrepareAbort without partitions found by a load completes then.
    let mut md = h.coord.get("t").unwrap().clone();
    md.state = PrepareAbort;
    let mut loaded = TransactionCoordinator::new(TxnConfig::default());
    loaded.replay(md.to_record());
    let out = loaded.complete_load(h.now);
    assert!(out.markers.is_empty());
    assert!(matches!(
        &out.records[..],
        [TxnRecord::Metadata { value, .. }] if value.state == CompleteAbort
    ));
}

/// What each API answers in each persisted state (Kafka's
/// `handleEndTransaction`, `handleAddPartitionsToTransaction`,
/// `handleInitProducerId`).
#[test]
fn api_answers_by_state() {
    #[derive(Debug, PartialEq)]
    enum A {
        Done,
        Invalid,
        Concurrent,
    }
    fn kind<T>(r: &Result<T, TxnError>) -> A {
        match r {
            Ok(_) => A::Done,
            Err(TxnError::InvalidTxnState { .. }) => A::Invalid,
            Err(TxnError::ConcurrentTransactions { .. }) => A::Concurrent,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    use A::*;
    // state, EndTxn(commit), EndTxn(abort), AddPartitions, InitProducerId
    let table = [
        (Empty, Invalid, Invalid, Done, Done),
        (Ongoing, Done, Done, Done, Concurrent),
        (PrepareCommit, Concurrent, Invalid, Concurrent, Concurrent),
        (PrepareAbort, Invalid, Concurrent, Concurrent, Concurrent),
        (CompleteCommit, Done, Invalid, Done, Done),
        (CompleteAbort, Invalid, Done, Done, Done),
    ];
    for (state, commit, abort, add, init) in table {
        let in_state = || {
            let mut h = Harness::new();
            h.init("t", None).unwrap();
            let mut md = h.coord.get("t").unwrap().clone();
            md.state = state;
            if !state.is_idle() {
                md.partitions = tps(&[("a", 0)]);
            }
            h.coord.replay(md.to_record());
            let p = h.producer("t");
            (h, p)
        };
        let (mut h, p) = in_state();
        assert_eq!(kind(&h.end(&p, Commit)), commit, "{state}: commit");
        let (mut h, p) = in_state();
        assert_eq!(kind(&h.end(&p, Abort)), abort, "{state}: abort");
        let (mut h, p) = in_state();
        assert_eq!(kind(&h.add(&p, &[("b", 0)])), add, "{state}: add");
        let (mut h, _) = in_state();
        assert_eq!(kind(&h.init("t", None)), init, "{state}: init");
    }
}
