package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.SecurityDisabledException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;


/**
 * The Java AdminClient's ACL calls (CreateAcls, DescribeAcls, DeleteAcls) against {@code fjord dev},
 * whose authorizer is off: each fails with {@link SecurityDisabledException}, as against Kafka without
 * {@code authorizer.class.name}, and the client stays usable. (The ACL rules themselves are covered with
 * the authorizer on by tests/python/test_acls_confluent.py and the e2e acls test.)
 */
class AclAdminTest extends DevNodeAdminTest {
    static final String TOPIC = "acl-admin";

    @BeforeAll
    static void start() throws Exception {
        Clients.createTopic(node.bootstrap(), TOPIC, 1);
    }


    static void assertSecurityDisabled(String what, KafkaFuture<?> future) throws Exception {
        try {
            Object value = future.get(25, TimeUnit.SECONDS);
            fail(what + " succeeded without an authorizer: " + value);
        } catch (ExecutionException e) {
            assertInstanceOf(SecurityDisabledException.class, e.getCause(), what + " failed with " + e.getCause());
        }
    }

    @Test
    void aclCallsAnswerSecurityDisabledWithoutAnAuthorizer() throws Exception {
        AclBinding binding = new AclBinding(new ResourcePattern(ResourceType.TOPIC, TOPIC, PatternType.LITERAL),
                new AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW));
        assertSecurityDisabled("createAcls", admin.createAcls(List.of(binding)).all());
        assertSecurityDisabled("describeAcls", admin.describeAcls(AclBindingFilter.ANY).values());
        assertSecurityDisabled("deleteAcls", admin.deleteAcls(List.of(AclBindingFilter.ANY)).all());
        Set<String> names = admin.listTopics().names().get(15, TimeUnit.SECONDS);
        assertTrue(names.contains(TOPIC), "listTopics after the ACL calls: " + names);
    }
}
