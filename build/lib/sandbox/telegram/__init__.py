"""Telegram Bot API emulator with a web chat page (see README.md for the control API).

`TelegramEmulator` serves the Bot API (reached by aiogram through
`TelegramAPIServer.from_base(emulator.base_url)`), a JSON control API under `/_emu/`
and a web chat page at `/`.
"""

from sandbox.telegram.rules import Limits
from sandbox.telegram.server import TelegramEmulator

__all__ = ["Limits", "TelegramEmulator"]
