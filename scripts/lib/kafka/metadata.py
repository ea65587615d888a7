#!/usr/bin/env python3
"""Readiness check for scripts/kafka: ask each broker for Metadata and print how many brokers it lists.

    metadata.py HOST:PORT [HOST:PORT...]   -> one line per address: "HOST:PORT BROKERS" or "HOST:PORT down"

A raw Metadata v1 request (no client library, no JVM start: it runs in a few ms, so the start
loop can poll it). Exit status 0 when every address answered.
"""
import socket
import struct
import sys


def metadata_brokers(host: str, port: int, timeout: float = 2.0) -> int:
    client_id = b"fjord-kafka-ready"
    # Request header v1 (api_key 3 = Metadata, version 1, correlation id, client id), then the
    # body: topics = null (-1), which asks for every topic; only the broker list is read back.
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", -1)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    corr, n_brokers = struct.unpack_from(">ii", resp, 0)
    if corr != 7:
        raise ValueError(f"correlation id {corr}")
    return n_brokers


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def main() -> int:
    ok = True
    for addr in sys.argv[1:]:
        host, port = addr.rsplit(":", 1)
        try:
            print(addr, metadata_brokers(host, int(port)))
        except (OSError, ValueError, struct.error):
            print(addr, "down")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
