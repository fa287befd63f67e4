"""Crash-safe persistence of an emulator's state: a JSON snapshot plus blob files.

Why a snapshot and not write-through: the emulators keep their worlds as plain Python objects
changed from dozens of places; taking a picture of the whole world (small in a sandbox) on a
timer and on demand keeps every one of those places untouched. Crash safety comes from the
order of writes: new blobs first, then the snapshot (written to a temporary file, fsynced and
renamed over the old one), and only then are blobs no snapshot refers to any more removed.
A crash at any point leaves the previous or the new snapshot, each with all of its blobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("sandbox.snapshot")

Document = dict[str, Any]
#: What a save writes: the JSON document and the blobs it refers to (name -> bytes).
Picture = tuple[Document, Mapping[str, bytes]]
SNAPSHOT = "snapshot.json"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees either the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Snapshots:
    """Saves `take()`'s picture under `directory` every `interval` seconds when it changed,
    on `save()` and on `close()`; `load()` reads the last one back.

    Taking a picture costs time in proportion to the world (≈ 0.1 s for 2000 messages), so
    with a `version()` that moves on every change the timer takes one only when it moved,
    and compares whole pictures only every `full_every` seconds (for a change made without
    moving the version)."""

    def __init__(
        self,
        directory: Path,
        take: Callable[[], Picture],
        *,
        interval: float = 0.5,
        version: Callable[[], int] | None = None,
        full_every: float = 10.0,
    ) -> None:
        self.directory = directory
        self.blob_dir = directory / "blobs"
        self._take = take
        self._interval = interval
        self._version = version
        self._saved_version: int | None = None
        self._full_every = max(1, round(full_every / interval))
        self._lock = asyncio.Lock()
        self._last_text: str | None = None
        self._written: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    # -- reading ------------------------------------------------------------------------------
    def load(self) -> Document | None:
        """The last saved document (None on a first run)."""
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        path = self.directory / SNAPSHOT
        if not path.exists():
            return None
        text = path.read_text(encoding="utf-8")
        self._last_text = text
        self._written = {p.name for p in self.blob_dir.iterdir() if not p.name.startswith(".")}
        document: Document = json.loads(text)
        return document

    def blob(self, name: str) -> bytes | None:
        path = self.blob_dir / name
        return path.read_bytes() if path.is_file() else None

    # -- writing ------------------------------------------------------------------------------
    def start(self) -> None:
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._every_interval(), name=f"snapshot:{self.directory}")

    async def close(self) -> None:
        """Stop the timer and save a last time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.save()

    async def save(self, *, full: bool = True) -> None:
        """Write the current picture if it differs from the last one written (`full=False`:
        and only if the version moved since)."""
        async with self._lock:
            version = None if self._version is None else self._version()
            if not full and version is not None and version == self._saved_version:
                return
            document, blobs = self._take()
            text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
            if text == self._last_text and self._written == set(blobs):
                self._saved_version = version
                return
            fresh = {name: data for name, data in blobs.items() if name not in self._written}
            stale = self._written - set(blobs)
            await asyncio.to_thread(self._write, text, fresh, stale)
            self._last_text = text
            self._written = set(blobs)
            self._saved_version = version

    def _write(self, text: str, fresh: Mapping[str, bytes], stale: set[str]) -> None:
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        for name, data in fresh.items():
            write_atomically(self.blob_dir / name, data)
        write_atomically(self.directory / SNAPSHOT, text.encode())
        _fsync_dir(self.directory)
        for name in stale:
            (self.blob_dir / name).unlink(missing_ok=True)

    async def _every_interval(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(self._interval)
            tick += 1
            try:
                await self.save(full=tick % self._full_every == 0)
            except OSError as exc:  # a full disk must not stop the emulator; retried next tick
                log.warning("could not save %s: %s", self.directory, exc)
