//! DescribeClientQuotas (key 48): the entities a filter selects, with
//! their values. Needs DESCRIBE_CONFIGS on the cluster (Kafka's
//! `handleDescribeClientQuotasRequest`). The filter works as Kafka's
//! `ClientQuotasImage.describe`: per entity type an exact name, the
//! default, or any entity that has the type; `strict` also wants the
//! entity to have no other type.

use fjord_broker::{AclOperation, ClientQuotaEntity, QuotaEntityName};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::quota_wire::{self, CLIENT_ID, IP, USER};
use super::wire_str;
use crate::context::RequestContext;
use crate::services::Services;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// What a filter wants of one side of an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// Nothing: the side may be set or not (unless strict).
    Any,
    /// Exactly this name (or the default).
    Is(QuotaEntityName),
    /// The side set, whatever its name.
    Specified,
}

#[derive(Debug, thiserror::Error)]
enum FilterError {
    #[error("Invalid empty entity type.")]
    EmptyType,
    #[error("Entity type {0} cannot appear more than once in the filter.")]
    Duplicate(String),
    #[error("Unsupported entity type {0}")]
    UnknownType(String),
    #[error("Request specified MATCH_TYPE_EXACT, but set match string to null.")]
    ExactWithoutName,
    #[error("Request specified a match type that takes no match string, but also specified one.")]
    UnexpectedName,
    #[error("Unknown match type {0}")]
    UnknownMatchType(i8),
}

impl FilterError {
    /// Kafka answers unknown types with UNSUPPORTED_VERSION, the rest
    /// INVALID_REQUEST.
    fn code(&self) -> ResponseError {
        match self {
            FilterError::UnknownType(_) | FilterError::UnknownMatchType(_) => {
                ResponseError::UnsupportedVersion
            }
            _ => ResponseError::InvalidRequest,
        }
    }
}

/// (user, client-id) wants, and whether the filter names an ip (which
/// matches nothing here: Fjord stores no ip quotas).
fn filter(request: &DescribeClientQuotasRequest) -> Result<(Want, Want, bool), FilterError> {
    let (mut user, mut client, mut ip) = (None, None, None);
    for c in &request.components {
        let entity_type = c.entity_type.as_str();
        let slot = match entity_type {
            "" => return Err(FilterError::EmptyType),
            USER => &mut user,
            CLIENT_ID => &mut client,
            IP => &mut ip,
            other => return Err(FilterError::UnknownType(other.to_owned())),
        };
        if slot.is_some() {
            return Err(FilterError::Duplicate(entity_type.to_owned()));
        }
        let want = match (c.match_type, c._match.as_deref()) {
            (MATCH_EXACT, Some(name)) => Want::Is(QuotaEntityName::Name(name.to_owned())),
            (MATCH_EXACT, None) => return Err(FilterError::ExactWithoutName),
            (MATCH_DEFAULT, None) => Want::Is(QuotaEntityName::Default),
            (MATCH_SPECIFIED, None) => Want::Specified,
            (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => return Err(FilterError::UnexpectedName),
            (other, _) => return Err(FilterError::UnknownMatchType(other)),
        };
        *slot = Some(want);
    }
    Ok((
        user.unwrap_or(Want::Any),
        client.unwrap_or(Want::Any),
        ip.is_some(),
    ))
}

fn side_matches(want: &Want, side: Option<&QuotaEntityName>, strict: bool) -> bool {
    match (want, side) {
        (Want::Any, None) => true,
        (Want::Any, Some(_)) => !strict,
        (Want::Specified, side) => side.is_some(),
        (Want::Is(name), side) => side == Some(name),
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    svc: &Services,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refused = |error: ResponseError, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(wire_str(message)))
            .with_entries(None)
    };
    if !ctx.authorized_cluster(svc, AclOperation::DescribeConfigs) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return refused(error, error.to_string());
    }
    let (user, client, ip) = match filter(&request) {
        Ok(wants) => wants,
        Err(err) => return refused(err.code(), err.to_string()),
    };
    if ip && (user != Want::Any || client != Want::Any) {
        return refused(
            ResponseError::InvalidRequest,
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into(),
        );
    }
    let entries = if ip {
        Vec::new()
    } else {
        svc.admin
            .client_quotas()
            .into_iter()
            .filter(|(e, _)| {
                side_matches(&user, e.user.as_ref(), request.strict)
                    && side_matches(&client, e.client_id.as_ref(), request.strict)
            })
            .map(|(e, values)| describe_entry(&e, values))
            .collect()
    };
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

fn describe_entry(
    entity: &ClientQuotaEntity,
    values: Vec<(fjord_broker::QuotaKey, fjord_broker::QuotaValue)>,
) -> EntryData {
    EntryData::default()
        .with_entity(
            quota_wire::parts(entity)
                .into_iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(wire_str(t))
                        .with_entity_name(n.map(wire_str))
                })
                .collect(),
        )
        .with_values(
            values
                .into_iter()
                .map(|(k, v)| {
                    ValueData::default()
                        .with_key(wire_str(k.name()))
                        .with_value(v.0)
                })
                .collect(),
        )
}
