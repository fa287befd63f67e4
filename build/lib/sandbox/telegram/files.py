"""In-memory file storage: file ids, photo sizes, documents."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import secrets
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["FileStore", "NotAnImage", "StoredFile"]

THUMB_SIDES = (90, 320, 800)


class NotAnImage(ValueError):
    """The bytes are not an image Pillow can open."""


@dataclass(slots=True)
class StoredFile:
    """One stored file and its Bot API identity."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    mime_type: str
    file_name: str | None = None
    width: int = 0
    height: int = 0

    def as_file(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }

    def as_photo_size(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "width": self.width,
            "height": self.height,
            "file_size": len(self.data),
        }

    def as_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "mime_type": self.mime_type,
            "file_size": len(self.data),
        }
        if self.file_name:
            doc["file_name"] = self.file_name
        return doc


@dataclass(slots=True)
class FileStore:
    """Files by file_id; a photo's sizes are kept together so any of them re-sends it."""

    files: dict[str, StoredFile] = field(default_factory=dict)
    by_path: dict[str, StoredFile] = field(default_factory=dict)
    photo_sets: dict[str, list[StoredFile]] = field(default_factory=dict)
    _counter: int = 0

    def _put(
        self,
        data: bytes,
        folder: str,
        mime_type: str,
        file_name: str | None = None,
        size: tuple[int, int] = (0, 0),
        prefix: str = "BQAC",
    ) -> StoredFile:
        self._counter += 1
        ext = mimetypes.guess_extension(mime_type) or ".bin"
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=prefix + secrets.token_urlsafe(24),
            file_unique_id="AQAD" + hashlib.sha256(data).hexdigest()[:12],
            data=data,
            file_path=f"{folder}/file_{self._counter}{ext}",
            mime_type=mime_type,
            file_name=file_name,
            width=size[0],
            height=size[1],
        )
        self.files[stored.file_id] = stored
        self.by_path[stored.file_path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self.files.get(file_id)

    def add_document(self, data: bytes, file_name: str | None, mime_type: str | None) -> StoredFile:
        guessed = mimetypes.guess_type(file_name or "")[0]
        mime = mime_type if mime_type and mime_type != "application/octet-stream" else guessed
        return self._put(data, "documents", mime or "application/octet-stream", file_name)

    def add_photo(self, data: bytes) -> list[dict[str, Any]]:
        """Store an image as several PhotoSizes, the original being the largest."""
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                image = ImageOps.exif_transpose(img) or img
                fmt = (img.format or "JPEG").upper()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise NotAnImage(str(exc)) from exc
        sizes: list[StoredFile] = []
        width, height = image.size
        for side in THUMB_SIDES:
            if max(width, height) <= side:
                break
            thumb = image.convert("RGB")
            thumb.thumbnail((side, side))
            buf = io.BytesIO()
            thumb.save(buf, "JPEG", quality=80)
            sizes.append(
                self._put(buf.getvalue(), "photos", "image/jpeg", None, thumb.size, "AgAC")
            )
        mime = Image.MIME.get(fmt, "image/jpeg")
        sizes.append(self._put(data, "photos", mime, None, (width, height), "AgAC"))
        for stored in sizes:
            self.photo_sets[stored.file_id] = sizes
        return [s.as_photo_size() for s in sizes]

    def photo_by_id(self, file_id: str) -> list[dict[str, Any]] | None:
        sizes = self.photo_sets.get(file_id)
        return None if sizes is None else [s.as_photo_size() for s in sizes]
