"""`python -m benchmarks.raw_server PORT`: the raw HTTP baseline, an aiohttp handler that
reads the POSTed body and answers 200, in a process of its own like the status service."""

from __future__ import annotations

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


async def ready(_: web.Request) -> web.Response:
    return web.Response(status=200)


def main() -> None:
    app = web.Application()
    app.router.add_post("/fal/webhook", handle)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
