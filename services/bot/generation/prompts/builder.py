"""Prompt building: the user's words + a style template + the avatar's trigger word.

FLUX LoRAs are bound to their trigger word, so every prompt for an avatar must name it. A
portrait's names the person, next to their gender ("photo of ohwx1a2b3c woman, ..."), or the
model draws a stranger. A style avatar learned a look, not a person (FAL's `is_style`), so
its prompt is the picture the user asks for with the look applied to it ("a lighthouse at
dusk, in the style of ohwx1a2b3c"), never "a photo of ohwx1a2b3c person".
User text is untrusted: control, zero-width and bidi characters are removed (they are
invisible in the chat but reach FAL and the gallery), whitespace is collapsed, and the length
is bounded before anything is stored or sent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from contracts import TrainingType
from services.bot.app.models import Avatar, Gender
from services.bot.app.texts import Translator
from services.bot.generation.prompts.catalogue import Catalogue, Style

#: What a user may type (after cleaning); longer text is refused with a message naming it.
MAX_USER_PROMPT = 1000
#: The final prompt (template + subject + user text) never exceeds this.
MAX_PROMPT = 1600
_NOUNS = {Gender.MALE: "man", Gender.FEMALE: "woman", Gender.OTHER: "person"}
_SPACES = re.compile(r"\s+")
#: Small, safe changes for "more like this": same composition, a nudge in one direction.
VARIATIONS = (
    "slightly different pose",
    "different camera angle",
    "subtle change of expression",
    "alternative lighting",
    "slightly closer framing",
    "different moment, candid",
)
_VARIATION_SUFFIX = re.compile(
    r"(?:, (?:" + "|".join(re.escape(v) for v in VARIATIONS) + r"))+$", re.IGNORECASE
)
_CAPTION_LEAD = re.compile(
    r"^(?:(?:this|the) (?:image|picture|photo|photograph) (?:shows|depicts|features|is of)"
    r"|(?:a|an) (?:close-up |candid |color |colour |black and white )?"
    r"(?:photo|photograph|image|picture|portrait|shot|selfie) of)\s+",
    re.IGNORECASE,
)
_CAPTION_PERSON = re.compile(
    r"^(?:a|an|the)\s+(?:(?:young|old|elderly|middle-aged|smiling|happy|beautiful|handsome)\s+)*"
    r"(?:man|woman|person|girl|boy|lady|guy|gentleman|child|kid|teenager)\b",
    re.IGNORECASE,
)


class PromptRejected(ValueError):
    """User text that cannot be used; `code` picks the localized answer."""

    def __init__(self, code: str, length: int = 0):
        super().__init__(code)
        self.code = code
        self.length = length


EXCERPT = 120


def clean(text: str) -> str:
    """Drop invisible/control characters (categories C*), collapse whitespace, trim."""
    kept = (" " if ch.isspace() else ch for ch in text)
    visible = "".join(ch for ch in kept if not unicodedata.category(ch).startswith("C"))
    return _SPACES.sub(" ", visible).strip()


def user_text(raw: str) -> str:
    """The user's own prompt, cleaned; refuses empty and over-long text."""
    text = clean(raw)
    if not text:
        raise PromptRejected("empty")
    if len(text) > MAX_USER_PROMPT:
        raise PromptRejected("too_long", len(text))
    return text


def truncate(text: str, limit: int) -> str:
    """Cut at a word boundary so a bounded prompt does not end in half a word."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;")


@dataclass(frozen=True)
class Subject:
    """Who the picture is of: the phrase for `{subject}` and the word that must appear; for
    a style avatar, `look` is its trigger word, applied to whatever the picture shows."""

    phrase: str
    trigger: str | None
    look: str | None = None

    @classmethod
    def of(cls, avatar: Avatar | None) -> Subject:
        if avatar is None:
            return cls("a person", None)
        if avatar.training_type is TrainingType.STYLE:
            return cls("a person", None, look=avatar.trigger_word)
        noun = _NOUNS[avatar.gender] if avatar.gender is not None else "person"
        return cls(f"{avatar.trigger_word} {noun}", avatar.trigger_word)


def in_the_style(look: str, picture: str, limit: int) -> str:
    """`picture` drawn in the learned look (unless the user named the trigger word already),
    cut before the suffix so a long prompt never loses the trigger word."""
    picture = clean(picture)
    if look.lower() in picture.lower():
        return truncate(picture, limit)
    suffix = f"in the style of {look}"
    if not picture:
        return f"a picture {suffix}"
    return f"{truncate(picture, limit - len(suffix) - 2)}, {suffix}"


def build(subject: Subject, *, style: Style | None, text: str | None) -> str:
    """The final prompt: template (with the subject) plus the user's details, or the user's
    text with "photo of <subject>" in front when it does not name the trigger word itself;
    for a style avatar, either of them followed by "in the style of <trigger>"."""
    details = clean(text or "")
    if subject.look is not None:
        picture = style.render(subject.phrase) if style is not None else details
        if style is not None and details:
            picture = f"{picture}, {details}"
        prompt = in_the_style(subject.look, picture, MAX_PROMPT)
    elif style is not None:
        prompt = style.render(subject.phrase)
        if details:
            prompt = f"{prompt}, {details}"
    elif subject.trigger is not None and subject.trigger.lower() in details.lower():
        prompt = details
    elif subject.trigger is not None:
        prompt = (
            f"photo of {subject.phrase}, {details}" if details else f"photo of {subject.phrase}"
        )
    else:
        prompt = details or "photo of a person"
    return truncate(clean(prompt), MAX_PROMPT)


def vary(prompt: str, step: int) -> str:
    """More like this: the same prompt with one small variation (they do not pile up)."""
    base = _VARIATION_SUFFIX.sub("", prompt)
    return truncate(f"{base}, {VARIATIONS[step % len(VARIATIONS)]}", MAX_PROMPT)


def from_caption(caption: str, subject: Subject) -> str:
    """Photo to prompt: the vision model's description re-aimed at the avatar
    ("A young woman on a beach" → "photo of ohwx1a2b3c woman on a beach"; for a style
    avatar "a young woman on a beach, in the style of ohwx1a2b3c")."""
    text = _CAPTION_LEAD.sub("", clean(caption)).rstrip(" .")
    person = _CAPTION_PERSON.match(text)
    if subject.look is not None:  # the described picture, whoever is in it, in the look
        prompt = in_the_style(subject.look, text, MAX_USER_PROMPT)
    elif person is not None:
        rest = text[person.end() :].lstrip(" ,")
        prompt = f"photo of {subject.phrase}, {rest}" if rest else f"photo of {subject.phrase}"
    elif text:
        prompt = f"photo of {subject.phrase}, {text}"
    else:
        prompt = f"photo of {subject.phrase}"
    return truncate(clean(prompt), MAX_USER_PROMPT)


def choice(t: Translator, catalogue: Catalogue, style_id: str | None, prompt: str | None) -> str:
    """What will be drawn, in one line: the style's title or an excerpt of the prompt."""
    style = catalogue.get(style_id)
    if style is not None:
        return style.title_in(t.lang)
    return truncate(prompt or "", EXCERPT) + ("…" if len(prompt or "") > EXCERPT else "")
