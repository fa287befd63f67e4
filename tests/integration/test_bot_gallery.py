"""The gallery, export, sharing and inline mode with the real bot against the emulator,
real NATS (Object Store) and PostgreSQL. Finished generations are seeded as the status
service leaves them: rows in `generations` / `generated_images` and objects in the store."""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile

import asyncpg
import pytest
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from sandbox.telegram import TelegramEmulator
from services.bot.gallery.export import Exporter
from services.bot.gallery.service import ImageService
from tests.botkit import (
    BotUnderTest,
    Json,
    answer_of,
    bot_message,
    buttons,
    current,
    eventually,
    file_bytes,
    forge_press,
    press,
)
from tests.integration import generation_harness as harness
from tests.integration.generation_harness import (
    seed_avatar,
    seed_gallery,
    seed_user,
)

# the harness's fixture, used here by name (emu, bot, js, admin_pool: tests/botkit.py)
images_store = harness.images_store


async def open_gallery(emu: TelegramEmulator, uid: int) -> Json:
    await emu.send_command(uid, "gallery")
    return await bot_message(emu, uid, text="Your gallery")


async def image_row(pool: asyncpg.Pool, image_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM generated_images WHERE id = $1", image_id)


async def object_bytes(store: ObjectStore, name: str) -> bytes:
    return bytes((await store.get(name)).data or b"")


async def test_pages_are_turned_in_place(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool, images_store: ObjectStore
) -> None:
    uid = (await emu.create_user("Gala"))["id"]
    await seed_user(admin_pool, uid)
    await seed_gallery(admin_pool, images_store, uid, 7)
    gallery = await open_gallery(emu, uid)
    assert "Page 1 of 2 · 7 pictures" in gallery["text"]
    items = [b for b in buttons(gallery) if b["callback_data"].startswith("img:open:")]
    assert [b["text"] for b in items] == ["1", "2", "3", "4", "5"]
    assert not any(b["text"] == "◀️" for b in buttons(gallery))
    await press(emu, uid, gallery, "gal:1:")
    second = await bot_message(emu, uid, text="Page 2 of 2")
    assert second["message_id"] == gallery["message_id"]
    items = [b for b in buttons(second) if b["callback_data"].startswith("img:open:")]
    assert [b["text"] for b in items] == ["6", "7"]
    assert "7. " in second["text"]
    assert not any(b["text"] == "▶️" for b in buttons(second))
    await press(emu, uid, second, "gal:0:")
    first = await bot_message(emu, uid, text="Page 1 of 2")
    assert first["message_id"] == gallery["message_id"]
    assert len(await emu.bot_messages(uid)) == 1  # one gallery message, edited in place


async def test_open_favourite_filter_and_delete(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool, images_store: ObjectStore
) -> None:
    uid = (await emu.create_user("Fia"))["id"]
    avatar_id = await seed_avatar(admin_pool, uid, "Fia")
    ids = await seed_gallery(admin_pool, images_store, uid, 3, avatar_id=avatar_id)
    await seed_gallery(admin_pool, images_store, uid, 1)  # a quick one, without the avatar
    gallery = await open_gallery(emu, uid)
    assert "4 pictures" in gallery["text"]
    await press(emu, uid, gallery, "galm:avatars:")
    picker = await bot_message(emu, uid, text="which avatar", button="gal:0:0:")
    await press(emu, uid, picker, f"gal:0:0:{uuid.UUID(avatar_id).hex}")
    gallery = await bot_message(emu, uid, text="· Fia\n")
    assert "3 pictures" in gallery["text"]
    await press(emu, uid, gallery, f"img:open:{ids[0].hex}")
    opened = await bot_message(emu, uid, button="img:fav:")
    assert "Seed: 1000" in opened["caption"]
    assert "photo of ohwxtest woman, on a beach #0" in opened["caption"]
    assert "Fia" in opened["caption"]
    row = await image_row(admin_pool, ids[0])
    assert row is not None
    original = await object_bytes(images_store, row["object_name"])
    assert file_bytes(emu, opened["photo"][-1]["file_id"]) == original

    async def file_id_kept() -> bool:
        kept = await image_row(admin_pool, ids[0])
        return kept is not None and kept["telegram_file_id"] == opened["photo"][-1]["file_id"]

    await eventually(file_id_kept)

    await press(emu, uid, opened, "img:fav:")
    starred = await labelled(emu, uid, opened["message_id"], "⭐ In favourites")
    assert (await image_row(admin_pool, ids[0]))["is_favorite"]  # type: ignore[index]

    await press(emu, uid, gallery, "gal:0:1:")
    favourites = await bot_message(emu, uid, text="favourites · Fia")
    assert "1 pictures" in favourites["text"]
    assert "⭐" in favourites["text"]

    await press(emu, uid, starred, "img:del:")
    confirm = await labelled(emu, uid, opened["message_id"], "🗑 Yes, delete")
    assert await image_row(admin_pool, ids[0]) is not None
    await press(emu, uid, confirm, "img:del_no:")
    kept = await labelled(emu, uid, opened["message_id"], "🗑 Delete")
    await press(emu, uid, kept, "img:del:")
    confirm = await labelled(emu, uid, opened["message_id"], "🗑 Yes, delete")
    await press(emu, uid, confirm, "img:del_yes:")
    await eventually(lambda: _gone(emu, uid, confirm["message_id"]))
    assert await image_row(admin_pool, ids[0]) is None
    with pytest.raises(NotFoundError):  # the object went with the row
        await images_store.get(row["object_name"])
    await press(emu, uid, favourites, "gal:0:0:")
    refreshed = await bot_message(emu, uid, text="all pictures · Fia")
    assert "2 pictures" in refreshed["text"]
    assert refreshed["message_id"] == gallery["message_id"]


async def labelled(emu: TelegramEmulator, chat: int, message_id: int, label: str) -> Json:
    """The message once it shows a button labelled `label` (after an edit)."""

    async def check() -> Json | None:
        message = await current(emu, chat, message_id)
        return message if message and any(b["text"] == label for b in buttons(message)) else None

    return await eventually(check)  # type: ignore[no-any-return]


async def _gone(emu: TelegramEmulator, chat: int, message_id: int) -> bool:
    return await current(emu, chat, message_id) is None


async def test_export_original_and_zips(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool, images_store: ObjectStore
) -> None:
    uid = (await emu.create_user("Zoe"))["id"]
    await seed_user(admin_pool, uid)
    ids = await seed_gallery(admin_pool, images_store, uid, 4)
    await admin_pool.execute(
        "UPDATE generated_images SET is_favorite = true WHERE id = ANY($1)", [ids[1], ids[3]]
    )
    objects = {
        r["id"]: await object_bytes(images_store, r["object_name"])
        for r in await admin_pool.fetch("SELECT id, object_name FROM generated_images")
    }
    gallery = await open_gallery(emu, uid)
    await press(emu, uid, gallery, f"img:open:{ids[2].hex}")
    opened = await bot_message(emu, uid, button="img:doc:")
    await press(emu, uid, opened, "img:doc:")
    document = await bot_message(emu, uid, text="Full-quality original")
    assert document["document"]["file_name"].endswith(".png")
    assert file_bytes(emu, document["document"]["file_id"]) == objects[ids[2]]

    await press(emu, uid, gallery, "gal:0:1:")
    favourites = await bot_message(emu, uid, button="galm:zip:1")
    await press(emu, uid, favourites, "galm:zip:1")
    archive = await bot_message(emu, uid, text="Your archive: 2 pictures")
    assert archive["document"]["file_name"] == "aisha-favourites.zip"
    with zipfile.ZipFile(io.BytesIO(file_bytes(emu, archive["document"]["file_id"]))) as zipped:
        names = zipped.namelist()
        pictures = sorted(zipped.read(n) for n in names if n.endswith(".png"))
        index = list(csv.DictReader(io.StringIO(zipped.read("index.csv").decode())))
    assert len(names) == 3
    assert pictures == sorted([objects[ids[1]], objects[ids[3]]])
    assert {r["seed"] for r in index} == {"1001", "1003"}

    await press(emu, uid, favourites, "gal:0:0:")
    everything = await bot_message(emu, uid, button="galm:zip:0")
    await press(emu, uid, everything, "galm:zip:0")
    archive = await bot_message(emu, uid, text="Your archive: 4 pictures")
    with zipfile.ZipFile(io.BytesIO(file_bytes(emu, archive["document"]["file_id"]))) as zipped:
        assert sorted(n for n in zipped.namelist() if n.endswith(".png")) == [
            n for n in sorted(zipped.namelist()) if n != "index.csv"
        ]
        assert sorted(zipped.read(n) for n in zipped.namelist() if n != "index.csv") == sorted(
            objects.values()
        )


async def test_export_is_bounded(admin_pool: asyncpg.Pool, images_store: ObjectStore) -> None:
    uid = 770_000_001
    await seed_user(admin_pool, uid)
    images = ImageService(admin_pool)
    assert (await Exporter(images, images_store).build(uid, favorites=False)).refused == "empty"
    await seed_gallery(admin_pool, images_store, uid, 4)
    too_many = await Exporter(images, images_store, max_images=3).build(uid, favorites=False)
    assert (too_many.refused, too_many.count, too_many.data) == ("too_many", 4, None)
    too_big = await Exporter(images, images_store, max_bytes=2000).build(uid, favorites=False)
    assert (too_big.refused, too_big.data) == ("too_big", None)
    fits = await Exporter(images, images_store, max_images=4).build(uid, favorites=False)
    assert (fits.refused, fits.count) == (None, 4)
    assert fits.data is not None


async def test_share_link_works_for_others_until_revoked(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool, images_store: ObjectStore
) -> None:
    owner = (await emu.create_user("Owner Secretname"))["id"]
    friend = (await emu.create_user("Friend", language_code="ru"))["id"]
    await seed_avatar(admin_pool, owner, "Secretname")
    ids = await seed_gallery(admin_pool, images_store, owner, 1)
    gallery = await open_gallery(emu, owner)
    await press(emu, owner, gallery, f"img:open:{ids[0].hex}")
    opened = await bot_message(emu, owner, button="img:share:")
    await press(emu, owner, opened, "img:share:")
    shared = await bot_message(emu, owner, text="t.me/", button="img:unshare:")
    match = re.search(
        r"https://t\.me/aisha_sandbox_bot\?start=share_([A-Za-z0-9_-]{22})\b", shared["text"]
    )
    assert match is not None
    token = match.group(1)
    assert await admin_pool.fetchval("SELECT count(*) FROM share_links") == 1

    await emu.send_command(friend, "start", f"share_{token}")
    seen = await bot_message(emu, friend, text="Создано в Aisha")
    assert seen.get("photo")
    assert "Secretname" not in seen["caption"]
    assert "ohwxtest" not in seen["caption"]
    assert file_bytes(emu, seen["photo"][-1]["file_id"]) == await object_bytes(
        images_store, f"gen/{(await harness_generation(admin_pool, ids[0]))}/0.png"
    )

    await emu.send_command(friend, "start", "share_" + "A" * 22)  # a guess
    await bot_message(emu, friend, text="Ссылка неизвестна или отозвана")
    await emu.send_command(friend, "start", "share_<script>")
    unknown = [m for m in await emu.bot_messages(friend) if "неизвестна" in (m.get("text") or "")]
    await eventually(lambda: _more(emu, friend, len(unknown)))

    await press(emu, owner, shared, "img:unshare:")
    await bot_message(emu, owner, text="link was revoked")
    assert (
        await admin_pool.fetchval("SELECT count(*) FROM share_links WHERE revoked_at IS NULL") == 0
    )
    before = len([m for m in await emu.bot_messages(friend) if m.get("photo")])
    await emu.send_command(friend, "start", f"share_{token}")
    await eventually(lambda: _more(emu, friend, len(unknown) + 1))
    assert len([m for m in await emu.bot_messages(friend) if m.get("photo")]) == before

    # a new link works again, until the picture itself is deleted
    await press(emu, owner, opened, "img:share:")
    again = await bot_message(emu, owner, text="t.me/", button="img:unshare:")
    fresh = re.search(r"start=share_([A-Za-z0-9_-]{22})", again["text"])
    assert fresh is not None
    assert fresh.group(1) != token
    await press(emu, owner, opened, "img:del:")
    confirm = await labelled(emu, owner, opened["message_id"], "🗑 Yes, delete")
    await press(emu, owner, confirm, "img:del_yes:")
    await eventually(lambda: _gone(emu, owner, opened["message_id"]))
    assert await admin_pool.fetchval("SELECT count(*) FROM share_links") == 0  # cascaded
    await emu.send_command(friend, "start", f"share_{fresh.group(1)}")
    await eventually(lambda: _more(emu, friend, len(unknown) + 2))


async def harness_generation(pool: asyncpg.Pool, image_id: uuid.UUID) -> uuid.UUID:
    return await pool.fetchval("SELECT generation_id FROM generated_images WHERE id = $1", image_id)  # type: ignore[no-any-return]


async def _more(emu: TelegramEmulator, chat: int, than: int) -> bool:
    texts = [m.get("text") or "" for m in await emu.bot_messages(chat)]
    return len([t for t in texts if "неизвестна" in t]) > than


async def test_other_users_cannot_touch_someone_elses_pictures(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool, images_store: ObjectStore
) -> None:
    owner = (await emu.create_user("Owner"))["id"]
    thief = (await emu.create_user("Thief", language_code="ru"))["id"]
    await seed_user(admin_pool, owner)
    [image_id] = await seed_gallery(admin_pool, images_store, owner, 1)
    await emu.send_command(thief, "gallery")
    empty = await bot_message(emu, thief, text="Галерея пуста")
    for action in ("open", "fav", "doc", "del", "del_yes", "share", "unshare"):
        data = f"img:{action}:{image_id.hex}"
        answer = await answer_of(emu, thief, forge_press(emu, thief, empty["message_id"], data))
        assert answer["text"] == "Картинка не найдена.", action
    stale = await answer_of(emu, thief, forge_press(emu, thief, empty["message_id"], "img:boom:zz"))
    assert "устарела" in stale["text"]
    query = forge_press(emu, thief, empty["message_id"], "galm:zip:0")
    await answer_of(emu, thief, query)
    await bot_message(emu, thief, text="Пока нечего выгружать")
    row = await image_row(admin_pool, image_id)
    assert row is not None
    assert (row["is_favorite"], row["telegram_file_id"]) == (False, None)
    assert await admin_pool.fetchval("SELECT count(*) FROM share_links") == 0
    assert not [m for m in await emu.bot_messages(thief) if m.get("photo") or m.get("document")]


async def test_inline_mode_lists_only_the_users_own_favourites(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool, images_store: ObjectStore
) -> None:
    owner = (await emu.create_user("Ina"))["id"]
    other = (await emu.create_user("Oleg"))["id"]
    newcomer = (await emu.create_user("New"))["id"]
    for uid in (owner, other):
        await seed_user(admin_pool, uid)
    mine = await seed_gallery(admin_pool, images_store, owner, 3)
    theirs = await seed_gallery(admin_pool, images_store, other, 1, prompt="a castle")
    for image_id in (*mine, *theirs):  # as if each had been sent once
        data = await object_bytes(
            images_store, f"gen/{await harness_generation(admin_pool, image_id)}/0.png"
        )
        file_id = emu.world.files.add_photo(data)[-1]["file_id"]
        await admin_pool.execute(
            "UPDATE generated_images SET telegram_file_id = $2 WHERE id = $1", image_id, file_id
        )
    await admin_pool.execute(
        "UPDATE generated_images SET is_favorite = true WHERE id = ANY($1)",
        [mine[0], mine[2], theirs[0]],
    )

    answer = await emu.inline.wait_answer(emu.inline.query(owner, ""))
    assert answer["is_personal"]
    assert {r["id"] for r in answer["results"]} == {mine[0].hex, mine[2].hex}
    assert {r["type"] for r in answer["results"]} == {"photo"}
    narrowed = await emu.inline.wait_answer(emu.inline.query(owner, "beach #2"))
    assert [r["id"] for r in narrowed["results"]] == [mine[2].hex]
    answer = await emu.inline.wait_answer(emu.inline.query(other, ""))
    assert [r["id"] for r in answer["results"]] == [theirs[0].hex]
    nothing = await emu.inline.wait_answer(emu.inline.query(newcomer, "%"))
    assert nothing["results"] == []
    assert nothing["button"]["start_parameter"] == "gallery"
    query_id = emu.inline.query(owner, "")
    await emu.inline.wait_answer(query_id)
    posted = emu.inline.choose(owner, query_id, mine[2].hex)
    assert posted["via_bot"]["username"] == "aisha_sandbox_bot"
    assert posted["photo"][-1]["file_id"] == await admin_pool.fetchval(
        "SELECT telegram_file_id FROM generated_images WHERE id = $1", mine[2]
    )
