"""Training an avatar once its photos are in: the start, cancel and retry buttons (`controls`),
the one live progress message (`progress`), and the trainer's events turned into the avatar's
status and that message (`events`, the `BOT_TRAINING` consumer). The SQL of avatars stays in
`avatars/service.py`; other features only link here with `TrainingCb`.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("callbacks", "check")
