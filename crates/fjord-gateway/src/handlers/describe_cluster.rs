//! DescribeCluster (key 60): cluster id, controller and brokers, as the
//! admin client's `describeCluster` asks for them.

use fjord_broker::AclOperation;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{authorized_operations, broker_endpoint};
use crate::context::RequestContext;
use crate::services::Services;

/// DescribeCluster's `endpoint_type` for broker endpoints (v1+).
const ENDPOINT_BROKERS: i8 = 1;

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let version = ctx.api_version;
    let listener = ctx.listener();
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        // Controller endpoints are served by controllers, not by a broker listener.
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "endpoint type {} is not served by brokers",
                request.endpoint_type
            ))))
            .with_endpoint_type(request.endpoint_type);
    }
    // DESCRIBE on the cluster (Kafka's `handleDescribeCluster`).
    if !ctx.authorized_cluster(svc, AclOperation::Describe) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return DescribeClusterResponse::default().with_error_code(error.code());
    }
    let image = svc.metadata.image();
    let include_fenced = version >= 2 && request.include_fenced_brokers;
    let brokers: Vec<DescribeClusterBroker> = image
        .brokers
        .values()
        .filter(|b| include_fenced || !b.fenced)
        .filter_map(|b| {
            let (host, port) = broker_endpoint(&image, b.broker_id, listener)?;
            let entry = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.broker_id))
                .with_host(StrBytes::from_string(host))
                .with_port(i32::from(port))
                .with_rack(b.rack.clone().map(StrBytes::from_string));
            Some(if version >= 2 {
                entry.with_is_fenced(b.fenced)
            } else {
                entry
            })
        })
        .collect();
    // As in Metadata: a broker id clients can reach, preferring the active controller.
    let controller_id = svc
        .controller_id()
        .filter(|id| brokers.iter().any(|b| b.broker_id.0 == *id))
        .unwrap_or_else(|| svc.node_id());
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(image.cluster_id.clone()))
        .with_controller_id(BrokerId(controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            authorized_operations::cluster(ctx, svc)
        } else {
            authorized_operations::OMITTED
        })
}
