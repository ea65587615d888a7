package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordNode;

/**
 * The Java AdminClient's ACL calls against a node with the authorizer on and
 * {@code allow_everyone_if_no_acl_found} (so User:ANONYMOUS, every PLAINTEXT client, may add the
 * first ACL): createAcls, describeAcls and deleteAcls round-trip Kafka's bindings, and a DENY makes
 * the Java producer fail with TopicAuthorizationException until it is deleted.
 */
class AclAuthorizerTest {
    static final String ANON = "User:ANONYMOUS";
    static FjordNode node;
    static Admin admin;

    @BeforeAll
    static void start() {
        node = FjordNode.startServer(List.of("authorizer_enable = true", "allow_everyone_if_no_acl_found = true"));
        admin = Clients.admin(node.bootstrap());
    }

    @AfterAll
    static void stop() {
        if (admin != null) {
            admin.close(Duration.ofSeconds(5));
        }
        if (node != null) {
            node.close();
        }
    }

    static KafkaProducer<String, String> producer() {
        var props = Clients.producerProps(node.bootstrap());
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "5000");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "10000");
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        return new KafkaProducer<>(props, new StringSerializer(), new StringSerializer());
    }

    @Test
    void createDescribeDeleteAndEnforce() throws Exception {
        String topic = Clients.unique("acl-java");
        Clients.createTopic(node.bootstrap(), topic, 1);
        AclBinding clusterAlter = new AclBinding(
                new ResourcePattern(ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL),
                new AccessControlEntry(ANON, "*", AclOperation.ALTER, AclPermissionType.ALLOW));
        AclBinding denyWrite = new AclBinding(
                new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
                new AccessControlEntry(ANON, "*", AclOperation.WRITE, AclPermissionType.DENY));
        admin.createAcls(List.of(clusterAlter, denyWrite)).all().get(30, TimeUnit.SECONDS);

        Collection<AclBinding> listed = admin.describeAcls(AclBindingFilter.ANY).values().get(30, TimeUnit.SECONDS);
        assertEquals(Set.of(clusterAlter, denyWrite), Set.copyOf(listed));

        try (KafkaProducer<String, String> producer = producer()) {
            producer.send(new ProducerRecord<>(topic, "k", "v")).get(30, TimeUnit.SECONDS);
            fail("produce under a DENY succeeded");
        } catch (ExecutionException e) {
            assertInstanceOf(TopicAuthorizationException.class, e.getCause(), "produce failed with " + e.getCause());
        }

        AclBindingFilter denies = new AclBindingFilter(
                new ResourcePatternFilter(ResourceType.TOPIC, topic, PatternType.LITERAL),
                new AccessControlEntryFilter(null, null, AclOperation.ANY, AclPermissionType.DENY));
        Collection<AclBinding> deleted = admin.deleteAcls(List.of(denies)).all().get(30, TimeUnit.SECONDS);
        assertEquals(List.of(denyWrite), List.copyOf(deleted));

        try (KafkaProducer<String, String> producer = producer()) {
            producer.send(new ProducerRecord<>(topic, "k", "v")).get(30, TimeUnit.SECONDS);
        }
        Collection<AclBinding> left = admin.describeAcls(AclBindingFilter.ANY).values().get(30, TimeUnit.SECONDS);
        assertTrue(left.equals(List.of(clusterAlter)) || Set.copyOf(left).equals(Set.of(clusterAlter)), "left: " + left);
    }
}
