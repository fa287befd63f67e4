"""Reading the monitoring-as-code files: PromQL expressions and the metric names they use.

Used to prove that every metric an alert or a dashboard panel queries is really exported
by some service (a renamed metric otherwise turns an alert silently into "never fires").
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))

#: Series Prometheus makes itself: scrape health and the alerts it evaluates.
SYNTHETIC = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "inf", "nan", "start", "end"}
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")
#: Grafana's template variables, replaced by something promtool can parse.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}


def promtool(
    *args: str, cwd: Path = DEPLOY / "prometheus", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run promtool; a missing promtool fails the test (scripts/test installs it)."""
    path = shutil.which("promtool")
    assert path is not None, (
        "promtool is missing: install Debian's `prometheus` package (./scripts/test does)"
    )
    return subprocess.run(
        [path, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: not functions, keywords, labels or numbers."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _LABEL_LISTS.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m not in _KEYWORDS}


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def rules() -> Iterator[dict[str, Any]]:
    for group in rule_groups():
        yield from group["rules"]


def recorded_names() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def alert_names() -> list[str]:
    return [r["alert"] for r in rules() if "alert" in r]


def dashboard_exprs(path: Path) -> Iterator[tuple[str, str]]:
    """(where, expr) for every query of a dashboard: panel targets and annotations."""
    board = json.loads(path.read_text())
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            yield f"{path.name}: {panel['title']} [{target['refId']}]", target["expr"]
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"{path.name}: annotation {annotation['name']}", annotation["expr"]


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def all_queries() -> Iterator[tuple[str, str]]:
    for rule in rules():
        yield f"rules.yml: {rule.get('alert') or rule.get('record')}", rule["expr"]
    for path in DASHBOARDS:
        yield from dashboard_exprs(path)


def without_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def exposed_names(exposition: str) -> set[str]:
    """Every series name a /metrics page makes queryable, by family type: a counter `x`
    gives `x_total`, a histogram gives `x_bucket`/`x_sum`/`x_count`; labelled families
    without samples yet still count, since their TYPE line proves the code exports them."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "unknown": ("",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
