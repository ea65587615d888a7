//! The registry of every config Fjord knows: Kafka 4.x's topic configs
//! (`TopicConfig`) and the broker configs Fjord has, each with its type,
//! default, validator, documentation, broker-level synonym and update mode.
//!
//! A leaf crate with no Fjord dependency so that every layer reads the same
//! definitions without a cycle: the log (typed parsing of the configs it
//! applies stays in `fjord_log::LogConfig`), the controller (elections read
//! `unclean.leader.election.enable`), the broker (CreateTopics validation,
//! the alter APIs, DescribeConfigs, dynamic broker configs) and the gateway.
//!
//! Layout:
//! - [`def`]: [`ConfigDef`] and its parts ([`ConfigType`], [`UpdateMode`],
//!   the validator), value checking with [`ConfigError`].
//! - [`topic`]: the topic config table.
//! - [`broker`]: the broker config table; a topic config's broker synonym
//!   (`log.retention.ms`) is a broker config derived from the topic entry.
//! - [`group`]: the group config table (GROUP resources; stored, not applied).
//! - [`alter`]: IncrementalAlterConfigs' SET / DELETE / APPEND / SUBTRACT and
//!   AlterConfigs' replace-all, as pure functions on config maps.
//! - [`resolve`]: Kafka's precedence (topic override > dynamic per-broker >
//!   dynamic cluster default > static > default) and the synonyms
//!   DescribeConfigs lists.
//!
//! Invariants: names are unique per table; every default passes its own
//! validator; a topic config's synonym, when it has one, resolves to a broker
//! config of the same type (tests check all three).

pub mod alter;
pub mod broker;
pub mod def;
pub mod group;
pub mod resolve;
pub mod topic;

pub use alter::{AlterError, AlterOp, ConfigChange, OpType, apply_incremental, replace_all};
pub use broker::{BROKER_CONFIGS, all_broker_configs, broker_config, topic_config_of};
pub use def::{ConfigDef, ConfigError, ConfigType, UpdateMode};
pub use group::{GROUP_CONFIGS, group_config};
pub use resolve::{
    ConfigLayers, ConfigSource, ConfigSynonym, broker_synonyms, dynamic_topic_defaults,
    dynamic_value, group_synonyms, topic_synonyms,
};
pub use topic::{TOPIC_CONFIGS, topic_config};
