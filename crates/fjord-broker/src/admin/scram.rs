//! SCRAM credentials: DescribeUserScramCredentials reads the applied
//! image; AlterUserScramCredentials commits through the controller
//! (`AlterUserScramCredentials`) and answers once this broker's credential
//! store holds the result.

use fjord_controller::{
    MetadataCommand, MetadataResponse, ScramAlteration, ScramAlterationResult, ScramUserDescription,
};

use super::{APPLY_TIMEOUT, AdminService};
use crate::error::AdminError;

impl AdminService {
    /// Kafka's DescribeUserScramCredentials: every user when `users` is
    /// `None` or empty.
    pub fn describe_user_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Vec<ScramUserDescription> {
        self.metadata().scram.describe(users)
    }

    /// Commit what `alteration` proposes (its refusals are the caller's);
    /// per user, the controller's answer.
    pub async fn alter_user_scram_credentials(
        &self,
        alteration: ScramAlteration,
    ) -> Result<Vec<ScramAlterationResult>, AdminError> {
        let ScramAlteration {
            deletions,
            upsertions,
            ..
        } = alteration;
        if deletions.is_empty() && upsertions.is_empty() {
            return Ok(Vec::new());
        }
        let response = self
            .controller
            .write(MetadataCommand::AlterUserScramCredentials {
                deletions: deletions.clone(),
                upsertions: upsertions.clone(),
            })
            .await
            .map_err(AdminError::from_controller)?;
        let results = match response {
            MetadataResponse::UserScramCredentialsAltered { results } => results,
            other => {
                return Err(AdminError::UnexpectedControllerResponse {
                    response: format!("{other:?}"),
                });
            }
        };
        let accepted = |user: &str| results.iter().any(|r| r.user == user && r.outcome.is_ok());
        // Applied here once every accepted change is visible, or the
        // credentials moved on (a later alteration through another node).
        let before = self.metadata().scram.clone();
        let applied = self
            .wait_applied(APPLY_TIMEOUT, |img| {
                let upserted = upsertions.iter().filter(|u| accepted(&u.user)).all(|u| {
                    img.scram
                        .users
                        .get(&u.user)
                        .and_then(|c| c.get(&u.mechanism))
                        == Some(&u.credential)
                });
                let deleted = deletions.iter().filter(|d| accepted(&d.user)).all(|d| {
                    img.scram
                        .users
                        .get(&d.user)
                        .is_none_or(|c| !c.contains_key(&d.mechanism))
                });
                (upserted && deleted) || !std::sync::Arc::ptr_eq(&img.scram, &before)
            })
            .await;
        applied
            .then_some(results.clone())
            .ok_or(AdminError::RequestTimedOut)
    }
}
