"""Faults injected into the running cluster, from the host.

- kill: SIGKILL a node's container (`docker kill -s KILL`), later `docker start` it again.
- pause: SIGSTOP the node's process (PID 1 of its container), later SIGCONT.
- partition: iptables DROP rules inside the containers' network namespaces (entered with
  nsenter from the host, so the image needs no tools). Only traffic between nodes is cut; the
  clients on the host still reach every node through the published ports, as clients in
  another zone would. Shapes: a random majority/minority split, the controller leader isolated,
  one random node isolated, and a bridge (two halves that each see only the middle node).
- combined: two faults at once (kill one node and pause another; a majority/minority split
  with a node of the majority killed).
- clock skew is not offered: containers share the host kernel's clock, and skewing the
  host's clock would skew the clients and the harness too.

Faults rotate, one at a time, each followed by a heal and a quiet period (see Schedule).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from .cluster import Cluster, Node, run

KINDS = ("kill", "pause", "partition-majority", "partition-leader", "partition-one", "bridge",
         "kill-pause", "partition-kill")
MIXES = {
    "kill": ("kill",),
    "pause": ("pause",),
    "partition": ("partition-majority", "partition-leader", "partition-one", "bridge"),
    # Two faults at once: a node killed while another is paused; a majority/minority split
    # with a node of the majority side killed (no side keeps a quorum until the heal).
    "combined": ("kill-pause", "partition-kill"),
    "all": KINDS,
}


def kinds_for(names: list[str]) -> list[str]:
    kinds: list[str] = []
    for name in names:
        if name in MIXES:
            kinds.extend(k for k in MIXES[name] if k not in kinds)
        elif name in KINDS:
            if name not in kinds:
                kinds.append(name)
        else:
            raise ValueError(f"unknown nemesis {name!r} (known: {', '.join((*MIXES, *KINDS))})")
    return kinds


@dataclass
class Schedule:
    quiet: float = 10.0   # seconds of no fault before each fault
    fault: float = 15.0   # seconds a fault lasts before it is healed


class Nemesis:
    def __init__(self, cluster: Cluster, log, kinds: list[str], schedule: Schedule,
                 seed: int | None = None):
        self.cluster = cluster
        self.log = log            # HistoryLog of process "nemesis"
        self.kinds = kinds
        self.schedule = schedule
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.faults: dict[str, int] = {}
        # What is broken now, so heal() undoes exactly that.
        self._killed: list[Node] = []
        self._paused: list[Node] = []
        self._partitioned: list[Node] = []

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        order: list[str] = []
        while not self.stop.wait(self.schedule.quiet):
            if not order:
                order = list(self.kinds)
                self.rng.shuffle(order)
            kind = order.pop()
            try:
                self.inject(kind)
            except Exception as err:  # noqa: BLE001 - e.g. a node that is down has no address
                self._info("nemesis-error", {"kind": kind, "error": f"{type(err).__name__}: {err}"})
            self.stop.wait(self.schedule.fault)
            self.heal()
        self.heal()

    def inject(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        nodes = self.cluster.nodes
        if kind == "kill":
            self.kill(self.rng.choice(nodes))
        elif kind == "pause":
            self.pause(self.rng.choice(nodes))
        elif kind == "kill-pause":
            killed, paused = self.rng.sample(nodes, 2)
            self.kill(killed)
            self.pause(paused)
        elif kind in ("partition-majority", "partition-kill"):
            shuffled = self.rng.sample(nodes, len(nodes))
            cut = len(nodes) // 2
            minority, majority = shuffled[:cut], shuffled[cut:]
            self.partition([minority, majority], kind)
            if kind == "partition-kill":
                self.kill(self.rng.choice(majority))
        elif kind in ("partition-leader", "partition-one"):
            victim = self.cluster.controller_leader() if kind == "partition-leader" else None
            victim = victim or self.rng.choice(nodes)
            self.partition([[victim], [n for n in nodes if n is not victim]], kind)
        elif kind == "bridge":
            shuffled = self.rng.sample(nodes, len(nodes))
            middle, rest = shuffled[0], shuffled[1:]
            half = len(rest) // 2
            left, right = rest[:half], rest[half:]
            # left and right cannot talk to each other; both talk to the middle node.
            self.cut(left, right, kind, {"middle": middle.service})
        else:
            raise ValueError(kind)

    def kill(self, node: Node) -> None:
        self._info("kill", [node.service])
        run(["docker", "kill", "-s", "KILL", node.container], check=False)
        self._killed.append(node)

    def pause(self, node: Node) -> None:
        self._info("pause", [node.service])
        run(["docker", "kill", "-s", "STOP", node.container], check=False)
        self._paused.append(node)

    def partition(self, groups: list[list[Node]], kind: str) -> None:
        """Cuts every pair of nodes in different groups."""
        blocks = {n.service: [m for g in groups if n not in g for m in g] for g in groups for n in g}
        self._apply(blocks, kind, {"groups": [[n.service for n in g] for g in groups]})

    def cut(self, left: list[Node], right: list[Node], kind: str, extra: dict) -> None:
        blocks = {n.service: list(right) for n in left}
        blocks.update({n.service: list(left) for n in right})
        self._apply(blocks, kind, {"left": [n.service for n in left],
                                   "right": [n.service for n in right], **extra})

    def _apply(self, blocks: dict[str, list[Node]], kind: str, value: dict) -> None:
        self._info("partition", {"kind": kind, **value})
        by_service = {n.service: n for n in self.cluster.nodes}
        for service, peers in blocks.items():
            node = by_service[service]
            pid = self.cluster.pid(node)
            for peer in peers:
                ip = self.cluster.ip(peer)
                for rule in (["INPUT", "-s", ip], ["OUTPUT", "-d", ip]):
                    run(["nsenter", "-t", str(pid), "-n", "iptables", "-w", "-I", *rule,
                         "-j", "DROP"])
            self._partitioned.append(node)

    def heal(self) -> None:
        """Undoes every fault in place: restart killed, resume paused, flush partitions."""
        if self._partitioned:
            for node in self._partitioned:
                if self.cluster.running(node):
                    pid = str(self.cluster.pid(node))
                    for chain in ("INPUT", "OUTPUT"):
                        run(["nsenter", "-t", pid, "-n", "iptables", "-w", "-F", chain], check=False)
            self._info("heal", [n.service for n in self._partitioned])
            self._partitioned = []
        if self._paused:
            for node in self._paused:
                run(["docker", "kill", "-s", "CONT", node.container], check=False)
            self._info("resume", [n.service for n in self._paused])
            self._paused = []
        if self._killed:
            for node in self._killed:
                run(["docker", "start", node.container], check=False)
            self._info("restart", [n.service for n in self._killed])
            self._killed = []

    def _info(self, f: str, value) -> None:
        self.log.write("info", f, value)
