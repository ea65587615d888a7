package dev.fjord.harness;

import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.URL;
import java.time.Duration;

/** Plain GETs on a node's HTTP port (/healthz, /readyz, /metrics). */
public final class Http {
    private Http() {}

    /** The status code of GET http://address/path ({@code address} is host:port). */
    public static int status(String address, String path, Duration timeout) throws IOException {
        HttpURLConnection c = (HttpURLConnection) new URL("http://" + address + path).openConnection();
        c.setConnectTimeout((int) timeout.toMillis());
        c.setReadTimeout((int) timeout.toMillis());
        try {
            return c.getResponseCode();
        } finally {
            c.disconnect();
        }
    }

    /**
     * Whether the node says it is ready: registered, caught up with the metadata log up to
     * its own registration, unfenced, serving Kafka. Until then a restarted node may still
     * answer from the metadata image it had before it stopped.
     */
    public static boolean ready(String address) {
        try {
            return status(address, "/readyz", Duration.ofSeconds(2)) == 200;
        } catch (IOException e) {
            return false;
        }
    }
}
