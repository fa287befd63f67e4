"""Reference photos kept like training photos, on real PostgreSQL (as the bot's role) and
real NATS object stores: stored file first, then its row (never a row for an avatar that is
not the user's ready one); one running job per photo; the retention sweep deletes old ones
but not while a job uses one, and the orphan sweep keeps every file a row names;
`/delete_me` deletes rows and files."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from sandbox.fal.images import photo
from services.bot.app.photo_validation import Upload
from services.bot.app.pricing import Pricing
from services.bot.privacy.retention import RetentionSweeper
from services.bot.privacy.service import PrivacyService
from services.bot.reference.intake import ReferenceIntake
from services.bot.reference.service import AlreadyRunning, ReferenceService
from services.kit import credits
from services.kit.db import create_pool
from services.kit.schema import BOT

UID = 4242


class _Bot:
    """What `ReferenceIntake.take` uses of aiogram's Bot: `download` of the sent file."""

    def __init__(self, data: bytes):
        self.data = data

    async def download(self, file_id: str) -> io.BytesIO:
        return io.BytesIO(self.data)


@pytest.fixture
async def stores(nats_url: str) -> AsyncIterator[tuple[ObjectStore, ObjectStore]]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    names = [f"scratch_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        yield (await js.create_object_store(names[0]), await js.create_object_store(names[1]))
    finally:
        for name in names:
            await js.delete_object_store(name)
        await nc.close()


async def _exists(store: ObjectStore, name: str) -> bool:
    try:
        await store.get(name)
    except ObjectNotFoundError:
        return False
    return True


async def _live(store: ObjectStore) -> list[str]:
    try:
        return [i.name for i in await store.list(ignore_deletes=True) if not i.deleted]
    except NotFoundError:  # nothing (left) in the bucket
        return []


async def _seed(db_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The user, a ready avatar, one still in training, and 10 credits."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("INSERT INTO users (id, first_name) VALUES ($1, 'Ref')", UID)
        ready, training = [
            await conn.fetchval(
                "INSERT INTO avatars (user_id, name, gender, trigger_word, status)"
                " VALUES ($1, 'A', 'female', 'tok', $2) RETURNING id",
                UID,
                status,
            )
            for status in ("completed", "training")
        ]
        async with conn.transaction():
            await credits.post(conn, user_id=UID, kind=credits.Kind.ADMIN_GRANT, amount=10,
                               key="test:grant")  # fmt: skip
    finally:
        await conn.close()
    return ready, training


async def test_stored_like_training_photos_and_erased_by_retention_and_delete_me(
    db_url: str, stores: tuple[ObjectStore, ObjectStore]
) -> None:
    photos, images = stores
    ready, training = await _seed(db_url)
    pool = await create_pool(db_url, BOT, max_size=2)
    admin = await asyncpg.connect(db_url)
    try:
        intake = ReferenceIntake(pool, photos)
        upload = Upload(file_id="f", file_unique_id="u", file_size=None)
        bot = _Bot(photo(3, (1600, 1200)))
        assert await intake.take(bot, UID, training, upload) is None  # type: ignore[arg-type]
        assert await pool.fetchval("SELECT count(*) FROM reference_photos") == 0
        assert await _live(photos) == []  # its file went again

        first = await intake.take(bot, UID, ready, upload)  # type: ignore[arg-type]
        assert first is not None
        assert (first.width, first.height) == (1024, 768)
        assert await _exists(photos, first.object_name)

        references = ReferenceService(pool, Pricing(reference=3))
        job = await references.create(UID, first.id, 1)
        assert job is not None
        assert (job.kind, job.reference_strength) == ("reference", pytest.approx(0.75))
        with pytest.raises(AlreadyRunning):  # a second press while it runs
            await references.create(UID, first.id, 3)
        assert await references.create(UID + 1, first.id, 1) is None  # not another user's

        sweeper = RetentionSweeper(pool, photos, images, retention_hours=24, interval=60)
        await admin.execute("UPDATE reference_photos SET created_at = now() - interval '2 days'")
        assert await sweeper.purge_references() == []  # its job still runs
        await admin.execute("UPDATE generations SET status = 'failed' WHERE id = $1", job.id)
        assert await sweeper.purge_references() == [first.object_name]
        assert not await _exists(photos, first.object_name)
        assert await admin.fetchval("SELECT reference_id FROM generations") is None  # job kept

        second = await intake.take(bot, UID, ready, upload)  # type: ignore[arg-type]
        assert second is not None
        stray = f"references/{UID}/{uuid.uuid4()}.jpg"
        await photos.put(stray, b"left by a crash before its row")
        assert await sweeper.sweep_orphans(grace=0) == 1
        assert await _exists(photos, second.object_name)
        assert not await _exists(photos, stray)

        erased = await PrivacyService(pool, photos, images).erase(UID)
        assert second.object_name in erased.photo_objects
        assert await admin.fetchval("SELECT count(*) FROM reference_photos") == 0
        assert not await _exists(photos, second.object_name)
    finally:
        await admin.close()
        await pool.close()
