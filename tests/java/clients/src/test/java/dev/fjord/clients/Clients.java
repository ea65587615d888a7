package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Client factories and small helpers shared by the tests. */
final class Clients {
    private static final AtomicInteger SEQ = new AtomicInteger();

    private Clients() {}

    /** A name no other test of this JVM uses (topics, groups). */
    static String unique(String prefix) {
        return prefix + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet();
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        return Admin.create(p);
    }

    /** Producer settings: idempotent, acks=all, retries (the Java client's defaults made explicit). */
    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.RETRIES_CONFIG, Integer.MAX_VALUE);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 20000);
        return p;
    }

    static KafkaProducer<String, String> producer(String bootstrap) {
        return new KafkaProducer<>(producerProps(bootstrap));
    }

    /** A transactional producer of {@code transactionalId}, its transactions initialized. */
    static KafkaProducer<String, String> transactionalProducer(String bootstrap, String transactionalId) {
        Properties p = producerProps(bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        return producer;
    }

    /** Consumer settings: no group unless given, read from the beginning, no auto commit. */
    static Properties consumerProps(String bootstrap, String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        }
        return p;
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group) {
        return new KafkaConsumer<>(consumerProps(bootstrap, group));
    }

    /** Creates a topic (replication factor: the broker's default) and waits for the answer. */
    static void createTopic(String bootstrap, String topic, int partitions) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, java.util.Optional.of(partitions), java.util.Optional.empty())))
                    .all().get(20, TimeUnit.SECONDS);
        }
    }

    static List<TopicPartition> partitions(String topic, int count) {
        return IntStream.range(0, count).mapToObj(i -> new TopicPartition(topic, i)).collect(Collectors.toList());
    }

    /**
     * Reads {@code topic}'s partitions from the beginning with assign() until {@code count}
     * records arrived; fails after {@code timeout} saying how many came.
     */
    static List<ConsumerRecord<String, String>> readAll(String bootstrap, String topic, int partitions, int count,
            Duration timeout) {
        try (KafkaConsumer<String, String> c = consumer(bootstrap, null)) {
            List<TopicPartition> tps = partitions(topic, partitions);
            c.assign(tps);
            c.seekToBeginning(tps);
            return pollUntil(c, count, timeout);
        }
    }

    /** Polls until {@code count} records arrived (no more is asserted by callers that care). */
    static <K, V> List<ConsumerRecord<K, V>> pollUntil(KafkaConsumer<K, V> c, int count, Duration timeout) {
        List<ConsumerRecord<K, V>> out = new ArrayList<>();
        Instant deadline = Instant.now().plus(timeout);
        while (out.size() < count) {
            if (Instant.now().isAfter(deadline)) {
                fail("read " + out.size() + " of " + count + " records within " + timeout.toSeconds() + " s");
            }
            for (ConsumerRecord<K, V> r : c.poll(Duration.ofMillis(200))) {
                out.add(r);
            }
        }
        return out;
    }

    /** Polls the consumers in turn until {@code done} holds; fails after {@code timeout}. */
    static void pollAllUntil(Collection<? extends KafkaConsumer<?, ?>> consumers, Duration timeout, String what,
            java.util.function.BooleanSupplier done) {
        Instant deadline = Instant.now().plus(timeout);
        while (!done.getAsBoolean()) {
            if (Instant.now().isAfter(deadline)) {
                fail("timed out after " + timeout.toSeconds() + " s waiting for " + what + "; assignments: "
                        + consumers.stream().map(c -> c.assignment().toString()).collect(Collectors.joining(" | ")));
            }
            for (KafkaConsumer<?, ?> c : consumers) {
                c.poll(Duration.ofMillis(100));
            }
        }
    }

    static Set<TopicPartition> union(Collection<Set<TopicPartition>> sets) {
        return sets.stream().flatMap(Set::stream).collect(Collectors.toSet());
    }

    static <T> T get(org.apache.kafka.common.KafkaFuture<T> f) throws Exception {
        return f.get(30, TimeUnit.SECONDS);
    }

    static Map<String, String> configMap(String... kv) {
        Map<String, String> m = new java.util.HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }
}
