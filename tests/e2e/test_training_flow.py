"""Walking skeleton: a training request travels bot → trainer → FAL → status → bot.

Real processes for the trainer and the status service, real NATS and PostgreSQL, the
unmodified fal-client against the FAL emulator. The test plays the bot's part: it stores
the avatar and photos as the bot does and publishes the request, then reads the events
the bot consumes.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid

import asyncpg
import nats
import pytest
from PIL import Image

import contracts
from contracts.jetstream import OBJ_IMAGES, OBJ_PHOTOS
from sandbox.fal import FalEmulator
from services.kit import credits, loras
from services.trainer import lifetimes
from tests.e2e import services
from tests.e2e.services import insert_user, service_port

pytestmark = pytest.mark.e2e
FAST = "fal-ai/flux-lora-fast-training"


def _jpeg(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 640), (i * 20 % 255, 80, 200 - i * 10)).save(buffer, "JPEG")
    return buffer.getvalue()


async def _seed_avatar(db_url: str, js, training_type: str, photos: int = 10) -> tuple[str, int]:
    """Insert a user, an avatar ready for training and its photos, as the bot would."""
    store = await js.object_store(OBJ_PHOTOS.name)
    conn = await asyncpg.connect(db_url, server_settings={"role": "aisha_bot"})
    try:
        user_id = await insert_user(conn)
        avatar_id = await conn.fetchval(
            "INSERT INTO avatars (user_id, name, gender, training_type, trigger_word, status,"
            " training_attempt, photo_count) VALUES ($1, 'Ann', 'female', $2, 'TOKann', 'training',"
            " 1, $3) RETURNING id::text",
            user_id,
            training_type,
            photos,
        )
        for i in range(photos):
            name = f"{avatar_id}/{i}.jpg"
            await store.put(name, _jpeg(i))
            await conn.execute(
                "INSERT INTO photos (avatar_id, user_id, object_name, sha256, status)"
                " VALUES ($1, $2, $3, $4, 'accepted')",
                avatar_id,
                user_id,
                name,
                f"sha{i}",
            )
    finally:
        await conn.close()
    return avatar_id, user_id


async def _collect(sub, avatar_id: str, until: type, limit: float) -> list[contracts.Event]:
    seen: list[contracts.Event] = []
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        try:
            msg = await sub.next_msg(timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        event = contracts.decode(msg.subject, msg.data)
        if getattr(event, "avatar_id", None) == avatar_id:
            seen.append(event)
            if isinstance(event, until):
                return seen
    raise AssertionError(f"no {until.__name__} within {limit}s; saw {seen}")


def fal_result(response: dict) -> dict:
    """The job's result inside FAL's whole answer, as `fal_response_data` holds it: a
    webhook's body (`payload`), or the polled `{"status": ..., "result": ...}`."""
    if "payload" in response:
        assert response["status"] == "OK"  # the body as FAL sent it
        assert "request_id" in response
        return response["payload"]
    assert response["status"]["status"] == "COMPLETED"
    return response["result"]


async def _kept(db_url: str, avatar_id: str, column: str, limit: float = 30.0):
    """The avatar's `column` once the status service's files step has filled it."""
    conn = await asyncpg.connect(db_url)
    try:
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            value = await conn.fetchval(f"SELECT {column} FROM avatars WHERE id = $1", avatar_id)
            if value is not None:
                return value
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    raise AssertionError(f"{column} of {avatar_id} still empty after {limit}s")


@pytest.fixture
async def fal():
    emulator = FalEmulator(training_seconds=1.5, queue_seconds=0.3, generation_seconds=0.5)
    await emulator.start()
    yield emulator
    await emulator.stop()


# the shared fixtures, used here by name
js, stack, stack_overrides = services.js, services.stack, services.stack_overrides


@pytest.mark.parametrize("training_type", ["portrait", "style"])
async def test_training_request_reaches_completion(stack, js, db_url, fal, training_type):
    nc = js._nc
    sub = await nc.subscribe("aisha.training.>")
    avatar_id, user_id = await _seed_avatar(db_url, js, training_type)
    request = contracts.TrainingRequested(
        event_id=contracts.derived_event_id("training_requested", avatar_id, 1),
        occurred_at=contracts.utcnow(),
        avatar_id=avatar_id,
        user_id=user_id,
        attempt=1,
        training_type=contracts.TrainingType(training_type),
        priority=contracts.FalPriority.QUALITY,
        trigger_word="TOKann",
        photo_count=10,
    )
    await js.publish(
        request.subject, contracts.encode(request), headers={"Nats-Msg-Id": request.event_id}
    )

    events = await _collect(sub, avatar_id, contracts.TrainingCompleted, limit=45)
    kinds = [type(e) for e in events]
    assert kinds[0] is contracts.TrainingSubmitted
    completed = events[-1]
    assert isinstance(completed, contracts.TrainingCompleted)
    assert completed.lora_url.startswith("https://")

    conn = await asyncpg.connect(db_url)
    row = await conn.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
    await conn.close()
    submitted = [j for j in fal.jobs if j.request_id == row["fal_request_id"]]
    assert len(submitted) == 1
    expected_endpoint = (
        "fal-ai/flux-lora-portrait-trainer"
        if training_type == "portrait"
        else "fal-ai/flux-lora-fast-training"
    )
    assert row["fal_endpoint"] == expected_endpoint
    assert row["training_type"] == training_type
    assert row["steps"] == (2500 if training_type == "portrait" else 1000)
    assert row["trigger_phrase"] == "TOKann"
    assert row["finetune_type"] == "lora"
    assert "attempt 1" in row["finetune_comment"]
    assert row["webhook_url"].startswith(stack_webhook_prefix(stack))
    assert row["fal_status"] == "COMPLETED"
    assert row["training_progress"] == 100
    assert row["diffusers_lora_file_url"] == completed.lora_url
    assert row["config_file_url"]
    assert fal_result(json.loads(row["fal_response_data"]))["diffusers_lora_file"]["url"] == (
        completed.lora_url
    )
    assert "Training step" in await _kept(db_url, avatar_id, "training_logs")  # even webhook-only
    assert row["last_status_check"] is not None
    assert row["training_error"] is None
    if training_type == "portrait":
        assert row["learning_rate"] == pytest.approx(0.00009)
        assert row["subject_crop"] is True
        assert row["create_masks"] is True
        assert row["multiresolution_training"] is True
    else:  # only what the fast trainer was sent; `is_style` turns captioning off
        assert row["captioning"] is False
        assert row["create_masks"] is False
        assert (row["subject_crop"], row["multiresolution_training"]) == (None, None)
    assert row["lora_rank"] is None
    await sub.unsubscribe()


async def test_duplicate_request_is_not_submitted_twice(stack, js, db_url, fal):
    sub = await js._nc.subscribe("aisha.training.>")
    avatar_id, user_id = await _seed_avatar(db_url, js, "style")
    request = contracts.TrainingRequested(
        event_id=contracts.new_event_id(),
        occurred_at=contracts.utcnow(),
        avatar_id=avatar_id,
        user_id=user_id,
        attempt=1,
        training_type=contracts.TrainingType.STYLE,
        priority=contracts.FalPriority.SPEED,
        trigger_word="TOKann",
        photo_count=10,
    )
    await js.publish(request.subject, contracts.encode(request))
    await _collect(sub, avatar_id, contracts.TrainingSubmitted, limit=30)
    again = contracts.TrainingRequested(
        **{**_fields(request), "event_id": contracts.new_event_id()}
    )
    await js.publish(again.subject, contracts.encode(again))
    await _collect(sub, avatar_id, contracts.TrainingCompleted, limit=45)
    await asyncio.sleep(1.0)
    conn = await asyncpg.connect(db_url)
    count = await conn.fetchval(
        "SELECT count(*) FROM fal_submissions WHERE subject_id = $1", uuid.UUID(avatar_id)
    )
    await conn.close()
    key = f"training:{avatar_id}:1"
    mine = [j for j in fal.jobs if j.webhook_url and key in j.webhook_url]
    assert count == 1
    assert len(mine) == 1, "the same attempt reached FAL more than once"
    await sub.unsubscribe()


#: What each quality preset sends to FAL (docs/fal-fields.md, "Quality presets"): the portrait
#: trainer's steps, learning rate and resolution buckets; the style trainer's steps.
PORTRAIT_PRESETS = {
    contracts.FalPriority.SPEED: (1500, 0.00009, True),
    contracts.FalPriority.QUALITY: (2500, 0.00009, True),
    contracts.FalPriority.HIGH_RES_ONLY: (2500, 0.00009, False),
}
PRICES = {  # the bot's default quotes (CREDITS_TRAINING_SPEED / _QUALITY / _HIGH_RES)
    contracts.FalPriority.SPEED: 30,
    contracts.FalPriority.QUALITY: 50,
    contracts.FalPriority.HIGH_RES_ONLY: 60,
}


@pytest.mark.parametrize("priority", list(contracts.FalPriority))
@pytest.mark.parametrize("training_type", ["portrait", "style"])
async def test_each_preset_reaches_fal_with_its_arguments_and_is_charged_its_quote(
    stack, js, db_url, fal, training_type, priority
):
    """The preset the user picked is what FAL receives (steps, learning rate, resolution;
    for a style `is_style` with masks off and no captioning or learning-rate argument), and
    the quote in the request is what the user's ledger is charged."""
    sub = await js._nc.subscribe("aisha.training.>")
    avatar_id, user_id = await _seed_avatar(db_url, js, training_type)
    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            await credits.post(conn, user_id=user_id, kind=credits.Kind.ADMIN_GRANT,
                               amount=100, key=f"grant:{avatar_id}")  # fmt: skip
    finally:
        await conn.close()
    request = contracts.TrainingRequested(
        event_id=contracts.derived_event_id("training_requested", avatar_id, 1),
        occurred_at=contracts.utcnow(),
        avatar_id=avatar_id,
        user_id=user_id,
        attempt=1,
        training_type=contracts.TrainingType(training_type),
        priority=priority,
        trigger_word="TOKann",
        photo_count=10,
        credits=PRICES[priority],
    )
    await js.publish(
        request.subject, contracts.encode(request), headers={"Nats-Msg-Id": request.event_id}
    )
    await _collect(sub, avatar_id, contracts.TrainingSubmitted, limit=45)
    await sub.unsubscribe()
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT * FROM avatars WHERE id = $1", uuid.UUID(avatar_id))
        charged = await conn.fetchval(
            "SELECT amount FROM credit_entries WHERE idempotency_key = $1",
            credits.training_charge_key(avatar_id, 1),
        )
    finally:
        await conn.close()
    (job,) = [j for j in fal.jobs if j.request_id == row["fal_request_id"]]
    sent = {k: v for k, v in job.arguments.items() if k != "images_data_url"}
    if training_type == "portrait":
        steps, learning_rate, multiresolution = PORTRAIT_PRESETS[priority]
        assert job.app_id == "fal-ai/flux-lora-portrait-trainer"
        assert sent == {
            "trigger_phrase": "TOKann",
            "steps": steps,
            "learning_rate": learning_rate,
            "multiresolution_training": multiresolution,
            "subject_crop": True,
            "create_masks": True,
        }
    else:  # the fast trainer has no resolution option: high-res trains like quality
        assert job.app_id == "fal-ai/flux-lora-fast-training"
        assert sent == {
            "trigger_word": "TOKann",
            "steps": 600 if priority is contracts.FalPriority.SPEED else 1000,
            "is_style": True,
            "create_masks": False,
            "is_input_format_already_preprocessed": False,
        }
        assert row["captioning"] is False  # recorded: `is_style` turns captioning off
    assert row["trigger_phrase"] == "TOKann"
    assert charged == -PRICES[priority]


def _fields(event) -> dict:
    return {f: getattr(event, f) for f in event.__struct_fields__}


def stack_webhook_prefix(stack) -> str:
    return f"http://127.0.0.1:{service_port(stack['status'])}/fal/webhook"


async def _request(js, avatar_id: str, user_id: int, trigger: str) -> None:
    event = contracts.TrainingRequested(
        event_id=contracts.derived_event_id("training_requested", avatar_id, 1),
        occurred_at=contracts.utcnow(),
        avatar_id=avatar_id,
        user_id=user_id,
        attempt=1,
        training_type=contracts.TrainingType.STYLE,
        priority=contracts.FalPriority.SPEED,
        trigger_word=trigger,
        photo_count=10,
    )
    await js.publish(
        event.subject, contracts.encode(event), headers={"Nats-Msg-Id": event.event_id}
    )


async def _webhook_counts(status_port: int) -> dict[str, float]:
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{status_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "aisha_status_webhooks":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] = sample.value
    return counts


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("webhook_lost", None),
        ("webhook_duplicate", "replay_or_duplicate"),
        ("webhook_bad_signature", "forged"),
        ("webhook_stale_timestamp", "stale"),
    ],
)
async def test_webhook_faults_still_complete_once(stack, js, db_url, fal, fault, outcome):
    """Whatever happens to the webhook, the training completes exactly once."""
    sub = await js._nc.subscribe("aisha.training.>")
    avatar_id, user_id = await _seed_avatar(db_url, js, "style")
    trigger = f"TOK{uuid.uuid4().hex[:6]}"
    fal.add_fault(fault, contains=trigger)
    await _request(js, avatar_id, user_id, trigger)
    events = await _collect(sub, avatar_id, contracts.TrainingCompleted, limit=45)
    await asyncio.sleep(1.5)  # room for a duplicate or late delivery to arrive
    while True:
        try:
            msg = await sub.next_msg(timeout=0.2)
        except nats.errors.TimeoutError:
            break
        event = contracts.decode(msg.subject, msg.data)
        if getattr(event, "avatar_id", None) == avatar_id:
            events.append(event)
    completions = [e for e in events if isinstance(e, contracts.TrainingCompleted)]
    assert len({e.event_id for e in completions}) == 1
    counts = await _webhook_counts(service_port(stack["status"]))
    if outcome == "forged":
        assert counts.get("forged", 0) >= 1
    elif outcome == "stale":
        assert counts.get("stale", 0) >= 1
    elif outcome == "replay_or_duplicate":
        assert counts.get("duplicate", 0) + counts.get("replay", 0) >= 1
    await sub.unsubscribe()


async def test_failed_training_is_reported_as_retryable(stack, js, db_url, fal):
    sub = await js._nc.subscribe("aisha.training.>")
    avatar_id, user_id = await _seed_avatar(db_url, js, "style")
    trigger = f"TOK{uuid.uuid4().hex[:6]}"
    fal.add_fault("job_failed", contains=trigger)
    await _request(js, avatar_id, user_id, trigger)
    events = await _collect(sub, avatar_id, contracts.TrainingFailed, limit=45)
    failed = events[-1]
    assert isinstance(failed, contracts.TrainingFailed)
    assert failed.reason is contracts.FailureReason.FAL_ERROR
    assert failed.retryable is True
    conn = await asyncpg.connect(db_url)
    row = await conn.fetchrow(
        "SELECT fal_status, training_error, training_finished_at FROM avatars WHERE id = $1",
        uuid.UUID(avatar_id),
    )
    await conn.close()
    assert row["fal_status"] == "ERROR"
    assert row["training_error"]
    assert row["training_finished_at"] is not None
    await sub.unsubscribe()


async def test_cancel_while_training_stops_the_job(stack, js, db_url, fal):
    fal.configure(training_seconds=20)
    sub = await js._nc.subscribe("aisha.training.>")
    avatar_id, user_id = await _seed_avatar(db_url, js, "style")
    await _request(js, avatar_id, user_id, "TOKcancel")
    submitted = (await _collect(sub, avatar_id, contracts.TrainingSubmitted, limit=30))[-1]
    cancel = contracts.TrainingCancelRequested(
        event_id=contracts.new_event_id(),
        occurred_at=contracts.utcnow(),
        avatar_id=avatar_id,
        user_id=user_id,
        attempt=1,
    )
    await js.publish(cancel.subject, contracts.encode(cancel))
    events = await _collect(sub, avatar_id, contracts.TrainingCancelled, limit=30)
    assert events[-1].request_id == submitted.request_id
    job = fal.job(submitted.request_id)
    assert job is not None
    assert job.cancelled
    conn = await asyncpg.connect(db_url)
    for _ in range(50):
        status = await conn.fetchval(
            "SELECT fal_status FROM avatars WHERE id = $1", uuid.UUID(avatar_id)
        )
        if status == "CANCELLED":
            break
        await asyncio.sleep(0.1)
    await conn.close()
    assert status == "CANCELLED"
    await sub.unsubscribe()


async def _train(js, db_url: str, training_type: str = "style") -> tuple[str, int, str]:
    """One training to completion; (avatar id, user id, FAL's LoRA URL)."""
    sub = await js._nc.subscribe("aisha.training.>")
    avatar_id, user_id = await _seed_avatar(db_url, js, training_type)
    request = contracts.TrainingRequested(
        event_id=contracts.derived_event_id("training_requested", avatar_id, 1),
        occurred_at=contracts.utcnow(),
        avatar_id=avatar_id,
        user_id=user_id,
        attempt=1,
        training_type=contracts.TrainingType(training_type),
        priority=contracts.FalPriority.QUALITY,
        trigger_word="TOKann",
        photo_count=10,
    )
    await js.publish(
        request.subject, contracts.encode(request), headers={"Nats-Msg-Id": request.event_id}
    )
    events = await _collect(sub, avatar_id, contracts.TrainingCompleted, limit=45)
    await sub.unsubscribe()
    completed = events[-1]
    assert isinstance(completed, contracts.TrainingCompleted)
    return avatar_id, user_id, completed.lora_url


async def _generate(js, db_url: str, user_id: int, avatar_id: str) -> contracts.Event:
    """The bot's part of a generation with the avatar; its final event."""
    conn = await asyncpg.connect(db_url, server_settings={"role": "aisha_bot"})
    try:
        generation_id: str = await conn.fetchval(
            "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, seed)"
            " VALUES ($1, $2, 'TOKann on a boat', '1:1', 1, 5) RETURNING id::text",
            user_id,
            avatar_id,
        )
    finally:
        await conn.close()
    sub = await js._nc.subscribe("aisha.generation.>")
    request = contracts.GenerationRequested(
        event_id=contracts.new_event_id(),
        occurred_at=contracts.utcnow(),
        generation_id=generation_id,
        user_id=user_id,
        avatar_id=avatar_id,
        prompt="TOKann on a boat",
        aspect_ratio="1:1",
        num_images=1,
        seed=5,
    )
    await js.publish(
        request.subject, contracts.encode(request), headers={"Nats-Msg-Id": request.event_id}
    )
    deadline = asyncio.get_running_loop().time() + 45
    try:
        while asyncio.get_running_loop().time() < deadline:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            event = contracts.decode(msg.subject, msg.data)
            if getattr(event, "generation_id", None) == generation_id and isinstance(
                event, contracts.GenerationCompleted | contracts.GenerationFailed
            ):
                return event
    finally:
        await sub.unsubscribe()
    raise AssertionError(f"generation {generation_id} did not end")


async def test_a_trained_lora_outlives_fals_copy(stack, js, db_url, fal):
    """FAL deletes its LoRA (here at once); generations keep working from our copy,
    re-uploaded with a lifetime, once for as long as that upload lives."""
    avatar_id, user_id, fal_url = await _train(js, db_url)
    key = await _kept(db_url, avatar_id, "lora_object_key")
    store = await js.object_store(OBJ_IMAGES.name)
    assert (await store.get(key)).data == fal.storage.by_url(fal_url).data  # our copy
    assert (await store.get(loras.config_name(key))).data
    submit = next(r for r in fal.requests if r.op == "submit" and r.app_id == FAST)
    assert json.loads(submit.headers["X-Fal-Object-Lifecycle-Preference"]) == {
        "expiration_duration_seconds": lifetimes.TRAINING_OUTPUT_SECONDS
    }
    archive = next(r for r in fal.requests if r.op == "upload")
    assert json.loads(archive.headers["X-Fal-Object-Lifecycle"]) == {
        "expiration_duration_seconds": lifetimes.ARCHIVE_SECONDS
    }
    conn = await asyncpg.connect(db_url, server_settings={"role": "aisha_bot"})
    try:  # what the bot does on `training.completed`
        await conn.execute("UPDATE avatars SET status = 'completed' WHERE id = $1", avatar_id)
    finally:
        await conn.close()

    assert fal.expire_url(fal_url)  # FAL's copy is deleted
    uploads_before = len([r for r in fal.requests if r.op == "upload"])
    first = await _generate(js, db_url, user_id, avatar_id)
    second = await _generate(js, db_url, user_id, avatar_id)
    assert isinstance(first, contracts.GenerationCompleted), first
    assert isinstance(second, contracts.GenerationCompleted), second

    jobs = [j for j in fal.jobs if j.app_id == "fal-ai/flux-lora"]
    paths = {j.arguments["loras"][0]["path"] for j in jobs}
    assert len(jobs) == 2
    assert len(paths) == 1  # the re-upload is remembered, not repeated
    (path,) = paths
    assert path != fal_url
    reupload = fal.storage.by_url(path)
    assert reupload is not None
    assert reupload.data == (await store.get(key)).data
    left = reupload.expires_at - time.time()
    assert lifetimes.REUPLOAD_SECONDS - 120 < left <= lifetimes.REUPLOAD_SECONDS
    assert len([r for r in fal.requests if r.op == "upload"]) == uploads_before + 1
    generate = [r for r in fal.requests if r.op == "submit" and r.app_id == "fal-ai/flux-lora"]
    assert json.loads(generate[0].headers["X-Fal-Object-Lifecycle-Preference"]) == {
        "expiration_duration_seconds": lifetimes.GENERATION_OUTPUT_SECONDS
    }
