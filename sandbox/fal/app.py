"""The emulator's aiohttp app: one catch-all route that dispatches on the Host header."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.fal import cdn
from sandbox.fal.context import Context, Handler, error, key_error
from sandbox.fal.endpoints import APPS, validate
from sandbox.fal.faults import FaultRule
from sandbox.fal.jobs import COMPLETED, IN_QUEUE, Job

QUEUE_HOSTS = frozenset({"queue.fal.run", "queue.falrun.com"})
RUN_HOSTS = frozenset({"fal.run", "falrun.com"})
REST_HOSTS = frozenset({"rest.fal.ai", "rest.alpha.fal.ai"})
_REQUEST_PATH = re.compile(
    r"^/((?:workflows/|comfy/)?[^/]+/[^/]+)/requests/([^/]+?)(/status|/cancel)?/?$"
)


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body) if body else {}
    except ValueError:
        return None


class Dispatcher:
    """Routes by host and path, records the request, applies HTTP faults."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        host = (request.host or "").split(":")[0].lower()
        record = self.ctx.recorder.add(
            host,
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            body,
            request.headers.get("Content-Type", ""),
        )
        handler, record.op, record.app_id = self._route(host, request.method, request.path)
        rule = self.ctx.faults.for_request(record.op, record.app_id) if record.op else None
        response = await self._handle(request, body, handler, rule)
        record.status = response.status
        return response

    async def _handle(
        self, request: web.Request, body: bytes, handler: Handler, rule: FaultRule | None
    ) -> web.StreamResponse:
        if rule is not None and rule.name == "hang":
            await self.ctx.clock.sleep(float(rule.param("seconds", 30.0)))
        if rule is not None and rule.name == "status_unknown":
            return _unknown_status(rule)
        if rule is None or rule.name != "http_error":
            return await handler(request, body)
        if rule.param("after", False):
            await handler(request, body)
        return _fault_response(rule)

    def _route(self, host: str, method: str, path: str) -> tuple[Handler, str | None, str | None]:
        if host in QUEUE_HOSTS:
            match = _REQUEST_PATH.match(path)
            if match:
                app_prefix, request_id, suffix = match.groups()
                op = {"/status": "status", "/cancel": "cancel"}.get(suffix or "", "result")
                return self._request_op(op, request_id), op, app_prefix
            if method == "POST":
                return self.submit, "submit", path.strip("/")
        if host in RUN_HOSTS and method == "POST":
            return self.run, "run", path.strip("/")
        if host.endswith("fal.ai") and path == "/.well-known/jwks.json":
            return self.jwks, "jwks", None
        return cdn.route(self.ctx, host, method, path)

    # -- queue ------------------------------------------------------------------------
    def _urls(self, request: web.Request, job: Job) -> dict[str, str]:
        parts = job.app_id.split("/")
        prefix = "/".join(parts[:3] if parts[0] in ("workflows", "comfy") else parts[:2])
        base = f"https://{request.host}/{prefix}/requests/{job.request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    async def submit(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if (denied := key_error(self.ctx, request)) is not None:
            return denied
        app_id = request.path.strip("/")
        if app_id not in APPS:
            return error(404, f"Application '{app_id}' not found")
        arguments = _json_body(body)
        if not isinstance(arguments, dict):
            return error(
                422,
                [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}],
            )
        if self.ctx.validate_at_submit and (problems := validate(app_id, arguments)):
            return error(422, problems)
        faults = self.ctx.faults.for_job(app_id, arguments)
        job = Job(
            app_id,
            arguments,
            request.query.get("fal_webhook"),
            faults,
            output_lifetime=cdn.requested_lifetime(request),
        )
        self.ctx.runner.submit(job)
        return web.json_response(
            {
                "status": IN_QUEUE,
                "request_id": job.request_id,
                "gateway_request_id": job.request_id,
                **self._urls(request, job),
                "queue_position": self.ctx.runner.queue_position(job),
                "logs": None,
                "metrics": {},
            },
            headers={"x-fal-request-id": job.request_id},
        )

    def _request_op(self, op: str, request_id: str) -> Handler:
        async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
            if (denied := key_error(self.ctx, request)) is not None:
                return denied
            job = self.ctx.runner.jobs.get(request_id)
            if job is None:
                return error(404, f"Request {request_id} not found")
            if op == "status":
                if self.ctx.outcomes.status_gone(job, self.ctx.clock):
                    return error(404, f"Request {request_id} not found")
                return web.json_response(self._status(request, job))
            if op == "cancel":
                return self._cancel(job)
            return self._result(job)

        return handle

    def _status(self, request: web.Request, job: Job) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": job.state,
            "request_id": job.request_id,
            **self._urls(request, job),
        }
        if job.state == IN_QUEUE:
            data["queue_position"] = self.ctx.runner.queue_position(job)
            return data
        with_logs = request.query.get("logs", "").lower() in ("1", "true")
        data["logs"] = list(job.logs) if with_logs else None
        if job.state == COMPLETED:
            elapsed = (job.finished_at or 0.0) - (job.started_at or job.finished_at or 0.0)
            data["metrics"] = {"inference_time": round(elapsed, 3)}
            if job.failure is not None:
                data["error"] = job.failure.message
                data["error_type"] = job.failure.error_type
        return data

    def _cancel(self, job: Job) -> web.Response:
        if job.state != COMPLETED and self.ctx.outcomes.ignores_cancel(job):
            return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)
        if self.ctx.runner.cancel(job):
            return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)
        return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)

    def _result(self, job: Job) -> web.Response:
        if job.state != COMPLETED:
            return error(400, "Request is still in progress")
        if self.ctx.outcomes.expired(job, self.ctx.clock):
            return error(404, f"Request {job.request_id} not found")
        if job.failure is not None:
            return error(
                job.failure.status,
                job.failure.detail,
                **{"X-Fal-Error-Type": job.failure.error_type},
            )
        return web.json_response(job.result, headers={"x-fal-request-id": job.request_id})

    async def run(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """Synchronous `fal.run` call: the same job, answered when it completes."""
        response = await self.submit(request, body)
        request_id = (
            response.headers.get("x-fal-request-id") if isinstance(response, web.Response) else None
        )
        job = self.ctx.runner.jobs.get(request_id or "")
        if job is None:
            return response
        await job.done.wait()
        return self._result(job)

    async def jwks(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response(self.ctx.webhooks.jwks, headers={"Cache-Control": "max-age=3600"})


def _unknown_status(rule: FaultRule) -> web.Response:
    """A status answer fal-client may not know: a new status name, fields nobody documented
    (and without `queue_position` / `logs` unless `fields` has them)."""
    fields = rule.param("fields", {"estimated_start": "2026-01-01T00:00:00Z"})
    data = {"status": str(rule.param("status", "SCHEDULED")), **dict(fields)}
    return web.json_response(data, status=202)


def _fault_response(rule: FaultRule) -> web.Response:
    """`body`: "empty", "html" (as `ingress`) or a JSON value answered as it is; else FAL's
    `{"detail": detail or message}` with `error_type` in the body and `X-Fal-Error-Type`."""
    status = int(rule.param("status", 500))
    body = rule.param("body", None)
    if body == "empty":
        return web.Response(status=status, body=b"")
    if body is not None and body != "html":
        return web.json_response(body, status=status)
    if rule.param("ingress", False) or body == "html":
        html = (
            "<html><head><title>502 Bad Gateway</title></head>"
            "<body><center>nginx</center></body></html>"
        )
        return web.Response(status=status, text=html, content_type="text/html")
    if status == 429:
        return error(
            429, "Rate limit exceeded", **{"Retry-After": str(rule.param("retry_after", 1))}
        )
    detail = rule.param("detail", str(rule.param("message", "Internal Server Error")))
    error_type = rule.param("error_type", None)
    if error_type is None:
        return error(status, detail)
    return web.json_response(
        {"detail": detail, "error_type": error_type},
        status=status,
        headers={"X-Fal-Error-Type": str(error_type)},
    )


def build_app(
    ctx: Context, control: Callable[[web.Application], None] | None = None
) -> web.Application:
    """The app both listeners serve; `control` adds the `/_emulator/...` routes first."""
    app = web.Application(client_max_size=1024**3)
    if control is not None:
        control(app)
    dispatcher = Dispatcher(ctx)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await dispatcher(request)

    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
