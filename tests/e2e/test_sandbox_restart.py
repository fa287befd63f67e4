"""`./scripts/run`, Ctrl-C, `./scripts/run` again: the same person continues where they stopped.

The launcher runs as a process (`python -m sandbox`) with its own embedded NATS and PostgreSQL
in a temporary state folder, as a new user starts it. A person, driven through the web chat's
control API (what the page calls), trains an avatar, pays with Stars and generates pictures;
the launcher is stopped with SIGINT and started again on the same folder. The person is the
same Telegram user, with the same messages, Stars, credits and gallery, and the avatar trained
before the restart generates again (its LoRA is still on the emulated FAL CDN).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.embedded import free_port
from sandbox.supervisor import ROOT, base_env
from tests.botkit import (
    album_pictures,
    bot_message,
    eventually,
    open_generation_settings,
    photo,
    press,
    start_training,
)
from tests.e2e.services import EXTERNAL

pytestmark = [pytest.mark.e2e]
Json = dict[str, Any]


class WebChat:
    """The Telegram emulator's control API over HTTP, with the methods botkit's helpers use."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url + "/_emu"

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._session.request(method, self._base + path, **kwargs) as response:
            body = await response.json()
            assert response.status == 200, body
            return body

    async def users(self) -> list[Json]:
        return await self._call("GET", "/users")

    async def create_user(self, first_name: str, language_code: str = "en") -> Json:
        body = {"first_name": first_name, "language_code": language_code}
        return await self._call("POST", "/users", json=body)

    async def send_text(self, uid: int, text: str) -> Json:
        return await self._call("POST", f"/users/{uid}/messages", json={"text": text})

    async def send_command(self, uid: int, command: str) -> Json:
        return await self.send_text(uid, "/" + command)

    async def send_album(self, uid: int, images: list[bytes]) -> None:
        form = aiohttp.FormData()
        for n, data in enumerate(images):
            form.add_field("photo", data, filename=f"p{n}.jpg", content_type="image/jpeg")
        await self._call("POST", f"/users/{uid}/photos", data=form)

    async def press_button(self, uid: int, message_id: int, data: str) -> str:
        body = {"message_id": message_id, "data": data}
        answer = await self._call("POST", f"/users/{uid}/callback", json=body)
        return str(answer["callback_query_id"])

    async def transcript(self, chat: int) -> Json:
        return await self._call("GET", f"/chats/{chat}/transcript")

    async def bot_messages(self, chat: int) -> list[Json]:
        entries = (await self.transcript(chat))["messages"]
        return [e["message"] for e in entries if e["outgoing"] and not e["deleted"]]

    async def pay(self, chat: int, message_id: int) -> Json:
        body = {"chat_id": chat, "message_id": message_id}
        return await self._call("POST", "/pay", json=body)

    async def stars(self, uid: int) -> int:
        return int((await self._call("GET", f"/users/{uid}/stars"))["balance"])


@contextlib.asynccontextmanager
async def launcher(state: Path, env: dict[str, str], log: Path) -> AsyncIterator[Any]:
    """`python -m sandbox --state-dir state` until it prints that it is running."""
    with open(log, "ab") as out:  # noqa: ASYNC230 - a local log file
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sandbox", "--state-dir", str(state),
            env=env, cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip

    async def running() -> bool:
        text = await asyncio.to_thread(log.read_text)
        assert proc.returncode is None, text[-3000:]
        return "Aisha is running" in text

    try:
        await eventually(running, 240)
        yield proc
    finally:
        if proc.returncode is None:  # a failed test: SIGTERM, so its servers stop with it
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()  # the last resort orphans its NATS and PostgreSQL
                await proc.wait()


async def stop(proc: Any, sig: signal.Signals) -> None:
    proc.send_signal(sig)
    assert await asyncio.wait_for(proc.wait(), 90) == 0


def labelled(message: Json, word: str) -> str:
    """The callback data of the first button whose label holds `word`."""
    rows = message["reply_markup"]["inline_keyboard"]
    return str(next(b["callback_data"] for row in rows for b in row if word in b["text"]))


async def train_style_avatar(chat: WebChat, uid: int) -> None:
    await chat.send_command(uid, "start")
    menu = await bot_message(chat, uid, button="menu:create", within=30)
    await press(chat, uid, menu, "menu:create")
    await bot_message(chat, uid, text="How shall we call")
    await chat.send_text(uid, "Rita Style")
    kinds = await bot_message(chat, uid, text="Choose the training type")
    await press(chat, uid, kinds, labelled(kinds, "Style"))  # a style: no gender asked
    await chat.send_album(uid, [photo(300 + i) for i in range(10)])
    ready = await bot_message(chat, uid, text="You can start training now", within=30)
    await start_training(chat, uid, ready)  # type: ignore[arg-type]  # the quality preset (50)
    await bot_message(chat, uid, text="is ready", within=90)


async def generate(chat: WebChat, uid: int, pictures_before: int) -> None:
    settings = await open_generation_settings(chat, uid)
    await press(chat, uid, settings, "gen:go")

    async def album_arrived() -> bool:
        photos = await album_pictures(chat, uid)
        return len(photos) >= pictures_before + 2

    await eventually(album_arrived, 90)


async def balance_shown(chat: WebChat, uid: int, credits: int) -> None:
    await chat.send_command(uid, "balance")
    await bot_message(chat, uid, text=f"Balance: {credits} credits")


async def gallery_shows(chat: WebChat, uid: int, total: int) -> None:
    await chat.send_command(uid, "gallery")
    await bot_message(chat, uid, text=f"{total} pictures", within=20)


@pytest.fixture
def state() -> Iterator[Path]:
    """A short path (PostgreSQL's socket lives in it) that pgserver's own user may enter."""
    with tempfile.TemporaryDirectory(prefix="aisha-r-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)
        yield Path(tmp) / "state"


async def test_a_second_run_continues_with_the_same_person_avatar_and_files(
    state: Path, tmp_path: Path
):
    ports = {f"{n}_HTTP_PORT": str(free_port()) for n in ("BOT", "TRAINER", "STATUS")}
    web = free_port()
    env = {k: v for k, v in base_env().items() if k not in EXTERNAL}
    env.update(ports)
    env.update(
        AISHA_WEBCHAT_PORT=str(web),
        AISHA_NATS_PORT=str(free_port()),
        AISHA_FAL_TRAINING_SECONDS="3",
        CREDITS_TRIAL="60",  # a training (50) and pictures (1 each)
        ADMIN_IDS="",
    )
    async with aiohttp.ClientSession() as session:
        chat = WebChat(session, f"http://127.0.0.1:{web}")
        async with launcher(state, env, tmp_path / "first.log") as first:
            uid = (await chat.create_user("Rita"))["id"]
            await train_style_avatar(chat, uid)
            await chat.send_command(uid, "buy")
            shop = await bot_message(chat, uid, button="shop:buy:starter")
            await press(chat, uid, shop, "shop:buy:starter")
            invoice = await eventually(lambda: _invoice(chat, uid), 20)
            assert (await chat.pay(uid, invoice["message_id"]))["status"] == "paid"
            await bot_message(chat, uid, text="Payment received")
            await generate(chat, uid, 0)
            await balance_shown(chat, uid, 60 - 50 + 20 - 2)
            before = (await chat.transcript(uid))["messages"]
            await stop(first, signal.SIGINT)
        assert (state / "telegram" / "snapshot.json").exists()
        assert (state / "fal" / "store" / "snapshot.json").exists()

        async with launcher(state, env, tmp_path / "second.log") as second:
            assert [u["id"] for u in await chat.users()] == [uid]
            again = (await chat.transcript(uid))["messages"]
            assert again[: len(before)] == before
            assert await chat.stars(uid) == 10_000 - 50
            await balance_shown(chat, uid, 28)
            await generate(chat, uid, 2)  # the avatar trained before the restart
            await balance_shown(chat, uid, 26)
            await gallery_shows(chat, uid, 4)
            await stop(second, signal.SIGTERM)


async def _invoice(chat: WebChat, uid: int) -> Json | None:
    for message in reversed(await chat.bot_messages(uid)):
        if message.get("invoice"):
            return message
    return None
