"""The command menu Telegram shows (`set_my_commands`) against what the bot answers: every
listed command has a handler, a description and a line in /help, in every language."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command

from services.bot.app.bootstrap import COMMANDS
from services.bot.app.features import get_routers
from services.bot.app.texts import LANGUAGES, Texts


def _handled(router: Router) -> set[str]:
    found: set[str] = set()
    for handler in router.message.handlers:
        for f in handler.filters or ():
            if isinstance(f.callback, Command):
                found |= {c for c in f.callback.commands if isinstance(c, str)}
    for child in router.sub_routers:
        found |= _handled(child)
    return found


#: Answered but not in the menu: admins' commands, and /promo, which needs a code after it
#: (a menu entry sends the bare command).
UNLISTED = {"grant", "ledger", "stats", "promo_new", "promo"}


def test_the_menu_lists_exactly_the_users_commands() -> None:
    handled = set().union(*(_handled(r) for r in get_routers()))
    assert set(COMMANDS) == handled - UNLISTED


def test_every_listed_command_is_described_and_in_help() -> None:
    texts = Texts.load()
    for lang in LANGUAGES:
        help_text = texts.catalog(lang)["help.text"]
        for command in COMMANDS:
            assert texts.catalog(lang).get(f"commands.{command}"), (lang, command)
            if command not in ("start", "help"):  # help is the page itself
                assert f"/{command}" in help_text, (lang, command)
