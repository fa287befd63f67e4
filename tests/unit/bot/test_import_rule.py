"""The bot's import rule, checked over the source with `ast` (nothing is imported).

`services/bot` is one package per feature plus `app/` (docs/bot.md, docs/decisions.md). A
feature may import `app/`, `services.kit`, `contracts`, third-party code, its own modules, and
of another feature only the modules that feature lists in `PUBLIC` (its `__init__.py`) —
never its routers, keyboards or views. `app/` imports features only through their `PUBLIC`
modules, except the composition root (`bootstrap`, `features`, `generation_wiring`, and
`services/bot/__main__.py`), which wires every feature's routers and services. Without this
test the features would grow back into one another and a new one would have no room of its
own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[3] / "services" / "bot"
COMPOSITION_ROOT = frozenset({"app.bootstrap", "app.features", "app.generation_wiring", "__main__"})
#: Names that are a feature's insides by their kind, whatever its PUBLIC says.
NEVER_PUBLIC = frozenset({"keyboards", "views", "states"})


@dataclass(frozen=True)
class Target:
    package: str | None  # a top-level package of services/bot ("app", "gallery", ...)
    module: str | None  # the module inside it ("service", "prompts", ...), when named


def features() -> list[str]:
    return sorted(p.name for p in BOT.iterdir() if (p / "__init__.py").exists() and p.name != "app")


def public_of(package: str) -> tuple[str, ...]:
    """The `PUBLIC` tuple of a feature's `__init__.py`, read without importing it."""
    tree = ast.parse((BOT / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "PUBLIC" and node.value is not None:
                value = ast.literal_eval(node.value)
                assert isinstance(value, tuple)
                return value
    raise AssertionError(f"services/bot/{package}/__init__.py declares no PUBLIC tuple")


def _module_exists(package: str, name: str) -> bool:
    return (BOT / package / f"{name}.py").exists() or (BOT / package / name).is_dir()


def imported(tree: ast.AST) -> list[tuple[str, Target | None]]:
    """Every import as (dotted name, where it lands in services/bot or None elsewhere)."""
    found: list[tuple[str, Target | None]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports hide which feature is imported"
            base = node.module or ""
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] != ["services", "bot"]:
                found.append((name, None))
                continue
            package = parts[2] if len(parts) > 2 else None
            module = None
            if package is not None and len(parts) > 3 and _module_exists(package, parts[3]):
                module = parts[3]
            found.append((name, Target(package, module)))
    return found


def violations(source: str, where: str) -> list[str]:
    """What `where` (e.g. "gallery.sharing", "app.sender") imports against the rule."""
    package = where.split(".")[0]
    wrong: list[str] = []
    for name, target in imported(ast.parse(source)):
        if target is None:
            if name.startswith(("services.", "sandbox", "tests", "benchmarks")) and not (
                name.startswith("services.kit")
            ):
                wrong.append(f"{where} imports {name}: outside the bot, kit and contracts")
            continue
        if where in COMPOSITION_ROOT or target.package == package:
            continue
        if target.package == "app":
            if f"app.{target.module}" in COMPOSITION_ROOT:
                wrong.append(f"{where} imports the composition root {name}")
            continue
        if target.package is None or target.module is None:
            wrong.append(f"{where} imports {name}: name a public module of the feature")
            continue
        if target.module not in public_of(target.package):
            wrong.append(f"{where} imports {name}: not in {target.package}'s PUBLIC")
    return wrong


def bot_modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(BOT.rglob("*.py")):
        parts = path.relative_to(BOT).with_suffix("").parts
        if parts == ("__init__",):
            continue
        found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def router_modules() -> set[str]:
    """Modules whose `build()` makes a dispatcher router: those `app/features.py` imports."""
    tree = ast.parse((BOT / "app" / "features.py").read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("services.bot."):
            package = (node.module or "").removeprefix("services.bot.")
            found |= {f"{package}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize(("where", "path"), bot_modules(), ids=lambda v: str(v))
def test_module_keeps_to_the_import_rule(where: str, path: Path) -> None:
    assert violations(path.read_text(), where) == []


def test_every_feature_declares_what_is_public_and_it_is_no_router_keyboard_or_view() -> None:
    routers = router_modules()
    assert len(routers) == 21  # the dispatch order's routers, every one found
    for feature in features():
        for module in public_of(feature):
            assert _module_exists(feature, module), f"{feature}.{module} is PUBLIC but missing"
            assert module not in NEVER_PUBLIC, f"{feature}.{module} is a feature's inside"
            assert f"{feature}.{module}" not in routers, f"{feature}.{module} is a router"


def test_every_package_says_what_it_owns() -> None:
    for package in [BOT, BOT / "app", *(BOT / f for f in features())]:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc is not None, f"{package} needs a docstring saying what it owns"
        assert len(doc) > 150, f"{package} needs a paragraph saying what it owns"


@pytest.mark.parametrize(
    ("where", "source", "complaint"),
    [
        ("gallery.sharing", "from services.bot.credits.shop import entry_line", "PUBLIC"),
        ("gallery.sharing", "from services.bot.generation import keyboards", "PUBLIC"),
        ("training.events", "import services.bot.avatars", "public module"),
        ("avatars.creation", "from services.bot.app.features import get_routers", "root"),
        ("app.sender", "from services.bot.gallery.browse import build", "PUBLIC"),
        ("menu.start", "from services.status.tracking import Tracker", "outside"),
    ],
)
def test_the_checker_catches_each_kind_of_crossing(where: str, source: str, complaint: str) -> None:
    found = violations(source, where)
    assert len(found) == 1, found
    assert complaint in found[0]


def test_the_checker_lets_the_allowed_imports_through() -> None:
    source = "\n".join(
        [
            "from services.bot.app.texts import Translator",
            "from services.bot.avatars.service import AvatarService",
            "from services.bot.gallery import callbacks",
            "from services.bot.generation.prompts.builder import truncate",
            "from services.kit.credits import Entry",
            "from contracts import TrainingType",
            "from aiogram import F",
        ]
    )
    assert violations(source, "credits.shop") == []
    assert violations("from services.bot.menu import start", "app.features") == []
