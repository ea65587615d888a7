//! Kafka's ACL codes (`ResourceType`, `PatternType`, `AclOperation`,
//! `AclPermissionType`) to and from the broker's enums, and the checks a
//! binding or filter from the wire must pass (Kafka's
//! `AclControlManager.validateNewAcl` and `AclBindingFilter` rules).

use fjord_broker::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternFilter, AclPatternType, AclPermission,
    AclResourceType, CLUSTER_RESOURCE_NAME,
};

const ANY: i8 = 1;

pub(crate) fn resource_type(code: i8) -> Option<AclResourceType> {
    match code {
        2 => Some(AclResourceType::Topic),
        3 => Some(AclResourceType::Group),
        4 => Some(AclResourceType::Cluster),
        5 => Some(AclResourceType::TransactionalId),
        _ => None,
    }
}

pub(crate) fn resource_type_code(t: AclResourceType) -> i8 {
    match t {
        AclResourceType::Topic => 2,
        AclResourceType::Group => 3,
        AclResourceType::Cluster => 4,
        AclResourceType::TransactionalId => 5,
    }
}

pub(crate) fn pattern_type_code(t: AclPatternType) -> i8 {
    match t {
        AclPatternType::Literal => 3,
        AclPatternType::Prefixed => 4,
    }
}

pub(crate) fn operation(code: i8) -> Option<AclOperation> {
    use AclOperation::*;
    Some(match code {
        2 => All,
        3 => Read,
        4 => Write,
        5 => Create,
        6 => Delete,
        7 => Alter,
        8 => Describe,
        9 => ClusterAction,
        10 => DescribeConfigs,
        11 => AlterConfigs,
        12 => IdempotentWrite,
        13 => CreateTokens,
        14 => DescribeTokens,
        _ => return None,
    })
}

pub(crate) fn operation_code(op: AclOperation) -> i8 {
    use AclOperation::*;
    match op {
        All => 2,
        Read => 3,
        Write => 4,
        Create => 5,
        Delete => 6,
        Alter => 7,
        Describe => 8,
        ClusterAction => 9,
        DescribeConfigs => 10,
        AlterConfigs => 11,
        IdempotentWrite => 12,
        CreateTokens => 13,
        DescribeTokens => 14,
    }
}

pub(crate) fn permission(code: i8) -> Option<AclPermission> {
    match code {
        2 => Some(AclPermission::Deny),
        3 => Some(AclPermission::Allow),
        _ => None,
    }
}

pub(crate) fn permission_code(p: AclPermission) -> i8 {
    match p {
        AclPermission::Deny => 2,
        AclPermission::Allow => 3,
    }
}

/// Why a binding or filter from the wire is refused (INVALID_REQUEST).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AclWireError {
    #[error("unknown or non-specific resource type {0}")]
    ResourceType(i8),
    #[error("unknown or non-specific pattern type {0}")]
    PatternType(i8),
    #[error("unknown or non-specific operation {0}")]
    Operation(i8),
    #[error("unknown or non-specific permission type {0}")]
    Permission(i8),
    #[error("principal {0:?} is not TYPE:NAME")]
    Principal(String),
    #[error("resource name must not be empty")]
    EmptyName,
    #[error("the cluster resource is named {CLUSTER_RESOURCE_NAME:?}, not {0:?}")]
    ClusterName(String),
}

/// The raw fields a CreateAcls creation carries.
pub(crate) struct WireBinding<'a> {
    pub resource_type: i8,
    pub resource_name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

/// A binding to store, or why it cannot be.
pub(crate) fn binding(w: &WireBinding<'_>) -> Result<AclBinding, AclWireError> {
    let resource_type =
        resource_type(w.resource_type).ok_or(AclWireError::ResourceType(w.resource_type))?;
    let pattern_type = match w.pattern_type {
        3 => AclPatternType::Literal,
        4 => AclPatternType::Prefixed,
        other => return Err(AclWireError::PatternType(other)),
    };
    let operation = operation(w.operation).ok_or(AclWireError::Operation(w.operation))?;
    let permission = permission(w.permission).ok_or(AclWireError::Permission(w.permission))?;
    if !w
        .principal
        .split_once(':')
        .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())
    {
        return Err(AclWireError::Principal(w.principal.to_owned()));
    }
    if w.resource_name.is_empty() {
        return Err(AclWireError::EmptyName);
    }
    if resource_type == AclResourceType::Cluster && w.resource_name != CLUSTER_RESOURCE_NAME {
        return Err(AclWireError::ClusterName(w.resource_name.to_owned()));
    }
    Ok(AclBinding {
        resource_type,
        resource_name: w.resource_name.to_owned(),
        pattern_type,
        principal: w.principal.to_owned(),
        host: w.host.to_owned(),
        operation,
        permission,
    })
}

/// The raw fields of a DescribeAcls request or DeleteAcls filter.
pub(crate) struct WireFilter<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission: i8,
}

/// `None` for ANY, else the code's value.
fn any_or<T>(
    code: i8,
    f: fn(i8) -> Option<T>,
    err: fn(i8) -> AclWireError,
) -> Result<Option<T>, AclWireError> {
    if code == ANY {
        Ok(None)
    } else {
        f(code).map(Some).ok_or(err(code))
    }
}

/// A filter, or why it is invalid (an UNKNOWN code anywhere).
pub(crate) fn filter(w: &WireFilter<'_>) -> Result<AclBindingFilter, AclWireError> {
    let resource_type = any_or(w.resource_type, resource_type, AclWireError::ResourceType)?;
    let pattern_type = match w.pattern_type {
        1 => AclPatternFilter::Any,
        2 => AclPatternFilter::Match,
        3 => AclPatternFilter::Literal,
        4 => AclPatternFilter::Prefixed,
        other => return Err(AclWireError::PatternType(other)),
    };
    let operation = any_or(w.operation, operation, AclWireError::Operation)?;
    let permission = any_or(w.permission, permission, AclWireError::Permission)?;
    Ok(AclBindingFilter {
        resource_type,
        resource_name: w.resource_name.map(str::to_owned),
        pattern_type,
        principal: w.principal.map(str::to_owned),
        host: w.host.map(str::to_owned),
        operation,
        permission,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire<'a>(
        rt: i8,
        name: &'a str,
        pt: i8,
        principal: &'a str,
        op: i8,
        perm: i8,
    ) -> WireBinding<'a> {
        WireBinding {
            resource_type: rt,
            resource_name: name,
            pattern_type: pt,
            principal,
            host: "*",
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn bindings_are_validated() {
        assert!(binding(&wire(2, "t", 3, "User:a", 3, 3)).is_ok());
        assert!(binding(&wire(4, "kafka-cluster", 3, "User:a", 7, 3)).is_ok());
        let bad = [
            (
                wire(1, "t", 3, "User:a", 3, 3),
                AclWireError::ResourceType(1),
            ),
            (
                wire(2, "t", 2, "User:a", 3, 3),
                AclWireError::PatternType(2),
            ),
            (
                wire(2, "t", 1, "User:a", 3, 3),
                AclWireError::PatternType(1),
            ),
            (wire(2, "t", 3, "User:a", 1, 3), AclWireError::Operation(1)),
            (wire(2, "t", 3, "User:a", 3, 1), AclWireError::Permission(1)),
            (
                wire(2, "t", 3, "alice", 3, 3),
                AclWireError::Principal("alice".into()),
            ),
            (wire(2, "", 3, "User:a", 3, 3), AclWireError::EmptyName),
            (
                wire(4, "c", 3, "User:a", 3, 3),
                AclWireError::ClusterName("c".into()),
            ),
        ];
        for (w, want) in bad {
            assert_eq!(binding(&w).unwrap_err(), want);
        }
    }

    #[test]
    fn codes_round_trip() {
        for code in 2..=14 {
            assert_eq!(operation(code).map(operation_code), Some(code));
        }
        for code in 2..=5 {
            assert_eq!(resource_type(code).map(resource_type_code), Some(code));
        }
        for code in 2..=3 {
            assert_eq!(permission(code).map(permission_code), Some(code));
        }
        assert_eq!(operation(0), None);
    }
}
