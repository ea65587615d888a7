//! The ACLs of one metadata image, indexed for the request path, and
//! Kafka's `StandardAuthorizer` rules over them.
//!
//! A check is a hash lookup for the literal name, one list for the `*`
//! literal, and one hash lookup per distinct prefix length among the
//! PREFIXED bindings of the resource type; it allocates nothing. Building
//! the index happens once per metadata change that touches ACLs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use fjord_controller::{
    AclBinding, AclImage, AclOperation, AclPatternType, AclPermission, AclResourceType, WILDCARD,
};

/// Who asks: Kafka's `KafkaPrincipal` by reference (`User`, `alice`).
#[derive(Clone, Copy, Debug)]
pub struct Principal<'a> {
    pub principal_type: &'a str,
    pub name: &'a str,
}

/// Which host a binding applies to.
#[derive(Clone, Copy, Debug)]
enum HostMatch {
    Any,
    Ip(IpAddr),
    /// A host that is not an address: Kafka compares it with the client's
    /// address string, which it can never equal.
    Never,
}

/// One binding as the index keeps it.
#[derive(Debug)]
struct Entry {
    principal_type: Box<str>,
    /// `*`: every principal of the type.
    principal_name: Box<str>,
    host: HostMatch,
    operation: AclOperation,
    permission: AclPermission,
}

impl Entry {
    fn of(binding: &AclBinding) -> Self {
        let (principal_type, principal_name) = binding
            .principal
            .split_once(':')
            .unwrap_or((binding.principal.as_str(), ""));
        let host = if binding.host == WILDCARD {
            HostMatch::Any
        } else {
            binding.host.parse().map_or(HostMatch::Never, HostMatch::Ip)
        };
        Entry {
            principal_type: principal_type.into(),
            principal_name: principal_name.into(),
            host,
            operation: binding.operation,
            permission: binding.permission,
        }
    }

    fn applies_to(&self, principal: Principal<'_>, host: IpAddr) -> bool {
        *self.principal_type == *principal.principal_type
            && (*self.principal_name == *WILDCARD || *self.principal_name == *principal.name)
            && match self.host {
                HostMatch::Any => true,
                HostMatch::Ip(ip) => ip == host,
                HostMatch::Never => false,
            }
    }

    /// Kafka's `StandardAuthorizerData.findResult`: `Some` when this entry
    /// decides for `operation`. ALLOW entries of READ, WRITE, DELETE and
    /// ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS; DENY
    /// entries deny only their own operation (or ALL).
    fn decides(
        &self,
        principal: Principal<'_>,
        host: IpAddr,
        operation: AclOperation,
    ) -> Option<AclPermission> {
        if !self.applies_to(principal, host) {
            return None;
        }
        let op_matches = self.operation == AclOperation::All
            || self.operation == operation
            || (self.permission == AclPermission::Allow && implies(self.operation, operation));
        op_matches.then_some(self.permission)
    }
}

/// Whether an ALLOW of `granted` also allows `wanted`.
pub(crate) fn implies(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    match wanted {
        Describe => matches!(granted, Read | Write | Delete | Alter),
        DescribeConfigs => granted == AlterConfigs,
        _ => false,
    }
}

/// FNV-1a: resource names are short, and a check hashes the name once per
/// list it probes (up to one per distinct prefix length), where SipHash's
/// setup cost dominated. The tables hold only names an operator with ALTER
/// on the cluster created, so flooding them with collisions is not a
/// client's attack.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type NameMap<V> = HashMap<Box<str>, V, BuildHasherDefault<Fnv>>;

/// The bindings of one resource type.
#[derive(Debug, Default)]
struct ResourceAcls {
    literal: NameMap<Vec<Entry>>,
    /// LITERAL `*`: every resource of the type.
    wildcard: Vec<Entry>,
    prefixed: NameMap<Vec<Entry>>,
    /// The distinct lengths of the PREFIXED names, ascending: the only
    /// prefixes of a resource name worth looking up.
    prefix_lens: Vec<usize>,
}

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    /// No binding exists for the resource at all: `allow.everyone.if.no.acl.found` decides.
    NoAcls,
}

/// The index of one [`AclImage`].
#[derive(Debug)]
pub struct AclSnapshot {
    /// The image it was built from: a new image sharing this `Arc` needs no rebuild.
    pub(crate) source: Arc<AclImage>,
    by_type: [ResourceAcls; 4],
}

fn type_index(resource_type: AclResourceType) -> usize {
    match resource_type {
        AclResourceType::Topic => 0,
        AclResourceType::Group => 1,
        AclResourceType::Cluster => 2,
        AclResourceType::TransactionalId => 3,
    }
}

impl AclSnapshot {
    pub fn build(source: Arc<AclImage>) -> Self {
        let mut by_type: [ResourceAcls; 4] = Default::default();
        for binding in &source.bindings {
            let acls = &mut by_type[type_index(binding.resource_type)];
            let entry = Entry::of(binding);
            let name: Box<str> = binding.resource_name.as_str().into();
            match binding.pattern_type {
                AclPatternType::Literal if binding.resource_name == WILDCARD => {
                    acls.wildcard.push(entry)
                }
                AclPatternType::Literal => acls.literal.entry(name).or_default().push(entry),
                AclPatternType::Prefixed => {
                    acls.prefix_lens.push(name.len());
                    acls.prefixed.entry(name).or_default().push(entry)
                }
            }
        }
        for acls in &mut by_type {
            acls.prefix_lens.sort_unstable();
            acls.prefix_lens.dedup();
        }
        AclSnapshot { source, by_type }
    }

    /// Kafka's `StandardAuthorizerData.authorize` without the super-user
    /// and default rules: any matching DENY wins, then any matching ALLOW.
    pub fn decide(
        &self,
        principal: Principal<'_>,
        host: IpAddr,
        operation: AclOperation,
        resource_type: AclResourceType,
        name: &str,
    ) -> Decision {
        let acls = &self.by_type[type_index(resource_type)];
        let prefixed = acls
            .prefix_lens
            .iter()
            .filter_map(|&len| name.get(..len).and_then(|prefix| acls.prefixed.get(prefix)));
        let lists = acls
            .literal
            .get(name)
            .into_iter()
            .chain(Some(&acls.wildcard))
            .chain(prefixed);
        let mut found = false;
        let mut allowed = false;
        for entries in lists {
            for entry in entries {
                found = true;
                match entry.decides(principal, host, operation) {
                    Some(AclPermission::Deny) => return Decision::Denied,
                    Some(AclPermission::Allow) => allowed = true,
                    None => {}
                }
            }
        }
        match (allowed, found) {
            (true, _) => Decision::Allowed,
            (false, true) => Decision::Denied,
            (false, false) => Decision::NoAcls,
        }
    }

    /// Kafka's `Authorizer.authorizeByResourceType`: may the principal do
    /// `operation` on at least one resource of the type? (An ALLOW not
    /// covered by a DENY of the same operation.) Rare (InitProducerId
    /// without a transactional id), so it walks the bindings.
    pub fn any_allowed(
        &self,
        principal: Principal<'_>,
        host: IpAddr,
        operation: AclOperation,
        resource_type: AclResourceType,
    ) -> Decision {
        let relevant = self.source.bindings.iter().filter(|b| {
            b.resource_type == resource_type
                && (b.operation == operation || b.operation == AclOperation::All)
                && Entry::of(b).applies_to(principal, host)
        });
        let (deny, allow): (Vec<&AclBinding>, Vec<&AclBinding>) =
            relevant.partition(|b| b.permission == AclPermission::Deny);
        let denied = |name: &str, pattern: AclPatternType| {
            deny.iter().any(|d| match d.pattern_type {
                AclPatternType::Literal => {
                    d.resource_name == WILDCARD
                        || (pattern == AclPatternType::Literal && d.resource_name == name)
                }
                AclPatternType::Prefixed => name.starts_with(d.resource_name.as_str()),
            })
        };
        if allow
            .iter()
            .any(|a| !denied(&a.resource_name, a.pattern_type))
        {
            Decision::Allowed
        } else if self
            .source
            .bindings
            .iter()
            .any(|b| b.resource_type == resource_type)
        {
            Decision::Denied
        } else {
            Decision::NoAcls
        }
    }
}
