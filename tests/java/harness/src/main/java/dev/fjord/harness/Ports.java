package dev.fjord.harness;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Loopback ports that must be known before a node starts (controller voters; ports kept
 * across a restart). They come from the Java harness's sub-range 26000-26999, below Linux's
 * ephemeral range, so no other process's bind(0) takes them between our check and the node's
 * bind. Concurrent Java test JVMs agree through a lock file per port, held while the lease
 * lives; within one JVM a port is never handed out twice.
 */
public final class Ports {
    public static final int FIRST = 26000;
    public static final int LAST = 26999;

    private static final Set<Integer> USED = new HashSet<>();
    private static int next = FIRST + ThreadLocalRandom.current().nextInt(LAST - FIRST + 1);

    private Ports() {}

    /** A reserved port; close the lease when the node using it is gone for good. */
    public static final class Lease implements AutoCloseable {
        private final int port;
        private final FileChannel channel;
        private final FileLock lock;

        private Lease(int port, FileChannel channel, FileLock lock) {
            this.port = port;
            this.channel = channel;
            this.lock = lock;
        }

        public int port() {
            return port;
        }

        @Override
        public void close() {
            try {
                lock.release();
                channel.close();
            } catch (IOException ignored) {
                // The lock goes with the JVM anyway.
            }
        }
    }

    /** Leases the next free, bindable port of the range; fails when the range is exhausted. */
    public static synchronized Lease lease() {
        Path dir = Path.of(System.getProperty("java.io.tmpdir"), "fjord-test-ports");
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new IllegalStateException("cannot create " + dir + ": " + e, e);
        }
        for (int i = 0; i <= LAST - FIRST; i++) {
            int port = next;
            next = next == LAST ? FIRST : next + 1;
            if (USED.contains(port)) {
                continue;
            }
            Lease lease = tryTake(dir, port);
            if (lease != null) {
                USED.add(port);
                return lease;
            }
        }
        throw new IllegalStateException("no free port left in " + FIRST + "-" + LAST);
    }

    private static Lease tryTake(Path dir, int port) {
        FileChannel channel = null;
        try {
            channel = FileChannel.open(dir.resolve(port + ".lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock lock = channel.tryLock();
            if (lock == null) {
                channel.close();
                return null;
            }
            if (!bindable(port)) {
                lock.release();
                channel.close();
                return null;
            }
            return new Lease(port, channel, lock);
        } catch (IOException | OverlappingFileLockException e) {
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException ignored) {
                    // nothing to do
                }
            }
            return null;
        }
    }

    /** Whether nothing listens on 127.0.0.1:port now (a leftover node of a killed run may). */
    private static boolean bindable(int port) {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(InetAddress.getByAddress(new byte[] {127, 0, 0, 1}), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }
}
