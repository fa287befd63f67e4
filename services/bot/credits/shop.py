"""/buy, /balance, Stars invoices, pre-checkout, successful payments and refunds.

This router comes right after `groups`: a payment update must reach these handlers whatever
FSM state the user is in, never a state handler of another feature.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)

from services.bot.app import main_menu as menu
from services.bot.app.filters import Is
from services.bot.app.models import User
from services.bot.app.presets import price_range
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send, not_found
from services.bot.app.texts import Translator
from services.bot.credits import keyboards as kb
from services.bot.credits.callbacks import ShopCb, top_up
from services.bot.credits.invoices import CURRENCY, Verdict
from services.bot.credits.ledger_texts import entry_line
from services.bot.credits.refunds import RefundOutcome
from services.bot.credits.service import Billing, Payment, PaymentOutcome

#: Outcomes after which the refund screen is replaced; the others are alerts.
SETTLED = frozenset({RefundOutcome.REFUNDED, RefundOutcome.PENDING, RefundOutcome.REFUSED})


async def shop_screen(
    t: Translator, user: User, billing: Billing
) -> tuple[str, InlineKeyboardMarkup]:
    balance, refundable = await billing.balance(user.id), await billing.refunds.refundable(user.id)
    p = billing.pricing
    text = t("credits.shop", balance=balance, training=price_range(p), per_image=p.per_image)
    text += "\n" + "\n".join(kb.package_line(t, package, p) for package in p.packages)
    if refundable:
        text += "\n\n" + t("credits.refundable", days=p.refund_days)
    return text, kb.shop(t, p.packages, refundable)


async def cmd_buy(message: Message, t: Translator, user: User, billing: Billing) -> None:
    text, markup = await shop_screen(t, user, billing)
    await message.answer(text, reply_markup=markup)


async def open_shop(callback: CallbackQuery, t: Translator, user: User, billing: Billing) -> None:
    text, markup = await shop_screen(t, user, billing)
    await edit_or_send(callback, text, markup)
    await callback.answer()


async def show_shop(callback: CallbackQuery, t: Translator, user: User, billing: Billing) -> None:
    """The shop below a card that stays (the training prices, the confirmation card)."""
    text, markup = await shop_screen(t, user, billing)
    if callback.message is not None and callback.bot is not None:
        await callback.bot.send_message(callback.message.chat.id, text, reply_markup=markup)
    await callback.answer()


async def cmd_balance(message: Message, t: Translator, user: User, billing: Billing) -> None:
    entries = await billing.history(user.id, 5)
    lines = [entry_line(t, e) for e in entries] or [t("credits.history_empty")]
    text = t("credits.balance", balance=await billing.balance(user.id))
    await message.answer("\n".join([text, "", *lines]), reply_markup=top_up(t))


async def buy(
    callback: CallbackQuery, callback_data: ShopCb, t: Translator, user: User, billing: Billing,
    bot: Bot,
) -> None:  # fmt: skip
    package = billing.pricing.package(callback_data.package)
    if package is None:  # a package removed from config since the button was drawn
        await callback.answer(t.plain("common.stale"), show_alert=True)
        return
    await bot.send_invoice(
        chat_id=user.id,
        title=t.plain("credits.invoice_title", credits=package.credits),
        description=t.plain("credits.invoice_description", credits=package.credits),
        payload=billing.invoice_payload(package, user.id),
        currency=CURRENCY,
        prices=[LabeledPrice(label=t.plain("credits.invoice_title", credits=package.credits),
                             amount=package.stars)],
    )  # fmt: skip
    await callback.answer()


async def pre_checkout(query: PreCheckoutQuery, t: Translator, billing: Billing) -> None:
    verdict = billing.check_pre_checkout(
        user_id=query.from_user.id, payload=query.invoice_payload, currency=query.currency,
        total_amount=query.total_amount,
    )  # fmt: skip
    if verdict is Verdict.OK:
        await query.answer(ok=True)
    else:
        await query.answer(ok=False, error_message=t.plain(f"credits.declined_{verdict.value}"))


async def paid(message: Message, t: Translator, user: User, billing: Billing) -> None:
    """Credit once; a repeated update (same charge) gets no second answer."""
    sp = message.successful_payment
    if sp is None:  # not reached: the router's filter
        return
    result = await billing.credit_payment(
        Payment(user.id, sp.telegram_payment_charge_id, sp.provider_payment_charge_id,
                sp.invoice_payload, sp.currency, sp.total_amount)
    )  # fmt: skip
    if result.outcome is not PaymentOutcome.DUPLICATE:
        key = f"credits.payment_{result.outcome.value}"
        # a new message (notified) with the menu's buttons: what the credits are for
        text = t(key, credits=result.credits, balance=result.balance)
        await message.answer(text, reply_markup=menu.main_menu(t))


async def refunded(message: Message) -> None:
    """Telegram's note that Stars went back: the refund handler has already answered (or
    start-up resumed the refund), so there is nothing to add."""


async def ask_refund(
    callback: CallbackQuery, callback_data: ShopCb, t: Translator, user: User, billing: Billing
) -> None:
    purchase = await billing.refunds.purchase(user.id, callback_data.seq)
    if purchase is None:
        await not_found(callback, t)
        return
    text = t("credits.refund_confirm", stars=purchase.stars, credits=purchase.credits)
    await edit_or_send(callback, text, kb.refund_confirm(t, purchase.seq))
    await callback.answer()


async def refund(
    callback: CallbackQuery, callback_data: ShopCb, t: Translator, user: User, billing: Billing
) -> None:
    result = await billing.refunds.request(user.id, callback_data.seq)
    p = result.purchase
    params = {
        "stars": p.stars if p else 0, "credits": p.credits if p else 0,
        "balance": result.balance, "days": billing.pricing.refund_days,
    }  # fmt: skip
    key = f"credits.refund_{result.outcome.value}"
    if result.outcome in SETTLED:
        await edit_or_send(callback, t(key, **params), kb.back_to_shop(t))
        await callback.answer()
    else:
        await callback.answer(t.plain(key, **params), show_alert=True)


def build() -> Router:
    router = FeatureRouter(name="shop", callbacks=(ShopCb,))
    router.message.register(cmd_buy, Command("buy"))
    router.message.register(cmd_balance, Command("balance"))
    router.message.register(paid, Is(F.successful_payment))
    router.message.register(refunded, Is(F.refunded_payment))
    router.pre_checkout_query.register(pre_checkout)
    router.callback_query.register(open_shop, ShopCb.filter(F.action == "open"))
    router.callback_query.register(show_shop, ShopCb.filter(F.action == "show"))
    router.callback_query.register(buy, ShopCb.filter(F.action == "buy"))
    router.callback_query.register(ask_refund, ShopCb.filter(F.action == "refund"))
    router.callback_query.register(refund, ShopCb.filter(F.action == "refund_yes"))
    return router
