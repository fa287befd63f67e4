"""The status service: what FAL says about our jobs, applied once, told to the user.

It owns the status columns of avatars and generations, the received webhooks
(`fal_webhooks`) and the generated images. FAL's signed webhooks (`webhooks.py`,
`signature.py`) come first; polling (`poller.py`) is the fallback and the progress source,
one shared step over both kinds of job. Each kind's outcome is applied once by its own
tracker with its own SQL: trainings in `training_tracking.py` (progress: FAL's queue
position, a percentage only from a plain log line, `progress.py`, else an estimate from
the learned typical duration, `estimate.py`), generations in
`generation_tracking.py` (results copied into the Object Store first, `images.py`).
Gauges of the jobs in flight (`inflight.py`) and webhook retention (`retention.py`)
run beside them. Run it with `python -m services.status`.
"""
