//! DescribeAcls (key 29): the bindings a filter selects, grouped by
//! resource pattern. Needs DESCRIBE on the cluster (Kafka's
//! `handleDescribeAcls`); SECURITY_DISABLED without an authorizer.

use fjord_broker::{AclBinding, AclOperation};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::acl_wire::{self, WireFilter};
use super::wire_str;
use crate::context::RequestContext;
use crate::services::Services;

fn refused(error: ResponseError, message: String) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(wire_str(message)))
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if !svc.authorizer.enabled() {
        let error = ResponseError::SecurityDisabled;
        return refused(error, error.to_string());
    }
    if !ctx.authorized_cluster(svc, AclOperation::Describe) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return refused(error, error.to_string());
    }
    let filter = acl_wire::filter(&WireFilter {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.as_deref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_deref(),
        host: request.host_filter.as_deref(),
        operation: request.operation,
        permission: request.permission_type,
    });
    match filter {
        Ok(filter) => DescribeAclsResponse::default()
            .with_resources(resources(svc.admin.describe_acls(&filter))),
        Err(err) => refused(ResponseError::InvalidRequest, err.to_string()),
    }
}

/// Bindings grouped by resource pattern; the image keeps them sorted by
/// pattern first, so one pass groups them.
fn resources(bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    let mut last: Option<(
        fjord_broker::AclResourceType,
        String,
        fjord_broker::AclPatternType,
    )> = None;
    for b in bindings {
        let key = (b.resource_type, b.resource_name.clone(), b.pattern_type);
        if last.as_ref() != Some(&key) {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl_wire::resource_type_code(b.resource_type))
                    .with_resource_name(wire_str(b.resource_name.clone()))
                    .with_pattern_type(acl_wire::pattern_type_code(b.pattern_type)),
            );
            last = Some(key);
        }
        if let Some(resource) = resources.last_mut() {
            resource.acls.push(
                AclDescription::default()
                    .with_principal(wire_str(b.principal))
                    .with_host(wire_str(b.host))
                    .with_operation(acl_wire::operation_code(b.operation))
                    .with_permission_type(acl_wire::permission_code(b.permission)),
            );
        }
    }
    resources
}
