//! The `authorized_operations` bit fields that Metadata (topics, cluster),
//! DescribeCluster and DescribeGroups return when a client asks for them.
//! Without an authorizer every operation that applies to the resource is
//! allowed, as Kafka answers; with one, the bits are the operations the
//! authorizer allows the request's principal (Kafka's
//! `AuthHelper.authorizedOperations`). Bits are Kafka's `AclOperation` codes.

use fjord_broker::{AclOperation, AclResourceType, CLUSTER_RESOURCE_NAME};

use super::acl_wire::operation_code;
use crate::context::RequestContext;
use crate::services::Services;

/// Kafka's value when the client did not ask (`-2147483648`).
pub(crate) const OMITTED: i32 = i32::MIN;

const TOPIC_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Create,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];

const CLUSTER_OPERATIONS: &[AclOperation] = &[
    AclOperation::Create,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::ClusterAction,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::IdempotentWrite,
];

const GROUP_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Delete,
    AclOperation::Describe,
];

fn bits(operations: &[AclOperation], allowed: impl Fn(AclOperation) -> bool) -> i32 {
    operations
        .iter()
        .filter(|op| allowed(**op))
        .fold(0, |field, op| field | 1 << operation_code(*op))
}

fn of(
    ctx: &RequestContext,
    svc: &Services,
    operations: &[AclOperation],
    resource_type: AclResourceType,
    name: &str,
) -> i32 {
    bits(operations, |op| {
        ctx.authorized(svc, op, resource_type, name)
    })
}

/// What the principal may do on a topic.
pub(crate) fn topic(ctx: &RequestContext, svc: &Services, name: &str) -> i32 {
    of(ctx, svc, TOPIC_OPERATIONS, AclResourceType::Topic, name)
}

/// What the principal may do on the cluster.
pub(crate) fn cluster(ctx: &RequestContext, svc: &Services) -> i32 {
    of(
        ctx,
        svc,
        CLUSTER_OPERATIONS,
        AclResourceType::Cluster,
        CLUSTER_RESOURCE_NAME,
    )
}

/// What the principal may do on a group.
pub(crate) fn group(ctx: &RequestContext, svc: &Services, name: &str) -> i32 {
    of(ctx, svc, GROUP_OPERATIONS, AclResourceType::Group, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Kafka 4.1 without an authorizer answers (librdkafka's test 0081
    /// expects 8 topic and 7 cluster operations).
    #[test]
    fn every_operation_of_the_resource() {
        let all = |ops| bits(ops, |_| true);
        assert_eq!(all(TOPIC_OPERATIONS).count_ones(), 8);
        assert_eq!(all(CLUSTER_OPERATIONS).count_ones(), 7);
        assert_eq!(all(GROUP_OPERATIONS), (1 << 3) | (1 << 6) | (1 << 8));
        assert_eq!(
            bits(TOPIC_OPERATIONS, |op| op == AclOperation::Read),
            1 << 3
        );
    }
}
