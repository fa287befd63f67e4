"""Forgetting: `/delete_me` (every row in one transaction, then the files), the per-avatar "keep
my photos" choice, and the periodic retention sweep of training photos and orphaned files
(`retention.py`). `service.py` owns that SQL and is wired at start by `wire_privacy`.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("service", "callbacks")
