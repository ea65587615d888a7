#!/usr/bin/env python3
"""A loopback TCP proxy that logs Kafka frame headers, to see what a client sends and what a
broker answers (bench/REPORT.md, "The Java consumer row"): per request the api key, version,
correlation id and size, and for Fetch v12+ max_wait, min_bytes, max_bytes, the session id and
epoch and the first partitions (index, fetch offset, partition max bytes); per response its size
and the time since its request. Point the broker's advertised listener at the proxy so the client
comes back through it (Fjord: advertised_kafka_addr; scripts/kafka: --set
advertised.listeners=PLAINTEXT://127.0.0.1:PROXY_PORT). Python forwards whole frames, so
throughput through it is not the broker's; the request pattern is. Usage:
    bench/kafka_trace.py LISTEN_PORT UPSTREAM_HOST:PORT LOGFILE"""
import asyncio, struct, sys, time

listen, upstream, logpath = int(sys.argv[1]), sys.argv[2], sys.argv[3]
uh, up = upstream.rsplit(':', 1)
log = open(logpath, 'w', buffering=1)

def uvarint(b, i):
    shift = v = 0
    while True:
        x = b[i]; i += 1
        v |= (x & 0x7f) << shift
        if not x & 0x80: return v, i
        shift += 7

def fetch_fields(body, version):
    # header v2 (flexible, v12+): client id (nullable string int16) + tagged fields
    i = 8
    n = struct.unpack_from('>h', body, i)[0]; i += 2 + max(n, 0)
    if version >= 12:
        _, i = uvarint(body, i)  # tagged fields count (assume 0)
    if version < 15:
        i += 4  # replica id
    max_wait, min_bytes = struct.unpack_from('>ii', body, i); i += 8
    max_bytes = struct.unpack_from('>i', body, i)[0] if version >= 3 else -1; i += 4 if version >= 3 else 0
    iso = body[i] if version >= 4 else 0; i += 1 if version >= 4 else 0
    sess, epoch = struct.unpack_from('>ii', body, i) if version >= 7 else (0, -1)
    i += 8 if version >= 7 else 0
    # topics: compact array (v12+)
    parts = []
    if version >= 12:
        nt, i = uvarint(body, i); nt -= 1
        for _ in range(max(nt, 0)):
            if version >= 13:
                i += 16
            else:
                l, i = uvarint(body, i); i += l - 1
            np_, i = uvarint(body, i); np_ -= 1
            for _ in range(max(np_, 0)):
                p, cle, off = struct.unpack_from('>iiq', body, i); i += 16
                i += 4  # last fetched epoch
                i += 8  # log start offset
                pmb = struct.unpack_from('>i', body, i)[0]; i += 4
                parts.append((p, off, pmb))
                t, i = uvarint(body, i)
            t, i = uvarint(body, i)
    return dict(max_wait=max_wait, min_bytes=min_bytes, max_bytes=max_bytes, sess=sess, epoch=epoch, parts=parts)

async def pump(reader, writer, pending, is_req):
    try:
        while True:
            hdr = await reader.readexactly(4)
            size = struct.unpack('>i', hdr)[0]
            body = await reader.readexactly(size)
            now = time.monotonic()
            if is_req:
                key, ver, corr = struct.unpack_from('>hhi', body, 0)
                pending[corr] = (now, key, ver)
                extra = ''
                if key == 1:
                    try:
                        f = fetch_fields(body, ver)
                        extra = ' mw=%d minb=%d maxb=%d sess=%d ep=%d np=%d parts=%s' % (f['max_wait'], f['min_bytes'], f['max_bytes'], f['sess'], f['epoch'], len(f['parts']), f['parts'][:8])
                    except Exception as e:
                        extra = ' parse-error %r' % e
                log.write('%.6f REQ key=%d v=%d corr=%d size=%d%s\n' % (now, key, ver, corr, size, extra))
            else:
                corr = struct.unpack_from('>i', body, 0)[0]
                t0, key, ver = pending.pop(corr, (now, -1, -1))
                log.write('%.6f RSP key=%d corr=%d size=%d ms=%.2f\n' % (now, key, corr, size, (now - t0) * 1000))
            writer.write(hdr + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()

async def handle(cr, cw):
    ur, uw = await asyncio.open_connection(uh, int(up))
    pending = {}
    await asyncio.gather(pump(cr, uw, pending, True), pump(ur, cw, pending, False))

async def main():
    srv = await asyncio.start_server(handle, '127.0.0.1', listen)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
