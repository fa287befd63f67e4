"""Generation backend pieces: size presets, cost, FAL arguments, refusals, result images.

The pure functions need nothing; `plan_generation`, the shared spend query and the image
store run against the suite's real PostgreSQL and NATS (and a loopback HTTP server
standing in for FAL's CDN), because what they do is talk to them.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
from aiohttp import web
from PIL import Image

from contracts import FailureReason, GenerationRequested, new_event_id, utcnow
from services.kit.config import ConfigError, Env
from services.status.generation_tracking import failure_reason
from services.status.images import (
    ImageStore,
    ResultsLost,
    ResultsUnavailable,
    nsfw_flags,
    result_urls,
)
from services.status.metrics import StatusMetrics
from services.trainer.config import TrainerConfig
from services.trainer.generation_plan import (
    Refused,
    estimate_cost,
    generation_arguments,
    image_size,
    plan_generation,
)
from services.trainer.spend import spent_last_day

ENV = {
    "DATABASE_URL": "postgresql://u:p@localhost/db",
    "FAL_KEY": "key-id:key-secret",
    "PUBLIC_BASE_URL": "https://aisha.example",
}


def _config(**extra: str) -> TrainerConfig:
    return TrainerConfig.from_env(Env({**ENV, **extra}))


def _request(**changes: object) -> GenerationRequested:
    fields: dict[str, object] = {
        "event_id": new_event_id(),
        "occurred_at": utcnow(),
        "generation_id": str(uuid.uuid4()),
        "user_id": 1,
        "avatar_id": None,
        "prompt": "a lighthouse at dawn",
        "aspect_ratio": "1:1",
        "num_images": 2,
        "seed": 99,
    }
    fields.update(changes)
    return GenerationRequested(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("1:1", ("square_hd", 1024, 1024)),
        ("3:4", ("portrait_4_3", 768, 1024)),
        ("4:3", ("landscape_4_3", 1024, 768)),
        ("9:16", ("portrait_16_9", 576, 1024)),
        ("16:9", ("landscape_16_9", 1024, 576)),
    ],
)
def test_aspect_ratios_map_to_fal_presets(ratio: str, expected: tuple[str, int, int]) -> None:
    assert image_size(ratio) == expected


@pytest.mark.parametrize("ratio", ["2:1", "", "square_hd", "1:1 "])
def test_unknown_aspect_ratio_is_refused_as_bad_input(ratio: str) -> None:
    with pytest.raises(Refused) as caught:
        image_size(ratio)
    assert caught.value.reason is FailureReason.FAL_REJECTED_INPUT


def test_cost_is_megapixels_times_images_times_price() -> None:
    assert estimate_cost("1:1", 1, 0.035) == pytest.approx(0.0367, abs=1e-4)  # 1.048576 MP
    assert estimate_cost("1:1", 4, 0.035) == pytest.approx(0.1468, abs=1e-4)
    assert estimate_cost("16:9", 1, 0.035) == pytest.approx(0.0206, abs=1e-4)  # 0.589824 MP
    assert estimate_cost("3:4", 3, 0.05) == pytest.approx(0.768 * 1.024 * 3 * 0.05, abs=1e-4)
    assert estimate_cost("4:3", 2, 0.0) == 0.0


def test_arguments_carry_the_lora_only_with_an_avatar() -> None:
    request = _request(aspect_ratio="9:16", num_images=3, seed=1234)
    quick = generation_arguments(request, None, 1.0)
    assert quick == {
        "prompt": "a lighthouse at dawn",
        "image_size": "portrait_16_9",
        "num_images": 3,
        "seed": 1234,
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
        "enable_safety_checker": True,
        "output_format": "jpeg",
    }
    with_lora = generation_arguments(request, "https://v3.fal.media/files/x/lora.bin", 0.7)
    assert with_lora["loras"] == [{"path": "https://v3.fal.media/files/x/lora.bin", "scale": 0.7}]


def test_config_defaults_and_bounds() -> None:
    config = _config()
    assert config.generation_lora_scale == 1.0
    assert config.generation_cost_per_megapixel_usd == 0.035
    assert _config(GENERATION_LORA_SCALE="0.6").generation_lora_scale == 0.6
    with pytest.raises(ConfigError, match="GENERATION_LORA_SCALE"):
        _config(GENERATION_LORA_SCALE="3")
    with pytest.raises(ConfigError, match="TRAINER_DESCRIBE_TIMEOUT_SECONDS"):
        _config(TRAINER_DESCRIBE_TIMEOUT_SECONDS="90")


def test_failure_reason_blames_the_input_only_for_validation_errors() -> None:
    assert failure_reason("validation_error", None) is FailureReason.FAL_REJECTED_INPUT
    detail = {"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}
    assert failure_reason(None, detail) is FailureReason.FAL_REJECTED_INPUT
    assert failure_reason("internal_server_error", {"detail": "CUDA OOM"}) is (
        FailureReason.FAL_ERROR
    )
    assert failure_reason(None, None) is FailureReason.FAL_ERROR
    assert failure_reason("request_timeout", {"detail": "timed out"}) is FailureReason.TIMEOUT


def test_result_urls_and_nsfw_flags() -> None:
    payload = {"images": [{"url": "https://a/0.jpg"}, {"url": "https://a/1.jpg"}]}
    assert result_urls(payload) == ["https://a/0.jpg", "https://a/1.jpg"]
    assert nsfw_flags({**payload, "has_nsfw_concepts": [True]}, 2) == [True, False]
    assert nsfw_flags(payload, 2) == [False, False]
    for broken in ({}, {"images": []}, {"images": [{"width": 1}]}, {"images": "x"}):
        with pytest.raises(ResultsLost):
            result_urls(broken)


# --- against the real database ----------------------------------------------------------


@pytest.fixture
async def admin(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


async def _user(admin: asyncpg.Pool) -> int:
    user_id = int(uuid.uuid4().int % 10**9)
    await admin.execute("INSERT INTO users (id) VALUES ($1)", user_id)
    return user_id


async def _avatar(admin: asyncpg.Pool, user_id: int, status: str, lora: str | None) -> str:
    avatar_id: str = await admin.fetchval(
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status,"
        " diffusers_lora_file_url) VALUES ($1, 'A', 'male', 'TOK', $2, $3) RETURNING id::text",
        user_id,
        status,
        lora,
    )
    return avatar_id


async def _generation(
    admin: asyncpg.Pool, user_id: int, avatar_id: str | None, **cols: object
) -> str:
    generation_id: str = await admin.fetchval(
        "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, seed,"
        " lora_scale, status) VALUES ($1, $2, 'p', '1:1', 1, 1, $3, $4) RETURNING id::text",
        user_id,
        avatar_id,
        cols.get("lora_scale"),
        cols.get("status", "pending"),
    )
    return generation_id


async def test_spend_counts_trainings_and_generations_of_the_last_day(admin: asyncpg.Pool) -> None:
    user = await _user(admin)
    avatar = await _avatar(admin, user, "completed", None)
    await admin.execute(
        "UPDATE avatars SET cost_usd = 2.0, submitted_at = now() WHERE id = $1", uuid.UUID(avatar)
    )
    recent = await _generation(admin, user, None)
    old = await _generation(admin, user, None)
    await admin.execute(
        "UPDATE generations SET cost_usd = 0.5, submitted_at = now() WHERE id = $1",
        uuid.UUID(recent),
    )
    await admin.execute(
        "UPDATE generations SET cost_usd = 10, submitted_at = now() - interval '2 days'"
        " WHERE id = $1",
        uuid.UUID(old),
    )
    assert await spent_last_day(admin) == pytest.approx(2.5)


async def test_plan_uses_the_users_completed_avatar_and_its_scale(admin: asyncpg.Pool) -> None:
    user = await _user(admin)
    lora = "https://v3.fal.media/files/k/lora.safetensors"
    avatar = await _avatar(admin, user, "completed", lora)
    generation = await _generation(admin, user, avatar, lora_scale=0.75)
    request = _request(generation_id=generation, user_id=user, avatar_id=avatar, num_images=1)
    arguments, cost = await plan_generation(admin, request, _config())
    assert arguments["loras"] == [{"path": lora, "scale": pytest.approx(0.75)}]
    assert cost == pytest.approx(0.0367, abs=1e-4)
    default = await _generation(admin, user, avatar)
    request = _request(generation_id=default, user_id=user, avatar_id=avatar)
    arguments, _ = await plan_generation(admin, request, _config(GENERATION_LORA_SCALE="1.2"))
    assert arguments["loras"][0]["scale"] == pytest.approx(1.2)


async def test_plan_refuses_what_must_not_reach_fal(admin: asyncpg.Pool) -> None:
    owner, other = await _user(admin), await _user(admin)
    theirs = await _avatar(admin, owner, "completed", "https://v3.fal.media/files/k/l.bin")
    training = await _avatar(admin, other, "training", None)
    cases = [
        (other, theirs, {}, {}, FailureReason.FAL_REJECTED_INPUT),  # another user's avatar
        (other, training, {}, {}, FailureReason.FAL_REJECTED_INPUT),  # not trained yet
        (other, None, {"status": "cancelled"}, {}, FailureReason.CANCELLED),
        (other, None, {}, {"TRAINER_DAILY_SPEND_LIMIT_USD": "0"}, FailureReason.SPEND_LIMIT),
    ]
    for user, avatar, cols, env, reason in cases:
        generation = await _generation(admin, user, avatar, **cols)
        request = _request(generation_id=generation, user_id=user, avatar_id=avatar)
        with pytest.raises(Refused) as caught:
            await plan_generation(admin, request, _config(**env))
        assert caught.value.reason is reason, (avatar, cols, env)
    bogus = _request(generation_id=str(uuid.uuid4()), user_id=other, avatar_id="not-a-uuid")
    with pytest.raises(Refused):
        await plan_generation(admin, bogus, _config())


# --- result images: real NATS Object Store, a loopback "CDN" -----------------------------


def _jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
async def cdn() -> AsyncIterator[str]:
    """/ok/<n> serves a JPEG, /gone a 404, /flaky fails once then works, /down always 503,
    /text is not an image."""
    hits: dict[str, int] = {}

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        hits[path] = hits.get(path, 0) + 1
        if path.startswith("/ok/"):
            n = int(path.rsplit("/", 1)[1])
            return web.Response(body=_jpeg(64, 48, (n * 40, 10, 200)), content_type="image/jpeg")
        if path == "/flaky" and hits[path] > 1:
            return web.Response(body=_jpeg(32, 32, (1, 2, 3)), content_type="image/jpeg")
        if path in ("/flaky", "/down"):
            return web.Response(status=503)
        if path == "/text":
            return web.Response(text="<html>not found</html>")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def store(nats_url: str, cdn: str) -> AsyncIterator[ImageStore]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    bucket = await js.create_object_store(f"t_images_{uuid.uuid4().hex[:8]}")
    images = ImageStore(bucket, StatusMetrics(), attempts=3, backoff_seconds=0.01)
    yield images
    await images.close()
    await js.delete_object_store(bucket._name)
    await nc.drain()


async def test_images_are_stored_under_fixed_names(store: ImageStore, cdn: str) -> None:
    payload = {
        "images": [{"url": f"{cdn}/ok/0"}, {"url": f"{cdn}/ok/1"}, {"url": f"{cdn}/flaky"}],
        "has_nsfw_concepts": [False, True, False],
    }
    generation = str(uuid.uuid4())
    stored = await store.save_all(generation, payload)
    assert [(s.position, s.object_name, s.nsfw) for s in stored] == [
        (0, f"gen/{generation}/0.jpg", False),
        (1, f"gen/{generation}/1.jpg", True),
        (2, f"gen/{generation}/2.jpg", False),
    ]
    assert [(s.width, s.height, s.content_type) for s in stored[:2]] == [(64, 48, "image/jpeg")] * 2
    again = await store.save_all(generation, payload)  # a retry overwrites, never adds
    assert [s.object_name for s in again] == [s.object_name for s in stored]
    data = (await store._bucket.get(stored[0].object_name)).data
    with Image.open(io.BytesIO(data or b"")) as image:
        assert image.size == (64, 48)


@pytest.mark.parametrize(
    ("paths", "error", "message"),
    [
        (["/ok/0", "/gone"], ResultsLost, "results expired"),
        (["/text"], ResultsLost, "not an image"),
        (["/down", "/gone"], ResultsLost, "results expired"),  # lost decides over transient
        (["/ok/0", "/down"], ResultsUnavailable, "503"),
    ],
)
async def test_unfetchable_results(
    store: ImageStore, cdn: str, paths: list[str], error: type[Exception], message: str
) -> None:
    payload = {"images": [{"url": f"{cdn}{p}"} for p in paths]}
    with pytest.raises(error, match=message):
        await store.save_all(str(uuid.uuid4()), payload)
