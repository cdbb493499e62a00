"""The doctor's findings as Markdown (the card's "Diagnosis" section), for the console (rich) and as JSON."""

from __future__ import annotations

import json

from .findings import ERROR, INFO, WARNING, Finding, Report, sort_findings

DEFAULT_CHECKED = [
    "collapse (D1xx)", "baseline (D2xx)", "divergence (D3xx)", "overfitting / convergence (D4xx)",
    "card consistency (D5xx)", "data (D6xx)", "environment (D7xx)",
]
CHECK_DETAILS = {
    "collapse (D1xx)": "one predicted class or no entities, frozen metrics",
    "baseline (D2xx)": "above the majority / all-O baselines",
    "divergence (D3xx)": "NaN or rising loss, learning rate and batch size",
    "overfitting / convergence (D4xx)": "validation loss against training loss, best and last epoch",
    "card consistency (D5xx)": "headline against table, copied values, F1 = 2PR/(P+R), ranges",
    "data (D6xx)": "training set size, label balance, unseen labels, long examples, repaired tags, duplicates",
    "environment (D7xx)": "framework versions",
}
STYLES = {ERROR: "bold red", WARNING: "yellow", INFO: "cyan"}


def _md(text: str) -> str:
    """Keep Markdown from reading '*' or '<' in evidence as formatting or HTML (intraword '_' is safe)."""
    return str(text).replace("*", "\\*").replace("<", "&lt;")


def render_markdown(findings: list[Finding], checked: list[str] | None = None, not_run: list[str] | None = None) -> str:
    """The body of a card's "Diagnosis" section: one bullet per finding (severity, code, evidence, remedy), then the
    checks that could not run and why.

    With no findings: "No problems found by the checks: ..." naming what was checked.
    """
    findings = sort_findings(list(findings))
    lines = []
    if not findings:
        names = checked or DEFAULT_CHECKED
        listed = "; ".join(f"{name}: {CHECK_DETAILS[name]}" if name in CHECK_DETAILS else name for name in names)
        lines.append(f"No problems found by the {'checks that could run' if not_run else 'checks'}: {listed}.")
    for f in findings:
        lines.append(f"- **{f.severity} {f.code} {f.name}**: {_md(f.title)}. "
                     f"{_md(f.evidence)} *Remedy:* {_md(f.remedy)}")
    if not_run:
        lines.append("")
        lines.append("Not run: " + "; ".join(_md(item) for item in not_run) + ".")
    return "\n".join(lines)


def render_console(report: Report):
    """A rich renderable, short: errors first, each with its rows and numbers and its remedy; warnings the same;
    info findings by title and evidence only; then what could not run or be read, and the counts."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    parts = [Text.from_markup(f"[bold]tunecard doctor[/] {escape(report.path or '(text)')} ([italic]{report.source}[/])")]
    if report.findings:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True, width=7)
        grid.add_column(ratio=1)
        for f in report.findings:
            body = Text()
            body.append(f"{f.code} ", style="bold")
            body.append(f.title, style="bold" if f.severity != INFO else "")
            body.append("\n" + f.evidence, style="" if f.severity != INFO else "dim")
            if f.severity != INFO:
                body.append("\nfix: ", style="green")
                body.append(f.remedy)
            grid.add_row(Text(f.severity, style=STYLES.get(f.severity, "")), body)
        parts.append(grid)
    else:
        names = report.checked or DEFAULT_CHECKED
        which = "the checks that could run" if report.unparsed or report.not_run else "the checks"
        parts.append(Text(f"No problems found by {which}: {'; '.join(names)}.", style="green"))
    def bullets(items):
        """A list whose wrapped lines stay indented under their bullet."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, width=3, justify="right")
        grid.add_column(ratio=1)
        for item in items:
            grid.add_row("-", Text(item))
        return grid

    if report.not_run:
        parts.append(Text("Not run (nothing to read):", style="bold yellow"))
        parts.append(bullets(report.not_run))
    if report.unparsed:
        parts.append(Text("Could not read (checks that needed it did not run):", style="bold yellow"))
        parts.append(bullets(report.unparsed))
    summary = ", ".join(f"{report.count(s)} {s}{'s' if report.count(s) != 1 and s != INFO else ''}"
                        for s in (ERROR, WARNING, INFO))
    parts.append(Text(summary, style="bold"))
    return Group(*parts)


def render_json(report: Report) -> str:
    """Strict JSON (NaN written as the string "nan")."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
