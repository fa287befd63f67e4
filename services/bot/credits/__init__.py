"""Credits and Telegram Stars: the shop and balance (`shop.py`: packages, invoices, the history,
refund screens), crediting payments once (`service.py`, `invoices.py`), reconciling payments
whose update was lost (`reconcile.py`), user-requested Stars refunds (`refunds.py`), and credits
nobody paid Stars for — promo codes and admin grants (`promo_codes.py`, `/promo` in
`promo_command.py`). Public: the service and promo codes (the admin's commands), the shop's
button data and "top up" answer, and `ledger_texts` (a refund note, a ledger line) so a credit
is worded the same wherever it is shown.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("service", "callbacks", "promo_codes", "ledger_texts")
