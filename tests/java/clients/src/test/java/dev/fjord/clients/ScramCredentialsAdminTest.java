package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.DuplicateResourceException;
import org.apache.kafka.common.errors.ResourceNotFoundException;
import org.apache.kafka.common.errors.UnacceptableCredentialException;
import org.junit.jupiter.api.Test;


/**
 * The Java AdminClient's SCRAM credential calls (AlterUserScramCredentials, DescribeUserScramCredentials)
 * against {@code fjord dev}: upsert, describe, delete, and Kafka's per-user errors (too few or too many
 * iterations, a user altered twice in one request, deleting or describing a credential that does not
 * exist). The Java client salts the password itself, as against Kafka.
 */
class ScramCredentialsAdminTest extends DevNodeAdminTest {


    static UserScramCredentialUpsertion upsert(String user, ScramMechanism mechanism, int iterations) {
        return new UserScramCredentialUpsertion(user, new ScramCredentialInfo(mechanism, iterations),
                "secret".getBytes(StandardCharsets.UTF_8));
    }

    static void assertFails(String what, Class<? extends Throwable> expected, KafkaFuture<?> future) throws Exception {
        try {
            Object value = future.get(25, TimeUnit.SECONDS);
            fail(what + " succeeded: " + value);
        } catch (ExecutionException e) {
            assertInstanceOf(expected, e.getCause(), what + " failed with " + e.getCause());
        }
    }

    /** user -> mechanism -> iterations, of every user. */
    static Map<String, Map<ScramMechanism, Integer>> describeAll() throws Exception {
        Map<String, UserScramCredentialsDescription> all =
                admin.describeUserScramCredentials().all().get(25, TimeUnit.SECONDS);
        Map<String, Map<ScramMechanism, Integer>> out = new TreeMap<>();
        all.forEach((user, d) -> {
            Map<ScramMechanism, Integer> infos = new TreeMap<>();
            d.credentialInfos().forEach(i -> infos.put(i.mechanism(), i.iterations()));
            out.put(user, infos);
        });
        return out;
    }

    @Test
    void upsertDescribeDeleteAndKafkasErrors() throws Exception {
        // Phase: upsert two users, one with both mechanisms.
        List<UserScramCredentialAlteration> first = List.of(
                upsert("alice", ScramMechanism.SCRAM_SHA_512, 8192),
                upsert("bob", ScramMechanism.SCRAM_SHA_256, 4096));
        admin.alterUserScramCredentials(first).all().get(25, TimeUnit.SECONDS);
        admin.alterUserScramCredentials(List.of(upsert("alice", ScramMechanism.SCRAM_SHA_256, 16384)))
                .all().get(25, TimeUnit.SECONDS);
        assertEquals(Map.of(
                "alice", Map.of(ScramMechanism.SCRAM_SHA_256, 16384, ScramMechanism.SCRAM_SHA_512, 8192),
                "bob", Map.of(ScramMechanism.SCRAM_SHA_256, 4096)), describeAll());
        UserScramCredentialsDescription bob = admin.describeUserScramCredentials(List.of("bob"))
                .description("bob").get(25, TimeUnit.SECONDS);
        assertEquals(List.of(new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)), bob.credentialInfos());

        // Phase: Kafka's per-user errors; the valid alteration in the same request succeeds.
        var results = admin.alterUserScramCredentials(List.of(
                upsert("few", ScramMechanism.SCRAM_SHA_256, 4095),
                upsert("many", ScramMechanism.SCRAM_SHA_512, 16385),
                new UserScramCredentialDeletion("ghost", ScramMechanism.SCRAM_SHA_256),
                new UserScramCredentialDeletion("twice", ScramMechanism.SCRAM_SHA_256),
                upsert("twice", ScramMechanism.SCRAM_SHA_512, 4096),
                upsert("carol", ScramMechanism.SCRAM_SHA_512, 4096))).values();
        assertFails("too few iterations", UnacceptableCredentialException.class, results.get("few"));
        assertFails("too many iterations", UnacceptableCredentialException.class, results.get("many"));
        assertFails("delete a missing credential", ResourceNotFoundException.class, results.get("ghost"));
        assertFails("a user twice", DuplicateResourceException.class, results.get("twice"));
        results.get("carol").get(25, TimeUnit.SECONDS);
        assertFails("describe a missing user", ResourceNotFoundException.class,
                admin.describeUserScramCredentials(List.of("nobody")).description("nobody"));

        // Phase: delete; a user without credentials is gone.
        admin.alterUserScramCredentials(List.of(new UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)))
                .all().get(25, TimeUnit.SECONDS);
        admin.alterUserScramCredentials(List.of(new UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_512)))
                .all().get(25, TimeUnit.SECONDS);
        Map<String, Map<ScramMechanism, Integer>> left = describeAll();
        assertEquals(Map.of(
                "alice", Map.of(ScramMechanism.SCRAM_SHA_256, 16384),
                "carol", Map.of(ScramMechanism.SCRAM_SHA_512, 4096)), left);
        assertTrue(admin.listTopics().names().get(15, TimeUnit.SECONDS) != null, "the client stays usable");
    }
}
