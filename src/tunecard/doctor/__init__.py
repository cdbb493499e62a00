"""`tunecard doctor`: find what is wrong with a fine-tuning run or a model card, and say how to fix it.

    from tunecard.doctor import diagnose
    report = diagnose("runs/ner")          # a tunecard run folder, a model folder with README.md, or a .md card
    for f in report.findings:
        print(f.code, f.name, f.severity, f.evidence, f.remedy)

``diagnose_run(history, metrics, config)`` is the pure function the card writer uses for its "Diagnosis"
section (``render_markdown``); ``diagnose_card(text)`` reads any Hugging Face Trainer style card. Codes,
triggers and remedies: docs/doctor.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import TunecardError
from .cardparse import ParsedCard, parse_card
from .checks import (
    CHECKED_CARD,
    CHECKED_RUN,
    card_findings,
    card_report,
    check_versions,
    diagnose_run,
    installed_versions,
    leakage,
    leakage_counts,
    leakage_finding,
    run_not_run,
    run_report_parts,
)
from .findings import CODES, ERROR, INFO, WARNING, Finding, Report, sort_findings
from .render import render_console, render_json, render_markdown

NOTHING_TO_DIAGNOSE = "E450"
CARD_NAMES = ("README.md", "readme.md", "Readme.md", "MODEL_CARD.md", "model_card.md", "modelcard.md")

__all__ = [
    "diagnose", "diagnose_card", "diagnose_run", "doctor_command", "Finding", "Report", "CODES", "ERROR", "WARNING",
    "INFO", "leakage", "leakage_counts", "leakage_finding", "render_markdown", "render_console", "render_json",
    "parse_card", "ParsedCard", "NOTHING_TO_DIAGNOSE", "run_not_run",
]


def diagnose_card(text: str, *, installed: dict | None = None, path: str | None = None) -> Report:
    """Diagnose a Markdown card's text. ``installed``: framework versions to compare with (default: this
    environment's, from importlib.metadata). Never raises on bad text: what it cannot read is in ``unparsed``."""
    card = parse_card(text)
    findings, problems, not_run = card_report(card, installed)
    return Report(source="card", findings=findings, unparsed=card.unparsed + problems, path=path,
                  checked=list(CHECKED_CARD), read=card.summary(), not_run=not_run)


def _read_json(path: Path, unparsed: list[str]) -> dict:
    if not path.exists():
        unparsed.append(f"{path.name}: not found")
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        unparsed.append(f"{path.name}: not readable JSON ({error})")
        return {}
    if not isinstance(value, dict):
        unparsed.append(f"{path.name}: a {type(value).__name__}, not an object")
        return {}
    return value


def _read_config(path: Path, unparsed: list[str]) -> dict:
    if not path.exists():
        unparsed.append(f"{path.name}: not found (learning rate and batch size checks need it)")
        return {}
    import yaml

    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        unparsed.append(f"{path.name}: not readable YAML ({str(error).splitlines()[0] if str(error) else error})")
        return {}
    return value if isinstance(value, dict) else {}


def diagnose_run_folder(folder: Path, *, installed: dict | None = None) -> Report:
    """A tunecard run folder: history.json, metrics.json and train_config.yaml, plus the versions it ran with."""
    unparsed: list[str] = []
    history = _read_json(folder / "history.json", unparsed)
    metrics = _read_json(folder / "metrics.json", unparsed)
    config = _read_config(folder / "train_config.yaml", unparsed)
    if history and not isinstance(history.get("rows"), list):
        unparsed.append("history.json: no 'rows' list (curve checks did not run)")
    findings, problems = run_report_parts(history, metrics, config)
    not_run = run_not_run(history, metrics, config)
    versions = ((metrics.get("environment") or {}).get("versions") or {}) if isinstance(metrics.get("environment"),
                                                                                        dict) else {}
    findings += check_versions(versions, installed_versions() if installed is None else installed)
    read = {"history_rows": len(history.get("rows") or []), "steps": len(history.get("steps") or []),
            "task": metrics.get("task") or config.get("task"), "splits": [s for s in ("validation", "test") if
                                                                          isinstance(metrics.get(s), dict)]}
    return Report(source="run", findings=sort_findings(findings), unparsed=unparsed + problems, path=str(folder),
                  checked=list(CHECKED_RUN) + ["environment (D7xx)"], read=read, not_run=not_run)


def diagnose(path, *, installed: dict | None = None) -> Report:
    """Diagnose a tunecard run folder, a model folder with a README.md, or a Markdown card file.

    Raises:
        TunecardError (E450): the path does not exist, or a folder holds neither a run (history.json /
        metrics.json) nor a card.
    """
    p = Path(path)
    if not p.exists():
        raise TunecardError(NOTHING_TO_DIAGNOSE, "no such file or folder", path=p,
                            fix="give a tunecard run folder, a model folder with README.md, or a README.md file.")
    if p.is_dir():
        if (p / "history.json").exists() or (p / "metrics.json").exists():
            return diagnose_run_folder(p, installed=installed)
        for name in CARD_NAMES:
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise TunecardError(NOTHING_TO_DIAGNOSE, "nothing to diagnose here: no history.json / metrics.json "
                                "(a tunecard run) and no README.md (a model card)", path=p,
                                fix="point to a run folder written by `tunecard train`, or to a model card.")
    try:
        text = p.read_bytes().decode("utf-8", errors="replace")
    except OSError as error:
        raise TunecardError(NOTHING_TO_DIAGNOSE, f"cannot read the file ({error.strerror})", path=p,
                            fix="check the path and its permissions.") from None
    return diagnose_card(text, installed=installed, path=str(p))


def doctor_command(path, as_json: bool = False, strict: bool = False) -> int:
    """What `tunecard doctor PATH [--json] [--strict]` does; returns the exit code.

    0: diagnosed (whatever was found); 1: ``strict`` and at least one error finding; 2: nothing to diagnose
    (the path does not exist or holds no run or card). JSON goes to stdout; the console view too.
    """
    from rich.console import Console

    out = Console(soft_wrap=False)
    try:
        report = diagnose(path)
    except TunecardError as error:
        if as_json:
            print(json.dumps({"error": error.to_dict()}, indent=2))
        else:
            from rich.markup import escape

            Console(stderr=True).print(f"[bold red]error[/] {escape(str(error))}")
        return 2
    if as_json:
        print(render_json(report))
    else:
        out.print(render_console(report))
    return report.exit_code(strict)
