"""The bot's front door: /start, /help, /cancel and the main menu (`start`), the interface
language (`settings`), group chats turned away (`groups`, the first router) and the polite
answer to stale buttons and unexpected messages (`fallback`, the last router). It owns no
table and nothing here is imported by another feature.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ()
