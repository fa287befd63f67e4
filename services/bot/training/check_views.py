"""How a training check looks: the silent "checking…" progress, the verdict (a new message,
so the phone notifies once, when there is something to decide or use), the answers to the
user's decision, and the admin's /stats line. Texts are `check.*` in the locale files."""

from __future__ import annotations

from services.bot.app import main_menu as menu
from services.bot.app.models import Avatar
from services.bot.app.screens import View
from services.bot.app.texts import Translator
from services.bot.avatars.likeness import MIN_FACES, WEAK
from services.bot.training import keyboards as tkb
from services.bot.training.check import Check, CheckState, Decision
from services.kit.credits import Entry


def checking(t: Translator, avatar: Avatar, pictures: int = 2) -> View:
    return View(t("check.checking", name=avatar.name, count=pictures), None)


def ready(t: Translator, text: str) -> View:
    return View(text, menu.main_menu(t))


def unchecked(t: Translator, avatar: Avatar, check: Check, ready: View) -> View:
    """Ready without a check, and why (no faces to compare with, or too few)."""
    note = t(f"check.skipped.{check.reason}", min=MIN_FACES)
    return View(ready.text + "\n\n" + note, ready.markup)


def portrait(t: Translator, number: int, likeness: str) -> str:
    return (t("check.portrait", number=number) + likeness).strip()


def verdict(t: Translator, avatar: Avatar, check: Check, credits: int) -> View:
    """What the user reads after the test portraits: ready with its score, ready unchecked,
    or a poor likeness with its choices (the refund's amount on its button)."""
    ready = t("progress.completed", name=avatar.name)
    if check.state is CheckState.PASSED:
        score = round(check.score or 0)
        text = ready + "\n\n" + t("check.passed", score=score, count=len(check.scores))
        return View(text, menu.main_menu(t))
    if check.state is not CheckState.POOR:
        note = t(f"check.skipped.{check.reason}", min=MIN_FACES)
        return View(ready + "\n\n" + note, menu.main_menu(t))
    shown = {"name": avatar.name, "score": round(check.score or 0), "threshold": round(WEAK)}
    if check.decision is not None:  # shown again after the answer (a redelivery)
        return decided(t, avatar, check.decision, None)
    key = "check.poor_offer" if check.redo_offered else "check.poor_again"
    text = t("check.poor", **shown) + "\n\n" + t(key, credits=credits)
    return View(text, tkb.poor_check(t, avatar.id, credits, check.redo_offered))


def decided(t: Translator, avatar: Avatar, decision: Decision, refund: Entry | None) -> View:
    """The poor check's message once refunded or kept (a redo's becomes its progress)."""
    if decision is Decision.REFUND:
        credits = refund.amount if refund is not None else 0
        return View(t("check.refunded", name=avatar.name, credits=credits), menu.main_menu(t))
    return View(t("progress.completed", name=avatar.name), menu.main_menu(t))
