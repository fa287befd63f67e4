"""One database login per service, created by the deploy step, never by a migration.

The migrations create the NOLOGIN group roles `aisha_bot`, `aisha_trainer`, `aisha_status`
and give them their column grants; they hold no password, so the history stays free of
secrets. This module gives each role a login, `<role>_login` (`aisha_bot_login`, ...),
that is a member of it and nothing else: no superuser, no CREATEDB, no CREATEROLE. The
migrate job (`python -m services.kit.migrate`) runs it with the owner's login after
`upgrade`, from `<SERVICE>_DB_PASSWORD_FILE` (a Docker secret) or `<SERVICE>_DB_PASSWORD`.

The password goes to the server as a SCRAM-SHA-256 verifier computed here (what `psql`'s
`\\password` does), so the plaintext never reaches the server's statement log. Running it
again with a new password rotates the login in place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from collections.abc import Mapping

import asyncpg

from services.kit.config import ConfigError, read_secret

log = logging.getLogger(__name__)

#: service -> the group role whose grants its login gets.
SERVICE_ROLES = {"bot": "aisha_bot", "trainer": "aisha_trainer", "status": "aisha_status"}
SCRAM_ITERATIONS = 4096


def login_name(role: str) -> str:
    return f"{role}_login"


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = 0) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677):
    `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64."""
    salt = salt if salt is not None else os.urandom(16)
    rounds = iterations or SCRAM_ITERATIONS
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${rounds}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def passwords_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """role -> password for each service whose password is given (a file wins); an empty
    password is refused."""
    passwords: dict[str, str] = {}
    for service, role in SERVICE_ROLES.items():
        name = f"{service.upper()}_DB_PASSWORD"
        path = env.get(f"{name}_FILE")
        value = read_secret(f"{name}_FILE", path) if path else env.get(name)
        if value is None:
            continue
        if not value:
            raise ConfigError(f"{name}: the password is empty")
        passwords[role] = value
    return passwords


async def ensure_logins(conn: asyncpg.Connection, passwords: Mapping[str, str]) -> list[str]:
    """Create or update `<role>_login` for each role in `passwords`; returns the logins.

    Idempotent: an existing login gets its attributes, membership and password set again.
    Runs in one transaction, so a half-configured set of logins is never left behind."""
    done = []
    async with conn.transaction():
        for role, password in passwords.items():
            if role not in SERVICE_ROLES.values():
                raise ValueError(f"unknown service role {role!r}")
            login = login_name(role)
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", login)
            if not exists:
                await conn.execute(f'CREATE ROLE "{login}" LOGIN')
            await conn.execute(
                f'ALTER ROLE "{login}" LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE'
                " NOREPLICATION NOBYPASSRLS"
            )
            await conn.execute(f'GRANT "{role}" TO "{login}"')
            # Utility statements take no parameters; the verifier is base64 and `$`/`:`,
            # nothing that needs quoting, and `quote_literal` makes sure of it.
            verifier = scram_verifier(password)
            literal = await conn.fetchval("SELECT quote_literal($1::text)", verifier)
            await conn.execute(f'ALTER ROLE "{login}" PASSWORD {literal}')
            done.append(login)
    if done:
        log.info("database logins ready: %s", ", ".join(done))
    return done
