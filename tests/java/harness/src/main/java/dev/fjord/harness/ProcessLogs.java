package dev.fjord.harness;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/** Log files of fjord processes: where they go and how to show their end. */
public final class ProcessLogs {
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final String RUN = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss"))
            + "-" + ProcessHandle.current().pid();

    private ProcessLogs() {}

    /** $FJORD_E2E_LOG_DIR, default /tmp/fjord-e2e-logs. */
    public static Path dir() {
        String env = System.getenv("FJORD_E2E_LOG_DIR");
        Path dir = Path.of(env == null || env.isEmpty() ? "/tmp/fjord-e2e-logs" : env);
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new IllegalStateException("cannot create the log dir " + dir + ": " + e, e);
        }
        return dir;
    }

    /** A fresh file name for one process's stdout+stderr, unique within this JVM and run. */
    public static Path newLogFile(String name) {
        return dir().resolve("java-" + RUN + "-" + SEQ.incrementAndGet() + "-" + name + ".log");
    }

    /** The last {@code lines} lines of a file ("" if it does not exist). */
    public static String tail(Path file, int lines) {
        if (!Files.exists(file)) {
            return "";
        }
        Deque<String> last = new ArrayDeque<>();
        try {
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                last.addLast(line);
                if (last.size() > lines) {
                    last.removeFirst();
                }
            }
        } catch (IOException e) {
            return "(cannot read " + file + ": " + e + ")";
        }
        return String.join("\n", last);
    }

    /** The text of {@code file} from byte {@code offset} on ("" if none yet). */
    public static String readFrom(Path file, long offset) {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            long len = f.length();
            if (len <= offset) {
                return "";
            }
            byte[] bytes = new byte[(int) (len - offset)];
            f.seek(offset);
            f.readFully(bytes);
            return new String(bytes, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    /** A titled tail block for failure messages. */
    public static String tailBlock(String title, Path file, int lines) {
        return "\n--- " + title + ": " + file + " (last " + lines + " lines) ---\n" + tail(file, lines) + "\n--- end ---";
    }

    /** Tail blocks for every fjord process this JVM started and has not closed. */
    public static String liveTails(int lines) {
        StringBuilder sb = new StringBuilder();
        List<FjordProcess> live = FjordProcess.open();
        for (FjordProcess p : live) {
            sb.append(tailBlock(p.name() + (p.isAlive() ? "" : " (not running)"), p.logPath(), lines));
        }
        return sb.toString();
    }
}
