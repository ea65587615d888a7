"""One Jepsen-style run: cluster up, workload + nemesis, heal, final reads, check, report.

    jepsen/run [--time-limit 120] [--nemesis kill,pause,partition] ...   (see --help)

Everything the run produced lands in results/<run>/: history.jsonl, report.md, result.json,
the node logs and the run's parameters.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from . import cluster as cluster_mod
from .check import main as check_main
from .cluster import REPO, Cluster, ClusterError
from .cluster import run as run_cmd
from .history import dump_history, op_from_dict
from .nemesis import KINDS, MIXES, Nemesis, Schedule, kinds_for
from .txn_workload import TOPIC_IN as TXN_TOPIC_IN
from .txn_workload import TOPIC_OUT as TXN_TOPIC_OUT
from .workload import TOPIC, HistoryLog, WorkerSpec, run_worker

RESULTS = REPO / "jepsen" / "results"

# Broker settings for the fault runs (the compose file reads them from the environment): faster failure detection than the defaults, so a fault
# of 15 s is noticed and healed within it (Kafka's defaults would let it pass unnoticed).
CLUSTER_ENV = {
    "FJORD_BROKER_SESSION_TIMEOUT_MS": "4000",
    "FJORD_BROKER_HEARTBEAT_INTERVAL_MS": "1000",
    "FJORD_REPLICA_LAG_TIME_MAX_MS": "6000",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jepsen/run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--time-limit", type=float, default=300, help="seconds of workload (default 300)")
    p.add_argument("--short", action="store_true",
                   help="the test suite's run: 120 s, nemesis kill, pause, partition-majority, "
                        "partition-leader, kill-pause, partition-kill (one of each)")
    p.add_argument("--nemesis", default="all",
                   help=f"comma-separated: mixes {', '.join(MIXES)} or kinds {', '.join(KINDS)}")
    p.add_argument("--quiet", type=float, default=10, help="seconds without a fault before each")
    p.add_argument("--fault", type=float, default=15, help="seconds each fault lasts")
    p.add_argument("--producers", type=int, default=4)
    p.add_argument("--consumers", type=int, default=2,
                   help="consumer processes, alternately assign and subscribe")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--txn-producers", type=int, default=2,
                   help="transactional producer processes (topic jepsen-txn); 0 turns the "
                        "transactional workload off")
    p.add_argument("--txn-ctp", type=int, default=2,
                   help="consume-transform-produce processes (jepsen-txn -> jepsen-txn-out)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--image", default="fjord:dev")
    p.add_argument("--no-build", action="store_true", help="use the existing image")
    p.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.short:
        args.time_limit = 120
        args.nemesis = ("kill,pause,partition-majority,partition-leader,kill-pause,"
                        "partition-kill")
        args.quiet, args.fault = 8, 12
    return args


def create_topic(bootstrap: str, partitions: int, name: str = TOPIC,
                 timeout: float = 60) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=3,
                     config={"min.insync.replicas": "2"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.create_topics([topic], operation_timeout=20)[name].result(timeout=30)
            return
        except Exception as err:  # noqa: BLE001 - retried until the deadline
            if "TOPIC_ALREADY_EXISTS" in str(err):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"cannot create topic {name}: {err}") from err
            time.sleep(1)


def merge_histories(files: list[Path], out: Path) -> None:
    """Merges the per-process history files into one, in time order, numbered."""
    ops = []
    for f in files:
        if f.exists():
            ops += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    ops.sort(key=lambda op: op["time"])
    dump_history([op_from_dict({**op, "index": i}) for i, op in enumerate(ops)], str(out))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not cluster_mod.docker_available():
        print("jepsen: no usable Docker engine (docker info failed)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    kinds = kinds_for(args.nemesis.split(","))
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.results / run_id
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.json").write_text(json.dumps({**vars(args), "results": str(args.results),
                                                 "seed": seed, "kinds": kinds,
                                                 "cluster_env": CLUSTER_ENV}, indent=2))
    print(f"jepsen: run {run_id}, seed {seed}, nemesis {kinds}, {args.time_limit:.0f} s; "
          f"results in {out}", flush=True)

    if not args.no_build:
        build = [str(REPO / "scripts" / "build-image"), "--tag", args.image]
        if os.environ.get("FJORD_BIN"):
            build += ["--binary", os.environ["FJORD_BIN"]]
        subprocess.run(build, check=True)
    cluster = Cluster(project=f"fjord-jepsen-{run_id.lower()}",
                      env={"FJORD_IMAGE": args.image, **CLUSTER_ENV})
    phases: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        cluster.down()
        cluster.up()
        phases["ready_s"] = cluster.wait_ready()
        create_topic(cluster.bootstrap, args.partitions)
        if args.txn_producers:
            create_topic(cluster.bootstrap, args.partitions, TXN_TOPIC_IN)
            create_topic(cluster.bootstrap, args.partitions, TXN_TOPIC_OUT)
        phases["setup_s"] = time.monotonic() - t0
        verdict = workload(args, cluster, kinds, seed, out, phases)
    except Exception:
        if cluster.nodes[0].container:
            cluster.logs(out / "logs")
        if not args.keep:
            cluster.down()
        raise
    cluster.logs(out / "logs")
    if not args.keep:
        cluster.down()
    (out / "phases.json").write_text(json.dumps(phases, indent=2))
    print(f"jepsen: {'VALID' if verdict == 0 else 'INVALID'}; report {out / 'report.md'}; "
          f"phases {json.dumps({k: round(v, 1) for k, v in phases.items()})}", flush=True)
    return verdict


def workload(args, cluster: Cluster, kinds: list[str], seed: int, out: Path,
             phases: dict[str, float]) -> int:
    ctx = multiprocessing.get_context("spawn")
    start = time.monotonic()
    histories: list[Path] = []
    nemesis_file = out / "history-nemesis.jsonl"
    histories.append(nemesis_file)
    nemesis_log = HistoryLog(nemesis_file, start)
    nemesis = Nemesis(cluster, nemesis_log, kinds, Schedule(args.quiet, args.fault), seed)

    # Worker numbers: the queue workers, the queue's final reader, then the transactional
    # workers (producers, consume-transform-produce, one read_committed reader) and their
    # final reader. Process ids are worker + k * (all workers), so they never collide.
    workers = args.producers + args.consumers
    roles = ["producer"] * args.producers + [
        "assign" if c % 2 == 0 else "subscribe" for c in range(args.consumers)]
    roles.append("final")  # started after the run; its number is `workers`
    if args.txn_producers:
        roles += ["txn-producer"] * args.txn_producers + ["txn-ctp"] * args.txn_ctp
        roles += ["txn-reader", "txn-reader-uncommitted", "txn-final"]
    total = len(roles)
    specs = []
    for w, role in enumerate(roles):
        if role in ("final", "txn-final"):
            continue
        path = out / f"history-{w}.jsonl"
        histories.append(path)
        specs.append(WorkerSpec(worker=w, workers=total, role=role,
                                bootstrap=cluster.bootstrap, partitions=args.partitions,
                                start=start, stop_at=start + args.time_limit, history=str(path),
                                idempotent=(w % 2 == 0), seed=seed + w))
    procs = [ctx.Process(target=run_worker, args=(s,), name=f"jepsen-{s.worker}") for s in specs]
    for proc in procs:
        proc.start()
    nemesis_thread = threading.Thread(target=nemesis.run, name="nemesis")
    nemesis_thread.start()
    time.sleep(max(0.0, start + args.time_limit - time.monotonic()))
    nemesis.stop.set()
    nemesis_thread.join()
    for proc in procs:
        proc.join(max(1.0, start + args.time_limit + 60 - time.monotonic()))
        if proc.is_alive():
            # Stacks to the worker's client log first (see run_worker), then the kill.
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            nemesis_log.write("info", "worker-killed", {"worker": proc.name})
    phases["workload_s"] = time.monotonic() - start

    # Healed, so every node should run: one that does not exited on its own (the nemesis
    # restarts what it killed). That fails the run; it is started again for the final reads.
    crashed = [n for n in cluster.nodes if not cluster.running(n)]
    for node in crashed:
        nemesis_log.write("info", "node-exited", {"node": node.service,
                                                  "exit_code": cluster.exit_code(node)})
        run_cmd(["docker", "start", node.container], check=False)
    phases["nodes_exited"] = float(len(crashed))

    # Wait for the cluster to settle, then read everything back.
    nemesis_log.write("info", "final-heal", None)
    t_heal = time.monotonic()
    try:
        cluster.wait_ready(timeout=120)
    except ClusterError as err:
        nemesis_log.write("info", "not-ready", str(err))
    phases["recover_s"] = time.monotonic() - t_heal
    nemesis_log.close()
    # The final readers (queue and transactional) run side by side.
    finals = []
    for w, role in enumerate(roles):
        if role not in ("final", "txn-final"):
            continue
        path = out / ("history-final.jsonl" if role == "final" else "history-txn-final.jsonl")
        histories.append(path)
        finals.append(WorkerSpec(worker=w, workers=total, role=role,
                                 bootstrap=cluster.bootstrap, partitions=args.partitions,
                                 start=start, stop_at=time.monotonic() + 90, history=str(path)))
    t_final = time.monotonic()
    readers = [ctx.Process(target=run_worker, args=(f,), name=f"jepsen-{f.role}") for f in finals]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(max(1.0, t_final + 120 - time.monotonic()))
        if reader.is_alive():
            reader.kill()
    phases["final_read_s"] = time.monotonic() - t_final

    merge_histories(histories, out / "history.jsonl")
    verdict = check_main([str(out / "history.jsonl"), "--out", str(out)])
    if crashed:
        names = ", ".join(n.service for n in crashed)
        with (out / "report.md").open("a") as report:
            report.write(f"\n## Nodes that exited on their own\n\n{names} (see logs/; "
                         "the run fails: a node must survive every fault)\n")
        print(f"jepsen: node(s) exited on their own: {names}", flush=True)
        verdict = max(verdict, 1)
    return verdict


if __name__ == "__main__":
    sys.exit(main())
