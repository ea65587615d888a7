//! Client quotas: DescribeClientQuotas and AlterClientQuotas. Alterations
//! are committed through the controller (`AlterClientQuotas`) and the call
//! answers once this broker enforces them.

use std::sync::Arc;

use fjord_controller::{
    ClientQuotaAlteration, ClientQuotaEntity, MetadataCommand, QuotaKey, QuotaValue,
};

use super::{APPLY_TIMEOUT, AdminService};
use crate::error::AdminError;

impl AdminService {
    /// Every entity with quotas, and its values (the gateway filters).
    pub fn client_quotas(&self) -> Vec<(ClientQuotaEntity, Vec<(QuotaKey, QuotaValue)>)> {
        self.metadata()
            .client_quotas
            .entities
            .iter()
            .map(|(e, v)| (e.clone(), v.iter().map(|(k, v)| (*k, *v)).collect()))
            .collect()
    }

    /// Apply `alterations` (already validated by the caller).
    pub async fn alter_client_quotas(
        &self,
        alterations: Vec<ClientQuotaAlteration>,
    ) -> Result<(), AdminError> {
        if alterations.is_empty() {
            return Ok(());
        }
        let wanted = alterations.clone();
        let before = self.metadata().client_quotas.clone();
        self.commit(MetadataCommand::AlterClientQuotas { alterations })
            .await?;
        // Applied here once the image shows every change, or the quotas
        // moved on (a later alteration through another node).
        self.wait_applied(APPLY_TIMEOUT, |img| {
            img.client_quotas.unchanged_by(&wanted) || !Arc::ptr_eq(&img.client_quotas, &before)
        })
        .await
        .then_some(())
        .ok_or(AdminError::RequestTimedOut)
    }
}
