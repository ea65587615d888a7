package dev.fjord.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AlterClientQuotasOptions;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaAlteration.Op;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.junit.jupiter.api.Test;


/**
 * The Java AdminClient's client quota calls (AlterClientQuotas 49, DescribeClientQuotas 48) against
 * {@code fjord dev}: quotas on a user, a (user, client id), the default user and the default client id;
 * validate_only changes nothing; describe filters by exact name, by default and with strict matching;
 * a null value removes a quota and an entity without quotas is no longer listed; an unknown key is
 * refused. (Enforcement is tests/python/test_quotas_confluent.py.)
 */
class ClientQuotaAdminTest extends DevNodeAdminTest {

    static final ClientQuotaEntity ALICE = entity(ClientQuotaEntity.USER, "alice");
    static final ClientQuotaEntity ALICE_APP = new ClientQuotaEntity(
            Map.of(ClientQuotaEntity.USER, "alice", ClientQuotaEntity.CLIENT_ID, "app"));
    static final ClientQuotaEntity DEFAULT_USER = entity(ClientQuotaEntity.USER, null);
    static final ClientQuotaEntity DEFAULT_CLIENT = entity(ClientQuotaEntity.CLIENT_ID, null);
    static final ClientQuotaEntity BOB = entity(ClientQuotaEntity.USER, "bob");


    /** A one-key entity; a null name is the default entity of that type. */
    static ClientQuotaEntity entity(String type, String name) {
        return new ClientQuotaEntity(Collections.singletonMap(type, name));
    }

    static ClientQuotaAlteration alter(ClientQuotaEntity entity, String key, Double value) {
        return new ClientQuotaAlteration(entity, List.of(new Op(key, value)));
    }

    static Map<ClientQuotaEntity, Map<String, Double>> describe(ClientQuotaFilter filter) throws Exception {
        return admin.describeClientQuotas(filter).entities().get(25, TimeUnit.SECONDS);
    }

    @Test
    void alterDescribeValidateOnlyAndRemove() throws Exception {
        // Phase 1: validate_only answers as a real change would, and changes nothing.
        admin.alterClientQuotas(List.of(alter(BOB, "producer_byte_rate", 1024.0)),
                new AlterClientQuotasOptions().validateOnly(true)).all().get(25, TimeUnit.SECONDS);
        assertFalse(describe(ClientQuotaFilter.all()).containsKey(BOB), "validate_only stored bob's quota");

        // Phase 2: quotas on four kinds of entity, all listed.
        admin.alterClientQuotas(List.of(
                alter(ALICE, "producer_byte_rate", 1_048_576.0),
                alter(ALICE_APP, "consumer_byte_rate", 2_097_152.0),
                alter(DEFAULT_USER, "request_percentage", 50.0),
                alter(DEFAULT_CLIENT, "producer_byte_rate", 4096.0))).all().get(25, TimeUnit.SECONDS);
        Map<ClientQuotaEntity, Map<String, Double>> expected = new HashMap<>();
        expected.put(ALICE, Map.of("producer_byte_rate", 1_048_576.0));
        expected.put(ALICE_APP, Map.of("consumer_byte_rate", 2_097_152.0));
        expected.put(DEFAULT_USER, Map.of("request_percentage", 50.0));
        expected.put(DEFAULT_CLIENT, Map.of("producer_byte_rate", 4096.0));
        assertEquals(expected, describe(ClientQuotaFilter.all()));

        // Phase 3: filters. user=alice (not strict) also matches (alice, app); strict only alice.
        assertEquals(Map.of(ALICE, expected.get(ALICE), ALICE_APP, expected.get(ALICE_APP)),
                describe(ClientQuotaFilter.contains(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, "alice")))));
        assertEquals(Map.of(ALICE, expected.get(ALICE)),
                describe(ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, "alice")))));
        assertEquals(Map.of(DEFAULT_USER, expected.get(DEFAULT_USER)),
                describe(ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofDefaultEntity(ClientQuotaEntity.USER)))));
        assertEquals(Map.of(DEFAULT_CLIENT, expected.get(DEFAULT_CLIENT)),
                describe(ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntityType(ClientQuotaEntity.CLIENT_ID)))));

        // Phase 4: a second key on an entity, then removals; an entity left without quotas is gone.
        admin.alterClientQuotas(List.of(alter(ALICE, "consumer_byte_rate", 8192.0))).all().get(25, TimeUnit.SECONDS);
        assertEquals(Map.of("producer_byte_rate", 1_048_576.0, "consumer_byte_rate", 8192.0),
                describe(ClientQuotaFilter.all()).get(ALICE));
        admin.alterClientQuotas(List.of(
                alter(ALICE, "producer_byte_rate", null),
                alter(DEFAULT_USER, "request_percentage", null))).all().get(25, TimeUnit.SECONDS);
        Map<ClientQuotaEntity, Map<String, Double>> after = describe(ClientQuotaFilter.all());
        assertEquals(Map.of("consumer_byte_rate", 8192.0), after.get(ALICE));
        assertFalse(after.containsKey(DEFAULT_USER), "the default user's quota was removed: " + after);
    }

    @Test
    void unknownKeyIsRefused() throws Exception {
        try {
            admin.alterClientQuotas(List.of(alter(BOB, "no_such_quota", 1.0))).all().get(25, TimeUnit.SECONDS);
            fail("an unknown quota key was accepted");
        } catch (ExecutionException e) {
            assertInstanceOf(InvalidRequestException.class, e.getCause(), "unknown key failed with " + e.getCause());
        }
        assertFalse(describe(ClientQuotaFilter.all()).containsKey(BOB));
    }
}
