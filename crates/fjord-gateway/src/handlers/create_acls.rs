//! CreateAcls (key 30): add ACL bindings. Needs ALTER on the cluster
//! (Kafka's `handleCreateAcls`); without an authorizer Kafka answers
//! SECURITY_DISABLED, and so do we. Each creation is validated on its own
//! (INVALID_REQUEST with the reason); the valid ones are committed in one
//! metadata record and answered once this broker enforces them.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::acl_wire::{self, WireBinding};
use super::wire_str;
use crate::context::RequestContext;
use crate::error_code::admin_error;
use crate::services::Services;

fn result(error: ResponseError, message: Option<String>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(error.code())
        .with_error_message(message.map(wire_str))
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let refuse_all = |error: ResponseError| {
        let results = request
            .creations
            .iter()
            .map(|_| result(error, Some(error.to_string())))
            .collect();
        CreateAclsResponse::default().with_results(results)
    };
    if !svc.authorizer.enabled() {
        return refuse_all(ResponseError::SecurityDisabled);
    }
    if !ctx.authorized_cluster(svc, AclOperation::Alter) {
        return refuse_all(ResponseError::ClusterAuthorizationFailed);
    }
    let checked: Vec<_> = request
        .creations
        .iter()
        .map(|c| {
            acl_wire::binding(&WireBinding {
                resource_type: c.resource_type,
                resource_name: &c.resource_name,
                pattern_type: c.resource_pattern_type,
                principal: &c.principal,
                host: &c.host,
                operation: c.operation,
                permission: c.permission_type,
            })
        })
        .collect();
    let valid = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let committed = svc.admin.create_acls(valid).await;
    let results = checked
        .into_iter()
        .map(|c| match (c, &committed) {
            (Err(err), _) => result(ResponseError::InvalidRequest, Some(err.to_string())),
            (Ok(_), Err(err)) => {
                tracing::debug!(%err, "CreateAcls failed");
                result(admin_error(err), Some(err.to_string()))
            }
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}
