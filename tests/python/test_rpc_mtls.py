"""Node-to-node gRPC over mutual TLS ([rpc_ssl]): a 3-node cluster whose Raft, heartbeats and
replica fetches all run over TLS forms, replicates a topic with replication factor 3 (every
replica in the ISR, every acknowledged record read back), and its rpc port refuses a peer without
a certificate from the cluster CA.
"""

import socket
import ssl
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import _node_name, _toml_value, free_port, metadata_broker_count
from test_cluster_clients import ClusterNode, bootstrap, wait_for
from test_ssl import GEN_CERTS


class MtlsNode(ClusterNode):
    def __init__(self, tmp, name, node_id, rpc_ports, certs):
        super().__init__(tmp, name, node_id, rpc_ports)
        self.certs = certs

    def write_config(self):
        path = super().write_config()
        n = "n%d" % self.node_id
        extra = [
            "",
            "[rpc_ssl]",
            "keystore_location = %s" % _toml_value(self.certs / ("node-%s.pem" % n)),
            "key_location = %s" % _toml_value(self.certs / ("node-%s.key" % n)),
            "truststore_location = %s" % _toml_value(self.certs / "ca.pem"),
        ]
        path.write_text(path.read_text() + "\n".join(extra) + "\n")
        return path


@pytest.fixture
def mtls_cluster(tmp_path, request):
    certs = tmp_path / "certs"
    subprocess.run(
        [str(GEN_CERTS), "--dir", str(certs), "--node", "n1", "--node", "n2", "--node", "n3"],
        check=True,
        capture_output=True,
    )
    rpc_ports = {i: free_port() for i in (1, 2, 3)}
    nodes = []
    for i in (1, 2, 3):
        d = tmp_path / ("node-%d" % i)
        d.mkdir()
        nodes.append(MtlsNode(d, "%s-n%d" % (_node_name(request), i), i, rpc_ports, certs))
    for n in nodes:
        n.spawn()
    try:
        wait_for(
            lambda: all(metadata_broker_count("127.0.0.1", n.port) == 3 for n in nodes),
            60,
            "three brokers in every node's Metadata",
        )
        yield nodes, certs
    finally:
        for n in nodes:
            n.kill()
        for n in nodes:
            log = n.log()
            assert "panicked" not in log, n.tail()


def test_three_nodes_replicate_over_mutual_tls(mtls_cluster, tmp_path):
    nodes, certs = mtls_cluster
    for n in nodes:
        assert "mutual_tls=true" in n.log(), n.tail()
    topic = "mtls-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=3, config={"min.insync.replicas": "3"})]
    )[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap(nodes), "acks": "all"})
    for i in range(300):
        p.produce(topic, value=b"r%d" % i, partition=i % 3)
    assert p.flush(60) == 0

    # min.insync.replicas = 3 and acks=all: every record reached all three replicas over TLS.
    def full_isr():
        md = admin.list_topics(topic, timeout=10).topics[topic]
        return all(len(part.isrs) == 3 for part in md.partitions.values())

    wait_for(full_isr, 30, "every partition's ISR to hold all three replicas")
    c = Consumer({"bootstrap.servers": bootstrap(nodes), "group.id": "chk", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, part, 0) for part in range(3)])
    got = set()
    deadline = time.monotonic() + 60
    while len(got) < 300 and time.monotonic() < deadline:
        for m in c.consume(500, 1.0):
            if not m.error():
                got.add(m.value())
    c.close()
    assert got == {b"r%d" % i for i in range(300)}

    # The rpc port: no certificate, or one from another CA, is refused.
    other = tmp_path / "other-ca"
    subprocess.run([str(GEN_CERTS), "--dir", str(other), "--node", "n1"], check=True, capture_output=True)
    rpc_port = nodes[0].controller_port
    for chain in (None, other / "node-n1.pem"):
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.set_alpn_protocols(["h2"])
        if chain is not None:
            ctx.load_cert_chain(str(chain), str(other / "node-n1.key"))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with socket.create_connection(("127.0.0.1", rpc_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                    if not s.recv(1):
                        raise ConnectionError("closed")
