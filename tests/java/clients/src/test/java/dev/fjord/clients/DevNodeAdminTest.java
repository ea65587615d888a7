package dev.fjord.clients;

import dev.fjord.harness.FjordNode;
import java.time.Duration;
import org.apache.kafka.clients.admin.Admin;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The fixture of the admin API tests: one `fjord dev` node for the class and an Admin client on
 * it. JUnit runs a superclass's @BeforeAll before the subclass's, so a subclass's own set-up (a
 * topic) can use both. The fields are shared by every subclass: test classes run one after
 * another (the suite configures no parallel execution).
 */
abstract class DevNodeAdminTest {
    static FjordNode node;
    static Admin admin;

    @BeforeAll
    static void startDevNode() {
        node = FjordNode.startDev();
        admin = Clients.admin(node.bootstrap());
    }

    @AfterAll
    static void stopDevNode() {
        if (admin != null) {
            admin.close(Duration.ofSeconds(5));
            admin = null;
        }
        if (node != null) {
            node.close();
            node = null;
        }
    }
}
