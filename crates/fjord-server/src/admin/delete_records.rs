//! `fjord topic delete-records`: move partitions' log start offsets forward,
//! like `kafka-delete-records.sh`. The offsets come from flags (one
//! partition) or from Kafka's JSON offsets file
//! (`{"partitions":[{"topic":"t","partition":0,"offset":5}],"version":1}`,
//! offset -1 meaning the high watermark). Each partition's request goes to
//! its leader; the answer is its low watermark (the smallest log start
//! offset over the in-sync replicas).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use kafka_protocol::messages::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};

use super::cluster::Cluster;
use super::error::KafkaError;
use super::topic::topic_name;

/// One partition to delete records of.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct DeletionTarget {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Delete every record below this offset; -1: below the high watermark.
    pub(crate) offset: i64,
}

/// Kafka's offsets file (`--offset-json-file` of `kafka-delete-records.sh`).
#[derive(serde::Deserialize)]
struct OffsetsFile {
    partitions: Vec<DeletionTarget>,
    #[serde(default)]
    version: Option<i32>,
}

/// Parse Kafka's offsets JSON; a partition named twice is an error, as there.
pub(crate) fn parse_offsets_json(text: &str) -> Result<Vec<DeletionTarget>> {
    let file: OffsetsFile = serde_json::from_str(text).context("parse the offsets JSON")?;
    if let Some(version) = file.version
        && version != 1
    {
        bail!("unsupported offsets JSON version {version} (expected 1)");
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in &file.partitions {
        if !seen.insert((t.topic.clone(), t.partition)) {
            bail!(
                "offsets JSON names partition {}-{} more than once",
                t.topic,
                t.partition
            );
        }
    }
    if file.partitions.is_empty() {
        bail!("the offsets JSON names no partition");
    }
    Ok(file.partitions)
}

pub(crate) fn read_offsets_file(path: &Path) -> Result<Vec<DeletionTarget>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read offsets file {}", path.display()))?;
    parse_offsets_json(&text)
}

/// What one partition's deletion came to: its low watermark or an error.
pub(crate) type Outcome = (DeletionTarget, Result<i64, KafkaError>);

/// Send each target to its partition's leader and collect the answers.
pub(crate) async fn delete_records(
    cluster: &mut Cluster,
    targets: Vec<DeletionTarget>,
    server_timeout_ms: i32,
) -> Result<Vec<Outcome>> {
    // Group by leader: one request per broker.
    let mut by_leader: BTreeMap<i32, Vec<DeletionTarget>> = BTreeMap::new();
    for t in targets {
        let op = format!("delete records of {}-{}", t.topic, t.partition);
        let layout = cluster.topic_ready(&t.topic, &op).await?;
        let partition = layout
            .partitions
            .get(&t.partition)
            .ok_or_else(|| anyhow!("{op}: the topic has no partition {}", t.partition))?;
        by_leader.entry(partition.leader).or_default().push(t);
    }
    let mut outcomes = Vec::new();
    for (leader, targets) in by_leader {
        let mut topics: Vec<DeleteRecordsTopic> = Vec::new();
        for t in &targets {
            let p = DeleteRecordsPartition::default()
                .with_partition_index(t.partition)
                .with_offset(t.offset);
            match topics.iter_mut().find(|x| x.name.0.as_str() == t.topic) {
                Some(topic) => topic.partitions.push(p),
                None => topics.push(
                    DeleteRecordsTopic::default()
                        .with_name(topic_name(&t.topic))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let request = DeleteRecordsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(server_timeout_ms);
        let response = cluster
            .broker(leader)
            .await?
            .send(&request)
            .await
            .with_context(|| format!("delete records at broker {leader}"))?;
        for t in targets {
            let op = format!("delete records of {}-{}", t.topic, t.partition);
            let answer = response
                .topics
                .iter()
                .filter(|x| x.name.0.as_str() == t.topic)
                .flat_map(|x| &x.partitions)
                .find(|p| p.partition_index == t.partition)
                .ok_or_else(|| anyhow!("{op}: partition missing from the response"))?;
            let result = KafkaError::check(answer.error_code, &op).map(|()| answer.low_watermark);
            outcomes.push((t, result));
        }
    }
    Ok(outcomes)
}

/// Kafka's report: one line per partition.
pub(crate) fn format_outcomes(outcomes: &[Outcome]) -> String {
    let mut out = String::from("Records delete operation completed:\n");
    for (t, result) in outcomes {
        match result {
            Ok(lw) => out.push_str(&format!(
                "partition: {}-{}\tlow_watermark: {lw}\n",
                t.topic, t.partition
            )),
            Err(err) => out.push_str(&format!(
                "partition: {}-{}\terror: {err}\n",
                t.topic, t.partition
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_json_as_kafka_writes_it() {
        let parsed = parse_offsets_json(
            r#"{"partitions":[{"topic":"a","partition":0,"offset":5},
                {"topic":"b","partition":2,"offset":-1}],"version":1}"#,
        )
        .expect("valid");
        assert_eq!(
            parsed,
            vec![
                DeletionTarget {
                    topic: "a".into(),
                    partition: 0,
                    offset: 5
                },
                DeletionTarget {
                    topic: "b".into(),
                    partition: 2,
                    offset: -1
                },
            ]
        );
        let dup = r#"{"partitions":[{"topic":"a","partition":0,"offset":5},
            {"topic":"a","partition":0,"offset":6}]}"#;
        assert!(
            parse_offsets_json(dup)
                .expect_err("duplicate")
                .to_string()
                .contains("more than once")
        );
        assert!(parse_offsets_json(r#"{"partitions":[]}"#).is_err());
        assert!(parse_offsets_json(r#"{"partitions":[],"version":2}"#).is_err());
        assert!(parse_offsets_json("not json").is_err());
    }

    #[test]
    fn outcomes_print_a_line_per_partition() {
        let t = |p| DeletionTarget {
            topic: "t".into(),
            partition: p,
            offset: 3,
        };
        let err = KafkaError::check(1, "delete records of t-1").expect_err("error");
        let out = format_outcomes(&[(t(0), Ok(3)), (t(1), Err(err))]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "partition: t-0\tlow_watermark: 3");
        assert!(lines[2].starts_with("partition: t-1\terror: "), "{out}");
    }
}
