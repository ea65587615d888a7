package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Partitioner;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.fjord.harness.FjordNode;

/** KafkaProducer against one fjord dev node: delivery guarantees, codecs, headers, partitioning. */
class ProducerTest {
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

    @Test
    void idempotentAcksAllSendGetGivesConsecutiveOffsets() throws Exception {
        String topic = Clients.unique("idem");
        Clients.createTopic(node.bootstrap(), topic, 1);
        Properties props = Clients.producerProps(node.bootstrap());
        props.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            RecordMetadata first = p.send(new ProducerRecord<>(topic, "k0", "v0")).get(30, TimeUnit.SECONDS);
            assertEquals(0, first.offset());
            assertEquals(0, first.partition());
            assertEquals(topic, first.topic());
            // Many requests in flight: the idempotent producer keeps them in order.
            for (int i = 1; i < 1000; i++) {
                sent.add(p.send(new ProducerRecord<>(topic, "k" + i, "v" + i)));
            }
            p.flush();
        }
        for (int i = 0; i < sent.size(); i++) {
            assertEquals(i + 1, sent.get(i).get().offset(), "offset of record " + (i + 1));
        }
        List<ConsumerRecord<String, String>> read = Clients.readAll(node.bootstrap(), topic, 1, 1000, Duration.ofSeconds(30));
        assertEquals(1000, read.size());
        for (int i = 0; i < 1000; i++) {
            assertEquals(i, read.get(i).offset());
            assertEquals("k" + i, read.get(i).key());
            assertEquals("v" + i, read.get(i).value());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "1", "all"})
    void nonIdempotentAcksRoundTrip(String acks) throws Exception {
        String topic = Clients.unique("acks");
        Clients.createTopic(node.bootstrap(), topic, 1);
        Properties props = Clients.producerProps(node.bootstrap());
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        props.put(ProducerConfig.ACKS_CONFIG, acks);
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            for (int i = 0; i < 50; i++) {
                RecordMetadata md = p.send(new ProducerRecord<>(topic, "v" + i)).get(30, TimeUnit.SECONDS);
                // acks=0 gets no answer, so the client cannot know the offset.
                assertEquals(acks.equals("0") ? -1 : i, md.offset(), "offset with acks=" + acks);
            }
        }
        List<ConsumerRecord<String, String>> read = Clients.readAll(node.bootstrap(), topic, 1, 50, Duration.ofSeconds(30));
        for (int i = 0; i < 50; i++) {
            assertEquals("v" + i, read.get(i).value());
            assertNull(read.get(i).key());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void everyCodecRoundTrips(String codec) throws Exception {
        String topic = Clients.unique("codec-" + codec);
        Clients.createTopic(node.bootstrap(), topic, 2);
        Properties props = Clients.producerProps(node.bootstrap());
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        // Batches of many records, so each codec compresses several records together.
        props.put(ProducerConfig.LINGER_MS_CONFIG, 20);
        props.put(ProducerConfig.BATCH_SIZE_CONFIG, 64 * 1024);
        Map<String, String> sentByKey = new HashMap<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            for (int i = 0; i < 500; i++) {
                String key = "key-" + i;
                String value = codec + " value " + i + " " + "abcdefgh".repeat(i % 50);
                sentByKey.put(key, value);
                p.send(new ProducerRecord<>(topic, key, value));
            }
            p.flush();
        }
        List<ConsumerRecord<String, String>> read = Clients.readAll(node.bootstrap(), topic, 2, 500, Duration.ofSeconds(30));
        assertEquals(500, read.size());
        Map<String, String> readByKey = new HashMap<>();
        for (ConsumerRecord<String, String> r : read) {
            assertNull(readByKey.put(r.key(), r.value()), "key " + r.key() + " read twice");
        }
        assertEquals(sentByKey, readByKey);
    }

    @Test
    void headersAndCreateTimeRoundTrip() throws Exception {
        String topic = Clients.unique("headers");
        Clients.createTopic(node.bootstrap(), topic, 1);
        long base = 1_700_000_000_000L;
        try (KafkaProducer<String, String> p = Clients.producer(node.bootstrap())) {
            for (int i = 0; i < 20; i++) {
                List<Header> headers = List.of(
                        new RecordHeader("trace", ("t" + i).getBytes(StandardCharsets.UTF_8)),
                        new RecordHeader("empty", new byte[0]),
                        new RecordHeader("nothing", null),
                        new RecordHeader("trace", "second value, same key".getBytes(StandardCharsets.UTF_8)));
                // Timestamps out of order on purpose: CreateTime is the producer's, kept as sent.
                long ts = base + (i % 2 == 0 ? i * 1000L : -i * 1000L);
                p.send(new ProducerRecord<>(topic, 0, ts, "k" + i, "v" + i, headers));
            }
            p.flush();
        }
        List<ConsumerRecord<String, String>> read = Clients.readAll(node.bootstrap(), topic, 1, 20, Duration.ofSeconds(30));
        for (int i = 0; i < 20; i++) {
            ConsumerRecord<String, String> r = read.get(i);
            assertEquals(TimestampType.CREATE_TIME, r.timestampType());
            assertEquals(base + (i % 2 == 0 ? i * 1000L : -i * 1000L), r.timestamp(), "timestamp of record " + i);
            Header[] h = r.headers().toArray();
            assertEquals(4, h.length);
            assertEquals("trace", h[0].key());
            assertArrayEquals(("t" + i).getBytes(StandardCharsets.UTF_8), h[0].value());
            assertArrayEquals(new byte[0], h[1].value());
            assertNull(h[2].value());
            assertEquals("second value, same key", new String(h[3].value(), StandardCharsets.UTF_8));
            assertEquals("second value, same key", new String(r.headers().lastHeader("trace").value(), StandardCharsets.UTF_8));
        }
    }

    /** Routes "pN:..." keys to partition N; anything else to the last partition. */
    public static class PrefixPartitioner implements Partitioner {
        static volatile boolean configured;

        @Override
        public int partition(String topic, Object key, byte[] keyBytes, Object value, byte[] valueBytes, Cluster cluster) {
            int count = cluster.partitionCountForTopic(topic);
            String k = (String) key;
            if (k != null && k.startsWith("p") && k.indexOf(':') > 1) {
                return Integer.parseInt(k.substring(1, k.indexOf(':'))) % count;
            }
            return count - 1;
        }

        @Override
        public void configure(Map<String, ?> configs) {
            configured = true;
        }

        @Override
        public void close() {}
    }

    @Test
    void customPartitionerDecidesThePartition() throws Exception {
        String topic = Clients.unique("partitioner");
        Clients.createTopic(node.bootstrap(), topic, 3);
        Properties props = Clients.producerProps(node.bootstrap());
        props.put(ProducerConfig.PARTITIONER_CLASS_CONFIG, PrefixPartitioner.class.getName());
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            assertTrue(PrefixPartitioner.configured, "partitioner configured");
            for (int i = 0; i < 30; i++) {
                RecordMetadata md = p.send(new ProducerRecord<>(topic, "p" + (i % 3) + ":" + i, "v" + i)).get(30, TimeUnit.SECONDS);
                assertEquals(i % 3, md.partition());
            }
            assertEquals(2, p.send(new ProducerRecord<>(topic, "other", "x")).get(30, TimeUnit.SECONDS).partition());
        }
        List<ConsumerRecord<String, String>> read = Clients.readAll(node.bootstrap(), topic, 3, 31, Duration.ofSeconds(30));
        for (ConsumerRecord<String, String> r : read) {
            int expected = r.key().startsWith("p") ? Integer.parseInt(r.key().substring(1, 2)) : 2;
            assertEquals(expected, r.partition(), "partition of " + r.key());
        }
    }

    @Test
    void callbacksGetMetadataInOrder() throws Exception {
        String topic = Clients.unique("callbacks");
        Clients.createTopic(node.bootstrap(), topic, 1);
        int n = 200;
        CountDownLatch done = new CountDownLatch(n);
        List<Long> offsets = Collections.synchronizedList(new ArrayList<>());
        List<Exception> errors = Collections.synchronizedList(new ArrayList<>());
        try (KafkaProducer<String, String> p = Clients.producer(node.bootstrap())) {
            for (int i = 0; i < n; i++) {
                p.send(new ProducerRecord<>(topic, "v" + i), (md, e) -> {
                    if (e != null) {
                        errors.add(e);
                    } else {
                        offsets.add(md.offset());
                    }
                    done.countDown();
                });
            }
            assertTrue(done.await(30, TimeUnit.SECONDS), "all callbacks within 30 s; " + done.getCount() + " missing");
        }
        assertEquals(List.of(), errors);
        // Callbacks of one partition run in send order.
        List<Long> expected = new ArrayList<>();
        for (long i = 0; i < n; i++) {
            expected.add(i);
        }
        assertEquals(expected, offsets);
    }

    @Test
    void recordLargerThanMaxMessageBytesFailsInTheCallback() throws Exception {
        String topic = Clients.unique("toolarge");
        try (Admin admin = Clients.admin(node.bootstrap())) {
            NewTopic t = new NewTopic(topic, 1, (short) 1).configs(Map.of("max.message.bytes", "2048"));
            admin.createTopics(List.of(t)).all().get(20, TimeUnit.SECONDS);
        }
        Properties props = Clients.producerProps(node.bootstrap());
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        CountDownLatch called = new CountDownLatch(1);
        Exception[] seen = new Exception[1];
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            Future<RecordMetadata> f = p.send(new ProducerRecord<>(topic, "x".repeat(10_000)), (md, e) -> {
                seen[0] = e;
                called.countDown();
            });
            assertTrue(called.await(30, TimeUnit.SECONDS), "callback called");
            ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
            assertInstanceOf(RecordTooLargeException.class, e.getCause());
            assertInstanceOf(RecordTooLargeException.class, seen[0]);
            // The producer still works after the refusal.
            assertNotNull(p.send(new ProducerRecord<>(topic, "small")).get(30, TimeUnit.SECONDS));
        }
    }
}
