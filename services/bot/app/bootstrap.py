"""Composition root: runtime (NATS, Postgres, HTTP) → bot, sender, dispatcher → polling or
webhook, and the training-events consumer. Everything handlers need is injected by name."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import AiogramError, TelegramAPIError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from contracts.jetstream import BOT_TRAINING, OBJ_PHOTOS
from services.bot.app.config import WEBHOOK_PATH, BotConfig
from services.bot.app.errors import on_error
from services.bot.app.features import get_routers
from services.bot.app.fsm_storage import NatsKVStorage
from services.bot.app.generation_wiring import wire_generation
from services.bot.app.metrics import BotMetrics
from services.bot.app.middlewares import UserMiddleware
from services.bot.app.pacing import ChatPositions, IncomingPositions, PaceMiddleware, Pacer
from services.bot.app.response_models import KeepResponseModels
from services.bot.app.retry import NotModifiedMiddleware, RetryAfterMiddleware
from services.bot.app.sender import Sender
from services.bot.app.telemetry import TelegramRequestTelemetry, UpdateTelemetry
from services.bot.app.texts import LANGUAGES, Texts
from services.bot.avatars.photo_intake import PhotoIntake
from services.bot.avatars.service import AvatarService
from services.bot.credits.invoices import InvoiceSigner
from services.bot.credits.promo_codes import FreeCredits
from services.bot.credits.reconcile import PaymentNotices, PaymentReconciler
from services.bot.credits.service import Billing
from services.bot.privacy.service import wire_privacy
from services.bot.training.check import TrainingCheck
from services.bot.training.events import TrainingEvents
from services.kit.consumer import EventConsumer
from services.kit.runtime import Runtime, open_runtime
from services.kit.schema import BOT
from services.kit.waiting import pause

log = logging.getLogger(__name__)
COMMANDS = (
    "start", "new", "generate", "packs", "gallery", "buy", "balance", "settings", "help",
    "cancel", "delete_me",
)  # fmt: skip


def pacing(config: BotConfig) -> tuple[Pacer, ChatPositions]:
    """The buckets every outgoing message waits for, and each chat's newest message id."""
    pacer = Pacer(config.send_rate_global, config.send_rate_chat, config.send_burst_chat)
    return pacer, ChatPositions()


def build_bot(
    config: BotConfig,
    metrics: BotMetrics | None = None,
    paced: tuple[Pacer, ChatPositions] | None = None,
) -> Bot:
    """aiogram's Bot aimed at `TELEGRAM_API_URL` (real Telegram or the sandbox emulator).

    Pacing is the outermost middleware: a call waits for its chat's token once, however
    often it is retried. Telemetry is registered after the retry middleware, so it is the
    inner one and counts every HTTP attempt: a 429 that is waited out and retried is still
    counted."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(config.telegram_api_url))
    session.middleware(PaceMiddleware(*(paced or pacing(config))))
    session.middleware(RetryAfterMiddleware())
    session.middleware(NotModifiedMiddleware())
    session.middleware(TelegramRequestTelemetry(metrics or BotMetrics()))
    session.middleware(KeepResponseModels())
    return Bot(
        config.telegram_bot_token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def build_dispatcher(storage: BaseStorage, **deps: Any) -> Dispatcher:
    """The dispatcher with routers, middlewares and the error handler; `deps` become
    handler arguments by name (avatars, intake, sender, texts, config, photo_store...)."""
    dp = Dispatcher(storage=storage, events_isolation=SimpleEventIsolation(), **deps)
    metrics = deps.get("metrics")
    dp.update.outer_middleware(UpdateTelemetry(metrics if metrics is not None else BotMetrics()))
    dp.update.outer_middleware(UserMiddleware())
    positions = deps.get("positions")
    if isinstance(positions, ChatPositions):
        dp.update.outer_middleware(IncomingPositions(positions))
    dp.errors.register(on_error)
    dp.include_routers(*get_routers())
    return dp


async def set_commands(bot: Bot, texts: Texts) -> None:
    for lang in LANGUAGES:
        commands = [
            BotCommand(command=c, description=texts.plain(lang, f"commands.{c}")) for c in COMMANDS
        ]
        code = None if lang == "en" else lang
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=code)


async def wire(
    rt: Runtime, config: BotConfig, bot: Bot, paced: tuple[Pacer, ChatPositions]
) -> tuple[Dispatcher, Sender, PhotoIntake]:
    """Services over the runtime's pool and JetStream, the dispatcher, the event consumer."""
    texts = Texts.load()
    metrics = rt.metrics if isinstance(rt.metrics, BotMetrics) else BotMetrics()
    avatars = AvatarService(
        rt.pool,
        min_photos=config.min_photos,
        max_photos=config.max_photos,
        metrics=metrics,
        pricing=config.pricing,
    )

    async def forbidden(chat_id: int) -> None:
        await avatars.set_active(chat_id, False)

    sender = Sender(
        bot,
        global_rate=config.send_rate_global,
        chat_rate=config.send_rate_chat,
        chat_burst=config.send_burst_chat,
        on_forbidden=forbidden,
        metrics=metrics,
        pacer=paced[0],
        positions=paced[1],
    )
    checks = TrainingCheck(
        rt.pool,
        pictures=config.training_check_pictures,
        min_photos=config.min_photos,
        metrics=metrics,
    )
    photo_store = await rt.js.object_store(OBJ_PHOTOS.name)
    intake = PhotoIntake(
        avatars, photo_store, sender, window=config.album_window_seconds, metrics=metrics
    )
    intake.gate.warm()
    storage = await NatsKVStorage.open(rt.js, cache_size=config.fsm_cache_size)
    privacy = await wire_privacy(rt, config, forget_user=avatars.forget)
    generation = await wire_generation(
        rt,
        config,
        bot,
        avatars=avatars,
        sender=sender,
        texts=texts,
        storage=storage,
        gate=intake.gate,
        checks=checks,
    )
    billing = billing_deps(rt.pool, config, bot, metrics)
    reconciler = PaymentReconciler(billing["billing"], bot, PaymentNotices(sender, texts, avatars))
    interval = config.stars_reconcile_interval_seconds
    rt.spawn("stars:settle", _settle_stars(billing["billing"], reconciler, interval, rt.stop))
    dp = build_dispatcher(
        storage,
        config=config,
        texts=texts,
        avatars=avatars,
        sender=sender,
        intake=intake,
        photo_store=photo_store,
        js=rt.js,
        metrics=metrics,
        privacy=privacy,
        positions=paced[1],
        checks=checks,
        **generation,
        **billing,
    )
    events = TrainingEvents(rt.pool, sender, texts, metrics, checks)
    rt.run_consumer(EventConsumer(rt.js, BOT_TRAINING, events.handlers(), rt.metrics))
    return dp, sender, intake


def billing_deps(
    pool: asyncpg.Pool, config: BotConfig, bot: Bot, metrics: BotMetrics
) -> dict[str, Any]:
    """Handler arguments of the shop, promo and admin credit commands (`billing`,
    `free_credits`); a test harness building its own dispatcher passes these too."""
    signer = InvoiceSigner(config.telegram_bot_token)
    return {
        "billing": Billing(pool, config.pricing, signer, bot, metrics),
        "free_credits": FreeCredits(pool, metrics),
    }


async def _settle_stars(
    billing: Billing, reconciler: PaymentReconciler, interval: float, stop: asyncio.Event
) -> None:
    """At start and then every `interval` seconds (0: at start only): settle Stars refunds
    an earlier crash or outage left pending, and credit payments whose update was lost
    (`reconcile.py`). Runs beside polling (Telegram may be slow); a failed round waits for
    the next. It idles rather than ends, since a runtime task that ends stops the service."""
    while not stop.is_set():
        try:
            await billing.refunds.resume()
            await reconciler.reconcile()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, AiogramError):
            log.exception("settling stars payments failed; the next round tries again")
        await pause(stop, interval if interval > 0 else None)


async def run(config: BotConfig, stop: asyncio.Event) -> None:
    """`python -m services.bot`: serve until `stop` is set, then drain and close."""
    metrics = BotMetrics()
    paced = pacing(config)
    bot = build_bot(config, metrics, paced)
    try:
        async with open_runtime(config.common, metrics, db_role=BOT, stop=stop) as rt:
            dp, sender, intake = await wire(rt, config, bot, paced)
            await set_commands(bot, dp["texts"])
            if config.telegram_mode == "webhook":
                await _serve_webhook(rt, config, dp, bot)
            else:
                await rt.start_http()
                rt.spawn("polling", _poll(dp, bot, stop))
            await rt.wait()
            await intake.close()
            await sender.close(grace=config.common.shutdown_grace_seconds / 2)
    finally:
        await bot.session.close()


async def _serve_webhook(rt: Runtime, config: BotConfig, dp: Dispatcher, bot: Bot) -> None:
    """Telegram POSTs updates to PUBLIC_BASE_URL/telegram/webhook with the secret header;
    aiogram answers at once and handles the update in the background."""
    handler = SimpleRequestHandler(dp, bot, secret_token=config.telegram_webhook_secret)
    await rt.start_http([web.post(WEBHOOK_PATH, handler.handle)])
    await bot.set_webhook(
        config.webhook_url or "",
        secret_token=config.telegram_webhook_secret,
        allowed_updates=dp.resolve_used_update_types(),
    )


async def _poll(dp: Dispatcher, bot: Bot, stop: asyncio.Event) -> None:
    """Long polling as a runtime task; `stop` ends it (signals belong to run_service)."""
    with contextlib.suppress(TelegramAPIError):
        await bot.delete_webhook(drop_pending_updates=False)
    polling = asyncio.create_task(
        dp.start_polling(
            bot,
            handle_signals=False,
            close_bot_session=False,
            allowed_updates=dp.resolve_used_update_types(),
        )
    )
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([polling, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not polling.done():
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
    await polling
