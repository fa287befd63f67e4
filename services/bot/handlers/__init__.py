"""Routers per feature, built fresh per Dispatcher (a router can have only one parent)."""

from __future__ import annotations

from aiogram import Router

from services.bot.handlers import (
    admin,
    avatar,
    avatars,
    describe,
    fallback,
    gallery,
    generate,
    groups,
    inline,
    photos,
    privacy,
    promo,
    settings,
    share,
    shop,
    start,
    training,
)


def get_routers() -> list[Router]:
    """In dispatch order; `fallback` must stay last (it catches stale buttons)."""
    return [
        groups.build(),  # first: nothing from a group reaches the private-chat routers
        shop.build(),  # payments must reach it whatever state another feature left
        promo.build(),
        admin.build(),
        share.build(),  # before start: `/start share_<token>` is a shared picture
        gallery.build(),  # before start: `/start gallery` (inline mode's button)
        start.build(),
        settings.build(),
        privacy.build(),
        generate.build(),
        describe.build(),  # before photos: a reference picture is not a training photo
        inline.build(),
        avatar.build(),
        photos.build(),
        training.build(),
        avatars.build(),
        fallback.build(),
    ]
