package dev.fjord.harness;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;

/**
 * N {@code fjord server --config} processes forming one cluster: node ids 1..N, every node a
 * controller voter and a broker. Timeouts are the fast ones of the Rust e2e harness
 * ({@code ClusterOptions::fast}): a dead broker is fenced within ~2.5 s, a stuck follower
 * leaves the ISR after 3 s. Every port comes from the Java sub-range and is kept for the
 * cluster's life, so a restarted node comes back on the same addresses and data dir.
 */
public final class FjordCluster implements AutoCloseable {
    static final Duration START_TIMEOUT = Duration.ofSeconds(90);

    /** One member: its ports, files and process. */
    private static final class Member {
        final int id;
        final Ports.Lease kafka;
        final Ports.Lease rpc;
        final Ports.Lease http;
        final Path dataDir;
        final FjordProcess process;

        Member(int id, Ports.Lease kafka, Ports.Lease rpc, Ports.Lease http, Path dataDir, FjordProcess process) {
            this.id = id;
            this.kafka = kafka;
            this.rpc = rpc;
            this.http = http;
            this.dataDir = dataDir;
            this.process = process;
        }

        String bootstrap() {
            return "127.0.0.1:" + kafka.port();
        }
    }

    private final List<Member> members;
    private final Path root;

    private FjordCluster(List<Member> members, Path root) {
        this.members = members;
        this.root = root;
    }

    /**
     * Starts {@code nodes} nodes and waits until every node's Metadata lists every broker. A
     * node that could not bind a port (something outside the lease protocol held it) makes
     * the cluster start again on other ports, up to three times.
     */
    public static FjordCluster start(int nodes) {
        return start(nodes, List.of());
    }

    /**
     * {@link #start(int)} with {@code extraBrokerLines} appended to every node's {@code [broker]}
     * section of its TOML config (e.g. {@code log_cleaner_backoff_ms = 200}); a line setting a
     * key the harness sets too makes the node refuse its config (TOML has no overrides).
     */
    public static FjordCluster start(int nodes, List<String> extraBrokerLines) {
        if (nodes < 1) {
            throw new IllegalArgumentException("a cluster needs at least one node");
        }
        for (int attempt = 1; ; attempt++) {
            FjordCluster cluster = launch(nodes, extraBrokerLines);
            try {
                cluster.awaitAllReady();
                return cluster;
            } catch (AssertionError e) {
                boolean portTaken = cluster.members.stream().anyMatch(m -> {
                    String log = m.process.currentLog();
                    return log.contains("cannot listen on") || log.contains("Address already in use");
                });
                cluster.close();
                if (!portTaken || attempt == 3) {
                    throw e;
                }
                System.err.println("fjord cluster start attempt " + attempt + ": a port was taken; retrying: " + e.getMessage());
            }
        }
    }

    private static FjordCluster launch(int nodes, List<String> extraBrokerLines) {
        Path root = TempDirs.create("fjord-java-cluster-");
        List<Ports.Lease[]> ports = new ArrayList<>();
        for (int i = 0; i < nodes; i++) {
            ports.add(new Ports.Lease[] {Ports.lease(), Ports.lease(), Ports.lease()});
        }
        String voters = "";
        for (int i = 0; i < nodes; i++) {
            voters += (i == 0 ? "" : ", ") + "\"" + (i + 1) + "@127.0.0.1:" + ports.get(i)[1].port() + "\"";
        }
        int rf = Math.min(3, nodes);
        List<Member> members = new ArrayList<>();
        for (int i = 0; i < nodes; i++) {
            int id = i + 1;
            Ports.Lease[] p = ports.get(i);
            Path dataDir = root.resolve("node-" + id);
            Path config = root.resolve("node-" + id + ".toml");
            String toml = String.join("\n",
                    "node_id = " + id,
                    "roles = [\"controller\", \"broker\"]",
                    "data_dir = \"" + dataDir + "\"",
                    "kafka_addr = \"127.0.0.1:" + p[0].port() + "\"",
                    "rpc_addr = \"127.0.0.1:" + p[1].port() + "\"",
                    "http_addr = \"127.0.0.1:" + p[2].port() + "\"",
                    "[controller]",
                    "voters = [" + voters + "]",
                    "election_timeout_ms = [500, 1000]",
                    "heartbeat_interval_ms = 100",
                    "broker_session_timeout_ms = 2500",
                    "broker_heartbeat_interval_ms = 500",
                    "[broker]",
                    "replica_lag_time_max_ms = 3000",
                    "default_replication_factor = " + rf,
                    "offsets_topic_replication_factor = " + rf,
                    "transaction_state_log_replication_factor = " + rf,
                    "offsets_topic_num_partitions = 4",
                    "group_initial_rebalance_delay_ms = 0",
                    "min_insync_replicas = 1",
                    String.join("\n", extraBrokerLines),
                    "");
            try {
                Files.createDirectories(dataDir);
                Files.writeString(config, toml, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new IllegalStateException("cannot write " + config + ": " + e, e);
            }
            FjordProcess process = new FjordProcess("node" + id, List.of("server", "--config", config.toString()));
            members.add(new Member(id, p[0], p[1], p[2], dataDir, process));
        }
        FjordCluster cluster = new FjordCluster(members, root);
        for (Member m : members) {
            m.process.start();
        }
        return cluster;
    }

    private void awaitAllReady() {
        for (Member m : members) {
            m.process.awaitLog(FjordNode.READY, START_TIMEOUT, "\"fjord node ready\" line");
        }
        for (Member m : members) {
            awaitSeesAll(m);
        }
    }

    /**
     * Waits until {@code m} says it is ready (GET /readyz: caught up with metadata and
     * unfenced) and its own Metadata lists every broker of the cluster. Metadata alone is not
     * enough after a restart: the node may answer from its image of before the stop.
     */
    private void awaitSeesAll(Member m) {
        String http = "127.0.0.1:" + m.http.port();
        Wait.until(START_TIMEOUT, "node " + m.id + " ready (/readyz) with all " + size() + " brokers in its Metadata",
                () -> Http.ready(http)
                        && KafkaWire.metadataBrokers("127.0.0.1", m.kafka.port(), Duration.ofSeconds(5)).size() == size(),
                () -> ProcessLogs.tailBlock(m.process.name(), m.process.logPath(), 60));
    }

    private Member member(int nodeId) {
        if (nodeId < 1 || nodeId > members.size()) {
            throw new IllegalArgumentException("no node " + nodeId + " in a " + members.size() + "-node cluster");
        }
        return members.get(nodeId - 1);
    }

    /** Every node's Kafka address, comma separated (bootstrap.servers). */
    public String bootstrap() {
        return members.stream().map(Member::bootstrap).collect(Collectors.joining(","));
    }

    /** Node {@code nodeId}'s Kafka address. */
    public String bootstrap(int nodeId) {
        return member(nodeId).bootstrap();
    }

    /** The Kafka addresses of the nodes running now, comma separated. */
    public String liveBootstrap() {
        return members.stream().filter(m -> m.process.isAlive()).map(Member::bootstrap).collect(Collectors.joining(","));
    }

    public int size() {
        return members.size();
    }

    /** Node ids, 1..N. */
    public List<Integer> ids() {
        return members.stream().map(m -> m.id).collect(Collectors.toList());
    }

    public boolean isAlive(int nodeId) {
        return member(nodeId).process.isAlive();
    }

    /** The node whose Kafka listener is on {@code port}. */
    public Optional<Integer> nodeIdForPort(int port) {
        return members.stream().filter(m -> m.kafka.port() == port).map(m -> m.id).findFirst();
    }

    /** SIGKILL node {@code nodeId} and wait until it is gone. */
    public void kill(int nodeId) {
        member(nodeId).process.kill();
    }

    /** SIGTERM node {@code nodeId} (a graceful, controlled shutdown), SIGKILL after 30 s. */
    public void stop(int nodeId) {
        member(nodeId).process.stop(Duration.ofSeconds(30));
    }

    /**
     * Starts a stopped or killed node again (same config, ports and data dir) and waits
     * until it is ready (/readyz) and its Metadata lists every broker.
     */
    public void restart(int nodeId) {
        startAgain(nodeId);
        awaitReady(nodeId);
    }

    /** Starts a stopped or killed node again without waiting for anything. */
    public void startAgain(int nodeId) {
        Member m = member(nodeId);
        m.process.kill();
        m.process.start();
    }

    /** Waits until node {@code nodeId} logged its ready line, says /readyz and sees every broker. */
    public void awaitReady(int nodeId) {
        Member m = member(nodeId);
        m.process.awaitLog(FjordNode.READY, START_TIMEOUT, "\"fjord node ready\" line");
        awaitSeesAll(m);
    }

    /** host:port of node {@code nodeId}'s HTTP listener (/healthz, /readyz, /metrics). */
    public String httpAddress(int nodeId) {
        return "127.0.0.1:" + member(nodeId).http.port();
    }

    /** Restarts every node that is not running. */
    public void restartDead() {
        for (Member m : members) {
            if (!m.process.isAlive()) {
                restart(m.id);
            }
        }
    }

    /** An AdminClient bootstrapped from the nodes running now; the caller closes it. */
    public Admin admin() {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, liveBootstrap());
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 15000);
        return Admin.create(props);
    }

    /** The partition as a running node's Metadata shows it now. */
    public TopicPartitionInfo describePartition(String topic, int partition) {
        try (Admin admin = admin()) {
            Map<String, TopicDescription> d = admin.describeTopics(List.of(topic)).allTopicNames().get(15, TimeUnit.SECONDS);
            return d.get(topic).partitions().get(partition);
        } catch (Exception e) {
            // Unchecked, so that Wait.until retries it (a node may not know a new topic yet).
            throw new IllegalStateException("describing " + topic + "-" + partition + ": " + e, e);
        }
    }

    /** The leader of {@code topic}-{@code partition} per Metadata (-1: none). */
    public int leaderOf(String topic, int partition) {
        Node leader = describePartition(topic, partition).leader();
        return leader == null || leader.isEmpty() ? -1 : leader.id();
    }

    /** Waits until the partition has a leader that is running, and returns its id. */
    public int awaitLiveLeader(String topic, int partition, Duration timeout) {
        int[] found = {-1};
        Wait.until(timeout, "a running leader of " + topic + "-" + partition, () -> {
            int leader = leaderOf(topic, partition);
            found[0] = leader;
            return leader > 0 && isAlive(leader);
        }, () -> logTails(40));
        return found[0];
    }

    /** SIGKILLs the node leading {@code topic}-{@code partition}; returns its id. */
    public int killLeaderOf(String topic, int partition) {
        int leader = awaitLiveLeader(topic, partition, Duration.ofSeconds(30));
        kill(leader);
        return leader;
    }

    public Path logPath(int nodeId) {
        return member(nodeId).process.logPath();
    }

    public String logTail(int nodeId, int lines) {
        return member(nodeId).process.logTail(lines);
    }

    /** Every node's log tail, for failure messages. */
    public String logTails(int lines) {
        StringBuilder sb = new StringBuilder();
        for (Member m : members) {
            sb.append(ProcessLogs.tailBlock(m.process.name() + (m.process.isAlive() ? "" : " (not running)"),
                    m.process.logPath(), lines));
        }
        return sb.toString();
    }

    /** Kills every node, releases the ports, deletes the data dirs. */
    @Override
    public void close() {
        for (Member m : members) {
            m.process.kill();
            m.process.close(Duration.ZERO);
        }
        for (Member m : members) {
            m.kafka.close();
            m.rpc.close();
            m.http.close();
        }
        TempDirs.delete(root);
    }
}
