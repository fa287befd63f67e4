"""The two dependency sets: the runtime lock carries exactly what the code needs, no dev tool.

The production image and `./scripts/run` install `requirements.lock` alone, so a test tool
that leaked into it would ship to production, and a runtime import missing from it would only
show up there. The dev lock (`requirements-dev.lock`) layers the dev extra on top.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
RUNTIME_CODE = ("services", "contracts", "sandbox", "migrations")
FIRST_PARTY = {"services", "contracts", "sandbox", "migrations", "tests", "benchmarks"}
# Named here, not only read from pyproject, so that moving one of them into the runtime
# dependencies fails this test instead of silently re-shaping the sets it compares.
DEV_TOOLS = {
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "coverage",
    "hypothesis",
    "ruff",
    "mypy",
    "playwright",
    "faststream",
    "pyinstrument",
    "py-spy",
    "pyyaml",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def pins(lock: Path) -> dict[str, str]:
    """`name==version` lines of a lock, by canonical name; comments and `-r` skipped."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if not line.strip() or line.startswith(("#", "-r ")):
            continue
        match = PIN.match(line.strip())
        assert match, f"{lock.name}: not a pin: {line!r}"
        found[canonicalize_name(match[1])] = match[2]
    return found


def project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    table = data["project"]
    assert isinstance(table, dict)
    return table


def closure(roots: list[Requirement]) -> set[str]:
    """Every distribution pip installs for `roots`, walked through the installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            wanted = extras | {""}
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def third_party_imports() -> dict[str, str]:
    """Top-level module → one file importing it, for every absolute non-stdlib import."""
    found: dict[str, str] = {}
    for top in RUNTIME_CODE:
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    module = name.split(".")[0]
                    if module not in sys.stdlib_module_names and module not in FIRST_PARTY:
                        found.setdefault(module, str(path.relative_to(ROOT)))
    return found


def test_runtime_lock_holds_no_dev_tool() -> None:
    runtime = pins(RUNTIME_LOCK)
    assert sorted(name for name in runtime if name in DEV_TOOLS or name.startswith("pytest")) == []
    dev_extra = project()["optional-dependencies"]
    assert isinstance(dev_extra, dict)
    declared = {canonicalize_name(Requirement(r).name) for r in dev_extra["dev"]}
    # Every declared dev tool is one this test guards.
    assert declared <= DEV_TOOLS, declared - DEV_TOOLS


def test_runtime_lock_is_exactly_the_runtime_dependencies_and_theirs() -> None:
    deps = project()["dependencies"]
    assert isinstance(deps, list)
    expected = closure([Requirement(d) for d in deps])
    assert set(pins(RUNTIME_LOCK)) == expected


def test_dev_lock_adds_the_dev_tools_on_top_of_the_runtime_pins() -> None:
    lines = DEV_LOCK.read_text().splitlines()
    assert "-r requirements.lock" in lines
    dev, runtime = pins(DEV_LOCK), pins(RUNTIME_LOCK)
    assert dev.keys() >= DEV_TOOLS, DEV_TOOLS - dev.keys()
    # One pin per package across both files: the dev set cannot drift from the runtime one.
    assert sorted(dev.keys() & runtime.keys()) == []


def import_providers() -> dict[str, list[str]]:
    """Top-level import name → distributions, from `top_level.txt` and, where a wheel's
    `top_level.txt` leaves a package out (dlib-bin names only its extension module), from
    the files each distribution installed."""
    providers = {k: list(v) for k, v in metadata.packages_distributions().items()}
    for dist in metadata.distributions():
        for file in dist.files or []:
            if len(file.parts) > 1 and file.parts[1] == "__init__.py":
                providers.setdefault(file.parts[0], []).append(dist.metadata["Name"])
    return providers


def test_every_runtime_import_is_satisfied_by_the_runtime_lock() -> None:
    providers = import_providers()
    runtime = pins(RUNTIME_LOCK)
    imports = third_party_imports()
    assert {"aiogram", "nats", "asyncpg", "pgserver"} <= imports.keys()
    missing = {
        module: where
        for module, where in imports.items()
        if not any(canonicalize_name(d) in runtime for d in providers.get(module, []))
    }
    assert missing == {}


def test_the_image_installs_only_the_runtime_lock() -> None:
    lines = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
    instructions = [line for line in lines if line.strip() and not line.startswith("#")]
    installs = [line for line in instructions if "pip install" in line]
    assert installs == ["RUN pip install --no-cache-dir -r requirements.lock"]
    assert [line for line in instructions if "requirements" in line] == [
        "COPY requirements.lock ./",
        *installs,
    ]
