"""Restart test of a faust-streaming worker (tests/faust/app.py) against Fjord or Apache Kafka.

    python driver.py --broker fjord|kafka [--capture] [--debug] [--faust-fix]

1. start the broker (fjord dev on port 0, or scripts/kafka start --nodes 1 in 28300-28399)
2. create the input topic (4 partitions) and produce 3 records
3. worker run 1 until the 3 records are processed and nothing more comes; SIGTERM (clean stop)
4. produce 3 new records
5. worker run 2 until the 3 new records are processed and nothing more comes; SIGTERM
6. check: every record processed exactly once, and the counts continue from the restored table

Exits 1 when a record is processed twice (or never), or the counts are wrong. Logs, the
processed-records file and the optional loopback capture (--capture, tshark) go to
$FJORD_E2E_LOG_DIR/faust-BROKER-TIME/.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BATCH1 = [("r1", "apple"), ("r2", "apple"), ("r3", "pear")]
BATCH2 = [("r4", "apple"), ("r5", "pear"), ("r6", "plum")]
SETTLE_S = 20  # a run must stay quiet this long after its last record before it is stopped
RUN_TIMEOUT_S = 120


class Failure(Exception):
    pass


def log(msg):
    print(f"[faust-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ brokers
def fjord_bin():
    if os.environ.get("FJORD_BIN"):
        return Path(os.environ["FJORD_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/fjord/target"))
    return Path(target) / "debug" / "fjord"


class Broker:
    """A running broker: `bootstrap` (host:port), `port`, `stop()`, `log_file`."""

    def __init__(self, kind, out):
        self.kind, self.out, self.proc = kind, out, None
        if kind == "fjord":
            self._start_fjord()
        else:
            self._start_kafka()

    def _start_fjord(self):
        binary = fjord_bin()
        if not binary.exists():
            raise Failure(f"fjord binary missing at {binary} (set FJORD_BIN or build it: scripts/dev)")
        self.log_file = self.out / "fjord.log"
        data = self.out / "fjord-data"
        cmd = [str(binary), "dev", "--data-dir", str(data),
               "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]
        log("starting " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_file, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        port = None
        while port is None:
            if self.proc.poll() is not None:
                raise Failure(f"fjord exited with {self.proc.returncode} during startup")
            if time.time() > deadline:
                raise Failure("fjord: no 'fjord node ready' line within 60 s")
            # The ready line lists the bound listeners: kafka_listeners=PLAINTEXT://127.0.0.1:PORT
            text = re.sub(r"\x1b\[[0-9;]*m", "", self.log_file.read_text(errors="replace"))
            for line in text.splitlines():
                if "fjord node ready" in line:
                    m = re.search(r"PLAINTEXT://127\.0\.0\.1:(\d+)", line)
                    if m:
                        port = int(m.group(1))
            time.sleep(0.1)
        self.port, self.bootstrap = port, f"127.0.0.1:{port}"
        wait_metadata(self.bootstrap, 1, 30)

    def _start_kafka(self):
        # A client/controller port pair from the Apache Kafka reference range, free right now
        # (scripts/kafka checks again just before it binds).
        for p in range(28300, 28400, 2):
            if bindable(p) and bindable(p + 1):
                break
        else:
            raise Failure("no free port pair in 28300-28399 for Apache Kafka")
        self.kdir = self.out / "kafka"
        self.log_file = self.kdir / "node-1.log"
        cmd = [str(ROOT / "scripts/kafka"), "start", "--nodes", "1", "--dir", str(self.kdir),
               "--port", str(p), "--controller-port", str(p + 1)]
        log("starting " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        sys.stdout.write(r.stdout)
        sys.stdout.write(r.stderr)
        if r.returncode != 0:
            raise Failure("scripts/kafka start failed")
        self.port, self.bootstrap = p, f"127.0.0.1:{p}"

    def stop(self):
        if self.kind == "fjord" and self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        elif self.kind == "kafka":
            subprocess.run([str(ROOT / "scripts/kafka"), "stop", "--dir", str(self.kdir)], timeout=120)


def bindable(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_metadata(bootstrap, brokers, timeout):
    """Ready when the broker answers Metadata listing `brokers` brokers (raw request, no client)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run([sys.executable, str(ROOT / "scripts/lib/kafka/metadata.py"), bootstrap],
                           capture_output=True, text=True)
        if r.stdout.split()[-1:] == [str(brokers)]:
            return
        time.sleep(0.2)
    raise Failure(f"{bootstrap} did not answer Metadata within {timeout} s")


# ------------------------------------------------------------------ records
async def create_topic(bootstrap, topic):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()


async def produce(bootstrap, topic, batch):
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    try:
        for rid, word in batch:
            md = await p.send_and_wait(topic, key=word.encode(),
                                       value=json.dumps({"id": rid, "word": word}).encode())
            log(f"produced {rid} {word} -> partition {md.partition} offset {md.offset}")
    finally:
        await p.stop()


# ------------------------------------------------------------------ worker runs
def processed(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_worker(run, env, out, want_ids, debug):
    """Start the worker, wait until want_ids are processed and SETTLE_S pass without a new
    record, then stop it with SIGTERM (a clean stop, as in the issue) and wait for its exit."""
    wlog = out / f"worker-{run}.log"
    env = dict(env, FAUST_RUN=str(run))
    # --without-web: no HTTP server on faust's fixed port 6066 (two runs at once would collide).
    cmd = [sys.executable, str(HERE / "app.py"), "worker", "--without-web",
           "-l", "debug" if debug else "info"]
    log(f"worker run {run}: starting (log {wlog})")
    proc = subprocess.Popen(cmd, cwd=out, env=env, stdout=open(wlog, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    plog = Path(env["FAUST_PROCESSED_LOG"])
    start = time.time()
    last_n, last_change = -1, time.time()
    try:
        while True:
            if proc.poll() is not None:
                raise Failure(f"worker run {run} exited on its own ({proc.returncode}); see {wlog}")
            rows = [r for r in processed(plog) if r["run"] == str(run)]
            if len(rows) != last_n:
                last_n, last_change = len(rows), time.time()
            done = want_ids <= {r["id"] for r in rows}
            if done and time.time() - last_change >= SETTLE_S:
                break
            if time.time() - start > RUN_TIMEOUT_S:
                raise Failure(f"worker run {run}: records {sorted(want_ids)} not all processed "
                              f"within {RUN_TIMEOUT_S} s (got {[r['id'] for r in rows]})")
            time.sleep(0.5)
        log(f"worker run {run}: {last_n} records processed, quiet for {SETTLE_S} s; SIGTERM")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            raise Failure(f"worker run {run} did not stop within 60 s of SIGTERM")
        log(f"worker run {run}: exited {rc} after {time.time() - start:.1f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def check(rows):
    """Each record exactly once, in the run after it was produced; counts continue."""
    problems = []
    seen = Counter(r["id"] for r in rows)
    for rid, _ in BATCH1 + BATCH2:
        if seen[rid] != 1:
            problems.append(f"record {rid} processed {seen[rid]} times: "
                            + "; ".join(f"run {r['run']} p{r['partition']}@{r['offset']} count={r['count']}"
                                        for r in rows if r["id"] == rid))
    for rid, _ in BATCH1:
        if any(r["id"] == rid and r["run"] != "1" for r in rows):
            problems.append(f"old record {rid} processed again in run 2")
    # The count written after the last record of each word must equal its total.
    expected = Counter(w for _, w in BATCH1 + BATCH2)
    final = {}
    for r in rows:
        final[r["word"]] = r["count"]
    for word, n in expected.items():
        if final.get(word) != n:
            problems.append(f"table count of {word!r} ended at {final.get(word)}, expected {n}")
    return problems


def on_sigterm(*_):
    # tests/faust/run's timeout sends SIGTERM: stop the worker and the broker on the way out.
    raise Failure("terminated (time limit)")


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=["fjord", "kafka"], required=True)
    ap.add_argument("--capture", action="store_true", help="tshark on loopback to capture.pcap")
    ap.add_argument("--debug", action="store_true", help="faust/aiokafka DEBUG logs")
    ap.add_argument("--faust-fix", action="store_true",
                    help="apply seekfix.py (faust's recovery resumes streams before seeking)")
    args = ap.parse_args()

    base = Path(os.environ.get("FJORD_E2E_LOG_DIR", "/tmp/fjord-e2e-logs"))
    out = base / f"faust-{args.broker}-{time.strftime('%Y%m%dT%H%M%S')}"
    out.mkdir(parents=True)
    log(f"output in {out}")
    suffix = uuid.uuid4().hex[:8]
    env = dict(os.environ,
               FAUST_APP_ID=f"wordcount-{suffix}", FAUST_TOPIC=f"words-{suffix}",
               FAUST_DATADIR=str(out / "faust-data"),
               FAUST_PROCESSED_LOG=str(out / "processed.jsonl"),
               FAUST_FIX_RECOVERY_SEEK="1" if args.faust_fix else "0")
    broker, tshark = None, None
    t0 = time.time()
    try:
        broker = Broker(args.broker, out)
        env["FAUST_BROKER"] = f"kafka://{broker.bootstrap}"
        log(f"{args.broker} ready at {broker.bootstrap}")
        if args.capture:
            tshark = subprocess.Popen(["tshark", "-i", "lo", "-f", f"tcp port {broker.port}",
                                       "-w", str(out / "capture.pcap")],
                                      stdout=subprocess.DEVNULL, stderr=open(out / "tshark.log", "w"))
            time.sleep(2)
        asyncio.run(create_topic(broker.bootstrap, env["FAUST_TOPIC"]))
        asyncio.run(produce(broker.bootstrap, env["FAUST_TOPIC"], BATCH1))
        run_worker(1, env, out, {rid for rid, _ in BATCH1}, args.debug)
        asyncio.run(produce(broker.bootstrap, env["FAUST_TOPIC"], BATCH2))
        run_worker(2, env, out, {rid for rid, _ in BATCH2}, args.debug)
        rows = processed(Path(env["FAUST_PROCESSED_LOG"]))
        for r in rows:
            log(f"run {r['run']} at {r['t']} processed {r['id']} {r['word']} count={r['count']} "
                f"(p{r['partition']}@{r['offset']})")
        problems = check(rows)
    except Failure as e:
        problems = [str(e)]
    finally:
        if tshark:
            tshark.send_signal(signal.SIGINT)
            tshark.wait(30)
        if broker:
            broker.stop()
    log(f"took {time.time() - t0:.0f} s; logs in {out}")
    if problems:
        for p in problems:
            log("FAIL: " + p)
        for f in sorted(out.glob("worker-*.log")) + ([broker.log_file] if broker else []):
            if f.exists():
                print(f"----- tail of {f}", flush=True)
                print("\n".join(f.read_text(errors="replace").splitlines()[-25:]), flush=True)
        print("faust: 0 passed, 1 failed", flush=True)
        return 1
    log(f"every record processed exactly once on {args.broker}; counts {dict(Counter(w for _, w in BATCH1 + BATCH2))}")
    print("faust: 1 passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
