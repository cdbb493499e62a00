"""What the doctor reports: findings with stable codes, and the report that holds them.

Every finding has a code from :data:`CODES` (``D101`` ...), grouped by family: D1xx collapse, D2xx baseline,
D3xx divergence, D4xx overfitting / convergence, D5xx card consistency, D6xx data, D7xx environment. Codes
never change meaning; a retired check keeps its number unused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)
SEVERITY_RANK = {ERROR: 0, WARNING: 1, INFO: 2}


class Code(NamedTuple):
    name: str
    family: str
    severity: str  # the usual severity; a check may report a lower one (documented per code)


FAMILIES = {
    "D1": "collapse",
    "D2": "baseline",
    "D3": "divergence",
    "D4": "overfitting / convergence",
    "D5": "card consistency",
    "D6": "data",
    "D7": "environment",
}

CODES: dict[str, Code] = {
    "D101": Code("collapse-one-class", "collapse", ERROR),
    "D102": Code("collapse-no-entities", "collapse", ERROR),
    "D103": Code("metric-frozen", "collapse", ERROR),
    "D104": Code("one-entity-type", "collapse", WARNING),
    "D105": Code("labels-never-predicted", "collapse", WARNING),
    "D106": Code("invalid-tag-sequences", "collapse", INFO),
    "D201": Code("below-baseline", "baseline", ERROR),
    "D202": Code("near-baseline", "baseline", WARNING),
    "D203": Code("chance-level", "baseline", ERROR),
    "D301": Code("loss-not-finite", "divergence", ERROR),
    "D302": Code("loss-above-start", "divergence", ERROR),
    "D303": Code("training-loss-rising", "divergence", WARNING),
    "D304": Code("learning-rate-high", "divergence", WARNING),
    "D305": Code("batch-too-small", "divergence", WARNING),
    "D306": Code("eval-loss-not-finite", "divergence", WARNING),
    "D401": Code("overfitting", "overfitting / convergence", WARNING),
    "D402": Code("best-not-last", "overfitting / convergence", WARNING),
    "D403": Code("not-converged", "overfitting / convergence", WARNING),
    "D501": Code("headline-not-last-row", "card consistency", WARNING),
    "D502": Code("headline-matches-no-row", "card consistency", WARNING),
    "D503": Code("training-loss-not-logged", "card consistency", INFO),
    "D504": Code("value-copied-across-columns", "card consistency", ERROR),
    "D505": Code("f1-not-harmonic-mean", "card consistency", WARNING),
    "D506": Code("metric-out-of-range", "card consistency", ERROR),
    "D507": Code("metrics-in-percent", "card consistency", INFO),
    "D508": Code("identical-rows", "card consistency", WARNING),
    "D509": Code("model-index-mismatch", "card consistency", WARNING),
    "D510": Code("loss-inconsistent-with-metrics", "card consistency", ERROR),
    "D601": Code("tiny-training-set", "data", WARNING),
    "D602": Code("label-imbalance", "data", WARNING),
    "D603": Code("rare-labels", "data", INFO),
    "D604": Code("unseen-eval-labels", "data", ERROR),
    "D605": Code("long-examples", "data", INFO),
    "D606": Code("repaired-tags", "data", INFO),
    "D607": Code("train-eval-duplicates", "data", WARNING),
    "D608": Code("tiny-eval-set", "data", WARNING),
    "D609": Code("perfect-scores", "data", WARNING),
    "D701": Code("framework-version-mismatch", "environment", INFO),
}


@dataclass
class Finding:
    """One problem (or fact worth knowing) with the numbers that show it and what to do about it.

    Attributes:
        code: stable code, e.g. ``"D101"`` (see :data:`CODES`; ``name`` gives its slug).
        severity: ``"error"`` (the model or the card is wrong), ``"warning"`` (probably a problem),
            ``"info"`` (worth knowing).
        title: one line, what was found.
        evidence: the rows and numbers that show it.
        remedy: what to change.
        data: the same facts for machines (numbers, epochs, column names).
    """

    code: str
    severity: str
    title: str
    evidence: str
    remedy: str
    data: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        code = CODES.get(self.code)
        return code.name if code else self.code

    @property
    def family(self) -> str:
        code = CODES.get(self.code)
        return code.family if code else "other"

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "family": self.family,
            "severity": self.severity,
            "title": self.title,
            "evidence": self.evidence,
            "remedy": self.remedy,
            "data": _plain(self.data),
        }


def finding(code: str, title: str, evidence: str, remedy: str, severity: str | None = None, **data) -> Finding:
    """A Finding with the code's usual severity unless another is given."""
    if code not in CODES:
        raise KeyError(f"unknown doctor code {code}")
    return Finding(code, severity or CODES[code].severity, title, evidence, remedy, data)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; by code within a severity (stable)."""
    return sorted(findings, key=lambda f: (SEVERITY_RANK.get(f.severity, 3), f.code))


@dataclass
class Report:
    """The doctor's answer for one path.

    Attributes:
        source: ``"run"`` (a tunecard run folder: history.json / metrics.json) or ``"card"`` (a Markdown card).
        path: what was diagnosed (None for text passed directly).
        findings: errors first.
        unparsed: what could not be read (a missing table, a cell that is not a number, a broken YAML
            header); checks that needed it did not run.
        checked: the check families that ran.
        read: a short summary of what was read (rows, headline keys, task, ...).
        not_run: the checks that had nothing to read, each with the reason (no validation split, no Training
            results table, a regression model ...).
    """

    source: str
    findings: list[Finding] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    path: str | None = None
    checked: list[str] = field(default_factory=list)
    read: dict = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def exit_code(self, strict: bool) -> int:
        """0, or 1 with ``strict`` when there is at least one error."""
        return 1 if strict and self.errors else 0

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "summary": {s: self.count(s) for s in SEVERITIES},
            "findings": [f.to_dict() for f in self.findings],
            "unparsed": list(self.unparsed),
            "checked": list(self.checked),
            "not_run": list(self.not_run),
            "read": _plain(self.read),
        }


def _plain(value):
    """JSON-safe copy: NaN / inf become the strings "nan" / "inf" / "-inf" (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
