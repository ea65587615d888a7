//! ACL checks from a request's context (Kafka's `AuthHelper`): who asks
//! comes from the connection, what is asked from the handler, the answer
//! from the authorizer's current snapshot. Each check is a lookup; none
//! allocates. With the authorizer off every check answers true at once.

use fjord_broker::authorizer::Principal;
use fjord_broker::{AclOperation, AclResourceType, CLUSTER_RESOURCE_NAME};

use crate::context::RequestContext;
use crate::services::Services;

impl RequestContext {
    /// The principal as the authorizer takes it.
    fn acl_principal(&self) -> Principal<'_> {
        let principal = &self.connection.principal;
        Principal {
            principal_type: &principal.principal_type,
            name: &principal.name,
        }
    }

    /// May this request's principal do `operation` on the named resource?
    pub(crate) fn authorized(
        &self,
        svc: &Services,
        operation: AclOperation,
        resource_type: AclResourceType,
        name: &str,
    ) -> bool {
        let authorizer = &svc.authorizer;
        !authorizer.enabled()
            || authorizer.authorize(
                self.acl_principal(),
                self.peer().ip(),
                operation,
                resource_type,
                name,
            )
    }

    /// `operation` on the CLUSTER resource.
    pub(crate) fn authorized_cluster(&self, svc: &Services, operation: AclOperation) -> bool {
        self.authorized(
            svc,
            operation,
            AclResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        )
    }

    /// `operation` on a topic.
    pub(crate) fn authorized_topic(
        &self,
        svc: &Services,
        operation: AclOperation,
        topic: &str,
    ) -> bool {
        self.authorized(svc, operation, AclResourceType::Topic, topic)
    }

    /// `operation` on a group.
    pub(crate) fn authorized_group(
        &self,
        svc: &Services,
        operation: AclOperation,
        group: &str,
    ) -> bool {
        self.authorized(svc, operation, AclResourceType::Group, group)
    }

    /// `operation` on a transactional id.
    pub(crate) fn authorized_transactional_id(
        &self,
        svc: &Services,
        operation: AclOperation,
        transactional_id: &str,
    ) -> bool {
        self.authorized(
            svc,
            operation,
            AclResourceType::TransactionalId,
            transactional_id,
        )
    }

    /// `operation` on some resource of the type (Kafka's
    /// `authorizeByResourceType`).
    pub(crate) fn authorized_any(
        &self,
        svc: &Services,
        operation: AclOperation,
        resource_type: AclResourceType,
    ) -> bool {
        let authorizer = &svc.authorizer;
        !authorizer.enabled()
            || authorizer.authorize_any(
                self.acl_principal(),
                self.peer().ip(),
                operation,
                resource_type,
            )
    }
}
