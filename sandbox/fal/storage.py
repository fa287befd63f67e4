"""In-memory CDN: uploaded archives, trained LoRAs and generated images, with expiry.

Every file gets a lifetime: the one its upload or its request asked for
(`X-Fal-Object-Lifecycle[-Preference]: {"expiration_duration_seconds": N}`, documented), or
a default when none was asked for (assumed, see README). `lifetime_scale` multiplies every
lifetime, so tests can watch a "7 days" file die in seconds. An expired file is really
deleted: its bytes are dropped and its URL answers 404 (or the status a fault chose).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

CDN_HOST = "v3.fal.media"
_ANIMALS = ("rabbit", "koala", "panda", "zebra", "tiger", "lion", "monkey", "elephant")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(slots=True)
class StoredFile:
    """One object on the emulated CDN."""

    key: str
    data: bytes
    content_type: str
    file_name: str
    created_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    expired_status: int = 404

    @property
    def url(self) -> str:
        return f"https://{CDN_HOST}/files/{self.key}"

    def describe(self) -> dict[str, object]:
        """The FAL `File` object shape."""
        return {
            "url": self.url,
            "content_type": self.content_type,
            "file_name": self.file_name,
            "file_size": len(self.data),
        }


@dataclass(slots=True)
class _Multipart:
    key: str
    content_type: str
    file_name: str
    parts: dict[int, bytes] = field(default_factory=dict)


class Storage:
    """Objects keyed by `<animal>/<token>_<name>`, served at `https://v3.fal.media/files/<key>`."""

    #: Assumed: an upload that asks for no lifetime is kept 7 days (FAL's older FAQ: "at
    #: least 7 days"); FAL's current docs give no default.
    DEFAULT_UPLOAD_LIFETIME = 7 * 86400.0

    def __init__(self, lifetime_scale: float = 1.0) -> None:
        self.lifetime_scale = lifetime_scale
        self._files: dict[str, StoredFile] = {}
        self._multipart: dict[str, _Multipart] = {}
        self._tokens: dict[str, float] = {}

    # -- CDN tokens ----------------------------------------------------------------------
    def issue_token(self, ttl: float = 3600.0) -> tuple[str, float]:
        token = secrets.token_urlsafe(24)
        expires = time.time() + ttl
        self._tokens[token] = expires
        return token, expires

    def token_valid(self, token: str) -> bool:
        expires = self._tokens.get(token)
        return expires is not None and expires > time.time()

    # -- objects ---------------------------------------------------------------------------
    def new_key(self, file_name: str) -> str:
        safe = _SAFE_NAME.sub("_", file_name).strip("_") or "file.bin"
        animal = _ANIMALS[secrets.randbelow(len(_ANIMALS))]
        return f"{animal}/{secrets.token_urlsafe(12)}_{safe}"

    def put(
        self,
        data: bytes,
        content_type: str,
        file_name: str,
        *,
        ttl: float | None = None,
        expired_status: int = 404,
        key: str | None = None,
    ) -> StoredFile:
        stored = StoredFile(
            key=key or self.new_key(file_name),
            data=data,
            content_type=content_type,
            file_name=file_name,
            expires_at=None if ttl is None else time.time() + ttl,
            expired_status=expired_status,
        )
        self._files[stored.key] = stored
        return stored

    def lifetime(self, requested: float | None) -> float:
        """A file's lifetime in real seconds: the one requested (or the default), scaled."""
        nominal = self.DEFAULT_UPLOAD_LIFETIME if requested is None else requested
        return nominal * self.lifetime_scale

    def get(self, key: str) -> StoredFile | None:
        """The object (an expired one is deleted on the spot: a tombstone without bytes)."""
        found = self._files.get(unquote(key))
        if found is not None and found.expires_at is not None and found.expires_at <= time.time():
            found.data = b""
        return found

    def alive(self, url: str) -> bool:
        return self.by_url(url) is not None

    def by_url(self, url: str) -> StoredFile | None:
        """The stored object behind an emulator CDN URL (None for any other URL)."""
        parts = urlsplit(url)
        if parts.hostname != CDN_HOST or not parts.path.startswith("/files/"):
            return None
        found = self.get(parts.path[len("/files/") :])
        if found is None or (found.expires_at is not None and found.expires_at <= time.time()):
            return None
        return found

    def expire(self, key: str, status: int = 404) -> None:
        """Make an object answer `status` from now on."""
        stored = self._files[key]
        stored.expires_at = time.time()
        stored.expired_status = status

    # -- multipart (fal-client uses it above 100 MiB) -------------------------------------
    def multipart_create(self, content_type: str, file_name: str) -> tuple[str, str]:
        key = self.new_key(file_name)
        upload_id = secrets.token_hex(12)
        self._multipart[upload_id] = _Multipart(key, content_type, file_name)
        return key, upload_id

    def multipart_put(self, key: str, upload_id: str, number: int, data: bytes) -> str | None:
        upload = self._multipart.get(upload_id)
        if upload is None or upload.key != unquote(key):
            return None
        upload.parts[number] = data
        return f'"{secrets.token_hex(16)}"'

    def multipart_complete(self, key: str, upload_id: str) -> StoredFile | None:
        upload = self._multipart.pop(upload_id, None)
        if upload is None or upload.key != unquote(key):
            return None
        data = b"".join(upload.parts[n] for n in sorted(upload.parts))
        return self.put(data, upload.content_type, upload.file_name, key=upload.key)
