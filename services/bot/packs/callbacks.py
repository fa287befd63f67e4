"""Button data of the packs (≤ 64 bytes): `PackCb` opens the list (the main menu's button,
public) or one pack's card; `PackGoCb` orders a pack with an avatar. Its `nonce` is drawn
when the card is drawn, so the order id derived from it is the same for every press of that
card (a double press orders once) and new for the next card.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

PackCode = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,12}$")]


class PackCb(CallbackData, prefix="pk"):
    action: Literal["list", "show"]
    pack_id: str = ""


class PackGoCb(CallbackData, prefix="pkgo"):
    pack_id: PackCode
    avatar: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    nonce: Annotated[str, Field(pattern=r"^[0-9a-f]{8}$")]
