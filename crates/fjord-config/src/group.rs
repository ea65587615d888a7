//! Kafka 4.x's group configs (`GroupConfig`, KIP-848 / KIP-932 / KIP-1071):
//! per-group overrides of the broker's `group.*` settings, set with the alter
//! APIs on a GROUP resource. Fjord serves the classic group protocol only,
//! so none is applied: they are accepted, validated, stored and described as
//! Kafka does, for the tools that set them.

use crate::def::{ConfigDef, ConfigType, UpdateMode, Validator};

const fn group(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    validator: Validator,
    synonym: &'static str,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        config_type,
        default,
        validator,
        doc,
        synonym: Some(synonym),
        update_mode: UpdateMode::ClusterWide,
        sensitive: false,
        applied: false,
    }
}

const fn between(min: i64, max: i64) -> Validator {
    Validator::Range { min, max }
}

use ConfigType::{Int, String as Str};

/// Sorted by name. Ranges are the broker's default min/max bounds
/// (`group.consumer.min.session.timeout.ms` ...), which Fjord does not let
/// anyone change.
pub const GROUP_CONFIGS: &[ConfigDef] = &[
    group(
        "consumer.heartbeat.interval.ms",
        Int,
        "5000",
        between(5000, 15000),
        "group.consumer.heartbeat.interval.ms",
        "Heartbeat interval of the group's members (consumer protocol).",
    ),
    group(
        "consumer.session.timeout.ms",
        Int,
        "45000",
        between(45000, 60000),
        "group.consumer.session.timeout.ms",
        "Session timeout of the group's members (consumer protocol).",
    ),
    group(
        "share.auto.offset.reset",
        Str,
        "latest",
        Validator::OneOf(&["latest", "earliest"]),
        "group.share.auto.offset.reset",
        "Where a share group starts on a partition without a start offset.",
    ),
    group(
        "share.heartbeat.interval.ms",
        Int,
        "5000",
        between(5000, 15000),
        "group.share.heartbeat.interval.ms",
        "Heartbeat interval of the share group's members.",
    ),
    group(
        "share.isolation.level",
        Str,
        "read_uncommitted",
        Validator::OneOf(&["read_committed", "read_uncommitted"]),
        "group.share.isolation.level",
        "Whether a share group reads transactional records before they commit.",
    ),
    group(
        "share.record.lock.duration.ms",
        Int,
        "30000",
        between(15000, 60000),
        "group.share.record.lock.duration.ms",
        "How long a share group member holds acquired records.",
    ),
    group(
        "share.session.timeout.ms",
        Int,
        "45000",
        between(45000, 60000),
        "group.share.session.timeout.ms",
        "Session timeout of the share group's members.",
    ),
    group(
        "streams.heartbeat.interval.ms",
        Int,
        "5000",
        between(5000, 15000),
        "group.streams.heartbeat.interval.ms",
        "Heartbeat interval of the streams group's members.",
    ),
    group(
        "streams.num.standby.replicas",
        Int,
        "0",
        between(0, 2),
        "group.streams.num.standby.replicas",
        "Standby replicas per task of the streams group.",
    ),
    group(
        "streams.session.timeout.ms",
        Int,
        "45000",
        between(45000, 60000),
        "group.streams.session.timeout.ms",
        "Session timeout of the streams group's members.",
    ),
];

/// The group config called `name`.
pub fn group_config(name: &str) -> Option<&'static ConfigDef> {
    GROUP_CONFIGS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_defaults_valid() {
        for pair in GROUP_CONFIGS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{}", pair[1].name);
        }
        for c in GROUP_CONFIGS {
            assert_eq!(c.validate(c.default), Ok(()), "{}", c.name);
        }
        let c = group_config("consumer.session.timeout.ms").unwrap();
        assert!(c.validate("50000").is_ok());
        assert!(c.validate("1000").is_err());
    }
}
