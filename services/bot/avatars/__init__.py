"""Users and their avatars: creating one (name, training type with its prices, a portrait's
gender), uploading its training photos — single photos and albums, collected and answered
once per burst in `photo_intake` — and "my avatars" (list, details, rename, delete, set as
main). `service.py` owns the `users`, `avatars` and `photos` SQL and is what other features
read users and avatars through; `details.py` is the avatar details screen, public because
privacy's "keep my photos" toggle redraws it.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = (
    "service",
    "callbacks",
    "details",
    "likeness",
    "likeness_rows",
    "likeness_scorer",
    "likeness_texts",
)
