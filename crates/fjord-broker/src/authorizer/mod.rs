//! The authorizer (Kafka's `StandardAuthorizer`): decides whether a
//! principal, connected from a host, may do an operation on a resource.
//!
//! The ACLs live in the metadata log; the metadata follower hands every
//! applied image's [`AclImage`] to [`Authorizer::publish`], which rebuilds
//! the index ([`AclSnapshot`]) only when the image's ACLs changed and swaps
//! it in whole. A check loads the current snapshot (an `ArcSwap` load: no
//! lock, no allocation) and looks the resource up in it, so a grant is seen
//! by the next request of every connection, without reconnecting.
//!
//! Off unless configured (`[broker] authorizer_enable`): then everything is
//! allowed, as Kafka without `authorizer.class.name`.

mod snapshot;

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use fjord_controller::{AclImage, AclOperation, AclResourceType};

pub use snapshot::{AclSnapshot, Decision, Principal};

/// Kafka's authorizer settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Check ACLs at all (Kafka: `authorizer.class.name` set to the
    /// `StandardAuthorizer`).
    pub enable: bool,
    /// `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`: allow a resource that has no ACL
    /// at all (Kafka's default, and ours: false).
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Kafka's `super.users` value: principals separated by semicolons.
    pub fn parse_super_users(value: &str) -> Vec<String> {
        value
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

pub struct Authorizer {
    config: AuthorizerConfig,
    /// `super.users` split into (type, name), so a check compares slices.
    super_users: Vec<(String, String)>,
    snapshot: ArcSwap<AclSnapshot>,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig, acls: Arc<AclImage>) -> Self {
        let super_users = config
            .super_users
            .iter()
            .filter_map(|p| p.split_once(':'))
            .map(|(t, n)| (t.to_owned(), n.to_owned()))
            .collect();
        Authorizer {
            config,
            super_users,
            snapshot: ArcSwap::from_pointee(AclSnapshot::build(acls)),
        }
    }

    /// Whether checks happen at all.
    pub fn enabled(&self) -> bool {
        self.config.enable
    }

    /// Take up the ACLs of a newly applied image; a no-op when they are the
    /// ones already published (the image shares the `Arc` then).
    pub fn publish(&self, acls: &Arc<AclImage>) {
        if !Arc::ptr_eq(&self.snapshot.load().source, acls) {
            self.snapshot
                .store(Arc::new(AclSnapshot::build(acls.clone())));
        }
    }

    fn is_super_user(&self, principal: Principal<'_>) -> bool {
        self.super_users
            .iter()
            .any(|(t, n)| *t == principal.principal_type && *n == principal.name)
    }

    fn resolve(&self, decision: Decision) -> bool {
        match decision {
            Decision::Allowed => true,
            Decision::Denied => false,
            Decision::NoAcls => self.config.allow_everyone_if_no_acl_found,
        }
    }

    /// May `principal` from `host` do `operation` on the resource?
    pub fn authorize(
        &self,
        principal: Principal<'_>,
        host: IpAddr,
        operation: AclOperation,
        resource_type: AclResourceType,
        name: &str,
    ) -> bool {
        if !self.config.enable || self.is_super_user(principal) {
            return true;
        }
        let decision = self
            .snapshot
            .load()
            .decide(principal, host, operation, resource_type, name);
        self.resolve(decision)
    }

    /// May `principal` do `operation` on some resource of the type
    /// (Kafka's `authorizeByResourceType`)?
    pub fn authorize_any(
        &self,
        principal: Principal<'_>,
        host: IpAddr,
        operation: AclOperation,
        resource_type: AclResourceType,
    ) -> bool {
        if !self.config.enable || self.is_super_user(principal) {
            return true;
        }
        let decision = self
            .snapshot
            .load()
            .any_allowed(principal, host, operation, resource_type);
        self.resolve(decision)
    }
}

#[cfg(test)]
mod tests;
