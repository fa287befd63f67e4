"""Admin-only commands; the whole router is filtered to ADMIN_IDS (anyone else falls through
to `fallback`'s "unknown command")."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import Message, TelegramObject
from aiogram.types import User as TgUser

from services.bot.app.config import BotConfig
from services.bot.app.models import TypeStats, User
from services.bot.app.routing import FeatureRouter
from services.bot.app.texts import Translator
from services.bot.avatars.likeness_texts import stats_line as likeness_line
from services.bot.avatars.service import AvatarService
from services.bot.credits.ledger_texts import entry_line
from services.bot.credits.promo_codes import (
    ArgError,
    FreeCredits,
    parse_grant,
    parse_promo,
    parse_user_id,
)
from services.bot.credits.service import Billing
from services.bot.training.check import CheckStats, TrainingCheck


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


def check_line(t: Translator, s: CheckStats) -> str:
    """How finished portrait trainings fared in their likeness check, and what it cost."""
    return t(
        "admin.stats_checks",
        checked=s.checked,
        passed=s.passed,
        poor=s.poor,
        redo=s.redo,
        refund=s.refund,
        keep=s.keep,
        skipped=s.skipped,
        median="—" if s.median is None else f"{round(s.median)}%",
        cost=f"{s.cost_usd:.2f}",
    )


async def cmd_stats(
    message: Message, t: Translator, avatars: AvatarService, checks: TrainingCheck
) -> None:
    rows = await avatars.stats()
    body = "\n".join(stats_line(t, s) for s in rows) or t("admin.stats_empty")
    likeness = likeness_line(t, await avatars.likeness_stats())
    trained = check_line(t, await checks.stats())
    await message.answer(t("admin.stats_title") + "\n" + body + "\n\n" + likeness + "\n" + trained)


async def cmd_promo_new(
    message: Message, command: CommandObject, t: Translator, user: User, free_credits: FreeCredits
) -> None:
    spec = parse_promo(command.args or "")
    if isinstance(spec, ArgError):
        await message.answer(t(f"admin.{spec.value}"))
        return
    expires = await free_credits.create(spec, admin_id=user.id)
    if expires is None:
        await message.answer(t("admin.promo_duplicate", code=spec.code))
        return
    expiry = expires.strftime("%Y-%m-%d %H:%M UTC")
    await message.answer(t("admin.promo_created", code=spec.code, credits=spec.credits,
                           uses=spec.uses, expires=expiry))  # fmt: skip


async def cmd_grant(
    message: Message, command: CommandObject, t: Translator, user: User, free_credits: FreeCredits
) -> None:
    """The key is this message, so a re-delivered update grants once."""
    request = parse_grant(command.args or "")
    if isinstance(request, ArgError):
        await message.answer(t(f"admin.{request.value}"))
        return
    key = f"admin_grant:{message.chat.id}:{message.message_id}"
    result = await free_credits.grant(request, admin_id=user.id, key=key)
    seq = result.entry.seq if result.entry else 0
    await message.answer(t(f"admin.grant_{result.outcome.value}", user_id=request.user_id,
                           amount=request.amount, balance=result.balance, seq=seq))  # fmt: skip


async def cmd_ledger(
    message: Message, command: CommandObject, t: Translator, billing: Billing,
    free_credits: FreeCredits,
) -> None:  # fmt: skip
    user_id = parse_user_id(command.args or "")
    if user_id is None:
        await message.answer(t("admin.ledger_usage"))
        return
    if not await free_credits.known(user_id):
        await message.answer(t("admin.ledger_unknown", user_id=user_id))
        return
    lines = [entry_line(t, e, raw=True) for e in await billing.history(user_id, 20)]
    title = t("admin.ledger_title", user_id=user_id, balance=await billing.balance(user_id))
    await message.answer("\n".join([title, *(lines or [t("credits.history_empty")])]))


def build() -> Router:
    router = FeatureRouter(name="admin")
    router.message.filter(IsAdmin())
    router.message.register(cmd_stats, Command("stats"))
    router.message.register(cmd_promo_new, Command("promo_new"))
    router.message.register(cmd_grant, Command("grant"))
    router.message.register(cmd_ledger, Command("ledger"))
    return router
