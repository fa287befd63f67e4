"""Bot API methods for photos, documents, videos, media groups and file downloads."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sandbox.telegram.api import Call, method
from sandbox.telegram.files import NotAnImage, StoredFile
from sandbox.telegram.rules import bad_request
from sandbox.telegram.state import Json

__all__: list[str] = []

MAX_PHOTO = 10 * 1024 * 1024
MAX_DOWNLOAD = 20 * 1024 * 1024
WRONG_FILE = "wrong file identifier/HTTP URL specified"


async def _source(call: Call, ref: Any, field_name: str) -> tuple[bytes, str | None, str | None]:
    """Bytes, file name and MIME type of an upload or URL; file_ids are handled by callers."""
    upload = call.params.upload(ref, field_name)
    if upload is not None:
        return upload.data, upload.filename, upload.content_type
    url = str(ref)
    try:
        data, mime = await call.fetch(url)
    except (OSError, ValueError, TimeoutError) as exc:
        raise bad_request(f"failed to get HTTP URL content: {exc}", "file_invalid") from exc
    name = urlsplit(url).path.rsplit("/", 1)[-1] or None
    return data, name, mime


def _is_url(ref: Any) -> bool:
    return isinstance(ref, str) and ref.startswith(("http://", "https://"))


async def photo_sizes(call: Call, ref: Any, field_name: str) -> list[Json]:
    """Resolve a photo argument to PhotoSizes (upload, URL or file_id)."""
    files = call.world.files
    if call.params.upload(ref, field_name) is None and not _is_url(ref):
        if not isinstance(ref, str) or not ref:
            raise bad_request(f"there is no {field_name} in the request", "missing_parameter")
        sizes = files.photo_by_id(ref)
        if sizes is None:
            kind = "can't use file of type Document as Photo" if files.get(ref) else WRONG_FILE
            raise bad_request(kind, "file_invalid")
        return sizes
    data, _, _ = await _source(call, ref, field_name)
    if len(data) > MAX_PHOTO:
        raise bad_request("PHOTO_INVALID_DIMENSIONS", "file_too_big")
    try:
        return files.add_photo(data)
    except NotAnImage:
        raise bad_request("IMAGE_PROCESS_FAILED", "file_invalid") from None


async def document(call: Call, ref: Any, field_name: str) -> StoredFile:
    """Resolve a document argument to a stored file (upload, URL or file_id)."""
    files = call.world.files
    if call.params.upload(ref, field_name) is None and not _is_url(ref):
        stored = files.get(ref) if isinstance(ref, str) else None
        if stored is None:
            raise bad_request(WRONG_FILE, "file_invalid")
        if ref in files.photo_sets:
            raise bad_request("can't use file of type Photo as Document", "file_invalid")
        return stored
    data, name, mime = await _source(call, ref, field_name)
    return files.add_document(data, name, mime)


@method("sendPhoto")
async def send_photo(call: Call) -> Json:
    chat = call.target_chat()
    params = call.params
    message = call.new_message(chat)
    call.caption_into(message, params.values.get("caption"), params.get_str("parse_mode"))
    markup = call.inline_markup()
    message["photo"] = await photo_sizes(call, params.values.get("photo"), "photo")
    if markup:
        message["reply_markup"] = markup
    return call.store(message)


@method("sendDocument")
async def send_document(call: Call) -> Json:
    chat = call.target_chat()
    params = call.params
    message = call.new_message(chat)
    call.caption_into(message, params.values.get("caption"), params.get_str("parse_mode"))
    markup = call.inline_markup()
    stored = await document(call, params.values.get("document"), "document")
    message["document"] = stored.as_document()
    if markup:
        message["reply_markup"] = markup
    return call.store(message)


MAX_UPLOAD = 50 * 1024 * 1024


@method("sendVideo")
async def send_video(call: Call) -> Json:
    """A video (upload, URL or a stored non-photo file_id, up to 50 MB uploaded); `width`,
    `height` and `duration` are echoed as given (Telegram reads them from the file)."""
    chat = call.target_chat()
    params = call.params
    message = call.new_message(chat)
    call.caption_into(message, params.values.get("caption"), params.get_str("parse_mode"))
    markup = call.inline_markup()
    stored = await document(call, params.values.get("video"), "video")
    if len(stored.data) > MAX_UPLOAD:
        raise bad_request("file is too big", "file_too_big")
    video = stored.as_document()
    video["mime_type"] = stored.mime_type or "video/mp4"
    for field in ("width", "height", "duration"):
        video[field] = int(params.values.get(field) or 0)
    message["video"] = video
    if markup:
        message["reply_markup"] = markup
    return call.store(message)


@method("sendMediaGroup")
async def send_media_group(call: Call) -> list[Json]:
    chat = call.target_chat()
    media = call.params.get_json("media")
    if not isinstance(media, list) or not 2 <= len(media) <= 10:
        raise bad_request("wrong number of media in the group: must be 2-10", "media_group_size")
    kinds = {item.get("type") if isinstance(item, dict) else None for item in media}
    if not kinds <= {"photo", "video", "document", "audio"}:
        raise bad_request("unsupported media type in the group", "media_group_invalid")
    if len(kinds) > 1 and kinds & {"document", "audio"}:
        raise bad_request("documents can't be mixed with other media", "media_group_invalid")
    group_id = str(secrets.randbits(63))
    messages: list[Json] = []
    for item in media:
        message = call.new_message(chat)
        message["media_group_id"] = group_id
        call.caption_into(message, item.get("caption"), item.get("parse_mode"))
        if item["type"] == "photo":
            message["photo"] = await photo_sizes(call, item.get("media"), "media")
        else:
            message["document"] = (await document(call, item.get("media"), "media")).as_document()
        messages.append(message)
    call.world.rate.acquire(chat["id"])
    return [call.store(message, count_rate=False) for message in messages]


@method("getFile")
async def get_file(call: Call) -> Json:
    stored = call.world.files.get(str(call.params.required("file_id")))
    if stored is None:
        raise bad_request("invalid file_id", "file_invalid")
    if len(stored.data) > MAX_DOWNLOAD:
        raise bad_request("file is too big", "file_too_big")
    return stored.as_file()
