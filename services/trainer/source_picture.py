"""What the jobs that start from a stored picture (an upscale, an animation, a reference
photo) share before FAL is called: their row must be this user's and not cancelled, the
daily spend limit must allow the job, and the stored picture is uploaded to FAL's storage
(FAL fetches it when the job starts)."""

from __future__ import annotations

import asyncpg
import nats.errors
from nats.js.errors import ObjectNotFoundError
from nats.js.object_store import ObjectStore

from contracts import FailureReason, GenerationRequested
from services.trainer import lifetimes
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway, FalRetryable
from services.trainer.generation_plan import Refused
from services.trainer.spend import spent_last_day

#: A picture FAL fetches when the job starts; a job not started in 6 h is failed by FAL.
SOURCE_SECONDS = 6 * lifetimes.HOUR


async def check_row(pool: asyncpg.Pool, event: GenerationRequested) -> None:
    """Refused when the row is not this user's (INTERNAL) or was cancelled (CANCELLED)."""
    row = await pool.fetchrow(
        "SELECT user_id, status FROM generations WHERE id = $1", event.generation_id
    )
    if row is None or row["user_id"] != event.user_id:
        raise Refused(FailureReason.INTERNAL, "no such generation for this user")
    if row["status"] == "cancelled":
        raise Refused(FailureReason.CANCELLED, "cancelled before submission")


async def check_spend(pool: asyncpg.Pool, config: TrainerConfig) -> None:
    spent = await spent_last_day(pool)
    if spent >= config.daily_spend_limit_usd:
        raise Refused(FailureReason.SPEND_LIMIT, f"daily spend {spent:.2f} reached")


async def upload(images: ObjectStore | None, fal: FalGateway, object_name: str, what: str) -> str:
    """FAL's URL of our stored picture; Refused(INTERNAL) when it is gone (deleted or erased
    meanwhile; `what` names it in the detail), FalRetryable when the object store may answer
    later."""
    if images is None:
        raise Refused(FailureReason.INTERNAL, "no object store")
    try:
        stored = await images.get(object_name)
    except ObjectNotFoundError:
        raise Refused(FailureReason.INTERNAL, f"the {what} is gone") from None
    except (nats.errors.Error, TimeoutError) as exc:
        raise FalRetryable(f"object store: {exc}") from exc
    name = object_name.rsplit("/", 1)[-1]
    content_type = "image/png" if name.endswith(".png") else "image/jpeg"
    return await fal.upload(stored.data or b"", content_type, name, lifetime_seconds=SOURCE_SECONDS)
