package dev.fjord.harness;

import java.time.Duration;
import java.time.Instant;
import java.util.function.Supplier;

/** Polling until something holds, bounded in time. */
public final class Wait {
    private Wait() {}

    /** A check that may throw; its last exception is reported if time runs out. */
    @FunctionalInterface
    public interface Check {
        boolean holds() throws Exception;
    }

    /**
     * Polls {@code check} every 100 ms until it holds; after {@code timeout} fails with
     * {@code what}, the last exception the check threw and {@code context} (e.g. a log tail).
     */
    public static void until(Duration timeout, String what, Check check, Supplier<String> context) {
        Instant deadline = Instant.now().plus(timeout);
        Exception last = null;
        while (true) {
            try {
                if (check.holds()) {
                    return;
                }
            } catch (Exception e) {
                last = e;
            }
            if (Instant.now().isAfter(deadline)) {
                AssertionError err = new AssertionError("timed out after " + timeout.toSeconds() + " s waiting for "
                        + what + (last == null ? "" : " (last error: " + last + ")") + context.get());
                if (last != null) {
                    err.initCause(last);
                }
                throw err;
            }
            FjordProcess.sleep(100);
        }
    }

    public static void until(Duration timeout, String what, Check check) {
        until(timeout, what, check, () -> "");
    }
}
