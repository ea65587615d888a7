package dev.fjord.streams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.fjord.childjvm.ChildJvm;
import dev.fjord.harness.FjordNode;
import dev.fjord.harness.Wait;

/**
 * WordCountApp in its own JVM: count, SIGKILL it, wipe its state dir, count more, restart
 * it. The counts must continue exactly: the restarted instance rebuilds its RocksDB store
 * from the changelog topic and resumes from the committed offsets.
 */
class WordCountProcessTest {
    static final String APP_ID = "wordcount";
    static final String CHANGELOG = APP_ID + "-" + WordCountApp.STORE + "-changelog";
    static final String REPARTITION = APP_ID + "-" + WordCountApp.STORE + "-repartition";
    static final List<String> WORDS = List.of("fjord", "kafka", "stream", "count", "state", "store",
            "topic", "log", "raft", "leader");
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    FjordNode node;
    ChildJvm app;
    @TempDir
    Path tmp;

    @BeforeEach
    void start() {
        node = FjordNode.startDev();
    }

    @AfterEach
    void stop() {
        if (app != null) {
            app.close();
        }
        if (node != null) {
            node.close();
        }
    }

    @Test
    void countsSurviveSigkillAndWipedStateThroughTheChangelog() throws Exception {
        Kafka.createTopics(node.bootstrap(), Map.of(WordCountApp.LINES_TOPIC, 2, WordCountApp.COUNTS_TOPIC, 2));
        Path stateDir = tmp.resolve("state");
        app = ChildJvm.start("wordcount", WordCountApp.class.getName(), List.of(node.bootstrap(), APP_ID, stateDir.toString()));
        app.awaitLog("wordcount state: REBALANCING -> RUNNING", 0, TIMEOUT);

        Map<String, Long> expected = new TreeMap<>();
        produceLines(0, 150, expected);
        try (KafkaConsumer<String, Long> reader = Kafka.readerFromStart(node.bootstrap(), WordCountApp.COUNTS_TOPIC, new LongDeserializer())) {
            Map<String, Long> latest = new HashMap<>();
            awaitCounts(reader, latest, expected);
            // Everything consumed is committed (and so its changelog writes flushed): a kill now
            // loses nothing, and at-least-once reprocesses nothing, so counts stay exact.
            awaitCommittedToEnd();
            assertInternalTopics();

            app.kill();
            deleteTree(stateDir);
            assertFalse(Files.exists(stateDir), "state dir wiped");

            produceLines(150, 150, expected);
            app.startAgain();
            awaitCounts(reader, latest, expected);
        }

        // The store came back from the changelog, not from reprocessing the input.
        long restored = restoredRecords(app.log());
        assertTrue(restored > 0, "the restarted app restored " + CHANGELOG + " (restore end lines with restored>0)" + app.tail(80));
        assertFalse(app.log().contains("-> ERROR"), "the app never went to ERROR" + app.tail(80));
        // Streams purges consumed repartition records with DeleteRecords; a broker without it
        // only makes that fail quietly (reported, not asserted: both are valid brokers).
        System.out.println("wordcount: restored " + restored + " changelog records; failed repartition purges: "
                + failedPurges(app.log()) + "; " + REPARTITION + " log start offsets: " + earliestOffsets(REPARTITION));
    }

    /**
     * exactly_once_v2: SIGKILL the app while it is still counting (transactions open), restart
     * it with its state dir, count more. A read_committed reader never sees a count above the
     * true one (nothing counted twice), and the final counts are exact.
     */
    @Test
    void exactlyOnceCountsSurviveSigkillMidStream() throws Exception {
        Kafka.createTopics(node.bootstrap(), Map.of(WordCountApp.LINES_TOPIC, 2, WordCountApp.COUNTS_TOPIC, 2));
        Path stateDir = tmp.resolve("state");
        app = ChildJvm.start("wordcount-eos", WordCountApp.class.getName(),
                List.of(node.bootstrap(), APP_ID, stateDir.toString(), "exactly_once_v2"));
        app.awaitLog("wordcount state: REBALANCING -> RUNNING", 0, TIMEOUT);

        Map<String, Long> expected = new TreeMap<>();
        try (KafkaConsumer<String, Long> reader = Kafka.readerFromStart(node.bootstrap(), WordCountApp.COUNTS_TOPIC,
                new LongDeserializer(), "read_committed")) {
            Map<String, Long> latest = new HashMap<>();
            produceLines(0, 100, expected);
            awaitCounts(reader, latest, expected);
            // Mid-stream: the kill lands while the next lines are being counted.
            produceLines(100, 400, expected);
            Wait.until(TIMEOUT, "some counts of the second lines", () -> {
                for (ConsumerRecord<String, Long> r : reader.poll(Duration.ofMillis(100))) {
                    latest.put(r.key(), r.value());
                }
                return latest.values().stream().mapToLong(Long::longValue).sum() > 0
                        && !new TreeMap<>(latest).equals(expected);
            }, () -> "; latest counts " + new TreeMap<>(latest));
            app.kill();
            produceLines(500, 100, expected);
            app.startAgain();
            awaitCounts(reader, latest, expected);
        }
        assertFalse(app.log().contains("-> ERROR"), "the app never went to ERROR" + app.tail(80));
    }

    /** Lines n..n+count-1, each of 1-4 words picked by its number; adds them to expected. */
    void produceLines(int from, int count, Map<String, Long> expected) throws Exception {
        try (KafkaProducer<String, String> producer = Kafka.producer(node.bootstrap())) {
            for (int i = from; i < from + count; i++) {
                List<String> words = new ArrayList<>();
                for (int w = 0; w <= i % 4; w++) {
                    words.add(WORDS.get((i * 7 + w * 3) % WORDS.size()));
                }
                words.forEach(word -> expected.merge(word, 1L, Long::sum));
                producer.send(new ProducerRecord<>(WordCountApp.LINES_TOPIC, "line-" + i,
                        String.join(i % 2 == 0 ? " " : ", ", words) + (i % 3 == 0 ? "." : "")));
            }
            producer.flush();
        }
    }

    /**
     * Reads word-counts until the latest count of every word is the expected one; a count
     * above it fails at once (a record counted twice).
     */
    void awaitCounts(KafkaConsumer<String, Long> reader, Map<String, Long> latest, Map<String, Long> expected) {
        Wait.until(TIMEOUT, "word counts " + expected + " in " + WordCountApp.COUNTS_TOPIC, () -> {
            for (ConsumerRecord<String, Long> r : reader.poll(Duration.ofMillis(200))) {
                latest.put(r.key(), r.value());
                Long want = expected.get(r.key());
                if (want == null || r.value() > want) {
                    throw new AssertionError("word '" + r.key() + "' counted " + r.value() + " times, expected "
                            + want + " (counted twice?)" + app.tail(60));
                }
            }
            if (!app.isAlive()) {
                throw new AssertionError("the app exited" + app.tail(80));
            }
            return new TreeMap<>(latest).equals(expected);
        }, () -> "; latest counts " + new TreeMap<>(latest) + app.tail(60));
    }

    /** Waits until the app's group has committed the end offset of every input partition. */
    void awaitCommittedToEnd() {
        try (Admin admin = Kafka.admin(node.bootstrap())) {
            Wait.until(TIMEOUT, "group " + APP_ID + " committed up to the end of " + WordCountApp.LINES_TOPIC
                    + " and " + REPARTITION, () -> {
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(APP_ID)
                        .partitionsToOffsetAndMetadata().get(10, TimeUnit.SECONDS);
                Map<TopicPartition, OffsetSpec> ends = new HashMap<>();
                for (String topic : List.of(WordCountApp.LINES_TOPIC, REPARTITION)) {
                    for (int p = 0; p < 2; p++) {
                        ends.put(new TopicPartition(topic, p), OffsetSpec.latest());
                    }
                }
                var endOffsets = admin.listOffsets(ends).all().get(10, TimeUnit.SECONDS);
                return endOffsets.entrySet().stream().allMatch(e -> e.getValue().offset() == 0
                        || (committed.get(e.getKey()) != null && committed.get(e.getKey()).offset() == e.getValue().offset()));
            }, () -> app.tail(40));
        }
    }

    /** The changelog is compacted, the repartition topic is not; both have 2 partitions. */
    void assertInternalTopics() throws Exception {
        try (Admin admin = Kafka.admin(node.bootstrap())) {
            Set<String> topics = admin.listTopics().names().get(10, TimeUnit.SECONDS);
            assertTrue(topics.containsAll(List.of(CHANGELOG, REPARTITION)), "internal topics exist: " + topics);
            var descriptions = admin.describeTopics(List.of(CHANGELOG, REPARTITION)).allTopicNames().get(10, TimeUnit.SECONDS);
            assertEquals(2, descriptions.get(CHANGELOG).partitions().size(), CHANGELOG + " partitions");
            assertEquals(2, descriptions.get(REPARTITION).partitions().size(), REPARTITION + " partitions");
            ConfigResource changelog = new ConfigResource(ConfigResource.Type.TOPIC, CHANGELOG);
            ConfigResource repartition = new ConfigResource(ConfigResource.Type.TOPIC, REPARTITION);
            Map<ConfigResource, Config> configs = admin.describeConfigs(List.of(changelog, repartition)).all().get(10, TimeUnit.SECONDS);
            assertEquals("compact", configs.get(changelog).get("cleanup.policy").value(), CHANGELOG + " cleanup.policy");
            assertEquals("delete", configs.get(repartition).get("cleanup.policy").value(), REPARTITION + " cleanup.policy");
        }
    }

    /** Sum of restored=N over the app's "restore end" lines. */
    static long restoredRecords(String log) {
        Matcher m = Pattern.compile("restore end " + WordCountApp.STORE + " \\S+ restored=(\\d+)").matcher(log);
        long total = 0;
        while (m.find()) {
            total += Long.parseLong(m.group(1));
        }
        return total;
    }

    /** How often Streams logged (at DEBUG) a failed repartition-topic purge (DeleteRecords). */
    static long failedPurges(String log) {
        return log.lines().filter(l -> l.contains("Previous delete-records request has failed")).count();
    }

    Map<Integer, Long> earliestOffsets(String topic) throws Exception {
        try (Admin admin = Kafka.admin(node.bootstrap())) {
            Map<TopicPartition, OffsetSpec> specs = new HashMap<>();
            for (int p = 0; p < 2; p++) {
                specs.put(new TopicPartition(topic, p), OffsetSpec.earliest());
            }
            Map<Integer, Long> earliest = new TreeMap<>();
            admin.listOffsets(specs).all().get(10, TimeUnit.SECONDS)
                    .forEach((tp, info) -> earliest.put(tp.partition(), info.offset()));
            return earliest;
        }
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).collect(Collectors.toList())) {
                Files.delete(p);
            }
        }
    }
}
