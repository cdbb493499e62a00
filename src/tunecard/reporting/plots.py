"""PNG plots for the card, drawn from history.json and metrics.json (matplotlib, headless).

File names are fixed (plots/loss.png, ...) so the card can link them and they render on the Hub; PNG metadata
is left out so the same run gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from tunecard.training.evaluate import table_metrics

PLOTS_FOLDER = "plots"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    fig.clf()


def _loss(plt, history: dict, path: Path) -> bool:
    steps, rows = history.get("steps") or [], history.get("rows") or []
    if not steps and not rows:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    if steps:
        ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=0.8, alpha=0.6, label="training loss (step)")
    evaluated = [r for r in rows if r.get("validation_loss") is not None]
    if evaluated:
        ax.plot([r["step"] for r in evaluated], [r["validation_loss"] for r in evaluated], "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    _save(fig, path)
    return True


def _metrics(plt, history: dict, task: str, path: Path) -> bool:
    rows = history.get("rows") or []
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [r["epoch"] for r in rows]
    for key in table_metrics(task):
        ax.plot(epochs, [r.get(key) for r in rows], "o-", label=key)
    best = history.get("best")
    if best:
        ax.axvline(best["epoch"], color="grey", ls="--", lw=1)
        ax.annotate(f"saved (epoch {best['epoch']:g})", (best["epoch"], 0.02), rotation=90, va="bottom", ha="right")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1.02)
    ax.legend()
    _save(fig, path)
    return True


def _per_label(plt, result: dict | None, path: Path) -> bool:
    per_label = (result or {}).get("per_label") or {}
    if not per_label:
        return False
    labels = list(per_label)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    values = [per_label[label]["f1"] for label in labels]
    ax.barh(labels, values)
    for y, label in enumerate(labels):
        ax.text(min(values[y] + 0.01, 0.9), y, f"F1 {values[y]:.3f} (support {per_label[label]['support']})", va="center")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("F1 (validation)")
    _save(fig, path)
    return True


def _confusion(plt, result: dict | None, task: str, path: Path) -> bool:
    """Classes: gold x predicted. NER: gold type x (predicted type with the same boundaries, or missed),
    plus a row of spurious entities (predicted where no gold entity has those boundaries)."""
    if not result:
        return False
    if task == "token-classification":
        confusion, spurious = result.get("confusion") or {}, result.get("spurious") or {}
        gold = sorted(confusion)
        columns = sorted({c for row in confusion.values() for c in row} | set(spurious))
        if not gold and not spurious:
            return False
        rows = [[confusion.get(g, {}).get(c, 0) for c in columns] for g in gold]
        rows.append([spurious.get(c, 0) for c in columns])
        row_names = gold + ["(spurious)"]
    else:
        matrix = result.get("confusion_matrix") or {}
        if not matrix.get("labels"):
            return False
        columns = row_names = list(matrix["labels"])
        rows = matrix["matrix"]
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.6 * len(row_names) + 1.8))
    ax.imshow(rows, cmap="Blues")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(row_names)), row_names)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    _save(fig, path)
    return True


def _learning_rate(plt, history: dict, path: Path) -> bool:
    steps = [s for s in history.get("steps") or [] if s.get("learning_rate") is not None]
    if not steps:
        return False
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([s["step"] for s in steps], [s["learning_rate"] for s in steps])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    _save(fig, path)
    return True


def write_plots(folder: Path, history: dict, metrics: dict, task: str) -> dict[str, str]:
    """Draw every plot the run has data for.

    Returns:
        {name: path relative to the folder} for the plots written (loss, metrics, per_label, confusion,
        learning_rate).
    """
    plt = _pyplot()
    out = Path(folder) / PLOTS_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    validation = metrics.get("validation")
    makers = {
        "loss": lambda p: _loss(plt, history, p),
        "metrics": lambda p: _metrics(plt, history, task, p),
        "per_label": lambda p: _per_label(plt, validation, p),
        "confusion": lambda p: _confusion(plt, validation, task, p),
        "learning_rate": lambda p: _learning_rate(plt, history, p),
    }
    written = {}
    for name, make in makers.items():
        if make(out / f"{name}.png"):
            written[name] = f"{PLOTS_FOLDER}/{name}.png"
    plt.close("all")
    return written
