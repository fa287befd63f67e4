"""The trainer: the one service that asks FAL for work, and never pays for a job twice.

It owns what is sent to FAL: the `fal_submissions` idempotency ledger and the trainer's
columns of avatars and generations. Trainings (`training_submission.py`, with the avatar's
photo archive, presets and the `preparing` lease of `training_ledger.py`) and generations
(`generation_submission.py`, checked by `generation_plan.py`) run one shared submission
step (`submission.py`) over one shared ledger (`ledger.py`, `orphans.py`); both spend one
daily budget (`spend.py`) through one FAL client (`fal_gateway.py`). Photo-to-prompt
captions (`describe.py`) use the same client. Run it with `python -m services.trainer`.
"""
