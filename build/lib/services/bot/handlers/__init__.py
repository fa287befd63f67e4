"""Routers per feature, built fresh per Dispatcher (a router can have only one parent)."""

from __future__ import annotations

from aiogram import Router

from services.bot.handlers import (
    admin,
    avatar,
    avatars,
    fallback,
    photos,
    settings,
    start,
    training,
)


def get_routers() -> list[Router]:
    """In dispatch order; `fallback` must stay last (it catches stale buttons)."""
    return [
        admin.build(),
        start.build(),
        settings.build(),
        avatar.build(),
        photos.build(),
        training.build(),
        avatars.build(),
        fallback.build(),
    ]
