"""Both emulators keep what happened across a restart when given a state folder.

Telegram: people, their chats and messages, files, Stars, and update ids a bot has seen are
never handed out again, even when the emulator was killed right after handing them out. FAL:
stored files with their lifetimes, finished jobs (result, LoRA download) and jobs that were
still running, which run again. Without a folder both stay in memory (the rest of the suite).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import fal_client
import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from sandbox.fal import FalEmulator
from sandbox.fal.images import photo, training_archive
from sandbox.snapshot import SNAPSHOT
from sandbox.telegram import Limits, TelegramEmulator

TOKEN = "777000222:AAH-persistence"
FAST = "fal-ai/flux-lora-fast-training"


def telegram(state: Path) -> TelegramEmulator:
    return TelegramEmulator(limits=Limits(enabled=False), state_dir=state)


def client(emu: TelegramEmulator) -> Bot:
    return Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))


async def test_telegram_world_survives_a_restart(tmp_path: Path) -> None:
    async with telegram(tmp_path) as first:
        bot = client(first)
        user = await first.create_user("Ann", language_code="ru")
        uid = user["id"]
        await first.send_command(uid, "start")
        photo_message = await first.send_photo(uid, photo(1), caption="me")
        first.payments.set_balance(uid, 1234)
        updates = await bot.get_updates(timeout=0)
        offset = updates[-1].update_id + 1
        sent = await bot.send_message(uid, "<b>Hello</b> Ann", parse_mode="HTML")
        await bot.edit_message_text("Hello again", chat_id=uid, message_id=sent.message_id)
        await bot.get_updates(offset=offset, timeout=0)  # confirms what the bot has seen
        await bot.session.close()
        before = await first.transcript(uid)

    async with telegram(tmp_path) as second:
        bot = client(second)
        try:
            assert [u["id"] for u in second.world.users.values()] == [uid]
            after = await second.transcript(uid)
            assert after["messages"] == before["messages"]
            assert after["messages"][-1]["history"][0]["text"] == "Hello Ann"
            assert second.payments.balance(uid) == 1234
            largest = photo_message["photo"][-1]["file_id"]
            downloaded = await bot.download(largest)
            assert downloaded is not None
            assert downloaded.read() == photo(1)
            assert await bot.get_updates(offset=offset, timeout=0) == []
            await second.send_text(uid, "still me")
            (fresh,) = await bot.get_updates(offset=offset, timeout=0)
            assert fresh.update_id == offset  # ids continue where they stopped, nothing lost
            assert fresh.message is not None
            assert fresh.message.message_id == sent.message_id + 1
            other = await second.create_user("Bob")
            assert other["id"] != uid
        finally:
            await bot.session.close()


async def test_update_ids_once_handed_out_are_never_reused_after_a_kill(tmp_path: Path) -> None:
    """A snapshot is on disk before getUpdates answers, so a copy taken right then is what a
    kill -9 would leave; a bot that kept its offset gets the next update, none twice."""
    live, killed = tmp_path / "live", tmp_path / "killed"
    async with telegram(live) as first:
        bot = client(first)
        uid = (await first.create_user("Kim"))["id"]
        for n in range(3):
            await first.send_text(uid, f"message {n}")
        seen = await bot.get_updates(timeout=0)
        shutil.copytree(live, killed)
        await bot.session.close()
    assert (killed / SNAPSHOT).exists()
    offset = seen[-1].update_id + 1
    async with telegram(killed) as second:
        bot = client(second)
        try:
            await second.send_text(uid, "after the crash")
            (update,) = await bot.get_updates(offset=offset, timeout=0)
            assert update.update_id == offset
            assert update.message is not None
            assert update.message.text == "after the crash"
        finally:
            await bot.session.close()


async def _client(emu: FalEmulator, monkeypatch: pytest.MonkeyPatch) -> fal_client.AsyncClient:
    for key, value in emu.client_env().items():
        monkeypatch.setenv(key, value)
    return fal_client.AsyncClient()


async def test_fal_storage_and_jobs_survive_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timings = {"training_seconds": 0.3, "generation_seconds": 0.1, "queue_seconds": 0.05}
    store = tmp_path / "store"
    async with FalEmulator(state_dir=tmp_path / "a", persist_dir=store, **timings) as first:
        fal = await _client(first, monkeypatch)
        archive = await fal.upload(training_archive(10), "application/zip", "photos.zip")
        done = await fal.submit(FAST, {"images_data_url": archive, "trigger_word": "ohwx"})
        result = await done.get()
        short_lived = first.put_file(b"gone soon", "text/plain", "short.txt", ttl=0.0)
        first.configure(training_seconds=3600.0)
        pending = await fal.submit(FAST, {"images_data_url": archive}, webhook_url=None)
    assert (store / SNAPSHOT).exists()

    async with FalEmulator(state_dir=tmp_path / "b", persist_dir=store, **timings) as second:
        fal = await _client(second, monkeypatch)
        same = await fal.get_handle(FAST, done.request_id)
        assert isinstance(await same.status(), fal_client.Completed)
        assert await same.get() == result
        async with httpx.AsyncClient(
            proxy=second.proxy_url, verify=second.ssl_context(), trust_env=False
        ) as http:
            lora = await http.get(result["diffusers_lora_file"]["url"])
            assert lora.status_code == 200
            assert lora.content.startswith(b"AISHA-SANDBOX-LORA")
            assert (await http.get(archive)).status_code == 200
            assert (await http.get(short_lived)).status_code == 404  # its lifetime still holds
        rerun = await fal.get_handle(FAST, pending.request_id)
        again = await rerun.get()  # queued again after the restart, then finished
        assert again["diffusers_lora_file"]["url"].startswith("https://v3.fal.media/files/")
        job = second.job(pending.request_id)
        assert job is not None
        assert any("Restarted" in entry["message"] for entry in job.logs)
