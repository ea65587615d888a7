package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordProcess;
import dev.fjord.harness.Ports;

/**
 * The Java client over a SASL_SSL listener with SCRAM-SHA-512 and the authorizer on
 * (super_users = User:admin, allow_everyone_if_no_acl_found false).
 *
 * <p>Bootstrap, as an operator would without a plaintext back door: User:admin authenticates with
 * PLAIN (users file) and creates SCRAM-SHA-512 credentials for itself and for carol with
 * alterUserScramCredentials; from then on every client authenticates with SCRAM-SHA-512. The
 * super user makes and describes topics, produces and consumes in a group. carol, without ACLs,
 * sees no topic and gets TopicAuthorizationException / GroupAuthorizationException; once the super
 * user grants her READ/WRITE/DESCRIBE on the topic and READ on the group, her already open
 * producer, consumer and admin work without reconnecting.
 */
class SaslScramTest {
    static final String ADMIN_PASSWORD = "admin-scram-secret";
    static final String CAROL_PASSWORD = "carol-scram-secret";
    static Path dir;
    static Ports.Lease plain;
    static Ports.Lease saslSsl;
    static Ports.Lease rpc;
    static FjordProcess node;

    @BeforeAll
    static void start() throws Exception {
        dir = Files.createTempDirectory("fjord-java-scram-");
        Path certs = dir.resolve("certs");
        Process gen = new ProcessBuilder(SslTest.repoFile("scripts/gen-certs").toString(), "--dir", certs.toString(),
                "--node", "n1").redirectErrorStream(true).start();
        assertEquals(0, gen.waitFor(), new String(gen.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
        Path plainUsers = dir.resolve("plain-users.toml");
        Files.writeString(plainUsers, "admin = \"admin-plain-secret\"\n", StandardCharsets.UTF_8);
        plain = Ports.lease();
        saslSsl = Ports.lease();
        rpc = Ports.lease();
        Path config = dir.resolve("fjord.toml");
        Files.writeString(config, String.join("\n",
                "node_id = 1",
                "data_dir = \"" + dir.resolve("data") + "\"",
                "listeners = [\"PLAINTEXT://127.0.0.1:" + plain.port() + "\", \"EXTERNAL://127.0.0.1:" + saslSsl.port()
                        + "\"]",
                "listener_security_protocol_map = [\"PLAINTEXT:PLAINTEXT\", \"EXTERNAL:SASL_SSL\"]",
                "rpc_addr = \"127.0.0.1:" + rpc.port() + "\"",
                "http_addr = \"off\"",
                "[broker]",
                "offsets_topic_replication_factor = 1",
                "offsets_topic_num_partitions = 4",
                "group_initial_rebalance_delay_ms = 0",
                "authorizer_enable = true",
                "super_users = \"User:admin\"",
                "[ssl]",
                "keystore_location = \"" + certs.resolve("node-n1.pem") + "\"",
                "key_location = \"" + certs.resolve("node-n1.key") + "\"",
                "[sasl]",
                "enabled_mechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]",
                "plain_users_file = \"" + plainUsers + "\"",
                ""), StandardCharsets.UTF_8);
        node = new FjordProcess("scram-node", List.of("server", "--config", config.toString()));
        node.start();
        node.awaitLog(Pattern.compile("fjord node ready"), Duration.ofSeconds(60), "\"fjord node ready\" line");

        Properties bootstrap = sasl("PLAIN", "org.apache.kafka.common.security.plain.PlainLoginModule", "admin",
                "admin-plain-secret");
        try (Admin admin = Admin.create(bootstrap)) {
            admin.alterUserScramCredentials(List.of(
                    new UserScramCredentialUpsertion("admin", new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                            ADMIN_PASSWORD),
                    new UserScramCredentialUpsertion("carol", new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                            CAROL_PASSWORD)))
                    .all().get(30, TimeUnit.SECONDS);
        }
    }

    @AfterAll
    static void stop() {
        if (node != null) {
            node.close(Duration.ofSeconds(10));
        }
        for (Ports.Lease l : new Ports.Lease[] {plain, saslSsl, rpc}) {
            if (l != null) {
                l.close();
            }
        }
    }

    static Properties sasl(String mechanism, String loginModule, String user, String password) {
        Properties p = new Properties();
        p.put("bootstrap.servers", "127.0.0.1:" + saslSsl.port());
        p.put("security.protocol", "SASL_SSL");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", dir.resolve("certs").resolve("ca.pem").toString());
        p.put("sasl.mechanism", mechanism);
        p.put("sasl.jaas.config", loginModule + " required username=\"" + user + "\" password=\"" + password + "\";");
        return p;
    }

    static Properties scram(String user, String password) {
        return sasl("SCRAM-SHA-512", "org.apache.kafka.common.security.scram.ScramLoginModule", user, password);
    }

    static KafkaProducer<String, String> producer(Properties base) {
        Properties p = (Properties) base.clone();
        p.put("acks", "all");
        p.put("max.block.ms", "5000");
        p.put("delivery.timeout.ms", "10000");
        p.put("request.timeout.ms", "5000");
        p.put("metadata.max.age.ms", "1000");
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(Properties base, String group) {
        Properties p = (Properties) base.clone();
        p.put("group.id", group);
        p.put("auto.offset.reset", "earliest");
        p.put("metadata.max.age.ms", "1000");
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    @Test
    void superUserOverScramAdminProduceAndGroupConsume() throws Exception {
        String topic = unique("java-scram");
        Properties admin512 = scram("admin", ADMIN_PASSWORD);
        try (Admin admin = Admin.create(admin512)) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get(30, TimeUnit.SECONDS);
            assertTrue(admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
            assertEquals(2, d.partitions().size());
        }
        try (KafkaProducer<String, String> producer = producer(admin512)) {
            for (int i = 0; i < 100; i++) {
                producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i)).get(30, TimeUnit.SECONDS);
            }
        }
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = consumer(admin512, unique("java-scram-group"))) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            while (seen.size() < 100 && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    seen.add(r.value());
                }
            }
            consumer.commitSync(Duration.ofSeconds(20));
        }
        assertEquals(100, seen.size());
    }

    @Test
    void aWrongScramPasswordIsRefused() {
        Properties p = scram("carol", "not-her-password");
        p.put("default.api.timeout.ms", "5000");
        p.put("request.timeout.ms", "3000");
        try (Admin admin = Admin.create(p)) {
            ExecutionException e = assertThrows(() -> admin.listTopics().names().get(10, TimeUnit.SECONDS));
            assertInstanceOf(SaslAuthenticationException.class, e.getCause(), e.toString());
        }
    }

    static ExecutionException assertThrows(Call call) {
        try {
            call.run();
        } catch (ExecutionException e) {
            return e;
        } catch (Exception e) {
            fail("expected an ExecutionException, got " + e);
        }
        return fail("expected an ExecutionException, got success");
    }

    interface Call {
        void run() throws Exception;
    }

    @Test
    void aScramPrincipalWithoutAclsIsRefusedUntilGrantedWithoutReconnecting() throws Exception {
        String topic = unique("java-scram-acl");
        String group = unique("java-scram-acl-group");
        Properties admin512 = scram("admin", ADMIN_PASSWORD);
        Properties carol = scram("carol", CAROL_PASSWORD);
        try (Admin superUser = Admin.create(admin512);
                Admin carolAdmin = Admin.create(carol);
                KafkaProducer<String, String> producer = producer(carol);
                KafkaConsumer<String, String> consumer = consumer(carol, group)) {
            superUser.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);

            // Without ACLs: carol sees no topic, her produce and her group are refused.
            assertFalse(carolAdmin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));
            ExecutionException e = assertThrows(
                    () -> producer.send(new ProducerRecord<>(topic, "k", "refused")).get(30, TimeUnit.SECONDS));
            assertInstanceOf(TopicAuthorizationException.class, e.getCause(), e.toString());
            consumer.subscribe(List.of(topic));
            AuthorizationException refused = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (refused == null && System.nanoTime() < deadline) {
                try {
                    consumer.poll(Duration.ofMillis(500));
                } catch (GroupAuthorizationException | TopicAuthorizationException x) {
                    refused = x;
                }
            }
            assertTrue(refused != null, "carol's consumer was never refused");

            // The super user grants carol the topic and the group.
            AccessControlEntry[] topicAces = {
                new AccessControlEntry("User:carol", "*", AclOperation.READ, AclPermissionType.ALLOW),
                new AccessControlEntry("User:carol", "*", AclOperation.WRITE, AclPermissionType.ALLOW),
                new AccessControlEntry("User:carol", "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW),
            };
            ResourcePattern topicPattern = new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL);
            List<AclBinding> grants = new java.util.ArrayList<>();
            for (AccessControlEntry ace : topicAces) {
                grants.add(new AclBinding(topicPattern, ace));
            }
            grants.add(new AclBinding(new ResourcePattern(ResourceType.GROUP, group, PatternType.LITERAL),
                    new AccessControlEntry("User:carol", "*", AclOperation.READ, AclPermissionType.ALLOW)));
            superUser.createAcls(grants).all().get(30, TimeUnit.SECONDS);

            // The same clients now work (bounded retries while the grant reaches the broker and the
            // clients refresh their metadata).
            deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!carolAdmin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic)) {
                assertTrue(System.nanoTime() < deadline, "carol never saw the topic");
                Thread.sleep(200);
            }
            int sent = 0;
            while (sent == 0) {
                try {
                    producer.send(new ProducerRecord<>(topic, "k", "granted")).get(30, TimeUnit.SECONDS);
                    sent = 1;
                } catch (ExecutionException x) {
                    assertInstanceOf(TopicAuthorizationException.class, x.getCause(), x.toString());
                    assertTrue(System.nanoTime() < deadline, "carol's producer stayed refused: " + x);
                    Thread.sleep(200);
                }
            }
            for (int i = 0; i < 19; i++) {
                producer.send(new ProducerRecord<>(topic, "k", "granted")).get(30, TimeUnit.SECONDS);
            }
            int got = 0;
            deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            while (got < 20 && System.nanoTime() < deadline) {
                try {
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                        assertEquals("granted", r.value());
                        got++;
                    }
                } catch (GroupAuthorizationException | TopicAuthorizationException x) {
                    // The consumer may still report the refusal it saw before the grant.
                }
            }
            assertEquals(20, got);
            consumer.commitSync(Duration.ofSeconds(20));
            Map<?, ?> committed = carolAdmin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                    .get(30, TimeUnit.SECONDS);
            assertEquals(1, committed.size());
        }
    }
}
