"""How a training looks in its one progress message: waiting in our line, in FAL's queue,
percent (from FAL's logs) or an estimate (labelled, from time), ready, failed."""

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


def queued(t: Translator, avatar: Avatar, ahead: int | None = None) -> View:
    """Submitted; with `ahead`, FAL's queue position (requests before ours at FAL)."""
    if ahead is None:
        text = t("progress.queued", name=avatar.name)
    else:
        key = "training_wait.fal_queue" if ahead > 0 else "training_wait.fal_queue_next"
        text = t(key, name=avatar.name, ahead=ahead)
    return View(text, tkb.training_running(t, avatar.id))


def waiting(t: Translator, avatar: Avatar, ahead: int) -> View:
    """Our own line for a training slot (`TRAINER_MAX_CONCURRENT`), before FAL is asked."""
    key = "training_wait.line" if ahead > 0 else "training_wait.line_next"
    return View(t(key, name=avatar.name, ahead=ahead), tkb.training_running(t, avatar.id))


def running(
    t: Translator, avatar: Avatar, percent: int, eta_seconds: int | None, estimated: bool = False
) -> View:
    """`estimated`: the percent comes from time, not FAL's logs, and says so."""
    percent = max(0, min(100, percent))
    shown = {"name": avatar.name, "bar": bar(percent), "percent": percent}
    if not estimated:
        text = t("progress.running", **shown) + eta(t, eta_seconds)
    elif eta_seconds is None or eta_seconds <= 0:
        text = t("training_wait.estimate", **shown)
    else:
        text = t("training_wait.estimate_eta", **shown, minutes=max(1, round(eta_seconds / 60)))
    return View(text, tkb.training_running(t, avatar.id))


def completed(t: Translator, avatar: Avatar) -> View:
    return View(t("progress.completed", name=avatar.name), menu.main_menu(t))


def failed(t: Translator, avatar: Avatar, reason: FailureReason, retryable: bool) -> View:
    text = t("progress.failed", name=avatar.name, reason=t.plain(f"failure.{reason.value}"))
    return View(text, tkb.training_retry(t, avatar.id) if retryable else menu.back_to_menu(t))


def cancelled(t: Translator, avatar: Avatar) -> View:
    return View(t("progress.cancelled", name=avatar.name), tkb.training_retry(t, avatar.id))
