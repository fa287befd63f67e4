"""Telegram's HTML parse mode: validation and conversion to plain text + entities."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MarkupError", "ParsedText", "parse_html", "utf16_len"]

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*?)?)\s*(/?)>")
_ATTR = re.compile(r"""([a-zA-Z][a-zA-Z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]*);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
ALLOWED_TAGS = frozenset([*_SIMPLE, "span", "a", "tg-emoji"])


class MarkupError(ValueError):
    """The text is not valid Telegram HTML."""


@dataclass(slots=True)
class ParsedText:
    """Plain text and the Bot API entities (offsets in UTF-16 code units)."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Open:
    tag: str
    start: int
    entity: dict[str, Any] | None


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and offsets."""
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name.startswith("#"):
        code = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
        if code > 0x10FFFF:
            raise MarkupError(f"Unsupported HTML entity &{name};")
        return chr(code)
    if name in _NAMED:
        return _NAMED[name]
    raise MarkupError(f'Unsupported HTML entity "&{name};" at byte offset {match.start()}')


def _attrs(raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in _ATTR.finditer(raw):
        found[m.group(1).lower()] = next((g for g in m.groups()[1:] if g is not None), "")
    return found


def _entity_for(tag: str, attrs: dict[str, str], stack: list[_Open], pos: int) -> dict[str, Any]:
    if tag == "a":
        href = attrs.get("href", "")
        if not href:
            raise MarkupError(f"Can't find href attribute of tag a at byte offset {pos}")
        return {"type": "text_link", "url": href}
    if tag == "span":
        if attrs.get("class") != "tg-spoiler":
            raise MarkupError(f'Tag "span" must have class "tg-spoiler" at byte offset {pos}')
        return {"type": "spoiler"}
    if tag == "tg-emoji":
        emoji_id = attrs.get("emoji-id", "")
        if not emoji_id.isdigit():
            raise MarkupError(f"Custom emoji identifier is required at byte offset {pos}")
        return {"type": "custom_emoji", "custom_emoji_id": emoji_id}
    kind = _SIMPLE[tag]
    if kind == "code" and stack and stack[-1].tag == "pre":
        language = attrs.get("class", "")
        if language.startswith("language-") and stack[-1].entity is not None:
            stack[-1].entity["language"] = language.removeprefix("language-")
            return {"type": "_merged"}
    if kind == "blockquote" and "expandable" in attrs:
        return {"type": "expandable_blockquote"}
    return {"type": kind}


def parse_html(source: str) -> ParsedText:
    """Parse Telegram HTML; raise MarkupError with Telegram's wording on bad markup."""
    out: list[str] = []
    length = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    pos = 0

    def add_text(chunk: str) -> None:
        nonlocal length
        for m_part in re.split(r"(&[^;&<>\s]{1,12};)", chunk):
            if not m_part:
                continue
            entity = _ENTITY.fullmatch(m_part)
            piece = _decode_entity(entity) if entity else m_part
            out.append(piece)
            length += utf16_len(piece)

    while pos < len(source):
        lt = source.find("<", pos)
        if lt < 0:
            add_text(source[pos:])
            break
        add_text(source[pos:lt])
        match = _TAG.match(source, lt)
        byte_offset = len(source[:lt].encode())
        if match is None:
            raise MarkupError(f"Unsupported start tag at byte offset {byte_offset}")
        closing, tag = match.group(1) == "/", match.group(2).lower()
        if tag not in ALLOWED_TAGS:
            raise MarkupError(f'Unsupported start tag "{tag}" at byte offset {byte_offset}')
        if closing:
            if not stack:
                raise MarkupError(f"Unexpected end tag at byte offset {byte_offset}")
            if stack[-1].tag != tag:
                expected = stack[-1].tag
                raise MarkupError(
                    f'Unmatched end tag at byte offset {byte_offset}, expected "</{expected}>", '
                    f'found "</{tag}>"'
                )
            opened = stack.pop()
            merged = opened.entity is None or opened.entity["type"] == "_merged"
            if not merged and opened.entity is not None and length > opened.start:
                entities.append(
                    {**opened.entity, "offset": opened.start, "length": length - opened.start}
                )
        else:
            entity = _entity_for(tag, _attrs(match.group(3)), stack, byte_offset)
            stack.append(_Open(tag, length, entity))
        pos = match.end()
    if stack:
        raise MarkupError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return ParsedText("".join(out), entities)
