//! Pure parts of `fjord group describe` and `fjord group reset-offsets`:
//! decoding consumer-protocol assignments, lag arithmetic, and the tables
//! printed, so they can be tested without a broker.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{Result, bail, ensure};

use super::table::render_table;

/// `-` for absent values, as `kafka-consumer-groups.sh` prints them.
const NONE: &str = "-";

/// A member's assignment as the `consumer` protocol encodes it
/// (`ConsumerProtocolAssignment`, versions 0 to 3 share one layout):
/// `int16 version`, `[topic: string, partitions: [int32]]`,
/// `user_data: nullable bytes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub(crate) version: i16,
    /// Topic to its assigned partitions, sorted.
    pub(crate) partitions: BTreeMap<String, BTreeSet<i32>>,
    pub(crate) user_data: Option<Vec<u8>>,
}

impl Assignment {
    /// The number of assigned partitions over all topics.
    pub(crate) fn partition_count(&self) -> usize {
        self.partitions.values().map(BTreeSet::len).sum()
    }

    /// `t1:0,1;t2:3`, or `-` when nothing is assigned.
    pub(crate) fn summary(&self) -> String {
        if self.partitions.is_empty() {
            return NONE.to_owned();
        }
        self.partitions
            .iter()
            .map(|(topic, ps)| {
                let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
                format!("{topic}:{}", ps.join(","))
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// A big-endian reader over assignment bytes with bounds checks.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        let Some(end) = end else {
            bail!(
                "truncated assignment: {what} needs {n} bytes at offset {}, {} left",
                self.pos,
                self.buf.len() - self.pos
            );
        };
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn i16(&mut self, what: &str) -> Result<i16> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.i16(what)?;
        ensure!(len >= 0, "null {what} in assignment");
        let bytes = self.take(len as usize, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Decodes a `consumer` protocol assignment. Empty bytes (a member that
/// has joined but not yet synced) are an empty assignment. Versions above
/// 3 are read with the v3 layout (Kafka's rule: newer versions only append
/// fields), ignoring what follows.
pub(crate) fn decode_assignment(bytes: &[u8]) -> Result<Assignment> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.i16("version")?;
    ensure!(version >= 0, "invalid assignment version {version}");
    let topics = r.i32("topic count")?;
    ensure!(topics >= 0, "invalid topic count {topics} in assignment");
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for _ in 0..topics {
        let topic = r.string("topic name")?;
        let count = r.i32("partition count")?;
        ensure!(
            count >= 0,
            "invalid partition count {count} for topic {topic} in assignment"
        );
        // Bound the count by the bytes present before allocating.
        ensure!(
            (count as usize).saturating_mul(4) <= r.remaining(),
            "truncated assignment: {count} partitions of topic {topic} announced, {} bytes left",
            r.remaining()
        );
        let set = partitions.entry(topic).or_default();
        for _ in 0..count {
            set.insert(r.i32("partition")?);
        }
    }
    // Some clients omit user data entirely; treat that like null.
    let user_data = if r.remaining() == 0 {
        None
    } else {
        let len = r.i32("user data length")?;
        if len < 0 {
            None
        } else {
            Some(r.take(len as usize, "user data")?.to_vec())
        }
    };
    ensure!(
        version > 3 || r.remaining() == 0,
        "{} unexpected trailing bytes after a v{version} assignment",
        r.remaining()
    );
    Ok(Assignment {
        version,
        partitions,
        user_data,
    })
}

/// Lag as `kafka-consumer-groups.sh` computes it: log end minus the
/// committed offset, when both are known (a committed offset of -1 means
/// none). Not clamped: a negative lag shows a commit past the log end.
pub(crate) fn lag(committed: Option<i64>, log_end: Option<i64>) -> Option<i64> {
    match (committed.filter(|c| *c >= 0), log_end.filter(|e| *e >= 0)) {
        (Some(c), Some(e)) => Some(e - c),
        _ => None,
    }
}

/// A group member as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberInfo {
    pub(crate) member_id: String,
    pub(crate) client_id: String,
    pub(crate) host: String,
    /// `None` when the assignment could not be decoded (the reason).
    pub(crate) assignment: std::result::Result<Assignment, String>,
}

/// One row of the partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionRow {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) committed: Option<i64>,
    pub(crate) log_end: Option<i64>,
    /// Index into the members list of the member that owns the partition.
    pub(crate) owner: Option<usize>,
}

/// Partitions to show: every partition some member is assigned, plus
/// every partition with a committed offset; sorted by topic and
/// partition. `committed` maps to offsets (>= 0 only).
pub(crate) fn partition_rows(
    members: &[MemberInfo],
    committed: &BTreeMap<(String, i32), i64>,
    log_end: &BTreeMap<(String, i32), i64>,
) -> Vec<PartitionRow> {
    let mut owners: BTreeMap<(String, i32), Option<usize>> =
        committed.keys().map(|k| (k.clone(), None)).collect();
    for (i, m) in members.iter().enumerate() {
        if let Ok(a) = &m.assignment {
            for (topic, ps) in &a.partitions {
                for p in ps {
                    owners.insert((topic.clone(), *p), Some(i));
                }
            }
        }
    }
    owners
        .into_iter()
        .map(|(key, owner)| PartitionRow {
            committed: committed.get(&key).copied(),
            log_end: log_end.get(&key).copied(),
            topic: key.0,
            partition: key.1,
            owner,
        })
        .collect()
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| NONE.to_owned(), |v| v.to_string())
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        NONE.to_owned()
    } else {
        s.to_owned()
    }
}

/// What `group describe` prints.
pub(crate) struct GroupDescription {
    pub(crate) group: String,
    pub(crate) state: String,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    pub(crate) coordinator: String,
    pub(crate) members: Vec<MemberInfo>,
    pub(crate) rows: Vec<PartitionRow>,
    /// Problems worth showing under the tables (e.g. log end offsets that
    /// could not be read).
    pub(crate) notes: Vec<String>,
}

/// The `group describe` output: a summary, the members, and the
/// per-partition offsets and lag.
pub(crate) fn format_description(d: &GroupDescription) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Group:        {}", d.group);
    let _ = writeln!(out, "State:        {}", or_dash(&d.state));
    let _ = writeln!(out, "ProtocolType: {}", or_dash(&d.protocol_type));
    let _ = writeln!(out, "Protocol:     {}", or_dash(&d.protocol));
    let _ = writeln!(out, "Coordinator:  {}", d.coordinator);
    let _ = writeln!(out, "Members:      {}", d.members.len());
    let total_lag: Option<i64> = d
        .rows
        .iter()
        .map(|r| lag(r.committed, r.log_end))
        .try_fold(0i64, |acc, l| l.map(|l| acc + l))
        .filter(|_| !d.rows.is_empty());
    if let Some(total) = total_lag {
        let _ = writeln!(out, "TotalLag:     {total}");
    }

    if !d.members.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = d
            .members
            .iter()
            .map(|m| {
                let (count, assignment) = match &m.assignment {
                    Ok(a) => (a.partition_count().to_string(), a.summary()),
                    Err(e) => (NONE.to_owned(), format!("<undecodable: {e}>")),
                };
                vec![
                    or_dash(&m.member_id),
                    or_dash(&m.host),
                    or_dash(&m.client_id),
                    count,
                    assignment,
                ]
            })
            .collect();
        out.push_str(&render_table(
            &[
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
                "#PARTITIONS",
                "ASSIGNMENT",
            ],
            &rows,
        ));
    }

    out.push('\n');
    if d.rows.is_empty() {
        out.push_str("No assigned partitions and no committed offsets.\n");
    } else {
        let rows: Vec<Vec<String>> = d
            .rows
            .iter()
            .map(|r| {
                let member = r.owner.and_then(|i| d.members.get(i));
                vec![
                    r.topic.clone(),
                    r.partition.to_string(),
                    opt(r.committed),
                    opt(r.log_end),
                    opt(lag(r.committed, r.log_end)),
                    member.map_or_else(|| NONE.to_owned(), |m| or_dash(&m.member_id)),
                    member.map_or_else(|| NONE.to_owned(), |m| or_dash(&m.host)),
                    member.map_or_else(|| NONE.to_owned(), |m| or_dash(&m.client_id)),
                ]
            })
            .collect();
        out.push_str(&render_table(
            &[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ],
            &rows,
        ));
    }
    for note in &d.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    out
}

/// One partition of a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedReset {
    pub(crate) partition: i32,
    pub(crate) current: Option<i64>,
    pub(crate) new_offset: i64,
}

/// The `reset-offsets` plan table.
pub(crate) fn format_plan(group: &str, topic: &str, plan: &[PlannedReset]) -> String {
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|p| {
            vec![
                group.to_owned(),
                topic.to_owned(),
                p.partition.to_string(),
                opt(p.current),
                p.new_offset.to_string(),
            ]
        })
        .collect();
    render_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
        ],
        &rows,
    )
}

/// Where `--to-offset N` lands: Kafka clamps it into the partition's
/// `[earliest, latest]` range rather than committing an offset the
/// consumer would immediately find out of range.
pub(crate) fn clamp_offset(requested: i64, earliest: i64, latest: i64) -> i64 {
    requested.clamp(earliest.min(latest), latest.max(earliest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes an assignment the way the Java client does.
    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        match user_data {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(d) => {
                b.extend_from_slice(&(d.len() as i32).to_be_bytes());
                b.extend_from_slice(d);
            }
        }
        b
    }

    #[test]
    fn assignments_decode_for_every_version() {
        for version in 0..=3 {
            let bytes = encode(version, &[("t1", &[2, 0]), ("t2", &[5])], Some(b"ud"));
            let a = decode_assignment(&bytes).expect("decode");
            assert_eq!(a.version, version);
            assert_eq!(
                a.partitions,
                BTreeMap::from([
                    ("t1".to_owned(), BTreeSet::from([0, 2])),
                    ("t2".to_owned(), BTreeSet::from([5])),
                ])
            );
            assert_eq!(a.user_data.as_deref(), Some(&b"ud"[..]));
            assert_eq!(a.partition_count(), 3);
            assert_eq!(a.summary(), "t1:0,2;t2:5");
        }
    }

    #[test]
    fn null_and_missing_user_data_and_empty_bytes() {
        let a = decode_assignment(&encode(1, &[("t", &[0])], None)).expect("null user data");
        assert_eq!(a.user_data, None);
        // No user data field at all (some non-Java clients).
        let mut bytes = encode(0, &[("t", &[0])], None);
        bytes.truncate(bytes.len() - 4);
        let a = decode_assignment(&bytes).expect("missing user data");
        assert_eq!(a.partition_count(), 1);
        // Joined but not yet synced: nothing assigned.
        let a = decode_assignment(&[]).expect("empty");
        assert_eq!(a, Assignment::default());
        assert_eq!(a.summary(), "-");
        // No topics.
        let a = decode_assignment(&encode(3, &[], Some(b""))).expect("no topics");
        assert!(a.partitions.is_empty());
    }

    #[test]
    fn newer_versions_ignore_appended_fields_older_ones_reject_them() {
        let mut bytes = encode(4, &[("t", &[1])], None);
        bytes.extend_from_slice(&[0, 0, 0, 7]);
        let a = decode_assignment(&bytes).expect("v4 with an extra field");
        assert_eq!(a.summary(), "t:1");

        let mut bytes = encode(3, &[("t", &[1])], None);
        bytes.push(0);
        assert!(decode_assignment(&bytes).is_err());
    }

    #[test]
    fn malformed_assignments_are_errors_not_panics() {
        let full = encode(0, &[("topic", &[1, 2, 3])], Some(b"x"));
        for len in 1..full.len() {
            // Every strict prefix that cuts a field short fails; the one
            // that ends right before user data is a valid "missing" case.
            let res = decode_assignment(&full[..len]);
            if len == full.len() - 5 {
                assert!(res.is_ok(), "prefix {len}");
            } else {
                assert!(res.is_err(), "prefix {len} decoded: {res:?}");
            }
        }
        // A huge partition count is refused before allocating.
        let mut b = Vec::new();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.push(b't');
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        let err = decode_assignment(&b).expect_err("huge count");
        assert!(err.to_string().contains("truncated"), "{err}");
        // Negative counts and versions.
        assert!(decode_assignment(&[0xff, 0xff, 0, 0, 0, 0]).is_err());
        assert!(decode_assignment(&[0, 0, 0xff, 0xff, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn lag_needs_both_offsets() {
        assert_eq!(lag(Some(3), Some(10)), Some(7));
        assert_eq!(lag(Some(10), Some(10)), Some(0));
        assert_eq!(lag(Some(12), Some(10)), Some(-2));
        assert_eq!(lag(None, Some(10)), None);
        assert_eq!(lag(Some(-1), Some(10)), None);
        assert_eq!(lag(Some(3), None), None);
        assert_eq!(lag(Some(3), Some(-1)), None);
    }

    #[test]
    fn to_offset_is_clamped_into_the_log() {
        assert_eq!(clamp_offset(5, 0, 10), 5);
        assert_eq!(clamp_offset(50, 0, 10), 10);
        assert_eq!(clamp_offset(-3, 2, 10), 2);
        assert_eq!(clamp_offset(0, 0, 0), 0);
    }

    fn member(id: &str, topics: &[(&str, &[i32])]) -> MemberInfo {
        MemberInfo {
            member_id: id.to_owned(),
            client_id: format!("client-{id}"),
            host: "/127.0.0.1".to_owned(),
            assignment: Ok(Assignment {
                version: 0,
                partitions: topics
                    .iter()
                    .map(|(t, ps)| ((*t).to_owned(), ps.iter().copied().collect()))
                    .collect(),
                user_data: None,
            }),
        }
    }

    #[test]
    fn rows_union_assigned_and_committed_partitions() {
        let members = vec![member("m1", &[("t1", &[0, 1])]), member("m2", &[])];
        let committed = BTreeMap::from([(("t1".to_owned(), 1), 4), (("t0".to_owned(), 0), 2)]);
        let log_end = BTreeMap::from([
            (("t1".to_owned(), 0), 5),
            (("t1".to_owned(), 1), 10),
            (("t0".to_owned(), 0), 2),
        ]);
        let rows = partition_rows(&members, &committed, &log_end);
        /// (topic, partition, committed, log end, owner).
        type Summary = (String, i32, Option<i64>, Option<i64>, Option<usize>);
        let summary: Vec<Summary> = rows
            .iter()
            .map(|r| {
                (
                    r.topic.clone(),
                    r.partition,
                    r.committed,
                    r.log_end,
                    r.owner,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("t0".into(), 0, Some(2), Some(2), None),
                ("t1".into(), 0, None, Some(5), Some(0)),
                ("t1".into(), 1, Some(4), Some(10), Some(0)),
            ]
        );

        let text = format_description(&GroupDescription {
            group: "g1".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            coordinator: "1 (127.0.0.1:9092)".into(),
            members,
            rows,
            notes: vec![],
        });
        let expected = "\
Group:        g1
State:        Stable
ProtocolType: consumer
Protocol:     range
Coordinator:  1 (127.0.0.1:9092)
Members:      2

CONSUMER-ID  HOST        CLIENT-ID  #PARTITIONS  ASSIGNMENT
m1           /127.0.0.1  client-m1  2            t1:0,1
m2           /127.0.0.1  client-m2  0            -

TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST        CLIENT-ID
t0     0          2               2               0    -            -           -
t1     0          -               5               -    m1           /127.0.0.1  client-m1
t1     1          4               10              6    m1           /127.0.0.1  client-m1
";
        assert_eq!(text, expected);
    }

    #[test]
    fn empty_group_with_commits_shows_total_lag() {
        let committed = BTreeMap::from([(("t".to_owned(), 0), 3), (("t".to_owned(), 1), 0)]);
        let log_end = BTreeMap::from([(("t".to_owned(), 0), 10), (("t".to_owned(), 1), 4)]);
        let rows = partition_rows(&[], &committed, &log_end);
        let text = format_description(&GroupDescription {
            group: "g".into(),
            state: "Empty".into(),
            protocol_type: "consumer".into(),
            protocol: String::new(),
            coordinator: "1".into(),
            members: vec![],
            rows,
            notes: vec!["x".into()],
        });
        assert!(text.contains("TotalLag:     11\n"), "{text}");
        assert!(text.contains("Protocol:     -\n"), "{text}");
        assert!(
            text.contains("t      0          3               10              7    -"),
            "{text}"
        );
        assert!(text.ends_with("Note: x\n"), "{text}");
    }

    #[test]
    fn plan_table() {
        let plan = [
            PlannedReset {
                partition: 0,
                current: Some(7),
                new_offset: 0,
            },
            PlannedReset {
                partition: 1,
                current: None,
                new_offset: 3,
            },
        ];
        assert_eq!(
            format_plan("g1", "t1", &plan),
            "\
GROUP  TOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET
g1     t1     0          7               0
g1     t1     1          -               3
"
        );
    }
}
