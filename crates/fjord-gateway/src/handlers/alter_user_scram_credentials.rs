//! AlterUserScramCredentials (key 51): set or remove users' SCRAM
//! credentials. Needs ALTER on the cluster (Kafka's
//! `handleAlterUserScramCredentialsRequest`). The request-only checks and
//! the credential derivation are `ScramAlteration::plan`'s (so no salted
//! password leaves this broker); the controller decides the rest. One
//! result per user named.

use fjord_broker::{
    AclOperation, RequestedDeletion, RequestedUpsertion, ScramAlteration, ScramAlterationResult,
    ScramCredentialError,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::admin_error;
use crate::services::Services;

fn result(user: &str, error: ResponseError, message: String) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(wire_str(user.to_owned()))
        .with_error_code(error.code())
        .with_error_message(Some(wire_str(message)))
}

fn credential_error(err: &ScramCredentialError) -> ResponseError {
    match err {
        ScramCredentialError::EmptyUser
        | ScramCredentialError::TooFewIterations
        | ScramCredentialError::TooManyIterations => ResponseError::UnacceptableCredential,
        ScramCredentialError::UnknownMechanism => ResponseError::UnsupportedSaslMechanism,
        ScramCredentialError::AlteredTwice => ResponseError::DuplicateResource,
        ScramCredentialError::NotFound => ResponseError::ResourceNotFound,
    }
}

fn from_outcome(r: &ScramAlterationResult) -> AlterUserScramCredentialsResult {
    match &r.outcome {
        Ok(()) => AlterUserScramCredentialsResult::default().with_user(wire_str(r.user.clone())),
        Err(err) => result(&r.user, credential_error(err), err.to_string()),
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions: Vec<RequestedDeletion<'_>> = request
        .deletions
        .iter()
        .map(|d| RequestedDeletion {
            user: d.name.as_str(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions: Vec<RequestedUpsertion<'_>> = request
        .upsertions
        .iter()
        .map(|u| RequestedUpsertion {
            user: u.name.as_str(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: &u.salt,
            salted_password: &u.salted_password,
        })
        .collect();
    if !ctx.authorized_cluster(svc, AclOperation::Alter) {
        let error = ResponseError::ClusterAuthorizationFailed;
        let mut users: Vec<&str> = deletions
            .iter()
            .map(|d| d.user)
            .chain(upsertions.iter().map(|u| u.user))
            .collect();
        users.sort_unstable();
        users.dedup();
        let results = users
            .into_iter()
            .map(|u| result(u, error, error.to_string()))
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let plan = ScramAlteration::plan(&deletions, &upsertions);
    let mut results: Vec<AlterUserScramCredentialsResult> =
        plan.refused.iter().map(from_outcome).collect();
    let proposed: Vec<String> = plan
        .deletions
        .iter()
        .map(|d| d.user.clone())
        .chain(plan.upsertions.iter().map(|u| u.user.clone()))
        .collect();
    match svc.admin.alter_user_scram_credentials(plan).await {
        Ok(committed) => results.extend(committed.iter().map(from_outcome)),
        Err(err) => {
            tracing::debug!(%err, "AlterUserScramCredentials failed");
            let error = admin_error(&err);
            results.extend(
                proposed
                    .iter()
                    .map(|user| result(user, error, err.to_string())),
            );
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}
