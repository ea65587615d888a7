package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.AlterConfigsRequest;
import org.apache.kafka.common.requests.AlterConfigsResponse;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.KafkaWire;
import dev.fjord.harness.Wait;

/**
 * The config APIs through the Java AdminClient against one fjord dev node:
 * incrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT), AlterConfigs
 * (replace-all) for a topic and the broker defaults, and describeConfigs with
 * synonyms, types and documentation. The 4.x AdminClient no longer has
 * alterConfigs, so AlterConfigs (v2) goes out as a raw request built with
 * the client library's own request classes.
 */
class ConfigsAdminTest extends DevNodeAdminTest {


    static <T> T get(KafkaFuture<T> f) throws Exception {
        return f.get(30, TimeUnit.SECONDS);
    }

    static Throwable failure(KafkaFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        return e.getCause();
    }

    static String createTopic(Map<String, String> configs) throws Exception {
        String topic = Clients.unique("configs");
        get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(configs))).all());
        return topic;
    }

    static Config describe(ConfigResource res) throws Exception {
        DescribeConfigsOptions opts = new DescribeConfigsOptions().includeSynonyms(true).includeDocumentation(true);
        return get(admin.describeConfigs(List.of(res), opts).all()).get(res);
    }

    static void incremental(ConfigResource res, AlterConfigOp... ops) throws Exception {
        get(admin.incrementalAlterConfigs(Map.of(res, List.of(ops))).all());
    }

    /** AlterConfigs v2 for one resource: its dynamic configs become exactly {@code configs}. */
    static Errors alterConfigs(ConfigResource res, Map<String, String> configs) throws Exception {
        List<AlterConfigsRequest.ConfigEntry> entries = configs.entrySet().stream()
                .map(e -> new AlterConfigsRequest.ConfigEntry(e.getKey(), e.getValue()))
                .collect(Collectors.toList());
        AlterConfigsRequest.Builder builder = new AlterConfigsRequest.Builder(
                Map.of(res, new AlterConfigsRequest.Config(entries)), false);
        AlterConfigsResponse response = (AlterConfigsResponse) KafkaWire.send(node.host(), node.port(),
                ApiKeys.ALTER_CONFIGS, (short) 2, builder, Duration.ofSeconds(30));
        return response.errors().get(res).error();
    }

    static AlterConfigOp op(String name, String value, AlterConfigOp.OpType type) {
        return new AlterConfigOp(new ConfigEntry(name, value), type);
    }

    @Test
    void incrementalAlterConfigsOnATopic() throws Exception {
        String topic = createTopic(Map.of());
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        incremental(res,
                op("retention.ms", "3600000", AlterConfigOp.OpType.SET),
                op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND),
                op("compression.type", "zstd", AlterConfigOp.OpType.SET));
        Config config = describe(res);
        assertEquals("3600000", config.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, config.get("retention.ms").source());
        assertEquals("delete,compact", config.get("cleanup.policy").value());
        assertEquals("zstd", config.get("compression.type").value());

        incremental(res,
                op("retention.ms", null, AlterConfigOp.OpType.DELETE),
                op("cleanup.policy", "delete", AlterConfigOp.OpType.SUBTRACT));
        config = describe(res);
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, config.get("retention.ms").source());
        assertEquals("604800000", config.get("retention.ms").value());
        assertEquals("compact", config.get("cleanup.policy").value());

        // Refusals, as Kafka: unknown name and bad value (INVALID_CONFIG),
        // APPEND on a non-list (INVALID_CONFIG), an unknown topic.
        assertInstanceOf(InvalidConfigurationException.class, failure(admin.incrementalAlterConfigs(Map.of(res,
                List.of(op("no.such.config", "1", AlterConfigOp.OpType.SET)))).all()));
        assertInstanceOf(InvalidConfigurationException.class, failure(admin.incrementalAlterConfigs(Map.of(res,
                List.of(op("min.insync.replicas", "0", AlterConfigOp.OpType.SET)))).all()));
        assertInstanceOf(InvalidConfigurationException.class, failure(admin.incrementalAlterConfigs(Map.of(res,
                List.of(op("retention.ms", "1", AlterConfigOp.OpType.APPEND)))).all()));
        ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, Clients.unique("no-such-topic"));
        assertInstanceOf(UnknownTopicOrPartitionException.class, failure(admin.incrementalAlterConfigs(Map.of(
                missing, List.of(op("retention.ms", "1", AlterConfigOp.OpType.SET)))).all()));

        // validateOnly commits nothing.
        get(admin.incrementalAlterConfigs(Map.of(res, List.of(op("segment.ms", "1000", AlterConfigOp.OpType.SET))),
                new AlterConfigsOptions().validateOnly(true)).all());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, describe(res).get("segment.ms").source());
    }

    @Test
    void alterConfigsReplacesATopicsWholeSet() throws Exception {
        String topic = createTopic(Map.of("retention.ms", "1000", "segment.ms", "2000"));
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        assertEquals(Errors.NONE, alterConfigs(res, Map.of("retention.ms", "5000")));
        Config config = describe(res);
        assertEquals("5000", config.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, config.get("segment.ms").source(),
                "segment.ms was left out, so AlterConfigs deleted it");
    }

    @Test
    void brokerDefaultsSynonymsAndDocumentation() throws Exception {
        String topic = createTopic(Map.of("retention.ms", "1000"));
        int brokerId = get(admin.describeCluster().nodes()).iterator().next().id();
        ConfigResource defaults = new ConfigResource(ConfigResource.Type.BROKER, "");
        ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(brokerId));
        ConfigResource topicRes = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try {
            // AlterConfigs on the cluster default (broker ""): the whole set of dynamic defaults.
            assertEquals(Errors.NONE, alterConfigs(defaults, Map.of(
                    "log.retention.ms", "7200000",
                    "log.cleanup.policy", "compact,delete")));
            Config dc = describe(defaults);
            assertEquals("7200000", dc.get("log.retention.ms").value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, dc.get("log.retention.ms").source());
            Wait.until(Duration.ofSeconds(30), "the broker to apply the dynamic default", () ->
                    "7200000".equals(describe(broker).get("log.retention.ms").value()));

            // The topic override wins; the synonyms list every level in precedence order.
            ConfigEntry retention = describe(topicRes).get("retention.ms");
            assertEquals("1000", retention.value());
            List<String> synonyms = retention.synonyms().stream()
                    .map(s -> s.source() + ":" + s.name() + "=" + s.value())
                    .collect(Collectors.toList());
            assertEquals(List.of(
                    "DYNAMIC_TOPIC_CONFIG:retention.ms=1000",
                    "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=7200000",
                    "DEFAULT_CONFIG:log.retention.ms=604800000"), synonyms);
            assertEquals(ConfigEntry.ConfigType.LONG, retention.type());
            assertNotNull(retention.documentation());
            assertFalse(retention.documentation().isEmpty());
            ConfigEntry policy = describe(topicRes).get("cleanup.policy");
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, policy.source());
            assertEquals(ConfigEntry.ConfigType.LIST, policy.type());

            // Per broker beats the cluster default.
            incremental(broker, op("log.retention.ms", "3600000", AlterConfigOp.OpType.SET));
            Config bc = describe(broker);
            assertEquals("3600000", bc.get("log.retention.ms").value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, bc.get("log.retention.ms").source());
            Collection<String> sources = bc.get("log.retention.ms").synonyms().stream()
                    .map(s -> s.source().name()).collect(Collectors.toList());
            assertEquals(List.of("DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG", "DEFAULT_CONFIG"), sources);
            assertTrue(bc.get("node.id").isReadOnly());
            assertFalse(bc.get("log.retention.ms").isReadOnly());

            // A read-only broker config cannot change at runtime: INVALID_REQUEST.
            assertInstanceOf(InvalidRequestException.class, failure(admin.incrementalAlterConfigs(Map.of(broker,
                    List.of(op("log.dirs", "/elsewhere", AlterConfigOp.OpType.SET)))).all()));
        } finally {
            assertEquals(Errors.NONE, alterConfigs(defaults, Map.of()));
            get(admin.incrementalAlterConfigs(Map.of(broker,
                    List.of(op("log.retention.ms", null, AlterConfigOp.OpType.DELETE)))).all());
        }
        assertTrue(describe(defaults).entries().isEmpty(), "dynamic defaults all removed");
    }
}
