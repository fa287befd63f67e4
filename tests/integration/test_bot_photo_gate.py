"""The photo quality gate through the bot: real updates from the Telegram emulator, the real
dlib detector in the bot's worker process, a migrated PostgreSQL.

Each bad picture of issue 21 (no face, two faces, a tiny face, blur, darkness, overexposure,
a screenshot, a cartoon, an animal, another person, near and exact copies) is refused with
its localized reason, in a reply to the photo it concerns; nothing is stored or charged;
the avatar is then completed with good photos and the card with "Start training" shows the
check of the whole set.
"""

from __future__ import annotations

import io

import asyncpg
from PIL import Image, ImageEnhance, ImageFilter

from sandbox.telegram import TelegramEmulator
from tests import faces
from tests.botkit import BotUnderTest, Json, bot_message, photo, press

BAD_ORDER = (
    "no_face",
    "two_faces",
    "tiny_face",
    "blurry",
    "dark",
    "overexposed",
    "screenshot",
    "cartoon",
    "animal",
)
REASON_EN = {
    "no_face": "no face found",
    "several_faces": "more than one face",
    "tiny_face": "the face is too small",
    "blurry": "too blurry",
    "too_dark": "too dark",
    "overexposed": "overexposed",
}


async def new_avatar(emu: TelegramEmulator, uid: int, kind: str, waiting: str) -> None:
    """/start → Create → name → training type (→ gender, a portrait only), up to the photo
    counter."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:create")
    await press(emu, uid, menu, "menu:create")
    await bot_message(emu, uid, text="✏️")
    await emu.send_text(uid, "Me")
    types = await bot_message(emu, uid, button="training_type:pick")
    await press(emu, uid, types, f"training_type:pick:{kind}")
    if kind == "portrait":
        gender = await bot_message(emu, uid, button="gender:")
        await press(emu, uid, gender, "gender:female")
    await bot_message(emu, uid, text=waiting)


async def photos_of(pool: asyncpg.Pool, uid: int) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM photos WHERE user_id = $1", uid))


async def charges(pool: asyncpg.Pool, uid: int) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM credit_entries WHERE user_id = $1 AND amount < 0", uid
        )
    )


def replied_to(message: Json) -> int | None:
    parent = message.get("reply_to_message")
    return None if parent is None else int(parent["message_id"])


async def test_each_bad_photo_is_refused_with_its_reason_then_good_ones_complete_the_set(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = (await emu.create_user("Gate", language_code="en"))["id"]
    await new_avatar(emu, uid, "portrait", "0 of 10")
    for seed in range(3):  # the person, so a stranger can be told apart
        await emu.send_photo(uid, photo(seed))
    await bot_message(emu, uid, text="3 of 10")

    bad = [faces.BAD[case][0]() for case in BAD_ORDER]
    stranger = faces.jpeg(faces.fit(faces.original("biden.jpg")))
    sent = await emu.send_album(uid, [*bad, stranger])
    reply = await bot_message(emu, uid, text="not accepted")
    text = reply["text"]
    for number, case in enumerate(BAD_ORDER, start=1):
        reason = REASON_EN[faces.BAD[case][1]]
        assert f"Photo {number}: {reason}" in text, (case, text)
    assert "Photo 10: seems to show a different person" in text
    assert replied_to(reply) == sent[0]["message_id"]
    assert await photos_of(admin_pool, uid) == 3

    # a re-encoded, slightly smaller copy, and ten exact copies of one new photo
    near = faces.original("obama.jpg").resize((700, 874))
    await emu.send_photo(uid, faces.jpeg(near, quality=70))
    refused = await bot_message(emu, uid, text="almost the same")
    assert "Photo 1: almost the same as a photo you already sent" in refused["text"]
    await emu.send_album(uid, [photo(3)] * 10)
    copies = await bot_message(emu, uid, text="9 × duplicate")
    assert copies["message_id"] != refused["message_id"]
    assert await photos_of(admin_pool, uid) == 4

    # an animated picture sent as a file
    still = Image.open(io.BytesIO(photo(11)))
    frames = [still, ImageEnhance.Brightness(still).enhance(0.8)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=200)
    await emu.send_document(uid, buf.getvalue(), "me.webp", "image/webp")
    animated = await bot_message(emu, uid, text="an animated image")
    assert "Photo 1: an animated image" in animated["text"]
    assert await photos_of(admin_pool, uid) == 4

    # good photos still complete the avatar; nothing was charged on the way
    await emu.send_album(uid, [photo(seed) for seed in range(4, 10)])
    card = await bot_message(emu, uid, text="10 photos", button="training:start")
    assert "Photo check: every photo shows one face" in card["text"]
    assert await charges(admin_pool, uid) == 0


async def test_reasons_are_russian_for_a_russian_user_and_soft_warnings_keep_the_photo(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = (await emu.create_user("Иван", language_code="ru"))["id"]
    await new_avatar(emu, uid, "portrait", "0 из 10")
    blurry = faces.BAD["blurry"][0]()
    message = await emu.send_photo(uid, blurry)
    reply = await bot_message(emu, uid, text="не приняты")
    assert "Фото 1: слишком размыто" in reply["text"]
    assert replied_to(reply) == message["message_id"]

    dim = ImageEnhance.Brightness(faces.fit(faces.original("obama2.jpg"))).enhance(0.5)
    kept = await emu.send_photo(uid, faces.jpeg(dim))
    warning = await bot_message(emu, uid, text="темновато")
    assert "Приняты, но стоит проверить" in warning["text"]
    assert replied_to(warning) == kept["message_id"]
    assert await photos_of(admin_pool, uid) == 1
    assert await admin_pool.fetchval("SELECT warnings FROM photos WHERE user_id = $1", uid) == [
        "dim"
    ]


async def test_a_stranger_sent_first_is_named_in_the_summary_before_training(
    emu: TelegramEmulator, bot: BotUnderTest
) -> None:
    uid = (await emu.create_user("Early", language_code="en"))["id"]
    await new_avatar(emu, uid, "portrait", "0 of 10")
    await emu.send_photo(uid, faces.jpeg(faces.fit(faces.original("biden.jpg"))))
    await bot_message(emu, uid, text="1 of 10")
    await emu.send_album(uid, [photo(seed) for seed in range(10)])
    card = await bot_message(emu, uid, text="11 photos", button="training:start")
    assert "Photos 1 may show someone else" in card["text"]


async def test_style_avatars_need_no_face_but_still_sharp_pictures(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = (await emu.create_user("Stylist", language_code="en"))["id"]
    await new_avatar(emu, uid, "style", "0 of 10")
    await emu.send_photo(uid, faces.BAD["animal"][0]())  # a cat: no face needed for a style
    await bot_message(emu, uid, text="1 of 10")
    blurred = faces.jpeg(
        faces.fit(faces.original("coffee.jpg")).filter(ImageFilter.GaussianBlur(6))
    )
    await emu.send_photo(uid, blurred)
    reply = await bot_message(emu, uid, text="not accepted")
    assert "Photo 1: too blurry" in reply["text"]
    assert await photos_of(admin_pool, uid) == 1
