package dev.fjord.harness;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One {@code fjord dev} process: a single node (controller and broker) with its data in a
 * temp dir, its Kafka and HTTP listeners on ports the OS picked (read back from its log).
 */
public final class FjordNode implements AutoCloseable {
    /** The ready line names each Kafka listener as NAME://bound-address. */
    static final Pattern READY = Pattern.compile("fjord node ready.*?kafka_listeners=\\S*?PLAINTEXT://([0-9.]+):([0-9]+)");
    static final Pattern HTTP = Pattern.compile("http_addr=([0-9.]+:[0-9]+)");
    static final Duration START_TIMEOUT = Duration.ofSeconds(60);

    private final FjordProcess process;
    private final Path dataDir;
    private final String host;
    private final int port;
    private final String httpAddress;

    private FjordNode(FjordProcess process, Path dataDir, String host, int port, String httpAddress) {
        this.process = process;
        this.dataDir = dataDir;
        this.host = host;
        this.port = port;
        this.httpAddress = httpAddress;
    }

    /** Starts {@code fjord dev} and waits until its Metadata lists itself. */
    public static FjordNode startDev() {
        Path dataDir = TempDirs.create("fjord-java-dev-");
        FjordProcess process = new FjordProcess("dev", List.of("dev", "--data-dir", dataDir.toString(),
                "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"));
        try {
            process.start();
            Matcher ready = process.awaitLog(READY, START_TIMEOUT, "\"fjord node ready\" line with a PLAINTEXT listener");
            String host = ready.group(1);
            int port = Integer.parseInt(ready.group(2));
            Matcher http = HTTP.matcher(process.currentLog());
            String httpAddress = http.find() ? http.group(1) : null;
            FjordNode node = new FjordNode(process, dataDir, host, port, httpAddress);
            Wait.until(START_TIMEOUT, "fjord dev ready (/readyz) with a broker in its Metadata",
                    () -> (httpAddress == null || Http.ready(httpAddress))
                            && !KafkaWire.metadataBrokers(host, port, Duration.ofSeconds(5)).isEmpty(),
                    () -> ProcessLogs.tailBlock(process.name(), process.logPath(), 60));
            return node;
        } catch (RuntimeException | Error e) {
            process.close(Duration.ofSeconds(5));
            TempDirs.delete(dataDir);
            throw e;
        }
    }

    /**
     * Starts {@code fjord server --config} on loopback (ports picked by the node) with one node's
     * settings and the given extra {@code [broker]} lines (TOML, e.g. {@code "authorizer_enable = true"}),
     * and waits until its Metadata lists itself.
     */
    public static FjordNode startServer(List<String> brokerLines) {
        Path dataDir = TempDirs.create("fjord-java-server-");
        StringBuilder toml = new StringBuilder()
                .append("node_id = 1\n")
                .append("data_dir = \"").append(dataDir.resolve("data").toString().replace("\\", "\\\\")).append("\"\n")
                .append("kafka_addr = \"127.0.0.1:0\"\n")
                .append("rpc_addr = \"127.0.0.1:0\"\n")
                .append("http_addr = \"127.0.0.1:0\"\n\n[broker]\n")
                .append("offsets_topic_replication_factor = 1\n")
                .append("transaction_state_log_replication_factor = 1\n");
        brokerLines.forEach(line -> toml.append(line).append('\n'));
        Path config = dataDir.resolve("fjord.toml");
        try {
            java.nio.file.Files.writeString(config, toml);
        } catch (java.io.IOException e) {
            TempDirs.delete(dataDir);
            throw new java.io.UncheckedIOException(e);
        }
        FjordProcess process = new FjordProcess("server", List.of("server", "--config", config.toString()));
        try {
            process.start();
            Matcher ready = process.awaitLog(READY, START_TIMEOUT, "\"fjord node ready\" line with a PLAINTEXT listener");
            String host = ready.group(1);
            int port = Integer.parseInt(ready.group(2));
            Matcher http = HTTP.matcher(process.currentLog());
            String httpAddress = http.find() ? http.group(1) : null;
            FjordNode node = new FjordNode(process, dataDir, host, port, httpAddress);
            Wait.until(START_TIMEOUT, "fjord server ready (/readyz) with a broker in its Metadata",
                    () -> (httpAddress == null || Http.ready(httpAddress))
                            && !KafkaWire.metadataBrokers(host, port, Duration.ofSeconds(5)).isEmpty(),
                    () -> ProcessLogs.tailBlock(process.name(), process.logPath(), 60));
            return node;
        } catch (RuntimeException | Error e) {
            process.close(Duration.ofSeconds(5));
            TempDirs.delete(dataDir);
            throw e;
        }
    }

    /** host:port of the Kafka listener, for bootstrap.servers. */
    public String bootstrap() {
        return host + ":" + port;
    }

    public String host() {
        return host;
    }

    public int port() {
        return port;
    }

    /** host:port of the HTTP listener (/healthz, /readyz, /metrics), or null if not logged. */
    public String httpAddress() {
        return httpAddress;
    }

    public Path dataDir() {
        return dataDir;
    }

    public Path logPath() {
        return process.logPath();
    }

    public String logTail(int lines) {
        return process.logTail(lines);
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** SIGTERM, up to 15 s for a graceful stop, then SIGKILL; deletes the data dir. */
    @Override
    public void close() {
        process.close(Duration.ofSeconds(15));
        TempDirs.delete(dataDir);
    }
}
