"""How a training check looks: the silent "checking…" progress, the verdict (a new message,
so the phone notifies once, when there is something to decide or use) and the answers to
the user's decision. Texts are `check.*` in the locale files."""

from __future__ import annotations

from services.bot.app import main_menu as menu
from services.bot.app.models import Avatar
from services.bot.app.screens import View
from services.bot.app.texts import Translator
from services.bot.avatars.likeness import MIN_FACES, WEAK
from services.bot.training import keyboards as tkb
from services.bot.training.check import Check, CheckState, Decision


def checking(t: Translator, avatar: Avatar, pictures: int) -> View:
    return View(t("check.checking", name=avatar.name, count=pictures), None)


def portrait(t: Translator, number: int, likeness: str) -> str:
    """A test portrait's caption: its number, and its likeness line below when scored."""
    return "\n".join(part for part in (t("check.portrait", number=number), likeness) if part)


def verdict(t: Translator, avatar: Avatar, check: Check, credits: int) -> View:
    """What the user reads once the check has ended: ready with its score, ready unchecked
    and why (nothing to compare with, no face, no test portraits), or a poor likeness with
    its choices (the refund's amount on its button; a repeated verdict's buttons answer
    "already answered" once one was pressed)."""
    ready = t("progress.completed", name=avatar.name)
    if check.state is CheckState.PASSED:
        score = round(check.score or 0)
        text = ready + "\n\n" + t("check.passed", score=score, count=len(check.scores))
        return View(text, menu.main_menu(t))
    if check.state is not CheckState.POOR:
        note = t(f"check.skipped.{check.reason}", min=MIN_FACES)
        return View(ready + "\n\n" + note, menu.main_menu(t))
    shown = {"name": avatar.name, "score": round(check.score or 0), "threshold": round(WEAK)}
    key = "check.poor_offer" if check.redo_offered else "check.poor_again"
    text = t("check.poor", **shown) + "\n\n" + t(key, credits=credits)
    return View(text, tkb.poor_check(t, avatar.id, credits, check.redo_offered))


def decided(t: Translator, avatar: Avatar, decision: Decision, refunded: int) -> View:
    """The poor check's message once refunded or kept (a redo's becomes its progress)."""
    if decision is Decision.REFUND:
        text = t("check.refunded", name=avatar.name, credits=refunded)
        return View(text, menu.main_menu(t))
    return View(t("progress.completed", name=avatar.name), menu.main_menu(t))
