"""The emulated FAL apps: input validation like FAL (422 `detail` lists) and their results."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.fal import animator, faces, image_to_image, images, upscaler
from sandbox.fal.jobs import Clock, Job, JobFailure, validation_error
from sandbox.fal.storage import CDN_HOST, Storage

PORTRAIT_TRAINER = "fal-ai/flux-lora-portrait-trainer"
FAST_TRAINER = "fal-ai/flux-lora-fast-training"
FLUX_LORA = "fal-ai/flux-lora"
FLUX_DEV = "fal-ai/flux/dev"
CAPTION = "fal-ai/florence-2-large/detailed-caption"
TRAINERS = (PORTRAIT_TRAINER, FAST_TRAINER)
GENERATORS = (FLUX_LORA, FLUX_DEV)
UPSCALER = upscaler.APP_ID
IMAGE_TO_IMAGE = image_to_image.APP_ID
ANIMATOR = animator.APP_ID
APPS = (*TRAINERS, *GENERATORS, CAPTION, UPSCALER, IMAGE_TO_IMAGE, ANIMATOR)

_TYPES: dict[str, tuple[type, ...]] = {
    "images_data_url": (str,),
    "trigger_phrase": (str,),
    "trigger_word": (str,),
    "steps": (int,),
    "learning_rate": (float, int),
    "multiresolution_training": (bool,),
    "subject_crop": (bool,),
    "create_masks": (bool,),
    "is_style": (bool,),
    "prompt": (str,),
    "loras": (list,),
    "image_size": (str, dict),
    "num_images": (int,),
    "num_inference_steps": (int,),
    "guidance_scale": (float, int),
    "seed": (int,),
    "enable_safety_checker": (bool,),
    "output_format": (str,),
    "image_url": (str,),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    PORTRAIT_TRAINER: ("images_data_url",),
    FAST_TRAINER: ("images_data_url",),
    FLUX_LORA: ("prompt",),
    FLUX_DEV: ("prompt",),
    CAPTION: ("image_url",),
}


def _err(field: str, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": type_}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(app_id: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """FAL-style (pydantic) errors for one request's arguments; empty when valid."""
    if app_id == UPSCALER:
        return upscaler.validate(args)
    if app_id == IMAGE_TO_IMAGE:
        return image_to_image.validate(args)
    if app_id == ANIMATOR:
        return animator.validate(args)
    errors = [
        _err(f, "field required", "value_error.missing") for f in _REQUIRED[app_id] if f not in args
    ]
    for name, value in args.items():
        kinds = _TYPES.get(name)
        if kinds is None or value is None:
            continue
        if (bool not in kinds and isinstance(value, bool)) or not isinstance(value, kinds):
            errors.append(_err(name, f"invalid type for {name}", "type_error"))
    if errors:
        return errors
    if "steps" in args and not 1 <= args["steps"] <= 10000:
        errors.append(_err("steps", "ensure this value is between 1 and 10000", "value_error"))
    if "num_images" in args and not 1 <= args["num_images"] <= 4:
        errors.append(_err("num_images", "ensure this value is between 1 and 4", "value_error"))
    if args.get("output_format", "jpeg") not in images.FORMATS:
        errors.append(
            _err("output_format", "value is not a valid enumeration member", "type_error.enum")
        )
    size = args.get("image_size")
    if isinstance(size, str) and size not in images.IMAGE_SIZE_PRESETS:
        errors.append(
            _err("image_size", "value is not a valid enumeration member", "type_error.enum")
        )
    if isinstance(size, dict) and not all(
        _is_int(size.get(k)) and 16 <= size[k] <= 2048 for k in ("width", "height")
    ):
        errors.append(
            _err("image_size", "width and height must be integers in 16..2048", "value_error")
        )
    for n, lora in enumerate(args.get("loras") or []):
        if not isinstance(lora, dict) or not isinstance(lora.get("path"), str):
            errors.append(
                {
                    "loc": ["body", "loras", n, "path"],
                    "msg": "field required",
                    "type": "value_error.missing",
                }
            )
    if "prompt" in args and not args["prompt"].strip():
        errors.append(_err("prompt", "ensure this value has at least 1 characters", "value_error"))
    return errors


@dataclass(slots=True)
class AppSettings:
    """Durations (nominal seconds, scaled by the clock) and limits."""

    training_seconds: float = 90.0
    generation_seconds: float = 5.0
    min_training_images: int = 10
    result_ttl_seconds: float = 3600.0
    #: What a trainer prints while it runs: *assumed*, no public source shows FAL's own
    #: (see README): `none`, `tqdm`, `steps` or `noise` (`LOG_PROFILES`).
    log_profile: str = "steps"
    #: The upscaler's largest input in pixels: *assumed* (its page names none), switchable.
    upscale_max_input_pixels: int = upscaler.MAX_INPUT_PIXELS
    #: Image-to-image's largest input in pixels: *assumed* (its page names none).
    image_to_image_max_input_pixels: int = image_to_image.MAX_INPUT_PIXELS


def _tqdm(step: int, steps: int, pct: int) -> str:
    bar = "█" * (pct // 10)
    timing = f"[00:{pct:02d}<00:{100 - pct:02d}, 2.1it/s]"
    return f"Training: {pct:3d}%|{bar:<10}| {step}/{steps} {timing}"


def _noise(step: int, steps: int, pct: int) -> str:
    """Numbers that are not progress: a parser that reads them as such is wrong."""
    return f"loss={0.5 / (1 + step):.4f} lr=9e-05 GPU memory {60 + pct % 30}% used, sample 2/4"


#: Per training tick, the line each profile prints (None: the trainer says nothing).
LOG_PROFILES: dict[str, Callable[[int, int, int], str] | None] = {
    "none": None,
    "tqdm": _tqdm,
    "steps": lambda step, steps, pct: f"Training step {step}/{steps}",
    "noise": _noise,
}


class Apps:
    """Runs a job's app: trainers, generators and the captioner."""

    def __init__(self, storage: Storage, clock: Clock, settings: AppSettings) -> None:
        self._storage = storage
        self._clock = clock
        self.settings = settings

    async def execute(self, job: Job) -> dict[str, Any]:
        errors = validate(job.app_id, job.arguments)
        if errors:
            raise JobFailure(422, errors, "validation_error")
        if job.app_id in TRAINERS:
            return await self._train(job)
        if job.app_id in GENERATORS:
            return await self._generate(job)
        if job.app_id == UPSCALER:
            return await self._upscale(job)
        if job.app_id == IMAGE_TO_IMAGE:
            return await self._image_to_image(job)
        if job.app_id == ANIMATOR:
            return await self._animate(job)
        return await self._caption(job)

    def _ttl(self, job: Job) -> tuple[float, int]:
        """Output files live as long as the submit asked (header), else the assumed default
        `result_ttl_seconds` (clock-scaled); both times the storage's `lifetime_scale`."""
        rule = job.faults.get("url_expiry")
        if rule is None:
            if job.output_lifetime is not None:
                return self._storage.lifetime(job.output_lifetime), 404
            default = self._clock.seconds(self.settings.result_ttl_seconds)
            return default * self._storage.lifetime_scale, 404
        return self._clock.seconds(float(rule.param("seconds", 1.0))), int(
            rule.param("status", 404)
        )

    def _maybe_fail(self, job: Job) -> None:
        rule = job.faults.get("job_failed")
        if rule is not None:
            message = str(rule.param("message", "Training failed: CUDA out of memory"))
            status = int(rule.param("status", 500))
            raise JobFailure(
                status, message, str(rule.param("error_type", "internal_server_error")), message
            )

    def _download(self, field: str, url: str) -> bytes:
        stored = self._storage.by_url(url)
        if stored is None:
            raise validation_error(
                ["body", field], f"Failed to download file from {url}", "file_download_error"
            )
        return stored.data

    async def _train(self, job: Job) -> dict[str, Any]:
        args = job.arguments
        portrait = job.app_id == PORTRAIT_TRAINER
        steps = int(args.get("steps", 2500 if portrait else 1000))
        trigger = args.get("trigger_phrase" if portrait else "trigger_word") or "ohwx"
        profile = LOG_PROFILES[self.settings.log_profile]
        if profile is not None:
            job.log(f"Downloading training data from {args['images_data_url']}")
        archive = self._download("images_data_url", args["images_data_url"])
        try:
            count = await asyncio.to_thread(images.count_images, archive)
        except zipfile.BadZipFile:
            raise validation_error(
                ["body", "images_data_url"], "File is not a zip archive", "value_error"
            ) from None
        if count < self.settings.min_training_images:
            msg = f"At least {self.settings.min_training_images} images are required, found {count}"
            raise validation_error(["body", "images_data_url"], msg, "value_error")
        if profile is not None:
            job.log(f"Found {count} images; preprocessing (subject crop, masks)")
        ticks = 10
        for tick in range(1, ticks + 1):
            await self._clock.sleep(self.settings.training_seconds / ticks)
            if tick == ticks // 2:
                self._maybe_fail(job)
            if profile is not None:
                job.log(profile(steps * tick // ticks, steps, 100 * tick // ticks))
        if profile is not None:
            job.log("Saving LoRA weights")
        ttl, expired = self._ttl(job)
        seed = hashlib.sha256(job.request_id.encode()).digest()
        photo = await asyncio.to_thread(faces.first_photo, archive)
        lora = self._storage.put(
            b"AISHA-SANDBOX-LORA\x00" + seed * 128 + (faces.MARK + photo if photo else b""),
            "application/octet-stream",
            "pytorch_lora_weights.safetensors",
            ttl=ttl,
            expired_status=expired,
        )
        config = {
            "trigger_word": trigger,
            "steps": steps,
            "images": count,
            "app_id": job.app_id,
            "arguments": args,
        }
        config_file = self._storage.put(
            json.dumps(config, indent=2).encode(),
            "application/json",
            "config.json",
            ttl=ttl,
            expired_status=expired,
        )
        return {"diffusers_lora_file": lora.describe(), "config_file": config_file.describe()}

    def _face(self, job: Job, loras: list[str]) -> bytes | None:
        """The person the pictures show: the first LoRA's photo (`faces`), or with the
        `other_face` fault someone else (its `file` param, or the default stranger)."""
        rule = job.faults.get("other_face")
        if rule is not None:
            return faces.stranger(rule.param("file", None))
        for url in loras:
            stored = self._storage.by_url(url)
            if stored is not None and (photo := faces.carried(stored.data)) is not None:
                return photo
        return None

    def _check_loras(self, args: dict[str, Any]) -> list[str]:
        """The LoRA paths; one on our CDN that is gone fails the job as FAL does."""
        loras = [lora["path"] for lora in args.get("loras") or []]
        for n, path in enumerate(loras):
            if f"//{CDN_HOST}/" in path and self._storage.by_url(path) is None:
                msg = f"Failed to download LoRA weights from {path}"
                raise validation_error(
                    ["body", "loras", str(n), "path"], msg, "file_download_error"
                )
        return loras

    @staticmethod
    async def _on_input(work: Callable[..., Any], *args: Any, limit: int) -> Any:
        """`work(*args)` in a thread; its OverflowError (over `limit` pixels) and ValueError
        (undecodable) become the 422s FAL answers for an unusable `image_url`."""
        try:
            return await asyncio.to_thread(work, *args)
        except OverflowError as exc:
            msg = f"Image too large: {exc} exceeds the maximum of {limit} pixels"
            raise validation_error(["body", "image_url"], msg, "image_too_large") from None
        except ValueError:
            raise validation_error(
                ["body", "image_url"], "Could not decode the image", "image_load_error"
            ) from None

    async def _image_to_image(self, job: Job) -> dict[str, Any]:
        """The picture at `image_url` re-drawn (`image_to_image.redraw`) at its own size or
        `image_size`; undecodable or over the assumed input limit → 422."""
        args = dict(job.arguments)
        data = self._download("image_url", args["image_url"])
        limit = self.settings.image_to_image_max_input_pixels
        source = await self._on_input(image_to_image.input_size, data, limit, limit=limit)
        loras = self._check_loras(args)
        width, height = image_to_image.output_size(args, source)
        args.setdefault("seed", random.randrange(2**31))
        steps = int(args.get("num_inference_steps", 28))
        ticks = 4
        for tick in range(1, ticks + 1):
            await self._clock.sleep(self.settings.generation_seconds / ticks)
            job.log(f"Inference step {steps * tick // ticks}/{steps}")
        self._maybe_fail(job)
        nsfw = "nsfw" in job.faults and bool(args.get("enable_safety_checker", True))
        output_format = args.get("output_format", "jpeg")
        _, content_type = images.FORMATS[output_format]
        ttl, expired = self._ttl(job)
        out = []
        for index in range(int(args.get("num_images", 1))):
            if nsfw:
                picture = await asyncio.to_thread(images.black, width, height, output_format)
            else:
                picture = await asyncio.to_thread(
                    image_to_image.redraw, data, args, index, (width, height), "|".join(loras)
                )
            name = f"image_{index}.{'jpg' if output_format == 'jpeg' else 'png'}"
            stored = self._storage.put(picture, content_type, name, ttl=ttl, expired_status=expired)
            out.append(
                {"url": stored.url, "width": width, "height": height, "content_type": content_type}
            )
        return {
            "images": out,
            "timings": {"inference": self._clock.seconds(self.settings.generation_seconds)},
            "seed": args["seed"],
            "has_nsfw_concepts": [nsfw] * len(out),
            "prompt": args["prompt"],
        }

    async def _generate(self, job: Job) -> dict[str, Any]:
        args = job.arguments
        prompt: str = args["prompt"]
        size = args.get("image_size", "landscape_4_3")
        width, height = (
            images.IMAGE_SIZE_PRESETS[size]
            if isinstance(size, str)
            else (size["width"], size["height"])
        )
        count = int(args.get("num_images", 1))
        seed = int(args["seed"]) if args.get("seed") is not None else random.randrange(2**31)
        output_format = args.get("output_format", "jpeg")
        loras = self._check_loras(args)
        steps = int(args.get("num_inference_steps", 28))
        ticks = 4
        for tick in range(1, ticks + 1):
            await self._clock.sleep(self.settings.generation_seconds / ticks)
            job.log(f"Inference step {steps * tick // ticks}/{steps}")
        self._maybe_fail(job)
        nsfw = "nsfw" in job.faults
        face = await asyncio.to_thread(self._face, job, loras)
        safety = bool(args.get("enable_safety_checker", True))
        ttl, expired = self._ttl(job)
        _, content_type = images.FORMATS[output_format]
        extension = "jpg" if output_format == "jpeg" else "png"
        out = []
        for index in range(count):
            if nsfw and safety:
                data = await asyncio.to_thread(images.black, width, height, output_format)
            else:
                salt = "|".join(loras)
                data = await asyncio.to_thread(
                    images.draw, prompt, seed, index, width, height, output_format, salt, face
                )
            stored = self._storage.put(
                data, content_type, f"image_{index}.{extension}", ttl=ttl, expired_status=expired
            )
            out.append(
                {"url": stored.url, "width": width, "height": height, "content_type": content_type}
            )
        return {
            "images": out,
            "timings": {"inference": self._clock.seconds(self.settings.generation_seconds)},
            "seed": seed,
            "has_nsfw_concepts": [nsfw] * count,
            "prompt": prompt,
        }

    async def _caption(self, job: Job) -> dict[str, Any]:
        url: str = job.arguments["image_url"]
        data = self._download("image_url", url)
        await self._clock.sleep(self.settings.generation_seconds / 2)
        self._maybe_fail(job)
        try:
            caption = await asyncio.to_thread(images.describe, data)
        except Exception:  # noqa: BLE001 - Pillow raises many kinds for undecodable input
            raise validation_error(
                ["body", "image_url"], "Could not decode the image", "image_load_error"
            ) from None
        return {"results": caption}

    async def _upscale(self, job: Job) -> dict[str, Any]:
        """The input (which must be a file FAL can fetch: our storage) resized by exactly
        `upscale_factor`; too large (assumed limit) or undecodable → 422."""
        args = job.arguments
        data = self._download("image_url", args["image_url"])
        factor = float(args.get("upscale_factor", 2))
        limit = self.settings.upscale_max_input_pixels
        out, width, height = await self._on_input(
            upscaler.upscale, data, factor, limit, limit=limit
        )
        ticks = 4
        steps = int(args.get("num_inference_steps", 18))
        for tick in range(1, ticks + 1):
            await self._clock.sleep(self.settings.generation_seconds / ticks)
            job.log(f"Upscaling step {steps * tick // ticks}/{steps}")
        self._maybe_fail(job)
        ttl, expired = self._ttl(job)
        stored = self._storage.put(
            out, "image/jpeg", "upscaled.jpg", ttl=ttl, expired_status=expired
        )
        image = {
            "url": stored.url,
            "content_type": "image/jpeg",
            "file_name": "upscaled.jpg",
            "file_size": len(out),
            "width": width,
            "height": height,
        }
        timings = {"inference": self._clock.seconds(self.settings.generation_seconds)}
        return {"image": image, "seed": upscaler.seed_of(args), "timings": timings}

    async def _animate(self, job: Job) -> dict[str, Any]:
        """A real MP4 of `duration` seconds made from the picture at `image_url` (a file in
        our storage); an undecodable picture → 422. Takes twice a generation's time."""
        args = job.arguments
        data = self._download("image_url", args["image_url"])
        seconds = int(args.get("duration", "5"))
        try:
            width, height = await asyncio.to_thread(images.size_of, data)
            out, _, _ = await asyncio.to_thread(animator.animate, data, width, height, seconds)
        except ValueError:
            raise validation_error(
                ["body", "image_url"], "Could not decode the image", "image_load_error"
            ) from None
        ticks = 4
        for tick in range(1, ticks + 1):
            await self._clock.sleep(2 * self.settings.generation_seconds / ticks)
            job.log(f"Generating video {100 * tick // ticks}%")
        self._maybe_fail(job)
        ttl, expired = self._ttl(job)
        stored = self._storage.put(out, "video/mp4", "output.mp4", ttl=ttl, expired_status=expired)
        video = {
            "url": stored.url,
            "content_type": "video/mp4",
            "file_name": "output.mp4",
            "file_size": len(out),
        }
        return {"video": video}
