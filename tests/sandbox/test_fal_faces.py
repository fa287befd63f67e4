"""The emulator's pictures show the LoRA's person: the LoRA trained on a real person's
photos carries one of them, a generation with it pastes that face into the drawing (found
and recognised by the bot's own likeness code), and the `other_face` fault shows someone
else instead — what the bot's likeness score is tested against end to end."""

from __future__ import annotations

import io
import zipfile

import fal_client
import httpx

from sandbox.fal import FalEmulator, faces
from services.bot.avatars.likeness import Band, best, identity_of
from services.bot.avatars.likeness_faces import faces_in
from tests import faces as photos


def _archive(count: int = 10) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for i in range(count):
            bundle.writestr(f"{i:02}.jpg", photos.person(i))
    return buffer.getvalue()


async def _pictures(
    fal: fal_client.AsyncClient, http: httpx.AsyncClient, lora_url: str
) -> list[bytes]:
    result = await fal.subscribe(
        "fal-ai/flux-lora",
        {"prompt": "ohwx man in a suit", "seed": 5, "num_images": 2,
         "image_size": "portrait_4_3", "loras": [{"path": lora_url, "scale": 1.0}]},
    )  # fmt: skip
    return [(await http.get(image["url"])).content for image in result["images"]]


async def test_pictures_show_the_trained_person_or_with_the_fault_someone_else(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient, http: httpx.AsyncClient
) -> None:
    url = await fal.upload(_archive(), "application/zip", "photos.zip")
    trained = await fal.subscribe(
        "fal-ai/flux-lora-portrait-trainer", {"images_data_url": url, "trigger_phrase": "ohwx"}
    )
    lora = (await http.get(trained["diffusers_lora_file"]["url"])).content
    assert faces.carried(lora) is not None
    identity = identity_of([faces_in(photos.person(i))[0].embedding for i in range(10)])
    assert identity is not None

    own = await _pictures(fal, http, trained["diffusers_lora_file"]["url"])
    assert len(set(own)) == 2  # still distinct pictures per index
    for picture in own:
        score = best(faces_in(picture), identity)
        assert score is not None
        assert score.band is Band.STRONG, score

    fal_emu.add_fault("other_face", app_id="fal-ai/flux-lora", times=1)
    for picture in await _pictures(fal, http, trained["diffusers_lora_file"]["url"]):
        score = best(faces_in(picture), identity)
        assert score is not None
        assert score.band is Band.WEAK, score


async def test_a_lora_without_a_photo_draws_no_face(
    fal: fal_client.AsyncClient, http: httpx.AsyncClient
) -> None:
    result = await fal.subscribe("fal-ai/flux-lora", {"prompt": "a lighthouse", "seed": 1})
    picture = (await http.get(result["images"][0]["url"])).content
    assert faces_in(picture) == []
