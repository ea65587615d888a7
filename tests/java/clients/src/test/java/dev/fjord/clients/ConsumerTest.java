package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordNode;

/** KafkaConsumer without groups' rebalancing: positions, seek, offsets by time, pause/resume, commits. */
class ConsumerTest {
    static FjordNode node;

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

    /** Produces values v0..v(n-1) to one partition with timestamps base + i * 1000. */
    static void produce(String topic, int partition, int n, long base) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(node.bootstrap())) {
            for (int i = 0; i < n; i++) {
                p.send(new ProducerRecord<>(topic, partition, base + i * 1000L, "k" + i, "v" + i));
            }
            p.flush();
        }
    }

    @Test
    void commitSyncThenNewConsumerResumesFromCommittedOffset() throws Exception {
        String topic = Clients.unique("commit-sync");
        String group = Clients.unique("g-commit-sync");
        Clients.createTopic(node.bootstrap(), topic, 1);
        produce(topic, 0, 10, 1_000_000);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> read = Clients.pollUntil(c, 1, Duration.ofSeconds(30));
            assertEquals(0, read.get(0).offset());
            c.commitSync(Map.of(tp, new OffsetAndMetadata(6, "six")));
            OffsetAndMetadata committed = c.committed(Set.of(tp)).get(tp);
            assertEquals(6, committed.offset());
            assertEquals("six", committed.metadata());
        }
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> read = Clients.pollUntil(c, 4, Duration.ofSeconds(30));
            assertEquals(6, read.get(0).offset(), "a new member starts at the committed offset");
            assertEquals("v6", read.get(0).value());
            // Committing the position (no argument) commits what poll returned.
            c.commitSync();
            assertEquals(10, c.committed(Set.of(tp)).get(tp).offset());
        }
    }

    @Test
    void commitAsyncThenNewConsumerResumes() throws Exception {
        String topic = Clients.unique("commit-async");
        String group = Clients.unique("g-commit-async");
        Clients.createTopic(node.bootstrap(), topic, 2);
        produce(topic, 0, 5, 1_000_000);
        produce(topic, 1, 5, 1_000_000);
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), group)) {
            c.subscribe(List.of(topic));
            Clients.pollUntil(c, 10, Duration.ofSeconds(30));
            Exception[] error = new Exception[1];
            Map<TopicPartition, OffsetAndMetadata>[] done = new Map[1];
            c.commitAsync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(3),
                    new TopicPartition(topic, 1), new OffsetAndMetadata(4)), (offsets, e) -> {
                        done[0] = offsets;
                        error[0] = e;
                    });
            // The callback runs inside a later poll/commit call of this consumer.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (done[0] == null && System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(100));
            }
            assertNotNull(done[0], "commitAsync callback within 30 s");
            assertNull(error[0]);
        }
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> read = Clients.pollUntil(c, 3, Duration.ofSeconds(30));
            Map<Integer, Long> first = new HashMap<>();
            for (ConsumerRecord<String, String> r : read) {
                first.putIfAbsent(r.partition(), r.offset());
            }
            assertEquals(Map.of(0, 3L, 1, 4L), first);
        }
    }

    @Test
    void seekAndPositions() throws Exception {
        String topic = Clients.unique("seek");
        Clients.createTopic(node.bootstrap(), topic, 1);
        produce(topic, 0, 20, 1_000_000);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), null)) {
            c.assign(List.of(tp));
            assertEquals(Map.of(tp, 0L), c.beginningOffsets(List.of(tp)));
            assertEquals(Map.of(tp, 20L), c.endOffsets(List.of(tp)));
            c.seek(tp, 7);
            assertEquals(7, c.position(tp));
            assertEquals("v7", Clients.pollUntil(c, 1, Duration.ofSeconds(30)).get(0).value());
            c.seekToEnd(List.of(tp));
            assertEquals(20, c.position(tp));
            c.seekToBeginning(List.of(tp));
            assertEquals(0, c.position(tp));
            c.seek(tp, 19);
            List<ConsumerRecord<String, String>> last = Clients.pollUntil(c, 1, Duration.ofSeconds(30));
            assertEquals(19, last.get(0).offset());
            assertEquals(20, c.position(tp));
        }
    }

    @Test
    void offsetsForTimes() throws Exception {
        String topic = Clients.unique("times");
        Clients.createTopic(node.bootstrap(), topic, 1);
        long base = 1_600_000_000_000L;
        produce(topic, 0, 10, base);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), null)) {
            OffsetAndTimestamp exact = c.offsetsForTimes(Map.of(tp, base + 4000)).get(tp);
            assertEquals(4, exact.offset());
            assertEquals(base + 4000, exact.timestamp());
            // ListOffsets v4+ carries the leader epoch of the record's batch.
            assertEquals(java.util.Optional.of(0), exact.leaderEpoch());
            // Between two records: the first record at or after the time.
            OffsetAndTimestamp between = c.offsetsForTimes(Map.of(tp, base + 4500)).get(tp);
            assertEquals(5, between.offset());
            assertEquals(base + 5000, between.timestamp());
            OffsetAndTimestamp first = c.offsetsForTimes(Map.of(tp, 0L)).get(tp);
            assertEquals(0, first.offset());
            assertEquals(base, first.timestamp());
            // After the last record: no offset.
            assertNull(c.offsetsForTimes(Map.of(tp, base + 60_000)).get(tp));
            // Seeking there reads from that record.
            c.assign(List.of(tp));
            c.seek(tp, between.offset());
            assertEquals("v5", Clients.pollUntil(c, 1, Duration.ofSeconds(30)).get(0).value());
        }
    }

    @Test
    void pauseAndResume() throws Exception {
        String topic = Clients.unique("pause");
        Clients.createTopic(node.bootstrap(), topic, 2);
        produce(topic, 0, 10, 1_000_000);
        produce(topic, 1, 10, 1_000_000);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), null)) {
            c.assign(List.of(p0, p1));
            c.seekToBeginning(List.of(p0, p1));
            c.pause(List.of(p0));
            assertEquals(Set.of(p0), c.paused());
            List<ConsumerRecord<String, String>> read = new ArrayList<>(Clients.pollUntil(c, 10, Duration.ofSeconds(30)));
            // Give a paused partition's records every chance to show up (they must not).
            for (int i = 0; i < 5; i++) {
                c.poll(Duration.ofMillis(100)).forEach(read::add);
            }
            assertTrue(read.stream().allMatch(r -> r.partition() == 1), "only partition 1 while 0 is paused");
            assertEquals(10, read.size());
            assertEquals(0, c.position(p0));
            c.resume(List.of(p0));
            assertEquals(Set.of(), c.paused());
            List<ConsumerRecord<String, String>> after = Clients.pollUntil(c, 10, Duration.ofSeconds(30));
            assertTrue(after.stream().allMatch(r -> r.partition() == 0), "partition 0 after resume");
            assertEquals(0, after.get(0).offset());
        }
    }

    @Test
    void pollReturnsRecordsOfEachPartitionInOrder() throws Exception {
        String topic = Clients.unique("order");
        Clients.createTopic(node.bootstrap(), topic, 3);
        for (int p = 0; p < 3; p++) {
            produce(topic, p, 30, 1_000_000);
        }
        try (KafkaConsumer<String, String> c = Clients.consumer(node.bootstrap(), null)) {
            c.assign(Clients.partitions(topic, 3));
            Map<Integer, Long> next = new HashMap<>(Map.of(0, 0L, 1, 0L, 2, 0L));
            int total = 0;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (total < 90 && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    assertEquals((long) next.get(r.partition()), r.offset(), "next offset of partition " + r.partition());
                    assertEquals("v" + r.offset(), r.value());
                    next.put(r.partition(), r.offset() + 1);
                    total++;
                }
            }
            assertEquals(90, total);
            Set<Integer> seen = new HashSet<>(next.keySet());
            assertEquals(Set.of(0, 1, 2), seen);
        }
    }
}
