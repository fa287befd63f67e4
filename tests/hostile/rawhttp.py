"""A raw-socket HTTP/1.1 client that sends a request the way a real network may deliver it:
headers and body in many small pieces with pauses between them, with a Content-Length or
chunked, complete, cut short, or stopped after the headers. aiohttp's own client always
writes a small body in one piece, which is how a handler that reads only "what has arrived
so far" passed every test while refusing genuine webhooks on a real network."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: the server closed without answering
    body: str

    @property
    def error(self) -> str | None:
        with contextlib.suppress(ValueError, AttributeError):
            value = json.loads(self.body).get("error")
            return None if value is None else str(value)
        return None


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _chunked(body: bytes, size: int, *, last: bool) -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in _pieces(body, size))
    return framed + (b"0\r\n\r\n" if last else b"")


async def send(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    segment: int = 256,
    pause: float = 0.02,
    chunked: bool = False,
    cut_at: int | None = None,
    hold_after_headers: float | None = None,
    answer_within: float = 10.0,
) -> Answer:
    """POST `body` to `url` in `segment`-byte writes `pause` seconds apart.

    `cut_at`: send only that many body bytes, then half-close (the body ends early).
    `hold_after_headers`: send the headers, then nothing for that long (a slow loris);
    the answer is awaited meanwhile."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        length = {"Content-Length": str(len(body))}
        framing = {"Transfer-Encoding": "chunked"} if chunked else length
        lines = [f"POST {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in {**headers, **framing}.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        sent = body if cut_at is None else body[:cut_at]
        payload = _chunked(sent, segment, last=cut_at is None) if chunked else sent
        for piece in _pieces(head, max(1, segment // 4)):  # headers in pieces too
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(pause)
        if hold_after_headers is not None:
            return await _answer(reader, hold_after_headers)
        for piece in _pieces(payload, segment):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(pause)
        if cut_at is not None:
            writer.write_eof()
        return await _answer(reader, answer_within)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _answer(reader: asyncio.StreamReader, within: float) -> Answer:
    """The status and body of the server's answer (Content-Length framed, as aiohttp sends
    its JSON answers), or `Answer(None, "")` when it closed without one."""
    async with asyncio.timeout(within):
        try:
            status_line = await reader.readline()
        except ConnectionError:
            return Answer(None, "")
        if not status_line:
            return Answer(None, "")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        text = (await reader.readexactly(length)).decode() if length else ""
    return Answer(int(status_line.split()[1]), text)
