//! Produce with rdkafka and read everything back: keys, headers, partitions, compression,
//! ListOffsets by timestamp.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fjord_e2e::{
    FjordNode, assign_from, bounded, consume_n, consumer, create_topic, expect_no_more, producer,
    topic_name,
};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const LIMIT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_keys_headers_across_partitions_read_back() {
    bounded(LIMIT, async {
        // Phase 1: a node and a 4-partition topic.
        let node = FjordNode::start();
        let topic = topic_name("roundtrip");
        const PARTITIONS: i32 = 4;
        const N: usize = 400;
        create_topic(&node.bootstrap(), &topic, PARTITIONS).await;

        // Phase 2: produce N records with acks=all, explicit partitions, keys and headers,
        // plus one record with no key and one with an empty value.
        let p = producer(&node.bootstrap(), "all", "none");
        let mut pending = Vec::new();
        for i in 0..N {
            let partition = (i % PARTITIONS as usize) as i32;
            let key = (i != 7).then(|| format!("key-{i}").into_bytes());
            let value = if i == 11 {
                Vec::new()
            } else {
                format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes()
            };
            let idx = i.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "idx",
                    value: Some(&idx),
                })
                .insert(Header {
                    key: "empty",
                    value: Some(""),
                })
                .insert(Header {
                    key: "null",
                    value: None::<&str>,
                });
            let mut rec = FutureRecord::to(&topic)
                .payload(&value)
                .partition(partition)
                .headers(headers);
            if let Some(k) = &key {
                rec = rec.key(k);
            }
            let fut = p.send_result(rec).map_err(|(e, _)| e).expect("enqueue");
            let sent = Sent {
                key,
                value: Some(value),
                headers: vec![
                    ("idx".into(), Some(idx.into_bytes())),
                    ("empty".into(), Some(Vec::new())),
                    ("null".into(), None),
                ],
            };
            pending.push((partition, sent, fut));
        }
        let mut by_offset: HashMap<(i32, i64), Sent> = HashMap::new();
        for (partition, sent, fut) in pending {
            let d = fut
                .await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
            assert_eq!(
                d.partition, partition,
                "delivered to the partition we chose"
            );
            assert!(
                by_offset.insert((d.partition, d.offset), sent).is_none(),
                "offset {:?} acked twice",
                (d.partition, d.offset)
            );
        }
        for part in 0..PARTITIONS {
            let mut offs: Vec<i64> = by_offset
                .keys()
                .filter(|(p, _)| *p == part)
                .map(|(_, o)| *o)
                .collect();
            offs.sort();
            let expect: Vec<i64> = (0..offs.len() as i64).collect();
            assert_eq!(
                offs, expect,
                "partition {part}: acked offsets are 0..n without gaps"
            );
        }

        // Phase 3: read every partition from the beginning and compare record by record.
        let c = consumer(&node.bootstrap());
        assign_from(
            &c,
            &topic,
            &(0..PARTITIONS).collect::<Vec<_>>(),
            Offset::Beginning,
        );
        let msgs = consume_n(&c, N, Duration::from_secs(30)).expect("consume all");
        expect_no_more(&c, Duration::from_millis(500)).expect("no extra records");
        let mut last: HashMap<i32, i64> = HashMap::new();
        for m in &msgs {
            let prev = last.insert(m.partition(), m.offset());
            assert!(
                prev.is_none_or(|p| p < m.offset()),
                "offsets increase within partition {}",
                m.partition()
            );
            let want = by_offset
                .get(&(m.partition(), m.offset()))
                .unwrap_or_else(|| panic!("unexpected record {}/{}", m.partition(), m.offset()));
            let got = Sent {
                key: m.key().map(<[u8]>::to_vec),
                value: Some(m.payload().map(<[u8]>::to_vec).unwrap_or_default()),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            assert_eq!(&got, want, "record at {}/{}", m.partition(), m.offset());
        }

        // Phase 4: watermarks agree.
        for part in 0..PARTITIONS {
            let (lo, hi) = c
                .fetch_watermarks(&topic, part, Duration::from_secs(10))
                .expect("watermarks");
            let n = by_offset.keys().filter(|(p, _)| *p == part).count() as i64;
            assert_eq!((lo, hi), (0, n), "watermarks of partition {part}");
        }
    })
    .await;
}

async fn compression_round_trip(codec: &str) {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name(&format!("codec-{codec}"));
        create_topic(&node.bootstrap(), &topic, 2).await;

        // Compressible values, batched by linger.ms so batches hold many records.
        let p = producer(&node.bootstrap(), "all", codec);
        const N: usize = 300;
        let values: Vec<String> = (0..N)
            .map(|i| format!("{codec} record {i} {}", "abcdefgh".repeat(64)))
            .collect();
        let mut futs = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let key = format!("k{i}");
            let rec = FutureRecord::to(&topic)
                .payload(v)
                .key(&key)
                .partition((i % 2) as i32);
            futs.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
        }
        for f in futs {
            f.await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("{codec} delivery failed: {e}"));
        }

        let c = consumer(&node.bootstrap());
        assign_from(&c, &topic, &[0, 1], Offset::Beginning);
        let msgs =
            consume_n(&c, N, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{codec}: {e:#}"));
        let mut got: Vec<(String, String)> = msgs
            .iter()
            .map(|m| {
                (
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), v.clone()))
            .collect();
        want.sort();
        assert_eq!(got.len(), want.len());
        assert!(
            got == want,
            "{codec}: records read back differ from those produced"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_gzip() {
    compression_round_trip("gzip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_snappy() {
    compression_round_trip("snappy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_lz4() {
    compression_round_trip("lz4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_zstd() {
    compression_round_trip("zstd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("timestamps");
        create_topic(&node.bootstrap(), &topic, 1).await;

        // Phase 1: 50 records with CreateTime base + 1000*i ms (base an hour ago).
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let base = now_ms - 3_600_000;
        const N: i64 = 50;
        let p = producer(&node.bootstrap(), "all", "none");
        let mut futs = Vec::new();
        for i in 0..N {
            let v = format!("t{i}");
            let rec = FutureRecord::<(), _>::to(&topic)
                .payload(&v)
                .partition(0)
                .timestamp(base + 1000 * i);
            futs.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
        }
        for (i, f) in futs.into_iter().enumerate() {
            let d = f
                .await
                .expect("delivery")
                .unwrap_or_else(|(e, _)| panic!("{e}"));
            assert_eq!(d.offset, i as i64);
        }

        // Phase 2: offsets_for_times returns the first offset with timestamp >= target.
        let c = consumer(&node.bootstrap());
        let cases: &[(i64, Offset)] = &[
            (base - 10_000, Offset::Offset(0)),  // before everything
            (base, Offset::Offset(0)),           // exact first
            (base + 10_000, Offset::Offset(10)), // exact match
            (base + 10_500, Offset::Offset(11)), // between 10 and 11
            (base + 1000 * (N - 1), Offset::Offset(N - 1)), // exact last
            (now_ms + 3_600_000, Offset::End),   // after everything: -1
        ];
        for &(ts, want) in cases {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, 0, Offset::Offset(ts))
                .unwrap();
            let res = c
                .offsets_for_times(tpl, Duration::from_secs(10))
                .expect("offsets_for_times");
            let got = res.find_partition(&topic, 0).expect("partition in result");
            assert!(
                got.error().is_ok(),
                "ListOffsets error for ts {ts}: {:?}",
                got.error()
            );
            assert_eq!(
                got.offset(),
                want,
                "offset for timestamp base{:+}",
                ts - base
            );
        }

        // Phase 3: records carry the timestamps we produced.
        assign_from(&c, &topic, &[0], Offset::Offset(10));
        let msgs = consume_n(&c, 5, Duration::from_secs(20)).expect("consume");
        for (j, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset(), 10 + j as i64);
            assert_eq!(
                m.timestamp().to_millis(),
                Some(base + 1000 * (10 + j as i64)),
                "timestamp of offset {}",
                m.offset()
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_on_produce_and_long_poll_fetch() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        // Topic is not created: the broker auto-creates it (num.partitions default 1).
        let topic = topic_name("auto");
        let c = consumer(&node.bootstrap());
        let p = producer(&node.bootstrap(), "1", "none");
        let d = p
            .send(
                FutureRecord::to(&topic).payload("first").key("k"),
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to auto-created topic: {e}"));
        assert_eq!((d.partition, d.offset), (0, 0));

        // A consumer waiting at the end receives a record produced later (long poll).
        assign_from(&c, &topic, &[0], Offset::Offset(1));
        expect_no_more(&c, Duration::from_millis(500)).expect("nothing past offset 0 yet");
        let p2 = p.clone();
        let t2 = topic.clone();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            p2.send(
                FutureRecord::to(&t2).payload("second").key("k"),
                Duration::from_secs(20),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
        });
        let msgs = tokio::task::block_in_place(|| consume_n(&c, 1, Duration::from_secs(20)))
            .expect("long poll");
        later.await.unwrap().expect("second produce");
        assert_eq!(msgs[0].payload(), Some(&b"second"[..]));
        assert_eq!(msgs[0].offset(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_0_and_acks_1_records_arrive() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("acks01");
        create_topic(&node.bootstrap(), &topic, 1).await;
        for acks in ["0", "1"] {
            let p = producer(&node.bootstrap(), acks, "none");
            let mut futs = Vec::new();
            for i in 0..100 {
                let v = format!("acks{acks}-{i}");
                let rec = FutureRecord::<(), _>::to(&topic).payload(&v).partition(0);
                futs.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
            }
            for f in futs {
                f.await
                    .expect("delivery")
                    .unwrap_or_else(|(e, _)| panic!("acks={acks}: {e}"));
            }
            p.flush(Duration::from_secs(10)).expect("flush");
        }
        // acks=0 has no answer to wait for; on loopback every record still arrives, in order.
        let c = consumer(&node.bootstrap());
        assign_from(&c, &topic, &[0], Offset::Beginning);
        let msgs = consume_n(&c, 200, Duration::from_secs(30)).expect("consume");
        let got: Vec<String> = msgs
            .iter()
            .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            .collect();
        let want: Vec<String> = ["0", "1"]
            .iter()
            .flat_map(|a| (0..100).map(move |i| format!("acks{a}-{i}")))
            .collect();
        assert_eq!(got, want);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_fetch_resets_to_earliest() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("reset");
        create_topic(&node.bootstrap(), &topic, 1).await;
        let p = producer(&node.bootstrap(), "all", "none");
        for i in 0..10 {
            let v = format!("r{i}");
            p.send(
                FutureRecord::<(), _>::to(&topic).payload(&v).partition(0),
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("{e}"));
        }
        // Fetch at offset 1000 answers OFFSET_OUT_OF_RANGE; auto.offset.reset=earliest then
        // asks ListOffsets for the earliest offset and reads from 0.
        let c = consumer(&node.bootstrap());
        assign_from(&c, &topic, &[0], Offset::Offset(1000));
        let msgs = tokio::task::block_in_place(|| consume_n(&c, 10, Duration::from_secs(20)))
            .expect("reset and read");
        let offsets: Vec<i64> = msgs.iter().map(|m| m.offset()).collect();
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_round_trip() {
    bounded(LIMIT, async {
        let node = FjordNode::start();
        let topic = topic_name("large");
        create_topic(&node.bootstrap(), &topic, 1).await;
        // Up to ~900 KB values (below Kafka's default 1 MB max.message.bytes), uncompressed
        // and zstd, so fetch responses span several large batches.
        let sizes = [1usize, 100_000, 500_000, 900_000];
        let mut want = Vec::new();
        for codec in ["none", "zstd"] {
            let p = producer(&node.bootstrap(), "all", codec);
            for (j, &n) in sizes.iter().enumerate() {
                let v: Vec<u8> = (0..n).map(|i| (i * 31 + j * 7) as u8).collect();
                p.send(
                    FutureRecord::<(), _>::to(&topic).payload(&v).partition(0),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("{codec} {n} bytes: {e}"));
                want.push(v);
            }
        }
        let c = consumer(&node.bootstrap());
        assign_from(&c, &topic, &[0], Offset::Beginning);
        let msgs =
            tokio::task::block_in_place(|| consume_n(&c, want.len(), Duration::from_secs(30)))
                .expect("consume large");
        for (m, w) in msgs.iter().zip(&want) {
            assert!(
                m.payload() == Some(&w[..]),
                "record at offset {} ({} bytes) differs",
                m.offset(),
                w.len()
            );
        }
    })
    .await;
}
