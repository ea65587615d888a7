//! DeleteAcls (key 31): remove the bindings each filter selects, answering
//! them per filter. Needs ALTER on the cluster (Kafka's
//! `handleDeleteAcls`); SECURITY_DISABLED without an authorizer. An
//! invalid filter gets INVALID_REQUEST and removes nothing; the others are
//! committed in one metadata record.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::acl_wire::{self, WireFilter};
use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::admin_error;
use crate::services::Services;

fn failed(error: ResponseError, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(error.code())
        .with_error_message(Some(wire_str(message)))
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let refuse_all = |error: ResponseError| {
        let results = request
            .filters
            .iter()
            .map(|_| failed(error, error.to_string()))
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    };
    if !svc.authorizer.enabled() {
        return refuse_all(ResponseError::SecurityDisabled);
    }
    if !ctx.authorized_cluster(svc, AclOperation::Alter) {
        return refuse_all(ResponseError::ClusterAuthorizationFailed);
    }
    let checked: Vec<_> = request
        .filters
        .iter()
        .map(|f| {
            acl_wire::filter(&WireFilter {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_deref(),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_deref(),
                host: f.host_filter.as_deref(),
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let valid: Vec<_> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let outcome = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        svc.admin.delete_acls(valid).await
    };
    let mut removed = match &outcome {
        Ok(removed) => removed.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = checked
        .into_iter()
        .map(|c| match (c, &outcome) {
            (Err(err), _) => failed(ResponseError::InvalidRequest, err.to_string()),
            (Ok(_), Err(err)) => {
                tracing::debug!(%err, "DeleteAcls failed");
                failed(admin_error(err), err.to_string())
            }
            (Ok(_), Ok(_)) => {
                let matching = removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(acl_wire::resource_type_code(b.resource_type))
                            .with_resource_name(wire_str(b.resource_name))
                            .with_pattern_type(acl_wire::pattern_type_code(b.pattern_type))
                            .with_principal(wire_str(b.principal))
                            .with_host(wire_str(b.host))
                            .with_operation(acl_wire::operation_code(b.operation))
                            .with_permission_type(acl_wire::permission_code(b.permission))
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
