"""How a training looks in its one progress message: queued, percent + ETA, ready, failed."""

from __future__ import annotations

from contracts import FailureReason
from services.bot.app import main_menu as menu
from services.bot.app.models import Avatar
from services.bot.app.screens import View
from services.bot.app.texts import Translator
from services.bot.training import keyboards as tkb

BAR_CELLS = 10


def bar(percent: int) -> str:
    """A text progress bar: ▰▰▰▱▱▱▱▱▱▱."""
    filled = max(0, min(BAR_CELLS, round(percent * BAR_CELLS / 100)))
    return "▰" * filled + "▱" * (BAR_CELLS - filled)


def eta(t: Translator, seconds: int | None) -> str:
    if seconds is None or seconds <= 0:
        return ""
    if seconds < 90:
        return t("progress.eta_seconds", seconds=seconds)
    return t("progress.eta_minutes", minutes=round(seconds / 60))


def queued(t: Translator, avatar: Avatar, position: int | None = None) -> View:
    key = "progress.queued_position" if position else "progress.queued"
    text = t(key, name=avatar.name, position=position or 0)
    return View(text, tkb.training_running(t, avatar.id))


def running(t: Translator, avatar: Avatar, percent: int, eta_seconds: int | None) -> View:
    percent = max(0, min(100, percent))
    text = t("progress.running", name=avatar.name, bar=bar(percent), percent=percent)
    return View(text + eta(t, eta_seconds), tkb.training_running(t, avatar.id))


def completed(t: Translator, avatar: Avatar) -> View:
    return View(t("progress.completed", name=avatar.name), menu.main_menu(t))


def failed(t: Translator, avatar: Avatar, reason: FailureReason, retryable: bool) -> View:
    text = t("progress.failed", name=avatar.name, reason=t.plain(f"failure.{reason.value}"))
    return View(text, tkb.training_retry(t, avatar.id) if retryable else menu.back_to_menu(t))


def cancelled(t: Translator, avatar: Avatar) -> View:
    return View(t("progress.cancelled", name=avatar.name), tkb.training_retry(t, avatar.id))
