//! AlterClientQuotas (key 49): set or remove quota values per entity.
//! Needs ALTER_CONFIGS on the cluster (Kafka's `handleAlterClientQuotasRequest`);
//! each entry is validated on its own (INVALID_REQUEST with the reason),
//! the valid ones are committed in one metadata record (unless
//! `validate_only`) and answered once this broker enforces them.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::quota_wire;
use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::admin_error;
use crate::services::Services;

fn entry(
    request: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
    error: Option<(ResponseError, String)>,
) -> EntryData {
    let entity = request
        .entity
        .iter()
        .map(|e| {
            EntityData::default()
                .with_entity_type(e.entity_type.clone())
                .with_entity_name(e.entity_name.clone())
        })
        .collect();
    let (code, message) = match error {
        Some((error, message)) => (error.code(), Some(wire_str(message))),
        None => (0, None),
    };
    EntryData::default()
        .with_error_code(code)
        .with_error_message(message)
        .with_entity(entity)
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    if !ctx.authorized_cluster(svc, AclOperation::AlterConfigs) {
        let error = ResponseError::ClusterAuthorizationFailed;
        let entries = request
            .entries
            .iter()
            .map(|e| entry(e, Some((error, error.to_string()))))
            .collect();
        return AlterClientQuotasResponse::default().with_entries(entries);
    }
    let checked: Vec<_> = request
        .entries
        .iter()
        .map(|e| {
            let entity = quota_wire::entity(
                e.entity
                    .iter()
                    .map(|p| (p.entity_type.as_str(), p.entity_name.as_deref())),
            )?;
            let ops = e
                .ops
                .iter()
                .map(|o| quota_wire::op(&o.key, o.value, o.remove))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(fjord_broker::ClientQuotaAlteration { entity, ops })
        })
        .collect::<Vec<Result<_, quota_wire::QuotaWireError>>>();
    let committed = if request.validate_only {
        Ok(())
    } else {
        let valid = checked
            .iter()
            .filter_map(|c| c.as_ref().ok().cloned())
            .collect();
        svc.admin.alter_client_quotas(valid).await
    };
    let entries = request
        .entries
        .iter()
        .zip(checked)
        .map(|(e, c)| match (c, &committed) {
            (Err(err), _) => entry(e, Some((ResponseError::InvalidRequest, err.to_string()))),
            (Ok(_), Err(err)) => {
                tracing::debug!(%err, "AlterClientQuotas failed");
                entry(e, Some((admin_error(err), err.to_string())))
            }
            (Ok(_), Ok(())) => entry(e, None),
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
