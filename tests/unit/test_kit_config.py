"""The kit's configuration: every failure names the variable and the expected form."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.kit.config import CommonConfig, ConfigError, Env, environment, load_dotenv
from tests.conftest import ROOT

GOOD = {
    "DATABASE_URL": "postgresql://aisha:pw-secret-1@127.0.0.1:5432/aisha",
    "NATS_URL": "nats://127.0.0.1:4222",
}


def common(values: dict[str, str]) -> CommonConfig:
    return CommonConfig.from_env(Env(values), "trainer", 8082)


def test_defaults_and_secrets() -> None:
    cc = common(GOOD)
    assert cc.service == "trainer"
    assert cc.http_port == 8082
    assert cc.http_host == "127.0.0.1"
    assert cc.log_format == "text"
    assert cc.log_level == "INFO"
    assert cc.shutdown_grace_seconds == 20.0
    assert cc.secrets() == ("pw-secret-1",)


def test_missing_database_url_names_it() -> None:
    with pytest.raises(ConfigError, match=r"^DATABASE_URL is not set$"):
        common({"NATS_URL": GOOD["NATS_URL"]})


def test_empty_value_counts_as_missing() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        common({"DATABASE_URL": ""})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://db.example/aisha", r"DATABASE_URL: expected a URL like "),
        ("DATABASE_URL", "127.0.0.1:5432/aisha", r"postgresql://\.\.\. or postgres://\.\.\."),
        ("NATS_URL", "http://127.0.0.1:4222", r"NATS_URL: expected a URL like nats://\.\.\."),
        ("NATS_URL", "nats://a:4222,http://b:4222", r"NATS_URL: .*tls://\.\.\."),
        ("TRAINER_HTTP_PORT", "eighty", r"TRAINER_HTTP_PORT: expected an integer, got 'eighty'"),
        (
            "TRAINER_HTTP_PORT",
            "70000",
            r"TRAINER_HTTP_PORT: expected a TCP port 0-65535, got 70000",
        ),
        ("TRAINER_HTTP_PORT", "-1", r"TRAINER_HTTP_PORT: expected an integer >= 0"),
        ("SHUTDOWN_GRACE_SECONDS", "soon", r"SHUTDOWN_GRACE_SECONDS: expected a number"),
        ("LOG_FORMAT", "xml", r"LOG_FORMAT: expected text or json, got 'xml'"),
    ],
)
def test_bad_values_name_variable_and_form(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        common({**GOOD, name: value})
    assert str(info.value).startswith(f"{name}:")


def test_multi_url_nats_accepted() -> None:
    cc = common({**GOOD, "NATS_URL": "nats://a:4222, tls://b:4222"})
    assert cc.nats_url == "nats://a:4222, tls://b:4222"


def test_postgres_socket_url_accepted() -> None:
    url = "postgresql:///aisha?host=/tmp/pg"
    assert common({**GOOD, "DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on"])
def test_flag_true(raw: str) -> None:
    assert Env({"X_FLAG": raw}).flag("X_FLAG") is True


@pytest.mark.parametrize("raw", ["0", "False", "no", "off"])
def test_flag_false(raw: str) -> None:
    assert Env({"X_FLAG": raw}).flag("X_FLAG", True) is False


def test_flag_default_when_unset() -> None:
    assert Env({}).flag("X_FLAG", True) is True
    assert Env({}).flag("X_FLAG") is False


def test_bad_bool_names_variable_and_form() -> None:
    with pytest.raises(ConfigError, match=r"^X_FLAG: expected true or false, got 'maybe'$"):
        Env({"X_FLAG": "maybe"}).flag("X_FLAG")


def test_integer_minimum() -> None:
    with pytest.raises(ConfigError, match=r"^N_WORKERS: expected an integer >= 1, got 0$"):
        Env({"N_WORKERS": "0"}).integer("N_WORKERS", 4, minimum=1)
    assert Env({}).integer("N_WORKERS", 4, minimum=1) == 4


def test_int_set() -> None:
    assert Env({"ADMINS": "1, 2;3,,"}).int_set("ADMINS") == frozenset({1, 2, 3})
    assert Env({}).int_set("ADMINS") == frozenset()
    with pytest.raises(ConfigError, match=r"^ADMINS: expected comma-separated"):
        Env({"ADMINS": "1,bob"}).int_set("ADMINS")


def test_password_masked_in_url_error() -> None:
    with pytest.raises(ConfigError) as info:
        common({**GOOD, "DATABASE_URL": "mysql://aisha:hunter2-secret@db/aisha"})
    message = str(info.value)
    assert "hunter2-secret" not in message
    assert "mysql://aisha:***@db/aisha" in message


def test_password_masked_in_any_url_of_a_list() -> None:
    with pytest.raises(ConfigError) as info:
        common({**GOOD, "NATS_URL": "http://a:4222,nats://u:hunter2-secret@b:4222"})
    assert "hunter2-secret" not in str(info.value)
    assert "NATS_URL" in str(info.value)


def test_unparseable_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^DATABASE_URL: expected a URL like") as info:
        common({**GOOD, "DATABASE_URL": "postgresql://u:hunter2-secret@[::1/aisha"})
    assert "hunter2-secret" not in str(info.value)


def test_database_password_file_completes_the_login_url(tmp_path: Path) -> None:
    """Production: the URL names the service's login, the password is a Docker secret."""
    secret = tmp_path / "db_password"
    secret.write_text("p@ss/wörd:1\n")
    cc = common(
        {
            **GOOD,
            "DATABASE_URL": "postgresql://aisha_bot_login@postgres:5432/aisha",
            "DATABASE_PASSWORD_FILE": str(secret),
        }
    )
    assert (
        cc.database_url == "postgresql://aisha_bot_login:p%40ss%2Fw%C3%B6rd%3A1@postgres:5432/aisha"
    )
    assert set(cc.secrets()) == {"p%40ss%2Fw%C3%B6rd%3A1", "p@ss/wörd:1"}


@pytest.mark.parametrize(
    ("url", "file", "expected"),
    [
        ("postgresql://u:pw@h/db", "exists", "has a password and DATABASE_PASSWORD_FILE"),
        ("postgresql://h/db", "exists", "name the login"),
        ("postgresql://u@h/db", "missing", "DATABASE_PASSWORD_FILE: cannot read"),
    ],
)
def test_database_password_file_errors_name_the_variable(
    tmp_path: Path, url: str, file: str, expected: str
) -> None:
    secret = tmp_path / "db_password"
    if file == "exists":
        secret.write_text("pw\n")
    with pytest.raises(ConfigError, match=expected):
        common({**GOOD, "DATABASE_URL": url, "DATABASE_PASSWORD_FILE": str(secret)})


def test_load_dotenv_parsing(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED = spaced \n"
        "QUOTED='single'\n"
        'DOUBLE="double"\n'
        "WITH_EQUALS=a=b\n"
        "no equals sign here\n"
    )
    assert load_dotenv(dotenv) == {
        "PLAIN": "value",
        "EXPORTED": "spaced",
        "QUOTED": "single",
        "DOUBLE": "double",
        "WITH_EQUALS": "a=b",
    }
    assert load_dotenv(tmp_path / "missing.env") == {}


def test_dotenv_used_when_env_lacks_it_and_real_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "AISHA_T_FROM_FILE=file-value\nAISHA_T_BOTH=file-loses\n"
        "DATABASE_URL=postgresql://f:pw@file-host/aisha\n"
    )
    monkeypatch.delenv("AISHA_T_FROM_FILE", raising=False)
    monkeypatch.setenv("AISHA_T_BOTH", "env-wins")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    merged = environment(dotenv)
    assert merged["AISHA_T_FROM_FILE"] == "file-value"
    assert merged["AISHA_T_BOTH"] == "env-wins"
    assert common({**merged, "NATS_URL": GOOD["NATS_URL"]}).database_url.endswith(
        "@file-host/aisha"
    )

    monkeypatch.setenv("DATABASE_URL", "postgresql://e:pw@env-host/aisha")
    assert environment(dotenv)["DATABASE_URL"] == "postgresql://e:pw@env-host/aisha"


def test_default_dotenv_is_read_from_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("AISHA_T_CWD=from-cwd\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AISHA_T_CWD", raising=False)
    assert environment()["AISHA_T_CWD"] == "from-cwd"


def _run_trainer(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.trainer"],
        env={"PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_trainer_with_empty_environment_exits_2_with_one_line(tmp_path: Path) -> None:
    result = _run_trainer({}, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aisha-trainer: configuration error: ")
    assert "FAL_KEY" in lines[0]
    assert result.stdout == ""


def test_trainer_without_database_url_names_it(tmp_path: Path) -> None:
    result = _run_trainer(
        {"FAL_KEY": "key-id:key-secret", "PUBLIC_BASE_URL": "https://aisha.example"}, tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "aisha-trainer: configuration error: DATABASE_URL is not set"
    ]
