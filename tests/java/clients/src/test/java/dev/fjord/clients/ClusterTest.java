package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.message.MetadataResponseData;
import org.apache.kafka.common.requests.MetadataResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordCluster;
import dev.fjord.harness.Http;
import dev.fjord.harness.KafkaWire;
import dev.fjord.harness.Wait;

/** The Java clients against a 3-node cluster: leader failover, reassignment, preferred elections. */
class ClusterTest {
    static FjordCluster cluster;

    @BeforeAll
    static void start() {
        cluster = FjordCluster.start(3);
    }

    @AfterAll
    static void stop() {
        if (cluster != null) {
            cluster.close();
        }
    }

    /** Each test starts with every node up. */
    @AfterEach
    void restartKilledNodes() {
        cluster.restartDead();
    }

    static List<Integer> ids(List<Node> nodes) {
        return nodes.stream().map(Node::id).collect(Collectors.toList());
    }

    @Test
    void leaderKilledWhileProducingAndConsuming() throws Exception {
        String topic = Clients.unique("failover");
        String group = Clients.unique("g-failover");
        try (Admin admin = cluster.admin()) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 3))).all().get(30, TimeUnit.SECONDS);
        }
        Wait.until(Duration.ofSeconds(20), "every partition with a leader and 3 in-sync replicas", () -> {
            for (int p = 0; p < 3; p++) {
                TopicPartitionInfo info = cluster.describePartition(topic, p);
                if (info.leader() == null || info.isr().size() != 3) {
                    return false;
                }
            }
            return true;
        }, () -> cluster.logTails(30));

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        Set<Integer> acked = new ConcurrentSkipListSet<>();
        Map<Integer, Exception> failed = new ConcurrentHashMap<>();
        AtomicBoolean producing = new AtomicBoolean(true);
        AtomicReference<Throwable> consumerCrash = new AtomicReference<>();

        // Consumer: a group member reading everything, committing after each poll.
        Map<Integer, List<String>> positionsByValue = new ConcurrentHashMap<>();
        Map<String, Integer> readsByPosition = new ConcurrentHashMap<>();
        List<String> groupEvents = Collections.synchronizedList(new ArrayList<>());
        AtomicInteger commitFailures = new AtomicInteger();
        AtomicBoolean assigned = new AtomicBoolean();
        // Cleared before the consumer closes: the revocation at close is no rebalance.
        AtomicBoolean consuming = new AtomicBoolean(true);
        Thread consumer = new Thread(() -> {
            try (KafkaConsumer<String, String> c = Clients.consumer(cluster.bootstrap(), group)) {
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                        if (consuming.get()) {
                            groupEvents.add("revoked " + partitions);
                        }
                    }

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                        if (consuming.get()) {
                            groupEvents.add("assigned " + partitions);
                        }
                        if (c.assignment().size() == 3) {
                            assigned.set(true);
                        }
                    }

                    @Override
                    public void onPartitionsLost(Collection<TopicPartition> partitions) {
                        if (consuming.get()) {
                            groupEvents.add("lost " + partitions);
                        }
                    }
                });
                while (consuming.get()) {
                    boolean any = false;
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        any = true;
                        String pos = r.partition() + "@" + r.offset();
                        readsByPosition.merge(pos, 1, Integer::sum);
                        positionsByValue.computeIfAbsent(Integer.parseInt(r.value()), v -> Collections.synchronizedList(new ArrayList<>()))
                                .add(pos);
                    }
                    if (any) {
                        try {
                            c.commitSync(Duration.ofSeconds(10));
                        } catch (Exception e) {
                            commitFailures.incrementAndGet();
                            groupEvents.add("commit failed: " + e);
                        }
                    }
                }
            } catch (Throwable t) {
                consumerCrash.set(t);
            }
        }, "failover-consumer");
        consumer.start();
        Wait.until(Duration.ofSeconds(30), "the consumer to own the 3 partitions", assigned::get, () -> cluster.logTails(30));

        // Producer: numbered records, paced, acknowledged ones remembered.
        Properties props = Clients.producerProps(cluster.bootstrap());
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 40000);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        props.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
        AtomicInteger sent = new AtomicInteger();
        Thread producer = new Thread(() -> {
            try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
                int i = 0;
                while (producing.get() && System.nanoTime() < deadline) {
                    int n = i++;
                    p.send(new ProducerRecord<>(topic, "key-" + n, String.valueOf(n)), (md, e) -> {
                        if (e == null) {
                            acked.add(n);
                        } else {
                            failed.put(n, e);
                        }
                    });
                    sent.incrementAndGet();
                    if (n % 20 == 0) {
                        Thread.sleep(10);
                    }
                }
                p.flush();
            } catch (Throwable t) {
                failed.put(-1, new RuntimeException("producer crashed", t));
            }
        }, "failover-producer");
        producer.start();

        Wait.until(Duration.ofSeconds(20), "1000 acknowledged records before the kill", () -> acked.size() >= 1000,
                () -> " (acked " + acked.size() + ", failed " + failed.size() + ")" + cluster.logTails(30));
        int killed = cluster.killLeaderOf(topic, 0);
        int ackedAtKill = acked.size();
        // Keep producing through the failover until well after a new leader is elected.
        int newLeader = cluster.awaitLiveLeader(topic, 0, Duration.ofSeconds(20));
        Wait.until(Duration.ofSeconds(30), "2000 more acknowledged records after the kill",
                () -> acked.size() >= ackedAtKill + 2000,
                () -> " (acked " + acked.size() + ", failed " + failed.size() + ")" + cluster.logTails(40));
        producing.set(false);
        producer.join(TimeUnit.SECONDS.toMillis(45));
        assertFalse(producer.isAlive(), "producer finished");

        // Every acknowledged record must reach the consumer.
        Wait.until(Duration.ofNanos(Math.max(deadline - System.nanoTime(), TimeUnit.SECONDS.toNanos(10))),
                "the consumer to read every acknowledged record",
                () -> positionsByValue.keySet().containsAll(acked),
                () -> " (acked " + acked.size() + ", read " + positionsByValue.size() + ", events " + groupEvents + ")"
                        + cluster.logTails(40));
        consuming.set(false);
        consumer.join(TimeUnit.SECONDS.toMillis(20));
        if (consumerCrash.get() != null) {
            throw new AssertionError("consumer crashed", consumerCrash.get());
        }

        String summary = "sent " + sent.get() + ", acked " + acked.size() + ", failed " + failed.size()
                + ", distinct read " + positionsByValue.size() + ", killed node " + killed + " (new leader " + newLeader
                + "), commit failures " + commitFailures.get() + ", group events " + groupEvents;
        System.out.println("failover: " + summary);
        // No record is in the log twice: the idempotent producer's retries were deduplicated.
        Map<Integer, List<String>> inLogTwice = new HashMap<>();
        positionsByValue.forEach((v, positions) -> {
            if (positions.stream().distinct().count() > 1) {
                inLogTwice.put(v, positions);
            }
        });
        assertEquals(Map.of(), inLogTwice, "records stored at two offsets (duplicates in the log); " + summary);
        // No record was delivered twice to the group. A redelivery is only Kafka-legal after a
        // failed commit or a rebalance that took partitions away.
        List<String> redelivered = readsByPosition.entrySet().stream().filter(e -> e.getValue() > 1)
                .map(Map.Entry::getKey).sorted().collect(Collectors.toList());
        boolean excused = commitFailures.get() > 0
                || groupEvents.stream().anyMatch(e -> e.startsWith("lost") || (e.startsWith("revoked") && !e.equals("revoked []")));
        assertTrue(redelivered.isEmpty() || excused, redelivered.size() + " positions read twice without a failed commit or "
                + "rebalance: " + redelivered.stream().limit(20).collect(Collectors.toList()) + "; " + summary);
        assertFalse(failed.containsKey(-1), "producer crashed: " + failed.get(-1));
        Set<Integer> missing = new TreeSet<>(acked);
        missing.removeAll(positionsByValue.keySet());
        assertEquals(Set.of(), missing, "acknowledged but never read; " + summary);
    }

    /** Node {@code id}'s Metadata view of partition 0 of {@code topic}: {leader, leader epoch}. */
    static int[] leaderAndEpoch(int id, String topic) throws Exception {
        String[] hostPort = cluster.bootstrap(id).split(":");
        MetadataResponse r = KafkaWire.metadata(hostPort[0], Integer.parseInt(hostPort[1]), List.of(topic), Duration.ofSeconds(2));
        MetadataResponseData.MetadataResponsePartition p = r.data().topics().iterator().next().partitions().get(0);
        return new int[] {p.leaderId(), p.leaderEpoch()};
    }

    @Test
    void restartedNodeNeverServesAnOlderLeaderEpoch() throws Exception {
        String topic = Clients.unique("stale");
        try (Admin admin = cluster.admin()) {
            admin.createTopics(List.of(new NewTopic(topic, Map.of(0, List.of(2, 3, 1))))).all().get(30, TimeUnit.SECONDS);
        }
        Wait.until(Duration.ofSeconds(20), "node 2 leading with a full ISR", () -> {
            TopicPartitionInfo info = cluster.describePartition(topic, 0);
            return info.leader() != null && info.leader().id() == 2 && info.isr().size() == 3;
        }, () -> cluster.logTails(30));
        cluster.kill(2);
        int[] now = new int[2];
        Wait.until(Duration.ofSeconds(20), "a new leader in node 1's Metadata", () -> {
            int[] le = leaderAndEpoch(1, topic);
            now[0] = le[0];
            now[1] = le[1];
            return le[0] != 2 && le[0] > 0;
        }, () -> cluster.logTails(30));
        // Down for a while (as a crashed node is): the controller leader's Raft replication to it backs off, so
        // the restarted node does not get the newer metadata within milliseconds.
        Thread.sleep(5000);
        cluster.startAgain(2);
        // Ask node 2 as often as possible from the moment it answers until it is ready, and a bit longer.
        List<String> stale = new ArrayList<>();
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        Long readyAt = null;
        while (System.nanoTime() < until && (readyAt == null || System.nanoTime() < readyAt + TimeUnit.SECONDS.toNanos(1))) {
            try {
                int[] le = leaderAndEpoch(2, topic);
                if (le[1] < now[1] || le[0] == 2) {
                    stale.add("leader " + le[0] + " epoch " + le[1]);
                }
            } catch (Exception notYet) {
                // Not listening yet.
            }
            if (readyAt == null && Http.ready(cluster.httpAddress(2))) {
                readyAt = System.nanoTime();
            }
            Thread.sleep(20);
        }
        cluster.awaitReady(2);
        assertEquals(List.of(), stale.stream().distinct().collect(Collectors.toList()),
                "node 2's answers after its restart (the cluster had leader " + now[0] + " at epoch " + now[1] + ")");
    }

    @Test
    void acksOneWritesToARestartedNodeAreNotLost() throws Exception {
        String topic = Clients.unique("stale-acks1");
        try (Admin admin = cluster.admin()) {
            admin.createTopics(List.of(new NewTopic(topic, Map.of(0, List.of(2, 3, 1))))).all().get(30, TimeUnit.SECONDS);
        }
        Wait.until(Duration.ofSeconds(20), "node 2 leading with a full ISR", () -> {
            TopicPartitionInfo info = cluster.describePartition(topic, 0);
            return info.leader() != null && info.leader().id() == 2 && info.isr().size() == 3;
        }, () -> cluster.logTails(30));
        cluster.kill(2);
        Wait.until(Duration.ofSeconds(20), "a new leader in node 1's Metadata", () -> {
            int leader = leaderAndEpoch(1, topic)[0];
            return leader != 2 && leader > 0;
        }, () -> cluster.logTails(30));
        Thread.sleep(5000);
        cluster.startAgain(2);
        // A client that bootstraps from node 2 the moment it answers, writing with acks=1.
        Wait.until(Duration.ofSeconds(30), "node 2 answering Metadata", () -> leaderAndEpoch(2, topic)[0] >= -1);
        Properties props = Clients.producerProps(cluster.bootstrap(2));
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        props.put(ProducerConfig.ACKS_CONFIG, "1");
        Set<String> acked = new TreeSet<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            for (int i = 0; i < 20; i++) {
                String value = "v" + i;
                try {
                    p.send(new ProducerRecord<>(topic, 0, null, value)).get(30, TimeUnit.SECONDS);
                    acked.add(value);
                } catch (java.util.concurrent.ExecutionException refused) {
                    // Not acknowledged: may be missing.
                }
            }
        }
        cluster.awaitReady(2);
        Set<String> read = new TreeSet<>();
        try (KafkaConsumer<String, String> c = Clients.consumer(cluster.bootstrap(), null)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (System.nanoTime() < end) {
                c.poll(Duration.ofMillis(200)).forEach(r -> read.add(r.value()));
            }
        }
        Set<String> lost = new TreeSet<>(acked);
        lost.removeAll(read);
        assertEquals(Set.of(), lost, "acks=1 writes acknowledged by restarted node 2 but gone (acked " + acked.size() + ")");
    }

    @Test
    void reassignPartitionToOtherBrokers() throws Exception {
        String topic = Clients.unique("reassign");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = cluster.admin()) {
            admin.createTopics(List.of(new NewTopic(topic, Map.of(0, List.of(1))))).all().get(30, TimeUnit.SECONDS);
            try (KafkaProducer<String, String> p = Clients.producer(cluster.bootstrap())) {
                for (int i = 0; i < 100; i++) {
                    p.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i));
                }
                p.flush();
            }
            admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(2, 3)))))
                    .all().get(30, TimeUnit.SECONDS);
            Wait.until(Duration.ofSeconds(45), "the reassignment of " + tp + " to [2, 3] to complete", () -> {
                TopicPartitionInfo info = cluster.describePartition(topic, 0);
                return ids(info.replicas()).equals(List.of(2, 3)) && info.isr().size() == 2
                        && admin.listPartitionReassignments(Set.of(tp)).reassignments().get(15, TimeUnit.SECONDS).isEmpty();
            }, () -> " now: " + cluster.describePartition(topic, 0) + cluster.logTails(30));
            assertTrue(Set.of(2, 3).contains(cluster.leaderOf(topic, 0)), "leader among the new replicas");
        }
        // The data moved with it: node 1 can go, the records are still there.
        cluster.kill(1);
        List<ConsumerRecord<String, String>> read = Clients.readAll(cluster.liveBootstrap(), topic, 1, 100, Duration.ofSeconds(30));
        for (int i = 0; i < 100; i++) {
            assertEquals("v" + i, read.get(i).value());
        }
    }

    @Test
    void preferredLeaderElectionAfterRestart() throws Exception {
        String topic = Clients.unique("preferred");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = cluster.admin()) {
            admin.createTopics(List.of(new NewTopic(topic, Map.of(0, List.of(2, 3, 1))))).all().get(30, TimeUnit.SECONDS);
            Wait.until(Duration.ofSeconds(20), "node 2 (preferred) leading with a full ISR", () -> {
                TopicPartitionInfo info = cluster.describePartition(topic, 0);
                return info.leader() != null && info.leader().id() == 2 && info.isr().size() == 3;
            }, () -> cluster.logTails(30));
            Map<TopicPartition, Optional<Throwable>> notNeeded = admin.electLeaders(ElectionType.PREFERRED, Set.of(tp))
                    .partitions().get(30, TimeUnit.SECONDS);
            assertInstanceOf(ElectionNotNeededException.class, notNeeded.get(tp).orElseThrow());
        }
        cluster.kill(2);
        Wait.until(Duration.ofSeconds(20), "another leader than node 2", () -> {
            int leader = cluster.leaderOf(topic, 0);
            return leader == 3 || leader == 1;
        }, () -> cluster.logTails(30));
        cluster.restart(2);
        Wait.until(Duration.ofSeconds(30), "node 2 back in the ISR",
                () -> ids(cluster.describePartition(topic, 0).isr()).contains(2), () -> cluster.logTails(30));
        try (Admin admin = cluster.admin()) {
            Map<TopicPartition, Optional<Throwable>> result = admin.electLeaders(ElectionType.PREFERRED, Set.of(tp))
                    .partitions().get(30, TimeUnit.SECONDS);
            assertEquals(Optional.empty(), result.get(tp), "election result");
        }
        Wait.until(Duration.ofSeconds(15), "node 2 leading again", () -> cluster.leaderOf(topic, 0) == 2,
                () -> cluster.logTails(30));
    }
}
