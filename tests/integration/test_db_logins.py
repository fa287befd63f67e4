"""Per-service database logins, made the documented way and used the production way.

The migrate job's own entry (`services.kit.migrate.setup`) creates `aisha_<service>_login`
from password files, on the embedded PostgreSQL with password authentication switched on
for those logins (a `pg_hba.conf` line, restored afterwards). Each login then connects as
the service would (`DATABASE_URL` naming it, `DATABASE_PASSWORD_FILE`, the kit's pool), does
one write it owns, and is refused a column another service owns.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from services.kit import migrate
from services.kit.config import Env, database_url
from services.kit.db import create_pool
from services.kit.logins import SERVICE_ROLES, login_name, scram_verifier

LOGINS = [login_name(role) for role in SERVICE_ROLES.values()]
#: service -> (a write it owns, writes of columns other services own)
JOBS = {
    "bot": ("name = 'Renamed'", ("fal_request_id = 'x'", "fal_status = 'x'")),
    "trainer": ("fal_request_id = 'req-9'", ("name = 'x'", "training_logs = 'x'")),
    "status": ("fal_status = 'IN_PROGRESS'", ("steps = 1", "status = 'completed'")),
}


def as_login(url: str, login: str, password: str | None = None) -> str:
    """`url` (the test database) with `login` (and its password) as the user."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = login if password is None else f"{login}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def swap(path: Path, change: Callable[[str], str]) -> str:
    """Rewrite a (small, local) file; returns what it held."""
    before = path.read_text()
    path.write_text(change(before))
    return before


@pytest.fixture
async def password_auth(pg_admin_url: str) -> AsyncIterator[None]:
    """SCRAM authentication for the three logins only (other connections stay `trust`)."""
    admin = await asyncpg.connect(pg_admin_url)
    hba = Path(await admin.fetchval("SHOW hba_file"))
    original = swap(hba, lambda text: f"local all {','.join(LOGINS)} scram-sha-256\n{text}")
    await admin.fetchval("SELECT pg_reload_conf()")
    try:
        for _ in range(100):  # the postmaster reloads asynchronously
            try:
                await asyncpg.connect(as_login(pg_admin_url, LOGINS[0], "wrong"))
            except asyncpg.InvalidPasswordError:
                break
            except asyncpg.InvalidAuthorizationSpecificationError:  # still trust: no role
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("pg_hba.conf was not reloaded")
        yield
    finally:
        swap(hba, lambda _: original)
        await admin.fetchval("SELECT pg_reload_conf()")
        for login in LOGINS:
            await admin.execute(f'DROP ROLE IF EXISTS "{login}"')
        await admin.close()


async def run_migrate_job(
    db_url: str, tmp_path: Path, tag: str
) -> tuple[dict[str, Path], list[str]]:
    """What the deploy's migrate job does: passwords in secret files, `setup` as the owner."""
    files = {}
    env = {"DATABASE_URL": db_url}
    for service in SERVICE_ROLES:
        files[service] = tmp_path / f"{service}_db_password_{tag}"
        files[service].write_text(secrets.token_urlsafe(24) + "\n")
        env[f"{service.upper()}_DB_PASSWORD_FILE"] = str(files[service])
    return files, await asyncio.to_thread(migrate.setup, env)


async def seed_avatar(db_url: str) -> uuid.UUID:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("INSERT INTO users (id, first_name) VALUES (77, 'L')")
        avatar_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO avatars (user_id, name, gender, trigger_word)"
            " VALUES (77, 'A', 'male', 'tok') RETURNING id"
        )
        return avatar_id
    finally:
        await conn.close()


async def test_each_login_does_its_job_and_cannot_write_another_services_columns(
    db_url: str, password_auth: None, tmp_path: Path
) -> None:
    files, done = await run_migrate_job(db_url, tmp_path, "a")
    assert sorted(done) == sorted(LOGINS)
    avatar_id = await seed_avatar(db_url)
    for service, (owned, foreign) in JOBS.items():
        role, login = SERVICE_ROLES[service], login_name(SERVICE_ROLES[service])
        # The service's own configuration: a URL naming its login, the password as a file.
        url = database_url(
            Env(
                {
                    "DATABASE_URL": as_login(db_url, login),
                    "DATABASE_PASSWORD_FILE": str(files[service]),
                }
            )
        )
        pool = await create_pool(url, role, max_size=1)
        try:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT session_user") == login
                assert await conn.fetchval("SELECT current_user") == role
                assert (
                    await conn.execute(f"UPDATE avatars SET {owned} WHERE id = $1", avatar_id)
                    == "UPDATE 1"
                )
                for column in foreign:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.execute(f"UPDATE avatars SET {column} WHERE id = $1", avatar_id)
        finally:
            await pool.close()
        # Without the role setting the login acts through its membership, with the same grants.
        conn = await asyncpg.connect(as_login(db_url, login, files[service].read_text().strip()))
        try:
            assert await conn.fetchval("SELECT current_user") == login
            assert (
                await conn.execute(f"UPDATE avatars SET {owned} WHERE id = $1", avatar_id)
                == "UPDATE 1"
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"UPDATE avatars SET {foreign[0]} WHERE id = $1", avatar_id)
        finally:
            await conn.close()


async def test_logins_are_checked_least_privileged_and_rotatable(
    db_url: str, pg_admin_url: str, password_auth: None, tmp_path: Path
) -> None:
    old, _ = await run_migrate_job(db_url, tmp_path, "old")
    bot_login = login_name(SERVICE_ROLES["bot"])
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(as_login(db_url, bot_login, "not-the-password"))
    # A login wired to another service's role fails at connect, not at its first write.
    trainer_password = old["trainer"].read_text().strip()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await create_pool(
            as_login(db_url, login_name("aisha_trainer"), trainer_password), "aisha_bot"
        )
    admin = await asyncpg.connect(pg_admin_url)
    try:
        rows = await admin.fetch(
            "SELECT r.rolname, r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolbypassrls"
            " AS powerful, array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g"
            " ON g.oid = m.roleid WHERE m.member = r.oid) AS member_of"
            " FROM pg_roles r WHERE r.rolname = ANY($1::text[])",
            LOGINS,
        )
    finally:
        await admin.close()
    assert {r["rolname"]: (r["powerful"], r["member_of"]) for r in rows} == {
        login_name(role): (False, [role]) for role in SERVICE_ROLES.values()
    }
    # Running the job again with new passwords rotates them in place.
    new, done = await run_migrate_job(db_url, tmp_path, "new")
    assert sorted(done) == sorted(LOGINS)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(as_login(db_url, bot_login, old["bot"].read_text().strip()))
    conn = await asyncpg.connect(as_login(db_url, bot_login, new["bot"].read_text().strip()))
    await conn.close()


async def test_the_scram_verifier_is_the_one_postgresql_computes(pg_admin_url: str) -> None:
    """Same password, same salt and iterations: our verifier equals the server's own."""
    role = f"t_scram_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute("SET password_encryption = 'scram-sha-256'")
        await admin.execute(f"CREATE ROLE {role} PASSWORD 'correct horse €'")
        stored = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
    iterations, salt = stored.split("$")[1].split(":")
    assert scram_verifier("correct horse €", base64.b64decode(salt), int(iterations)) == stored
