"""Likeness end to end on the whole product (`sandbox.stack.Stack`: embedded NATS and
Postgres, both emulators, the three services as processes): a portrait avatar trained on
one person's photos gets its reference identity; its pictures (the FAL emulator pastes the
LoRA's person into them) arrive with a high likeness shown; with the emulator's
`other_face` fault the next pictures show someone else and arrive with a low one, and are
re-drawn once, free, showing the right person again."""

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
    await bot_message(emu, uid, text="is ready", within=60)

    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    try:
        faces = await conn.fetchval("SELECT likeness_faces FROM avatars WHERE user_id = $1", uid)
        assert faces == 10

        settings = await open_generation_settings(emu, uid)
        await press(emu, uid, settings, "gen:go")
        controls = await bot_message(emu, uid, text="Ready: 2 pictures", within=60)
        first = [m for m in await emu.bot_messages(uid) if m.get("media_group_id")]
        assert len(first) == 2
        for message in first:
            assert "Likeness" in message["caption"]
            assert "(high)" in message["caption"]

        fal.add_fault("other_face", app_id="fal-ai/flux-lora", times=1)
        await press(emu, uid, controls, "grun:again")

        # someone else's face: low; re-drawn once, free, with the right face: high
        async def three_albums() -> list[dict[str, Any]] | None:
            album = [m for m in await emu.bot_messages(uid) if m.get("media_group_id")]
            return album if len(album) >= 6 else None

        albums = await eventually(three_albums, 90)
        assert len(albums) == 6
        for message in albums[2:4]:
            assert "(low)" in message["caption"]
        for message in albums[4:]:
            assert "(high)" in message["caption"]
        rows = await conn.fetch(
            "SELECT g.id, g.likeness_retry, i.likeness FROM generated_images i JOIN generations g "
            "ON g.id = i.generation_id WHERE g.user_id = $1 ORDER BY g.created_at, i.position",
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
