package dev.fjord.childjvm;

import java.io.File;
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
import java.util.regex.Pattern;

import dev.fjord.harness.ProcessLogs;
import dev.fjord.harness.Wait;

/**
 * A Java program run as a separate OS process (so a test can SIGKILL it), with the calling
 * Maven module's runtime classpath and its stdout+stderr in one file under
 * $FJORD_E2E_LOG_DIR. Every child still running when the test JVM exits is killed.
 *
 * <p>The classpath is the module's target/classes plus target/child-classpath.txt, which
 * the maven-dependency-plugin's build-classpath goal writes at test-compile (surefire runs
 * tests with the module directory as working directory).
 */
public final class ChildJvm implements AutoCloseable {
    private static final CopyOnWriteArrayList<ChildJvm> OPEN = new CopyOnWriteArrayList<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> OPEN.forEach(ChildJvm::kill), "child-jvm-reaper"));
    }

    private final String name;
    private final List<String> command;
    private final Path logPath;
    private Process process;

    private ChildJvm(String name, List<String> command) {
        this.name = name;
        this.command = command;
        this.logPath = ProcessLogs.newLogFile(name);
    }

    /** Starts {@code mainClass} with {@code args} in a new JVM. */
    public static ChildJvm start(String name, String mainClass, List<String> args) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        // Small heap, quick start: the machine running CI has two cores.
        command.addAll(List.of("-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"));
        // Timestamps in the children's slf4j-simple logs, to line them up with fjord's.
        command.addAll(List.of("-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"));
        command.addAll(List.of("-cp", moduleClasspath(), mainClass));
        command.addAll(args);
        ChildJvm child = new ChildJvm(name, command);
        child.startAgain();
        return child;
    }

    /** target/classes + the classpath file the build wrote. */
    static String moduleClasspath() {
        Path file = Path.of("target", "child-classpath.txt");
        if (!Files.exists(file)) {
            throw new IllegalStateException(file.toAbsolutePath() + " is missing: it is written by the "
                    + "maven-dependency-plugin (build-classpath) at test-compile; run the tests through Maven");
        }
        try {
            String deps = Files.readString(file, StandardCharsets.UTF_8).trim();
            return Path.of("target", "classes").toAbsolutePath() + File.pathSeparator + deps;
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + file.toAbsolutePath() + ": " + e, e);
        }
    }

    /** Starts the same command again (after {@link #kill()}), appending to the same log. */
    public synchronized void startAgain() {
        if (isAlive()) {
            throw new IllegalStateException(name + " is already running");
        }
        try {
            Files.writeString(logPath, "=== child-jvm: start at " + Instant.now() + ": " + String.join(" ", command) + "\n",
                    StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            process = new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logPath.toFile()))
                    .start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start " + name + ": " + e, e);
        }
        OPEN.addIfAbsent(this);
    }

    public String name() {
        return name;
    }

    public Path logPath() {
        return logPath;
    }

    public synchronized boolean isAlive() {
        return process != null && process.isAlive();
    }

    /** The whole log so far (every start). */
    public String log() {
        return ProcessLogs.readFrom(logPath, 0);
    }

    /** A titled tail of the log, for failure messages. */
    public String tail(int lines) {
        return ProcessLogs.tailBlock(name, logPath, lines);
    }

    /** Waits until the log contains a match of {@code regex} more than {@code before} times. */
    public void awaitLog(String regex, int before, Duration timeout) {
        Pattern pattern = Pattern.compile(regex);
        Wait.until(timeout, name + " to log /" + regex + "/ (occurrence " + (before + 1) + ")",
                () -> {
                    if (!isAlive()) {
                        throw new AssertionError(name + " exited with " + process.exitValue());
                    }
                    return pattern.matcher(log()).results().count() > before;
                },
                () -> tail(60));
    }

    /** SIGKILL (Process.destroyForcibly on Linux) and wait until the process is gone. */
    public synchronized void kill() {
        if (process == null) {
            return;
        }
        process.destroyForcibly();
        try {
            process.waitFor(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** SIGTERM, up to {@code grace} for the JVM's shutdown hooks, then SIGKILL. */
    public synchronized void stop(Duration grace) {
        if (process == null) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                kill();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            kill();
        }
    }

    @Override
    public void close() {
        stop(Duration.ofSeconds(10));
        OPEN.remove(this);
    }
}
