"""What the reference states about the running system matches it: every metric with its
labels, and every kind of Redis key the runtime writes."""

from __future__ import annotations

import importlib
import json
import re

import pytest
from prometheus_client.metrics import MetricWrapperBase

from appkit_runtime.auth import decisions
from appkit_runtime.fastapi.ratelimit import RATE_LIMITED_DETAIL
from appkit_runtime.fastapi.request_metrics import RequestTimings
from appkit_runtime.ratelimit.failure import UNAVAILABLE_DETAIL
from tests.docs.pages import DOCS, ROOT, pages

METRIC_MODULES = [
    "appkit_runtime.usage",
    "appkit_runtime.ratelimit.mode",
    "appkit_runtime.ratelimit.failure",
    "appkit_runtime.auth.resolve",
    "appkit_runtime.auth.cache",
    "appkit_runtime.usage_stream",
    "appkit_runtime.usage_drain",
]


def exported_metrics() -> dict[str, set[str]]:
    """Every metric the runtime exports, as Prometheus names it, with its labels."""
    metrics: dict[str, set[str]] = {}
    for module_name in METRIC_MODULES:
        for value in vars(importlib.import_module(module_name)).values():
            if isinstance(value, MetricWrapperBase):
                suffix = "_total" if value._type == "counter" else ""
                metrics[value._name + suffix] = set(value._labelnames)
    timings = RequestTimings()
    timings.observe("svc", "/items/{item_id}", "GET", 200, 0.01)
    for family in timings.collect():
        labels = {label for sample in family.samples for label in sample.labels}
        metrics[family.name + ("_total" if family.type == "counter" else "")] = labels
    return metrics


def test_every_metric_module_is_listed() -> None:
    declaring = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in ROOT.joinpath("appkit_runtime").rglob("*.py")
        if re.search(r"\b(Counter|Gauge|Histogram)\(\s*\n?\s*\"appkit_", path.read_text())
    }
    assert declaring <= set(METRIC_MODULES)


@pytest.mark.parametrize("name", sorted(exported_metrics()))
def test_every_metric_is_documented_with_its_labels(name: str) -> None:
    labels = exported_metrics()[name] - {"le"}
    http = (DOCS / "reference" / "http.md").read_text()
    rows = [row for row in http.splitlines() if row.startswith(f"| `{name}` |")]
    if name.startswith("appkit_usage_drain_"):
        # The drain worker's metrics are in the billing guide, each with the `group` label.
        billing = (DOCS / "guides" / "billing.md").read_text()
        stem = re.sub(r"_(read|applied|duplicate|lost)_total$", "", name)
        assert stem in billing, f"{name} is not in the billing guide"
        assert labels == {"group"} and "`group`" in billing
        return
    assert len(rows) == 1, f"{name} has no row in docs/reference/http.md's metrics table"
    documented = set(re.findall(r"`(\w+)`", rows[0].split("|")[2])) - {"le"}
    assert documented == labels, f"{name}: the page says {documented}, the code {labels}"


def test_the_request_duration_has_no_status_label() -> None:
    assert exported_metrics()["appkit_http_request_duration_seconds"] == {
        "service",
        "route",
        "method",
        "le",
    }


def test_every_kind_of_redis_key_is_in_the_key_layout() -> None:
    code = "\n".join(p.read_text() for p in ROOT.joinpath("appkit_runtime").rglob("*.py"))
    kinds = set(re.findall(r"_KIND = \"([\w-]+)\"", code))
    kinds |= set(re.findall(r"(?:project_key|service_key)\(\s*\"([\w-]+)\"", code))
    assert {"rl", "rlo", "auth", "usage", "usage-stream"} <= kinds
    layout = (DOCS / "reference" / "redis-keys.md").read_text()
    missing = sorted(kind for kind in kinds if f"`<prefix>:{kind}:" not in layout)
    assert not missing, f"key kinds missing from docs/reference/redis-keys.md: {missing}"


def test_no_page_says_the_duration_is_by_status() -> None:
    for page in pages():
        text = " ".join(page.read_text().split())
        assert not re.search(r"request_duration_seconds`[^.|]*\bstatus\b", text), page


def test_every_error_body_the_runtime_answers_is_in_the_http_reference() -> None:
    http = (DOCS / "reference" / "http.md").read_text()
    denials = [v for v in vars(decisions).values() if isinstance(v, decisions.Denial)]
    assert len(denials) >= 5
    for denial in denials:
        row = next((r for r in http.splitlines() if _body(denial.detail) in r), None)
        assert row, f"{denial.detail!r} is not in docs/reference/http.md"
        assert f"| {denial.status} " in row
        for name, value in denial.headers.items():
            assert f"`{name}: {value}`" in row
    app_bodies = re.findall(
        r'\{"detail": "([^"]+)"\}', (ROOT / "appkit_runtime" / "fastapi" / "fastapi.py").read_text()
    )
    for detail in [RATE_LIMITED_DETAIL, UNAVAILABLE_DETAIL, *app_bodies]:
        assert _body(detail) in http, detail


def _body(detail: str) -> str:
    """The error body byte for byte as the service sends it: compact JSON."""
    return json.dumps({"detail": detail}, separators=(",", ":"), ensure_ascii=False)
