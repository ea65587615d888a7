//! [`KafkaError`]: a non-zero error code from a response, tied to the
//! operation that received it.

use std::fmt;

use kafka_protocol::ResponseError;
use kafka_protocol::protocol::StrBytes;

/// A Kafka error code returned for one operation (a topic, a partition, a
/// whole request). Displays as `"<op>: <CODE_NAME> (<server message>)"`,
/// e.g. `create topic t1: TOPIC_ALREADY_EXISTS (Topic 't1' already exists.)`,
/// so the message is complete even when printed without its cause chain.
/// Callers that need to branch on the code downcast the `anyhow::Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    /// What was attempted, e.g. `create topic t1` or `produce to t1-0`.
    pub op: String,
    /// The raw error code from the response.
    pub code: i16,
    /// The server's `error_message`, when the API has one and it was set.
    pub message: Option<String>,
}

impl KafkaError {
    /// `Ok` for code 0, otherwise the error for `op`.
    pub fn check(code: i16, op: impl fmt::Display) -> Result<(), KafkaError> {
        Self::check_with_message(code, None, op)
    }

    /// Like [`KafkaError::check`], keeping the response's `error_message`.
    pub fn check_with_message(
        code: i16,
        message: Option<&StrBytes>,
        op: impl fmt::Display,
    ) -> Result<(), KafkaError> {
        if code == 0 {
            return Ok(());
        }
        Err(KafkaError {
            op: op.to_string(),
            code,
            message: message
                .map(|m| m.as_str().trim().to_owned())
                .filter(|m| !m.is_empty()),
        })
    }

    /// Whether the protocol marks this code retriable (leader moved,
    /// leader not yet elected, ...), meaning a metadata refresh and a retry
    /// may succeed.
    pub fn is_retriable(&self) -> bool {
        ResponseError::try_from_code(self.code).is_some_and(|e| e.is_retriable())
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, error_name(self.code))?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KafkaError {}

/// Whether retrying `e` after a metadata refresh (and reconnecting) may
/// succeed: a retriable Kafka error code, or — when no Kafka error is in
/// the chain — a transport failure (I/O errors, which include our request
/// and connect timeouts as `TimedOut`). Anything else (decode failures,
/// unsupported versions, non-retriable codes) is final.
pub(crate) fn is_retriable(e: &anyhow::Error) -> bool {
    match e.chain().find_map(|c| c.downcast_ref::<KafkaError>()) {
        Some(kafka) => kafka.is_retriable(),
        None => e
            .chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some()),
    }
}

/// Kafka's name for an error code as the Java client and the protocol
/// guide spell it (`TOPIC_ALREADY_EXISTS`, `NOT_LEADER_OR_FOLLOWER`);
/// `NONE` for 0 and `UNKNOWN_ERROR_CODE_<n>` for codes this protocol
/// version does not know.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        // `ResponseError` displays its variant name in CamelCase; Kafka's
        // names are the same words in SCREAMING_SNAKE case.
        Some(e) => screaming_snake(&e.to_string()),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_protocol_guide() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(1), "OFFSET_OUT_OF_RANGE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_name(100), "UNKNOWN_TOPIC_ID");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    #[test]
    fn display_names_op_code_and_message() {
        let message = StrBytes::from_static_str("Topic 't1' already exists.");
        let err = KafkaError::check_with_message(36, Some(&message), "create topic t1")
            .expect_err("36 is an error");
        assert_eq!(
            err.to_string(),
            "create topic t1: TOPIC_ALREADY_EXISTS (Topic 't1' already exists.)"
        );
        assert!(!err.is_retriable());

        let err = KafkaError::check(6, "produce to t1-0").expect_err("6 is an error");
        assert_eq!(err.to_string(), "produce to t1-0: NOT_LEADER_OR_FOLLOWER");
        assert!(err.is_retriable());

        let empty = StrBytes::from_static_str("  ");
        let err = KafkaError::check_with_message(3, Some(&empty), "x").expect_err("error");
        assert_eq!(err.to_string(), "x: UNKNOWN_TOPIC_OR_PARTITION");

        assert_eq!(KafkaError::check(0, "fine"), Ok(()));
    }

    #[test]
    fn retriable_means_retriable_code_or_transport_failure() {
        let leader_moved = anyhow::Error::new(KafkaError {
            op: "x".into(),
            code: 6,
            message: None,
        })
        .context("fetch");
        assert!(is_retriable(&leader_moved));
        let auth = anyhow::Error::new(KafkaError {
            op: "x".into(),
            code: 29,
            message: None,
        });
        assert!(!is_retriable(&auth));
        let io = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
            .context("read response size");
        assert!(is_retriable(&io));
        assert!(!is_retriable(&anyhow::anyhow!("decode error")));
    }
}
