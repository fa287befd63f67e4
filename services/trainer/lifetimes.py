"""How long FAL keeps each file we give it or ask it to make (docs/reliability.md, "Files
and lifetimes"). FAL deletes a file at the lifetime it was given and never brings it back
(fal.md, "Files and retention"); anything we need later is copied into our own storage.

Uploads carry fal-client's `lifecycle=` (headers `X-Fal-Object-Lifecycle[-Preference]`);
a job's outputs get theirs from `X-Fal-Object-Lifecycle-Preference` on the submit.
"""

from __future__ import annotations

import json

HOUR = 3600
DAY = 24 * HOUR

#: The zip of a person's training photos: FAL needs it only until the job has started, and
#: a job that has not started within `fal_gateway.START_TIMEOUT` (6 h) is failed by FAL, so
#: the archive lives exactly that long, no longer.
ARCHIVE_SECONDS = 6 * HOUR
#: A photo-to-prompt reference picture: the caption job is awaited for at most 50 s.
REFERENCE_SECONDS = HOUR
#: A training's LoRA and config file at FAL: the status service copies them the moment the
#: training ends; FAL's copy serves generations for a week, then ours is re-uploaded.
TRAINING_OUTPUT_SECONDS = 7 * DAY
#: Generated images: the status service copies them at once; a day leaves room for a
#: webhook FAL retries for ~2 h and for the poller's backed-off retries of the copy.
GENERATION_OUTPUT_SECONDS = DAY
#: Our copy of a LoRA re-uploaded for generations, and how much of that lifetime must be
#: left to use it: a generation waiting in FAL's queue fetches the LoRA when it starts.
REUPLOAD_SECONDS = 2 * HOUR
REUPLOAD_MARGIN_SECONDS = HOUR


def output_headers(seconds: int) -> dict[str, str]:
    """The submit header asking FAL to keep a job's output files `seconds`."""
    preference = {"expiration_duration_seconds": seconds}
    return {"X-Fal-Object-Lifecycle-Preference": json.dumps(preference)}
