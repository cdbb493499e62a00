"""`tunecard compare RUN_DIR...`: runs side by side, the hyperparameters that differ and the saved checkpoints' scores.

One column per run. Only the config keys whose values differ between the runs are shown (the output folder is
the column's name, so it is left out); then each run's validation scores (metrics.json: the saved checkpoint),
best epoch, steps and training time. The best run is the one with the best validation score on the runs'
`metric_for_best_model` (lower is better for loss, as when the checkpoint was chosen); ties are all marked. No run
is marked when the scores are not comparable: runs of different tasks, selected by different metrics, with F1
averaged differently (binary against macro) or validated on different data. A run the doctor finds collapsed
(D101 one class, D102 no entities, at error level) is marked so and never marked best.

    from tunecard.reporting.compare import compare_runs
    print(compare_runs(["runs/lr-3e-5", "runs/lr-5e-5"]).to_markdown())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunecard.config import LOWER_IS_BETTER
from tunecard.errors import TunecardError
from tunecard.reporting.report import Run, read_run

IGNORED_KEYS = ("output",)  # always differs: it is the run's name, already the column header
METRIC_ORDER = ("loss", "precision", "recall", "f1", "accuracy")
BEST_MARK = "★ best"
COLLAPSE_CODES = ("D101", "D102")  # the doctor's collapse findings: one class for everything, no entities at all


@dataclass
class Comparison:
    """Runs side by side.

    Attributes:
        names: one column name per run (the folder's name; its path where two names collide).
        hyperparameters: config key -> one value per run, only for keys whose values differ.
        metrics: row title -> one value per run (None: not recorded), in display order.
        metric: the validation metric that ranks the runs (their metric_for_best_model).
        best: indexes of the best run(s); empty when no run has that metric or the runs are not comparable.
        notes: what the reader should know (identical configs, disagreeing selection metrics, ...).
        collapsed: index -> the doctor's error-level collapse codes for that run (D101, D102).
    """

    names: list[str]
    hyperparameters: dict[str, list]
    metrics: dict[str, list]
    metric: str
    best: list[int]
    notes: list[str] = field(default_factory=list)
    collapsed: dict[int, list[str]] = field(default_factory=dict)

    def header(self) -> list[str]:
        marks = {i: f"✗ collapsed ({', '.join(codes)})" for i, codes in self.collapsed.items()}
        marks.update({i: BEST_MARK for i in self.best})
        return [f"{name} {marks[i]}" if i in marks else name for i, name in enumerate(self.names)]

    def rows(self) -> list[tuple[str, str, list[str]]]:
        """(section, row title, one formatted cell per run) for every row, hyperparameters first."""
        rows = [("hyperparameters", key, [show(v) for v in values]) for key, values in self.hyperparameters.items()]
        rows += [("metrics", key, [show(v, metric=key.startswith(("validation ", "test "))) for v in values])
                 for key, values in self.metrics.items()]
        return rows

    def to_markdown(self) -> str:
        """A pipe table (runs as columns, the best run's header marked) followed by the notes."""
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        header = ["", *(f"**{h}**" if i in self.best else h for i, h in enumerate(self.header()))]
        lines = ["| " + " | ".join(cell(h) for h in header) + " |",
                 "|:--|" + "--:|" * len(self.names)]
        lines += ["| " + " | ".join([cell(title), *(cell(c) for c in cells)]) + " |" for _, title, cells in self.rows()]
        text = "\n".join(lines)
        if self.notes:
            text += "\n\n" + "\n".join(f"- {note}" for note in self.notes)
        return text + "\n"

    def to_rich(self):
        """A rich renderable: the table (best column in bold green), then the notes."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title="tunecard compare", show_lines=False)
        table.add_column("", style="bold", no_wrap=True)
        for i, name in enumerate(self.header()):
            table.add_column(name, justify="right", style="bold green" if i in self.best else None,
                             header_style="bold green" if i in self.best else "bold")
        section = None
        for part, title, cells in self.rows():
            if section is not None and part != section:
                table.add_section()
            section = part
            table.add_row(Text(title), *(Text(c) for c in cells))
        return Group(table, *(Text(f"- {note}", style="yellow") for note in self.notes))

    def to_dict(self) -> dict:
        return {"names": self.names, "hyperparameters": self.hyperparameters, "metrics": self.metrics,
                "metric": self.metric, "best": [self.names[i] for i in self.best], "notes": self.notes,
                "collapsed": {self.names[i]: codes for i, codes in self.collapsed.items()}}


def show(value, metric: bool = False) -> str:
    """One table cell: '-' for nothing, 4 decimals for scores, numbers as written in a config."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}" if metric else f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def _names(runs: list[Run]) -> list[str]:
    names = [run.name for run in runs]
    return [str(run.path) if names.count(run.name) > 1 else run.name for run in runs]


def differing_hyperparameters(configs: list[dict]) -> dict[str, list]:
    """Config keys whose values are not the same in every run (a key missing from a run counts as None)."""
    keys: list[str] = []
    for config in configs:
        keys += [key for key in config if key not in keys and key not in IGNORED_KEYS]
    return {key: [config.get(key) for config in configs] for key in keys
            if any(config.get(key) != configs[0].get(key) for config in configs)}


def _selection_metrics(runs: list[Run]) -> list[str]:
    return [run.config.get("metric_for_best_model") or (run.history.get("best") or {}).get("metric") or "f1"
            for run in runs]


def _not_comparable(runs: list[Run], chosen: list[str]) -> list[str]:
    """Why the runs' validation scores cannot rank them (empty: they can)."""
    reasons = []
    tasks = {run.task for run in runs}
    if len(tasks) > 1:
        reasons.append(f"the runs are of different tasks ({', '.join(sorted(tasks))})")
    if len(set(chosen)) > 1:
        reasons.append(f"the runs chose their checkpoints by different metrics ({', '.join(sorted(set(chosen)))})")
    averages = {(run.metrics.get("validation") or {}).get("average") for run in runs} - {None}
    if len(averages) > 1 and chosen[0] in ("precision", "recall", "f1"):
        reasons.append(f"their {chosen[0]} is averaged differently ({', '.join(sorted(averages))}: binary is the "
                       "positive class's, macro the mean over the classes)")
    validation = {(str(run.config.get("validation")), str(run.config.get("max_eval_examples"))) for run in runs}
    if len(validation) > 1:
        reasons.append("they were validated on different data (validation or max_eval_examples differ)")
    return reasons


def _collapsed(run: Run) -> list[str]:
    """The doctor's error-level collapse codes for a run (D101 one class, D102 no entities)."""
    from tunecard.doctor import ERROR, diagnose_run

    findings = diagnose_run(run.history, run.metrics, run.config)
    return sorted({f.code for f in findings if f.code in COLLAPSE_CODES and f.severity == ERROR})


def _best(values: list, lower_is_better: bool) -> list[int]:
    scored = [(i, v) for i, v in enumerate(values) if isinstance(v, (int, float))]
    if not scored:
        return []
    target = (min if lower_is_better else max)(v for _, v in scored)
    return [i for i, v in scored if v == target]


def compare_runs(folders: list[str | Path]) -> Comparison:
    """Read the run folders and line them up.

    Raises:
        TunecardError: E464 fewer than two runs; E460 / E461 a folder is not a readable run (see `read_run`).
    """
    if len(folders) < 2:
        raise TunecardError("E464", f"compare needs at least two run folders, got {len(folders)}.",
                            fix="e.g. tunecard compare runs/a runs/b (or runs/*).")
    runs = [read_run(folder) for folder in folders]
    notes: list[str] = []
    hyperparameters = differing_hyperparameters([run.config for run in runs])
    if not hyperparameters:
        notes.append("the runs' configurations are identical (apart from the output folder).")
    chosen = _selection_metrics(runs)
    metric = chosen[0]
    validation = [run.metrics.get("validation") or {} for run in runs]
    keys = [key for key in METRIC_ORDER if any(key in v for v in validation)]
    if metric not in keys:
        keys.append(metric)
    metrics = {f"validation {key}": [v.get(key) for v in validation] for key in keys}
    if any(run.metrics.get("test") for run in runs):
        metrics[f"test {metric}"] = [(run.metrics.get("test") or {}).get(metric) for run in runs]
    metrics["best epoch"] = [(run.history.get("best") or {}).get("epoch") for run in runs]
    metrics["steps"] = [(run.metrics.get("training") or {}).get("global_steps") for run in runs]
    metrics["training seconds"] = [(run.metrics.get("training") or {}).get("runtime_seconds") for run in runs]
    names = _names(runs)
    collapsed = {i: codes for i, run in enumerate(runs) if (codes := _collapsed(run))}
    for i, codes in collapsed.items():
        notes.append(f"{names[i]}: the doctor finds the model collapsed ({', '.join(codes)}: "
                     f"`tunecard doctor {runs[i].path}`); it is not ranked.")
    reasons = _not_comparable(runs, chosen)
    ranked = [value if i not in collapsed else None for i, value in enumerate(metrics[f"validation {metric}"])]
    best = [] if reasons else _best(ranked, lower_is_better=metric in LOWER_IS_BETTER)
    if reasons:
        notes.append(f"{'; '.join(reasons)}: their scores are not comparable, and none is marked best.")
    elif not best:
        notes.append(f"no {'uncollapsed ' if collapsed else ''}run has a validation {metric}: none is marked best.")
    return Comparison(names, hyperparameters, metrics, metric, best, notes, collapsed)
