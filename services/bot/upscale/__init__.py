"""Upscaling a picture of the gallery ×2 or ×4 with a FAL upscaler: the choice with prices
(`router.py`, `keyboards.py`), the job as a `generations` row with its source picture and
factor (`service.py`: one job per picture and factor, charged once by the trainer), and its
progress and outcome — the result as a document at full resolution (`outcomes.py`, called by
the generation consumer for rows that are upscales). Public: the button data, which the
gallery puts under an opened picture.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("callbacks",)
