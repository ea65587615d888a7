package dev.fjord.connect;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import com.fasterxml.jackson.databind.JsonNode;

import dev.fjord.harness.FjordCluster;
import dev.fjord.harness.FjordNode;
import dev.fjord.harness.Wait;

/**
 * Two distributed Connect workers on fjord: a FileStreamSource (file -> topic)
 * and a FileStreamSink (topic -> file) created through the REST API carry every appended
 * line; after the worker running the source task is SIGKILLed, the tasks move to the
 * other worker and every line still arrives. Connect is at-least-once, but the kill comes
 * after both connectors' offsets were committed, so no line may arrive twice.
 */
class ConnectDistributedTest {
    static final String TOPIC = "connect-lines";
    static final String SOURCE = "file-source";
    static final String SINK = "file-sink";
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    @TempDir
    Path dir;
    AutoCloseable fjord;
    String bootstrap;
    final List<ConnectWorker> workers = new ArrayList<>();

    @AfterEach
    void stop() throws Exception {
        workers.forEach(ConnectWorker::close);
        if (fjord != null) {
            fjord.close();
        }
    }

    /**
     * On one {@code fjord dev} node (internal topics with one replica), killing the worker
     * of the source task, and on a 3-node cluster (three replicas: Connect's recommended
     * setting), killing the worker of the sink task. Two workers usually split the two
     * tasks; whichever else the victim ran moves too.
     */
    @ParameterizedTest(name = "{0} fjord node(s), kill the worker of {1}")
    @CsvSource({"1, " + SOURCE, "3, " + SINK})
    void fileSourceToFileSinkSurvivesKillOfTheWorkerRunningTheTasks(int nodes, String killTaskOf) throws Exception {
        if (nodes == 1) {
            FjordNode node = FjordNode.startDev();
            fjord = node;
            bootstrap = node.bootstrap();
        } else {
            FjordCluster cluster = FjordCluster.start(nodes);
            fjord = cluster;
            bootstrap = cluster.bootstrap();
        }
        short replicas = (short) Math.min(3, nodes);
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(TOPIC, 1, replicas))).all().get(20, TimeUnit.SECONDS);
        }
        workers.add(ConnectWorker.start("connect-worker-1", bootstrap, replicas, dir));
        workers.add(ConnectWorker.start("connect-worker-2", bootstrap, replicas, dir));
        for (ConnectWorker w : workers) {
            w.awaitReady(TIMEOUT);
        }
        assertInternalTopicsCompacted();

        Path sourceFile = dir.resolve("source.txt");
        Path sinkFile = dir.resolve("sink.txt");
        Files.createFile(sourceFile);
        ConnectRest rest = workers.get(0).rest;
        createConnector(rest, SOURCE, Map.of(
                "connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "tasks.max", "1",
                "file", sourceFile.toString(),
                "topic", TOPIC));
        createConnector(rest, SINK, Map.of(
                "connector.class", "org.apache.kafka.connect.file.FileStreamSinkConnector",
                "tasks.max", "1",
                "file", sinkFile.toString(),
                "topics", TOPIC));
        awaitTasksRunning(rest, null);

        List<String> expected = new ArrayList<>();
        append(sourceFile, expected, 1, 50);
        awaitSinkHasAll(sinkFile, expected);
        // Both connectors' offsets stored in fjord (read back through GET /connectors/NAME/offsets):
        // the source's file position in the offsets topic, the sink's in its consumer group.
        // From here on a kill may lose no progress, so no line may arrive twice.
        awaitCommittedOffsets(rest, Files.size(sourceFile), expected.size());

        // GET /connectors/NAME/status names the worker running each task.
        String victimId = taskWorker(rest.status(killTaskOf));
        String tasksBefore = SOURCE + " on " + taskWorker(rest.status(SOURCE)) + ", " + SINK + " on "
                + taskWorker(rest.status(SINK));
        ConnectWorker victim = workers.stream().filter(w -> w.workerId().equals(victimId)).findFirst()
                .orElseThrow(() -> new AssertionError("no worker with id " + victimId));
        ConnectWorker survivor = workers.stream().filter(w -> w != victim).findFirst().orElseThrow();
        victim.kill();

        append(sourceFile, expected, 51, 100);
        awaitTasksRunning(survivor.rest, survivor.workerId());
        awaitSinkHasAll(sinkFile, expected);

        List<String> sunk = Files.readAllLines(sinkFile, StandardCharsets.UTF_8);
        assertEquals(new HashSet<>(expected), new HashSet<>(sunk), "the sink file holds exactly the appended lines");
        int duplicates = sunk.size() - new HashSet<>(sunk).size();
        assertEquals(0, duplicates, "lines written twice to the sink file although both connectors had "
                + "committed their offsets before the kill" + workerTails());
        System.out.println("connect on " + nodes + " fjord node(s): tasks " + tasksBefore + "; killed "
                + victim.name() + " (" + victimId + "); all tasks now on " + survivor.workerId() + "; sink file " + sunk.size()
                + " lines for " + expected.size() + " appended: " + duplicates + " duplicates");
    }

    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        return Admin.create(p);
    }

    /** Connect creates its three internal topics compacted (and checks the config topic is). */
    void assertInternalTopicsCompacted() throws Exception {
        try (Admin admin = admin()) {
            List<ConfigResource> resources = List.of(ConnectWorker.CONFIG_TOPIC, ConnectWorker.OFFSET_TOPIC, ConnectWorker.STATUS_TOPIC)
                    .stream().map(t -> new ConfigResource(ConfigResource.Type.TOPIC, t)).collect(Collectors.toList());
            Map<ConfigResource, Config> configs = admin.describeConfigs(resources).all().get(10, TimeUnit.SECONDS);
            for (ConfigResource r : resources) {
                assertEquals("compact", configs.get(r).get("cleanup.policy").value(), r.name() + " cleanup.policy");
            }
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

    /** Waits until both connectors and their task are RUNNING (on {@code workerId} if given). */
    void awaitTasksRunning(ConnectRest rest, String workerId) {
        Map<String, String> last = new TreeMap<>();
        Wait.until(TIMEOUT, "connectors and tasks RUNNING" + (workerId == null ? "" : " on " + workerId), () -> {
            for (String name : List.of(SOURCE, SINK)) {
                JsonNode status = rest.status(name);
                last.put(name, String.valueOf(status));
                if (status == null || !"RUNNING".equals(status.path("connector").path("state").asText())) {
                    return false;
                }
                JsonNode tasks = status.path("tasks");
                if (tasks.size() != 1 || !"RUNNING".equals(tasks.get(0).path("state").asText())) {
                    return false;
                }
                if (workerId != null && !(workerId.equals(tasks.get(0).path("worker_id").asText())
                        && workerId.equals(status.path("connector").path("worker_id").asText()))) {
                    return false;
                }
            }
            return true;
        }, () -> "; last status " + last + workerTails());
    }

    /**
     * Waits until the source connector's stored offset is file position {@code position}
     * and the sink connector's committed offset of partition 0 is {@code records}.
     */
    void awaitCommittedOffsets(ConnectRest rest, long position, long records) {
        Map<String, String> last = new TreeMap<>();
        Wait.until(TIMEOUT, "offsets committed: " + SOURCE + " at position " + position + ", " + SINK + " at "
                + records, () -> {
            JsonNode source = rest.offsets(SOURCE);
            JsonNode sink = rest.offsets(SINK);
            last.put(SOURCE, String.valueOf(source));
            last.put(SINK, String.valueOf(sink));
            return source != null && sink != null
                    && source.path("offsets").size() == 1
                    && source.path("offsets").get(0).path("offset").path("position").asLong() == position
                    && sink.path("offsets").size() == 1
                    && sink.path("offsets").get(0).path("offset").path("kafka_offset").asLong() == records;
        }, () -> "; last offsets " + last + workerTails());
    }

    static String taskWorker(JsonNode status) {
        return status.path("tasks").get(0).path("worker_id").asText();
    }

    static void append(Path file, List<String> expected, int from, int to) throws IOException {
        List<String> lines = IntStream.rangeClosed(from, to).mapToObj(i -> "line " + i + " of the source file")
                .collect(Collectors.toList());
        Files.write(file, lines, StandardCharsets.UTF_8, StandardOpenOption.APPEND);
        expected.addAll(lines);
    }

    void awaitSinkHasAll(Path sinkFile, List<String> expected) {
        Set<String> seen = new HashSet<>();
        Wait.until(TIMEOUT, "every line in the sink file", () -> {
            if (!Files.exists(sinkFile)) {
                return false;
            }
            seen.clear();
            seen.addAll(Files.readAllLines(sinkFile, StandardCharsets.UTF_8));
            return seen.containsAll(expected);
        }, () -> "; missing " + expected.stream().filter(l -> !seen.contains(l)).count() + " of " + expected.size()
                + " lines" + workerTails());
    }

    String workerTails() {
        return workers.stream().map(w -> w.tail(40)).collect(Collectors.joining());
    }
}
