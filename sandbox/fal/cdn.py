"""Storage hosts: `rest.fal.ai` CDN tokens and `v3.fal.media` uploads and downloads."""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from sandbox.fal.context import Context, Handler, key_error
from sandbox.fal.storage import CDN_HOST

_Func = Callable[[Context, web.Request, bytes], Awaitable[web.StreamResponse]]

_MULTIPART = re.compile(r"^/files/(.+)/multipart/([^/]+)/(\d+|complete)$")
TOKEN_TTL_SECONDS = 3600.0


def route(
    ctx: Context, host: str, method: str, path: str
) -> tuple[Handler, str | None, str | None]:
    """The handler for a storage request, with its fault-operation name."""
    if host == "rest.fal.ai" and method == "POST":
        if path == "/storage/auth/token":
            return _bind(ctx, token), "token", None
        if path == "/storage/upload/initiate":
            return _bind(ctx, initiate), "upload", None
    if host == CDN_HOST or host.endswith(".fal.media"):
        if method == "POST" and path == "/files/upload":
            return _bind(ctx, upload), "upload", None
        if method == "POST" and path == "/files/upload/multipart":
            return _bind(ctx, multipart_create), "upload", None
        if _MULTIPART.match(path) and method in ("PUT", "POST"):
            return _bind(ctx, multipart_step), "upload", None
        if method == "PUT" and path.startswith("/_gcs/"):
            return _bind(ctx, signed_put), "upload", None
        if method in ("GET", "HEAD") and path.startswith("/files/"):
            return _bind(ctx, download), "file", None
    return _not_found, None, None


def _bind(ctx: Context, func: _Func) -> Handler:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return await func(ctx, request, body)

    return handle


async def _not_found(request: web.Request, body: bytes) -> web.StreamResponse:
    return web.json_response({"detail": f"Not found: {request.host}{request.path}"}, status=404)


def _bearer_ok(ctx: Context, request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and ctx.storage.token_valid(token)


def _unauthorized() -> web.Response:
    return web.json_response({"detail": "Invalid or expired CDN token"}, status=401)


def _file_name(request: web.Request) -> str:
    name = request.headers.get("X-Fal-File-Name")
    if name:
        return name
    content_type = request.headers.get("Content-Type", "application/octet-stream").split(";")[0]
    return "upload" + (mimetypes.guess_extension(content_type) or ".bin")


def requested_lifetime(request: web.Request) -> float | None:
    """The lifetime a request asks for its files (seconds), None when it asks for none.

    fal-client sends `X-Fal-Object-Lifecycle` on CDN uploads and
    `X-Fal-Object-Lifecycle-Preference` elsewhere (both on its storage path); FAL documents
    the latter on queue submits for the request's outputs."""
    for header in ("X-Fal-Object-Lifecycle", "X-Fal-Object-Lifecycle-Preference"):
        raw = request.headers.get(header)
        if not raw:
            continue
        try:
            seconds = json.loads(raw).get("expiration_duration_seconds")
        except (ValueError, AttributeError):
            return None
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
            return float(seconds)
    return None


def _ttl(ctx: Context, request: web.Request) -> float:
    return ctx.storage.lifetime(requested_lifetime(request))


async def token(ctx: Context, request: web.Request, body: bytes) -> web.StreamResponse:
    if (denied := key_error(ctx, request)) is not None:
        return denied
    value, expires = ctx.storage.issue_token(TOKEN_TTL_SECONDS)
    return web.json_response(
        {
            "token": value,
            "token_type": "Bearer",
            "base_url": f"https://{CDN_HOST}",
            "expires_at": dt.datetime.fromtimestamp(expires, dt.UTC).isoformat(),
        }
    )


async def upload(ctx: Context, request: web.Request, body: bytes) -> web.StreamResponse:
    if not _bearer_ok(ctx, request):
        return _unauthorized()
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    stored = ctx.storage.put(body, content_type, _file_name(request), ttl=_ttl(ctx, request))
    return web.json_response({"access_url": stored.url, **stored.describe()})


async def multipart_create(ctx: Context, request: web.Request, body: bytes) -> web.StreamResponse:
    if not _bearer_ok(ctx, request):
        return _unauthorized()
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    key, upload_id = ctx.storage.multipart_create(content_type, _file_name(request))
    return web.json_response(
        {"access_url": f"https://{CDN_HOST}/files/{key}", "uploadId": upload_id}
    )


async def multipart_step(ctx: Context, request: web.Request, body: bytes) -> web.StreamResponse:
    if not _bearer_ok(ctx, request):
        return _unauthorized()
    match = _MULTIPART.match(request.path)
    assert match is not None
    key, upload_id, step = match.groups()
    if step == "complete":
        stored = ctx.storage.multipart_complete(key, upload_id)
        if stored is None:
            return web.json_response({"detail": "Unknown upload"}, status=404)
        return web.json_response({"access_url": stored.url, **stored.describe()})
    etag = ctx.storage.multipart_put(key, upload_id, int(step), body)
    if etag is None:
        return web.json_response({"detail": "Unknown upload"}, status=404)
    return web.Response(status=200, headers={"ETag": etag})


async def initiate(ctx: Context, request: web.Request, body: bytes) -> web.StreamResponse:
    """The fallback (`repository="fal"`) upload: returns a signed PUT URL and the file URL."""
    if (denied := key_error(ctx, request)) is not None:
        return denied
    try:
        meta = json.loads(body or b"{}")
    except ValueError:
        meta = {}
    key = ctx.storage.new_key(str(meta.get("file_name") or "upload.bin"))
    return web.json_response(
        {
            "upload_url": f"https://{CDN_HOST}/_gcs/{key}",
            "file_url": f"https://{CDN_HOST}/files/{key}",
        }
    )


async def signed_put(ctx: Context, request: web.Request, body: bytes) -> web.StreamResponse:
    key = request.path[len("/_gcs/") :]
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    ctx.storage.put(body, content_type, key.rpartition("_")[2] or "upload.bin", key=key)
    return web.Response(status=200)


async def download(ctx: Context, request: web.Request, body: bytes) -> web.StreamResponse:
    stored = ctx.storage.get(request.path[len("/files/") :])
    if stored is None:
        return web.json_response({"detail": "File not found"}, status=404)
    if stored.expires_at is not None and stored.expires_at <= time.time():
        status = stored.expired_status
        return web.json_response(
            {"detail": "File expired" if status == 404 else "Access denied"}, status=status
        )
    return web.Response(
        body=stored.data,
        content_type=stored.content_type.split(";")[0],
        headers={"Content-Disposition": f'inline; filename="{stored.file_name}"'},
    )
