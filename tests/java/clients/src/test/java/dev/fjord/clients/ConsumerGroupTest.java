package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.clients.consumer.StickyAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.fjord.harness.FjordNode;

/** Consumer groups (the classic protocol): assignors, rebalance callbacks, shared consumption. */
class ConsumerGroupTest {
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

    static KafkaConsumer<String, String> member(String group, String assignor) {
        Properties p = Clients.consumerProps(node.bootstrap(), group);
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        return new KafkaConsumer<>(p);
    }

    @ParameterizedTest
    @ValueSource(classes = {RangeAssignor.class, CooperativeStickyAssignor.class, RoundRobinAssignor.class, StickyAssignor.class})
    void twoMembersSplitThePartitions(Class<?> assignor) throws Exception {
        String topic = Clients.unique("split");
        String group = Clients.unique("g-split");
        Clients.createTopic(node.bootstrap(), topic, 4);
        Set<TopicPartition> all = new HashSet<>(Clients.partitions(topic, 4));
        try (KafkaConsumer<String, String> a = member(group, assignor.getName());
                KafkaConsumer<String, String> b = member(group, assignor.getName())) {
            a.subscribe(List.of(topic));
            Clients.pollAllUntil(List.of(a), Duration.ofSeconds(30), "the first member to own all 4 partitions",
                    () -> a.assignment().equals(all));
            b.subscribe(List.of(topic));
            Clients.pollAllUntil(List.of(a, b), Duration.ofSeconds(45), "two members with 2 partitions each",
                    () -> a.assignment().size() == 2 && b.assignment().size() == 2);
            Set<TopicPartition> overlap = new HashSet<>(a.assignment());
            overlap.retainAll(b.assignment());
            assertEquals(Set.of(), overlap, "no partition owned twice");
            assertEquals(all, Clients.union(List.of(a.assignment(), b.assignment())));
            // The split stays: more polls change nothing.
            Set<TopicPartition> aBefore = Set.copyOf(a.assignment());
            for (int i = 0; i < 5; i++) {
                a.poll(Duration.ofMillis(100));
                b.poll(Duration.ofMillis(100));
            }
            assertEquals(aBefore, a.assignment());
        }
    }

    /** Records what a member's rebalance listener was told, in order. */
    static final class Recorder implements ConsumerRebalanceListener {
        final List<String> events = Collections.synchronizedList(new ArrayList<>());

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            events.add("revoked " + sorted(partitions));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            events.add("assigned " + sorted(partitions));
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            events.add("lost " + sorted(partitions));
        }

        static List<Integer> sorted(Collection<TopicPartition> tps) {
            List<Integer> l = new ArrayList<>();
            tps.forEach(tp -> l.add(tp.partition()));
            Collections.sort(l);
            return l;
        }
    }

    @Test
    void rebalanceListenerEagerProtocol() throws Exception {
        String topic = Clients.unique("listener");
        String group = Clients.unique("g-listener");
        Clients.createTopic(node.bootstrap(), topic, 4);
        Recorder ra = new Recorder();
        Recorder rb = new Recorder();
        try (KafkaConsumer<String, String> a = member(group, RangeAssignor.class.getName());
                KafkaConsumer<String, String> b = member(group, RangeAssignor.class.getName())) {
            a.subscribe(List.of(topic), ra);
            Clients.pollAllUntil(List.of(a), Duration.ofSeconds(30), "a to own 4 partitions", () -> a.assignment().size() == 4);
            assertEquals(List.of("assigned [0, 1, 2, 3]"), ra.events);
            b.subscribe(List.of(topic), rb);
            Clients.pollAllUntil(List.of(a, b), Duration.ofSeconds(45), "a split", () -> a.assignment().size() == 2
                    && b.assignment().size() == 2);
            // Eager: the first member gives everything back, then gets its share (range: 0,1 to the
            // member whose id sorts first).
            assertEquals(3, ra.events.size(), "a's events: " + ra.events);
            assertEquals("revoked [0, 1, 2, 3]", ra.events.get(1));
            assertEquals("assigned " + Recorder.sorted(a.assignment()), ra.events.get(2));
            assertEquals(List.of("assigned " + Recorder.sorted(b.assignment())), rb.events);
            Set<Integer> owned = new HashSet<>(Recorder.sorted(a.assignment()));
            assertTrue(owned.equals(Set.of(0, 1)) || owned.equals(Set.of(2, 3)), "range gives a contiguous pair: " + owned);
            b.close(Duration.ofSeconds(10));
            // Leaving calls the revoke callback of the leaving member; the other gets everything back.
            assertTrue(rb.events.get(rb.events.size() - 1).startsWith("revoked"), "b's events: " + rb.events);
            Clients.pollAllUntil(List.of(a), Duration.ofSeconds(30), "a to own 4 partitions again",
                    () -> a.assignment().size() == 4);
            assertEquals("assigned [0, 1, 2, 3]", ra.events.get(ra.events.size() - 1), "a's events: " + ra.events);
        }
    }

    @Test
    void rebalanceListenerCooperativeProtocol() throws Exception {
        String topic = Clients.unique("coop");
        String group = Clients.unique("g-coop");
        Clients.createTopic(node.bootstrap(), topic, 4);
        Recorder ra = new Recorder();
        Recorder rb = new Recorder();
        String coop = CooperativeStickyAssignor.class.getName();
        try (KafkaConsumer<String, String> a = member(group, coop); KafkaConsumer<String, String> b = member(group, coop)) {
            a.subscribe(List.of(topic), ra);
            Clients.pollAllUntil(List.of(a), Duration.ofSeconds(30), "a to own 4 partitions", () -> a.assignment().size() == 4);
            b.subscribe(List.of(topic), rb);
            Clients.pollAllUntil(List.of(a, b), Duration.ofSeconds(45), "a split", () -> a.assignment().size() == 2
                    && b.assignment().size() == 2);
            // Cooperative: a only gives up the two partitions that move, never all four.
            assertTrue(ra.events.contains("revoked " + Recorder.sorted(b.assignment())), "a's events: " + ra.events);
            assertTrue(ra.events.stream().noneMatch(e -> e.equals("revoked [0, 1, 2, 3]")), "a's events: " + ra.events);
            assertTrue(ra.events.stream().noneMatch(e -> e.startsWith("lost")), "a's events: " + ra.events);
            // b gets its partitions only after a revoked them (two rebalances).
            assertTrue(rb.events.contains("assigned " + Recorder.sorted(b.assignment())), "b's events: " + rb.events);
        }
    }

    @Test
    void twoConsumersInAGroupReadEveryRecordOnce() throws Exception {
        String topic = Clients.unique("share");
        String group = Clients.unique("g-share");
        Clients.createTopic(node.bootstrap(), topic, 4);
        int n = 2000;
        try (KafkaConsumer<String, String> a = member(group, RangeAssignor.class.getName());
                KafkaConsumer<String, String> b = member(group, RangeAssignor.class.getName())) {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic));
            Clients.pollAllUntil(List.of(a, b), Duration.ofSeconds(45), "two members with 2 partitions each",
                    () -> a.assignment().size() == 2 && b.assignment().size() == 2);
            // Produce only once the group is stable, so no rebalance can hand a record to both.
            try (KafkaProducer<String, String> p = Clients.producer(node.bootstrap())) {
                for (int i = 0; i < n; i++) {
                    p.send(new ProducerRecord<>(topic, "key" + i, String.valueOf(i)));
                }
                p.flush();
            }
            Map<String, Integer> seen = new HashMap<>();
            Map<String, String> who = new HashMap<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
            while (seen.size() < n && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : a.poll(Duration.ofMillis(100))) {
                    seen.merge(r.value(), 1, Integer::sum);
                    who.put(r.value(), "a");
                }
                for (ConsumerRecord<String, String> r : b.poll(Duration.ofMillis(100))) {
                    seen.merge(r.value(), 1, Integer::sum);
                    who.put(r.value(), "b");
                }
                a.commitSync();
                b.commitSync();
            }
            assertEquals(n, seen.size(), "distinct records read");
            seen.forEach((v, count) -> assertEquals(1, count, "record " + v + " read " + count + " times"));
            assertTrue(who.containsValue("a") && who.containsValue("b"), "both members read records");
        }
    }

    @Test
    void newConsumerGroupProtocolFailsCleanly() {
        // KIP-848 (group.protocol=consumer) needs ConsumerGroupHeartbeat, which fjord does not serve:
        // the client must say so, not hang.
        String topic = Clients.unique("kip848");
        Properties p = Clients.consumerProps(node.bootstrap(), Clients.unique("g-kip848"));
        p.remove(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG);
        p.remove(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            KafkaException error = null;
            while (error == null && System.nanoTime() < deadline) {
                try {
                    c.poll(Duration.ofMillis(200));
                } catch (KafkaException e) {
                    error = e;
                }
            }
            if (error == null) {
                fail("poll with group.protocol=consumer neither failed nor was served within 20 s");
            }
            assertInstanceOf(UnsupportedVersionException.class, error, "error: " + error);
        }
    }

    @Test
    void staticMemberRejoinsWithoutRebalance() throws Exception {
        String topic = Clients.unique("static");
        String group = Clients.unique("g-static");
        Clients.createTopic(node.bootstrap(), topic, 2);
        Properties p = Clients.consumerProps(node.bootstrap(), group);
        p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-1");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30000);
        int generation;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic));
            Clients.pollAllUntil(List.of(c), Duration.ofSeconds(30), "the static member to own 2 partitions",
                    () -> c.assignment().size() == 2);
            generation = c.groupMetadata().generationId();
            assertTrue(generation > 0, "generation " + generation);
        }
        // A static member leaving does not leave the group (no LeaveGroup): coming back with the same
        // instance id within the session timeout gets the same assignment at once.
        Recorder r2 = new Recorder();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic), r2);
            Clients.pollAllUntil(List.of(c), Duration.ofSeconds(30), "the returning static member to own 2 partitions",
                    () -> c.assignment().size() == 2);
            assertEquals(List.of("assigned [0, 1]"), r2.events);
            assertEquals(generation, c.groupMetadata().generationId(), "same generation: no rebalance");
        }
    }
}
