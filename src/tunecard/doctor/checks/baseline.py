"""D2xx baseline: the model against the strongest baseline computed from the data."""

from __future__ import annotations

from ..findings import Finding, finding
from .common import BASELINE_MARGIN, NER, _finite, fmt, title


# --- baselines -----------------------------------------------------------------------------------------------


def check_baselines(task: str | None, comparisons: list[tuple[str, dict, list[tuple[str, dict]]]]) -> list[Finding]:
    """D201 / D202: the model's F1 (and, for classifiers, accuracy) against the strongest baseline per split.

    ``comparisons``: (split, model's scores, [(strategy, baseline's scores)]).
    """
    below, near = [], []
    keys = ("f1",) if task == NER else ("f1", "accuracy")
    for split, model, baselines in comparisons:
        for key in keys:
            value = model.get(key)
            candidates = [(name, b.get(key)) for name, b in baselines if _finite(b.get(key))]
            if not _finite(value) or not candidates:
                continue
            name, strongest = max(candidates, key=lambda item: item[1])
            line = f"{split} {title(key)} {fmt(value)} vs the {name} baseline's {fmt(strongest)}"
            if value <= strongest + 1e-9:
                (below if key == "f1" else near).append(line)
            elif value < strongest + BASELINE_MARGIN:
                near.append(line)
    found = []
    remedy = ("The model has learned little beyond the baseline: see the collapse and divergence findings; train longer, "
              "tune the learning rate (2e-5 to 5e-5), check the labels, and get more examples of the rare labels.")
    if below:
        found.append(finding("D201", "The model is not better than a baseline computed from the data",
                             "; ".join(below) + ".", remedy, comparisons=below))
    if near:
        found.append(finding("D202", f"The model is less than {BASELINE_MARGIN:g} above a baseline",
                             "; ".join(near) + ".", remedy, comparisons=near))
    return found
