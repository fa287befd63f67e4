"""The packs' router: the list with each pack's price, a pack's card (its styles, the total
and the balance before the press, one button per ready avatar), and the order.

One press of an order button charges the pack once and requests its generations; the card
becomes "N pictures are on their way" and each generation's album arrives as it completes
(the generation feature's delivery). A second press of the same card is "already on its
way"; a balance too small is answered with a buy button and nothing is charged.
"""

from __future__ import annotations

from uuid import UUID

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from services.bot.app.config import BotConfig
from services.bot.app.metrics import BotMetrics
from services.bot.app.models import Avatar, AvatarStatus, User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import show, stale
from services.bot.app.texts import Translator
from services.bot.avatars.service import AvatarService
from services.bot.credits.callbacks import not_enough_credits
from services.bot.credits.service import Billing
from services.bot.generation.batch import AlreadyOrdered, AvatarNotReady
from services.bot.packs import views
from services.bot.packs.callbacks import PackCb, PackGoCb
from services.bot.packs.catalogue import PackCatalogue
from services.bot.packs.service import PackOrders
from services.kit.credits import InsufficientCredits


async def _ready(user: User, avatars: AvatarService) -> list[Avatar]:
    """The user's completed avatars, the main one first."""
    ready = [a for a in await avatars.list_for(user.id) if a.status is AvatarStatus.COMPLETED]
    return sorted(ready, key=lambda a: a.id != user.main_avatar_id)


async def cmd_packs(
    message: Message, user: User, t: Translator, packs: PackCatalogue, config: BotConfig,
    billing: Billing,
) -> None:  # fmt: skip
    balance = await billing.balance(user.id)
    view = views.pack_list(t, packs, config.pricing.per_image, balance)
    await message.answer(view.text, reply_markup=view.markup)


async def open_list(
    callback: CallbackQuery, user: User, t: Translator, packs: PackCatalogue, config: BotConfig,
    billing: Billing,
) -> None:  # fmt: skip
    balance = await billing.balance(user.id)
    await show(callback, views.pack_list(t, packs, config.pricing.per_image, balance))
    await callback.answer()


async def open_card(
    callback: CallbackQuery, callback_data: PackCb, user: User, t: Translator,
    packs: PackCatalogue, config: BotConfig, billing: Billing, avatars: AvatarService,
) -> None:  # fmt: skip
    pack = packs.get(callback_data.pack_id)
    if pack is None:
        await stale(callback, t.plain("common.stale"))
        return
    ready = await _ready(user, avatars)
    if not ready:
        await show(callback, views.no_avatar(t))
    else:
        balance = await billing.balance(user.id)
        await show(callback, views.card(t, pack, ready, config.pricing.per_image, balance))
    await callback.answer()


async def order(
    callback: CallbackQuery, callback_data: PackGoCb, user: User, t: Translator,
    packs: PackCatalogue, avatars: AvatarService, pack_orders: PackOrders, metrics: BotMetrics,
) -> None:  # fmt: skip
    """The card becomes the "on their way" message; the albums come below it."""
    pack = packs.get(callback_data.pack_id)
    avatar = await avatars.get(user.id, UUID(hex=callback_data.avatar))
    message = callback.message
    if pack is None or not isinstance(message, Message):
        await stale(callback, t.plain("common.stale"))
        return
    if avatar is None or avatar.status is not AvatarStatus.COMPLETED:
        await stale(callback, t.plain("generate.avatar_not_ready"))
        return
    price = pack.price(pack_orders.per_image)
    try:
        await pack_orders.order(
            user_id=user.id, pack=pack, avatar=avatar, nonce=callback_data.nonce,
            chat_id=message.chat.id,
        )  # fmt: skip
    except AlreadyOrdered:
        await callback.answer(t.plain("packs.already"), show_alert=True)
        return
    except AvatarNotReady:
        await stale(callback, t.plain("generate.avatar_not_ready"))
        return
    except InsufficientCredits as exc:
        await not_enough_credits(callback, t, exc)
        return
    metrics.packs_ordered.labels(pack.id).inc()
    await message.edit_text(views.ordered(t, pack, avatar, price))
    await callback.answer(t.plain("packs.started", count=pack.pictures))


def build() -> Router:
    router = FeatureRouter(name="packs", callbacks=(PackCb, PackGoCb))
    router.message.register(cmd_packs, Command("packs"))
    router.callback_query.register(open_list, PackCb.filter(F.action == "list"))
    router.callback_query.register(open_card, PackCb.filter(F.action == "show"))
    router.callback_query.register(order, PackGoCb.filter())
    return router
