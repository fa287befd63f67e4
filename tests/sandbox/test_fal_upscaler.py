"""`fal-ai/clarity-upscaler` in the emulator, through the real fal-client: a real picture at
exactly factor × the input's size, the documented schema enforced (422 `detail` lists), and
the assumed input limit refused with a 422 the product can tell the user about."""

from __future__ import annotations

import io

import fal_client
import httpx
import pytest
from PIL import Image

from sandbox.fal import FalEmulator
from sandbox.fal.images import photo

UPSCALER = "fal-ai/clarity-upscaler"


@pytest.mark.parametrize("factor", [2, 4])
async def test_upscale_returns_a_real_image_at_exactly_the_factor(
    fal: fal_client.AsyncClient, http: httpx.AsyncClient, factor: int
) -> None:
    url = await fal.upload(photo(1, (160, 96)), "image/jpeg", "small.jpg")
    result = await fal.subscribe(UPSCALER, {"image_url": url, "upscale_factor": factor, "seed": 5})
    image = result["image"]
    assert (image["width"], image["height"]) == (160 * factor, 96 * factor)
    assert image["content_type"] == "image/jpeg"
    assert result["seed"] == 5
    data = (await http.get(image["url"])).content
    assert image["file_size"] == len(data)
    with Image.open(io.BytesIO(data)) as decoded:
        assert (decoded.format, decoded.size) == ("JPEG", (160 * factor, 96 * factor))


@pytest.mark.parametrize(
    ("arguments", "field", "kind"),
    [
        ({"upscale_factor": 2}, "image_url", "value_error.missing"),
        (
            {"image_url": "x", "upscale_factor": 8},
            "upscale_factor",
            "value_error.number.not_in_range",
        ),
        ({"image_url": "x", "upscale_factor": "2"}, "upscale_factor", "type_error"),
        ({"image_url": "x", "creativity": 1.5}, "creativity", "value_error.number.not_in_range"),
        ({"image_url": "x", "enable_safety_checker": "yes"}, "enable_safety_checker", "type_error"),
    ],
)
async def test_bad_arguments_fail_with_422_detail(
    fal: fal_client.AsyncClient, arguments: dict, field: str, kind: str
) -> None:
    handle = await fal.submit(UPSCALER, arguments)
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    (detail,) = raised.value.response.json()["detail"]
    assert (detail["loc"], detail["type"]) == (["body", field], kind)


async def test_an_input_over_the_assumed_limit_is_refused(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient
) -> None:
    assert fal_emu.settings()["upscale_max_input_pixels"] == 2048 * 2048
    fal_emu.configure(upscale_max_input_pixels=100 * 100)
    url = await fal.upload(photo(2, (128, 128)), "image/jpeg", "big.jpg")
    handle = await fal.submit(UPSCALER, {"image_url": url, "upscale_factor": 2})
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    (detail,) = raised.value.response.json()["detail"]
    assert detail["type"] == "image_too_large"
    assert "128x128" in detail["msg"]
