//! ACL bindings as the metadata log stores them (Kafka's
//! `AccessControlEntryRecord`), the filters that find them (Kafka's
//! `AclBindingFilter`), and the set the image keeps.
//!
//! Bindings arrive here already valid: the gateway turns wire codes into
//! these enums and refuses ANY/UNKNOWN/MATCH where a concrete value is
//! needed, so the image only stores what an authorizer can evaluate.
//! Identical bindings are one binding (Kafka deduplicates too).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

/// Kafka's `ResourceType`, without ANY/UNKNOWN (filters use `Option`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

/// Kafka's `PatternType` of a stored binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclPatternType {
    /// The name exactly, or every name when it is `*`.
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

/// Kafka's `PatternType` of a filter: the stored types plus ANY (either,
/// names compared exactly) and MATCH (the bindings that would apply to the
/// filter's name: literal, wildcard and prefixes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclPatternFilter {
    Any,
    Match,
    Literal,
    Prefixed,
}

/// Kafka's `AclOperation`, without ANY/UNKNOWN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

/// Kafka's `AclPermissionType`, without ANY/UNKNOWN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclPermission {
    Deny,
    Allow,
}

/// One ACL: who (`principal` as `Type:name`, `User:*` for every user) may or
/// may not do `operation` on the resources the pattern names, from `host`
/// (an address, or `*`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: AclResourceType,
    pub resource_name: String,
    pub pattern_type: AclPatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// Kafka's `AclBindingFilter`: `None` matches anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBindingFilter {
    pub resource_type: Option<AclResourceType>,
    pub resource_name: Option<String>,
    pub pattern_type: AclPatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

impl AclBindingFilter {
    /// Whether `binding` is one this filter selects (Kafka's
    /// `AclBindingFilter.matches`).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(binding)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| *p == binding.principal)
            && self.host.as_ref().is_none_or(|h| *h == binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }

    fn matches_pattern(&self, binding: &AclBinding) -> bool {
        if self
            .resource_type
            .is_some_and(|t| t != binding.resource_type)
        {
            return false;
        }
        let same_type = matches!(
            (self.pattern_type, binding.pattern_type),
            (AclPatternFilter::Any | AclPatternFilter::Match, _)
                | (AclPatternFilter::Literal, AclPatternType::Literal)
                | (AclPatternFilter::Prefixed, AclPatternType::Prefixed)
        );
        if !same_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type != AclPatternFilter::Match {
            return *name == binding.resource_name;
        }
        match binding.pattern_type {
            AclPatternType::Literal => {
                *name == binding.resource_name || binding.resource_name == WILDCARD
            }
            AclPatternType::Prefixed => name.starts_with(binding.resource_name.as_str()),
        }
    }
}

/// The wildcard resource name, principal name and host.
pub const WILDCARD: &str = "*";

/// The one name a CLUSTER resource has.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// Every ACL of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclImage {
    pub bindings: BTreeSet<AclBinding>,
}

impl AclImage {
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The bindings `filter` selects, in the image's order.
    pub fn matching<'a>(
        &'a self,
        filter: &'a AclBindingFilter,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        self.bindings.iter().filter(move |b| filter.matches(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(rt: AclResourceType, name: &str, pt: AclPatternType) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    fn filter(name: Option<&str>, pt: AclPatternFilter) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: Some(AclResourceType::Topic),
            resource_name: name.map(Into::into),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Kafka's `ResourcePatternFilter.matches` table.
    #[test]
    fn pattern_filters() {
        use AclPatternFilter as F;
        use AclPatternType::{Literal, Prefixed};
        let topic = AclResourceType::Topic;
        let cases = [
            (
                binding(topic, "orders", Literal),
                filter(Some("orders"), F::Literal),
                true,
            ),
            (
                binding(topic, "orders", Literal),
                filter(Some("orders"), F::Prefixed),
                false,
            ),
            (
                binding(topic, "ord", Prefixed),
                filter(Some("orders"), F::Prefixed),
                false,
            ),
            (
                binding(topic, "ord", Prefixed),
                filter(Some("ord"), F::Any),
                true,
            ),
            (
                binding(topic, "ord", Prefixed),
                filter(Some("orders"), F::Any),
                false,
            ),
            (
                binding(topic, "ord", Prefixed),
                filter(Some("orders"), F::Match),
                true,
            ),
            (
                binding(topic, "*", Literal),
                filter(Some("orders"), F::Match),
                true,
            ),
            (
                binding(topic, "*", Literal),
                filter(Some("orders"), F::Literal),
                false,
            ),
            (
                binding(topic, "other", Literal),
                filter(Some("orders"), F::Match),
                false,
            ),
            (
                binding(topic, "x", Prefixed),
                filter(None, F::Literal),
                false,
            ),
            (binding(topic, "x", Prefixed), filter(None, F::Any), true),
            (
                binding(AclResourceType::Group, "orders", Literal),
                filter(None, F::Any),
                false,
            ),
        ];
        for (b, f, want) in cases {
            assert_eq!(f.matches(&b), want, "{f:?} on {b:?}");
        }
    }

    #[test]
    fn entry_filters() {
        let b = binding(AclResourceType::Topic, "t", AclPatternType::Literal);
        let mut f = filter(None, AclPatternFilter::Any);
        f.principal = Some("User:bob".into());
        assert!(!f.matches(&b));
        f.principal = Some("User:alice".into());
        f.operation = Some(AclOperation::Read);
        f.permission = Some(AclPermission::Allow);
        f.host = Some("*".into());
        assert!(f.matches(&b));
        f.operation = Some(AclOperation::Write);
        assert!(!f.matches(&b));
    }
}
