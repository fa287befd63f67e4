"""Result images (and an animation's video): fetched from FAL's expiring URLs at once and
kept in the Object Store.

FAL's result URLs live about an hour, so the status service copies every image the moment
a generation completes, into `aisha_images` under `gen/<generation_id>/<position>.<ext>`.
Storing is idempotent (same name, same bytes), so a retry after a crash overwrites rather
than duplicates. The HTTP client honours HTTPS_PROXY / SSL_CERT_FILE exactly as fal-client
does (httpx `trust_env`), which is how the sandbox reaches the FAL emulator's CDN.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import nats.errors
from nats.js.object_store import ObjectStore
from PIL import Image, UnidentifiedImageError

from services.status.metrics import StatusMetrics

log = logging.getLogger(__name__)

_TYPES = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


class ResultsLost(Exception):
    """The results can never be fetched (expired, refused, not images): the job failed."""


class ResultsUnavailable(Exception):
    """Fetching failed in a way that may pass (network, 5xx): try the whole step again later."""


@dataclass(frozen=True, kw_only=True)
class StoredImage:
    position: int
    object_name: str
    width: int
    height: int
    content_type: str
    nsfw: bool


def result_urls(payload: Mapping[str, Any]) -> list[str]:
    """The image URLs of a FLUX result (`images`, in order), an upscaler's (one `image`) or
    an image-to-video model's (one `video`); ResultsLost when there are none."""
    images = payload.get("images")
    for single in ("image", "video"):
        if images is None and isinstance(payload.get(single), dict):
            images = [payload[single]]
    if not isinstance(images, list) or not images:
        raise ResultsLost("FAL result has no images")
    urls = [i.get("url") for i in images if isinstance(i, dict)]
    if len(urls) != len(images) or not all(isinstance(u, str) and u for u in urls):
        raise ResultsLost("FAL result has an image without a URL")
    return [str(u) for u in urls]


def nsfw_flags(payload: Mapping[str, Any], count: int) -> list[bool]:
    """`has_nsfw_concepts` per image; missing entries count as not flagged."""
    flags = payload.get("has_nsfw_concepts")
    values = list(flags) if isinstance(flags, list) else []
    return [bool(values[i]) if i < len(values) else False for i in range(count)]


def _mp4_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an MP4's first visual track (its `tkhd` box: 16.16 fixed-point
    sizes at the box's end), None when the bytes are not an MP4 with one."""
    if data[4:8] != b"ftyp":
        return None
    at = data.find(b"tkhd")
    while at != -1:
        version = data[at + 4] if at + 4 < len(data) else 0
        end = at + 4 + (96 if version == 1 else 84)
        if end <= len(data):
            width = int.from_bytes(data[end - 8 : end - 4], "big") >> 16
            height = int.from_bytes(data[end - 4 : end], "big") >> 16
            if width and height:
                return width, height
        at = data.find(b"tkhd", at + 4)
    return None


def _inspect(data: bytes) -> tuple[int, int, str, str]:
    """(width, height, content type, extension) read from the bytes themselves: a picture,
    or an MP4 video (an animation's result)."""
    video = _mp4_size(data)
    if video is not None:
        return video[0], video[1], "video/mp4", "mp4"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            kind = image.format or ""
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise ResultsLost("FAL result is not an image") from None
    content_type, extension = _TYPES.get(kind, ("application/octet-stream", "bin"))
    return width, height, content_type, extension


class ImageStore:
    """Copies a generation's result images into the Object Store."""

    def __init__(
        self,
        bucket: ObjectStore,
        metrics: StatusMetrics,
        *,
        attempts: int = 3,
        timeout_seconds: float = 30.0,
        backoff_seconds: float = 0.5,
    ):
        self._bucket = bucket
        self._metrics = metrics
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._http = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=True)

    async def close(self) -> None:
        await self._http.aclose()

    async def save_all(self, generation_id: str, payload: Mapping[str, Any]) -> list[StoredImage]:
        """Fetch every image (concurrently) and store it; all or nothing."""
        urls = result_urls(payload)
        flags = nsfw_flags(payload, len(urls))
        fetched: Sequence[bytes | BaseException] = await asyncio.gather(
            *(self._fetch(url) for url in urls), return_exceptions=True
        )
        for outcome in fetched:  # a lost image decides over a transient failure elsewhere
            if isinstance(outcome, ResultsLost):
                raise outcome
        for outcome in fetched:
            if isinstance(outcome, BaseException):
                raise outcome
        stored = []
        for position, data in enumerate(fetched):
            assert isinstance(data, bytes)
            width, height, content_type, extension = _inspect(data)
            name = f"gen/{generation_id}/{position}.{extension}"
            try:
                await self._bucket.put(name, data)
            except (nats.errors.Error, TimeoutError) as exc:
                raise ResultsUnavailable(f"object store: {exc}") from exc
            stored.append(
                StoredImage(
                    position=position,
                    object_name=name,
                    width=width,
                    height=height,
                    content_type=content_type,
                    nsfw=flags[position],
                )
            )
        return stored

    async def copy(self, url: str, name: str) -> int:
        """Fetch one file FAL serves (a LoRA, its config) and store it as `name`; returns
        its size. ResultsLost when FAL no longer has it, ResultsUnavailable when that may
        pass. The whole file is held in memory once (a FLUX LoRA is tens of MB)."""
        data = await self._fetch(url)
        try:
            await self._bucket.put(name, data)
        except (nats.errors.Error, TimeoutError) as exc:
            raise ResultsUnavailable(f"object store: {exc}") from exc
        return len(data)

    async def _fetch(self, url: str) -> bytes:
        """GET with bounded retries; 4xx other than the transient ones means gone for good."""
        problem = ""
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._http.get(url)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    self._metrics.image_fetches.labels("ok").inc()
                    return response.content
                if 400 <= status < 500 and status not in _TRANSIENT_STATUS:
                    self._metrics.image_fetches.labels("expired").inc()
                    raise ResultsLost("results expired")
                problem = f"HTTP {status}"
            self._metrics.image_fetches.labels("error").inc()
            if attempt < self._attempts:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        log.warning("result image unavailable after %d attempts: %s", self._attempts, problem)
        raise ResultsUnavailable(problem)
