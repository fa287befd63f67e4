"""Tracks FAL jobs: signed webhooks first, polling as the fallback, progress for the user."""
