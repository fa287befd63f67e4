"""The only place that talks to FAL, through the unmodified fal-client.

FAL traffic honours HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE (httpx reads them), which is
how the sandbox routes it to the FAL emulator. Errors are sorted into "try again later"
and "this input will never work" so callers can decide without parsing messages.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

import fal_client
import httpx
from fal_client.client import StorageSettings

from services.kit.falmetrics import ObservedFalClient
from services.trainer.lifetimes import output_headers
from services.trainer.metrics import TrainerMetrics

log = logging.getLogger(__name__)


class FalRetryable(Exception):
    """FAL or the network failed in a way that may pass (5xx, 429, timeout)."""


class FalRejected(Exception):
    """FAL refused the input (4xx other than 408/409/429): retrying cannot help."""


class FalOutcomeUnknown(FalRetryable):
    """The request may have reached FAL but no answer came back (a read timeout, a dropped
    connection, a gateway timeout): a submit may have queued a job. The caller must not
    submit again until it knows (the job's webhook names our idempotency key)."""


class FalTimeout(FalRetryable):
    """A job waited on synchronously did not finish in time (it was cancelled at FAL)."""


#: A job that has not started within this long is failed by FAL (ours alert far earlier).
START_TIMEOUT = 6 * 3600

#: Failures after the request was (or may have been) sent: FAL may have acted on it.
_UNANSWERED = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.RemoteProtocolError,
    TimeoutError,
)


def _classify(exc: Exception) -> Exception:
    """FAL's documented errors (fal.md "Errors"): 422 with `detail` a list or a string is the
    input's fault (`FalRejected`); 5xx infrastructure errors (`X-Fal-Error-Type`) and the
    edge's 408/409/429 pass (`FalRetryable`); 504 and a lost answer may have queued a job."""
    if isinstance(exc, _UNANSWERED):
        return FalOutcomeUnknown(f"no answer from FAL: {type(exc).__name__}")
    if isinstance(exc, fal_client.client.FalClientHTTPError):
        status = exc.status_code
        kind = f" {exc.error_type}" if exc.error_type else ""
        if status == 504:
            return FalOutcomeUnknown(f"FAL's gateway timed out (504{kind})")
        if status in (408, 409, 429) or status >= 500:
            return FalRetryable(f"FAL answered {status}{kind}")
        return FalRejected(f"FAL answered {status}{kind}: {_detail(exc.message)}")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status in (408, 409, 429) or status >= 500:
            return FalRetryable(f"FAL answered {status}")
        return FalRejected(f"FAL answered {status}")
    return FalRetryable(f"{type(exc).__name__}: {exc}")


def _detail(detail: Any) -> str:
    """FAL's `detail`: a list of `{loc, msg, type}` or (some apps) a plain string."""
    if isinstance(detail, list):
        parts = [
            f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        ]
        return "; ".join(parts)[:300]
    return str(detail)[:300]


_ERRORS = (fal_client.client.FalClientError, httpx.HTTPError, TimeoutError, OSError)
#: A 2xx answer that is not FAL's JSON (HTML from a proxy, an empty body, no request id).
_UNREADABLE = (ValueError, KeyError, TypeError)


class CancelOutcome(Enum):
    """FAL's documented answers to a cancel (fal.md "Cancel")."""

    REQUESTED = "requested"  # 202 CANCELLATION_REQUESTED (or 200 OK)
    ALREADY_COMPLETED = "already_completed"  # 400: the job finished before the cancel
    NOT_FOUND = "not_found"  # 404: FAL does not know the request (any more)


class FalGateway:
    def __init__(self, key: str, timeout: float = 60.0, metrics: TrainerMetrics | None = None):
        # With metrics, every call is counted by endpoint and outcome at the client itself.
        self._client = (
            ObservedFalClient(key, metrics.fal_requests, metrics.fal_seconds, timeout)
            if metrics is not None
            else fal_client.AsyncClient(key=key, default_timeout=timeout)
        )

        # Plain downloads from FAL's CDN (is a file still there?), through the same proxy.
        self._cdn = httpx.AsyncClient(timeout=10.0, follow_redirects=True)

    async def upload(
        self, data: bytes, content_type: str, file_name: str, *, lifetime_seconds: int
    ) -> str:
        """Store a file at FAL for `lifetime_seconds` (then FAL deletes it); its URL."""
        lifecycle = StorageSettings(expires_in=lifetime_seconds)
        try:
            return await self._client.upload(data, content_type, file_name, lifecycle=lifecycle)
        except _ERRORS as exc:
            raise _classify(exc) from exc

    async def alive(self, url: str) -> bool:
        """Whether FAL's CDN still serves `url` (a HEAD; any failure counts as gone)."""
        try:
            response = await self._cdn.head(url)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def submit(
        self,
        endpoint: str,
        arguments: dict[str, Any],
        webhook_url: str,
        *,
        output_lifetime_seconds: int,
    ) -> str:
        """Queue a job; returns FAL's request id.

        fal-client retries a submit that timed out unless the request carries a server-side
        start timeout; a queue submit is not idempotent (FAL may have queued the first one),
        so we always send one and handle the unanswered submit ourselves
        (`FalOutcomeUnknown`: never submitted again, adopted from its webhook instead).
        The job's output files are kept `output_lifetime_seconds` at FAL (`lifetimes.py`)."""
        try:
            handle = await self._client.submit(
                endpoint,
                arguments,
                webhook_url=webhook_url,
                start_timeout=START_TIMEOUT,
                headers=output_headers(output_lifetime_seconds),
            )
        except _ERRORS as exc:
            raise _classify(exc) from exc
        except _UNREADABLE as exc:  # a 2xx we cannot read: FAL may have queued the job
            raise FalOutcomeUnknown(f"unreadable submit answer from FAL: {exc!r}") from exc
        return str(handle.request_id)

    async def run_queued(
        self, endpoint: str, arguments: dict[str, Any], limit_seconds: float
    ) -> dict[str, Any]:
        """Submit through the queue and wait for the result, at most `limit_seconds`.

        For quick jobs (captions) whose answer the caller needs at once; on timeout
        fal-client cancels the request, so an abandoned job does not run on.
        """
        try:
            result = await self._client.subscribe(
                endpoint, arguments, interval=0.25, client_timeout=limit_seconds
            )
        except fal_client.client.FalClientTimeoutError as exc:
            raise FalTimeout(f"{endpoint} did not finish within {limit_seconds:.0f}s") from exc
        except _ERRORS as exc:
            raise _classify(exc) from exc
        except _UNREADABLE as exc:
            raise FalRetryable(f"unreadable answer from FAL: {exc!r}") from exc
        return dict(result)

    async def cancel(self, endpoint: str, request_id: str) -> CancelOutcome:
        """Ask FAL to cancel; 400 `ALREADY_COMPLETED` and 404 are answers, not errors."""
        try:
            await self._client.cancel(endpoint, request_id)
        except fal_client.client.FalClientHTTPError as exc:
            if exc.status_code == 404:
                return CancelOutcome.NOT_FOUND
            if exc.status_code == 400 and "ALREADY_COMPLETED" in exc.response.text:
                return CancelOutcome.ALREADY_COMPLETED
            raise _classify(exc) from exc
        except _ERRORS as exc:
            raise _classify(exc) from exc
        return CancelOutcome.REQUESTED
