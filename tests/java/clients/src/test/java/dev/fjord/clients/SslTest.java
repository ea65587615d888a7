package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.fjord.harness.FjordProcess;
import dev.fjord.harness.Ports;

/**
 * The Java client over an SSL listener with ssl.client.auth=required, PEM key and trust stores
 * (Kafka's ssl.keystore.type=PEM): admin, produce, consume in a group; the principal comes from
 * the client certificate; without one the client is refused. Certificates from scripts/gen-certs.
 */
class SslTest {
    static Path dir;
    static Ports.Lease plain;
    static Ports.Lease secure;
    static Ports.Lease rpc;
    static FjordProcess node;

    static Path repoFile(String relative) {
        Path d = Paths.get(System.getProperty("user.dir")).toAbsolutePath();
        while (d != null && !Files.exists(d.resolve(relative))) {
            d = d.getParent();
        }
        if (d == null) {
            throw new IllegalStateException(relative + " not found above " + System.getProperty("user.dir"));
        }
        return d.resolve(relative);
    }

    @BeforeAll
    static void start() throws Exception {
        dir = Files.createTempDirectory("fjord-java-ssl-");
        Path certs = dir.resolve("certs");
        Process gen = new ProcessBuilder(repoFile("scripts/gen-certs").toString(), "--dir", certs.toString(),
                "--node", "n1", "--client", "javaclient").redirectErrorStream(true).start();
        assertEquals(0, gen.waitFor(), new String(gen.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
        // Kafka's PEM keystore: the certificate chain and the PKCS#8 key in one file.
        Files.writeString(certs.resolve("client-keystore.pem"),
                Files.readString(certs.resolve("client-javaclient.pem")) + Files.readString(certs.resolve("client-javaclient.key")));
        plain = Ports.lease();
        secure = Ports.lease();
        rpc = Ports.lease();
        Path config = dir.resolve("fjord.toml");
        Files.writeString(config, String.join("\n",
                "node_id = 1",
                "data_dir = \"" + dir.resolve("data") + "\"",
                "listeners = [\"PLAINTEXT://127.0.0.1:" + plain.port() + "\", \"SSL://127.0.0.1:" + secure.port() + "\"]",
                "rpc_addr = \"127.0.0.1:" + rpc.port() + "\"",
                "http_addr = \"off\"",
                "[broker]",
                "offsets_topic_replication_factor = 1",
                "offsets_topic_num_partitions = 4",
                "group_initial_rebalance_delay_ms = 0",
                "[ssl]",
                "keystore_location = \"" + certs.resolve("keystore-node-n1.pem") + "\"",
                "truststore_location = \"" + certs.resolve("ca.pem") + "\"",
                "client_auth = \"required\"",
                "principal_mapping_rules = \"RULE:^CN=(.*?),OU=clients,.*$/$1/,DEFAULT\"",
                ""), StandardCharsets.UTF_8);
        node = new FjordProcess("ssl-node", List.of("server", "--config", config.toString()));
        node.start();
        node.awaitLog(Pattern.compile("fjord node ready"), Duration.ofSeconds(60), "\"fjord node ready\" line");
    }

    @AfterAll
    static void stop() {
        if (node != null) {
            node.close(Duration.ofSeconds(10));
        }
        for (Ports.Lease l : new Ports.Lease[] {plain, secure, rpc}) {
            if (l != null) {
                l.close();
            }
        }
    }

    static Properties ssl(boolean withCertificate) {
        Path certs = dir.resolve("certs");
        Properties p = new Properties();
        p.put("bootstrap.servers", "127.0.0.1:" + secure.port());
        p.put("security.protocol", "SSL");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", certs.resolve("ca.pem").toString());
        if (withCertificate) {
            p.put("ssl.keystore.type", "PEM");
            p.put("ssl.keystore.location", certs.resolve("client-keystore.pem").toString());
        }
        return p;
    }

    @Test
    void adminProduceAndGroupConsumeOverMutualTls() throws Exception {
        String topic = "java-ssl-" + UUID.randomUUID().toString().substring(0, 8);
        try (Admin admin = Admin.create(ssl(true))) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get(30, TimeUnit.SECONDS);
            assertTrue(admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));
        }
        Properties pp = ssl(true);
        pp.put("acks", "all");
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            for (int i = 0; i < 100; i++) {
                producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i)).get(30, TimeUnit.SECONDS);
            }
        }
        Properties cp = ssl(true);
        cp.put("group.id", "java-ssl-group");
        cp.put("auto.offset.reset", "earliest");
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", StringDeserializer.class.getName());
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (seen.size() < 100 && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    seen.add(r.value());
                }
            }
            consumer.commitSync();
        }
        assertEquals(100, seen.size());
    }

    @Test
    void aClientWithoutACertificateIsRefused() {
        Properties p = ssl(false);
        p.put("default.api.timeout.ms", "5000");
        p.put("request.timeout.ms", "3000");
        try (Admin admin = Admin.create(p)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.listTopics().names().get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof org.apache.kafka.common.errors.SslAuthenticationException
                    || e.getCause() instanceof org.apache.kafka.common.errors.TimeoutException, e.toString());
        }
    }
}
