//! Kafka's precedence of config values, and the synonyms DescribeConfigs
//! lists: a topic override, then the broker synonym's dynamic per-broker
//! value, its dynamic cluster default, its static value (the node's config
//! file), and finally the default.

use std::collections::BTreeMap;

use crate::broker::broker_config;
use crate::def::ConfigDef;

/// Where a value comes from, numbered as DescribeConfigs reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    /// A group's own value (Kafka's GROUP_CONFIG).
    Group,
}

impl ConfigSource {
    /// DescribeConfigs' `configSource` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::Group => 8,
        }
    }
}

/// One candidate value of a config, most important first in a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

/// The value layers a broker resolves configs from. Maps are by Kafka name:
/// topic config names in `topic`, broker config names in the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigLayers<'a> {
    /// A topic's overrides (describing a topic).
    pub topic: Option<&'a BTreeMap<String, String>>,
    /// Dynamic configs of this broker.
    pub per_broker: Option<&'a BTreeMap<String, String>>,
    /// Dynamic cluster-wide defaults.
    pub cluster_default: Option<&'a BTreeMap<String, String>>,
    /// The node's static configs. A value equal to the default counts as
    /// unset: the node's config file cannot tell "set to the default"
    /// from "not set".
    pub static_configs: Option<&'a BTreeMap<String, String>>,
}

/// A topic config's candidate values, in precedence order; the first is the
/// effective one. Never empty.
pub fn topic_synonyms(def: &ConfigDef, layers: &ConfigLayers<'_>) -> Vec<ConfigSynonym> {
    let mut out = Vec::new();
    if let Some(v) = layers.topic.and_then(|t| t.get(def.name)) {
        out.push(ConfigSynonym {
            name: def.name.to_owned(),
            value: v.clone(),
            source: ConfigSource::DynamicTopic,
        });
    }
    match def.synonym.and_then(broker_config) {
        Some(broker) => out.extend(broker_synonyms(&broker, layers)),
        None => out.push(ConfigSynonym {
            name: def.name.to_owned(),
            value: def.default.to_owned(),
            source: ConfigSource::Default,
        }),
    }
    out
}

/// A group config's candidate values: the group's own value, then the
/// default of its broker synonym (`group.consumer.session.timeout.ms`;
/// Fjord has no way to set those). Never empty.
pub fn group_synonyms(
    def: &ConfigDef,
    group: Option<&BTreeMap<String, String>>,
) -> Vec<ConfigSynonym> {
    let mut out = Vec::new();
    if let Some(v) = group.and_then(|g| g.get(def.name)) {
        out.push(ConfigSynonym {
            name: def.name.to_owned(),
            value: v.clone(),
            source: ConfigSource::Group,
        });
    }
    out.push(ConfigSynonym {
        name: def.synonym.unwrap_or(def.name).to_owned(),
        value: def.default.to_owned(),
        source: ConfigSource::Default,
    });
    out
}

/// A broker config's candidate values, in precedence order; the first is
/// the effective one. Never empty.
pub fn broker_synonyms(def: &ConfigDef, layers: &ConfigLayers<'_>) -> Vec<ConfigSynonym> {
    let mut out = Vec::new();
    let mut push = |map: Option<&BTreeMap<String, String>>, source| {
        if let Some(v) = map.and_then(|m| m.get(def.name))
            && (source != ConfigSource::StaticBroker || v != def.default)
        {
            out.push(ConfigSynonym {
                name: def.name.to_owned(),
                value: v.clone(),
                source,
            });
        }
    };
    push(layers.per_broker, ConfigSource::DynamicBroker);
    push(layers.cluster_default, ConfigSource::DynamicDefaultBroker);
    push(layers.static_configs, ConfigSource::StaticBroker);
    out.push(ConfigSynonym {
        name: def.name.to_owned(),
        value: def.default.to_owned(),
        source: ConfigSource::Default,
    });
    out
}

/// The dynamic broker configs that set topic-config defaults, as topic
/// config names (`log.retention.ms` → `retention.ms`), per-broker over
/// cluster default. What a broker overlays on its static log defaults.
pub fn dynamic_topic_defaults(layers: &ConfigLayers<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for map in [layers.cluster_default, layers.per_broker]
        .into_iter()
        .flatten()
    {
        for (name, value) in map {
            if let Some(topic) = crate::broker::topic_config_of(name) {
                out.insert(topic.to_owned(), value.clone());
            }
        }
    }
    out
}

/// The effective dynamic value of broker config `name` (per-broker over
/// cluster default), if either is set.
pub fn dynamic_value<'a>(layers: &ConfigLayers<'a>, name: &str) -> Option<&'a str> {
    layers
        .per_broker
        .and_then(|m| m.get(name))
        .or_else(|| layers.cluster_default.and_then(|m| m.get(name)))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic_config;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(s: &[ConfigSynonym]) -> Vec<(&str, &str, i8)> {
        s.iter()
            .map(|s| (s.name.as_str(), s.value.as_str(), s.source.code()))
            .collect()
    }

    #[test]
    fn precedence_topic_broker_default_static_default() {
        let topic = map(&[("retention.ms", "1")]);
        let per_broker = map(&[("log.retention.ms", "2")]);
        let cluster = map(&[("log.retention.ms", "3")]);
        let statics = map(&[("log.retention.ms", "4")]);
        let def = topic_config("retention.ms").unwrap();
        let all = ConfigLayers {
            topic: Some(&topic),
            per_broker: Some(&per_broker),
            cluster_default: Some(&cluster),
            static_configs: Some(&statics),
        };
        assert_eq!(
            names(&topic_synonyms(def, &all)),
            vec![
                ("retention.ms", "1", 1),
                ("log.retention.ms", "2", 2),
                ("log.retention.ms", "3", 3),
                ("log.retention.ms", "4", 4),
                ("log.retention.ms", "604800000", 5),
            ]
        );
        // Peel the layers off one by one: the next one wins.
        let layers = ConfigLayers { topic: None, ..all };
        assert_eq!(topic_synonyms(def, &layers)[0].value, "2");
        let layers = ConfigLayers {
            per_broker: None,
            ..layers
        };
        assert_eq!(topic_synonyms(def, &layers)[0].value, "3");
        let layers = ConfigLayers {
            cluster_default: None,
            ..layers
        };
        assert_eq!(
            topic_synonyms(def, &layers)[0].source,
            ConfigSource::StaticBroker
        );
        let layers = ConfigLayers {
            static_configs: None,
            ..layers
        };
        assert_eq!(
            names(&topic_synonyms(def, &layers)),
            vec![("log.retention.ms", "604800000", 5)]
        );
        // A static value equal to the default is not reported as static.
        let statics = map(&[("log.retention.ms", "604800000")]);
        let layers = ConfigLayers {
            static_configs: Some(&statics),
            ..layers
        };
        assert_eq!(topic_synonyms(def, &layers).len(), 1);
    }

    #[test]
    fn configs_without_a_synonym_fall_back_to_their_default() {
        let def = topic_config("remote.storage.enable").unwrap();
        assert_eq!(
            names(&topic_synonyms(def, &ConfigLayers::default())),
            vec![("remote.storage.enable", "false", 5)]
        );
    }

    #[test]
    fn dynamic_topic_defaults_map_synonyms_per_broker_first() {
        let per_broker = map(&[("log.retention.ms", "2"), ("num.partitions", "3")]);
        let cluster = map(&[("log.retention.ms", "3"), ("log.cleanup.policy", "compact")]);
        let layers = ConfigLayers {
            per_broker: Some(&per_broker),
            cluster_default: Some(&cluster),
            ..Default::default()
        };
        assert_eq!(
            dynamic_topic_defaults(&layers),
            map(&[("cleanup.policy", "compact"), ("retention.ms", "2")])
        );
        assert_eq!(dynamic_value(&layers, "num.partitions"), Some("3"));
        assert_eq!(
            dynamic_value(&layers, "log.cleanup.policy"),
            Some("compact")
        );
    }
}
