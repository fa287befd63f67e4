"""Routers per feature, built fresh per Dispatcher (a router can have only one parent)."""

from __future__ import annotations

from aiogram import Router

from services.bot.admin import commands as admin
from services.bot.animate import router as animate
from services.bot.avatars import creation as avatar
from services.bot.avatars import my_avatars as avatars
from services.bot.avatars import photo_upload as photos
from services.bot.credits import promo_command as promo
from services.bot.credits import shop
from services.bot.gallery import browse as gallery
from services.bot.gallery import inline_mode as inline
from services.bot.gallery import sharing as share
from services.bot.generation import photo_to_prompt as describe
from services.bot.generation import wizard as generate
from services.bot.menu import fallback, groups, settings, start
from services.bot.packs import orders as packs
from services.bot.privacy import commands as privacy
from services.bot.reference import router as reference
from services.bot.training import controls as training
from services.bot.upscale import router as upscale


def get_routers() -> list[Router]:
    """In dispatch order; `fallback` must stay last (it catches stale buttons)."""
    return [
        groups.build(),  # first: nothing from a group reaches the private-chat routers
        shop.build(),  # payments must reach it whatever state another feature left
        promo.build(),
        admin.build(),
        share.build(),  # before start: `/start share_<token>` is a shared picture
        gallery.build(),  # before start: `/start gallery` (inline mode's button)
        upscale.build(),
        animate.build(),
        start.build(),
        settings.build(),
        privacy.build(),
        generate.build(),
        packs.build(),
        reference.build(),  # before photos: a reference photo is not a training photo
        describe.build(),  # before photos: a reference picture is not a training photo
        inline.build(),
        avatar.build(),
        photos.build(),
        training.build(),
        avatars.build(),
        fallback.build(),
    ]
