#!/usr/bin/env python3
"""Full SASL logins against one Fjord listener, for bench/tls.

    sasl_logins.py rate HOST PORT MECHANISM USER PASSWORD [--ca CA.pem] [--clients N] [--seconds S]

prints "<logins/s> <logins> <failures> <clients> <seconds>". Each login is a new TCP connection
(plus a full TLS handshake with --ca: Python's ssl does not resume sessions unless asked), an
ApiVersions v0 round trip (all for mechanism NONE, the baseline of a listener without SASL),
SaslHandshake v1, then the SaslAuthenticate v1 exchange (one for
PLAIN, two for SCRAM, whose server-final signature is checked), then close. N processes
(default 4) run the loop at once so the client is not the bottleneck.

The SCRAM client caches PBKDF2's salted password per (salt, iterations): a real client derives
it on every login (4096 HMAC-SHA-512 rounds, ~2 ms in C), but that is client work, and the
broker never runs PBKDF2 on a login (it stores StoredKey/ServerKey), so re-deriving would only
measure this client.

bench/tls also imports login() to hold idle authenticated connections.
"""

import argparse
import base64
import hashlib
import hmac
import multiprocessing
import secrets
import socket
import ssl
import struct
import sys
import time

HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
_salted = {}


class LoginFailed(Exception):
    pass


def request(api_key, version, correlation_id, body):
    header = struct.pack(">hhih", api_key, version, correlation_id, 5) + b"bench"
    return struct.pack(">i", len(header) + len(body)) + header + body


def recv_exact(s, n):
    data = bytearray()
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise LoginFailed("connection closed")
        data += chunk
    return bytes(data)


def round_trip(s, frame):
    s.sendall(frame)
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, size)


def authenticate(s, token, correlation_id):
    """SaslAuthenticate v1: the server's auth bytes, or LoginFailed."""
    frame = round_trip(s, request(36, 1, correlation_id, struct.pack(">i", len(token)) + token))
    (_, error, mlen) = struct.unpack(">ihh", frame[:8])
    at = 8 + max(mlen, 0)
    if error != 0:
        raise LoginFailed("SaslAuthenticate error %d: %s" % (error, frame[8:at].decode(errors="replace")))
    (alen,) = struct.unpack(">i", frame[at : at + 4])
    return frame[at + 4 : at + 4 + alen]


def scram(s, mechanism, user, password):
    h = HASHES[mechanism]
    bare = b"n=" + user.encode() + b",r=" + secrets.token_urlsafe(18).encode()
    server_first = authenticate(s, b"n,," + bare, 3)
    fields = dict(kv.split(b"=", 1) for kv in server_first.split(b","))
    nonce, salt, iterations = fields[b"r"], base64.b64decode(fields[b"s"]), int(fields[b"i"])
    key = (mechanism, password, salt, iterations)
    salted = _salted.get(key)
    if salted is None:
        salted = _salted[key] = hashlib.pbkdf2_hmac(h().name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored_key = h(client_key).digest()
    without_proof = b"c=biws,r=" + nonce
    auth_message = bare + b"," + server_first + b"," + without_proof
    signature = hmac.new(stored_key, auth_message, h).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_final = authenticate(s, without_proof + b",p=" + base64.b64encode(proof), 4)
    server_key = hmac.new(salted, b"Server Key", h).digest()
    expected = b"v=" + base64.b64encode(hmac.new(server_key, auth_message, h).digest())
    if server_final != expected:
        raise LoginFailed("bad server signature")


def login(host, port, mechanism, user, password, tls=None):
    """A new connection, authenticated; the caller owns (and closes) the socket."""
    s = socket.create_connection((host, port), timeout=30)
    try:
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname=host)
        round_trip(s, request(18, 0, 1, b""))
        if mechanism == "NONE":
            return s
        frame = round_trip(s, request(17, 1, 2, struct.pack(">h", len(mechanism)) + mechanism.encode()))
        (_, error) = struct.unpack(">ih", frame[:6])
        if error != 0:
            raise LoginFailed("SaslHandshake error %d" % error)
        if mechanism == "PLAIN":
            authenticate(s, b"\0" + user.encode() + b"\0" + password.encode(), 3)
        else:
            scram(s, mechanism, user, password)
        return s
    except BaseException:
        s.close()
        raise


def tls_context(ca):
    return ssl.create_default_context(cafile=ca) if ca else None


def worker(args, start_at, results):
    tls = tls_context(args.ca)
    done = failed = 0
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + args.seconds
    while time.time() < end:
        try:
            login(args.host, args.port, args.mechanism, args.user, args.password, tls).close()
            done += 1
        except (LoginFailed, OSError):
            failed += 1
    results.put((done, failed))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["rate", "once"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("mechanism", choices=["NONE", "PLAIN", *HASHES], help="NONE: no SASL, ApiVersions only")
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("--ca")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    if args.mode == "once":  # exit 0 once a login works (bench/tls waits for a new SCRAM user)
        login(args.host, args.port, args.mechanism, args.user, args.password, tls_context(args.ca)).close()
        return
    results = multiprocessing.Queue()
    start_at = time.time() + 0.5
    procs = [multiprocessing.Process(target=worker, args=(args, start_at, results)) for _ in range(args.clients)]
    for proc in procs:
        proc.start()
    totals = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    done = sum(t[0] for t in totals)
    failed = sum(t[1] for t in totals)
    print("%.0f %d %d %d %g" % (done / args.seconds, done, failed, args.clients, args.seconds))


if __name__ == "__main__":
    try:
        main()
    except LoginFailed as e:
        sys.exit("sasl_logins: %s" % e)
