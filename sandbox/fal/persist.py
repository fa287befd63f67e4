"""What of the emulated FAL outlives a restart, and how it is put back.

Kept: every object on the emulated CDN with its lifetime (a trained LoRA stays downloadable,
an archive given 60 s stays expired), CDN tokens, and every job with its request id, result
or error, logs and webhook URL, so results stay fetchable and statuses answerable. A job that
was queued or running when the emulator stopped runs again from the start after a restart
(real FAL keeps running while we are away; the emulator cannot, but it finishes the job and
sends its webhook). Left out: injected faults and webhook retries in flight (the status
service's polling covers a lost webhook, as it must for real FAL).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

from sandbox.fal.jobs import COMPLETED, IN_QUEUE, Job, JobFailure, JobRunner
from sandbox.fal.storage import Storage, StoredFile
from sandbox.snapshot import Document, Picture

FORMAT = 1
_JOB_FIELDS = (
    "app_id",
    "arguments",
    "webhook_url",
    "request_id",
    "seq",
    "state",
    "submitted_at",
    "started_at",
    "finished_at",
    "logs",
    "result",
    "cancelled",
)


def _blob_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _job(job: Job) -> dict[str, Any]:
    saved = {name: getattr(job, name) for name in _JOB_FIELDS}
    failure = job.failure
    saved["failure"] = (
        None
        if failure is None
        else {
            "status": failure.status,
            "detail": failure.detail,
            "error_type": failure.error_type,
            "message": failure.message,
        }
    )
    return saved


def take(storage: Storage, runner: JobRunner | None) -> Picture:
    """Storage metadata and jobs as a JSON document, the objects' bytes as blobs."""
    files, blobs = [], {}
    for key, stored in storage._files.items():
        meta = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
        del meta["data"]
        meta["blob"] = _blob_name(key)
        blobs[meta["blob"]] = stored.data
        files.append(meta)
    document: Document = {
        "format": FORMAT,
        "files": files,
        "tokens": list(storage._tokens.items()),
        "jobs": [] if runner is None else [_job(j) for j in runner.jobs.values()],
    }
    return document, blobs


def restore(
    storage: Storage, runner: JobRunner, document: Document, blob: Callable[[str], bytes | None]
) -> int:
    """Put storage and jobs back; unfinished jobs are queued again. Returns how many were."""
    if document.get("format") != FORMAT:
        raise ValueError(f"unknown FAL snapshot format {document.get('format')!r}")
    for meta in document["files"]:
        data = blob(meta.pop("blob"))
        if data is not None:
            stored = StoredFile(data=data, **meta)
            storage._files[stored.key] = stored
    storage._tokens.update({token: float(expires) for token, expires in document["tokens"]})
    rerun = 0
    for saved in sorted(document["jobs"], key=lambda j: int(j["seq"])):
        failure = saved.pop("failure")
        saved.pop("seq")  # new seqs keep the saved order and stay above the running counter
        job = Job(saved.pop("app_id"), saved.pop("arguments"), saved.pop("webhook_url"))
        for name, value in saved.items():
            setattr(job, name, value)
        if failure is not None:
            job.failure = JobFailure(**failure)
        if job.state == COMPLETED:
            job.done.set()
            runner.jobs[job.request_id] = job
        else:
            job.state, job.started_at = IN_QUEUE, None
            job.log("Restarted: the emulator was stopped while this request was pending")
            runner.submit(job)
            rerun += 1
    return rerun
