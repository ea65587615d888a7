//! ACLs: CreateAcls, DescribeAcls and DeleteAcls. The bindings are
//! committed through the controller (`CreateAcls`, `DeleteAcls`) and the
//! calls answer once this broker's authorizer enforces the result.

use fjord_controller::{AclBinding, AclBindingFilter, MetadataCommand, MetadataResponse};

use super::{APPLY_TIMEOUT, AdminService};
use crate::error::AdminError;

impl AdminService {
    /// The bindings `filter` selects (DescribeAcls).
    pub fn describe_acls(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.metadata().acls.matching(filter).cloned().collect()
    }

    /// Add `acls` (already validated by the caller).
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<(), AdminError> {
        if acls.is_empty() {
            return Ok(());
        }
        let wanted = acls.clone();
        self.commit(MetadataCommand::CreateAcls { acls }).await?;
        // Applied here once every binding is in, or the ACLs moved on (a
        // later DeleteAcls through another node removed some already).
        let before = self.metadata().acls.clone();
        self.wait_applied(APPLY_TIMEOUT, |img| {
            wanted.iter().all(|b| img.acls.bindings.contains(b))
                || !std::sync::Arc::ptr_eq(&img.acls, &before)
        })
        .await
        .then_some(())
        .ok_or(AdminError::RequestTimedOut)
    }

    /// Remove what each filter selects; per filter, the bindings removed.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclBindingFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, AdminError> {
        let response = self
            .controller
            .write(MetadataCommand::DeleteAcls { filters })
            .await
            .map_err(AdminError::from_controller)?;
        let removed = match response {
            MetadataResponse::AclsDeleted { removed } => removed,
            other => {
                return Err(AdminError::UnexpectedControllerResponse {
                    response: format!("{other:?}"),
                });
            }
        };
        let gone: Vec<&AclBinding> = removed.iter().flatten().collect();
        self.wait_applied(APPLY_TIMEOUT, |img| {
            gone.iter().all(|b| !img.acls.bindings.contains(*b))
        })
        .await
        .then_some(removed.clone())
        .ok_or(AdminError::RequestTimedOut)
    }
}
