"""Periodic clean-up: training photos after training, and files no row points to.

Training photos are only needed while FAL trains on them. Once an avatar is `completed` and
`training_finished_at` is older than the retention (BOT_PHOTO_RETENTION_HOURS, default 24),
its photo rows and files are deleted, unless the user chose "keep my photos". Avatars that
failed or were cancelled keep them: "Try again" trains on the same photos.

Reference photos (re-drawn with an avatar, `reference_photos`) are handled like training
photos: deleted, row and file, once older than the same retention, unless a job using one
is still pending or submitted (then the next sweep takes it).

Orphans are files in `aisha_photos` (named by neither `photos` nor `reference_photos`), or
generated images (`gen/...`) and LoRA copies
(`lora/...`, named by `avatars.lora_object_key` and its config beside it) in `aisha_images`,
that no row names: what a crash between a committed delete (avatar, `/delete_me`, gallery)
and the removal of its files leaves behind. Writers store the file before the row, so only
files older than `orphan_grace` count. Photo-to-prompt references (`refs/...`) never have a
row and are needed only until their description comes back (seconds): any older than
`orphan_grace` is left over (an answer lost, a crash) and goes too. Every replica may run
this: rows are claimed with `SKIP LOCKED`, and deleting a file twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from services.bot.generation.describer import REFERENCE_PREFIX
from services.kit import loras
from services.kit.waiting import pause

log = logging.getLogger(__name__)
IMAGE_PREFIX = "gen/"  # the status service's result images; other files are not ours to judge


class RetentionSweeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        photo_store: ObjectStore,
        image_store: ObjectStore,
        *,
        retention_hours: float,
        interval: float,
        orphan_grace: float = 3600.0,
        batch: int = 500,
    ):
        self.pool = pool
        self.photo_store = photo_store
        self.image_store = image_store
        self.retention_hours = retention_hours
        self.interval = interval
        self.orphan_grace = orphan_grace
        self.batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every `interval` seconds until `stop`; a failed sweep waits for the next.
        Orphans need a full listing of both buckets, so they are looked for once per
        `orphan_grace` (an hour) rather than every interval."""
        last_orphan_sweep = -float("inf")
        while not stop.is_set():
            orphans = time.monotonic() - last_orphan_sweep >= self.orphan_grace
            try:
                await self.sweep_once(orphans=orphans)
                if orphans:
                    last_orphan_sweep = time.monotonic()
            except (asyncpg.PostgresError, OSError, NatsError) as exc:
                log.warning("retention sweep failed: %s", exc)
            await pause(stop, self.interval)

    async def sweep_once(self, *, orphans: bool = True) -> tuple[int, int]:
        """(training and reference photos deleted, orphan files deleted)."""
        photos = 0
        for purge in (self.purge_training_photos, self.purge_references):
            while True:  # in batches, so one sweep catches up after a long outage
                names = await purge()
                photos += len(names)
                if len(names) < self.batch:
                    break
        removed = await self.sweep_orphans() if orphans else 0
        if photos or removed:
            log.info("retention: %d training photos, %d orphan files deleted", photos, removed)
        return photos, removed

    async def purge_training_photos(self) -> list[str]:
        """One batch: delete the rows (committed), then their files."""
        rows = await self.pool.fetch(
            "WITH due AS (SELECT p.id FROM photos p JOIN avatars a ON a.id = p.avatar_id "
            "WHERE a.status = 'completed' AND NOT a.keep_photos "
            "AND a.training_finished_at < now() - $1 * interval '1 hour' "
            "LIMIT $2 FOR UPDATE OF p SKIP LOCKED) "
            "DELETE FROM photos WHERE id IN (SELECT id FROM due) RETURNING object_name",
            self.retention_hours,
            self.batch,
        )
        names = [r["object_name"] for r in rows]
        await _delete(self.photo_store, names)
        return names

    async def purge_references(self) -> list[str]:
        """One batch of reference photos past the retention that no running job uses. No
        `FOR UPDATE` (nobody may UPDATE the table): two replicas deleting the same row
        delete it once, and each removes only the files its own DELETE returned."""
        rows = await self.pool.fetch(
            "DELETE FROM reference_photos WHERE id IN (SELECT r.id FROM reference_photos r "
            "WHERE r.created_at < now() - $1 * interval '1 hour' AND NOT EXISTS ("
            "SELECT 1 FROM generations g WHERE g.reference_id = r.id "
            "AND g.status IN ('pending', 'submitted')) LIMIT $2) RETURNING object_name",
            self.retention_hours,
            self.batch,
        )
        names = [r["object_name"] for r in rows]
        await _delete(self.photo_store, names)
        return names

    async def sweep_orphans(self, grace: float | None = None) -> int:
        """Delete files older than `grace` seconds that no row names; returns how many."""
        cutoff = datetime.now(UTC) - timedelta(
            seconds=self.orphan_grace if grace is None else grace
        )
        images = await _old_names(self.image_store, cutoff)
        removed = await self._sweep_loras([n for n in images if n.startswith(loras.PREFIX)])
        for store, tables, old in (
            (
                self.photo_store,
                ("photos", "reference_photos"),
                await _old_names(self.photo_store, cutoff),
            ),
            (
                self.image_store,
                ("generated_images",),
                [n for n in images if n.startswith(IMAGE_PREFIX)],
            ),
        ):
            if not old:
                continue
            named = " UNION ".join(
                f"SELECT object_name FROM {table} WHERE object_name = ANY($1::text[])"
                for table in tables
            )
            orphans = await self.pool.fetch(
                f"SELECT n FROM unnest($1::text[]) AS n EXCEPT ({named})", old
            )
            removed += await _delete(store, [r["n"] for r in orphans])
        # Photo-to-prompt references have no row: each is needed only until its description
        # comes back (seconds), so one older than the grace was left behind.
        removed += await _delete(
            self.image_store, [n for n in images if n.startswith(REFERENCE_PREFIX)]
        )
        return removed

    async def _sweep_loras(self, old: list[str]) -> int:
        """Our LoRA copies (older than the grace) whose avatar or attempt no longer names them."""
        if not old:
            return 0
        rows = await self.pool.fetch(
            "SELECT lora_object_key FROM avatars WHERE lora_object_key IS NOT NULL "
            "AND lora_object_key = ANY($1::text[])",
            [n for n in old if n.endswith(loras.WEIGHTS)],
        )
        kept = {name for r in rows for name in loras.object_names(r["lora_object_key"])}
        return await _delete(self.image_store, [n for n in old if n not in kept])


async def _old_names(store: ObjectStore, cutoff: datetime) -> list[str]:
    """Names of live objects written before `cutoff` (an unreadable time counts as new)."""
    try:
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:  # an empty bucket
        return []
    names = []
    for info in infos:
        try:
            written = datetime.fromisoformat(info.mtime or "")
        except ValueError:
            continue
        if info.name and not info.deleted and written.astimezone(UTC) < cutoff:
            names.append(info.name)
    return names


async def _delete(store: ObjectStore, names: list[str]) -> int:
    removed = 0
    for name in names:
        with contextlib.suppress(NatsError):
            await store.delete(name)
            removed += 1
    return removed
