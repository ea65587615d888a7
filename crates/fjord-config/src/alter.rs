//! The alter APIs' semantics on one resource's dynamic configs, as pure
//! functions: IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT) and
//! AlterConfigs (the request's set replaces every dynamic config).
//!
//! Both return the [`ConfigChange`] to commit (what to set, what to
//! delete), so the controller's command stays an incremental one and the
//! caller can check it before proposing it.

use std::collections::{BTreeMap, BTreeSet};

use crate::def::{ConfigDef, ConfigError, split_list};

/// Kafka's `AlterConfigOp.OpType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpType {
    Set,
    Delete,
    Append,
    Subtract,
}

impl OpType {
    /// From the wire code (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT).
    pub fn from_code(code: i8) -> Option<OpType> {
        match code {
            0 => Some(OpType::Set),
            1 => Some(OpType::Delete),
            2 => Some(OpType::Append),
            3 => Some(OpType::Subtract),
            _ => None,
        }
    }
}

/// One entry of an IncrementalAlterConfigs resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterOp {
    pub name: String,
    pub op: OpType,
    pub value: Option<String>,
}

/// What to commit for one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigChange {
    pub set: BTreeMap<String, String>,
    pub delete: Vec<String>,
}

impl ConfigChange {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

/// Why an alter was refused. [`AlterError::Config`] carries the registry's
/// verdict; the rest are request shape errors (Kafka's INVALID_REQUEST)
/// except [`AlterError::NotAList`] (INVALID_CONFIG).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("Error due to duplicate config keys: {name}")]
    DuplicateKey { name: String },
    #[error("Null value not supported for: {name}")]
    NullValue { name: String },
    #[error("Config value append or subtract is not allowed for config key: {name} (not a list)")]
    NotAList { name: String },
}

/// Apply `ops` to `current` (the resource's dynamic configs). `lookup`
/// finds a name's definition and refuses names that may not change here.
pub fn apply_incremental(
    current: &BTreeMap<String, String>,
    ops: &[AlterOp],
    lookup: impl Fn(&str) -> Result<ConfigDef, ConfigError>,
) -> Result<ConfigChange, AlterError> {
    let mut seen = BTreeSet::new();
    let mut next = current.clone();
    for op in ops {
        if !seen.insert(op.name.as_str()) {
            return Err(AlterError::DuplicateKey {
                name: op.name.clone(),
            });
        }
        let def = lookup(&op.name)?;
        let value = || {
            op.value.clone().ok_or_else(|| AlterError::NullValue {
                name: op.name.clone(),
            })
        };
        match op.op {
            OpType::Set => {
                let v = value()?;
                def.validate(&v)?;
                next.insert(op.name.clone(), v);
            }
            OpType::Delete => {
                next.remove(&op.name);
            }
            OpType::Append | OpType::Subtract => {
                if !def.is_list() {
                    return Err(AlterError::NotAList {
                        name: op.name.clone(),
                    });
                }
                let v = value()?;
                let base = next
                    .get(&op.name)
                    .map_or(def.default, String::as_str)
                    .to_owned();
                let mut items: Vec<&str> = split_list(&base).collect();
                for item in split_list(&v) {
                    if op.op == OpType::Append {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    } else {
                        items.retain(|i| *i != item);
                    }
                }
                let joined = items.join(",");
                def.validate(&joined)?;
                next.insert(op.name.clone(), joined);
            }
        }
    }
    Ok(diff(current, next))
}

/// AlterConfigs: `configs` becomes the resource's whole set of dynamic
/// configs; every other dynamic config is deleted.
pub fn replace_all(
    current: &BTreeMap<String, String>,
    configs: &[(String, Option<String>)],
    lookup: impl Fn(&str) -> Result<ConfigDef, ConfigError>,
) -> Result<ConfigChange, AlterError> {
    let mut next = BTreeMap::new();
    for (name, value) in configs {
        if next.contains_key(name) {
            return Err(AlterError::DuplicateKey { name: name.clone() });
        }
        let def = lookup(name)?;
        let value = value
            .clone()
            .ok_or_else(|| AlterError::NullValue { name: name.clone() })?;
        def.validate(&value)?;
        next.insert(name.clone(), value);
    }
    Ok(diff(current, next))
}

fn diff(current: &BTreeMap<String, String>, next: BTreeMap<String, String>) -> ConfigChange {
    let delete = current
        .keys()
        .filter(|k| !next.contains_key(*k))
        .cloned()
        .collect();
    let set = next
        .into_iter()
        .filter(|(k, v)| current.get(k) != Some(v))
        .collect();
    ConfigChange { set, delete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic_config;

    fn lookup(name: &str) -> Result<ConfigDef, ConfigError> {
        topic_config(name)
            .copied()
            .ok_or_else(|| ConfigError::UnknownTopicConfig { name: name.into() })
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn op(name: &str, op: OpType, value: Option<&str>) -> AlterOp {
        AlterOp {
            name: name.into(),
            op,
            value: value.map(Into::into),
        }
    }

    /// (configs set, configs deleted).
    type Want = (
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );

    #[test]
    fn incremental_operations() {
        struct Case {
            name: &'static str,
            current: &'static [(&'static str, &'static str)],
            ops: Vec<AlterOp>,
            want: Result<Want, AlterError>,
        }
        let cases = [
            Case {
                name: "set adds, other keys kept",
                current: &[("retention.ms", "1000")],
                ops: vec![op("segment.ms", OpType::Set, Some("5000"))],
                want: Ok((&[("segment.ms", "5000")], &[])),
            },
            Case {
                name: "set to the same value changes nothing",
                current: &[("retention.ms", "1000")],
                ops: vec![op("retention.ms", OpType::Set, Some("1000"))],
                want: Ok((&[], &[])),
            },
            Case {
                name: "delete of a set key and of an unset key",
                current: &[("retention.ms", "1000")],
                ops: vec![
                    op("retention.ms", OpType::Delete, None),
                    op("segment.ms", OpType::Delete, None),
                ],
                want: Ok((&[], &["retention.ms"])),
            },
            Case {
                name: "append starts from the default",
                current: &[],
                ops: vec![op("cleanup.policy", OpType::Append, Some("compact"))],
                want: Ok((&[("cleanup.policy", "delete,compact")], &[])),
            },
            Case {
                name: "append of a present item is a no-op",
                current: &[("cleanup.policy", "compact")],
                ops: vec![op("cleanup.policy", OpType::Append, Some("compact"))],
                want: Ok((&[], &[])),
            },
            Case {
                name: "subtract removes an item",
                current: &[("cleanup.policy", "compact,delete")],
                ops: vec![op("cleanup.policy", OpType::Subtract, Some("delete"))],
                want: Ok((&[("cleanup.policy", "compact")], &[])),
            },
            Case {
                name: "subtract to an empty policy is invalid",
                current: &[("cleanup.policy", "compact")],
                ops: vec![op("cleanup.policy", OpType::Subtract, Some("compact"))],
                want: Err(AlterError::Config(ConfigError::InvalidValue {
                    name: "cleanup.policy",
                    value: String::new(),
                    expected: "List must be non-empty, items from: compact, delete".into(),
                })),
            },
            Case {
                name: "append on a non-list",
                current: &[],
                ops: vec![op("retention.ms", OpType::Append, Some("1"))],
                want: Err(AlterError::NotAList {
                    name: "retention.ms".into(),
                }),
            },
            Case {
                name: "unknown name",
                current: &[],
                ops: vec![op("retention.hours", OpType::Set, Some("1"))],
                want: Err(AlterError::Config(ConfigError::UnknownTopicConfig {
                    name: "retention.hours".into(),
                })),
            },
            Case {
                name: "duplicate key",
                current: &[],
                ops: vec![
                    op("retention.ms", OpType::Set, Some("1")),
                    op("retention.ms", OpType::Delete, None),
                ],
                want: Err(AlterError::DuplicateKey {
                    name: "retention.ms".into(),
                }),
            },
            Case {
                name: "set without a value",
                current: &[],
                ops: vec![op("retention.ms", OpType::Set, None)],
                want: Err(AlterError::NullValue {
                    name: "retention.ms".into(),
                }),
            },
        ];
        for c in cases {
            let got = apply_incremental(&map(c.current), &c.ops, lookup);
            let want = c.want.map(|(set, delete)| ConfigChange {
                set: map(set),
                delete: delete.iter().map(|s| s.to_string()).collect(),
            });
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn replace_all_deletes_what_is_not_named() {
        let current = map(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let got = replace_all(
            &current,
            &[
                ("retention.ms".into(), Some("1000".into())),
                ("cleanup.policy".into(), Some("compact".into())),
            ],
            lookup,
        );
        assert_eq!(
            got,
            Ok(ConfigChange {
                set: map(&[("cleanup.policy", "compact")]),
                delete: vec!["segment.ms".into()],
            })
        );
        assert!(matches!(
            replace_all(
                &current,
                &[("retention.ms".into(), Some("-5".into()))],
                lookup
            ),
            Err(AlterError::Config(ConfigError::InvalidValue { .. }))
        ));
    }
}
