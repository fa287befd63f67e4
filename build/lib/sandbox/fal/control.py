"""Control API on the plain HTTP listener: `/_emulator/...` (records, jobs, faults, files)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.fal.faults import FAULT_NAMES, OPERATIONS

if TYPE_CHECKING:
    from sandbox.fal.emulator import FalEmulator

PREFIX = "/_emulator"
_RULE_FIELDS = ("app_id", "contains", "op", "times")


def control_routes(emulator: FalEmulator) -> Any:
    """A callable that registers the control routes on an aiohttp app."""
    routes = web.RouteTableDef()

    @routes.get(f"{PREFIX}/health")
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    @routes.get(f"{PREFIX}/info")
    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "proxy_url": emulator.proxy_url,
                "control_url": emulator.control_url,
                "ca_file": str(emulator.ca_file),
                "jwks_url": emulator.public_key_jwks_url,
                "env": emulator.client_env(),
                "faults": sorted(FAULT_NAMES),
                "operations": sorted(OPERATIONS),
                "settings": emulator.settings(),
            }
        )

    @routes.get(f"{PREFIX}/ca.pem")
    async def ca_pem(request: web.Request) -> web.Response:
        return web.Response(
            body=emulator.ca_file.read_bytes(), content_type="application/x-pem-file"
        )

    @routes.get(f"{PREFIX}/jwks")
    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(emulator.jwks)

    @routes.get(f"{PREFIX}/requests")
    async def requests(request: web.Request) -> web.Response:
        q = request.query
        found = emulator.recorder.find(
            host=q.get("host"),
            method=q.get("method"),
            op=q.get("op"),
            path_prefix=q.get("path_prefix"),
        )
        return web.json_response([r.as_dict() for r in found])

    @routes.delete(f"{PREFIX}/requests")
    async def clear_requests(request: web.Request) -> web.Response:
        emulator.recorder.clear()
        return web.json_response({"ok": True})

    @routes.get(f"{PREFIX}/jobs")
    async def jobs(request: web.Request) -> web.Response:
        return web.json_response([job.as_dict() for job in emulator.jobs])

    @routes.get(f"{PREFIX}/jobs/{{request_id}}")
    async def job(request: web.Request) -> web.Response:
        found = emulator.job(request.match_info["request_id"])
        if found is None:
            return web.json_response({"detail": "no such job"}, status=404)
        return web.json_response(found.as_dict())

    @routes.get(f"{PREFIX}/webhooks")
    async def webhooks(request: web.Request) -> web.Response:
        request_id = request.query.get("request_id")
        items = [
            d.as_dict() for d in emulator.webhook_deliveries if request_id in (None, d.request_id)
        ]
        return web.json_response(items)

    @routes.get(f"{PREFIX}/faults")
    async def faults(request: web.Request) -> web.Response:
        return web.json_response([rule.as_dict() for rule in emulator.faults.rules])

    @routes.post(f"{PREFIX}/faults")
    async def add_fault(request: web.Request) -> web.Response:
        spec = await request.json()
        if not isinstance(spec, dict) or "name" not in spec:
            return web.json_response({"detail": "body must be an object with 'name'"}, status=422)
        params = dict(spec.get("params") or {})
        kwargs = {k: spec[k] for k in _RULE_FIELDS if k in spec}
        try:
            rule = emulator.faults.add(str(spec["name"]), **kwargs, **params)
        except (TypeError, ValueError) as exc:
            return web.json_response({"detail": str(exc)}, status=422)
        return web.json_response(rule.as_dict(), status=201)

    @routes.delete(f"{PREFIX}/faults")
    async def clear_faults(request: web.Request) -> web.Response:
        emulator.faults.clear()
        return web.json_response({"ok": True})

    @routes.delete(f"{PREFIX}/faults/{{rule_id}}")
    async def remove_fault(request: web.Request) -> web.Response:
        removed = emulator.faults.remove(int(request.match_info["rule_id"]))
        return web.json_response({"removed": removed}, status=200 if removed else 404)

    @routes.post(f"{PREFIX}/files")
    async def put_file(request: web.Request) -> web.Response:
        ttl = request.query.get("ttl")
        url = emulator.put_file(
            await request.read(),
            request.headers.get("Content-Type", "application/octet-stream"),
            request.query.get("name", "upload.bin"),
            ttl=float(ttl) if ttl else None,
        )
        return web.json_response({"url": url}, status=201)

    @routes.post(f"{PREFIX}/files/expire")
    async def expire(request: web.Request) -> web.Response:
        spec = await request.json()
        ok = emulator.expire_url(str(spec.get("url", "")), int(spec.get("status", 404)))
        return web.json_response({"expired": ok}, status=200 if ok else 404)

    @routes.put(f"{PREFIX}/settings")
    async def settings(request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            emulator.configure(**spec)
        except TypeError as exc:
            return web.json_response({"detail": str(exc)}, status=422)
        return web.json_response(emulator.settings())

    def install(app: web.Application) -> None:
        app.add_routes(routes)

    return install
