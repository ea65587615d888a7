package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.RaftVoterEndpoint;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;


/**
 * AdminClient methods whose Kafka API fjord does not serve yet: the client must fail the call
 * with UnsupportedVersionException (fjord leaves the API out of ApiVersions, so the client
 * knows) within a bounded time — never hang or lose the connection. docs/compatibility.md
 * lists the same methods.
 */
class AdminUnsupportedTest extends DevNodeAdminTest {
    static final String TOPIC = "unsupported-apis";

    @BeforeAll
    static void start() throws Exception {
        Clients.createTopic(node.bootstrap(), TOPIC, 1);
    }


    /** One Admin method and the Kafka API it needs. */
    record Case(String method, String api, Function<Admin, KafkaFuture<?>> call) {
        @Override
        public String toString() {
            return method + " (" + api + ")";
        }
    }

    static final TopicPartition TP = new TopicPartition(TOPIC, 0);

    static Stream<Case> unsupported() {
        return Stream.of(
                new Case("describeLogDirs", "DescribeLogDirs(35)", a -> a.describeLogDirs(List.of(1)).allDescriptions()),
                new Case("describeReplicaLogDirs", "DescribeLogDirs(35)",
                        a -> a.describeReplicaLogDirs(List.of(new TopicPartitionReplica(TOPIC, 0, 1))).all()),
                new Case("alterReplicaLogDirs", "AlterReplicaLogDirs(34)",
                        a -> a.alterReplicaLogDirs(Map.of(new TopicPartitionReplica(TOPIC, 0, 1), "/tmp/elsewhere")).all()),
                new Case("createDelegationToken", "CreateDelegationToken(38)", a -> a.createDelegationToken().delegationToken()),
                new Case("renewDelegationToken", "RenewDelegationToken(39)", a -> a.renewDelegationToken(new byte[] {1}).expiryTimestamp()),
                new Case("expireDelegationToken", "ExpireDelegationToken(40)", a -> a.expireDelegationToken(new byte[] {1}).expiryTimestamp()),
                new Case("describeDelegationToken", "DescribeDelegationToken(41)", a -> a.describeDelegationToken().delegationTokens()),
                new Case("describeMetadataQuorum", "DescribeQuorum(55)", a -> a.describeMetadataQuorum().quorumInfo()),
                new Case("updateFeatures", "UpdateFeatures(57)", a -> a.updateFeatures(Map.of("metadata.version",
                        new FeatureUpdate((short) 1, FeatureUpdate.UpgradeType.UPGRADE)), new UpdateFeaturesOptions()).all()),
                new Case("unregisterBroker", "UnregisterBroker(64)", a -> a.unregisterBroker(99).all()),
                new Case("listClientMetricsResources", "ListConfigResources(74)", a -> a.listClientMetricsResources().all()),
                new Case("listConfigResources", "ListConfigResources(74)", a -> a.listConfigResources().all()),
                new Case("describeShareGroups", "ShareGroupDescribe(77)", a -> a.describeShareGroups(List.of("share-1")).all()),
                new Case("listShareGroupOffsets", "DescribeShareGroupOffsets(90)",
                        a -> a.listShareGroupOffsets(Map.of("share-1", new ListShareGroupOffsetsSpec())).all()),
                new Case("alterShareGroupOffsets", "AlterShareGroupOffsets(91)",
                        a -> a.alterShareGroupOffsets("share-1", Map.of(TP, 0L)).all()),
                new Case("deleteShareGroupOffsets", "DeleteShareGroupOffsets(92)",
                        a -> a.deleteShareGroupOffsets("share-1", Set.of(TOPIC)).all()),
                new Case("describeStreamsGroups", "StreamsGroupDescribe(89)", a -> a.describeStreamsGroups(List.of("streams-1")).all()),
                new Case("addRaftVoter", "AddRaftVoter(80)", a -> a.addRaftVoter(9, Uuid.randomUuid(),
                        Set.of(new RaftVoterEndpoint("CONTROLLER", "127.0.0.1", 1))).all()),
                new Case("removeRaftVoter", "RemoveRaftVoter(81)", a -> a.removeRaftVoter(9, Uuid.randomUuid()).all()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("unsupported")
    void failsWithUnsupportedVersion(Case c) throws Exception {
        assertFailsCleanly(c);
    }

    private void assertFailsCleanly(Case c) throws Exception {
        KafkaFuture<?> future = c.call().apply(admin);
        long start = System.nanoTime();
        try {
            Object value = future.get(25, TimeUnit.SECONDS);
            fail(c + " succeeded (" + value + "): fjord serves it now? Move it to the served list and docs/compatibility.md");
        } catch (TimeoutException e) {
            fail(c + " neither failed nor succeeded within 25 s (a hang, not a clean UNSUPPORTED_VERSION)");
        } catch (ExecutionException e) {
            assertInstanceOf(UnsupportedVersionException.class, e.getCause(), c + " failed with " + e.getCause());
        }
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(ms < 10_000, c + " took " + ms + " ms to fail: the client must know at once from ApiVersions");
    }

    @Test
    void connectionSurvivesUnsupportedCalls() throws Exception {
        // After every refused call above, the same AdminClient still works (no dropped connection).
        admin.describeLogDirs(List.of(1)).allDescriptions();
        Set<String> names = admin.listTopics().names().get(15, TimeUnit.SECONDS);
        assertTrue(names.contains(TOPIC), "listTopics after refused calls: " + names);
    }
}
