//! Kafka topic configs that Fjord accepts, validates and stores, but does
//! not apply yet: CreateTopics with them succeeds (as on Kafka, where
//! Kafka Streams, Connect and admin tools set them), DescribeConfigs shows
//! them with Kafka's defaults. The configs the log and the broker apply are
//! `fjord_log::LogConfig`'s and `BROKER_TOPIC_CONFIGS` (admin.rs); a config
//! moves from here to there once Fjord honours it (compaction's configs
//! with the log cleaner). `docs/compatibility.md` lists them.

/// How a value is checked, as Kafka's `ConfigDef` types and validators.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A long within `[min, max]`.
    Long {
        min: i64,
        max: i64,
    },
    Bool,
    /// A list of `partition:broker` pairs, or `*` (replication throttles).
    Replicas,
}

pub(crate) struct StoredConfig {
    pub(crate) name: &'static str,
    /// Kafka 4.1's default, as DescribeConfigs shows it.
    pub(crate) default: &'static str,
    kind: Kind,
}

const fn long(min: i64) -> Kind {
    Kind::Long { min, max: i64::MAX }
}

/// By name; Kafka 4.1's `TopicConfig` names the log and the broker do not apply.
pub(crate) const STORED_CONFIGS: &[StoredConfig] = &[
    StoredConfig {
        name: "file.delete.delay.ms",
        default: "60000",
        kind: long(0),
    },
    StoredConfig {
        name: "follower.replication.throttled.replicas",
        default: "",
        kind: Kind::Replicas,
    },
    StoredConfig {
        name: "leader.replication.throttled.replicas",
        default: "",
        kind: Kind::Replicas,
    },
    StoredConfig {
        name: "preallocate",
        default: "false",
        kind: Kind::Bool,
    },
    StoredConfig {
        name: "segment.jitter.ms",
        default: "0",
        kind: long(0),
    },
];

/// The stored-only config called `name`, if it is one.
pub(crate) fn stored_config(name: &str) -> Option<&'static StoredConfig> {
    STORED_CONFIGS.iter().find(|c| c.name == name)
}

impl StoredConfig {
    /// Checks `value` as Kafka would; the reason names the config.
    pub(crate) fn validate(&self, value: &str) -> Result<(), String> {
        let v = value.trim();
        let ok = match self.kind {
            Kind::Long { min, max } => v.parse::<i64>().is_ok_and(|n| (min..=max).contains(&n)),
            Kind::Bool => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
            Kind::Replicas => v.is_empty() || v == "*" || v.split(',').all(is_replica_pair),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid value {value} for configuration {}: {}",
                self.name,
                self.expected()
            ))
        }
    }

    fn expected(&self) -> String {
        match self.kind {
            Kind::Long { min, max } if max == i64::MAX => format!("a long of at least {min}"),
            Kind::Long { min, max } => format!("a long in [{min}, {max}]"),
            Kind::Bool => "true or false".into(),
            Kind::Replicas => "a list of partition:broker pairs, or *".into(),
        }
    }
}

/// `partition:broker`, both non-negative integers.
fn is_replica_pair(pair: &str) -> bool {
    pair.trim()
        .split_once(':')
        .is_some_and(|(p, b)| p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: &str) -> Result<(), String> {
        stored_config(name).expect("stored config").validate(value)
    }

    #[test]
    fn values_are_checked_as_kafka_does() {
        for (name, good, bad) in [
            ("preallocate", "TRUE", "yes"),
            ("leader.replication.throttled.replicas", "0:1, 1:2", "0-1"),
            ("leader.replication.throttled.replicas", "*", "a:b"),
        ] {
            assert_eq!(check(name, good), Ok(()), "{name}={good}");
            let err = check(name, bad).expect_err(bad);
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn defaults_are_valid_and_names_unique() {
        for (i, c) in STORED_CONFIGS.iter().enumerate() {
            assert_eq!(c.validate(c.default), Ok(()), "{}", c.name);
            assert!(
                STORED_CONFIGS[..i].iter().all(|o| o.name != c.name),
                "{} twice",
                c.name
            );
            assert!(
                !fjord_log::LogConfig::is_known(c.name),
                "{} is applied by the log",
                c.name
            );
        }
        assert!(stored_config("dummy.doesntexist").is_none());
    }
}
