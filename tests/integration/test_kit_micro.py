"""The NATS service API and the operator endpoints, spoken from Python as the `nats` CLI does.

Three runtimes (bot, trainer, status, each with its own DB role) on the session's embedded
NATS and a migrated PostgreSQL; requests are plain `nc.request` / inbox subscriptions, so
what is tested is the wire protocol (`$SRV.PING|INFO|STATS`, `aisha.ops.*`, the
`Nats-Service-Error*` headers), not nats-py's client helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS

from contracts.avatar import TrainingRequested
from sandbox.embedded import free_port
from services.kit.config import CommonConfig
from services.kit.metrics import KitMetrics
from services.kit.ops import FAL_FIELDS
from services.kit.runtime import open_runtime
from tests.integration.kit_harness import training_requested

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
NAMES = {"aisha-bot", "aisha-trainer", "aisha-status"}
USER_ID = 5005
ERROR = "Nats-Service-Error"
CODE = "Nats-Service-Error-Code"


def config(service: str, db_url: str, nats_url: str) -> CommonConfig:
    return CommonConfig(
        service=service,
        database_url=db_url,
        nats_url=nats_url,
        http_host="127.0.0.1",
        http_port=free_port(),
        log_format="text",
        log_level="INFO",
        shutdown_grace_seconds=2.0,
    )


@pytest.fixture
async def services(db_url: str, nats_url: str) -> AsyncIterator[None]:
    """The three services' runtimes, as `python -m services.<name>` opens them."""
    async with contextlib.AsyncExitStack() as stack:
        for service in ("bot", "trainer", "status"):
            await stack.enter_async_context(
                open_runtime(
                    config(service, db_url, nats_url),
                    KitMetrics(service),
                    db_role=f"aisha_{service}",
                    stop=asyncio.Event(),
                )
            )
        yield


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


async def gather(nc: NATS, subject: str, expect: int, within: float = 3.0) -> list[dict[str, Any]]:
    """Every answer to one request, as `nats micro ls` collects them (scatter-gather)."""
    inbox = nc.new_inbox()
    answers: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def collect(msg: Any) -> None:
        answers.append(json.loads(msg.data))
        if len(answers) >= expect:
            done.set()

    sub = await nc.subscribe(inbox, cb=collect)
    await nc.publish(subject, b"", reply=inbox)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), within)
    await asyncio.sleep(0.2)  # a surplus answer would show here
    await sub.unsubscribe()
    return answers


async def ask(nc: NATS, subject: str, body: Any = None) -> tuple[dict[str, str], Any]:
    raw = body is None or isinstance(body, bytes)
    payload = (body or b"") if raw else json.dumps(body).encode()
    msg = await nc.request(subject, payload, timeout=5.0)
    headers = msg.headers or {}
    return headers, (json.loads(msg.data) if msg.data and ERROR not in headers else None)


async def seed(db_url: str) -> dict[str, Any]:
    """An avatar mid-training (with its submission and a webhook), a generation, and two
    unsent trainer events."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("INSERT INTO users (id, first_name) VALUES ($1, 'Ops')", USER_ID)
        avatar_id = await conn.fetchval(
            "INSERT INTO avatars (user_id, name, gender, trigger_word, status, training_type,"
            " training_attempt, submitted_attempt, tracked_attempt, fal_request_id,"
            " fal_endpoint, finetune_type, finetune_comment, trigger_phrase, learning_rate,"
            " steps, multiresolution_training, subject_crop, create_masks, captioning,"
            " webhook_url, fal_response_data, training_logs, training_error,"
            " last_status_check, diffusers_lora_file_url, config_file_url, fal_status,"
            " training_progress, queue_position, submitted_at, cost_usd)"
            " VALUES ($1, 'Ops', 'female', 'TOKops', 'training', 'portrait', 1, 1, 1, 'req-a1',"
            " 'fal-ai/flux-lora-portrait-trainer', 'lora', 'aisha portrait/quality attempt 1',"
            " 'TOKops', 0.00009, 2500, true, true, true, false,"
            " 'https://aisha.example/fal/webhook?key=training:x:1', '{\"logs\": []}'::jsonb,"
            " 'step 1250/2500', NULL, now(), NULL, NULL, 'IN_PROGRESS', 50, NULL, now(), 1.5)"
            " RETURNING id",
            USER_ID,
        )
        await conn.execute(
            "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint,"
            " state, request_id, submitted_at) VALUES ('training', $1, 1, 'training:ops:1',"
            " 'fal-ai/flux-lora-portrait-trainer', 'submitted', 'req-a1', now())",
            avatar_id,
        )
        await conn.execute(
            "INSERT INTO fal_webhooks (request_id, body) VALUES ('req-a1', '{}'::jsonb)"
        )
        generation_id = await conn.fetchval(
            "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images,"
            " seed, status, fal_request_id, fal_status) VALUES ($1, $2, 'TOKops a secret"
            " prompt', '1:1', 4, 7, 'submitted', 'req-g1', 'IN_QUEUE') RETURNING id",
            USER_ID,
            avatar_id,
        )
        for _ in range(2):
            await conn.execute(
                "INSERT INTO outbox (id, producer, subject, payload, attempts)"
                " VALUES ($1, 'trainer', 'aisha.test', '\\x7b7d', 3)",
                uuid.uuid4(),
            )
    finally:
        await conn.close()
    return {"avatar_id": str(avatar_id), "generation_id": str(generation_id)}


async def test_every_service_answers_ping_info_and_stats(services: None, nc: NATS) -> None:
    pings = await gather(nc, "$SRV.PING", expect=3)
    assert {p["name"] for p in pings} == NAMES
    assert len(pings) == 3
    assert all(p["type"] == "io.nats.micro.v1.ping_response" for p in pings)
    assert {p["version"] for p in pings} == {VERSION}
    [info] = await gather(nc, "$SRV.INFO.aisha-status", expect=1)
    assert info["type"] == "io.nats.micro.v1.info_response"
    assert "FAL webhooks" in info["description"]
    assert info["metadata"]["service"] == "status"
    subjects = {e["subject"] for e in info["endpoints"]}
    assert subjects == {"aisha.ops.avatar", "aisha.ops.job", "aisha.ops.outbox", "aisha.ops.lag"}
    assert all(e["queue_group"] == "q" for e in info["endpoints"])
    # One instance by id: $SRV.PING.<name>.<id>.
    [one] = await gather(nc, f"$SRV.PING.aisha-trainer.{_id(pings, 'aisha-trainer')}", expect=1)
    assert one["name"] == "aisha-trainer"

    await ask(nc, "aisha.ops.outbox")
    await ask(nc, "aisha.ops.avatar", {"id": "nope"})
    stats = await gather(nc, "$SRV.STATS", expect=3)
    assert {s["name"] for s in stats} == NAMES
    per_subject: dict[str, tuple[int, int]] = {}
    for s in stats:
        assert s["type"] == "io.nats.micro.v1.stats_response"
        for e in s["endpoints"]:
            assert isinstance(e["data"], dict)  # the `nats` CLI's schema wants an object
            assert isinstance(e["last_error"], str)
            requests, errors = per_subject.get(e["subject"], (0, 0))
            per_subject[e["subject"]] = (requests + e["num_requests"], errors + e["num_errors"])
    # The queue group hands each request to exactly one instance of one service.
    assert per_subject["aisha.ops.outbox"] == (1, 0)
    assert per_subject["aisha.ops.avatar"] == (1, 1)


async def test_avatar_endpoint_answers_state_and_the_18_fal_fields(
    services: None, nc: NATS, db_url: str
) -> None:
    ids = await seed(db_url)
    headers, avatar = await ask(nc, "aisha.ops.avatar", {"id": ids["avatar_id"]})
    assert ERROR not in headers
    assert headers["Content-Type"] == "application/json"
    assert avatar["id"] == ids["avatar_id"]
    assert avatar["user_id"] == USER_ID
    assert set(avatar["fal"]) == set(FAL_FIELDS)
    assert len(FAL_FIELDS) == 18
    assert avatar["fal"]["fal_request_id"] == "req-a1"
    assert avatar["fal"]["training_type"] == "portrait"
    assert avatar["fal"]["steps"] == 2500
    assert avatar["fal"]["learning_rate"] == 0.00009
    assert avatar["fal"]["fal_response_data"] == {"logs": []}
    assert avatar["state"]["status"] == "training"
    assert avatar["state"]["training_progress"] == 50
    assert Decimal(avatar["state"]["cost_usd"]) == Decimal("1.5")
    # A bare id works too (`nats req aisha.ops.avatar <uuid>`).
    _, again = await ask(nc, "aisha.ops.avatar", ids["avatar_id"].encode())
    assert again == avatar


@pytest.mark.parametrize(
    ("body", "code"),
    [({"id": "not-a-uuid"}, "400"), (b"{broken", "400"), ({"id": 7}, "400"), ([1], "400")],
)
async def test_bad_requests_are_400(services: None, nc: NATS, body: Any, code: str) -> None:
    headers, answer = await ask(nc, "aisha.ops.avatar", body)
    assert headers[CODE] == code
    assert headers[ERROR]
    assert answer is None


async def test_unknown_ids_are_404(services: None, nc: NATS) -> None:
    headers, _ = await ask(nc, "aisha.ops.avatar", {"id": str(uuid.uuid4())})
    assert headers[CODE] == "404"
    headers, _ = await ask(nc, "aisha.ops.job", {"request_id": "req-unknown"})
    assert (headers[CODE], headers[ERROR]) == ("404", "no job with request id req-unknown")
    headers, _ = await ask(nc, "aisha.ops.job", {"request_id": "bad id\r\nX-Injected: 1"})
    assert headers[CODE] == "400"
    assert "X-Injected" not in headers


async def test_job_endpoint_finds_trainings_and_generations(
    services: None, nc: NATS, db_url: str
) -> None:
    ids = await seed(db_url)
    _, training = await ask(nc, "aisha.ops.job", {"request_id": "req-a1"})
    assert training["kind"] == "training"
    assert training["submission"]["state"] == "submitted"
    assert training["avatar"]["id"] == ids["avatar_id"]
    assert training["avatar"]["current_attempt"] is True
    assert training["avatar"]["fal_status"] == "IN_PROGRESS"
    assert training["webhooks"]["received"] == 1
    assert training["webhooks"]["unprocessed"] == 1
    _, generation = await ask(nc, "aisha.ops.job", {"request_id": "req-g1"})
    assert generation["kind"] == "generation"
    assert generation["submission"] is None
    assert generation["generation"]["id"] == ids["generation_id"]
    assert generation["generation"]["status"] == "submitted"
    assert generation["generation"]["images_stored"] == 0
    assert "secret prompt" not in json.dumps(generation)  # prompts are the user's


async def test_outbox_and_lag_endpoints(services: None, nc: NATS, db_url: str) -> None:
    await seed(db_url)
    _, outbox = await ask(nc, "aisha.ops.outbox")
    assert outbox["total"] == 2
    assert outbox["producers"]["trainer"]["unsent"] == 2
    assert outbox["producers"]["trainer"]["max_attempts"] == 3
    assert outbox["producers"]["trainer"]["oldest_age_seconds"] >= 0
    idle = {"unsent": 0, "max_attempts": 0, "oldest_age_seconds": None}
    assert outbox["producers"]["bot"] == idle

    def pending(lag: dict[str, Any], durable: str) -> int:
        [entry] = [c for c in lag["consumers"] if c["consumer"] == durable]
        return int(entry["num_pending"])

    _, before = await ask(nc, "aisha.ops.lag")
    assert {c["consumer"] for c in before["consumers"]} >= {"trainer-avatar", "bot-training"}
    js = nc.jetstream()
    event: TrainingRequested = training_requested()
    await js.publish(event.subject, b"{}", headers={"Nats-Msg-Id": event.event_id})
    _, after = await ask(nc, "aisha.ops.lag")
    assert pending(after, "trainer-avatar") == pending(before, "trainer-avatar") + 1
    assert isinstance(after["dead_letters"], int)


def _id(pings: list[dict[str, Any]], name: str) -> str:
    [instance] = [p["id"] for p in pings if p["name"] == name]
    return str(instance)
