"""Each process registers with NATS's service API (`nats.micro`), so the `nats` CLI sees it.

`$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (also `.<name>` and `.<name>.<id>`) are answered
by nats-py's `Service`: `nats micro ls` lists every running instance of `aisha-bot`,
`aisha-trainer` and `aisha-status` with its version, and `nats micro stats aisha-status`
shows live request, error and timing counts per endpoint. The endpoints are the read-only
operator queries of `services.kit.ops`, served by every service in one queue group, so they
answer while any one instance is up. `open_runtime` registers the process; no service needs
code of its own for it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import socket
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.micro.request import Handler
from nats.micro.service import EndpointConfig, EndpointStats, Service, ServiceConfig

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]

#: Subject prefix of the operator endpoints: `aisha.ops.<endpoint>`.
OPS_GROUP = "aisha.ops"

DESCRIPTIONS = {
    "bot": "Aisha's Telegram face: dialogues, payments, progress and results to users",
    "trainer": "Aisha's trainer: submits LoRA trainings and generations to FAL",
    "status": "Aisha's status tracker: FAL webhooks and polling, results and images",
}


@dataclass(frozen=True)
class Endpoint:
    """One operator endpoint: `aisha.ops.<name>`, what it answers, and its handler."""

    name: str
    description: str
    handler: Handler


@cache
def version() -> str:
    """The project's version: the installed distribution's, else `pyproject.toml`'s (the
    image runs from a source tree, not an installed package)."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version("aisha")
    pyproject = ROOT / "pyproject.toml"
    with contextlib.suppress(OSError, KeyError, tomllib.TOMLDecodeError), pyproject.open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])
    return "0.0.0"


def service_name(service: str) -> str:
    return f"aisha-{service}"


async def register(nc: NATS, service: str, endpoints: Sequence[Endpoint]) -> Service:
    """Start answering `$SRV.*` for this process and serve `endpoints` under `aisha.ops`.

    Metadata names the host and pid, so `nats micro info` tells replicas apart; nothing
    secret goes in (the configuration is not shown)."""
    micro = Service(
        nc,
        ServiceConfig(
            name=service_name(service),
            version=version(),
            description=DESCRIPTIONS.get(service, f"Aisha {service}"),
            metadata={"service": service, "host": socket.gethostname(), "pid": str(os.getpid())},
            stats_handler=_no_extra_stats,
        ),
    )
    await micro.start()
    for endpoint in endpoints:
        await micro.add_endpoint(
            EndpointConfig(
                name=endpoint.name,
                subject=f"{OPS_GROUP}.{endpoint.name}",
                handler=endpoint.handler,
                metadata={"description": endpoint.description},
            )
        )
    return micro


def _no_extra_stats(_stats: EndpointStats) -> dict[str, Any]:
    """An empty object for each endpoint's `data`: without a handler nats-py sends `null`,
    which the `nats` CLI's schema check of a stats response (`data`: object) rejects."""
    return {}


async def unregister(micro: Service) -> None:
    """Stop answering (before the connection drains); a connection already gone is fine."""
    try:
        await micro.stop()
    except NatsError as exc:
        log.debug("service API stop: %s", exc)
