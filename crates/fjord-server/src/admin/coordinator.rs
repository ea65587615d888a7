//! Finding a coordinator and talking to it, for the group and transaction
//! commands: FindCoordinator through any broker (key type GROUP or
//! TRANSACTION), a connection to the node it names, and a bounded retry
//! while the coordinator is loading, unavailable or moved
//! (`COORDINATOR_LOAD_IN_PROGRESS`, `COORDINATOR_NOT_AVAILABLE`,
//! `NOT_COORDINATOR`, or a broken connection).

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;

use super::client::KafkaClient;
use super::cluster::Cluster;
use super::error::KafkaError;

/// Error codes that make the commands look the coordinator up again.
pub(crate) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub(crate) const NOT_COORDINATOR: i16 = 16;
/// How long to keep looking for a coordinator that is loading or moving.
const COORDINATOR_RETRY_FOR: Duration = Duration::from_secs(15);
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a coordinator is looked up for: FindCoordinator's key and key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordinatorKey<'a> {
    /// A consumer group (key type 0).
    Group(&'a str),
    /// A transactional id (key type 1).
    Transaction(&'a str),
}

impl CoordinatorKey<'_> {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKey::Group(_) => 0,
            CoordinatorKey::Transaction(_) => 1,
        }
    }

    fn key(self) -> &'static str {
        match self {
            CoordinatorKey::Group(_) => "group",
            CoordinatorKey::Transaction(_) => "transactional id",
        }
    }

    fn name(&self) -> &str {
        match self {
            CoordinatorKey::Group(id) | CoordinatorKey::Transaction(id) => id,
        }
    }
}

impl fmt::Display for CoordinatorKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key(), self.name())
    }
}

/// A connection to a coordinator.
pub(crate) struct Coordinator {
    pub(crate) node_id: i32,
    pub(crate) client: KafkaClient,
}

impl Coordinator {
    pub(crate) fn describe(&self) -> String {
        format!("{} ({})", self.node_id, self.client.addr())
    }
}

/// Whether `e` (from a request to the coordinator) says to look the
/// coordinator up again: a coordinator error code, or a transport failure.
pub(crate) fn coordinator_retriable(e: &anyhow::Error) -> bool {
    match e.chain().find_map(|c| c.downcast_ref::<KafkaError>()) {
        Some(k) => matches!(
            k.code,
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
        ),
        None => e
            .chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some()),
    }
}

/// FindCoordinator for `key` through the bootstrap connection, then a
/// connection to it.
pub(crate) async fn find_coordinator(
    cluster: &mut Cluster,
    key: CoordinatorKey<'_>,
    timeout: Duration,
) -> Result<Coordinator> {
    let op = format!("find coordinator of {key}");
    let name = key.name();
    let client = cluster.any_broker().await?;
    let version = client.version::<FindCoordinatorRequest>()?;
    let mut request = FindCoordinatorRequest::default().with_key_type(key.key_type());
    if version >= 4 {
        request.coordinator_keys = vec![StrBytes::from_string(name.to_owned())];
    } else {
        request.key = StrBytes::from_string(name.to_owned());
    }
    let response = match client.send_version(&request, version).await {
        Ok(r) => r,
        Err(e) => {
            client.mark_broken();
            return Err(e.context(op));
        }
    };
    let (node_id, host, port) = if version >= 4 {
        let c = response
            .coordinators
            .into_iter()
            .find(|c| c.key.as_str() == name)
            .ok_or_else(|| anyhow!("{op}: {} missing from the response", key.key()))?;
        KafkaError::check_with_message(c.error_code, c.error_message.as_ref(), &op)?;
        (c.node_id.0, c.host, c.port)
    } else {
        KafkaError::check_with_message(response.error_code, response.error_message.as_ref(), &op)?;
        (response.node_id.0, response.host, response.port)
    };
    let host = host.as_str();
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let client = KafkaClient::connect_with(&addr, timeout, cluster.security())
        .await
        .with_context(|| format!("connect to the coordinator of {key} (node {node_id})"))?;
    Ok(Coordinator { node_id, client })
}

/// Runs `f` against the coordinator of `key`, looking it up again
/// (bounded) while it is loading, unavailable or moved.
pub(crate) async fn with_coordinator<T>(
    cluster: &mut Cluster,
    key: CoordinatorKey<'_>,
    timeout: Duration,
    mut f: impl AsyncFnMut(&mut Coordinator) -> Result<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + COORDINATOR_RETRY_FOR;
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        let result = match find_coordinator(cluster, key, timeout).await {
            Ok(mut coordinator) => f(&mut coordinator).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e)
                if coordinator_retriable(&e)
                    && tokio::time::Instant::now() + backoff < deadline =>
            {
                tracing::debug!(error = %format!("{e:#}"), "coordinator not ready, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_errors_are_retried_others_not() {
        let k = |code| {
            anyhow::Error::new(KafkaError {
                op: "x".into(),
                code,
                message: None,
            })
        };
        assert!(coordinator_retriable(&k(NOT_COORDINATOR)));
        assert!(coordinator_retriable(&k(COORDINATOR_LOAD_IN_PROGRESS)));
        assert!(coordinator_retriable(&k(COORDINATOR_NOT_AVAILABLE)));
        // NON_EMPTY_GROUP
        assert!(!coordinator_retriable(&k(68)));
        assert!(!coordinator_retriable(&anyhow!("decode")));
        let io = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(coordinator_retriable(&io));
    }

    #[test]
    fn keys_name_their_type() {
        assert_eq!(CoordinatorKey::Group("g").key_type(), 0);
        assert_eq!(CoordinatorKey::Transaction("t").key_type(), 1);
        assert_eq!(CoordinatorKey::Group("g").to_string(), "group g");
        assert_eq!(
            CoordinatorKey::Transaction("t").to_string(),
            "transactional id t"
        );
    }
}
