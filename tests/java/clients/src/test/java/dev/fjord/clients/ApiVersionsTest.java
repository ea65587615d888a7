package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;

import org.apache.kafka.common.message.ApiVersionsResponseData.ApiVersion;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.ApiVersionsResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordNode;
import dev.fjord.harness.KafkaWire;

/**
 * The APIs and versions fjord advertises, as the Java client decodes them. The table is the
 * "served" column of docs/compatibility.md: when fjord serves more, this test fails until the
 * table and that document are brought up to date.
 */
class ApiVersionsTest {
    static FjordNode node;

    /** Kafka API → "min-max" fjord serves. */
    static final Map<String, String> SERVED = new TreeMap<>(Map.ofEntries(
            Map.entry("Produce", "3-13"),
            Map.entry("Fetch", "4-18"),
            Map.entry("ListOffsets", "1-10"),
            Map.entry("Metadata", "0-13"),
            Map.entry("OffsetCommit", "2-9"),
            Map.entry("OffsetFetch", "1-9"),
            Map.entry("FindCoordinator", "0-6"),
            Map.entry("JoinGroup", "0-9"),
            Map.entry("Heartbeat", "0-4"),
            Map.entry("LeaveGroup", "0-5"),
            Map.entry("SyncGroup", "0-5"),
            Map.entry("DescribeGroups", "0-5"),
            Map.entry("ListGroups", "0-5"),
            Map.entry("SaslHandshake", "0-1"),
            Map.entry("SaslAuthenticate", "0-2"),
            Map.entry("ApiVersions", "0-4"),
            Map.entry("CreateTopics", "2-7"),
            Map.entry("DeleteTopics", "1-6"),
            Map.entry("DeleteRecords", "0-2"),
            Map.entry("InitProducerId", "0-5"),
            Map.entry("AddPartitionsToTxn", "0-3"),
            Map.entry("AddOffsetsToTxn", "0-4"),
            Map.entry("EndTxn", "0-4"),
            Map.entry("WriteTxnMarkers", "1-1"),
            Map.entry("TxnOffsetCommit", "0-4"),
            Map.entry("DescribeProducers", "0-0"),
            Map.entry("DescribeTransactions", "0-0"),
            Map.entry("ListTransactions", "0-1"),
            Map.entry("OffsetForLeaderEpoch", "2-4"),
            Map.entry("DescribeAcls", "1-3"),
            Map.entry("CreateAcls", "1-3"),
            Map.entry("DeleteAcls", "1-3"),
            Map.entry("DescribeUserScramCredentials", "0-0"),
            Map.entry("AlterUserScramCredentials", "0-0"),
            Map.entry("DescribeConfigs", "1-4"),
            Map.entry("AlterConfigs", "0-2"),
            Map.entry("CreatePartitions", "0-3"),
            Map.entry("DeleteGroups", "0-2"),
            Map.entry("ElectLeaders", "0-2"),
            Map.entry("IncrementalAlterConfigs", "0-1"),
            Map.entry("AlterPartitionReassignments", "0-1"),
            Map.entry("ListPartitionReassignments", "0-0"),
            Map.entry("OffsetDelete", "0-0"),
            Map.entry("DescribeCluster", "0-2")));

    @BeforeAll
    static void start() {
        node = FjordNode.startDev();
    }

    @AfterAll
    static void stop() {
        if (node != null) {
            node.close();
        }
    }

    @Test
    void advertisedApisMatchTheCompatibilityTable() throws Exception {
        ApiVersionsResponse response = KafkaWire.apiVersions(node.host(), node.port(), Duration.ofSeconds(10));
        assertEquals(Errors.NONE.code(), response.data().errorCode());
        Map<String, String> advertised = new TreeMap<>();
        for (ApiVersion v : response.data().apiKeys()) {
            String name = ApiKeys.hasId(v.apiKey()) ? ApiKeys.forId(v.apiKey()).name : "unknown key " + v.apiKey();
            advertised.put(name, v.minVersion() + "-" + v.maxVersion());
        }
        assertEquals(SERVED, advertised, "fjord's ApiVersions differ from docs/compatibility.md");
    }

    @Test
    void everyAdvertisedRangeOverlapsWhatTheJavaClientSpeaks() throws Exception {
        ApiVersionsResponse response = KafkaWire.apiVersions(node.host(), node.port(), Duration.ofSeconds(10));
        for (ApiVersion v : response.data().apiKeys()) {
            ApiKeys key = ApiKeys.forId(v.apiKey());
            boolean overlaps = v.maxVersion() >= key.oldestVersion() && v.minVersion() <= key.latestVersion(true);
            assertEquals(true, overlaps, key.name + " " + v.minVersion() + "-" + v.maxVersion()
                    + " vs the client's " + key.oldestVersion() + "-" + key.latestVersion(true));
        }
    }
}
