package dev.fjord.harness;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.LifecycleMethodExecutionExceptionHandler;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * Appends the log tail of every fjord process still open to a failing test's error, so the
 * surefire report shows what the broker said. Registered for every test through JUnit's
 * extension auto-detection (META-INF/services; the parent pom enables it).
 */
public final class LogTailOnFailure implements TestExecutionExceptionHandler, LifecycleMethodExecutionExceptionHandler {
    static final int LINES = 40;

    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        throw withLogs(throwable);
    }

    @Override
    public void handleBeforeAllMethodExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        throw withLogs(throwable);
    }

    @Override
    public void handleBeforeEachMethodExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        throw withLogs(throwable);
    }

    @Override
    public void handleAfterEachMethodExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        throw withLogs(throwable);
    }

    private static Throwable withLogs(Throwable throwable) {
        String tails = ProcessLogs.liveTails(LINES);
        // Errors that already carry a log tail (harness failures) and runs with no node stay as they are.
        if (tails.isEmpty() || String.valueOf(throwable.getMessage()).contains("--- end ---")) {
            return throwable;
        }
        // Skipped tests (assumptions) are not failures.
        if (throwable.getClass().getName().startsWith("org.opentest4j.TestAbortedException")) {
            return throwable;
        }
        AssertionError wrapped = new AssertionError(throwable + "\nfjord logs at the failure:" + tails, throwable);
        return wrapped;
    }
}
