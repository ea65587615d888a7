package dev.fjord.connect;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import dev.fjord.childjvm.ChildJvm;
import dev.fjord.harness.Ports;
import dev.fjord.harness.Wait;

/**
 * One Kafka Connect worker in distributed mode (ConnectDistributed) as its own JVM, its REST
 * listener on a port of the Java sub-range. Timeouts are cut so a SIGKILLed worker's tasks
 * move within seconds: the group notices it gone after session.timeout.ms and the leader
 * reassigns its tasks after scheduled.rebalance.max.delay.ms (default 5 minutes).
 */
final class ConnectWorker implements AutoCloseable {
    static final String GROUP = "fjord-connect";
    static final String CONFIG_TOPIC = "connect-configs";
    static final String OFFSET_TOPIC = "connect-offsets";
    static final String STATUS_TOPIC = "connect-status";

    private final Ports.Lease port;
    private final ChildJvm jvm;
    final ConnectRest rest;

    private ConnectWorker(Ports.Lease port, ChildJvm jvm) {
        this.port = port;
        this.jvm = jvm;
        this.rest = new ConnectRest("http://127.0.0.1:" + port.port());
    }

    /** Starts a worker whose internal topics get {@code replicationFactor} replicas. */
    static ConnectWorker start(String name, String bootstrap, int replicationFactor, Path dir) throws IOException {
        return start(name, bootstrap, replicationFactor, dir, List.of());
    }

    /**
     * {@link #start(String, String, int, Path)} with {@code extraProperties} (key=value lines)
     * after the worker's own: Java's Properties keeps the last value of a key.
     */
    static ConnectWorker start(String name, String bootstrap, int replicationFactor, Path dir,
            List<String> extraProperties) throws IOException {
        Ports.Lease port = Ports.lease();
        Path props = dir.resolve(name + ".properties");
        Files.writeString(props, String.join("\n",
                "bootstrap.servers=" + bootstrap,
                "group.id=" + GROUP,
                "key.converter=org.apache.kafka.connect.storage.StringConverter",
                "value.converter=org.apache.kafka.connect.storage.StringConverter",
                "config.storage.topic=" + CONFIG_TOPIC,
                "offset.storage.topic=" + OFFSET_TOPIC,
                "status.storage.topic=" + STATUS_TOPIC,
                "config.storage.replication.factor=" + replicationFactor,
                "offset.storage.replication.factor=" + replicationFactor,
                "status.storage.replication.factor=" + replicationFactor,
                "offset.storage.partitions=5",
                "status.storage.partitions=2",
                "listeners=http://127.0.0.1:" + port.port(),
                "rest.advertised.host.name=127.0.0.1",
                "rest.advertised.port=" + port.port(),
                // connect-file is on the classpath, not in a plugin.path, and (like every
                // plugin here) has ServiceLoader manifests: no classpath scan needed.
                "plugin.discovery=service_load",
                // Source offsets and sink commits every 500 ms: fewer duplicates after a kill.
                "offset.flush.interval.ms=500",
                // Fast failover: a dead worker leaves the group after 6 s, its tasks are
                // reassigned 2 s later (the default delay is 5 minutes).
                "session.timeout.ms=6000",
                "heartbeat.interval.ms=1000",
                "rebalance.timeout.ms=20000",
                "scheduled.rebalance.max.delay.ms=2000",
                "task.shutdown.graceful.timeout.ms=2000",
                // Sink tasks' consumers: a dead one leaves its group quickly too.
                "consumer.session.timeout.ms=6000",
                "consumer.heartbeat.interval.ms=1000",
                String.join("\n", extraProperties),
                ""), StandardCharsets.UTF_8);
        ChildJvm jvm = ChildJvm.start(name, "org.apache.kafka.connect.cli.ConnectDistributed", List.of(props.toString()));
        return new ConnectWorker(port, jvm);
    }

    /** The worker id Connect's status API reports for this worker (its advertised REST address). */
    String workerId() {
        return "127.0.0.1:" + port.port();
    }

    String name() {
        return jvm.name();
    }

    boolean isAlive() {
        return jvm.isAlive();
    }

    String tail(int lines) {
        return jvm.tail(lines);
    }

    String log() {
        return jvm.log();
    }

    /** Waits until the REST API answers GET /connectors (the worker joined its group). */
    void awaitReady(Duration timeout) {
        Wait.until(timeout, name() + " REST API at " + rest.base() + " answering GET /connectors", () -> {
            if (!jvm.isAlive()) {
                throw new AssertionError(name() + " exited" + jvm.tail(80));
            }
            return rest.get("/connectors").statusCode() == 200;
        }, () -> jvm.tail(60));
    }

    void kill() {
        jvm.kill();
    }

    /** SIGTERM: the worker leaves its group and flushes its source offsets (up to 30 s). */
    void stop() {
        jvm.stop(Duration.ofSeconds(30));
    }

    @Override
    public void close() {
        jvm.close();
        port.close();
    }
}
