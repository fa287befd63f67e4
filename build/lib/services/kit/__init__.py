"""The thin kit every service shares: config, logs, NATS, DB, outbox, HTTP, lifecycle."""
