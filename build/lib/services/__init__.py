"""Aisha's three services (bot, trainer, status) and the kit they share."""
