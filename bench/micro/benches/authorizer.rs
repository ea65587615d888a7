//! The cost of one ACL check on the request path: `Authorizer::authorize`
//! against a snapshot of 10,000 literal topic bindings, 100 prefixed ones
//! (10 distinct prefix lengths) and a wildcard, for a literal hit, a
//! prefixed hit and a miss (every list searched, then denied). Also the
//! authorizer off (the default), which every handler pays.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use fjord_broker::authorizer::{Authorizer, AuthorizerConfig, Principal};
use fjord_controller::{
    AclBinding, AclImage, AclOperation, AclPatternType, AclPermission, AclResourceType,
};

fn binding(name: String, pattern_type: AclPatternType, principal: &str) -> AclBinding {
    AclBinding {
        resource_type: AclResourceType::Topic,
        resource_name: name,
        pattern_type,
        principal: principal.to_owned(),
        host: "*".to_owned(),
        operation: AclOperation::Write,
        permission: AclPermission::Allow,
    }
}

fn image() -> Arc<AclImage> {
    let mut bindings = BTreeSet::new();
    for i in 0..10_000 {
        bindings.insert(binding(
            format!("topic-{i}"),
            AclPatternType::Literal,
            "User:alice",
        ));
    }
    for i in 0..100 {
        let prefix = format!("{}-{i}", "p".repeat(i % 10 + 1));
        bindings.insert(binding(prefix, AclPatternType::Prefixed, "User:bob"));
    }
    bindings.insert(binding("*".into(), AclPatternType::Literal, "User:carol"));
    Arc::new(AclImage { bindings })
}

fn authorize(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorize");
    let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let alice = Principal {
        principal_type: "User",
        name: "alice",
    };
    let bob = Principal {
        principal_type: "User",
        name: "bob",
    };
    let on = AuthorizerConfig {
        enable: true,
        ..AuthorizerConfig::default()
    };
    let authorizer = Authorizer::new(on, image());
    let cases = [
        ("literal_hit", alice, "topic-4242", true),
        ("prefixed_hit", bob, "ppppp-44-orders", true),
        ("miss", alice, "unknown-topic", false),
    ];
    for (name, principal, topic, want) in cases {
        assert_eq!(
            authorizer.authorize(
                principal,
                host,
                AclOperation::Write,
                AclResourceType::Topic,
                topic
            ),
            want,
            "{name}"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                authorizer.authorize(
                    black_box(principal),
                    host,
                    AclOperation::Write,
                    AclResourceType::Topic,
                    black_box(topic),
                )
            })
        });
    }
    let off = Authorizer::new(AuthorizerConfig::default(), image());
    group.bench_function("off", |b| {
        b.iter(|| {
            off.authorize(
                black_box(alice),
                host,
                AclOperation::Write,
                AclResourceType::Topic,
                "t",
            )
        })
    });
    group.finish();
}

criterion_group!(benches, authorize);
criterion_main!(benches);
