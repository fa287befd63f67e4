"""Typed configuration read once from the environment (and an optional `.env`).

A bad or missing variable stops the process with one line naming the variable and the
expected form, before anything connects anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit


class ConfigError(ValueError):
    """A variable is missing or malformed; the message is meant for the operator."""


def load_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; real environment variables always win over the file."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def environment(dotenv: Path | None = None) -> dict[str, str]:
    merged = load_dotenv(dotenv or Path(".env"))
    merged.update(os.environ)
    return merged


class Env:
    """Typed getters over a mapping; each failure names the variable and the expected form."""

    def __init__(self, values: Mapping[str, str]):
        self._values = values

    def _raw(self, name: str, default: str | None) -> str:
        value = self._values.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"{name} is not set")
            return default
        return value

    def text(self, name: str, default: str | None = None) -> str:
        return self._raw(name, default)

    def optional(self, name: str) -> str | None:
        value = self._values.get(name)
        return value or None

    def integer(self, name: str, default: int | None = None, *, minimum: int = 0) -> int:
        raw = self._raw(name, None if default is None else str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value}")
        return value

    def port(self, name: str, default: int) -> int:
        value = self.integer(name, default)
        if not 0 <= value <= 65535:
            raise ConfigError(f"{name}: expected a TCP port 0-65535, got {value}")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self._raw(name, str(default))
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self._raw(name, "true" if default else "false").lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")

    def url(self, name: str, schemes: tuple[str, ...], default: str | None = None) -> str:
        raw = self._raw(name, default)
        for part in raw.split(","):
            try:
                parsed = urlsplit(part.strip())
                valid = parsed.scheme in schemes and bool(parsed.netloc or parsed.query)
            except ValueError:  # e.g. an unbalanced "[" of an IPv6 host
                valid = False
            if not valid:
                form = " or ".join(f"{s}://..." for s in schemes)
                raise ConfigError(f"{name}: expected a URL like {form}, got {_mask(raw)!r}")
        return raw

    def int_set(self, name: str) -> frozenset[int]:
        raw = self._values.get(name, "")
        try:
            return frozenset(int(x) for x in raw.replace(";", ",").split(",") if x.strip())
        except ValueError:
            raise ConfigError(
                f"{name}: expected comma-separated Telegram user ids, got {raw!r}"
            ) from None


def read_secret(variable: str, path: str) -> str:
    """The content of a secret file (a Docker secret), without the trailing newline that
    `echo secret > file` leaves."""
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def database_url(env: Env) -> str:
    """`DATABASE_URL`, with the password from `DATABASE_PASSWORD_FILE` when that is set.

    Production passes each service its own login as a URL without a password and the
    password as a Docker secret, so no container's environment holds a database password."""
    url = env.url("DATABASE_URL", ("postgresql", "postgres"))
    path = env.optional("DATABASE_PASSWORD_FILE")
    if path is None:
        return url
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or not userinfo:
        raise ConfigError("DATABASE_URL: name the login (postgresql://login@host/db)")
    if ":" in userinfo:
        raise ConfigError("DATABASE_URL has a password and DATABASE_PASSWORD_FILE is set")
    password = quote(read_secret("DATABASE_PASSWORD_FILE", path), safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}:{password}@{hostport}"))


def _mask(url: str) -> str:
    """Hide the password of each URL of a comma-separated list before it goes into an error
    message."""
    masked = []
    for part in url.split(","):
        try:
            password = urlsplit(part.strip()).password
        except ValueError:
            password = None
            if "@" in part:  # unparseable: hide the whole userinfo
                scheme, sep, rest = part.rpartition("://")
                part = f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
        masked.append(part.replace(password, "***") if password else part)
    return ",".join(masked)


@dataclass(frozen=True, kw_only=True)
class CommonConfig:
    """What every service needs: where the servers are, how to log, where to serve HTTP."""

    service: str
    database_url: str
    nats_url: str
    http_host: str
    http_port: int
    log_format: str
    log_level: str
    shutdown_grace_seconds: float
    stream_replicas: int = 1

    @classmethod
    def from_env(cls, env: Env, service: str, default_port: int) -> CommonConfig:
        log_format = env.text("LOG_FORMAT", "text")
        if log_format not in {"text", "json"}:
            raise ConfigError(f"LOG_FORMAT: expected text or json, got {log_format!r}")
        return cls(
            service=service,
            database_url=database_url(env),
            nats_url=env.url("NATS_URL", ("nats", "tls"), "nats://127.0.0.1:4222"),
            http_host=env.text("HTTP_HOST", "127.0.0.1"),
            http_port=env.port(f"{service.upper()}_HTTP_PORT", default_port),
            log_format=log_format,
            log_level=env.text("LOG_LEVEL", "INFO").upper(),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 20.0),
            stream_replicas=env.integer("NATS_STREAM_REPLICAS", 1, minimum=1),
        )

    def secrets(self) -> tuple[str, ...]:
        password = urlsplit(self.database_url).password
        if not password:
            return ()
        # libpq and asyncpg show the password decoded; the URL carries it percent-encoded.
        return (password, unquote(password)) if unquote(password) != password else (password,)
