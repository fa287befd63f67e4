"""Making pictures with an avatar: the wizard (avatar → style or own prompt → format and count →
confirm, "again" and "more like this"), photo to prompt (a reference picture described by the
vision model), the prompt system (`prompts/`, the style catalogue and builder), the generation
SQL (`service.py`), its events (`BOT_GENERATION`) and the delivery of finished pictures as one
album (`delivery.py`). Public: the service, the wizard's button data, the prompt helpers the
gallery uses to name a style, `describer` (whose storage prefix privacy erases) and `batch`
(packs order their generations as one charged batch).
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("service", "callbacks", "prompts", "describer", "batch")
