"""Generation end to end: bot's request → trainer → FAL → status → stored images → bot.

Real trainer and status processes, real NATS and PostgreSQL, the unmodified fal-client
against the FAL emulator. The test plays the bot: it stores the user, avatar and
generation rows as the bot does, publishes `generation.requested` (or
`generation.describe_requested`) and reads the events the bot consumes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid

import asyncpg
import msgspec
import nats
import pytest
from PIL import Image

import contracts
from contracts.jetstream import OBJ_IMAGES
from sandbox.fal import FalEmulator
from sandbox.fal.images import describe as emulator_caption
from tests.e2e import services
from tests.e2e.services import insert_user

pytestmark = pytest.mark.e2e

_END = (contracts.GenerationCompleted, contracts.GenerationFailed)
_REQUESTS = (contracts.GenerationRequested, contracts.DescribeRequested)


@pytest.fixture
async def fal():
    emulator = FalEmulator(
        training_seconds=1.0, queue_seconds=0.2, generation_seconds=0.4, concurrency=8
    )
    await emulator.start()
    yield emulator
    await emulator.stop()


# the shared fixtures, used here by name
js, stack, stack_overrides = services.js, services.stack, services.stack_overrides


@pytest.fixture
async def events(js):
    """Every generation event the bot would consume, as they are published."""
    sub = await js._nc.subscribe("aisha.generation.>")
    yield sub
    await sub.unsubscribe()


async def _user(db_url: str) -> int:
    conn = await asyncpg.connect(db_url, server_settings={"role": "aisha_bot"})
    try:
        return await insert_user(conn)
    finally:
        await conn.close()


async def _completed_avatar(db_url: str, user_id: int, lora_url: str) -> str:
    """An avatar whose training finished: bot columns as the bot, the LoRA as status."""
    conn = await asyncpg.connect(db_url)
    try:
        avatar_id: str = await conn.fetchval(
            "INSERT INTO avatars (user_id, name, gender, trigger_word, status, training_attempt,"
            " fal_status, diffusers_lora_file_url, training_finished_at) VALUES ($1, 'Ann',"
            " 'female', 'TOKann', 'completed', 1, 'COMPLETED', $2, now()) RETURNING id::text",
            user_id,
            lora_url,
        )
    finally:
        await conn.close()
    return avatar_id


async def _generation(
    db_url: str,
    user_id: int,
    avatar_id: str | None,
    prompt: str,
    *,
    aspect_ratio: str = "1:1",
    num_images: int = 1,
    seed: int = 7,
    lora_scale: float | None = None,
) -> contracts.GenerationRequested:
    """The bot's transaction: the pending row, and the request it publishes."""
    conn = await asyncpg.connect(db_url, server_settings={"role": "aisha_bot"})
    try:
        generation_id: str = await conn.fetchval(
            "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, seed,"
            " lora_scale) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text",
            user_id,
            avatar_id,
            prompt,
            aspect_ratio,
            num_images,
            seed,
            lora_scale,
        )
    finally:
        await conn.close()
    return contracts.GenerationRequested(
        event_id=contracts.new_event_id(),
        occurred_at=contracts.utcnow(),
        generation_id=generation_id,
        user_id=user_id,
        avatar_id=avatar_id,
        prompt=prompt,
        aspect_ratio=aspect_ratio,
        num_images=num_images,
        seed=seed,
    )


async def _publish(js, event: contracts.Event) -> None:
    await js.publish(
        event.subject, contracts.encode(event), headers={"Nats-Msg-Id": event.event_id}
    )


async def _collect(sub, field: str, value: str, until: tuple[type, ...], limit: float = 30.0):
    """Events whose `field` is `value`, up to the first of `until`."""
    return (await _collect_all(sub, field, [value], until, limit))[value]


async def _collect_all(
    sub, field: str, values: list[str], until: tuple[type, ...], limit: float = 30.0
) -> dict[str, list[contracts.Event]]:
    """Per value of `field`: its events up to the first of `until`, read in one pass (an
    event for one value must not be dropped while waiting for another)."""
    seen: dict[str, list[contracts.Event]] = {v: [] for v in values}
    open_ = set(values)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while open_ and loop.time() < deadline:
        try:
            msg = await sub.next_msg(timeout=0.5)
        except nats.errors.TimeoutError:
            continue
        event = contracts.decode(msg.subject, msg.data)
        if isinstance(event, _REQUESTS):  # what the test itself published
            continue
        key = getattr(event, field, None)
        if key in open_:
            seen[key].append(event)
            if isinstance(event, until):
                open_.discard(key)
    if open_:
        raise AssertionError(f"no {until} for {sorted(open_)} within {limit}s; saw {seen}")
    return seen


def _jobs(fal: FalEmulator, generation_id: str):
    key = f"key=generation:{generation_id}"
    return [j for j in fal.jobs if j.webhook_url and key in j.webhook_url]


async def _rows(db_url: str, generation_id: str):
    conn = await asyncpg.connect(db_url)
    try:
        generation = await conn.fetchrow(
            "SELECT * FROM generations WHERE id = $1", uuid.UUID(generation_id)
        )
        images = await conn.fetch(
            "SELECT * FROM generated_images WHERE generation_id = $1 ORDER BY position",
            uuid.UUID(generation_id),
        )
        ledger = await conn.fetch(
            "SELECT state FROM fal_submissions WHERE subject_id = $1", uuid.UUID(generation_id)
        )
    finally:
        await conn.close()
    return generation, images, ledger


async def test_generation_with_avatar_lora_stores_images(stack, js, events, db_url, fal):
    lora_url = fal.put_file(b"AISHA-LORA" * 64, "application/octet-stream", "lora.safetensors")
    user_id = await _user(db_url)
    avatar_id = await _completed_avatar(db_url, user_id, lora_url)
    request = await _generation(
        db_url,
        user_id,
        avatar_id,
        "TOKann as an astronaut",
        aspect_ratio="3:4",
        num_images=3,
        seed=4242,
        lora_scale=0.8,
    )
    await _publish(js, request)

    seen = await _collect(events, "generation_id", request.generation_id, _END)
    assert isinstance(seen[0], contracts.GenerationSubmitted)
    completed = seen[-1]
    assert isinstance(completed, contracts.GenerationCompleted), seen
    assert completed.seed == 4242
    assert [i.object_name for i in completed.images] == [
        f"gen/{request.generation_id}/{n}.jpg" for n in range(3)
    ]

    store = await js.object_store(OBJ_IMAGES.name)
    digests = set()
    for image in completed.images:
        data = (await store.get(image.object_name)).data
        with Image.open(io.BytesIO(data)) as picture:
            assert (picture.format, picture.size) == ("JPEG", (768, 1024))
        assert (image.width, image.height, image.content_type) == (768, 1024, "image/jpeg")
        assert image.nsfw is False
        digests.add(hashlib.sha256(data).hexdigest())
    assert len(digests) == 3, "the images are not distinct"

    generation, images, ledger = await _rows(db_url, request.generation_id)
    assert [(r["position"], r["object_name"], r["nsfw"]) for r in images] == [
        (n, f"gen/{request.generation_id}/{n}.jpg", False) for n in range(3)
    ]
    assert all(r["user_id"] == user_id and r["width"] == 768 for r in images)
    assert generation["fal_endpoint"] == "fal-ai/flux-lora"
    assert generation["fal_request_id"] == completed.request_id
    assert generation["fal_status"] == "COMPLETED"
    assert generation["finished_at"] is not None
    assert float(generation["cost_usd"]) == pytest.approx(0.768 * 1.024 * 3 * 0.035, abs=1e-4)
    assert [r["state"] for r in ledger] == ["submitted"]

    (job,) = _jobs(fal, request.generation_id)
    assert job.app_id == "fal-ai/flux-lora"
    assert job.arguments["loras"][0]["path"] == lora_url
    assert job.arguments["loras"][0]["scale"] == pytest.approx(0.8)
    assert job.arguments["seed"] == 4242
    assert job.arguments["image_size"] == "portrait_4_3"
    assert job.arguments["num_images"] == 3
    assert job.arguments["enable_safety_checker"] is True


async def test_quick_generation_uses_flux_dev_once_despite_duplicates(
    stack, js, events, db_url, fal
):
    user_id = await _user(db_url)
    request = await _generation(db_url, user_id, None, "a lighthouse", aspect_ratio="16:9")
    await _publish(js, request)
    await _collect(events, "generation_id", request.generation_id, (contracts.GenerationSubmitted,))
    await _publish(js, msgspec.structs.replace(request, event_id=contracts.new_event_id()))
    seen = await _collect(events, "generation_id", request.generation_id, _END)
    completed = seen[-1]
    assert isinstance(completed, contracts.GenerationCompleted), seen
    assert (completed.images[0].width, completed.images[0].height) == (1024, 576)
    await asyncio.sleep(1.0)  # room for a second submission to show up, if there were one

    jobs = _jobs(fal, request.generation_id)
    assert len(jobs) == 1, "the same generation reached FAL more than once"
    assert jobs[0].app_id == "fal-ai/flux/dev"
    assert "loras" not in jobs[0].arguments
    generation, images, ledger = await _rows(db_url, request.generation_id)
    assert generation["fal_endpoint"] == "fal-ai/flux/dev"
    assert len(images) == 1
    assert len(ledger) == 1


FAULTS = ("webhook_lost", "nsfw", "url_expiry", "job_failed")


async def test_faults_end_each_generation_once(stack, js, events, db_url, fal):
    """One generation per fault, all at once on one stack (each is asserted by name)."""
    user_id = await _user(db_url)
    requests = {}
    for fault in FAULTS:
        marker = f"scene-{uuid.uuid4().hex[:8]}"
        params = {"seconds": 0} if fault == "url_expiry" else {}  # expired before any fetch
        fal.add_fault(fault, contains=marker, **params)
        requests[fault] = await _generation(db_url, user_id, None, f"a {marker}", num_images=2)
        await _publish(js, requests[fault])
    ids = [r.generation_id for r in requests.values()]
    seen = await _collect_all(events, "generation_id", ids, _END)

    for fault, request in requests.items():
        end = seen[request.generation_id][-1]
        generation, images, _ = await _rows(db_url, request.generation_id)
        (job,) = _jobs(fal, request.generation_id)
        assert generation["finished_at"] is not None, fault
        if fault == "webhook_lost":  # completed by polling
            assert isinstance(end, contracts.GenerationCompleted), (fault, end)
            assert not [d for d in fal.webhook_deliveries if d.request_id == job.request_id]
            assert len(images) == 2
        elif fault == "nsfw":  # still listed, flagged: the bot withholds them
            assert isinstance(end, contracts.GenerationCompleted), (fault, end)
            assert [i.nsfw for i in end.images] == [True, True]
            assert [r["nsfw"] for r in images] == [True, True]
        elif fault == "url_expiry":
            assert isinstance(end, contracts.GenerationFailed), (fault, end)
            assert end.reason is contracts.FailureReason.FAL_ERROR
            assert end.detail == "results expired"
            assert images == []
        else:
            assert isinstance(end, contracts.GenerationFailed), (fault, end)
            assert end.reason is contracts.FailureReason.FAL_ERROR
            assert end.request_id == job.request_id
            assert generation["fal_status"] == "ERROR"
            assert generation["error"]
            assert images == []


async def test_another_users_avatar_is_refused_without_fal(stack, js, events, db_url, fal):
    lora_url = fal.put_file(b"AISHA-LORA" * 64, "application/octet-stream", "lora.safetensors")
    owner = await _user(db_url)
    avatar_id = await _completed_avatar(db_url, owner, lora_url)
    intruder = await _user(db_url)
    request = await _generation(db_url, intruder, avatar_id, "someone else's face")
    await _publish(js, request)
    seen = await _collect(events, "generation_id", request.generation_id, _END)
    failed = seen[-1]
    assert isinstance(failed, contracts.GenerationFailed), seen
    assert failed.reason is contracts.FailureReason.FAL_REJECTED_INPUT
    assert not any(isinstance(e, contracts.GenerationSubmitted) for e in seen)
    assert _jobs(fal, request.generation_id) == []
    assert not [j for j in fal.jobs if j.arguments.get("prompt") == request.prompt]
    generation, _, ledger = await _rows(db_url, request.generation_id)
    assert generation["fal_request_id"] is None
    assert [r["state"] for r in ledger] == ["failed"]


async def test_describe_returns_the_vision_models_caption(stack, js, events, fal):
    store = await js.object_store(OBJ_IMAGES.name)
    buffer = io.BytesIO()
    Image.new("RGB", (600, 800), (180, 90, 40)).save(buffer, "JPEG")
    photo = buffer.getvalue()
    good, junk = f"ref/{uuid.uuid4()}.jpg", f"ref/{uuid.uuid4()}.jpg"
    await store.put(good, photo)
    await store.put(junk, b"this is not a picture")
    requests = [
        contracts.DescribeRequested(
            event_id=contracts.new_event_id(),
            occurred_at=contracts.utcnow(),
            request_id=str(uuid.uuid4()),
            user_id=42,
            avatar_id=None,
            object_name=name,
        )
        for name in (good, junk)
    ]
    for request in requests:
        await _publish(js, request)
    ids = [r.request_id for r in requests]
    seen = await _collect_all(events, "request_id", ids, (contracts.PromptDescribed,))
    described, refused = seen[ids[0]][-1], seen[ids[1]][-1]

    assert isinstance(described, contracts.PromptDescribed)
    assert described.caption == emulator_caption(photo)
    assert described.reason is None
    assert isinstance(refused, contracts.PromptDescribed)
    assert refused.caption is None
    assert refused.reason is contracts.FailureReason.FAL_REJECTED_INPUT
    captions = [j for j in fal.jobs if j.app_id == "fal-ai/florence-2-large/detailed-caption"]
    assert len(captions) == 2
