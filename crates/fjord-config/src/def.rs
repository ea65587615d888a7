//! What a config is: [`ConfigDef`], and how a value is checked.

/// Kafka's `ConfigDef.Type`, numbered as DescribeConfigs v3+ reports it
/// (`configType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    /// The DescribeConfigs `configType` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }
}

/// Whether and where a broker config may change at runtime (Kafka's
/// "Update Mode" column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Only from the node's config file; a restart applies a change.
    ReadOnly,
    /// Dynamically, per broker only.
    PerBroker,
    /// Dynamically, per broker or as the cluster-wide default.
    ClusterWide,
}

/// How a value is checked, as Kafka's types and validators.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Validator {
    /// Anything of the type (booleans and numbers still parse).
    Any,
    /// An integer (of the def's type) in `[min, max]`.
    Range { min: i64, max: i64 },
    /// A double in `[min, max]`.
    DoubleRange { min: f64, max: f64 },
    /// One of the listed strings (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A non-empty comma-separated list of the listed items.
    ListOf(&'static [&'static str]),
    /// `partition:broker` pairs, or `*` (replication throttles).
    ThrottledReplicas,
}

/// One config's definition.
#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    pub config_type: ConfigType,
    /// Kafka 4.x's default, as DescribeConfigs shows it.
    pub default: &'static str,
    pub(crate) validator: Validator,
    /// One or two sentences for DescribeConfigs' `documentation`.
    pub doc: &'static str,
    /// For a topic config: the broker config that sets its default
    /// (`log.retention.ms` for `retention.ms`), if any. For a broker config
    /// derived from a topic config: that topic config's name.
    pub synonym: Option<&'static str>,
    /// For a broker config: how it can change. Topic configs always change
    /// dynamically (per topic) and carry `ClusterWide` here.
    pub update_mode: UpdateMode,
    /// Whether the value is secret (never returned by DescribeConfigs).
    pub sensitive: bool,
    /// Whether Fjord acts on the value. Unapplied configs are accepted,
    /// stored and described as Kafka does, so that tools setting them
    /// work; `docs/config.md` lists them.
    pub applied: bool,
}

/// Why a config name or value was refused. The Display text is what the
/// client sees as the error message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Unknown topic config name: {name}")]
    UnknownTopicConfig { name: String },
    #[error("Unknown broker config name: {name}")]
    UnknownBrokerConfig { name: String },
    #[error("Unknown group config name: {name}")]
    UnknownGroupConfig { name: String },
    #[error("Invalid value {value} for configuration {name}: {expected}")]
    InvalidValue {
        name: &'static str,
        value: String,
        expected: String,
    },
    /// Kafka's INVALID_REQUEST: a read-only broker config cannot change at runtime.
    #[error("Cannot update these configs dynamically: {name} is read-only")]
    ReadOnly { name: &'static str },
    #[error("Cannot update {name} at the cluster default level; a broker id must be given")]
    PerBrokerOnly { name: &'static str },
}

impl ConfigDef {
    /// Check `value` as Kafka would.
    pub fn validate(&self, value: &str) -> Result<(), ConfigError> {
        if self.is_valid(value.trim()) {
            Ok(())
        } else {
            Err(ConfigError::InvalidValue {
                name: self.name,
                value: value.to_owned(),
                expected: self.expected(),
            })
        }
    }

    fn is_valid(&self, v: &str) -> bool {
        let typed = match self.config_type {
            ConfigType::Boolean => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            ConfigType::Int => v.parse::<i32>().is_ok(),
            ConfigType::Short => v.parse::<i16>().is_ok(),
            ConfigType::Long => v.parse::<i64>().is_ok(),
            ConfigType::Double => v.parse::<f64>().is_ok_and(f64::is_finite),
            ConfigType::String | ConfigType::List | ConfigType::Class | ConfigType::Password => {
                true
            }
        };
        typed
            && match self.validator {
                Validator::Any => true,
                Validator::Range { min, max } => {
                    v.parse::<i64>().is_ok_and(|n| (min..=max).contains(&n))
                }
                Validator::DoubleRange { min, max } => {
                    v.parse::<f64>().is_ok_and(|n| (min..=max).contains(&n))
                }
                Validator::OneOf(allowed) => allowed.contains(&v),
                Validator::ListOf(allowed) => {
                    !v.is_empty() && split_list(v).all(|item| allowed.contains(&item))
                }
                Validator::ThrottledReplicas => {
                    v.is_empty() || v == "*" || split_list(v).all(is_replica_pair)
                }
            }
    }

    /// What a valid value looks like, for error messages.
    fn expected(&self) -> String {
        match self.validator {
            Validator::Range { min, max } if max == i64::MAX => {
                format!("Value must be at least {min}")
            }
            Validator::Range { min, max } => format!("Value must be in [{min}, {max}]"),
            Validator::DoubleRange { min, max } => format!("Value must be in [{min}, {max}]"),
            Validator::OneOf(allowed) => format!("String must be one of: {}", allowed.join(", ")),
            Validator::ListOf(allowed) => {
                format!("List must be non-empty, items from: {}", allowed.join(", "))
            }
            Validator::ThrottledReplicas => {
                "must be a list of [partitionId]:[brokerId] or the wildcard '*'".into()
            }
            Validator::Any => format!("Expected value to be of type {:?}", self.config_type),
        }
    }

    /// Whether the config holds a list (APPEND and SUBTRACT apply).
    pub fn is_list(&self) -> bool {
        self.config_type == ConfigType::List
    }
}

/// The items of a comma-separated list value, trimmed, empty items dropped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `partition:broker`, both non-negative integers.
fn is_replica_pair(pair: &str) -> bool {
    pair.split_once(':')
        .is_some_and(|(p, b)| p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use crate::topic_config;

    fn check(name: &str, value: &str) -> bool {
        topic_config(name).expect(name).validate(value).is_ok()
    }

    #[test]
    fn values_are_checked_as_kafka_does() {
        for (name, good, bad) in [
            ("compression.type", "lz4", "brotli"),
            ("compression.type", "producer", "Producer"),
            ("delete.retention.ms", "900", "-1"),
            ("max.compaction.lag.ms", "1", "0"),
            ("min.cleanable.dirty.ratio", "0.1", "1.5"),
            ("compression.gzip.level", "-1", "10"),
            ("preallocate", "TRUE", "yes"),
            ("leader.replication.throttled.replicas", "0:1, 1:2", "0-1"),
            ("leader.replication.throttled.replicas", "*", "a:b"),
            ("cleanup.policy", "compact,delete", "shred"),
            ("cleanup.policy", "compact", ""),
            ("segment.bytes", "1048576", "10"),
            ("segment.bytes", "1048576", "4294967296"),
            ("retention.ms", "-1", "-2"),
            ("message.timestamp.type", "LogAppendTime", "Now"),
            ("min.insync.replicas", "2", "0"),
            ("unclean.leader.election.enable", "true", "1"),
        ] {
            assert!(check(name, good), "{name}={good}");
            assert!(!check(name, bad), "{name}={bad}");
        }
        let err = topic_config("retention.ms")
            .unwrap()
            .validate("x")
            .unwrap_err();
        assert!(err.to_string().contains("retention.ms"), "{err}");
    }
}
