"""The control API: JSON over HTTP under /_emu/ for the web chat page and for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.telegram.actions import ActionError
from sandbox.telegram.rules import Fault

if TYPE_CHECKING:
    from sandbox.telegram.server import TelegramEmulator

__all__ = ["control_routes"]

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
KEEPALIVE = 15.0


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _ok(value: Any) -> web.Response:
    return web.json_response(value, dumps=_dumps)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "invalid JSON"}') from None
    return body if isinstance(body, dict) else {}


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None


def _guard(handler: Route) -> Route:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ActionError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    return wrapped


def control_routes(emu: TelegramEmulator) -> list[web.RouteDef]:
    """Routes of the control API, bound to one emulator."""
    world, users, payments = emu.world, emu.users, emu.payments

    async def bot_info(_: web.Request) -> web.StreamResponse:
        return _ok({"bot": emu.bot_user, "limits": emu.limits_json(), "version": world.version})

    async def list_users(_: web.Request) -> web.StreamResponse:
        return _ok(list(world.users.values()))

    async def create_user(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        user = users.create_user(
            str(body.get("first_name") or "User"),
            body.get("username") or None,
            body.get("language_code") or "en",
            body.get("id"),
            body.get("last_name") or None,
        )
        return _ok(user)

    async def send_text(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return _ok(users.send_text(_int(request, "user_id"), str(body.get("text", ""))))

    async def send_photos(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        images = [f.file.read() for f in form.getall("photo", []) if isinstance(f, web.FileField)]
        caption = form.get("caption")
        text = caption if isinstance(caption, str) and caption else None
        return _ok(users.send_album(_int(request, "user_id"), images, text))

    async def send_document(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        part = form.get("document")
        if not isinstance(part, web.FileField):
            raise ActionError("a 'document' file part is required")
        caption = form.get("caption")
        return _ok(
            users.send_document(
                _int(request, "user_id"),
                part.file.read(),
                part.filename,
                part.content_type,
                caption if isinstance(caption, str) and caption else None,
            )
        )

    async def press(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        query_id = users.press_button(
            _int(request, "user_id"), int(body["message_id"]), body.get("data"), body.get("text")
        )
        return _ok({"callback_query_id": query_id})

    async def block(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        users.set_blocked(_int(request, "user_id"), bool(body.get("blocked", True)))
        return _ok({"blocked": bool(body.get("blocked", True))})

    async def transcript(request: web.Request) -> web.StreamResponse:
        return _ok(world.transcript(_int(request, "chat_id")))

    async def events(request: web.Request) -> web.StreamResponse:
        chat_id = _int(request, "chat_id")
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        queue = world.subscribe(chat_id)
        try:
            snapshot = {"type": "snapshot", "transcript": world.transcript(chat_id)}
            await resp.write(f"data: {_dumps(snapshot)}\n\n".encode())
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                if event is None:
                    break
                await resp.write(f"data: {_dumps(event)}\n\n".encode())
        except ConnectionResetError:
            return resp
        finally:
            world.unsubscribe(chat_id, queue)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    async def violations(request: web.Request) -> web.StreamResponse:
        if request.method == "DELETE":
            world.violations.clear()
        return _ok({"violations": dict(world.violations), "stats": dict(world.stats)})

    async def faults(request: web.Request) -> web.StreamResponse:
        if request.method == "DELETE":
            world.faults.clear()
        elif request.method == "POST":
            body = await _body(request)
            emu.inject_fault_now(
                Fault(
                    str(body["method"]),
                    int(body.get("status", 500)),
                    int(body.get("count", 1)),
                    body.get("retry_after"),
                    body.get("description"),
                )
            )
        return _ok([vars_of(f) for f in world.faults])

    async def limits(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            emu.set_limits_now(**await _body(request))
        return _ok(emu.limits_json())

    async def file(request: web.Request) -> web.StreamResponse:
        stored = world.files.get(request.match_info["file_id"])
        if stored is None:
            raise web.HTTPNotFound()
        headers = {"Cache-Control": "max-age=3600"}
        if stored.file_name:
            headers["Content-Disposition"] = f'inline; filename="{stored.file_name}"'
        return web.Response(body=stored.data, content_type=stored.mime_type, headers=headers)

    async def pay(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return _ok(
            await payments.pay(
                int(body["chat_id"]),
                int(body["message_id"]),
                body.get("user_id"),
                body.get("payload"),
                body.get("total_amount"),
            )
        )

    async def list_payments(_: web.Request) -> web.StreamResponse:
        return _ok(payments.summary())

    async def replay(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return _ok(payments.replay(str(body["telegram_payment_charge_id"])))

    async def stars(request: web.Request) -> web.StreamResponse:
        user_id = _int(request, "user_id")
        if request.method == "POST":
            payments.set_balance(user_id, (await _body(request)).get("balance"))
        return _ok({"user_id": user_id, "balance": payments.balance(user_id)})

    p = "/_emu"
    return [
        web.get(f"{p}/bot", _guard(bot_info)),
        web.get(f"{p}/users", _guard(list_users)),
        web.post(f"{p}/users", _guard(create_user)),
        web.post(f"{p}/users/{{user_id}}/messages", _guard(send_text)),
        web.post(f"{p}/users/{{user_id}}/photos", _guard(send_photos)),
        web.post(f"{p}/users/{{user_id}}/documents", _guard(send_document)),
        web.post(f"{p}/users/{{user_id}}/callback", _guard(press)),
        web.post(f"{p}/users/{{user_id}}/block", _guard(block)),
        web.get(f"{p}/chats/{{chat_id}}/transcript", _guard(transcript)),
        web.get(f"{p}/chats/{{chat_id}}/events", events),
        web.route("*", f"{p}/violations", _guard(violations)),
        web.route("*", f"{p}/faults", _guard(faults)),
        web.route("*", f"{p}/limits", _guard(limits)),
        web.get(f"{p}/files/{{file_id}}", file),
        web.post(f"{p}/pay", _guard(pay)),
        web.get(f"{p}/payments", _guard(list_payments)),
        web.post(f"{p}/payments/replay", _guard(replay)),
        web.route("*", f"{p}/users/{{user_id}}/stars", _guard(stars)),
    ]


def vars_of(fault: Fault) -> dict[str, Any]:
    return {
        "method": fault.method,
        "status": fault.status,
        "count": fault.count,
        "retry_after": fault.retry_after,
        "description": fault.description,
    }
