package dev.fjord.connect;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import com.fasterxml.jackson.databind.JsonNode;

import dev.fjord.harness.FjordCluster;
import dev.fjord.harness.Wait;

/**
 * Kafka Connect (distributed) restarts from its internal topics after fjord's log cleaner
 * compacted them: a worker writes many updates of the same keys to its offsets (a source
 * committing its file position after each burst of lines), config (target states of
 * connectors paused and resumed) and status topics, whose segments roll every few hundred
 * bytes; once the cleaner has removed superseded records from all three, every worker
 * stops and a new one starts. It must find its connectors with their configs and target
 * states, and the source must go on from its stored position: every line on the data
 * topic exactly once.
 */
class ConnectCompactedRestartTest {
    static final String TOPIC = "connect-cleaned-lines";
    static final String SOURCE = "cleaned-source";
    /** A second source, left paused: its target state must survive the cleaning too. */
    static final String PAUSED = "paused-source";
    static final String PAUSED_TOPIC = "connect-cleaned-paused";
    static final Duration TIMEOUT = Duration.ofSeconds(60);
    static final List<String> INTERNAL = List.of(ConnectWorker.CONFIG_TOPIC, ConnectWorker.OFFSET_TOPIC,
            ConnectWorker.STATUS_TOPIC);
    static final int BURSTS = 25;
    static final int LINES_PER_BURST = 4;
    static final int PAUSE_CYCLES = 6;

    @TempDir
    Path dir;
    FjordCluster fjord;
    final List<ConnectWorker> workers = new ArrayList<>();

    @AfterEach
    void stop() {
        workers.forEach(ConnectWorker::close);
        if (fjord != null) {
            fjord.close();
        }
    }

    /** Two worker starts and ~40 REST round trips: about 75 s on a loaded 2-core machine. */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void restartsFromCleanedInternalTopics() throws Exception {
        // Phase 1: one node whose cleaner looks for work every 200 ms (15 s by default).
        fjord = FjordCluster.start(1, List.of("log_cleaner_backoff_ms = 200"));
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(TOPIC, 1, (short) 1), new NewTopic(PAUSED_TOPIC, 1, (short) 1)))
                    .all().get(20, TimeUnit.SECONDS);
        }
        // Offsets flushed every 100 ms: each burst of lines becomes its own offset record.
        List<String> fastFlush = List.of("offset.flush.interval.ms=100");
        ConnectWorker first = ConnectWorker.start("connect-cleaned-1", fjord.bootstrap(), 1, dir, fastFlush);
        workers.add(first);
        first.awaitReady(TIMEOUT);

        // Phase 2: small segments, eager cleaning, on the three internal topics (the REST
        // API may answer before the worker created the last of them).
        try (Admin admin = admin()) {
            Wait.until(TIMEOUT, "Connect's internal topics " + INTERNAL + " created",
                    () -> admin.listTopics().names().get(10, TimeUnit.SECONDS).containsAll(INTERNAL),
                    this::workerTails);
            Map<ConfigResource, Collection<AlterConfigOp>> ops = new HashMap<>();
            for (String t : INTERNAL) {
                ops.put(new ConfigResource(ConfigResource.Type.TOPIC, t), List.of(
                        new AlterConfigOp(new ConfigEntry("segment.bytes", "600"), AlterConfigOp.OpType.SET),
                        new AlterConfigOp(new ConfigEntry("segment.ms", "500"), AlterConfigOp.OpType.SET),
                        new AlterConfigOp(new ConfigEntry("min.cleanable.dirty.ratio", "0.01"), AlterConfigOp.OpType.SET)));
            }
            admin.incrementalAlterConfigs(ops).all().get(20, TimeUnit.SECONDS);
        }

        // Phase 3: many updates of the same keys in all three topics.
        Path sourceFile = dir.resolve("source.txt");
        Path pausedFile = dir.resolve("paused.txt");
        Files.createFile(sourceFile);
        Files.createFile(pausedFile);
        ConnectRest rest = first.rest;
        Map<String, String> sourceConfig = Map.of(
                "connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "tasks.max", "1",
                "file", sourceFile.toString(),
                "topic", TOPIC);
        Map<String, String> pausedConfig = Map.of(
                "connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "tasks.max", "1",
                "file", pausedFile.toString(),
                "topic", PAUSED_TOPIC);
        createConnector(rest, SOURCE, sourceConfig);
        createConnector(rest, PAUSED, pausedConfig);
        awaitState(rest, SOURCE, "RUNNING");
        awaitState(rest, PAUSED, "RUNNING");

        List<String> expected = new ArrayList<>();
        int line = 0;
        for (int burst = 0; burst < BURSTS; burst++) {
            if (burst < PAUSE_CYCLES * 2) {
                // Alternating pause and resume of the second connector: target-state records
                // in the config topic and PAUSED/RUNNING records in the status topic.
                String op = burst % 2 == 0 ? "pause" : "resume";
                assertEquals(202, rest.put("/connectors/" + PAUSED + "/" + op).statusCode(), op + " " + PAUSED);
                awaitState(rest, PAUSED, burst % 2 == 0 ? "PAUSED" : "RUNNING");
            }
            List<String> lines = new ArrayList<>();
            for (int i = 0; i < LINES_PER_BURST; i++) {
                lines.add("line " + ++line + " of the source file");
            }
            append(sourceFile, expected, lines);
            awaitSourcePosition(rest, Files.size(sourceFile));
        }
        assertEquals(202, rest.put("/connectors/" + PAUSED + "/pause").statusCode(), "final pause of " + PAUSED);
        awaitState(rest, PAUSED, "PAUSED");

        // Phase 4: the cleaner removed superseded records from every internal topic. Records
        // are numbered without gaps (no transactions here), so fewer records read from the
        // start than the offsets written means the cleaner dropped some.
        Map<String, long[]> counts = new TreeMap<>();
        // With a 200 ms backoff the cleaner is seconds behind the last roll: 30 s is plenty,
        // and short enough that a cleaner doing nothing fails here, not at the test timeout.
        Wait.until(Duration.ofSeconds(30), "the cleaner has compacted " + INTERNAL, () -> {
            for (String t : INTERNAL) {
                counts.put(t, recordsAndEnd(t));
            }
            return counts.values().stream().allMatch(c -> c[0] < c[1]);
        }, () -> "; records read / log end offsets " + counts.entrySet().stream()
                .map(e -> e.getKey() + "=" + e.getValue()[0] + "/" + e.getValue()[1]).collect(Collectors.joining(", "))
                + "; cleaner passes " + cleanerPasses());
        long passes = cleanerPasses();
        assertTrue(passes > 0, "fjord_log_cleaner_passes_total is " + passes);
        String cleaned = counts.entrySet().stream()
                .map(e -> e.getKey() + " " + e.getValue()[0] + " of " + e.getValue()[1] + " records left")
                .collect(Collectors.joining(", "));

        // Phase 5: every worker stops (gracefully: the last offsets are flushed); lines
        // appended meanwhile must be read by the new worker from the stored position.
        long storedPosition = Files.size(sourceFile);
        awaitSourcePosition(rest, storedPosition);
        first.stop();
        List<String> whileDown = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            whileDown.add("line " + ++line + " of the source file (worker down)");
        }
        append(sourceFile, expected, whileDown);

        ConnectWorker second = ConnectWorker.start("connect-cleaned-2", fjord.bootstrap(), 1, dir, fastFlush);
        workers.add(second);
        second.awaitReady(TIMEOUT);
        ConnectRest rest2 = second.rest;

        // Phase 6: configs, target states and statuses as they were; the source resumes.
        awaitState(rest2, SOURCE, "RUNNING");
        awaitState(rest2, PAUSED, "PAUSED");
        assertConfig(rest2, SOURCE, sourceConfig);
        assertConfig(rest2, PAUSED, pausedConfig);
        awaitSourcePosition(rest2, Files.size(sourceFile));
        List<String> produced = readLines(TOPIC);
        assertEquals(expected.size(), produced.size(), "lines on " + TOPIC + " (duplicates: "
                + (produced.size() - new HashSet<>(produced).size()) + ")" + workerTails());
        assertEquals(expected, produced, TOPIC + " holds every appended line once, in order");
        assertEquals(List.of(), readLines(PAUSED_TOPIC), PAUSED + " wrote nothing");
        System.out.println("connect restarted on cleaned internal topics (" + cleaned + "; " + passes
                + " cleaner passes): " + SOURCE + " resumed at position " + storedPosition + ", " + produced.size()
                + " lines once each, " + PAUSED + " still PAUSED");
    }

    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, fjord.bootstrap());
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        return Admin.create(p);
    }

    KafkaConsumer<byte[], byte[]> consumer() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, fjord.bootstrap());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        return new KafkaConsumer<>(p);
    }

    /** Every record of {@code topic} from offset 0 to its end, in partition order. */
    List<ConsumerRecord<byte[], byte[]>> readAll(String topic) {
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            List<TopicPartition> tps = c.partitionsFor(topic, Duration.ofSeconds(10)).stream()
                    .map(p -> new TopicPartition(topic, p.partition())).collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(10));
            List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("reading " + topic + " to " + end + " timed out");
                }
                c.poll(Duration.ofMillis(200)).forEach(out::add);
            }
            return out;
        }
    }

    /** {records read from offset 0, sum of the log end offsets} of {@code topic}. */
    long[] recordsAndEnd(String topic) {
        List<ConsumerRecord<byte[], byte[]>> records = readAll(topic);
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            List<TopicPartition> tps = c.partitionsFor(topic, Duration.ofSeconds(10)).stream()
                    .map(p -> new TopicPartition(topic, p.partition())).collect(Collectors.toList());
            long end = c.endOffsets(tps, Duration.ofSeconds(10)).values().stream().mapToLong(Long::longValue).sum();
            return new long[] {records.size(), end};
        }
    }

    List<String> readLines(String topic) {
        return readAll(topic).stream().map(r -> new String(r.value(), StandardCharsets.UTF_8))
                .collect(Collectors.toList());
    }

    static final Pattern PASSES = Pattern.compile("(?m)^fjord_log_cleaner_passes_total(?:\\{[^}]*\\})? ([0-9.e+]+)$");

    /** fjord_log_cleaner_passes_total from the node's /metrics (-1 when it is not there). */
    long cleanerPasses() {
        try {
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create("http://" + fjord.httpAddress(1) + "/metrics")).timeout(Duration.ofSeconds(5)).build(),
                    HttpResponse.BodyHandlers.ofString());
            Matcher m = PASSES.matcher(r.body());
            return m.find() ? (long) Double.parseDouble(m.group(1)) : -1;
        } catch (IOException e) {
            return -1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return -1;
        }
    }

    /** PUT /connectors/NAME/config, retried while the group rebalances (409). */
    void createConnector(ConnectRest rest, String name, Map<String, String> config) {
        Wait.until(TIMEOUT, "connector " + name + " created", () -> {
            HttpResponse<String> r = rest.putConnectorConfig(name, config);
            if (r.statusCode() == 409 || r.statusCode() >= 500) {
                return false;
            }
            if (r.statusCode() != 201 && r.statusCode() != 200) {
                throw new AssertionError("PUT /connectors/" + name + "/config: " + r.statusCode() + " " + r.body());
            }
            return true;
        }, this::workerTails);
    }

    /** Waits until connector {@code name} and its one task are in {@code state}. */
    void awaitState(ConnectRest rest, String name, String state) {
        String[] last = {null};
        Wait.until(TIMEOUT, name + " and its task " + state, () -> {
            JsonNode status = rest.status(name);
            last[0] = String.valueOf(status);
            return status != null && state.equals(status.path("connector").path("state").asText())
                    && status.path("tasks").size() == 1
                    && state.equals(status.path("tasks").get(0).path("state").asText());
        }, () -> "; last status " + last[0] + workerTails());
    }

    /** Waits until the source's stored offset (GET /connectors/NAME/offsets) is {@code position}. */
    void awaitSourcePosition(ConnectRest rest, long position) {
        String[] last = {null};
        Wait.until(TIMEOUT, SOURCE + " offset stored at file position " + position, () -> {
            JsonNode offsets = rest.offsets(SOURCE);
            last[0] = String.valueOf(offsets);
            return offsets != null && offsets.path("offsets").size() == 1
                    && offsets.path("offsets").get(0).path("offset").path("position").asLong() == position;
        }, () -> "; last offsets " + last[0] + workerTails());
    }

    void assertConfig(ConnectRest rest, String name, Map<String, String> config) throws Exception {
        HttpResponse<String> r = rest.get("/connectors/" + name + "/config");
        assertEquals(200, r.statusCode(), "GET /connectors/" + name + "/config: " + r.body());
        Map<String, String> got = new TreeMap<>();
        new com.fasterxml.jackson.databind.ObjectMapper().readTree(r.body()).fields()
                .forEachRemaining(e -> got.put(e.getKey(), e.getValue().asText()));
        got.remove("name");
        assertEquals(new TreeMap<>(config), got, name + " config after the restart");
    }

    static void append(Path file, List<String> expected, List<String> lines) throws IOException {
        Files.write(file, lines, StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.APPEND);
        expected.addAll(lines);
    }

    String workerTails() {
        return workers.stream().map(w -> w.tail(40)).collect(Collectors.joining());
    }
}
