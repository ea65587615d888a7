package dev.fjord.harness;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.common.Node;
import org.apache.kafka.common.message.ApiVersionsRequestData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.requests.AbstractRequest;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.ApiVersionsRequest;
import org.apache.kafka.common.requests.ApiVersionsResponse;
import org.apache.kafka.common.requests.MetadataRequest;
import org.apache.kafka.common.requests.MetadataResponse;
import org.apache.kafka.common.requests.RequestHeader;

/**
 * One Kafka request to one exact node over a fresh socket, encoded and decoded by the
 * kafka-clients library. Readiness checks need this: a KafkaAdminClient picks whichever
 * node it likes, but "node 2's Metadata lists every broker" must ask node 2.
 */
public final class KafkaWire {
    private static final AtomicInteger CORRELATION = new AtomicInteger();

    private KafkaWire() {}

    /** The brokers in {@code host:port}'s Metadata answer (no topics asked). */
    public static List<Node> metadataBrokers(String host, int port, Duration timeout) throws IOException {
        MetadataRequest.Builder request = new MetadataRequest.Builder(Collections.emptyList(), false);
        MetadataResponse response = (MetadataResponse) send(host, port, ApiKeys.METADATA, (short) 12, request, timeout);
        return List.copyOf(response.brokers());
    }

    /** {@code host:port}'s Metadata answer (v12) for {@code topics}, without creating any. */
    public static MetadataResponse metadata(String host, int port, List<String> topics, Duration timeout) throws IOException {
        MetadataRequest.Builder request = new MetadataRequest.Builder(topics, false);
        return (MetadataResponse) send(host, port, ApiKeys.METADATA, (short) 12, request, timeout);
    }

    /** The ApiVersions answer of {@code host:port} (v3, as the Java clients send it). */
    public static ApiVersionsResponse apiVersions(String host, int port, Duration timeout) throws IOException {
        ApiVersionsRequest.Builder request = new ApiVersionsRequest.Builder(new ApiVersionsRequestData()
                .setClientSoftwareName("fjord-java-harness")
                .setClientSoftwareVersion("1.0"), (short) 3, (short) 3);
        return (ApiVersionsResponse) send(host, port, ApiKeys.API_VERSIONS, (short) 3, request, timeout);
    }

    /** Sends one request at {@code version} and reads its answer. */
    public static AbstractResponse send(String host, int port, ApiKeys api, short version,
            AbstractRequest.Builder<?> builder, Duration timeout) throws IOException {
        RequestHeader header = new RequestHeader(api, version, "fjord-java-harness", CORRELATION.incrementAndGet());
        ByteBuffer body = builder.build(version).serializeWithHeader(header);
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), (int) timeout.toMillis());
            socket.setSoTimeout((int) timeout.toMillis());
            OutputStream out = socket.getOutputStream();
            ByteBuffer frame = ByteBuffer.allocate(4 + body.remaining());
            frame.putInt(body.remaining()).put(body);
            out.write(frame.array());
            out.flush();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            int size = in.readInt();
            byte[] bytes = new byte[size];
            in.readFully(bytes);
            return AbstractResponse.parseResponse(ByteBuffer.wrap(bytes), header);
        }
    }
}
