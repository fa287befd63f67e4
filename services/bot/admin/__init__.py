"""Operator commands for ADMIN_IDS only: statistics, a user's ledger, credit grants and new promo
codes. It owns no table: it reads through the avatars and credits services.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ()
