"""The Telegram face of Aisha, one package per feature a user would name.

`app/` is what every feature uses (bootstrap and wiring, config, the sender and its pacing, FSM
storage on NATS KV, routing, filters, middlewares, texts, metrics); `menu/`, `avatars/`,
`training/`, `generation/`, `gallery/`, `credits/`, `privacy/` and `admin/` each hold one
feature's routers, keyboards, views, SQL and event handlers. A feature imports `app/`, kit and
contracts, and of another feature only the modules that feature lists in `PUBLIC` (its
`__init__.py`); `tests/unit/bot/test_import_rule.py` enforces it. The map: `docs/bot.md`.
"""
