"""The user's pictures once made: browsing pages with filters, favourites, the original file,
deletion, the zip export, sharing one picture by a revocable deep link (`sharing.py`) and
inline mode (`@bot …` posts a favourite, `inline_mode.py`). `service.py` owns the images and
share-link SQL; `image_files.py` gets a stored picture to Telegram (by `file_id`, or from the
object store) and is public because the generation's delivery sends pictures the same way.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("service", "callbacks", "image_files")
