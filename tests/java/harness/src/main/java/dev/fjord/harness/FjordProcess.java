package dev.fjord.harness;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One fjord OS process (started again on {@link #start()} after a stop), its stdout and
 * stderr appended to one log file. Every process still open when the JVM exits is killed by a
 * shutdown hook, so a failed or timed-out test leaves nothing running.
 */
public final class FjordProcess {
    private static final List<FjordProcess> OPEN = new CopyOnWriteArrayList<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (FjordProcess p : OPEN) {
                p.kill();
            }
        }, "fjord-process-reaper"));
    }

    private final String name;
    private final List<String> command;
    private final Path logPath;
    private Process process;
    /** Log length when the current incarnation started: its lines are what follows. */
    private long logOffset;
    private int starts;

    public FjordProcess(String name, List<String> args) {
        this.name = name;
        this.command = new ArrayList<>();
        this.command.add(FjordBinary.path().toString());
        this.command.addAll(args);
        this.logPath = ProcessLogs.newLogFile(name);
        OPEN.add(this);
    }

    /** Processes created and not yet {@link #close()}d, in creation order. */
    static List<FjordProcess> open() {
        return List.copyOf(OPEN);
    }

    public String name() {
        return name;
    }

    public Path logPath() {
        return logPath;
    }

    public synchronized long pid() {
        return process == null ? -1 : process.pid();
    }

    public synchronized boolean isAlive() {
        return process != null && process.isAlive();
    }

    /** Starts (or starts again) the process. */
    public synchronized void start() {
        if (isAlive()) {
            throw new IllegalStateException(name + " is already running");
        }
        starts++;
        try {
            String banner = "=== fjord-java-harness: start #" + starts + " at " + Instant.now() + ": "
                    + String.join(" ", command) + "\n";
            Files.writeString(logPath, banner, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND);
            logOffset = Files.size(logPath);
            ProcessBuilder pb = new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logPath.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            // Plain text logs at info level: the ready line is parsed from them.
            pb.environment().remove("FJORD_LOG_FORMAT");
            pb.environment().put("RUST_LOG", "info,openraft=warn");
            process = pb.start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start " + name + " (" + command + "): " + e, e);
        }
    }

    /** The log text of the current incarnation. */
    public String currentLog() {
        return ProcessLogs.readFrom(logPath, logOffset);
    }

    public String logTail(int lines) {
        return ProcessLogs.tail(logPath, lines);
    }

    /**
     * Waits until the current incarnation's log matches {@code pattern} and returns the
     * match; fails with the log tail when the process exits first or time runs out.
     */
    public Matcher awaitLog(Pattern pattern, Duration timeout, String what) {
        Instant deadline = Instant.now().plus(timeout);
        while (true) {
            Matcher m = pattern.matcher(currentLog());
            if (m.find()) {
                return m;
            }
            if (!isAlive()) {
                throw failure(name + " exited (code " + exitCode() + ") before " + what);
            }
            if (Instant.now().isAfter(deadline)) {
                throw failure(name + ": no " + what + " within " + timeout.toSeconds() + " s");
            }
            sleep(50);
        }
    }

    /** An AssertionError whose message ends with this process's log tail. */
    public AssertionError failure(String message) {
        return new AssertionError(message + ProcessLogs.tailBlock(name, logPath, 60));
    }

    private synchronized String exitCode() {
        try {
            return process == null ? "never started" : String.valueOf(process.exitValue());
        } catch (IllegalThreadStateException e) {
            return "still running";
        }
    }

    /** SIGTERM, wait up to {@code grace} for a graceful exit, then SIGKILL. */
    public void stop(Duration grace) {
        Process p;
        synchronized (this) {
            p = process;
        }
        if (p == null || !p.isAlive()) {
            return;
        }
        p.destroy();
        try {
            if (!p.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    /** SIGKILL and wait until the process is gone. */
    public void kill() {
        Process p;
        synchronized (this) {
            p = process;
        }
        if (p == null || !p.isAlive()) {
            return;
        }
        p.destroyForcibly();
        try {
            p.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Stops the process (SIGTERM, then SIGKILL after {@code grace}) and forgets it. */
    public void close(Duration grace) {
        stop(grace);
        OPEN.remove(this);
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
