"""Which URL a generation sends FAL for the avatar's LoRA (`services/trainer/lora_source.py`).

FAL's own while it is inside the lifetime we asked for and its CDN serves it; else our last
re-upload while enough of it is left; else our copy uploaded again (2 h) and remembered.
Real FAL emulator through the trainer's `FalGateway` (fal-client), real PostgreSQL as the
trainer's role, a real NATS Object Store.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from nats.js.object_store import ObjectStore

from contracts import utcnow
from sandbox.fal import FalEmulator
from services.kit import loras
from services.kit.db import create_pool
from services.trainer import lifetimes
from services.trainer.fal_gateway import FalGateway, FalRetryable
from services.trainer.lora_source import AVATAR_COLUMNS, LoraSource

WEIGHTS = b"AISHA-LORA-OURS" * 100


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FalEmulator]:
    async with FalEmulator() as emulator:
        for key, value in emulator.client_env().items():
            monkeypatch.setenv(key, value)
        yield emulator


@pytest.fixture
async def source(
    emu: FalEmulator, bucket: ObjectStore, db_url: str
) -> AsyncIterator[tuple[LoraSource, asyncpg.Connection]]:
    pool = await create_pool(db_url, "aisha_trainer", max_size=2)
    admin = await asyncpg.connect(db_url)
    try:
        yield LoraSource(pool, FalGateway(emu.fal_key), bucket), admin
    finally:
        await admin.close()
        await pool.close()


async def _avatar(
    admin: asyncpg.Connection, fal_url: str, *, days_ago: int = 0, key: str | None = None
) -> uuid.UUID:
    user_id, avatar_id = uuid.uuid4().int % 10**12, uuid.uuid4()
    await admin.execute("INSERT INTO users (id, first_name) VALUES ($1, 'L')", user_id)
    await admin.execute(
        "INSERT INTO avatars (id, user_id, name, gender, status, trigger_word, training_attempt,"
        " fal_status, diffusers_lora_file_url, training_finished_at, lora_object_key)"
        " VALUES ($1, $2, 'L', 'female', 'completed', 'ohwx', 1, 'COMPLETED', $3,"
        " now() - make_interval(days => $4), $5)",
        avatar_id,
        user_id,
        fal_url,
        days_ago,
        key,
    )
    return avatar_id


async def _url(source: LoraSource, admin: asyncpg.Connection, avatar_id: uuid.UUID) -> str:
    row = await admin.fetchrow(f"SELECT {AVATAR_COLUMNS} FROM avatars WHERE id = $1", avatar_id)
    return await source.url(avatar_id, row)


def _uploads(emu: FalEmulator) -> int:
    return len([r for r in emu.requests if r.op == "upload"])


async def _ours(bucket: ObjectStore, avatar_id: uuid.UUID) -> str:
    key = loras.weights_name(str(avatar_id), 1)
    await bucket.put(key, WEIGHTS)
    return key


async def test_fals_own_lora_is_used_while_it_is_alive(
    emu: FalEmulator, source: tuple[LoraSource, asyncpg.Connection]
) -> None:
    loras_, admin = source
    fal_url = emu.put_file(b"FAL", "application/octet-stream", "lora.safetensors")
    avatar_id = await _avatar(admin, fal_url, key="lora/x/1/lora.safetensors")
    assert await _url(loras_, admin, avatar_id) == fal_url
    assert _uploads(emu) == 0
    heads = [r for r in emu.requests if r.op == "file" and r.method == "HEAD"]
    assert len(heads) == 1  # asked FAL's CDN, did not download


async def test_a_gone_lora_is_replaced_by_our_copy_once_for_its_lifetime(
    emu: FalEmulator, bucket: ObjectStore, source: tuple[LoraSource, asyncpg.Connection]
) -> None:
    loras_, admin = source
    fal_url = emu.put_file(b"FAL", "application/octet-stream", "lora.safetensors")
    assert emu.expire_url(fal_url)
    avatar_id = await _avatar(admin, fal_url)
    key = await _ours(bucket, avatar_id)
    await admin.execute("UPDATE avatars SET lora_object_key = $2 WHERE id = $1", avatar_id, key)

    first = await _url(loras_, admin, avatar_id)
    assert first != fal_url
    stored = emu.storage.by_url(first)
    assert stored is not None
    assert stored.data == WEIGHTS
    assert stored.expires_at is not None
    row = await admin.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
    assert row["lora_upload_url"] == first
    left = (row["lora_upload_expires_at"] - utcnow()).total_seconds()
    assert lifetimes.REUPLOAD_SECONDS - 60 < left <= lifetimes.REUPLOAD_SECONDS
    assert await _url(loras_, admin, avatar_id) == first  # remembered
    assert _uploads(emu) == 1

    # Less than the margin left: a generation may wait in FAL's queue, so upload again.
    soon = utcnow() + timedelta(seconds=lifetimes.REUPLOAD_MARGIN_SECONDS - 60)
    await admin.execute(
        "UPDATE avatars SET lora_upload_expires_at = $2 WHERE id = $1", avatar_id, soon
    )
    second = await _url(loras_, admin, avatar_id)
    assert second not in (first, fal_url)
    assert _uploads(emu) == 2


async def test_fals_lora_past_the_lifetime_we_asked_is_not_trusted(
    emu: FalEmulator, bucket: ObjectStore, source: tuple[LoraSource, asyncpg.Connection]
) -> None:
    """Still served now, but FAL may delete it any moment (8 days > the 7 we asked)."""
    loras_, admin = source
    fal_url = emu.put_file(b"FAL", "application/octet-stream", "lora.safetensors")
    avatar_id = await _avatar(admin, fal_url, days_ago=8)
    key = await _ours(bucket, avatar_id)
    await admin.execute("UPDATE avatars SET lora_object_key = $2 WHERE id = $1", avatar_id, key)
    assert await _url(loras_, admin, avatar_id) != fal_url
    assert _uploads(emu) == 1


async def test_without_a_copy_only_fals_url_is_left(
    emu: FalEmulator, bucket: ObjectStore, source: tuple[LoraSource, asyncpg.Connection]
) -> None:
    loras_, admin = source
    fal_url = emu.put_file(b"FAL", "application/octet-stream", "lora.safetensors")
    assert emu.expire_url(fal_url)
    avatar_id = await _avatar(admin, fal_url)
    assert await _url(loras_, admin, avatar_id) == fal_url  # FAL will refuse it: a 422
    # A copy the row names but the store lost: retried later, never sent as is.
    await admin.execute(
        "UPDATE avatars SET lora_object_key = $2 WHERE id = $1",
        avatar_id,
        loras.weights_name(str(avatar_id), 1),
    )
    with pytest.raises(FalRetryable, match="missing"):
        await _url(loras_, admin, avatar_id)
    assert _uploads(emu) == 0
