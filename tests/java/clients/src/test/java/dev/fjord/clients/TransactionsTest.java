package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordNode;
import dev.fjord.harness.Wait;

/** The Java producer's transactions against one fjord dev node (KIP-98, KIP-447 fencing). */
class TransactionsTest {
    static final Duration TIMEOUT = Duration.ofSeconds(30);
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

    static List<String> readValues(String topic, int partitions, String isolation, int count) {
        Properties props = Clients.consumerProps(node.bootstrap(), null);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.assign(Clients.partitions(topic, partitions));
            c.seekToBeginning(c.assignment());
            Wait.until(TIMEOUT, count + " records of " + topic + " (" + isolation + ")", () -> {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
                return values.size() >= count;
            }, () -> "; got " + values);
            // Anything more would be a record that should not be there.
            c.poll(Duration.ofMillis(500)).forEach(r -> values.add(r.value()));
        }
        return values;
    }

    @Test
    void committedRecordsAreReadAbortedOnesOnlyUncommitted() throws Exception {
        String topic = Clients.unique("txn");
        Clients.createTopic(node.bootstrap(), topic, 2);
        try (KafkaProducer<String, String> p = Clients.transactionalProducer(node.bootstrap(), Clients.unique("tid"))) {
            p.beginTransaction();
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, null, "commit-" + i));
            }
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, null, "abort-" + i));
            }
            p.flush();
            p.abortTransaction();
        }
        List<String> committed = readValues(topic, 2, "read_committed", 10);
        assertEquals(10, committed.size(), "read_committed: " + committed);
        assertEquals(10, committed.stream().filter(v -> v.startsWith("commit-")).count(), "read_committed: " + committed);
        assertEquals(20, readValues(topic, 2, "read_uncommitted", 20).size());
    }

    @Test
    void offsetsSentToTheTransactionCommitWithIt() throws Exception {
        String src = Clients.unique("src");
        String dst = Clients.unique("dst");
        String group = Clients.unique("group");
        Clients.createTopic(node.bootstrap(), src, 1);
        Clients.createTopic(node.bootstrap(), dst, 1);
        try (KafkaProducer<String, String> plain = Clients.producer(node.bootstrap())) {
            for (int i = 0; i < 30; i++) {
                plain.send(new ProducerRecord<>(src, "v" + i));
            }
            plain.flush();
        }
        Properties props = Clients.consumerProps(node.bootstrap(), group);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        TopicPartition tp = new TopicPartition(src, 0);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props);
                KafkaProducer<String, String> producer = Clients.transactionalProducer(node.bootstrap(), Clients.unique("ctp"))) {
            // subscribe: the group metadata carries a generation and member id (KIP-447 fencing).
            consumer.subscribe(List.of(src));
            List<ConsumerRecord<String, String>> batch = new ArrayList<>();
            Wait.until(TIMEOUT, "30 records of " + src, () -> {
                consumer.poll(Duration.ofMillis(200)).forEach(batch::add);
                return batch.size() >= 30;
            }, () -> "; got " + batch.size());
            producer.beginTransaction();
            for (ConsumerRecord<String, String> r : batch.subList(0, 20)) {
                producer.send(new ProducerRecord<>(dst, r.value().toUpperCase()));
            }
            producer.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(20)), consumer.groupMetadata());
            producer.commitTransaction();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(dst, "dropped"));
            producer.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(30)), consumer.groupMetadata());
            producer.abortTransaction();
        }
        try (Admin admin = Clients.admin(node.bootstrap())) {
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(20, TimeUnit.SECONDS);
            assertEquals(20, committed.get(tp).offset(), "the aborted transaction's offset is dropped");
        }
        List<String> out = readValues(dst, 1, "read_committed", 20);
        assertEquals(java.util.stream.IntStream.range(0, 20).mapToObj(i -> "V" + i).collect(Collectors.toList()), out);
    }

    @Test
    void aNewerProducerAndFenceProducersFenceTheOlderOne() throws Exception {
        String topic = Clients.unique("fence");
        Clients.createTopic(node.bootstrap(), topic, 1);
        String tid = Clients.unique("tid");
        KafkaProducer<String, String> old = Clients.transactionalProducer(node.bootstrap(), tid);
        old.beginTransaction();
        old.send(new ProducerRecord<>(topic, "zombie")).get(20, TimeUnit.SECONDS);
        try (KafkaProducer<String, String> newer = Clients.transactionalProducer(node.bootstrap(), tid)) {
            assertThrows(ProducerFencedException.class, old::commitTransaction);
            old.close(Duration.ZERO);
            newer.beginTransaction();
            newer.send(new ProducerRecord<>(topic, "newer"));
            newer.commitTransaction();
            // The AdminClient's fenceProducers bumps the epoch too (InitProducerId).
            try (Admin admin = Clients.admin(node.bootstrap())) {
                admin.fenceProducers(List.of(tid)).all().get(20, TimeUnit.SECONDS);
            }
            newer.beginTransaction();
            newer.send(new ProducerRecord<>(topic, "after-fence"));
            assertThrows(org.apache.kafka.common.KafkaException.class, newer::commitTransaction);
        }
        try (Admin admin = Clients.admin(node.bootstrap())) {
            // forceTerminateTransaction without a prepared transaction (KIP-939) is a fence too.
            admin.forceTerminateTransaction(tid).result().get(20, TimeUnit.SECONDS);
        }
        assertEquals(List.of("newer"), readValues(topic, 1, "read_committed", 1));
    }
}
