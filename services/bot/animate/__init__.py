"""Animating a picture of the gallery into a short video with a FAL image-to-video model:
the offer with its price and an optional motion prompt (`router.py`, `keyboards.py`,
`states.py`), the job as a `generations` row with its source picture and seconds
(`service.py`: one running animation per picture, charged once by the trainer), and its
progress and outcome — the clip as a new video message (`outcomes.py`, called by the
generation consumer for rows that are animations). Public: the button data, which the
gallery puts under an opened picture.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("callbacks",)
