"""A tiny HTTP CONNECT proxy that tunnels every host to the emulator's TLS listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

_MAX_HEADER = 64 * 1024
_CHUNK = 64 * 1024


class ConnectProxy:
    """Answers `CONNECT host:443` by piping bytes to the TLS listener, whatever the host.

    A plain (non-CONNECT) proxied request such as `GET http://queue.fal.run/...` is piped
    unchanged to the plain HTTP listener, which dispatches by its Host header.
    """

    def __init__(self, tls_port: int, plain_port: int, host: str = "127.0.0.1") -> None:
        self._tls_port = tls_port
        self._plain_port = plain_port
        self._host = host
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.tunnels: list[str] = []

    @property
    def port(self) -> int:
        assert self._server is not None, "proxy not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._on_client, self._host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # stop() cancels open tunnels; end quietly (asyncio logs a cancelled handler task)
            return
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEADER:
            writer.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, rest = request_line.partition(" ")
        target = rest.partition(" ")[0]
        if method.upper() == "CONNECT":
            self.tunnels.append(target)
            up_reader, up_writer = await asyncio.open_connection(self._host, self._tls_port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._plain_port)
            up_writer.write(head)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
