package dev.fjord.connect;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Kafka Connect's REST API through the JDK's HTTP client. JSON is read with Jackson, which
 * connect-runtime depends on.
 */
final class ConnectRest {
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String base;

    ConnectRest(String base) {
        this.base = base;
    }

    String base() {
        return base;
    }

    HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return send(HttpRequest.newBuilder(URI.create(base + path)).GET());
    }

    /** PUT /connectors/NAME/config: creates the connector or updates its config. */
    HttpResponse<String> putConnectorConfig(String name, Map<String, String> config) throws IOException, InterruptedException {
        String body = JSON.writeValueAsString(config);
        return send(HttpRequest.newBuilder(URI.create(base + "/connectors/" + name + "/config"))
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(body)));
    }

    /** PUT with an empty body (PUT /connectors/NAME/pause, /resume). */
    HttpResponse<String> put(String path) throws IOException, InterruptedException {
        return send(HttpRequest.newBuilder(URI.create(base + path)).PUT(HttpRequest.BodyPublishers.noBody()));
    }

    /** GET /connectors/NAME/status as JSON, or null when it does not answer 200. */
    JsonNode status(String name) throws IOException, InterruptedException {
        HttpResponse<String> r = get("/connectors/" + name + "/status");
        return r.statusCode() == 200 ? JSON.readTree(r.body()) : null;
    }

    /** GET /connectors/NAME/offsets (KIP-875) as JSON, or null when it does not answer 200. */
    JsonNode offsets(String name) throws IOException, InterruptedException {
        HttpResponse<String> r = get("/connectors/" + name + "/offsets");
        return r.statusCode() == 200 ? JSON.readTree(r.body()) : null;
    }

    private static HttpResponse<String> send(HttpRequest.Builder request) throws IOException, InterruptedException {
        return HTTP.send(request.timeout(Duration.ofSeconds(15)).build(), HttpResponse.BodyHandlers.ofString());
    }
}
