"""The services' live /metrics, after one real training through the whole product.

The launcher's `Stack` runs NATS, PostgreSQL, both emulators and bot + trainer + status as
processes. A user creates a style avatar through the Telegram emulator (one photo too small,
then an album) and trains it. Then each service's /metrics must pass `promtool check
metrics` (Prometheus naming lint), every metric the alert rules and the dashboard query must
be exported by some service, and the one training must show up in the funnel series. The
JSON logs of all three services must let that avatar's story be followed by its id.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import nats
import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from sandbox.stack import Stack
from sandbox.telegram import TelegramEmulator
from services.kit.logins import SERVICE_ROLES, login_name
from tests import faces
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.ops.promql import (
    ROOT,
    SYNTHETIC,
    all_queries,
    exposed_names,
    metric_names,
    promtool,
    recorded_names,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
SERVICES = ("bot", "trainer", "status")


def photo(i: int, size: tuple[int, int] | None = None) -> bytes:
    """A real photo (the photo gate refuses flat drawings, even for a style), `size` to
    make one too small."""
    data = faces.person(i % faces.DISTINCT)
    if size is None:
        return data
    return faces.jpeg(Image.open(io.BytesIO(data)).resize(size))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    state = tmp_path_factory.mktemp("ops-stack")
    # The trial pays for the training below.
    async with whole_product(db_url, state, LOG_FORMAT="json", CREDITS_TRIAL="100") as product:
        yield product


async def _train_one_avatar(emu: TelegramEmulator) -> str:
    """Click through like a person; returns the avatar id from the trainer's webhook key."""
    user = await emu.create_user("Metrics", language_code="en")
    uid = user["id"]

    def button(label: str) -> tuple[int, str] | None:
        for record in reversed(list(emu.world.messages.get(uid, {}).values())):
            message = record.message
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for b in row:
                    if record.outgoing and b["text"] == label:
                        return message["message_id"], b["callback_data"]
        return None

    async def press(label: str) -> None:
        await emu.wait_for(lambda: button(label) is not None, 15.0)
        found = button(label)
        assert found is not None
        await emu.press_button(uid, found[0], found[1])

    async def shown(fragment: str, within: float = 15.0) -> None:
        def seen() -> bool:
            box = emu.world.messages.get(uid, {})
            return any(
                r.outgoing and fragment in (r.message.get("text") or "") for r in box.values()
            )

        await emu.wait_for(seen, within)

    await emu.send_command(uid, "start")
    await press("➕ Create avatar")
    await shown("How shall we call")
    await emu.send_text(uid, "Metered")
    await shown("Choose the training type")
    await press("🎨 Style")
    await emu.send_photo(uid, photo(99, size=(200, 200)))  # refused: too small
    await emu.send_album(uid, [photo(i) for i in range(10)])
    await shown("You can start training now", within=30)
    await press("🚀 Start training")
    await shown("Choose the quality")
    await press("⭐ Quality · 50 cr. · ~7 min")
    await shown("is ready", within=60)
    return str(uid)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scraped(stack: Stack) -> dict[str, str]:
    """The three /metrics pages once the training's end has been counted everywhere: the
    counters move right after their commits, a moment after the user already sees "ready"."""
    assert stack.telegram is not None
    await _train_one_avatar(stack.telegram)
    ends = (
        ("bot", "aisha_bot_trainings_finished_total", "completed"),
        ("status", "aisha_status_trainings_finished_total", "completed"),
        ("status", "aisha_status_webhooks_total", "ok"),
    )
    deadline = asyncio.get_running_loop().time() + 15
    async with aiohttp.ClientSession() as session:
        while True:
            pages = {}
            for name in SERVICES:
                url = f"http://127.0.0.1:{stack.ports[name]}/metrics"  # type: ignore[attr-defined]
                async with session.get(url) as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"].startswith("text/plain")
                    pages[name] = await response.text()
            if all(sample(pages[n], m, outcome=o) for n, m, o in ends):
                return pages
            assert asyncio.get_running_loop().time() < deadline, "the end was never counted"
            await asyncio.sleep(0.2)


def sample(page: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


@pytest.mark.parametrize("service", SERVICES)
async def test_metrics_pass_promtool_lint(scraped: dict[str, str], service: str, tmp_path) -> None:
    page = scraped[service]
    assert f"aisha_{service}_ready 1.0" in page
    result = promtool("check", "metrics", cwd=tmp_path, stdin=page)
    assert result.returncode == 0, result.stdout + result.stderr
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            ids = [k for k in s.labels if k.endswith("_id") or k in {"user", "chat", "avatar"}]
            assert not ids, f"{s.name} has an id label {ids}: ids belong in logs"


async def test_every_metric_in_alerts_and_dashboards_is_exported(scraped: dict[str, str]) -> None:
    exported = set().union(*(exposed_names(page) for page in scraped.values()))
    known = exported | recorded_names() | SYNTHETIC
    missing = {
        (where, name)
        for where, expr in all_queries()
        for name in metric_names(expr)
        if name not in known
    }
    assert not missing, "queried but exported by no service:\n" + "\n".join(
        f"  {name}  ({where})" for where, name in sorted(missing, key=lambda m: m[1])
    )


async def test_the_metric_catalogue_in_the_docs_is_current(scraped: dict[str, str]) -> None:
    """docs/operations.md names metrics (with `<service>` for the kit's); each must exist."""
    exported = set().union(*(exposed_names(page) for page in scraped.values()))
    exported |= {f.name for page in scraped.values() for f in text_string_to_metric_families(page)}
    text = (ROOT / "docs" / "operations.md").read_text()
    named = set(re.findall(r"`(aisha_[a-z<>_]+)(?:\{[^`]*\})?`", text))
    named -= {*SERVICE_ROLES.values(), *map(login_name, SERVICE_ROLES.values())}  # database
    assert len(named) > 40
    for name in named:
        expanded = [name.replace("<service>", s) for s in SERVICES] if "<" in name else [name]
        found = [n for n in expanded if n in exported]
        assert found, f"docs/operations.md lists {name}, which no service exports"


async def test_one_training_shows_in_the_funnel(scraped: dict[str, str]) -> None:
    bot, trainer, status = scraped["bot"], scraped["trainer"], scraped["status"]
    assert sample(bot, "aisha_bot_users_started_total") == 1
    assert sample(bot, "aisha_bot_avatars_created_total", training_type="style") == 1
    assert sample(bot, "aisha_bot_photos_accepted_total") == 10
    assert sample(bot, "aisha_bot_photos_rejected_total", reason="too_small") == 1
    assert sample(bot, "aisha_bot_trainings_requested_total", attempt="first") == 1
    assert sample(bot, "aisha_bot_trainings_finished_total", outcome="completed") == 1
    e2e = "aisha_bot_training_end_to_end_seconds_count"
    assert sample(bot, e2e, training_type="style", outcome="completed") == 1
    assert sample(bot, "aisha_bot_telegram_requests_total", method="sendMessage", outcome="ok") > 0
    assert sample(bot, "aisha_bot_progress_edits_total", outcome="sent") > 0
    assert sample(bot, "aisha_bot_updates_total", update_type="callback_query", outcome="ok") > 0
    assert sample(trainer, "aisha_trainer_trainings_submitted_total", training_type="style") == 1
    fast = "fal-ai/flux-lora-fast-training"
    assert sample(trainer, "aisha_trainer_fal_requests_total", endpoint=fast, outcome="ok") >= 1
    assert sample(trainer, "aisha_trainer_fal_requests_total", endpoint="cdn", outcome="ok") >= 1
    finished = "aisha_status_trainings_finished_total"
    assert sample(status, finished, training_type="style", outcome="completed") == 1
    assert sample(status, "aisha_status_webhooks_total", outcome="ok") == 1
    assert sample(status, "aisha_status_fal_requests_total", endpoint=fast) >= 1
    in_flight = [  # refreshed every 15 s from the database: 1 (stale) or 0 right after
        s.value
        for family in text_string_to_metric_families(status)
        for s in family.samples
        if s.name == "aisha_status_trainings_in_flight" and s.labels["training_type"] == "style"
    ]
    assert in_flight in ([0.0], [1.0])
    for name, page in scraped.items():
        published = sample(page, f"aisha_{name}_events_published_total", outcome="ok")
        assert published >= 1, f"{name} published nothing"
    assert sample(status, "aisha_status_event_age_seconds_count") >= 1


async def test_logs_follow_one_avatar_across_the_three_services(
    stack: Stack, scraped: dict[str, str]
) -> None:
    logs = stack.options.state_dir / "logs"
    records = {
        name: [
            json.loads(line)
            for line in (logs / f"{name}.log").read_text().splitlines()
            if line.startswith("{")
        ]
        for name in SERVICES
    }
    created = [r for r in records["bot"] if r["msg"] == "avatar created"]
    assert len(created) == 1
    avatar_id = created[0]["avatar_id"]
    for name in SERVICES:
        story = [r for r in records[name] if r.get("avatar_id") == avatar_id]
        assert story, f"{name} never logged avatar {avatar_id}"
        assert all(r["service"] == name for r in story)
    submitted = [r for r in records["trainer"] if r["msg"] == "training submitted"]
    assert [r["avatar_id"] for r in submitted] == [avatar_id]
    request_id = submitted[0]["request_id"]
    assert any(r.get("request_id") == request_id for r in records["status"])
    assert any(r.get("event_id") for r in records["bot"] if r.get("avatar_id") == avatar_id)


async def test_the_three_processes_answer_the_service_api(
    stack: Stack, scraped: dict[str, str]
) -> None:
    """`$SRV.PING` as `nats micro ls` sends it: one answer from each service process; the
    operator query shows the trained avatar as PostgreSQL holds it."""
    nc = await nats.connect(stack.urls["NATS"])
    try:
        inbox, pongs = nc.new_inbox(), []
        sub = await nc.subscribe(inbox, cb=functools.partial(_append, pongs))
        await nc.publish("$SRV.PING", b"", reply=inbox)
        for _ in range(50):
            if len(pongs) >= len(SERVICES):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        await sub.unsubscribe()
        assert sorted(p["name"] for p in pongs) == sorted(f"aisha-{s}" for s in SERVICES)
        conn = await asyncpg.connect(stack.db_url)  # type: ignore[attr-defined]
        try:
            row = await conn.fetchrow("SELECT * FROM avatars")
        finally:
            await conn.close()
        reply = await nc.request("aisha.ops.avatar", json.dumps({"id": str(row["id"])}).encode())
        avatar = json.loads(reply.data)
        assert avatar["state"]["status"] == row["status"] == "completed"
        for field in ("fal_request_id", "steps", "trigger_phrase", "diffusers_lora_file_url"):
            assert avatar["fal"][field] == row[field], field
        reply = await nc.request(
            "aisha.ops.job", json.dumps({"request_id": row["fal_request_id"]}).encode()
        )
        job = json.loads(reply.data)
        assert job["kind"] == "training"
        assert job["avatar"]["current_attempt"] is True
        assert job["webhooks"]["received"] == 1
    finally:
        await nc.close()


async def _append(into: list[dict[str, object]], msg: Msg) -> None:
    into.append(json.loads(msg.data))
