"""The gate's verdicts in words: one reply per burst of photos, sent as a reply to the first
photo concerned and naming each photo by its place in the burst, and the summary of the
avatar's photos shown on the counter card before "Start training"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from aiogram.methods import SendMessage
from aiogram.types import ReplyParameters

from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.avatars.photo_checks import Verdict
from services.bot.avatars.photo_gate import SetSummary

ACCEPTED = "accepted"
#: Reasons named per photo (`photos.gate.<code>`); the older ones are counted per burst.
GATE_CODES = frozenset({*(v.value for v in Verdict), "animated"})


@dataclass(frozen=True)
class Outcome:
    """What became of one file of a burst: `code` is `accepted` or a refusal reason."""

    code: str
    number: int
    message_id: int | None
    warnings: tuple[str, ...] = ()

    @property
    def concerns_user(self) -> bool:
        return self.code != ACCEPTED or bool(self.warnings)


def reasons(t: Translator, codes: Sequence[str]) -> str:
    return "; ".join(t(f"photos.gate.{code}") for code in codes)


def burst_reply(t: Translator, outcomes: Sequence[Outcome]) -> tuple[str, int | None] | None:
    """The text about a burst's refused photos and kept-with-a-warning ones, and the photo
    to attach it to; None when every photo was accepted cleanly."""
    concerned = sorted((o for o in outcomes if o.concerns_user), key=lambda o: o.number)
    if not concerned:
        return None
    lines: list[str] = []
    refused = [o for o in concerned if o.code != ACCEPTED]
    if refused:
        lines.append(t("photos.rejected_header"))
        lines += [
            t("photos.gate.line", number=o.number, reason=reasons(t, [o.code]))
            for o in refused
            if o.code in GATE_CODES
        ]
        others = Counter(o.code for o in refused if o.code not in GATE_CODES)
        lines += [t(f"photos.reject.{code}", count=n) for code, n in others.items()]
    kept = [o for o in concerned if o.code == ACCEPTED]
    if kept:
        lines.append(t("photos.gate.kept_header"))
        lines += [
            t("photos.gate.line", number=o.number, reason=reasons(t, o.warnings)) for o in kept
        ]
    reply_to = next((o.message_id for o in concerned if o.message_id is not None), None)
    return "\n".join(lines), reply_to


async def send_reply(sender: Sender, chat_id: int, text: str, reply_to: int | None) -> None:
    """Attached to the photo it is about (still sent if that photo was deleted meanwhile).
    Silent: the user is looking at the chat while uploading, a verdict is chatter."""
    if reply_to is None:
        await sender.send(chat_id, text, silent=True)
        return
    parameters = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
    request = SendMessage(
        chat_id=chat_id, text=text, reply_parameters=parameters, disable_notification=True
    )
    await sender.call(chat_id, request)


def summary_text(t: Translator, summary: SetSummary) -> str:
    """The checks of the whole set, before any credit is spent on it."""
    if summary.clean:
        return t("photos.gate.summary_ok")
    lines = [t("photos.gate.summary_header")]
    lines += [
        t("photos.gate.summary_line", number=n, reason=reasons(t, codes))
        for n, codes in sorted(summary.warnings.items())
    ]
    if summary.outliers:
        numbers = ", ".join(str(n) for n in summary.outliers)
        lines.append(t("photos.gate.summary_outliers", numbers=numbers))
    return "\n".join(lines)
