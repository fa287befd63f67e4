"""`fal-ai/flux-lora/image-to-image` in the emulator, through the real fal-client: a real
picture at the input's size (or the requested `image_size`) that follows the input more the
lower the strength, the documented schema enforced (422 `detail` lists), NSFW flagged like
`fal-ai/flux-lora`, and the assumed input limit refused with a 422."""

from __future__ import annotations

import io

import fal_client
import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from sandbox.fal import FalEmulator
from sandbox.fal.images import photo

I2I = "fal-ai/flux-lora/image-to-image"


def _difference(a: bytes, b: bytes) -> float:
    with Image.open(io.BytesIO(a)) as x, Image.open(io.BytesIO(b)) as y:
        diff = ImageChops.difference(x.convert("RGB"), y.convert("RGB").resize(x.size))
        return sum(ImageStat.Stat(diff).mean) / 3


async def test_redraws_at_the_input_size_closer_to_it_at_a_low_strength(
    fal: fal_client.AsyncClient, http: httpx.AsyncClient
) -> None:
    source = photo(1, (320, 192))
    url = await fal.upload(source, "image/jpeg", "ref.jpg")
    lora = [{"path": "https://example.com/lora.safetensors", "scale": 1.0}]
    pictures = {}
    for strength in (0.3, 0.95):
        arguments = {"prompt": "photo of TOK woman", "image_url": url, "strength": strength,
                     "loras": lora, "seed": 5}  # fmt: skip
        result = await fal.subscribe(I2I, arguments)
        (image,) = result["images"]
        assert (image["width"], image["height"]) == (320, 192)
        assert result["has_nsfw_concepts"] == [False]
        assert result["seed"] == 5
        pictures[strength] = (await http.get(image["url"])).content
        with Image.open(io.BytesIO(pictures[strength])) as decoded:
            assert (decoded.format, decoded.size) == ("JPEG", (320, 192))
    assert _difference(source, pictures[0.3]) < _difference(source, pictures[0.95])
    sized = await fal.subscribe(
        I2I, {"prompt": "p", "image_url": url, "image_size": "square", "seed": 1}
    )
    assert (sized["images"][0]["width"], sized["images"][0]["height"]) == (512, 512)


@pytest.mark.parametrize(
    ("arguments", "loc", "kind"),
    [
        ({"prompt": "p"}, ["body", "image_url"], "value_error.missing"),
        ({"image_url": "x"}, ["body", "prompt"], "value_error.missing"),
        ({"prompt": "p", "image_url": "x", "strength": 0}, ["body", "strength"],
         "value_error.number.not_in_range"),
        ({"prompt": "p", "image_url": "x", "strength": 1.2}, ["body", "strength"],
         "value_error.number.not_in_range"),
        ({"prompt": "p", "image_url": "x", "strength": "0.8"}, ["body", "strength"], "type_error"),
        ({"prompt": "p", "image_url": "x", "num_inference_steps": 51},
         ["body", "num_inference_steps"], "value_error.number.not_in_range"),
        ({"prompt": "p", "image_url": "x", "loras": [{"scale": 1}]}, ["body", "loras", 0, "path"],
         "value_error.missing"),
        ({"prompt": "p", "image_url": "x", "loras": "x"}, ["body", "loras"], "type_error"),
    ],
)  # fmt: skip
async def test_bad_arguments_fail_with_422_detail(
    fal: fal_client.AsyncClient, arguments: dict, loc: list, kind: str
) -> None:
    handle = await fal.submit(I2I, arguments)
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    (detail,) = raised.value.response.json()["detail"]
    assert (detail["loc"], detail["type"]) == (loc, kind)


async def test_nsfw_is_flagged_and_blacked_out(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient, http: httpx.AsyncClient
) -> None:
    url = await fal.upload(photo(3, (128, 128)), "image/jpeg", "ref.jpg")
    fal_emu.add_fault("nsfw", contains="beach", times=1)
    result = await fal.subscribe(I2I, {"prompt": "on a beach", "image_url": url})
    assert result["has_nsfw_concepts"] == [True]
    data = (await http.get(result["images"][0]["url"])).content
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.convert("L").getextrema()[1] < 16


async def test_an_input_over_the_assumed_limit_is_refused(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient
) -> None:
    assert fal_emu.settings()["image_to_image_max_input_pixels"] == 4096 * 4096
    fal_emu.configure(image_to_image_max_input_pixels=100 * 100)
    url = await fal.upload(photo(2, (128, 128)), "image/jpeg", "big.jpg")
    handle = await fal.submit(I2I, {"prompt": "p", "image_url": url})
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    (detail,) = raised.value.response.json()["detail"]
    assert detail["type"] == "image_too_large"
    assert "128x128" in detail["msg"]
