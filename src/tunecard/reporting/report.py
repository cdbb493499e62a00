"""`tunecard report RUN_DIR`: one self-contained HTML page of a run.

Everything is inside the file: plots as base64 data URIs, CSS inline, no scripts, so it opens offline and can be
mailed or attached as it is. Every number comes from the run's history.json, metrics.json and train_config.yaml
(the same files as the card); the diagnosis is `tunecard doctor`'s.

    from tunecard.reporting.report import write_report
    path = write_report("runs/ner")           # runs/ner/report.html
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tunecard.config import CONFIG_FILE
from tunecard.errors import OutputError, TunecardError
from tunecard.training.history import stop_reason

REPORT_FILE = "report.html"
# Written into every report's <head>: a file carrying it is tunecard's and may be replaced without asking.
GENERATOR = "tunecard report"
TEMPLATE = "report.html.j2"
RUN_FILES = ("metrics.json", "history.json", CONFIG_FILE)
NOT_A_RUN_FIX = "give a folder written by `tunecard train` (it holds metrics.json, history.json and train_config.yaml)."


@dataclass
class Run:
    """A finished run as read from its folder.

    Attributes:
        path: the run folder.
        config: train_config.yaml as a dict.
        history: history.json (rows per evaluation, step losses, the best row).
        metrics: metrics.json (final scores of the saved checkpoint, baselines, data, timing, environment).
    """

    path: Path
    config: dict
    history: dict
    metrics: dict

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def task(self) -> str:
        return self.metrics.get("task") or self.config.get("task") or "token-classification"


def _load(path: Path, parse) -> dict:
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TunecardError("E461", f"not valid JSON: {error.msg}.", path=path, line=error.lineno,
                            fix="re-run `tunecard train` to write the run's files again.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise TunecardError("E461", f"not valid YAML: {getattr(error, 'problem', None) or error}.", path=path,
                            line=mark.line + 1 if mark is not None else None,
                            fix="fix the YAML syntax, or re-run `tunecard train`.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TunecardError("E461", f"cannot read the file ({getattr(error, 'strerror', None) or error}).",
                            path=path, fix="check the file and its permissions.") from None
    if not isinstance(value, dict):
        raise TunecardError("E461", f"expected a mapping, found a {type(value).__name__}.", path=path,
                            fix="re-run `tunecard train` to write the run again.")
    return value


def read_run(folder: str | Path) -> Run:
    """Read a run folder written by `tunecard train`.

    Raises:
        TunecardError: E460 when the folder does not exist or lacks one of the run's files; E461 when a file is
            not readable JSON / YAML (with its line).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TunecardError("E460", "no such run folder.", path=folder, fix=NOT_A_RUN_FIX)
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise TunecardError("E460", f"not a tunecard run folder: {', '.join(missing)} missing.", path=folder,
                            fix=NOT_A_RUN_FIX)
    return Run(folder, config=_load(folder / CONFIG_FILE, yaml.safe_load),
               history=_load(folder / "history.json", json.loads), metrics=_load(folder / "metrics.json", json.loads))


# --- page context ---------------------------------------------------------------------------------------------------


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def plot_images(run: Run) -> list[tuple[str, str]]:
    """(title, data URI) for every plot of the run; drawn afresh when the folder has no plots/ (older runs)."""
    from tunecard.reporting.card import PLOT_TITLES
    from tunecard.reporting.plots import PLOTS_FOLDER, write_plots

    def collect(folder: Path) -> list[tuple[str, str]]:
        found = [(name, folder / PLOTS_FOLDER / f"{name}.png") for name in PLOT_TITLES]
        return [(PLOT_TITLES[name], _data_uri(path)) for name, path in found if path.is_file()]

    images = collect(run.path)
    if images:
        return images
    with tempfile.TemporaryDirectory(prefix="tunecard-plots-") as scratch:
        write_plots(Path(scratch), run.history, run.metrics, run.task)
        return collect(Path(scratch))


def _scores(result: dict | None, keys: list[str], titles: dict[str, str]) -> list[tuple[str, str]]:
    from tunecard.reporting.card import fmt

    if not result:
        return []
    return [(titles.get(key, key), fmt(result.get(key))) for key in ["loss", *keys]]


def _per_label(result: dict | None) -> list[dict]:
    from tunecard.reporting.card import fmt

    rows = []
    for label, r in ((result or {}).get("per_label") or {}).items():
        rows.append({"label": label, **{k: fmt(r.get(k)) for k in ("precision", "recall", "f1")},
                     "support": r.get("support"), "predicted": r.get("predicted")})
    return rows


def _baselines(run: Run, keys: list[str]) -> list[dict]:
    """This model's scores on each split, then each baseline's, in one table."""
    from tunecard.reporting.card import fmt

    rows = []
    for split in ("validation", "test"):
        result = run.metrics.get(split)
        if result:
            rows.append({"split": split, "predictor": "this model", "ours": True,
                         "values": [fmt(result.get(k)) for k in keys]})
        for strategy, base in ((run.metrics.get("baselines") or {}).get(split) or {}).items():
            rows.append({"split": split, "predictor": f"{base.get('strategy', strategy)} baseline", "ours": False,
                         "values": [fmt(base.get(k)) for k in keys]})
    return rows


def _data(run: Run) -> tuple[list[dict], list[str]]:
    """The card's data table rows, plus the readers' warnings and train/eval duplicates per split."""
    from tunecard.reporting.card import data_rows

    data = run.metrics.get("data") or {}
    try:
        rows = data_rows(data, run.task == "token-classification")
    except (KeyError, TypeError, AttributeError):  # a hand-edited or older metrics.json: show what else there is
        rows = []
    notes = []
    for split, d in data.items():
        for warning in d.get("warnings") or []:
            notes.append(f"{split}: {warning}")
        leak = d.get("leakage") or {}
        if leak.get("duplicates"):
            notes.append(f"{split}: {leak['duplicates']} of {leak.get('eval_examples')} examples also in training")
    return rows, notes


def report_context(run: Run) -> dict:
    """Everything the template shows, as plain strings and lists (numbers formatted as on the card)."""
    from tunecard.doctor import diagnose_run_folder
    from tunecard.doctor.render import CHECK_DETAILS
    from tunecard.reporting.card import (averaging_note, base_model_name, class_weights_shown, classification_average,
                                         dataset_label, fmt, fmt_epoch, metric_titles, results_table, thresholds_shown)
    from tunecard.training.evaluate import table_metrics

    keys = list(table_metrics(run.task))
    best = run.history.get("best")
    rows = run.history.get("rows") or []
    average = classification_average(run.metrics)
    titles = metric_titles(run.task, average)
    epochs = results_table(run.task, rows, best["step"] if best else None, average) if rows else []
    diagnosis = diagnose_run_folder(run.path)
    data_rows, data_notes = _data(run)
    config_text = (run.path / CONFIG_FILE).read_text(encoding="utf-8")
    return dict(
        generator=GENERATOR,
        name=run.name,
        task=run.task,
        is_ner=run.task == "token-classification",
        model=base_model_name(run.config.get("model")),
        dataset=dataset_label(run.config.get("train"), run.config.get("dataset_name")),
        best=best,
        best_epoch=fmt_epoch(best["epoch"]) if best and best.get("epoch") is not None else None,
        best_value=fmt(best.get("value")) if best else None,
        stopped_by=stop_reason(run.history),
        validation=_scores(run.metrics.get("validation"), keys, titles),
        test=_scores(run.metrics.get("test"), keys, titles),
        averaging_note=averaging_note(run.task, run.metrics),
        epoch_headers=list(epochs[0]) if epochs else [],
        epoch_rows=[{"cells": list(line.values()), "saved": line.get("Saved") == "✓"} for line in epochs],
        per_label_validation=_per_label(run.metrics.get("validation")),
        per_label_test=_per_label(run.metrics.get("test")),
        thresholds=thresholds_shown(run.metrics.get("thresholds")),
        class_weights=class_weights_shown(run.metrics.get("class_weights")),
        metric_titles=[titles.get(k, k) for k in keys],
        baselines=_baselines(run, keys),
        findings=[f.to_dict() for f in diagnosis.findings],
        unparsed=diagnosis.unparsed,
        checked=[f"{name}: {CHECK_DETAILS[name]}" if name in CHECK_DETAILS else name for name in diagnosis.checked],
        plots=plot_images(run),
        data_rows=data_rows,
        data_notes=data_notes,
        labels=run.metrics.get("labels") or [],
        training={k: f"{v:g}" if isinstance(v, float) else v for k, v in (run.metrics.get("training") or {}).items()},
        environment=run.metrics.get("environment") or {},
        config_text=config_text,
    )


def render_report(folder: str | Path) -> str:
    """The report page of a run folder, as HTML text (all user text escaped by Jinja's autoescape)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    run = read_run(folder)
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(TEMPLATE).render(**report_context(run))


def is_report(path: Path) -> bool:
    """True when the file is a page written by this module (its <head> names the generator)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">' in head


def write_report(folder: str | Path, output: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Render a run's report and write it (default RUN_DIR/report.html). Returns the path written.

    Args:
        folder: a run folder written by `tunecard train`.
        output: where to write the page. An existing earlier report is replaced; any other existing file only
            with ``overwrite``.
        overwrite: replace an existing file that is not a tunecard report.
    Raises:
        OutputError: E462 the output exists and is not a tunecard report (or is a folder); E463 it cannot be written.
    """
    path = Path(output) if output is not None else Path(folder) / REPORT_FILE
    if path.is_dir():
        raise OutputError("E462", "the report's output is a folder.", path=path,
                          fix=f"give a file name, e.g. --output {path / REPORT_FILE}.")
    if path.exists() and not overwrite and not is_report(path):
        raise OutputError("E462", "the file exists and is not a tunecard report; it is left as it is.", path=path,
                          fix="choose another --output, or pass --overwrite to replace it.")
    html = render_report(folder)
    # A temporary file beside the target, renamed over it: a failed write never leaves half a page.
    scratch = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(html)
        os.chmod(scratch, 0o666 & ~_umask())  # mkstemp makes 0600; a report gets a new file's usual mode
        os.replace(scratch, path)
    except OSError as error:
        if scratch is not None:
            Path(scratch).unlink(missing_ok=True)
        raise OutputError("E463", f"cannot write the report ({error.strerror or error}).", path=path,
                          fix="check the folder's permissions and free space, or choose another --output.") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
