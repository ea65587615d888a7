//! The `authorized_operations` bit fields that Metadata (topics, cluster),
//! DescribeCluster and DescribeGroups return when a client asks for them.
//! Fjord has no authorizer yet, so every operation that applies to the
//! resource is allowed, as Kafka answers without an authorizer; bits are
//! Kafka's `AclOperation` codes.

/// Kafka's value when the client did not ask (`-2147483648`).
pub(crate) const OMITTED: i32 = i32::MIN;

/// READ (3), WRITE (4), CREATE (5), DELETE (6), ALTER (7), DESCRIBE (8),
/// DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11).
pub(crate) const TOPIC: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);

/// CREATE (5), ALTER (7), DESCRIBE (8), CLUSTER_ACTION (9), DESCRIBE_CONFIGS
/// (10), ALTER_CONFIGS (11), IDEMPOTENT_WRITE (12).
pub(crate) const CLUSTER: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);

/// READ (3), DELETE (6), DESCRIBE (8).
pub(crate) const GROUP: i32 = bits(&[3, 6, 8]);

const fn bits(operations: &[u32]) -> i32 {
    let mut field = 0;
    let mut i = 0;
    while i < operations.len() {
        field |= 1 << operations[i];
        i += 1;
    }
    field
}

/// `operations` when the client asked for them, else [`OMITTED`].
pub(crate) fn when_asked(asked: bool, operations: i32) -> i32 {
    if asked { operations } else { OMITTED }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Kafka 4.1 without an authorizer answers (librdkafka's test 0081
    /// expects 8 topic and 7 cluster operations).
    #[test]
    fn every_operation_of_the_resource() {
        assert_eq!(TOPIC.count_ones(), 8);
        assert_eq!(CLUSTER.count_ones(), 7);
        assert_eq!(GROUP, (1 << 3) | (1 << 6) | (1 << 8));
        assert_eq!(when_asked(false, TOPIC), i32::MIN);
        assert_eq!(when_asked(true, CLUSTER), CLUSTER);
    }
}
