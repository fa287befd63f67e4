"""The emulator can deliver a webhook the way a real network may: the body in small TCP
segments with pauses, with a Content-Length or chunked (`Segmenting`, an assumed-behaviour
switch). A raw socket server records what arrives per read and when: the body must come in
several pieces spread in time, reassemble to exactly what was signed, and verify."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import fal_client
import pytest

from sandbox.fal import FalEmulator
from sandbox.fal.signing import verify
from sandbox.fal.webhooks import Segmenting

GENERATION = {"prompt": "a lighthouse at dusk", "num_images": 2}


@dataclass
class RawReceiver:
    """Answers 200 to one request per connection; keeps every read with its arrival time."""

    reads: list[tuple[float, bytes]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self.complete() and (data := await reader.read(65536)):
            self.reads.append((time.monotonic(), data))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()
        self.done.set()

    def raw(self) -> bytes:
        return b"".join(data for _, data in self.reads)

    def complete(self) -> bool:
        head, sep, rest = self.raw().partition(b"\r\n\r\n")
        if not sep:
            return False
        if b"transfer-encoding: chunked" in head.lower():
            return rest.endswith(b"0\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return len(rest) >= length

    def request(self) -> tuple[dict[str, str], bytes]:
        head, _, rest = self.raw().partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if headers.get("Transfer-Encoding") == "chunked":
            rest = dechunk(rest)
        return headers, rest


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


@pytest.fixture
async def raw() -> AsyncIterator[RawReceiver]:
    receiver = RawReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    yield receiver
    server.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_webhook_arrives_in_segments_and_still_verifies(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient, raw: RawReceiver, chunked: bool
) -> None:
    fal_emu.configure(
        webhook_segment_bytes=64, webhook_segment_pause_ms=15, webhook_chunked=chunked
    )
    assert fal_emu.settings()["webhook_segment_bytes"] == 64
    url = f"http://127.0.0.1:{raw.port}/fal/webhook"
    handle = await fal.submit("fal-ai/flux-lora", GENERATION, webhook_url=url)
    await asyncio.wait_for(raw.done.wait(), 10)
    headers, body = raw.request()
    assert ("Transfer-Encoding" in headers) is chunked
    assert ("Content-Length" in headers) is not chunked
    assert verify(fal_emu.jwks, headers, body)
    assert body == fal_emu.webhook_deliveries[-1].body.encode()
    assert headers["X-Fal-Webhook-Request-Id"] == handle.request_id
    pieces = len(body) // 64
    assert len(raw.reads) >= pieces  # one read per segment at least (paused, not coalesced)
    spread = raw.reads[-1][0] - raw.reads[0][0]
    assert spread >= (pieces - 1) * 0.015 * 0.8, (spread, pieces)


def test_segmenting_is_read_from_the_environment() -> None:
    env = {
        "FAL_EMU_WEBHOOK_SEGMENT_BYTES": "256",
        "FAL_EMU_WEBHOOK_SEGMENT_PAUSE_MS": "20",
        "FAL_EMU_WEBHOOK_CHUNKED": "yes",
    }
    assert Segmenting.from_env(env) == Segmenting(256, 0.02, True)
    assert Segmenting.from_env({}) == Segmenting(0, 0.02, False)
