package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DeleteRecordsResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.Wait;

/** The AdminClient APIs fjord serves, against one fjord dev node. */
class AdminTest extends DevNodeAdminTest {


    static <T> T get(KafkaFuture<T> f) throws Exception {
        return f.get(30, TimeUnit.SECONDS);
    }

    /** The cause of the ExecutionException the future fails with (bounded: no hang). */
    static Throwable failure(KafkaFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        return e.getCause();
    }

    static void produce(String topic, int partition, int n, long baseTs) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(node.bootstrap())) {
            for (int i = 0; i < n; i++) {
                p.send(new ProducerRecord<>(topic, partition, baseTs + i * 1000L, "k" + i, "v" + i));
            }
            p.flush();
        }
    }

    @Test
    void topicsCreateListDescribeDelete() throws Exception {
        String topic = Clients.unique("admin-topic");
        NewTopic nt = new NewTopic(topic, 3, (short) 1).configs(Map.of("retention.ms", "3600000"));
        get(admin.createTopics(List.of(nt)).all());

        Map<String, TopicListing> listed = get(admin.listTopics().namesToListings());
        assertTrue(listed.containsKey(topic), "listTopics shows " + topic);
        assertFalse(listed.get(topic).isInternal());
        Uuid id = listed.get(topic).topicId();
        assertNotEquals(Uuid.ZERO_UUID, id);

        TopicDescription d = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
        assertEquals(topic, d.name());
        assertEquals(id, d.topicId());
        assertEquals(3, d.partitions().size());
        for (TopicPartitionInfo p : d.partitions()) {
            assertNotNull(p.leader(), "leader of partition " + p.partition());
            assertEquals(1, p.replicas().size());
            assertEquals(p.replicas(), p.isr());
        }

        // Existing topic, bad config, validate-only.
        assertInstanceOf(TopicExistsException.class, failure(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all()));
        String bad = Clients.unique("admin-bad");
        assertInstanceOf(InvalidConfigurationException.class, failure(admin.createTopics(List.of(
                new NewTopic(bad, 1, (short) 1).configs(Map.of("no.such.config", "1")))).all()));
        String dry = Clients.unique("admin-dry");
        get(admin.createTopics(List.of(new NewTopic(dry, 2, (short) 1)), new CreateTopicsOptions().validateOnly(true)).all());
        assertFalse(get(admin.listTopics().names()).contains(dry), "validateOnly creates nothing");

        get(admin.deleteTopics(List.of(topic)).all());
        Wait.until(Duration.ofSeconds(20), topic + " gone from listTopics", () -> !get(admin.listTopics().names()).contains(topic));
        assertInstanceOf(UnknownTopicOrPartitionException.class, failure(admin.describeTopics(List.of(topic)).allTopicNames()));
        assertInstanceOf(UnknownTopicOrPartitionException.class, failure(admin.deleteTopics(List.of(topic)).all()));
    }

    @Test
    void describeTopicById() throws Exception {
        String topic = Clients.unique("admin-by-id");
        Uuid id = get(admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).topicId(topic));
        TopicDescription byId = get(admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds()).get(id);
        assertEquals(topic, byId.name());
        assertEquals(id, byId.topicId());
        assertEquals(2, byId.partitions().size());
        Uuid unknown = Uuid.randomUuid();
        assertInstanceOf(org.apache.kafka.common.errors.UnknownTopicIdException.class,
                failure(admin.describeTopics(TopicCollection.ofTopicIds(List.of(unknown))).allTopicIds()));
    }

    @Test
    void deleteTopicById() throws Exception {
        String topic = Clients.unique("admin-del-id");
        Uuid id = get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).topicId(topic));
        get(admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all());
        Wait.until(Duration.ofSeconds(20), topic + " gone", () -> !get(admin.listTopics().names()).contains(topic));
    }

    @Test
    void createPartitions() throws Exception {
        String topic = Clients.unique("admin-parts");
        Clients.createTopic(node.bootstrap(), topic, 1);
        get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all());
        Wait.until(Duration.ofSeconds(20), topic + " with 3 partitions",
                () -> get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).partitions().size() == 3);
        assertInstanceOf(InvalidPartitionsException.class,
                failure(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all()));
        // A producer can write to a new partition.
        try (KafkaProducer<String, String> p = Clients.producer(node.bootstrap())) {
            assertEquals(2, p.send(new ProducerRecord<>(topic, 2, "k", "v")).get(30, TimeUnit.SECONDS).partition());
        }
    }

    @Test
    void describeCluster() throws Exception {
        Collection<Node> nodes = get(admin.describeCluster().nodes());
        assertEquals(1, nodes.size());
        Node n = nodes.iterator().next();
        assertEquals(node.port(), n.port());
        assertEquals(node.host(), n.host());
        String clusterId = get(admin.describeCluster().clusterId());
        assertNotNull(clusterId);
        assertFalse(clusterId.isEmpty());
        Node controller = get(admin.describeCluster().controller());
        assertNotNull(controller);
    }

    @Test
    void describeTopicAndBrokerConfigs() throws Exception {
        String topic = Clients.unique("admin-configs");
        get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of("retention.ms", "3600000",
                "cleanup.policy", "compact")))).all());
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config config = get(admin.describeConfigs(List.of(res)).all()).get(res);
        ConfigEntry retention = config.get("retention.ms");
        assertEquals("3600000", retention.value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
        assertFalse(retention.isDefault());
        assertEquals("compact", config.get("cleanup.policy").value());
        ConfigEntry segment = config.get("segment.bytes");
        assertNotNull(segment, "segment.bytes listed with its default");
        assertNotEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, segment.source());

        int brokerId = get(admin.describeCluster().nodes()).iterator().next().id();
        ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(brokerId));
        Config bc = get(admin.describeConfigs(List.of(broker)).all()).get(broker);
        assertNotNull(bc.get("num.partitions"), "broker config num.partitions: " + bc);
        assertEquals(String.valueOf(brokerId), bc.get("node.id").value());

        assertInstanceOf(UnknownTopicOrPartitionException.class, failure(admin.describeConfigs(List.of(
                new ConfigResource(ConfigResource.Type.TOPIC, Clients.unique("no-such-topic")))).all()));
    }

    @Test
    void listOffsetsEarliestLatestTimestamp() throws Exception {
        String topic = Clients.unique("admin-offsets");
        Clients.createTopic(node.bootstrap(), topic, 1);
        long base = 1_650_000_000_000L;
        produce(topic, 0, 10, base);
        TopicPartition tp = new TopicPartition(topic, 0);
        assertEquals(0, get(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp)).offset());
        assertEquals(10, get(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp)).offset());
        ListOffsetsResultInfo at = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 3500))).partitionResult(tp));
        assertEquals(4, at.offset());
        assertEquals(base + 4000, at.timestamp());
        ListOffsetsResultInfo max = get(admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp));
        assertEquals(9, max.offset());
        assertEquals(base + 9000, max.timestamp());
        // No record at or after that time: offset -1.
        assertEquals(-1, get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 100_000))).partitionResult(tp)).offset());
    }

    @Test
    void deleteRecordsMovesTheLogStart() throws Exception {
        String topic = Clients.unique("admin-delete-records");
        Clients.createTopic(node.bootstrap(), topic, 2);
        produce(topic, 0, 10, System.currentTimeMillis());
        produce(topic, 1, 10, System.currentTimeMillis());
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        // Partition 0 below 4; partition 1 below its high watermark (-1).
        DeleteRecordsResult result = admin.deleteRecords(Map.of(
                p0, RecordsToDelete.beforeOffset(4), p1, RecordsToDelete.beforeOffset(-1)));
        assertEquals(4, get(result.lowWatermarks().get(p0)).lowWatermark());
        assertEquals(10, get(result.lowWatermarks().get(p1)).lowWatermark());
        assertEquals(4, get(admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).partitionResult(p0)).offset());
        assertEquals(10, get(admin.listOffsets(Map.of(p1, OffsetSpec.earliest())).partitionResult(p1)).offset());
        // A consumer starting below the log start is reset to it (auto.offset.reset=earliest).
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), Clients.unique("g"))) {
            c.assign(List.of(p0));
            c.seek(p0, 1);
            var records = Clients.pollUntil(c, 6, Duration.ofSeconds(30));
            assertEquals(4, records.get(0).offset());
            assertEquals("v4", records.get(0).value());
        }
        // Past the high watermark: OFFSET_OUT_OF_RANGE, nothing moves.
        assertInstanceOf(OffsetOutOfRangeException.class,
                failure(admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(11))).all()));
        assertEquals(4, get(admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).partitionResult(p0)).offset());
    }

    @Test
    void consumerGroupLifecycle() throws Exception {
        String topic = Clients.unique("admin-group");
        String group = Clients.unique("g-admin");
        Clients.createTopic(node.bootstrap(), topic, 2);
        produce(topic, 0, 10, 1_000_000);
        produce(topic, 1, 10, 1_000_000);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), group)) {
            c.subscribe(List.of(topic));
            Clients.pollUntil(c, 20, Duration.ofSeconds(30));
            c.commitSync();

            Collection<ConsumerGroupListing> groups = get(admin.listConsumerGroups().all());
            ConsumerGroupListing listing = groups.stream().filter(g -> g.groupId().equals(group)).findFirst()
                    .orElseThrow(() -> new AssertionError(group + " not in " + groups));
            assertEquals(Optional.of(GroupState.STABLE), listing.groupState());
            assertFalse(listing.isSimpleConsumerGroup());

            Collection<GroupListing> all = get(admin.listGroups().all());
            GroupListing gl = all.stream().filter(g -> g.groupId().equals(group)).findFirst()
                    .orElseThrow(() -> new AssertionError(group + " not in listGroups " + all));
            assertEquals("consumer", gl.protocol());

            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertEquals(GroupState.STABLE, d.groupState());
            assertEquals(GroupType.CLASSIC, d.type());
            assertEquals("range", d.partitionAssignor());
            assertEquals(node.port(), d.coordinator().port());
            assertEquals(1, d.members().size());
            MemberDescription m = d.members().iterator().next();
            assertEquals(Set.of(p0, p1), m.assignment().topicPartitions());

            Map<TopicPartition, OffsetAndMetadata> offsets = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertEquals(10, offsets.get(p0).offset());
            assertEquals(10, offsets.get(p1).offset());

            // While the group has members: no delete, no offset changes from outside.
            assertInstanceOf(GroupNotEmptyException.class, failure(admin.deleteConsumerGroups(List.of(group)).all()));
            assertInstanceOf(UnknownMemberIdException.class,
                    failure(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1))).all()));
        }

        ConsumerGroupDescription empty = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
        assertEquals(GroupState.EMPTY, empty.groupState());
        assertEquals(0, empty.members().size());

        get(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(3, "reset"))).all());
        Map<TopicPartition, OffsetAndMetadata> after = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        assertEquals(new OffsetAndMetadata(3, Optional.empty(), "reset"), after.get(p0));
        assertEquals(10, after.get(p1).offset());

        get(admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all());
        Map<TopicPartition, OffsetAndMetadata> left = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        assertEquals(Set.of(p0), left.entrySet().stream().filter(e -> e.getValue() != null).map(Map.Entry::getKey)
                .collect(Collectors.toSet()));

        // A consumer of the group now starts at the altered offset.
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), group)) {
            c.assign(List.of(p0));
            assertEquals(3, Clients.pollUntil(c, 1, Duration.ofSeconds(30)).get(0).offset());
        }

        get(admin.deleteConsumerGroups(List.of(group)).all());
        assertFalse(get(admin.listConsumerGroups().all()).stream().anyMatch(g -> g.groupId().equals(group)),
                "deleted group still listed");
        assertInstanceOf(GroupIdNotFoundException.class, failure(admin.deleteConsumerGroups(List.of(group)).all()));
    }

    @Test
    void removeStaticMemberFromGroup() throws Exception {
        String topic = Clients.unique("admin-remove");
        String group = Clients.unique("g-remove");
        Clients.createTopic(node.bootstrap(), topic, 1);
        Properties p = Clients.consumerProps(node.bootstrap(), group);
        p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-1");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 45000);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic));
            Clients.pollAllUntil(List.of(c), Duration.ofSeconds(30), "an assignment", () -> c.assignment().size() == 1);
            c.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(0)));
        }
        // Closing a static member leaves it in the group until its session times out.
        ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
        assertEquals(1, d.members().size(), "static member still listed: " + d);
        assertEquals(Optional.of("static-1"), d.members().iterator().next().groupInstanceId());
        get(admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                List.of(new MemberToRemove("static-1")))).all());
        ConsumerGroupDescription after = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
        assertEquals(0, after.members().size());
        assertEquals(GroupState.EMPTY, after.groupState());
    }

    @Test
    void groupLeftWithoutOffsetsStaysEmpty() throws Exception {
        String topic = Clients.unique("admin-left");
        String group = Clients.unique("g-left");
        Clients.createTopic(node.bootstrap(), topic, 1);
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), group)) {
            c.subscribe(List.of(topic));
            Clients.pollAllUntil(List.of(c), Duration.ofSeconds(30), "an assignment", () -> c.assignment().size() == 1);
        }
        ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
        assertEquals(GroupState.EMPTY, d.groupState());
        assertTrue(get(admin.listConsumerGroups().all()).stream().anyMatch(g -> g.groupId().equals(group)),
                "an empty group is still listed");
    }

    @Test
    void electLeadersOnASingleNode() throws Exception {
        String topic = Clients.unique("admin-elect");
        Clients.createTopic(node.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        // The preferred (only) replica already leads: Kafka answers ELECTION_NOT_NEEDED per partition.
        Map<TopicPartition, Optional<Throwable>> result = get(admin.electLeaders(ElectionType.PREFERRED, Set.of(tp)).partitions());
        assertTrue(result.get(tp).isPresent(), "an election-not-needed error for " + tp);
        assertInstanceOf(ElectionNotNeededException.class, result.get(tp).get());
        Map<TopicPartition, Optional<Throwable>> unknown = get(admin.electLeaders(ElectionType.PREFERRED,
                Set.of(new TopicPartition(Clients.unique("no-such"), 0))).partitions());
        assertInstanceOf(UnknownTopicOrPartitionException.class, unknown.values().iterator().next().orElseThrow());
    }

    @Test
    void partitionReassignmentOnASingleNode() throws Exception {
        String topic = Clients.unique("admin-reassign");
        Clients.createTopic(node.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        int brokerId = get(admin.describeCluster().nodes()).iterator().next().id();
        assertEquals(Map.of(), get(admin.listPartitionReassignments(Set.of(tp)).reassignments()));
        // Reassigning to the replicas it has completes at once.
        get(admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(brokerId))))).all());
        Wait.until(Duration.ofSeconds(20), "no reassignment in progress",
                () -> get(admin.listPartitionReassignments().reassignments()).isEmpty());
        // Cancelling when nothing is in progress.
        assertInstanceOf(NoReassignmentInProgressException.class,
                failure(admin.alterPartitionReassignments(Map.of(tp, Optional.empty())).all()));
        assertNull(get(admin.listPartitionReassignments(Set.of(tp)).reassignments()).get(tp));
    }
}
