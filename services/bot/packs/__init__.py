"""Packs: a named, localized set of 4–12 styles (`packs.toml`) made in one press with an
avatar, paid as one order and delivered as albums by the generation pipeline (the list, the
card with its price, the order, `catalogue.py`). Public: the button data, for the main menu.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("callbacks",)
