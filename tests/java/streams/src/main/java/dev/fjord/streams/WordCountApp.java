package dev.fjord.streams;

import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;

/**
 * A stateful word count run as its own JVM by WordCountProcessTest: lines -> words ->
 * groupBy(word) (a repartition topic) -> count() in a RocksDB store (a compacted changelog
 * topic) -> word-counts. Prints its state changes and every state restore to stdout, which
 * the test reads.
 *
 * <p>Arguments: bootstrap servers, application id, state dir.
 */
public final class WordCountApp {
    public static final String LINES_TOPIC = "lines";
    public static final String COUNTS_TOPIC = "word-counts";
    public static final String STORE = "counts-store";

    private WordCountApp() {}

    public static Topology topology() {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(LINES_TOPIC, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
                .filter((key, word) -> !word.isEmpty())
                .groupBy((key, word) -> word, Grouped.with(STORE, Serdes.String(), Serdes.String()))
                .count(Materialized.as(STORE))
                .toStream()
                .to(COUNTS_TOPIC, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    static Properties config(String bootstrap, String applicationId, String stateDir, String guarantee) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        // Quick commits: the test waits for the counts and the committed offsets.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        // Purge the repartition topic often (DeleteRecords), so the test sees how that goes.
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 500);
        // A SIGKILLed instance leaves the group after 6 s instead of 45 s.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        return p;
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 3 && args.length != 4) {
            System.err.println("usage: WordCountApp BOOTSTRAP APPLICATION_ID STATE_DIR [PROCESSING_GUARANTEE]");
            System.exit(2);
        }
        // Streams reports a failed repartition-topic purge (DeleteRecords) only at DEBUG.
        System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka.streams.processor.internals.TaskManager", "debug");
        KafkaStreams streams = new KafkaStreams(topology(), config(args[0], args[1], args[2],
                args.length == 4 ? args[3] : StreamsConfig.AT_LEAST_ONCE));
        streams.setStateListener((now, before) -> System.out.println("wordcount state: " + before + " -> " + now));
        streams.setGlobalStateRestoreListener(new PrintingRestoreListener());
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("wordcount uncaught exception: " + e);
            e.printStackTrace(System.out);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }, "wordcount-shutdown"));
        streams.start();
        stopped.await();
    }

    /** Prints "restore end <store> <partition> restored=<n>" lines the test counts. */
    private static final class PrintingRestoreListener implements StateRestoreListener {
        @Override
        public void onRestoreStart(TopicPartition tp, String store, long startingOffset, long endingOffset) {
            System.out.println("restore start " + store + " " + tp + " from=" + startingOffset + " to=" + endingOffset);
        }

        @Override
        public void onBatchRestored(TopicPartition tp, String store, long batchEndOffset, long numRestored) {
        }

        @Override
        public void onRestoreEnd(TopicPartition tp, String store, long totalRestored) {
            System.out.println("restore end " + store + " " + tp + " restored=" + totalRestored);
        }
    }
}
