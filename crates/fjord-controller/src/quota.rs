//! Client quotas as the metadata log stores them (Kafka's
//! `ClientQuotaRecord`): per entity, the quota values set on it.
//!
//! An entity is a user, a client id, or a (user, client id) pair; either
//! name may be the default (Kafka's `<default>`, a null name on the wire).
//! Values arrive validated by the gateway (known key, positive, integral
//! where Kafka wants a long), so the image only stores what brokers can
//! enforce. An entity left without values is removed, as Kafka's image
//! forgets it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

/// One side of an entity: a name, or the default (`<default>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaEntityName {
    Default,
    Name(String),
}

impl QuotaEntityName {
    /// The wire's form: `None` for the default.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            QuotaEntityName::Default => None,
            QuotaEntityName::Name(n) => Some(n),
        }
    }

    pub fn from_wire(name: Option<&str>) -> Self {
        name.map_or(QuotaEntityName::Default, |n| {
            QuotaEntityName::Name(n.to_owned())
        })
    }
}

/// Kafka's `ClientQuotaEntity` for the user and client-id types: at least
/// one side is set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientQuotaEntity {
    pub user: Option<QuotaEntityName>,
    pub client_id: Option<QuotaEntityName>,
}

/// The quota keys Kafka accepts on user and client-id entities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    /// `producer_byte_rate`: produce request bytes per second.
    ProducerByteRate,
    /// `consumer_byte_rate`: fetch response bytes per second.
    ConsumerByteRate,
    /// `request_percentage`: request handling time, percent of one thread.
    RequestPercentage,
    /// `controller_mutation_rate`: stored and described, not enforced.
    ControllerMutationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    /// Kafka's config name.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kafka types the byte rates as LONG: a fractional value is refused.
    pub fn is_integral(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        )
    }
}

/// A quota value. `f64` as on the wire; compared by bits so the image can
/// stay `Eq` (values are validated finite and positive).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// One entity's changes in an AlterClientQuotas: per key, the new value or
/// (`None`) removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuotaAlteration {
    pub entity: ClientQuotaEntity,
    pub ops: Vec<(QuotaKey, Option<QuotaValue>)>,
}

/// Every client quota of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuotaImage {
    /// Serialized as a list of pairs: JSON (snapshots) keys must be strings.
    #[serde(with = "entity_pairs")]
    pub entities: Entities,
}

impl ClientQuotaImage {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Apply alterations in order; an entity left without values goes.
    pub fn alter(&mut self, alterations: &[ClientQuotaAlteration]) {
        for alteration in alterations {
            let values = self.entities.entry(alteration.entity.clone()).or_default();
            for (key, value) in &alteration.ops {
                match value {
                    Some(v) => values.insert(*key, *v),
                    None => values.remove(key),
                };
            }
            if values.is_empty() {
                self.entities.remove(&alteration.entity);
            }
        }
    }

    /// Whether applying `alterations` would change nothing (the image then
    /// keeps its `Arc`).
    pub fn unchanged_by(&self, alterations: &[ClientQuotaAlteration]) -> bool {
        alterations.iter().all(|a| {
            let values = self.entities.get(&a.entity);
            a.ops
                .iter()
                .all(|(key, value)| values.and_then(|v| v.get(key)) == value.as_ref())
        })
    }
}

type Entities = BTreeMap<ClientQuotaEntity, BTreeMap<QuotaKey, QuotaValue>>;

mod entity_pairs {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Entities;

    pub(super) fn serialize<S: Serializer>(entities: &Entities, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(entities.iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Entities, D::Error> {
        Ok(Vec::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> ClientQuotaEntity {
        ClientQuotaEntity {
            user: Some(QuotaEntityName::Name(name.into())),
            client_id: None,
        }
    }

    #[test]
    fn alter_sets_removes_and_forgets_empty_entities() {
        let mut image = ClientQuotaImage::default();
        let set = ClientQuotaAlteration {
            entity: user("alice"),
            ops: vec![
                (QuotaKey::ProducerByteRate, Some(QuotaValue(1024.0))),
                (QuotaKey::RequestPercentage, Some(QuotaValue(50.0))),
            ],
        };
        assert!(!image.unchanged_by(std::slice::from_ref(&set)));
        image.alter(std::slice::from_ref(&set));
        assert!(image.unchanged_by(&[set]));
        assert_eq!(image.entities[&user("alice")].len(), 2);
        let remove = ClientQuotaAlteration {
            entity: user("alice"),
            ops: vec![
                (QuotaKey::ProducerByteRate, None),
                (QuotaKey::RequestPercentage, None),
            ],
        };
        image.alter(&[remove]);
        assert!(image.is_empty());
        // Removing what is not there changes nothing.
        let noop = ClientQuotaAlteration {
            entity: user("bob"),
            ops: vec![(QuotaKey::ConsumerByteRate, None)],
        };
        assert!(image.unchanged_by(std::slice::from_ref(&noop)));
        image.alter(&[noop]);
        assert!(image.is_empty());
    }
}
