"""No secret ever reaches a log line, an event, a stream or a table.

The three services run as processes at LOG_LEVEL=DEBUG (the bot's and trainer's logs as
text, the status service's as JSON) with secrets nobody could mistake: a FAL key, a bot
token and a database password each containing "SECRET" plus random letters. A user creates
an avatar through the Telegram emulator (which accepts only that token), a sendMessage
fails once (so a traceback is logged), FAL (the emulator, which accepts only that key)
trains it and signs the webhook, the user sees "ready". Then every captured log file,
every message of every JetStream stream (events, KV, object store) and every row of every
table is searched for each secret and each secret half.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from sandbox.embedded import free_port
from sandbox.fal import FalEmulator
from sandbox.supervisor import Child, base_env
from sandbox.telegram import Limits, TelegramEmulator
from services.kit.broker import provision
from services.kit.logs import log_context, setup_logging
from tests import faces
from tests.e2e.services import wait_healthy
from tests.hostile.harness import press, reply

pytestmark = pytest.mark.e2e
RANDOM = secrets.token_hex(6)
FAL_KEY = f"scan-id-{RANDOM}:SECRETfal{secrets.token_hex(10)}"
TOKEN = f"{secrets.randbelow(10**9) + 10**9}:SECRETtg{secrets.token_hex(12)}"
DB_PASSWORD = f"SECRETdb{secrets.token_hex(10)}"
DB_ROLE = f"scan_{RANDOM}"
SERVICES = ("status", "trainer", "bot")
SECRETS = {
    "FAL key": FAL_KEY,
    "FAL key secret": FAL_KEY.partition(":")[2],
    "bot token": TOKEN,
    "bot token secret": TOKEN.partition(":")[2],
    "database password": DB_PASSWORD,
}


def _jpeg(i: int) -> bytes:
    """A real photo: the photo gate refuses flat drawings, even for a style avatar."""
    return faces.person(i)


def found_in(data: bytes) -> list[str]:
    return [name for name, value in SECRETS.items() if value.encode() in data]


@pytest_asyncio.fixture
async def login_url(db_url: str, pg_admin_url: str) -> AsyncIterator[str]:
    """DATABASE_URL with a login role of our own and a password (the server trusts local
    connections, so the password is carried and redacted but not checked)."""
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(
            f"CREATE ROLE {DB_ROLE} LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'"
        )  # SUPERUSER: SET ROLE to each service role, as the sandbox's login does
        parts = urlsplit(db_url)
        netloc = f"{DB_ROLE}:{DB_PASSWORD}@{parts.hostname or ''}"
        if parts.port:
            netloc += f":{parts.port}"
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {DB_ROLE}")
        await admin.close()


@pytest_asyncio.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    jetstream = nc.jetstream()
    await provision(jetstream)
    yield jetstream
    await nc.drain()


async def stream_leaks(js: JetStreamContext) -> dict[str, list[str]]:
    """Every stored message of every stream, searched; returns {stream/seq: [secret...]}."""
    leaks: dict[str, list[str]] = {}
    scanned = 0
    for info in await js.streams_info():
        state, name = info.state, info.config.name
        if not state.messages or name is None:
            continue
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await js.get_msg(name, seq)
            except NotFoundError:
                continue
            scanned += 1
            headers = "".join(f"{k}:{v}" for k, v in (msg.headers or {}).items()).encode()
            hits = found_in((msg.data or b"") + headers + (msg.subject or "").encode())
            if hits:
                leaks[f"{name}/{seq}"] = hits
    assert scanned > 0
    return leaks


async def table_leaks(db_url: str) -> dict[str, list[str]]:
    """Every row of every table (bytea such as the outbox payload searched as raw bytes)."""
    conn = await asyncpg.connect(db_url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        leaks = {}
        for table in tables:
            name = table["tablename"]
            rows = await conn.fetch(f'SELECT * FROM "{name}"')
            dump = b"\n".join(
                value if isinstance(value, bytes) else str(value).encode()
                for row in rows
                for value in row.values()
            )
            if hits := found_in(dump):
                leaks[name] = hits
        return leaks
    finally:
        await conn.close()


async def test_no_secret_in_logs_events_streams_or_tables(
    db_url: str, login_url: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    async with (
        TelegramEmulator(token=TOKEN, limits=Limits(enabled=False)) as emu,
        FalEmulator(
            fal_key=FAL_KEY,
            strict_key=True,
            training_seconds=1.0,
            queue_seconds=0.2,
            min_training_images=3,
        ) as fal,
    ):
        ports = {name: free_port() for name in SERVICES}
        env = {
            "DATABASE_URL": login_url,
            "NATS_URL": nats_url,
            "LOG_LEVEL": "DEBUG",
            "SHUTDOWN_GRACE_SECONDS": "2",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": emu.base_url,
            "BOT_MIN_PHOTOS": "3",
            "BOT_MAX_PHOTOS": "5",
            "BOT_ALBUM_WINDOW_SECONDS": "0.3",
            "CREDITS_TRIAL": "100",  # the trial pays for the training, so ledger rows exist
            "STATUS_POLL_INTERVAL_SECONDS": "0.5",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['status']}",
            **fal.client_env(),
        }
        assert env["FAL_KEY"] == FAL_KEY
        async with all_services(env, ports, tmp_path):
            await train_an_avatar(emu)
    logs = {path.name: path.read_bytes() for path in await asyncio.to_thread(log_files, tmp_path)}
    assert set(logs) == {"bot.log", "trainer.log", "status.log"}
    assert b"DEBUG" in logs["bot.log"]
    assert b'"level": "debug"' in logs["status.log"]
    assert b"training submitted" in logs["trainer.log"]
    assert b"Traceback" in logs["bot.log"]  # the injected failure was logged in full
    assert {name: found_in(data) for name, data in logs.items() if found_in(data)} == {}
    assert await stream_leaks(js) == {}
    assert await table_leaks(db_url) == {}


@contextlib.asynccontextmanager
async def all_services(
    env: dict[str, str], ports: dict[str, int], logs: Path
) -> AsyncIterator[None]:
    """The three services started at once (their ports are chosen up front, so the trainer
    knows the status service's URL before it is up); status logs JSON, the others text."""
    children = [
        Child(
            name,
            f"services.{name}",
            {
                **base_env(),
                **env,
                f"{name.upper()}_HTTP_PORT": str(ports[name]),
                "LOG_FORMAT": "json" if name == "status" else "text",
            },
            logs / f"{name}.log",
        )
        for name in SERVICES
    ]
    try:
        for child in children:
            await child.start()
        await asyncio.gather(*(wait_healthy(port) for port in ports.values()))
        yield
    finally:
        await asyncio.gather(*(child.stop(grace=10) for child in children))


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


async def train_an_avatar(emu: TelegramEmulator) -> None:
    """/start (its reply fails once) → create → 3 photos → train → "is ready"."""
    uid = int((await emu.create_user("Scan", language_code="en"))["id"])
    await emu.inject_fault("sendMessage", status=500, count=1)
    await emu.send_command(uid, "start")
    await reply(emu, uid, "Something went wrong", within=30)
    await emu.send_command(uid, "new")
    await reply(emu, uid, "1–40", within=15)
    await emu.send_text(uid, "Scanner")
    await press(
        emu, uid, await reply(emu, uid, button="training_type:pick"), "training_type:pick:style"
    )
    await reply(emu, uid, "0 of 3")
    await emu.send_album(uid, [_jpeg(i) for i in range(3)])
    counter = await reply(emu, uid, "3 photos", button="training:start", within=15)
    await press(emu, uid, counter, "training:start")
    await press(emu, uid, await reply(emu, uid, button="training:go"), "training:go")
    await reply(emu, uid, "is ready", within=45)
    await asyncio.sleep(0.5)  # let the last log lines be written


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_redactor_covers_extra_values_and_context_ids(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`extra=` values and log-context ids are printed by both formatters; a secret in one
    (an URL with the token, a config dump) was printed as is before."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    noisy = {n: logging.getLogger(n).level for n in ("aiohttp.access", "httpx", "httpcore", "nats")}
    try:
        setup_logging("bot", fmt, "DEBUG", SECRETS.values())
        log = logging.getLogger("aisha.scan")
        with log_context(request_id=f"https://api.telegram.org/bot{TOKEN}/getMe"):
            log.info("calling", extra={"config": {"fal_key": FAL_KEY}, "url": DB_PASSWORD})
        try:
            raise RuntimeError(f"connect failed: {DB_PASSWORD}")
        except RuntimeError:
            log.exception("boom %s", TOKEN)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)
    err = capsys.readouterr().err
    assert "calling" in err
    assert "boom" in err
    assert "***" in err
    assert found_in(err.encode()) == []
