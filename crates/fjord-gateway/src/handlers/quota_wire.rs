//! Client quota entities and values between the wire and the image, with
//! Kafka's validation (`ClientQuotaControlManager`): every refusal is
//! INVALID_REQUEST with the reason, per entry.

use fjord_broker::{ClientQuotaEntity, QuotaEntityName, QuotaKey, QuotaValue};

/// Kafka's entity type names.
pub(crate) const USER: &str = "user";
pub(crate) const CLIENT_ID: &str = "client-id";
pub(crate) const IP: &str = "ip";

/// Why an entity or an operation is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum QuotaWireError {
    #[error("Invalid empty client quota entity")]
    EmptyEntity,
    #[error("Invalid client quota entity, duplicate entity entry {0}")]
    DuplicateEntityType(String),
    #[error("Unhandled client quota entity type: {0}")]
    UnknownEntityType(String),
    #[error("Empty {0} not supported")]
    EmptyName(String),
    /// Fjord does not enforce IP (connection rate) quotas yet.
    #[error("Client quota entity type ip is not supported")]
    IpEntity,
    #[error("Invalid configuration key {0}")]
    UnknownKey(String),
    #[error("Configuration {0} must be a Long value")]
    NotALong(String),
    #[error("Quota {0} must be a positive number")]
    NotPositive(String),
}

/// An entity from its (type, name) pairs; `None` names are defaults.
pub(crate) fn entity<'a>(
    parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<ClientQuotaEntity, QuotaWireError> {
    let mut entity = ClientQuotaEntity {
        user: None,
        client_id: None,
    };
    let mut any = false;
    for (entity_type, name) in parts {
        any = true;
        let slot = match entity_type {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => return Err(QuotaWireError::IpEntity),
            other => return Err(QuotaWireError::UnknownEntityType(other.to_owned())),
        };
        if slot.is_some() {
            return Err(QuotaWireError::DuplicateEntityType(entity_type.to_owned()));
        }
        if name == Some("") {
            return Err(QuotaWireError::EmptyName(entity_type.to_owned()));
        }
        *slot = Some(QuotaEntityName::from_wire(name));
    }
    if !any {
        return Err(QuotaWireError::EmptyEntity);
    }
    Ok(entity)
}

/// A key and its new value (`None`: remove).
pub(crate) fn op(
    key: &str,
    value: f64,
    remove: bool,
) -> Result<(QuotaKey, Option<QuotaValue>), QuotaWireError> {
    let quota_key =
        QuotaKey::from_name(key).ok_or_else(|| QuotaWireError::UnknownKey(key.to_owned()))?;
    if remove {
        return Ok((quota_key, None));
    }
    if !value.is_finite() || value <= 0.0 {
        return Err(QuotaWireError::NotPositive(key.to_owned()));
    }
    if quota_key.is_integral() && (value.fract() != 0.0 || value > i64::MAX as f64) {
        return Err(QuotaWireError::NotALong(key.to_owned()));
    }
    Ok((quota_key, Some(QuotaValue(value))))
}

/// The (type, name) pairs of an entity, user first as Kafka lists them.
pub(crate) fn parts(entity: &ClientQuotaEntity) -> Vec<(&'static str, Option<&str>)> {
    let mut parts = Vec::with_capacity(2);
    if let Some(user) = &entity.user {
        parts.push((USER, user.as_wire()));
    }
    if let Some(client_id) = &entity.client_id {
        parts.push((CLIENT_ID, client_id.as_wire()));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities() {
        let e = entity([(USER, Some("alice")), (CLIENT_ID, None)]).unwrap();
        assert_eq!(e.user, Some(QuotaEntityName::Name("alice".into())));
        assert_eq!(e.client_id, Some(QuotaEntityName::Default));
        assert_eq!(entity([]), Err(QuotaWireError::EmptyEntity));
        assert_eq!(
            entity([(USER, Some("a")), (USER, Some("b"))]),
            Err(QuotaWireError::DuplicateEntityType(USER.into()))
        );
        assert_eq!(
            entity([("topic", Some("t"))]),
            Err(QuotaWireError::UnknownEntityType("topic".into()))
        );
        assert_eq!(
            entity([(USER, Some(""))]),
            Err(QuotaWireError::EmptyName(USER.into()))
        );
    }

    #[test]
    fn ops() {
        assert_eq!(
            op("producer_byte_rate", 1024.0, false),
            Ok((QuotaKey::ProducerByteRate, Some(QuotaValue(1024.0))))
        );
        assert_eq!(
            op("producer_byte_rate", 10.5, false),
            Err(QuotaWireError::NotALong("producer_byte_rate".into()))
        );
        assert_eq!(
            op("request_percentage", 10.5, false),
            Ok((QuotaKey::RequestPercentage, Some(QuotaValue(10.5))))
        );
        assert_eq!(
            op("consumer_byte_rate", 0.0, false),
            Err(QuotaWireError::NotPositive("consumer_byte_rate".into()))
        );
        assert_eq!(
            op("nope", 1.0, false),
            Err(QuotaWireError::UnknownKey("nope".into()))
        );
        assert_eq!(
            op("consumer_byte_rate", 0.0, true),
            Ok((QuotaKey::ConsumerByteRate, None))
        );
    }
}
