//! The resource of a config request (DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs) from Kafka's resource type and name: the part
//! those three handlers share.

use fjord_broker::{AclOperation, ConfigResource};
use kafka_protocol::ResponseError;

use crate::context::RequestContext;
use crate::services::Services;

/// Kafka's `ConfigResource.Type` codes.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
pub(crate) const RESOURCE_BROKER_LOGGER: i8 = 8;
pub(crate) const RESOURCE_GROUP: i8 = 32;

/// What a request names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Config(ConfigResource),
    /// A broker's log levels (KIP-412): Fjord has no runtime log levels.
    BrokerLogger,
}

/// The resource, or the error its whole entry gets: a broker name that is
/// neither "" nor a broker id, or a type Fjord does not serve
/// (CLIENT_METRICS) is INVALID_REQUEST, as Kafka answers types it lacks.
pub(crate) fn parse(resource_type: i8, name: &str) -> Result<Resource, (ResponseError, String)> {
    match resource_type {
        RESOURCE_TOPIC => Ok(Resource::Config(ConfigResource::Topic(name.to_owned()))),
        RESOURCE_BROKER if name.is_empty() => Ok(Resource::Config(ConfigResource::Broker(None))),
        RESOURCE_BROKER => match name.parse::<i32>() {
            Ok(id) if id >= 0 => Ok(Resource::Config(ConfigResource::Broker(Some(id)))),
            _ => Err((
                ResponseError::InvalidRequest,
                format!("broker resource name {name:?} is not a broker id"),
            )),
        },
        RESOURCE_BROKER_LOGGER => Ok(Resource::BrokerLogger),
        RESOURCE_GROUP if name.is_empty() => Err((
            ResponseError::InvalidRequest,
            "a group resource needs a group id".to_string(),
        )),
        RESOURCE_GROUP => Ok(Resource::Config(ConfigResource::Group(name.to_owned()))),
        other => Err((
            ResponseError::InvalidRequest,
            format!("unsupported resource type {other}"),
        )),
    }
}

/// [`parse`], then the ACL the operation needs on the resource
/// (`DESCRIBE_CONFIGS` or `ALTER_CONFIGS`): topics on the topic, groups on
/// the group, brokers and broker loggers on the cluster, as Kafka's
/// `ConfigHelper`/`handleAlterConfigsRequest` check them.
pub(crate) fn parse_authorized(
    ctx: &RequestContext,
    svc: &Services,
    resource_type: i8,
    name: &str,
    operation: AclOperation,
) -> Result<Resource, (ResponseError, String)> {
    let resource = parse(resource_type, name)?;
    let refused = match &resource {
        Resource::Config(ConfigResource::Topic(topic)) => (!ctx
            .authorized_topic(svc, operation, topic))
        .then_some(ResponseError::TopicAuthorizationFailed),
        Resource::Config(ConfigResource::Group(group)) => (!ctx
            .authorized_group(svc, operation, group))
        .then_some(ResponseError::GroupAuthorizationFailed),
        Resource::Config(ConfigResource::Broker(_)) | Resource::BrokerLogger => (!ctx
            .authorized_cluster(svc, operation))
        .then_some(ResponseError::ClusterAuthorizationFailed),
    };
    match refused {
        Some(error) => Err((error, error.to_string())),
        None => Ok(resource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_from_type_and_name() {
        assert_eq!(
            parse(2, "t"),
            Ok(Resource::Config(ConfigResource::Topic("t".into())))
        );
        assert_eq!(
            parse(4, ""),
            Ok(Resource::Config(ConfigResource::Broker(None)))
        );
        assert_eq!(
            parse(4, "3"),
            Ok(Resource::Config(ConfigResource::Broker(Some(3))))
        );
        assert_eq!(parse(8, "1"), Ok(Resource::BrokerLogger));
        assert_eq!(
            parse(32, "g"),
            Ok(Resource::Config(ConfigResource::Group("g".into())))
        );
        for (t, name) in [(4, "x"), (4, "-1"), (32, ""), (16, "m")] {
            assert_eq!(parse(t, name).unwrap_err().0, ResponseError::InvalidRequest);
        }
    }
}
