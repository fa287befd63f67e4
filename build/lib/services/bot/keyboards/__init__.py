"""Inline keyboards as pure functions of (translator, ids); callback data carries ids only."""
