"""Generation in the bot, end to end in one process: real aiogram polling the Telegram
emulator, real NATS (JetStream, KV, Object Store) and a freshly migrated PostgreSQL.

The backend is played by the test: it reads `GenerationRequested` / `DescribeRequested` from
JetStream and answers with the events the trainer and the status service would publish.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from contracts import (
    DescribeRequested,
    FailureReason,
    GeneratedImage,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    GenerationSubmitted,
    PromptDescribed,
    new_event_id,
    utcnow,
)
from sandbox.telegram import TelegramEmulator
from tests.botkit import (
    BotUnderTest,
    Json,
    answer_of,
    bot_message,
    buttons,
    current,
    events_of,
    eventually,
    file_bytes,
    forge_press,
    press,
    publish,
)
from tests.integration import generation_harness as harness
from tests.integration.generation_harness import (
    TRIGGER,
    complete,
    picture,
    seed_avatar,
    seed_user,
)

# the harness's fixture, used here by name (emu, bot, js, admin_pool: tests/botkit.py)
images_store = harness.images_store

REQUESTED = "aisha.generation.requested"


async def generation_rows(pool: asyncpg.Pool, uid: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM generations WHERE user_id = $1 ORDER BY created_at", uid
    )
    return rows


async def requested(js: JetStreamContext, generation_id: uuid.UUID) -> GenerationRequested:
    async def find() -> list[GenerationRequested]:
        return await events_of(js, REQUESTED, GenerationRequested, generation_id=str(generation_id))

    [event] = await eventually(find)
    assert isinstance(event, GenerationRequested)
    return event


async def open_source_screen(emu: TelegramEmulator, uid: int) -> Json:
    """/start → Generate → the (only) avatar → the style / prompt screen."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="gen:home")
    await press(emu, uid, menu, "gen:home")
    picker = await bot_message(emu, uid, button="gen:avatar:")
    await press(emu, uid, picker, "gen:avatar:")
    return await bot_message(emu, uid, button="gcat:")


async def test_generate_from_a_template_and_deliver_an_album(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Anna"))["id"]
    avatar_id = await seed_avatar(admin_pool, uid)
    source = await open_source_screen(emu, uid)
    assert "Anna" in source["text"]
    await press(emu, uid, source, "gcat:business")
    styles = await bot_message(emu, uid, text="Corporate headshot", button="gsty:")
    assert styles["message_id"] == source["message_id"]  # one message, edited in place
    await press(emu, uid, styles, "gsty:headshot")
    settings = await bot_message(emu, uid, text="Format: 1:1", button="gen:go")
    await press(emu, uid, settings, "gar:3_4")
    await bot_message(emu, uid, text="Format: 3:4")
    settings = await bot_message(emu, uid, text="Format: 3:4", button="gnum:3")
    await press(emu, uid, settings, "gnum:3")
    settings = await bot_message(emu, uid, text="Pictures: 3", button="gen:go")
    await press(emu, uid, settings, "gen:go")
    queued = await bot_message(emu, uid, text="Generating 3 × 3:4")
    assert queued["message_id"] == source["message_id"]

    [row] = await generation_rows(admin_pool, uid)
    assert row["prompt"].startswith(f"corporate headshot photo of {TRIGGER} woman wearing")
    assert (row["style_id"], row["aspect_ratio"], row["num_images"], row["status"]) == (
        "headshot", "3:4", 3, "pending",
    )  # fmt: skip
    assert (str(row["avatar_id"]), row["lora_scale"]) == (avatar_id, 1.0)
    assert row["progress_message_id"] == queued["message_id"]
    event = await requested(js, row["id"])
    assert (event.user_id, event.avatar_id, event.prompt, event.aspect_ratio) == (
        uid, avatar_id, row["prompt"], "3:4",
    )  # fmt: skip
    assert (event.num_images, event.seed) == (3, row["seed"])

    gid = str(row["id"])
    await publish(js, GenerationSubmitted(
        event_id=new_event_id(), occurred_at=utcnow(), generation_id=gid, user_id=uid,
        request_id="req-1", endpoint="fal-ai/flux-lora",
    ))  # fmt: skip
    await bot_message(emu, uid, text="Drawing 3 × 3:4")
    blobs = await complete(
        js, admin_pool, images_store, gid, [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    )
    controls = await bot_message(emu, uid, text="Ready: 3 pictures", button="grun:again")
    assert {b["callback_data"].split(":")[0] for b in buttons(controls)} >= {"grun", "gal"}
    album = [m for m in await emu.bot_messages(uid) if m.get("media_group_id")]
    assert len(album) == 3
    assert "Corporate headshot" in album[0]["caption"]
    # The progress message is removed after the results are out (the sender may still be
    # working through its queue when the controls arrive).
    progress_id = queued["message_id"]
    await emu.wait_for(
        lambda: any(
            e["deleted"]
            for e in emu.world.transcript(uid)["messages"]
            if e["message_id"] == progress_id
        ),
        within=10,
    )
    assert await current(emu, uid, progress_id) is None
    sent_bytes = [file_bytes(emu, m["photo"][-1]["file_id"]) for m in album]
    assert sent_bytes == blobs

    async def stored_ids() -> list[str] | None:
        rows = await admin_pool.fetch(
            "SELECT telegram_file_id FROM generated_images WHERE generation_id = $1 "
            "ORDER BY position", row["id"],
        )  # fmt: skip
        ids = [r["telegram_file_id"] for r in rows]
        return ids if all(ids) else None

    assert await eventually(stored_ids) == [m["photo"][-1]["file_id"] for m in album]
    status = await admin_pool.fetchval("SELECT status FROM generations WHERE id = $1", row["id"])
    assert status == "completed"

    # the same completion again (a redelivery) sends nothing more
    count = len(await emu.bot_messages(uid))
    await complete_again(js, admin_pool, gid, uid)
    await asyncio.sleep(0.7)
    assert len(await emu.bot_messages(uid)) == count


async def complete_again(js: JetStreamContext, pool: asyncpg.Pool, gid: str, uid: int) -> None:
    rows = await pool.fetch(
        "SELECT object_name FROM generated_images WHERE generation_id = $1", uuid.UUID(gid)
    )
    images = tuple(
        GeneratedImage(
            object_name=r["object_name"], width=512, height=512, content_type="image/png"
        )
        for r in rows
    )
    await publish(js, GenerationCompleted(
        event_id=new_event_id(), occurred_at=utcnow(), generation_id=gid, user_id=uid,
        request_id="req-dup", images=images, seed=1,
    ))  # fmt: skip


async def test_free_text_prompt_again_and_more_like_this(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Olga"))["id"]
    await seed_avatar(admin_pool, uid, "Olga")
    source = await open_source_screen(emu, uid)
    await press(emu, uid, source, "gen:own")
    await bot_message(emu, uid, text="in your own words")
    await emu.send_text(uid, "word " * 2000)
    await bot_message(emu, uid, text="has 9999 characters; the limit is 1000")
    assert await generation_rows(admin_pool, uid) == []
    await emu.send_text(uid, "in a red coat\u200b on a rainy   street\u202e")
    settings = await bot_message(emu, uid, text="Prompt:", button="gen:go")
    assert "in a red coat on a rainy street" in settings["text"]
    await press(emu, uid, settings, "gnum:1")
    settings = await bot_message(emu, uid, text="Pictures: 1", button="gen:go")
    await press(emu, uid, settings, "gen:go")
    await bot_message(emu, uid, text="Generating 1 × 1:1")
    [first] = await generation_rows(admin_pool, uid)
    assert first["prompt"] == f"photo of {TRIGGER} woman, in a red coat on a rainy street"
    assert first["user_prompt"] == "in a red coat on a rainy street"
    assert first["style_id"] is None

    await complete(js, admin_pool, images_store, str(first["id"]), [(10, 20, 30)])
    single = await bot_message(emu, uid, button="grun:again")
    assert single.get("photo")
    assert "media_group_id" not in single  # one picture: sendPhoto
    assert "in a red coat" in single["caption"]
    await press(emu, uid, single, "grun:again")
    await bot_message(emu, uid, text="Generating 1 × 1:1")
    await press(emu, uid, single, "grun:more")

    async def three() -> list[asyncpg.Record] | None:
        rows = await generation_rows(admin_pool, uid)
        return rows if len(rows) == 3 else None

    _, again, more = await eventually(three)
    assert (again["parent_id"], more["parent_id"]) == (first["id"], first["id"])
    assert again["prompt"] == first["prompt"]
    assert again["seed"] != first["seed"]
    assert (again["aspect_ratio"], again["num_images"]) == ("1:1", 1)
    assert more["seed"] == first["seed"] + 2  # the second follow-up of this family
    assert more["prompt"].startswith(first["prompt"] + ", ")
    assert more["prompt"] != first["prompt"]
    assert (await requested(js, more["id"])).seed == more["seed"]


async def test_an_nsfw_picture_is_withheld_with_a_note(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Nina"))["id"]
    await seed_avatar(admin_pool, uid, "Nina")
    source = await open_source_screen(emu, uid)
    await press(emu, uid, source, "gcat:travel")
    styles = await bot_message(emu, uid, button="gsty:beach")
    await press(emu, uid, styles, "gsty:beach")
    settings = await bot_message(emu, uid, text="Pictures: 2", button="gen:go")
    await press(emu, uid, settings, "gen:go")
    await bot_message(emu, uid, text="Generating 2")
    [row] = await generation_rows(admin_pool, uid)
    blobs = await complete(
        js, admin_pool, images_store, str(row["id"]), [(1, 2, 3), (9, 9, 9)], nsfw=(1,)
    )
    shown = await bot_message(emu, uid, text="withheld", button="grun:")
    assert file_bytes(emu, shown["photo"][-1]["file_id"]) == blobs[0]
    photos = [m for m in await emu.bot_messages(uid) if m.get("photo")]
    assert len(photos) == 1
    flagged = await admin_pool.fetchrow(
        "SELECT telegram_file_id FROM generated_images WHERE generation_id = $1 AND nsfw", row["id"]
    )
    assert flagged["telegram_file_id"] is None


async def test_quick_generation_and_the_concurrency_limit(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    uid = (await emu.create_user("Quick", language_code="ru"))["id"]
    await emu.send_command(uid, "generate")
    home = await bot_message(emu, uid, text="Готового аватара пока нет", button="gen:quick")
    await press(emu, uid, home, "gen:quick")
    source = await bot_message(emu, uid, text="без аватара", button="gen:own")
    await press(emu, uid, source, "gen:own")
    await bot_message(emu, uid, text="своими словами")
    await emu.send_text(uid, "a red fox in the snow")
    settings = await bot_message(emu, uid, text="Промпт:", button="gen:go")
    await press(emu, uid, settings, "gen:go")
    await bot_message(emu, uid, text="Создаю 2 × 1:1")
    [row] = await generation_rows(admin_pool, uid)
    assert (row["avatar_id"], row["prompt"], row["lora_scale"]) == (
        None,
        "a red fox in the snow",
        None,
    )
    assert (await requested(js, row["id"])).avatar_id is None

    # a second one runs too; the third is refused while two are in progress
    await emu.send_command(uid, "generate")
    home = await bot_message(emu, uid, text="Готового аватара пока нет", button="gen:quick")
    await press(emu, uid, home, "gen:quick")
    source = await bot_message(emu, uid, text="без аватара", button="gcat:")
    await press(emu, uid, source, "gcat:art")
    styles = await bot_message(emu, uid, text="Аниме", button="gsty:anime")
    await press(emu, uid, styles, "gsty:anime")
    settings = await bot_message(emu, uid, text="Стиль:", button="gen:go")
    await press(emu, uid, settings, "gen:go")
    await eventually(lambda: _count(admin_pool, uid, 2))
    second = (await generation_rows(admin_pool, uid))[1]
    assert second["prompt"].startswith("anime style illustration of a person")

    await emu.send_command(uid, "generate")
    home = await bot_message(emu, uid, text="Готового аватара пока нет", button="gen:quick")
    await press(emu, uid, home, "gen:quick")
    source = await bot_message(emu, uid, text="без аватара", button="gcat:")
    await press(emu, uid, source, "gcat:art")
    styles = await bot_message(emu, uid, button="gsty:watercolor")
    await press(emu, uid, styles, "gsty:watercolor")
    settings = await bot_message(emu, uid, text="Стиль:", button="gen:go")
    refused = await answer_of(emu, uid, await press(emu, uid, settings, "gen:go"))
    assert refused["show_alert"]
    assert "уже идут 2 генерации" in refused["text"]
    assert len(await generation_rows(admin_pool, uid)) == 2
    unchanged = await current(emu, uid, settings["message_id"])
    assert unchanged is not None
    assert unchanged["text"] == settings["text"]

    # one finishes (fails, in Russian, with "again"): the next one is accepted
    await publish(js, GenerationFailed(
        event_id=new_event_id(), occurred_at=utcnow(), generation_id=str(row["id"]),
        user_id=uid, reason=FailureReason.SPEND_LIMIT,
    ))  # fmt: skip
    # the end is a new message (notified); the "generating…" message it ends is deleted
    failed = await bot_message(emu, uid, text="дневной лимит генераций", button="grun:again")
    progress_id = (await generation_rows(admin_pool, uid))[0]["progress_message_id"]
    assert failed["message_id"] > progress_id
    assert emu.world.messages[uid][failed["message_id"]].notified
    await eventually(lambda: _deleted(emu, uid, progress_id))
    await press(emu, uid, settings, "gen:go")
    await eventually(lambda: _count(admin_pool, uid, 3))


async def _deleted(emu: TelegramEmulator, chat: int, message_id: int) -> bool:
    return emu.world.messages[chat][message_id].deleted


async def _count(pool: asyncpg.Pool, uid: int, want: int) -> bool:
    return len(await generation_rows(pool, uid)) == want


async def test_photo_to_prompt(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Dasha"))["id"]
    avatar_id = await seed_avatar(admin_pool, uid, "Dasha")
    source = await open_source_screen(emu, uid)
    await press(emu, uid, source, "gen:describe")
    await bot_message(emu, uid, text="Send a picture you like")
    await emu.send_document(uid, b"%PDF-1.4 nope", "cv.pdf", "application/pdf")
    await bot_message(emu, uid, text="Please send a picture")
    await emu.send_photo(uid, picture((120, 30, 60), (640, 480), "JPEG"))
    looking = await bot_message(emu, uid, text="Looking at the picture")

    async def asked() -> list[DescribeRequested]:
        return await events_of(
            js, "aisha.generation.describe_requested", DescribeRequested, user_id=uid
        )

    [request] = await eventually(asked)
    assert (request.avatar_id, request.object_name) == (avatar_id, f"refs/{request.request_id}.jpg")
    stored = (await images_store.get(request.object_name)).data or b""
    assert stored[:2] == b"\xff\xd8"  # a JPEG

    stale = PromptDescribed(
        event_id=new_event_id(), occurred_at=utcnow(), request_id=str(uuid.uuid4()), user_id=uid,
        avatar_id=avatar_id, caption="A cat",
    )  # fmt: skip
    await publish(js, stale)
    await publish(js, PromptDescribed(
        event_id=new_event_id(), occurred_at=utcnow(), request_id=request.request_id,
        user_id=uid, avatar_id=avatar_id,
        caption="A photograph of a young woman reading a book in a cozy cafe.",
    ))  # fmt: skip
    proposed = await bot_message(emu, uid, text="Proposed prompt", button="gen:cfg")
    assert proposed["message_id"] == looking["message_id"]
    assert f"photo of {TRIGGER} woman, reading a book in a cozy cafe" in proposed["text"]
    assert "A cat" not in proposed["text"]
    assert any(b["callback_data"].startswith("gen:edit") for b in buttons(proposed))
    await press(emu, uid, proposed, "gen:cfg")
    settings = await bot_message(emu, uid, text="reading a book", button="gen:go")
    # "Edit" (still on the proposal the user may scroll back to) shows the prompt to copy
    forge_press(emu, uid, settings["message_id"], "gen:edit:")
    editing = await bot_message(emu, uid, text="Here is the current prompt")
    assert any(e["type"] == "code" for e in editing["entities"])  # ready to copy
    assert "reading a book in a cozy cafe" in editing["text"]
    await emu.send_text(uid, f"{TRIGGER} reading a book in a cozy cafe, rain on the window")
    settings = await bot_message(emu, uid, text="rain on the window", button="gen:go")
    await press(emu, uid, settings, "gen:go")
    await bot_message(emu, uid, text="Generating")
    [row] = await generation_rows(admin_pool, uid)
    assert row["prompt"] == f"{TRIGGER} reading a book in a cozy cafe, rain on the window"

    async def reference_gone() -> bool:
        try:
            await images_store.get(request.object_name)
        except NotFoundError:
            return True
        return False

    assert await eventually(reference_gone)


async def test_other_users_ids_and_forged_buttons(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    owner = (await emu.create_user("Owner"))["id"]
    thief = (await emu.create_user("Thief"))["id"]
    avatar_id = await seed_avatar(admin_pool, owner, "Secret")
    await seed_user(admin_pool, thief)
    generation_id = await admin_pool.fetchval(
        "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, seed, "
        "status) VALUES ($1, $2, 'p', '1:1', 1, 7, 'completed') RETURNING id",
        owner, uuid.UUID(avatar_id),
    )  # fmt: skip
    await emu.send_command(thief, "start")
    menu = await bot_message(emu, thief, button="gen:home")
    cases = {
        f"grun:again:{generation_id.hex}": "generation was not found",
        f"grun:more:{generation_id.hex}": "generation was not found",
        f"gen:avatar:{uuid.UUID(avatar_id).hex}": "not available",
        "gen:go": "outdated",  # no flow in progress
        "gar:2_1": "outdated",  # not a format we offer
        "gnum:9": "outdated",
        "gsty:headshot": "outdated",
    }
    for data, expected in cases.items():
        answer = await answer_of(emu, thief, forge_press(emu, thief, menu["message_id"], data))
        assert expected in answer["text"], data
    rows = await admin_pool.fetch("SELECT id FROM generations")
    assert [r["id"] for r in rows] == [generation_id]
    assert await events_of(js, REQUESTED, GenerationRequested, user_id=thief) == []
