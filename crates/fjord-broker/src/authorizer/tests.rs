//! The authorizer's rules, table-driven: each case is a set of bindings,
//! a request and the expected answer.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use fjord_controller::{
    AclBinding, AclImage, AclOperation as Op, AclPatternType as Pt, AclPermission as Perm,
    AclResourceType as Rt,
};

use super::*;

const ALICE: Principal<'static> = Principal {
    principal_type: "User",
    name: "alice",
};
const HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fn acl(rt: Rt, name: &str, pt: Pt, principal: &str, op: Op, perm: Perm) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pt,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: perm,
    }
}

fn allow(name: &str, pt: Pt, op: Op) -> AclBinding {
    acl(Rt::Topic, name, pt, "User:alice", op, Perm::Allow)
}

fn deny(name: &str, pt: Pt, op: Op) -> AclBinding {
    acl(Rt::Topic, name, pt, "User:alice", op, Perm::Deny)
}

fn authorizer(config: AuthorizerConfig, bindings: Vec<AclBinding>) -> Authorizer {
    let image = AclImage {
        bindings: bindings.into_iter().collect::<BTreeSet<_>>(),
    };
    Authorizer::new(config, Arc::new(image))
}

fn on() -> AuthorizerConfig {
    AuthorizerConfig {
        enable: true,
        ..AuthorizerConfig::default()
    }
}

#[test]
fn rules() {
    use Pt::{Literal, Prefixed};
    let cases: Vec<(&str, Vec<AclBinding>, Op, &str, bool)> = vec![
        ("no acls: denied", vec![], Op::Read, "t", false),
        (
            "literal allow",
            vec![allow("t", Literal, Op::Read)],
            Op::Read,
            "t",
            true,
        ),
        (
            "literal is exact",
            vec![allow("t", Literal, Op::Read)],
            Op::Read,
            "tt",
            false,
        ),
        (
            "other operation",
            vec![allow("t", Literal, Op::Read)],
            Op::Write,
            "t",
            false,
        ),
        (
            "wildcard name",
            vec![allow("*", Literal, Op::Write)],
            Op::Write,
            "any",
            true,
        ),
        (
            "prefixed",
            vec![allow("ord", Prefixed, Op::Read)],
            Op::Read,
            "orders",
            true,
        ),
        (
            "prefixed whole name",
            vec![allow("ord", Prefixed, Op::Read)],
            Op::Read,
            "ord",
            true,
        ),
        (
            "prefixed not a prefix",
            vec![allow("ord", Prefixed, Op::Read)],
            Op::Read,
            "or",
            false,
        ),
        (
            "all",
            vec![allow("t", Literal, Op::All)],
            Op::Delete,
            "t",
            true,
        ),
        (
            "read implies describe",
            vec![allow("t", Literal, Op::Read)],
            Op::Describe,
            "t",
            true,
        ),
        (
            "write implies describe",
            vec![allow("t", Literal, Op::Write)],
            Op::Describe,
            "t",
            true,
        ),
        (
            "delete implies describe",
            vec![allow("t", Literal, Op::Delete)],
            Op::Describe,
            "t",
            true,
        ),
        (
            "alter implies describe",
            vec![allow("t", Literal, Op::Alter)],
            Op::Describe,
            "t",
            true,
        ),
        (
            "create does not",
            vec![allow("t", Literal, Op::Create)],
            Op::Describe,
            "t",
            false,
        ),
        (
            "alter configs implies describe configs",
            vec![allow("t", Literal, Op::AlterConfigs)],
            Op::DescribeConfigs,
            "t",
            true,
        ),
        (
            "describe implies nothing",
            vec![allow("t", Literal, Op::Describe)],
            Op::Read,
            "t",
            false,
        ),
        (
            "deny wins over allow",
            vec![allow("t", Literal, Op::Read), deny("t", Literal, Op::Read)],
            Op::Read,
            "t",
            false,
        ),
        (
            "prefixed deny wins over literal allow",
            vec![
                allow("orders", Literal, Op::Read),
                deny("ord", Prefixed, Op::Read),
            ],
            Op::Read,
            "orders",
            false,
        ),
        (
            "wildcard deny wins",
            vec![allow("t", Literal, Op::All), deny("*", Literal, Op::All)],
            Op::Write,
            "t",
            false,
        ),
        (
            "deny read does not deny describe",
            vec![allow("t", Literal, Op::Read), deny("t", Literal, Op::Read)],
            Op::Describe,
            "t",
            true,
        ),
        (
            "acls for someone else only: denied",
            vec![acl(
                Rt::Topic,
                "t",
                Literal,
                "User:bob",
                Op::Read,
                Perm::Allow,
            )],
            Op::Read,
            "t",
            false,
        ),
        (
            "wildcard principal",
            vec![acl(
                Rt::Topic,
                "t",
                Literal,
                "User:*",
                Op::Read,
                Perm::Allow,
            )],
            Op::Read,
            "t",
            true,
        ),
        (
            "other principal type",
            vec![acl(
                Rt::Topic,
                "t",
                Literal,
                "Group:alice",
                Op::Read,
                Perm::Allow,
            )],
            Op::Read,
            "t",
            false,
        ),
        (
            "same name, other resource type",
            vec![acl(
                Rt::Group,
                "t",
                Literal,
                "User:alice",
                Op::Read,
                Perm::Allow,
            )],
            Op::Read,
            "t",
            false,
        ),
    ];
    for (what, bindings, op, name, want) in cases {
        let az = authorizer(on(), bindings);
        assert_eq!(
            az.authorize(ALICE, HOST, op, Rt::Topic, name),
            want,
            "{what}"
        );
    }
}

#[test]
fn hosts() {
    let from = |host: &str| {
        let mut b = allow("t", Pt::Literal, Op::Read);
        b.host = host.into();
        authorizer(on(), vec![b]).authorize(ALICE, HOST, Op::Read, Rt::Topic, "t")
    };
    assert!(from("*"));
    assert!(from("10.0.0.1"));
    assert!(!from("10.0.0.2"));
    assert!(!from("not-an-address"));
}

#[test]
fn defaults_super_users_and_off() {
    let bob_only = vec![acl(
        Rt::Topic,
        "t",
        Pt::Literal,
        "User:bob",
        Op::Read,
        Perm::Allow,
    )];
    let everyone = AuthorizerConfig {
        allow_everyone_if_no_acl_found: true,
        ..on()
    };
    let az = authorizer(everyone, bob_only.clone());
    assert!(
        az.authorize(ALICE, HOST, Op::Read, Rt::Topic, "other"),
        "no acl found"
    );
    assert!(
        !az.authorize(ALICE, HOST, Op::Read, Rt::Topic, "t"),
        "acls exist"
    );
    let supers = AuthorizerConfig {
        super_users: AuthorizerConfig::parse_super_users("User:admin; User:alice"),
        ..on()
    };
    let mut deny_all = bob_only.clone();
    deny_all.push(deny("*", Pt::Literal, Op::All));
    assert!(authorizer(supers, deny_all.clone()).authorize(ALICE, HOST, Op::Write, Rt::Topic, "t"));
    let off = AuthorizerConfig::default();
    assert!(authorizer(off, deny_all).authorize(ALICE, HOST, Op::Write, Rt::Topic, "t"));
}

#[test]
fn publish_swaps_only_on_change() {
    let az = authorizer(on(), vec![]);
    assert!(!az.authorize(ALICE, HOST, Op::Read, Rt::Topic, "t"));
    let image = Arc::new(AclImage {
        bindings: [allow("t", Pt::Literal, Op::Read)].into_iter().collect(),
    });
    az.publish(&image);
    assert!(az.authorize(ALICE, HOST, Op::Read, Rt::Topic, "t"));
    let before = az.snapshot.load_full();
    az.publish(&image);
    assert!(
        Arc::ptr_eq(&before, &az.snapshot.load_full()),
        "same acls: no rebuild"
    );
}

/// Kafka's `authorizeByResourceType`, as InitProducerId uses it.
#[test]
fn any_resource_of_a_type() {
    use Pt::{Literal, Prefixed};
    let cases: Vec<(&str, Vec<AclBinding>, bool)> = vec![
        ("nothing", vec![], false),
        ("one literal", vec![allow("t", Literal, Op::Write)], true),
        ("all", vec![allow("t", Literal, Op::All)], true),
        ("read only", vec![allow("t", Literal, Op::Read)], false),
        (
            "denied by wildcard",
            vec![
                allow("t", Literal, Op::Write),
                deny("*", Literal, Op::Write),
            ],
            false,
        ),
        (
            "denied by prefix",
            vec![
                allow("abc", Prefixed, Op::Write),
                deny("ab", Prefixed, Op::Write),
            ],
            false,
        ),
        (
            "prefix allow survives a literal deny",
            vec![
                allow("ab", Prefixed, Op::Write),
                deny("abc", Literal, Op::Write),
            ],
            true,
        ),
    ];
    for (what, bindings, want) in cases {
        let az = authorizer(on(), bindings);
        assert_eq!(
            az.authorize_any(ALICE, HOST, Op::Write, Rt::Topic),
            want,
            "{what}"
        );
    }
}
