"""A fal-client `AsyncClient` that counts and times every call it makes to FAL.

The trainer (submit, upload, cancel) and the status service (status, result) both talk to
FAL; counting at the client, not at each call site, means no call goes unmeasured and both
services report the same outcome codes. The counter is `aisha_<service>_fal_requests_total
{endpoint, outcome}` (endpoint is the FAL app id, or `cdn` for uploads: a closed set chosen
by our code, never by users); the histogram is per operation.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import fal_client
import httpx
from prometheus_client import Counter, Histogram

T = TypeVar("T")
CDN = "cdn"


def fal_outcome(exc: BaseException) -> str:
    """ok / client_error / rate_limited / server_error / timeout / network_error /
    unreadable (a 2xx that is not FAL's JSON: HTML, an empty body, a missing field) / error."""
    status: int | None = None
    if isinstance(exc, fal_client.client.FalClientHTTPError):
        status = exc.status_code
    elif isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
    if status is not None:
        if status == 429:
            return "rate_limited"
        if status == 408:
            return "timeout"
        return "server_error" if status >= 500 else "client_error"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPError | OSError):
        return "network_error"
    if isinstance(exc, ValueError | KeyError | TypeError):
        return "unreadable"
    return "error"


class ObservedFalClient(fal_client.AsyncClient):
    """Same API as `fal_client.AsyncClient`; `subscribe` is counted through its `submit`."""

    def __init__(
        self, key: str, requests: Counter, seconds: Histogram, default_timeout: float = 120.0
    ) -> None:
        super().__init__(key=key, default_timeout=default_timeout)
        self._requests = requests
        self._seconds = seconds

    async def _observe(self, endpoint: str, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await call
        except Exception as exc:
            self._requests.labels(endpoint, fal_outcome(exc)).inc()
            raise
        finally:
            self._seconds.labels(operation).observe(time.perf_counter() - started)
        self._requests.labels(endpoint, "ok").inc()
        return result

    async def submit(self, application: str, *args: Any, **kwargs: Any) -> Any:
        return await self._observe(
            application, "submit", super().submit(application, *args, **kwargs)
        )

    async def status(self, application: str, *args: Any, **kwargs: Any) -> Any:
        return await self._observe(
            application, "status", super().status(application, *args, **kwargs)
        )

    async def result(self, application: str, *args: Any, **kwargs: Any) -> Any:
        return await self._observe(
            application, "result", super().result(application, *args, **kwargs)
        )

    async def cancel(self, application: str, *args: Any, **kwargs: Any) -> None:
        await self._observe(application, "cancel", super().cancel(application, *args, **kwargs))

    async def upload(self, *args: Any, **kwargs: Any) -> str:
        return await self._observe(CDN, "upload", super().upload(*args, **kwargs))


async def read_status(
    client: fal_client.AsyncClient, application: str, request_id: str, *, with_logs: bool
) -> tuple[fal_client.Status, dict[str, Any]]:
    """A job's status as fal-client reads it, and the whole answer FAL sent.

    fal-client's `status()` keeps only what its dataclasses name (`logs`, `metrics`,
    `error`, `error_type`; not `request_id`, the URLs, or any field FAL adds), and
    `fal_response_data` must hold FAL's answer, not our selection of it. The same request
    (`GET .../status?logs=`, fal-client's retries and error mapping), kept whole; counted
    like `status()` by an `ObservedFalClient`. Raises what `status()` raises.
    """

    async def call() -> tuple[fal_client.Status, dict[str, Any]]:
        handle = await client.get_handle(application, request_id)
        response = await fal_client.client._async_maybe_retry_request(
            handle.client,
            "GET",
            handle.status_url,
            params={"logs": with_logs},
            timeout=fal_client.client.QUEUE_POLL_TIMEOUT,
        )
        fal_client.client._raise_for_status(response)
        body = response.json()
        if not isinstance(body, dict):
            raise TypeError(f"status is not an object: {type(body).__name__}")
        return handle._parse_status(body), body

    if isinstance(client, ObservedFalClient):
        return await client._observe(application, "status", call())
    return await call()
