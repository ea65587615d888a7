package dev.fjord.examples.streamsfilter;

import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Reads strings from input-topic, drops every value of 10 characters or fewer, upper-cases
 * the rest and writes them to output-topic (keys pass through unchanged).
 *
 * <p>Run against {@code fjord dev}: {@code mvn compile exec:java}, or with another
 * bootstrap address as the first argument (default 127.0.0.1:9092).
 */
public final class StreamsFilterApp {
    public static final String INPUT_TOPIC = "input-topic";
    public static final String OUTPUT_TOPIC = "output-topic";

    private StreamsFilterApp() {}

    /** The whole processing logic: filter on length, then upper-case. */
    public static Topology topology() {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(INPUT_TOPIC, Consumed.with(Serdes.String(), Serdes.String()))
                .filter((key, value) -> value.length() > 10)
                .mapValues(value -> value.toUpperCase())
                .to(OUTPUT_TOPIC, Produced.with(Serdes.String(), Serdes.String()));
        return builder.build();
    }

    /** The Streams settings of this app (at-least-once, String serdes). */
    public static Properties config(String bootstrapServers, String applicationId) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        return props;
    }

    public static void main(String[] args) throws InterruptedException {
        String bootstrap = args.length > 0 ? args[0] : "127.0.0.1:9092";
        KafkaStreams streams = new KafkaStreams(topology(), config(bootstrap, "streams-filter"));
        CountDownLatch stopped = new CountDownLatch(1);
        // Ctrl-C closes the app cleanly (commits offsets, leaves the group).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }, "streams-filter-shutdown"));
        streams.setStateListener((now, before) -> System.out.println("streams-filter: " + before + " -> " + now));
        streams.start();
        System.out.println("streams-filter: " + INPUT_TOPIC + " -> " + OUTPUT_TOPIC + " on " + bootstrap + " (Ctrl-C to stop)");
        stopped.await();
    }
}
