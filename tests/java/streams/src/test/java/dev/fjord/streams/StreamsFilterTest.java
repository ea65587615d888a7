package dev.fjord.streams;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.fjord.examples.streamsfilter.StreamsFilterApp;
import dev.fjord.harness.FjordNode;
import dev.fjord.harness.Wait;

/**
 * The topology of examples/streams-filter (its source is compiled into this module), in
 * this JVM, against a real fjord dev node.
 */
class StreamsFilterTest {
    FjordNode node;
    KafkaStreams streams;

    @BeforeEach
    void start() {
        node = FjordNode.startDev();
    }

    @AfterEach
    void stop() {
        if (streams != null) {
            streams.close(Duration.ofSeconds(10));
        }
        if (node != null) {
            node.close();
        }
    }

    @Test
    void keepsLongValuesUpperCasedInOrder(@TempDir Path stateDir) throws Exception {
        runFilter(StreamsConfig.AT_LEAST_ONCE, stateDir);
    }

    /** The same with transactions (a transactional producer, offsets committed in the transaction). */
    @Test
    void exactlyOnceV2KeepsLongValuesUpperCasedInOrder(@TempDir Path stateDir) throws Exception {
        runFilter(StreamsConfig.EXACTLY_ONCE_V2, stateDir);
    }

    void runFilter(String processingGuarantee, Path stateDir) throws Exception {
        // One partition each: the output order must be the input order.
        Kafka.createTopics(node.bootstrap(),
                Map.of(StreamsFilterApp.INPUT_TOPIC, 1, StreamsFilterApp.OUTPUT_TOPIC, 1));

        var props = StreamsFilterApp.config(node.bootstrap(), "streams-filter-test");
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, processingGuarantee);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        streams = new KafkaStreams(StreamsFilterApp.topology(), props);
        streams.start();
        Wait.until(Duration.ofSeconds(60), "the Streams app to reach RUNNING",
                () -> streams.state() == KafkaStreams.State.RUNNING, () -> "; it is " + streams.state());

        // 60 values of lengths 5..16, a few sharing keys; the last one marks the end.
        List<ProducerRecord<String, String>> input = new ArrayList<>();
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            String value = ("value-" + i + "-abcdefghij").substring(0, 5 + i % 12);
            input.add(new ProducerRecord<>(StreamsFilterApp.INPUT_TOPIC, "key-" + (i % 7), value));
            if (value.length() > 10) {
                expected.add("key-" + (i % 7) + "=" + value.toUpperCase());
            }
        }
        String marker = "end-of-input-marker";
        input.add(new ProducerRecord<>(StreamsFilterApp.INPUT_TOPIC, "end", marker));
        expected.add("end=" + marker.toUpperCase());
        try (KafkaProducer<String, String> producer = Kafka.producer(node.bootstrap())) {
            for (ProducerRecord<String, String> r : input) {
                producer.send(r);
            }
            producer.flush();
        }

        // Everything before the marker was processed once the marker is out (one partition).
        List<String> output = new ArrayList<>();
        // read_committed: under exactly-once only committed transactions count.
        try (KafkaConsumer<String, String> reader = Kafka.readerFromStart(node.bootstrap(), StreamsFilterApp.OUTPUT_TOPIC,
                new StringDeserializer(), "read_committed")) {
            Instant deadline = Instant.now().plusSeconds(60);
            while (!output.contains("end=" + marker.toUpperCase())) {
                if (Instant.now().isAfter(deadline)) {
                    throw new AssertionError("timed out after 60 s waiting for the marker in output-topic; got "
                            + output.size() + " records: " + output + "; Streams state " + streams.state());
                }
                for (ConsumerRecord<String, String> r : reader.poll(Duration.ofMillis(200))) {
                    output.add(r.key() + "=" + r.value());
                }
            }
        }
        assertEquals(expected, output, "output-topic must hold exactly the long values, upper-cased, in input order");
        assertEquals(KafkaStreams.State.RUNNING, streams.state());
    }
}
