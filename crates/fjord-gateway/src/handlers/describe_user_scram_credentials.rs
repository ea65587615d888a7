//! DescribeUserScramCredentials (key 50): each user's mechanisms and
//! iterations, never a key or salt. Needs DESCRIBE on the cluster (Kafka's
//! `handleDescribeUserScramCredentialsRequest`), and answers from this
//! broker's applied image, as Kafka's brokers answer from their metadata
//! cache. Users come in name order; a null or empty list means every user.

use fjord_broker::{AclOperation, ScramDescribeError};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::wire_str;
use crate::context::RequestContext;
use crate::services::Services;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.authorized_cluster(svc, AclOperation::Describe) {
        // No message, as Kafka: librdkafka 2.16 crashes (a bad free) on a
        // top-level error that carries one.
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let names: Option<Vec<&str>> = request
        .users
        .as_ref()
        .map(|users| users.iter().map(|u| u.name.as_str()).collect());
    let results = svc
        .admin
        .describe_user_scram_credentials(names.as_deref())
        .into_iter()
        .map(|d| {
            let result = DescribeUserScramCredentialsResult::default().with_user(wire_str(d.user));
            match d.outcome {
                Ok(infos) => result.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(mechanism, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(mechanism.wire_type())
                                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                Err(err) => {
                    let error = match err {
                        ScramDescribeError::NotFound { .. } => ResponseError::ResourceNotFound,
                        ScramDescribeError::Duplicate { .. } => ResponseError::DuplicateResource,
                    };
                    result
                        .with_error_code(error.code())
                        .with_error_message(Some(wire_str(err.to_string())))
                }
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
