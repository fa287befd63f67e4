"""The likeness score as the user sees it: one discreet line under a delivered picture and
in the gallery's details (`likeness.*` in the locale files). No score, no line: a picture
without a face, a style avatar, or a delivery that did not wait for the score."""

from __future__ import annotations

from services.bot.app.texts import Translator
from services.bot.avatars.likeness import band
from services.bot.avatars.likeness_rows import LikenessStats


def stats_line(t: Translator, s: LikenessStats) -> str:
    """The admin's /stats line: how recognisable the last 30 days' pictures were."""
    median = "—" if s.median is None else f"{round(s.median)}%"
    return t("likeness.stats", scored=s.scored, median=median, low=s.low, retries=s.retries)


def line(t: Translator, percent: float | None) -> str:
    if percent is None:
        return ""
    return t(
        "likeness.line", percent=round(percent), band=t.plain(f"likeness.band.{band(percent)}")
    )
