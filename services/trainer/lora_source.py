"""A URL FAL can fetch an avatar's LoRA from, for a generation about to be submitted.

FAL keeps a training's LoRA `lifetimes.TRAINING_OUTPUT_SECONDS` (we ask it to) and then
deletes it; the status service keeps our own copy in the Object Store (`kit.loras`). In
order: FAL's own URL while it is inside the lifetime we asked for (with an hour to spare)
and its CDN still serves it (a HEAD: FAL may delete earlier than asked); else our last
re-upload while it has `REUPLOAD_MARGIN_SECONDS` left; else our copy uploaded again with a
`REUPLOAD_SECONDS` lifetime, remembered in `avatars.lora_upload_url/_expires_at` (columns,
not a memory cache: they survive a restart and every replica shares them, so a ~100 MB
file is uploaded once per lifetime, not once per generation and replica). An avatar
without a copy (trained before copies were kept, or its copy failed) has only FAL's URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import nats.errors
from nats.js.errors import ObjectNotFoundError
from nats.js.object_store import ObjectStore

from contracts import utcnow
from services.trainer import lifetimes
from services.trainer.fal_gateway import FalGateway, FalOutcomeUnknown, FalRetryable

log = logging.getLogger(__name__)

AVATAR_COLUMNS = (
    "diffusers_lora_file_url, training_finished_at, lora_object_key, lora_upload_url,"
    " lora_upload_expires_at"
)
_REMEMBER = """
UPDATE avatars SET lora_upload_url = $2, lora_upload_expires_at = $3
WHERE id = $1 AND lora_object_key = $4
"""


@dataclass
class LoraSource:
    pool: asyncpg.Pool
    fal: FalGateway
    store: ObjectStore

    async def url(self, avatar_id: object, avatar: asyncpg.Record) -> str:
        """`avatar` holds `AVATAR_COLUMNS`. FalRetryable when our copy cannot be uploaded
        now (never FalOutcomeUnknown: an upload creates no job to reconcile)."""
        now = utcnow()
        margin = timedelta(seconds=lifetimes.REUPLOAD_MARGIN_SECONDS)
        fal_url = str(avatar["diffusers_lora_file_url"])
        finished = avatar["training_finished_at"]
        lifetime = timedelta(seconds=lifetimes.TRAINING_OUTPUT_SECONDS)
        if (finished is None or finished + lifetime - margin > now) and await self.fal.alive(
            fal_url
        ):
            return fal_url
        cached, expires = avatar["lora_upload_url"], avatar["lora_upload_expires_at"]
        if cached and expires is not None and expires - margin > now:
            return str(cached)
        key = avatar["lora_object_key"]
        if not key:
            log.warning("FAL's LoRA looks gone and no copy of ours exists", extra={"url": fal_url})
            return fal_url  # FAL refuses it (422), and the user is told the generation failed
        return await self._reupload(avatar_id, key)

    async def _reupload(self, avatar_id: object, key: str) -> str:
        try:
            found = await self.store.get(key)
        except ObjectNotFoundError:
            raise FalRetryable(f"our copy of the LoRA ({key}) is missing") from None
        except (nats.errors.Error, TimeoutError) as exc:
            raise FalRetryable(f"object store: {exc}") from exc
        try:
            url = await self.fal.upload(
                found.data or b"",
                "application/octet-stream",
                "lora.safetensors",
                lifetime_seconds=lifetimes.REUPLOAD_SECONDS,
            )
        except FalOutcomeUnknown as exc:
            raise FalRetryable(str(exc)) from exc
        expires = utcnow() + timedelta(seconds=lifetimes.REUPLOAD_SECONDS)
        await self.pool.execute(_REMEMBER, avatar_id, url, expires, key)
        log.info("LoRA re-uploaded from our copy", extra={"avatar_id": str(avatar_id)})
        return url
