"""The emulator's HTTP app and the `TelegramEmulator` facade (Bot API + control API + page)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from sandbox.snapshot import Picture, Snapshots
from sandbox.telegram import delivery as _delivery
from sandbox.telegram import inline as _inline
from sandbox.telegram import media as _media
from sandbox.telegram import methods as _methods
from sandbox.telegram import payments as _payments
from sandbox.telegram import persist
from sandbox.telegram.actions import UserActions
from sandbox.telegram.api import METHODS, Call
from sandbox.telegram.control import control_routes
from sandbox.telegram.delivery import Delivery
from sandbox.telegram.params import read_params
from sandbox.telegram.rules import ApiError, Fault, Limits
from sandbox.telegram.state import Json, World

__all__ = ["TelegramEmulator"]

log = logging.getLogger("sandbox.telegram")

_ = (_delivery, _inline, _media, _methods, _payments)  # modules that register Bot API methods
STATIC = Path(__file__).with_name("static")
TOKEN = re.compile(r"(\d+):[\w-]+")
MAX_BODY = 60 * 1024 * 1024
MAX_FETCH = 20 * 1024 * 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class TelegramEmulator:
    """An in-memory Telegram Bot API server with a control API and a web chat page.

    :param token: accept only this bot token (default: any well-formed token).
    :param bot_username: the bot's username in getMe and in messages.
    :param bot_name: the bot's first name.
    :param limits: flood-control and callback-timeout settings.
    :param state_dir: keep the world (people, chats, files, Stars, updates) here across
        restarts (see `sandbox.telegram.persist`); None keeps it in memory only.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_username: str = "aisha_sandbox_bot",
        bot_name: str = "Aisha",
        limits: Limits | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.world = World(limits=limits or Limits())
        self.bot_user: Json | None = self._bot_for(token) if token else None
        self.users = UserActions(self.world, self._known_bot)
        self.inline = _inline.InlineActions(self.world, self._known_bot)
        self.payments = _payments.PaymentActions(self.world)
        self.delivery = Delivery(self.world, self._client)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._host = "127.0.0.1"
        self._snapshots = (
            None
            if state_dir is None
            else Snapshots(state_dir, self._picture, version=lambda: self.world.version)
        )

    # -- lifecycle -----------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/bot{token}/{method}", self._bot_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.add_routes(control_routes(self))
        app.add_routes(_inline.inline_routes(self))
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port)."""
        self._session = aiohttp.ClientSession()
        if self._snapshots is not None:
            self._restore(self._snapshots)
        # handler_cancellation: a long poll whose client went away stops waiting at once,
        # so it neither holds updates nor reports a 409 conflict to nobody.
        self._runner = web.AppRunner(
            self.make_app(), shutdown_timeout=1.0, access_log=None, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._host, self._port = host, int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving; wakes long polls and closes live feeds."""
        await self.delivery.close()
        self.world.close_feeds()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._snapshots is not None:
            await self._snapshots.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _picture(self) -> Picture:
        return persist.take(self.world, self.delivery)

    def _restore(self, snapshots: Snapshots) -> None:
        document = snapshots.load()
        if document is not None:
            missing = persist.restore(self.world, self.delivery, document, snapshots.blob)
            if missing:
                log.warning("%d stored files are missing from %s", len(missing), snapshots.blob_dir)
            log.info(
                "restored %d users, next update_id %d, from %s",
                len(self.world.users),
                self.world._next_update,
                snapshots.directory,
            )
            if self.delivery.webhook is not None:
                self.delivery.start_push()
        self.delivery.before_handout = lambda: snapshots.save(full=False)
        snapshots.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """Base URL for `TelegramAPIServer.from_base(...)`."""
        return f"http://{self._host}:{self._port}"

    @property
    def web_url(self) -> str:
        """The web chat page."""
        return f"{self.base_url}/"

    # -- Bot API -------------------------------------------------------------------------
    def _bot_for(self, token: str) -> Json:
        match = TOKEN.fullmatch(token)
        if match is None or (self.token is not None and token != self.token):
            raise ApiError(401, "Unauthorized")
        return self._bot_json(int(match.group(1)))

    def _known_bot(self) -> Json:
        """The bot last seen calling (a placeholder with id 0 before any call)."""
        return self.bot_user or self._bot_json(0)

    def _bot_json(self, bot_id: int) -> Json:
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
        }

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the emulator is not started")
        return self._session

    async def _fetch(self, url: str) -> tuple[bytes, str | None]:
        timeout = aiohttp.ClientTimeout(total=15)
        async with self._client().get(url, timeout=timeout) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            data = await resp.content.read(MAX_FETCH + 1)
            if len(data) > MAX_FETCH:
                raise ValueError("file is too big")
            return data, resp.content_type

    async def _bot_api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        try:
            bot = self._bot_for(request.match_info["token"])
            self.bot_user = bot
            handler = METHODS.get(name.lower())
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            self.world.stats[f"call:{name}"] += 1
            fault = self.world.take_fault(name)
            if fault is not None:
                raise fault.error()
            params = await read_params(request)
            call = Call(self.world, params, bot, self._fetch, self.delivery)
            result = await handler(call)
        except ApiError as exc:
            if exc.kind:
                self.world.violations[exc.kind] += 1
            self.world.stats[f"error:{exc.code}"] += 1
            return web.json_response(exc.payload(), status=exc.code, dumps=_dumps)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def _download(self, request: web.Request) -> web.Response:
        try:
            self._bot_for(request.match_info["token"])
        except ApiError:
            raise web.HTTPUnauthorized() from None
        stored = self.world.files.by_path.get(request.match_info["path"])
        if stored is None:
            raise web.HTTPNotFound()
        return web.Response(body=stored.data, content_type=stored.mime_type)

    async def _index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    # -- Python control API --------------------------------------------------------------
    async def create_user(
        self,
        first_name: str,
        username: str | None = None,
        language_code: str | None = "en",
        user_id: int | None = None,
        last_name: str | None = None,
    ) -> Json:
        """Create a user and their private chat (chat id == user id)."""
        return self.users.create_user(first_name, username, language_code, user_id, last_name)

    async def send_text(self, user_id: int, text: str) -> Json:
        return self.users.send_text(user_id, text)

    async def send_command(self, user_id: int, command: str, args: str = "") -> Json:
        text = "/" + command.lstrip("/") + (f" {args}" if args else "")
        return self.users.send_text(user_id, text)

    async def send_photo(self, user_id: int, data: bytes, caption: str | None = None) -> Json:
        return self.users.send_photo(user_id, data, caption)

    async def send_album(
        self, user_id: int, images: list[bytes], caption: str | None = None
    ) -> list[Json]:
        return self.users.send_album(user_id, images, caption)

    async def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
    ) -> Json:
        return self.users.send_document(user_id, data, file_name, mime_type, caption)

    async def press_button(
        self, user_id: int, message_id: int, data: str | None = None, text: str | None = None
    ) -> str:
        """Press an inline button; returns the callback query id."""
        return self.users.press_button(user_id, message_id, data, text)

    async def set_blocked(self, user_id: int, blocked: bool = True) -> None:
        self.users.set_blocked(user_id, blocked)

    async def transcript(self, chat_id: int) -> Json:
        """Messages (current state + edit history), callback answers, last chat action."""
        return self.world.transcript(chat_id)

    async def bot_messages(self, chat_id: int) -> list[Json]:
        """Current state of the bot's non-deleted messages in a chat."""
        entries = self.world.transcript(chat_id)["messages"]
        return [e["message"] for e in entries if e["outgoing"] and not e["deleted"]]

    async def wait_bot_messages(self, chat_id: int, count: int, within: float = 5.0) -> list[Json]:
        """Wait until the bot has sent at least `count` messages to the chat."""
        box = self.world.messages
        await self.world.wait_for(
            lambda: sum(r.outgoing for r in box.get(chat_id, {}).values()) >= count, within
        )
        return await self.bot_messages(chat_id)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `predicate()` holds (checked on every change); TimeoutError if not."""
        await self.world.wait_for(predicate, within)

    async def violations(self) -> dict[str, int]:
        return dict(self.world.violations)

    async def reset_violations(self) -> None:
        self.world.violations.clear()

    async def inject_fault(
        self,
        method: str,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next `count` calls of `method` with `status` (429 carries retry_after)."""
        self.inject_fault_now(Fault(method, status, count, retry_after, description))

    def inject_fault_now(self, fault: Fault) -> None:
        if fault.count > 0:
            self.world.faults.append(fault)

    async def set_limits(self, **changes: Any) -> None:
        """Change flood-control settings (fields of `Limits`)."""
        self.set_limits_now(**changes)

    def set_limits_now(self, **changes: Any) -> None:
        known = {f.name: f.type for f in dataclasses.fields(Limits)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown limit {key!r}")
            setattr(
                self.world.limits,
                key,
                bool(value) if key in ("enabled", "limit_edits", "not_modified") else float(value),
            )
        self.world.rate.reset()

    def limits_json(self) -> Json:
        return dataclasses.asdict(self.world.limits)

    async def pending_updates(self) -> list[Json]:
        return list(self.world.updates)
