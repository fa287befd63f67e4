"""`python -m services.kit.smoke` (or `./scripts/smoke`): are the real outside services usable?

An operator runs it with the production `TELEGRAM_BOT_TOKEN`, `FAL_KEY` and `PUBLIC_BASE_URL`
before (or after) a deploy. Every check is cheap and touches no user: the bot's identity and
webhook, FAL's key, a 60-second upload, one caption of a 16x16 picture, FAL's webhook keys,
and whether our own webhook endpoint answers from outside. It prints a table of what passed,
how long each took and what it cost, and exits 1 when anything failed. Secrets are never
printed. The same variables the services read point it elsewhere (`TELEGRAM_API_URL`,
`HTTPS_PROXY` / `SSL_CERT_FILE`, `FAL_JWKS_URL`), which is how CI runs it against the emulators.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fal_client
import httpx
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from PIL import Image

from services.kit.config import environment

#: Must agree with services.status.config.DEFAULT_JWKS_URL and services.trainer.describe
#: (the kit does not import services; tests/e2e/test_smoke.py checks that they do).
DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
CAPTIONER = "fal-ai/florence-2-large/detailed-caption"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
FAL_TOKEN_URL = "https://rest.fal.ai/storage/auth/token?storage_type=fal-cdn-v3"
WEBHOOK_PATH = "/fal/webhook"
TELEGRAM_WEBHOOK_PATH = "/telegram/webhook"
#: FAL lists no fixed price for Florence-2 (billed per GPU second); a caption of a tiny
#: picture takes well under a second, so this is an upper estimate, shown with "≈".
CAPTION_COST_USD = 0.001
TIMEOUT = 30.0


class CheckFailed(Exception):
    """A check ran and the answer was wrong; the message says what was expected."""


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    cost_usd: float
    detail: str
    estimated: bool = False


@dataclass
class Smoke:
    """The checks, in order; later ones may use what earlier ones found (`found`)."""

    env: Mapping[str, str]
    found: dict[str, Any] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)

    def _secrets(self) -> list[str]:
        values = [self.env.get("TELEGRAM_BOT_TOKEN", ""), self.env.get("FAL_KEY", "")]
        values += [v.partition(":")[2] for v in values]
        return [v for v in values if len(v) >= 4]

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text[:160]

    def _need(self, name: str) -> str:
        value = self.env.get(name, "")
        if not value:
            raise CheckFailed(f"{name} is not set")
        return value

    async def run(self) -> list[Result]:
        checks: list[tuple[str, Callable[[], Awaitable[str]], float, bool]] = [
            ("telegram getMe", self.telegram_me, 0.0, False),
            ("telegram webhook info", self.telegram_webhook, 0.0, False),
            ("fal auth", self.fal_auth, 0.0, False),
            ("fal upload (60 s lifetime)", self.fal_upload, 0.0, False),
            ("fal caption", self.fal_caption, CAPTION_COST_USD, True),
            ("fal jwks", self.fal_jwks, 0.0, False),
            ("our /fal/webhook from outside", self.our_webhook, 0.0, False),
        ]
        for name, check, cost, estimated in checks:
            started = time.monotonic()
            try:
                detail, ok = await asyncio.wait_for(check(), 2 * TIMEOUT), True
            except CheckFailed as exc:
                detail, ok = str(exc), False
            except (TelegramAPIError, fal_client.client.FalClientError, httpx.HTTPError) as exc:
                detail, ok = f"{type(exc).__name__}: {exc}", False
            except (TimeoutError, OSError) as exc:
                detail, ok = f"{type(exc).__name__}: {exc or 'no answer'}", False
            took = time.monotonic() - started
            spent = cost if ok else 0.0  # FAL bills successful outputs only
            self.results.append(Result(name, ok, took, spent, self._redact(detail), estimated))
        return self.results

    # -- Telegram ------------------------------------------------------------------------------
    def _bot(self) -> Bot:
        base = self.env.get("TELEGRAM_API_URL") or DEFAULT_TELEGRAM_API_URL
        api = TelegramAPIServer.from_base(base.rstrip("/"))
        return Bot(self._need("TELEGRAM_BOT_TOKEN"), session=AiohttpSession(api=api))

    async def telegram_me(self) -> str:
        async with self._bot() as bot:
            me = await bot.get_me(request_timeout=int(TIMEOUT))
        if not me.is_bot:
            raise CheckFailed(f"the token belongs to a user ({me.id}), not a bot")
        return f"@{me.username} (id {me.id})"

    async def telegram_webhook(self) -> str:
        async with self._bot() as bot:
            info = await bot.get_webhook_info(request_timeout=int(TIMEOUT))
        mode = self.env.get("TELEGRAM_MODE") or "polling"
        public = (self.env.get("PUBLIC_BASE_URL") or "").rstrip("/")
        if mode == "webhook" and info.url != public + TELEGRAM_WEBHOOK_PATH:
            where = info.url or "nowhere"
            raise CheckFailed(f"webhook mode, but Telegram sends updates to {where}")
        detail = f"{mode}, {info.pending_update_count} pending"
        if mode == "polling" and info.url:  # the bot deletes it when it starts polling
            detail += f", webhook {info.url} still set"
        if info.last_error_message:
            detail += f", last error: {info.last_error_message}"
        return detail

    # -- FAL -----------------------------------------------------------------------------------
    async def fal_auth(self) -> str:
        """A CDN token costs nothing and is refused (401/403) to a wrong key."""
        key = self._need("FAL_KEY")
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(FAL_TOKEN_URL, headers={"Authorization": f"Key {key}"})
        if response.status_code != 200:
            raise CheckFailed(f"FAL answered {response.status_code} to the key")
        return "key accepted"

    async def fal_upload(self) -> str:
        client = fal_client.AsyncClient(key=self._need("FAL_KEY"), default_timeout=TIMEOUT)
        picture = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 120, 80)).save(picture, "PNG")
        url = await client.upload(
            picture.getvalue(),
            "image/png",
            "aisha-smoke.png",
            lifecycle=fal_client.StorageSettings(expires_in="immediate"),  # 60 s
        )
        self.found["image_url"] = url
        return url

    async def fal_caption(self) -> str:
        url = self.found.get("image_url")
        if url is None:
            raise CheckFailed("skipped: the upload failed")
        client = fal_client.AsyncClient(key=self._need("FAL_KEY"), default_timeout=TIMEOUT)
        result = await client.subscribe(
            CAPTIONER, {"image_url": url}, interval=0.25, client_timeout=2 * TIMEOUT - 5
        )
        caption = result.get("results") if isinstance(result, dict) else None
        if not isinstance(caption, str) or not caption.strip():
            raise CheckFailed("the captioner returned no text")
        return f"{CAPTIONER}: {caption.strip()[:60]!r}"

    async def fal_jwks(self) -> str:
        url = self.env.get("FAL_JWKS_URL") or DEFAULT_JWKS_URL
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.get(url)
        response.raise_for_status()
        keys = [k for k in response.json().get("keys", []) if k.get("crv") == "Ed25519"]
        if not keys:
            raise CheckFailed(f"{url} holds no Ed25519 key")
        return f"{len(keys)} Ed25519 key(s)"

    async def our_webhook(self) -> str:
        """An unsigned empty POST must be refused by the status service (400/401): proves the
        route reaches it from outside without anything being accepted."""
        base = self._need("PUBLIC_BASE_URL").rstrip("/")
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(base + WEBHOOK_PATH, content=b"")
        if response.status_code not in (400, 401):
            got = response.status_code
            raise CheckFailed(f"expected 400/401 from the status service, got {got}")
        return f"{base}{WEBHOOK_PATH} refused an unsigned body ({response.status_code})"


def _cost(result: Result) -> str:
    return ("≈" if result.estimated and result.cost_usd else "") + f"${result.cost_usd:.3f}"


def table(results: list[Result]) -> str:
    """The report: one line per check, then the totals."""
    width = max(len(r.name) for r in results)
    lines = [f"{'check':<{width}}  result  {'time':>7}  {'cost':>7}  detail"]
    for r in results:
        result = "PASS" if r.ok else "FAIL"
        lines.append(
            f"{r.name:<{width}}  {result:<6}  {r.seconds:>6.2f}s  {_cost(r):>7}  {r.detail}"
        )
    passed = sum(r.ok for r in results)
    spent = sum(r.cost_usd for r in results)
    lines.append(f"{passed}/{len(results)} passed; cost ≈${spent:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.kit.smoke", description=__doc__)
    parser.parse_args(argv)
    results = asyncio.run(Smoke(environment()).run())
    print(table(results), flush=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
