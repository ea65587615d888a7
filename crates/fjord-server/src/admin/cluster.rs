//! [`Cluster`]: the bootstrap connection, the latest metadata, and lazily
//! opened connections to partition leaders.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use uuid::Uuid;

use super::ConnectArgs;
use super::client::KafkaClient;
use super::error::{KafkaError, is_retriable};
use super::security::ClientSecurity;

/// How long to wait for a topic's partitions to get leaders (e.g. right
/// after creation) before giving up.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// First and largest pause between metadata retries.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A topic as the metadata describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicLayout {
    pub(crate) name: String,
    /// Nil when the broker's Metadata version predates topic ids (< v10).
    pub(crate) topic_id: Uuid,
    pub(crate) is_internal: bool,
    pub(crate) partitions: BTreeMap<i32, PartitionLayout>,
}

impl TopicLayout {
    /// The partition count, as an `i32` like the protocol's indexes.
    pub(crate) fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The partitions a command works on: `only` if given (it must exist),
    /// else all of them in order.
    pub(crate) fn select_partitions(&self, only: Option<i32>, op: &str) -> Result<Vec<i32>> {
        match only {
            Some(p) if self.partitions.contains_key(&p) => Ok(vec![p]),
            Some(p) => Err(anyhow!(
                "{op}: partition {p} does not exist (the topic has {} partitions)",
                self.partitions.len()
            )),
            None => Ok(self.partitions.keys().copied().collect()),
        }
    }

    /// The first partition error or missing leader, if any: the topic is
    /// not ready for produce or fetch yet.
    fn not_ready(&self) -> Option<KafkaError> {
        self.partitions.iter().find_map(|(p, layout)| {
            let code = match layout.error_code {
                // LEADER_NOT_AVAILABLE when no leader is set without an error.
                0 if layout.leader < 0 => 5,
                code => code,
            };
            KafkaError::check(code, format_args!("partition {}-{p}", self.name)).err()
        })
    }
}

/// One partition's replica placement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartitionLayout {
    pub(crate) error_code: i16,
    /// -1 when there is no leader.
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
    pub(crate) offline_replicas: Vec<i32>,
}

/// The cluster as seen through one bootstrap connection.
pub(crate) struct Cluster {
    bootstrap_addrs: Vec<String>,
    timeout: Duration,
    /// TLS and SASL for every connection, from `--command-config`.
    security: Arc<ClientSecurity>,
    bootstrap: KafkaClient,
    /// Broker id to `host:port`, from the latest Metadata response.
    brokers: HashMap<i32, String>,
    /// Open connections to brokers, by id, for leader-only requests.
    leaders: HashMap<i32, KafkaClient>,
}

impl Cluster {
    pub(crate) async fn connect(args: &ConnectArgs) -> Result<Self> {
        let bootstrap_addrs = args.bootstrap_addrs();
        let timeout = args.request_timeout();
        let security = args.security()?;
        let bootstrap = KafkaClient::connect_any(&bootstrap_addrs, timeout, &security).await?;
        Ok(Cluster {
            bootstrap_addrs,
            timeout,
            security,
            bootstrap,
            brokers: HashMap::new(),
            leaders: HashMap::new(),
        })
    }

    /// How this cluster's connections are secured (for connections
    /// opened outside it, e.g. to a group coordinator).
    pub(crate) fn security(&self) -> &Arc<ClientSecurity> {
        &self.security
    }

    /// The bootstrap connection, for requests any broker can answer
    /// (metadata, admin requests that the broker forwards as needed);
    /// reconnected if an earlier error broke it.
    pub(crate) async fn any_broker(&mut self) -> Result<&mut KafkaClient> {
        if self.bootstrap.is_broken() {
            self.bootstrap =
                KafkaClient::connect_any(&self.bootstrap_addrs, self.timeout, &self.security)
                    .await?;
        }
        Ok(&mut self.bootstrap)
    }

    /// A Metadata request for `topics` (all topics if `None`); remembers
    /// the broker addresses it lists.
    pub(crate) async fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse> {
        let response = match self.try_metadata(topics).await {
            // The bootstrap connection may have gone stale (idle while the
            // broker restarted): reconnect once and ask again.
            Err(e) if is_retriable(&e) => {
                tracing::debug!(error = %format!("{e:#}"), "metadata failed, reconnecting");
                self.bootstrap.mark_broken();
                self.try_metadata(topics).await?
            }
            other => other?,
        };
        self.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, broker_addr(b)))
            .collect();
        Ok(response)
    }

    async fn try_metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse> {
        let client = self.any_broker().await?;
        let version = client.version::<MetadataRequest>()?;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string((*name).to_owned()))))
                    })
                    .collect()
            }))
            // Never create topics by asking about them; versions before 4
            // cannot say so (and always allow it).
            .with_allow_auto_topic_creation(version < 4);
        client.send_version(&request, version).await
    }

    /// The metadata of one topic; a topic-level error code (e.g.
    /// `UNKNOWN_TOPIC_OR_PARTITION`) is returned as a [`KafkaError`] for
    /// `op`.
    pub(crate) async fn topic(&mut self, name: &str, op: &str) -> Result<TopicLayout> {
        let response = self.metadata(Some(&[name])).await?;
        let topic = response
            .topics
            .into_iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .ok_or_else(|| anyhow!("{op}: topic {name} missing from the metadata response"))?;
        KafkaError::check(topic.error_code, op)?;
        Ok(TopicLayout {
            name: name.to_owned(),
            topic_id: topic.topic_id,
            is_internal: topic.is_internal,
            partitions: topic
                .partitions
                .into_iter()
                .map(|p| {
                    (
                        p.partition_index,
                        PartitionLayout {
                            error_code: p.error_code,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                        },
                    )
                })
                .collect(),
        })
    }

    /// Like [`Cluster::topic`], but waits (bounded) while the topic or its
    /// partitions report retriable errors such as `LEADER_NOT_AVAILABLE`,
    /// so that produce and fetch can start right after a topic is created.
    pub(crate) async fn topic_ready(&mut self, name: &str, op: &str) -> Result<TopicLayout> {
        let deadline = tokio::time::Instant::now() + TOPIC_READY_TIMEOUT;
        let mut backoff = RETRY_BACKOFF_MIN;
        loop {
            let problem = match self.topic(name, op).await {
                Ok(layout) => match layout.not_ready() {
                    None if layout.partitions.is_empty() => {
                        anyhow!("{op}: topic {name} has no partitions")
                    }
                    None => return Ok(layout),
                    Some(e) => anyhow::Error::new(e),
                },
                Err(e) => e,
            };
            // UNKNOWN_TOPIC_OR_PARTITION is retriable for clients that wait
            // on auto-creation; we never auto-create, so a missing topic is
            // final. Transport failures (a restarting broker) are retried.
            let missing_topic = problem.downcast_ref::<KafkaError>().map(|e| e.code) == Some(3);
            let retriable = is_retriable(&problem) && !missing_topic;
            if !retriable || tokio::time::Instant::now() + backoff > deadline {
                return Err(problem);
            }
            tracing::debug!(error = %problem, "topic not ready, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    /// A connection to broker `id` (a partition leader), opened on first
    /// use at the address the latest metadata gave for it.
    pub(crate) async fn broker(&mut self, id: i32) -> Result<&mut KafkaClient> {
        if self.leaders.get(&id).is_some_and(KafkaClient::is_broken) {
            self.leaders.remove(&id);
        }
        match self.leaders.entry(id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let addr = self
                    .brokers
                    .get(&id)
                    .ok_or_else(|| anyhow!("broker {id} is not in the metadata's broker list"))?;
                let client = KafkaClient::connect_with(addr, self.timeout, &self.security)
                    .await
                    .with_context(|| format!("connect to broker {id}"))?;
                Ok(e.insert(client))
            }
        }
    }

    /// Drops the connection to broker `id`, e.g. after it stopped leading
    /// or failed; the next [`Cluster::broker`] reconnects.
    pub(crate) fn forget_broker(&mut self, id: i32) {
        self.leaders.remove(&id);
    }

    /// `request` at every broker in the metadata, in broker id order, with
    /// each answer (for the APIs each broker answers for its own share:
    /// ListGroups, ListTransactions). A broker that cannot be asked fails
    /// the call as `what at broker N` and is connected afresh next time.
    pub(crate) async fn ask_every_broker<Req: Request>(
        &mut self,
        what: &str,
        request: &Req,
    ) -> Result<Vec<(i32, Req::Response)>> {
        let metadata = self
            .metadata(Some(&[][..]))
            .await
            .context(what.to_string())?;
        let mut broker_ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
        broker_ids.sort_unstable();
        let mut answers = Vec::with_capacity(broker_ids.len());
        for id in broker_ids {
            let response = match self.broker(id).await {
                Ok(client) => client.send(request).await,
                Err(e) => Err(e),
            };
            let response = response
                .inspect_err(|_| self.forget_broker(id))
                .with_context(|| format!("{what} at broker {id}"))?;
            answers.push((id, response));
        }
        Ok(answers)
    }
}

/// `host:port`, with IPv6 literals bracketed.
fn broker_addr(broker: &MetadataResponseBroker) -> String {
    let host = broker.host.as_str();
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", broker.port)
    } else {
        format!("{host}:{}", broker.port)
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;

    use super::*;

    #[test]
    fn broker_addresses_bracket_ipv6() {
        let broker = |host: &'static str| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str(host))
                .with_port(9092)
        };
        assert_eq!(broker_addr(&broker("localhost")), "localhost:9092");
        assert_eq!(broker_addr(&broker("::1")), "[::1]:9092");
        assert_eq!(broker_addr(&broker("[::1]")), "[::1]:9092");
    }

    #[test]
    fn leaderless_partitions_are_not_ready() {
        let partition = |error_code, leader| PartitionLayout {
            error_code,
            leader,
            leader_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
            offline_replicas: vec![],
        };
        let mut layout = TopicLayout {
            name: "t1".into(),
            topic_id: Uuid::nil(),
            is_internal: false,
            partitions: BTreeMap::from([(0, partition(0, 1)), (1, partition(0, 1))]),
        };
        assert_eq!(layout.not_ready(), None);
        assert_eq!(layout.partition_count(), 2);

        layout.partitions.insert(1, partition(0, -1));
        let err = layout.not_ready().expect("leaderless");
        assert_eq!(err.to_string(), "partition t1-1: LEADER_NOT_AVAILABLE");
        assert!(err.is_retriable());

        layout.partitions.insert(1, partition(6, 1));
        assert_eq!(layout.not_ready().map(|e| e.code), Some(6));
    }
}
