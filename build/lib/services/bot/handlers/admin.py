"""Admin-only commands; the whole router is filtered to ADMIN_IDS."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, Filter
from aiogram.types import Message, TelegramObject
from aiogram.types import User as TgUser

from services.bot.avatars import AvatarService
from services.bot.config import BotConfig
from services.bot.models import TypeStats
from services.bot.texts import Translator


class IsAdmin(Filter):
    """True for users listed in ADMIN_IDS (read from the injected config)."""

    async def __call__(
        self, event: TelegramObject, config: BotConfig, event_from_user: TgUser | None = None
    ) -> bool:
        return event_from_user is not None and event_from_user.id in config.admin_ids


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f}m"


def stats_line(t: Translator, s: TypeStats) -> str:
    rate = "—" if s.success_rate is None else f"{s.success_rate:.0%}"
    return t(
        "admin.stats_line",
        type=s.training_type,
        total=s.total,
        completed=s.completed,
        failed=s.failed,
        rate=rate,
        p50=_duration(s.p50_seconds),
        p90=_duration(s.p90_seconds),
    )


async def cmd_stats(message: Message, t: Translator, avatars: AvatarService) -> None:
    rows = await avatars.stats()
    body = "\n".join(stats_line(t, s) for s in rows) or t("admin.stats_empty")
    await message.answer(t("admin.stats_title") + "\n" + body)


def build() -> Router:
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    router.message.register(cmd_stats, Command("stats"))
    return router
