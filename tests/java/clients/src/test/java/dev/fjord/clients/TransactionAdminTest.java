package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TransactionalIdNotFoundException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordNode;
import dev.fjord.harness.Wait;

/**
 * The Java Admin's transaction methods (KIP-664) against one fjord dev node: listTransactions,
 * describeTransactions, describeProducers and abortTransaction on a transactional producer's
 * open transaction.
 */
class TransactionAdminTest {
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

    /** What a read_committed consumer reads of partition 0 within a second. */
    static List<String> readCommitted(String topic) {
        Properties props = Clients.consumerProps(node.bootstrap(), null);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.assign(Clients.partitions(topic, 1));
            c.seekToBeginning(c.assignment());
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            while (System.nanoTime() < end) {
                c.poll(Duration.ofMillis(200)).forEach(r -> values.add(r.value()));
            }
            // The aborted transaction no longer holds the consumer's position back.
            assertEquals(2L, c.position(new TopicPartition(topic, 0)));
        }
        return values;
    }

    static <T> T get(org.apache.kafka.common.KafkaFuture<T> f) throws Exception {
        return f.get(20, TimeUnit.SECONDS);
    }

    @Test
    void anOpenTransactionIsListedDescribedAndAbortedOnItsPartition() throws Exception {
        String topic = Clients.unique("txn-admin");
        Clients.createTopic(node.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String tid = Clients.unique("tid-admin");
        try (Admin admin = Clients.admin(node.bootstrap());
                KafkaProducer<String, String> p = Clients.transactionalProducer(node.bootstrap(), tid)) {
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "k", "open")).get(20, TimeUnit.SECONDS);

            // listTransactions: every broker's ids, with state and producer id filters.
            Collection<TransactionListing> all = get(admin.listTransactions().all());
            TransactionListing listing = all.stream()
                    .filter(l -> l.transactionalId().equals(tid))
                    .findFirst()
                    .orElseThrow(() -> new AssertionError(tid + " not listed: " + all));
            assertEquals(TransactionState.ONGOING, listing.state());
            long pid = listing.producerId();
            Collection<TransactionListing> ongoing = get(admin.listTransactions(
                    new ListTransactionsOptions().filterStates(List.of(TransactionState.ONGOING))
                            .filterProducerIds(Set.of(pid))).all());
            assertEquals(List.of(tid), ongoing.stream().map(TransactionListing::transactionalId).toList());

            // describeTransactions: found through FindCoordinator(TRANSACTION).
            TransactionDescription d = get(admin.describeTransactions(List.of(tid)).description(tid));
            assertEquals(TransactionState.ONGOING, d.state());
            assertEquals(pid, d.producerId());
            assertEquals(Set.of(tp), d.topicPartitions());
            assertTrue(d.transactionStartTimeMs().isPresent(), "start time: " + d);
            ExecutionException unknown = assertThrows(ExecutionException.class,
                    () -> get(admin.describeTransactions(List.of(Clients.unique("nobody"))).all()));
            assertInstanceOf(TransactionalIdNotFoundException.class, unknown.getCause());

            // describeProducers: the producer's open transaction on the partition.
            List<ProducerState> producers = get(admin.describeProducers(List.of(tp)).partitionResult(tp))
                    .activeProducers();
            ProducerState state = producers.stream()
                    .filter(s -> s.producerId() == pid)
                    .findFirst()
                    .orElseThrow(() -> new AssertionError("producer " + pid + " not in " + producers));
            assertEquals(d.producerEpoch(), state.producerEpoch());
            assertEquals(0L, state.currentTransactionStartOffset().orElse(-1L));
            assertTrue(state.coordinatorEpoch().isEmpty(), "no marker yet: " + state);

            // abortTransaction: WriteTxnMarkers(ABORT) at the leader ends it on the partition.
            get(admin.abortTransaction(new AbortTransactionSpec(tp, pid, (short) state.producerEpoch(), 0)).all());
            ProducerState after = get(admin.describeProducers(List.of(tp)).partitionResult(tp)).activeProducers()
                    .stream().filter(s -> s.producerId() == pid).findFirst().orElseThrow();
            assertTrue(after.currentTransactionStartOffset().isEmpty(), "still open: " + after);
            assertEquals(0, after.coordinatorEpoch().orElse(-1));
            assertEquals(List.of(), readCommitted(topic));

            // The producer's own abort still completes (its coordinator's markers are not older).
            p.abortTransaction();
            Wait.until(TIMEOUT, tid + " CompleteAbort", () -> {
                Map<String, TransactionDescription> m = get(admin.describeTransactions(List.of(tid)).all());
                return m.get(tid).state() == TransactionState.COMPLETE_ABORT;
            });
        }
    }
}
