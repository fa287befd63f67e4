"""Callback data of the gallery, picture actions and sharing: ids and flags only.

Public: the main menu and the "gallery" button under delivered results open the gallery with
`GalleryCb`. The gallery's filters travel in it (page, favourites flag, avatar id), so a page is
fully described by its button and needs no FSM state.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData
from pydantic import Field


class GalleryCb(CallbackData, prefix="gal"):
    page: Annotated[int, Field(ge=0, le=100_000)] = 0
    fav: bool = False
    avatar_id: UUID | None = None


class GalleryMenuCb(CallbackData, prefix="galm"):
    """`avatars` opens the avatar filter; `zip` exports favourites (fav) or everything."""

    action: Literal["avatars", "zip"]
    fav: bool = False


class ImageCb(CallbackData, prefix="img"):
    action: Literal["open", "fav", "doc", "del", "del_yes", "del_no", "share", "unshare"]
    image_id: UUID
