"""Likeness end to end on the whole product (`sandbox.stack.Stack`: embedded NATS and
Postgres, both emulators, the three services as processes): a portrait avatar trained on
one person's photos gets its reference identity and is called ready only after its test
portraits (the FAL emulator pastes the LoRA's person into them) score well; its pictures
arrive with a high likeness shown; with the emulator's `other_face` fault the next pictures
show someone else and arrive with a low one, and are re-drawn once, free, showing the right
person again. A training whose test portraits show someone else is offered a free retrain
(taken: the retrain passes, nothing is charged) or its credits back (taken: refunded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from sandbox.stack import Stack
from tests.botkit import bot_message, eventually, open_generation_settings, press
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_product import photo
from tests.integration.test_bot_flow import create_avatar_by_buttons

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    state = tmp_path_factory.mktemp("stack")
    async with whole_product(db_url, state, training_seconds=2.0, CREDITS_TRIAL="200") as stack:
        yield stack


async def test_a_portrait_avatars_pictures_carry_their_likeness(product: Stack) -> None:
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Like", language_code="en"))["id"]
    await create_avatar_by_buttons(emu, uid, "Barack")  # a portrait
    await emu.send_album(uid, [photo(400 + i) for i in range(10)])
    ready = await bot_message(emu, uid, text="You can start training now", within=30)
    rows = ready["reply_markup"]["inline_keyboard"]
    start = next(b["callback_data"] for row in rows for b in row if "Start" in b["text"])
    await press(emu, uid, ready, start)
    card = await bot_message(emu, uid, text="Choose the quality", button="training:go")
    await press(emu, uid, card, "training:go")
    ready = await bot_message(emu, uid, text="is ready", within=60)
    # the check's two test portraits came first, silent, with their scores
    assert "Likeness check:" in ready["text"]
    tests = await _albums(emu, uid)
    assert len(tests) == 2
    assert all("Test portrait" in m["caption"] and "(high)" in m["caption"] for m in tests)

    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    try:
        faces = await conn.fetchval("SELECT likeness_faces FROM avatars WHERE user_id = $1", uid)
        assert faces == 10
        check = await conn.fetchrow(
            "SELECT c.state, c.score, g.cost_usd FROM training_checks c "
            "JOIN generations g ON g.id = c.generation_id WHERE c.user_id = $1",
            uid,
        )
        assert check["state"] == "passed"
        assert check["score"] >= 70
        assert check["cost_usd"] > 0  # what FAL charged us for the check is recorded

        settings = await open_generation_settings(emu, uid)
        await press(emu, uid, settings, "gen:go")
        controls = await bot_message(emu, uid, text="Ready: 2 pictures", within=60)
        first = await _albums(emu, uid, tests=False)
        assert len(first) == 2
        for message in first:
            assert "Likeness" in message["caption"]
            assert "(high)" in message["caption"]

        fal.add_fault("other_face", app_id="fal-ai/flux-lora", times=1)
        await press(emu, uid, controls, "grun:again")

        # someone else's face: low; re-drawn once, free, with the right face: high
        async def three_albums() -> list[dict[str, Any]] | None:
            album = await _albums(emu, uid, tests=False)
            return album if len(album) >= 6 else None

        albums = await eventually(three_albums, 90)
        assert len(albums) == 6
        for message in albums[2:4]:
            assert "(low)" in message["caption"]
        for message in albums[4:]:
            assert "(high)" in message["caption"]
        rows = await conn.fetch(
            "SELECT g.id, g.likeness_retry, i.likeness FROM generated_images i JOIN generations g "
            "ON g.id = i.generation_id WHERE g.user_id = $1 AND NOT g.training_check "
            "ORDER BY g.created_at, i.position",
            uid,
        )
        values = [r["likeness"] for r in rows]
        assert min(values[:2]) >= 70
        assert max(values[2:4]) < 40
        assert min(values[4:]) >= 70
        assert [r["likeness_retry"] for r in rows] == [False] * 4 + [True] * 2
        charges = await conn.fetchval(
            "SELECT count(*) FROM credit_entries WHERE user_id = $1 AND kind = 'generation_charge'",
            uid,
        )
        assert charges == 2  # the two generations the user asked for; the re-draw is free
    finally:
        await conn.close()


async def _albums(emu: Any, uid: int, *, tests: bool = True) -> list[dict[str, Any]]:
    """The album pictures in the chat: the check's test portraits, or the others."""
    found = [m for m in await emu.bot_messages(uid) if m.get("media_group_id")]
    return [m for m in found if ("Test portrait" in (m.get("caption") or "")) == tests]


async def _train_someone_else(product: Stack, name: str) -> tuple[int, str, dict[str, Any]]:
    """A portrait avatar whose first test portraits show someone else (the emulator's
    `other_face` fault on the check's prompt for this avatar's trigger word, once); returns
    the user, the avatar's trigger word and the poor verdict."""
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user(name, language_code="en"))["id"]
    await create_avatar_by_buttons(emu, uid, name)
    await emu.send_album(uid, [photo(400 + i) for i in range(10)])
    ready = await bot_message(emu, uid, text="You can start training now", within=30)
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    try:
        trigger = await conn.fetchval("SELECT trigger_word FROM avatars WHERE user_id = $1", uid)
    finally:
        await conn.close()
    fal.add_fault("other_face", app_id="fal-ai/flux-lora", contains=f"{trigger}, a close-up",
                  times=1)  # fmt: skip
    rows = ready["reply_markup"]["inline_keyboard"]
    start = next(b["callback_data"] for row in rows for b in row if "Start" in b["text"])
    await press(emu, uid, ready, start)
    card = await bot_message(emu, uid, text="Choose the quality", button="training:go")
    await press(emu, uid, card, "training:go_quality")
    offer = await bot_message(emu, uid, text="do not look enough like you", within=60)
    return uid, trigger, offer


async def _balance(product: Stack, uid: int) -> int:
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    try:
        return int(await conn.fetchval(
            "SELECT coalesce((SELECT balance_after FROM credit_entries WHERE user_id = $1 "
            "ORDER BY seq DESC LIMIT 1), 0)", uid,
        ))  # fmt: skip
    finally:
        await conn.close()


async def test_a_poor_training_is_refunded_when_the_free_retrain_is_refused(
    product: Stack,
) -> None:
    emu = product.telegram
    assert emu is not None
    uid, _, offer = await _train_someone_else(product, "Refused")
    assert "(low)" in (await _albums(emu, uid))[0]["caption"]
    assert "is ready" not in offer["text"]
    charged = await _balance(product, uid)
    labels = [b["text"] for row in offer["reply_markup"]["inline_keyboard"] for b in row]
    refund = next(label for label in labels if label.startswith("↩️ Refund"))
    credits = int(refund.split()[2])
    assert credits > 0
    await press(emu, uid, offer, "training:refund")
    await bot_message(emu, uid, text="credits are back on your balance")
    assert await _balance(product, uid) == charged + credits


async def test_a_poor_training_is_retrained_free_and_then_passes(product: Stack) -> None:
    emu = product.telegram
    assert emu is not None
    uid, _, offer = await _train_someone_else(product, "Retrained")
    charged = await _balance(product, uid)
    await press(emu, uid, offer, "training:redo")
    ready = await bot_message(emu, uid, text="is ready", within=90)
    assert "Likeness check:" in ready["text"]
    assert await _balance(product, uid) == charged  # the retrain was ours: free
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    try:
        rows = await conn.fetch(
            "SELECT c.attempt, c.state, c.decision, c.redo FROM training_checks c "
            "WHERE c.user_id = $1 ORDER BY c.attempt",
            uid,
        )
        assert [(r["attempt"], r["state"], r["decision"], r["redo"]) for r in rows] == [
            (1, "poor", "redo", False),
            (2, "passed", None, True),
        ]
        steps = await conn.fetchval("SELECT steps FROM avatars WHERE user_id = $1", uid)
        assert steps == 3500  # the quality preset's 2500 steps, trained longer for the redo
    finally:
        await conn.close()
