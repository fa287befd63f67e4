"""Your photo as a reference: the user sends a picture (a pose, an outfit, a scene) and gets
it re-drawn with their avatar by FAL's image-to-image with the avatar's LoRA. The entry is
"🖼 My photo as a reference" on a ready avatar's screen (`router.py`); the photo is checked
and stored like a training photo (`intake.py`: the photos bucket, a `reference_photos` row,
erased by `/delete_me` and the retention sweep); three strengths with the price
(`keyboards.py`); the job is a `generations` row with the reference and its strength
(`service.py`: one job per photo at a time, charged once by the trainer), and its progress
and outcome — one photo, or a withheld one refunded (`outcomes.py`, called by the
generation consumer for rows that are references). Public: the button data, which the
avatar screen shows.
"""

#: The modules other features may import (`tests/unit/bot/test_import_rule.py`).
PUBLIC: tuple[str, ...] = ("callbacks",)
