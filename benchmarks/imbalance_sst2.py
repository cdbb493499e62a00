"""Class weights on an imbalanced set: SST-2 cut to one positive for nine negatives, trained with
`class_weights: none` and `balanced`; macro F1 and the minority (positive) class's recall on validation and test.

The subsample keeps the files' order: the first NEGATIVES negative and the first NEGATIVES/9 positive sentences of
train.txt, and the same 1:9 cut of dev.txt (validation) and test.txt (test), all of their negatives kept. Both runs
train the embedded MiniLM with the same config (seed 42) but the weights. Quality figures only: no timing.

    .venv/bin/python benchmarks/imbalance_sst2.py                     # ../shared/data/sst2, runs/imbalance-sst2
    .venv/bin/python benchmarks/imbalance_sst2.py --negatives 900 --epochs 2 --json imbalance.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RATIO = 9  # negatives per positive
POSITIVE, NEGATIVE = "1", "0"


def subsample(source: Path, target: Path, negatives: int | None) -> dict:
    """The first `negatives` negative lines (all of them if None) and a ninth as many positive lines, in file order."""
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    wanted_negatives = negatives if negatives is not None else sum(line.split(None, 1)[0] == NEGATIVE for line in lines)
    wanted = {NEGATIVE: wanted_negatives, POSITIVE: wanted_negatives // RATIO}
    kept, counts = [], {NEGATIVE: 0, POSITIVE: 0}
    for line in lines:
        label = line.split(None, 1)[0]
        if counts[label] < wanted[label]:
            kept.append(line)
            counts[label] += 1
    target.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/sst2", help="folder with SST-2's train/dev/test.txt")
    parser.add_argument("--output", default="runs/imbalance-sst2", help="folder for the data cut and both runs")
    parser.add_argument("--negatives", type=int, default=1350, help="training negatives (positives: a ninth)")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from tunecard.config import build_config
    from tunecard.pipeline import train

    output = Path(args.output)
    (output / "data").mkdir(parents=True, exist_ok=True)
    source = Path(args.data)
    counts = {"train": subsample(source / "train.txt", output / "data" / "train.txt", args.negatives),
              "validation": subsample(source / "dev.txt", output / "data" / "dev.txt", None),
              "test": subsample(source / "test.txt", output / "data" / "test.txt", None)}
    figures = {"counts": counts, "runs": {}}
    for weights in ("none", "balanced"):
        config = build_config(None, dict(
            task="text-classification", model=args.model, train=str(output / "data" / "train.txt"),
            validation=str(output / "data" / "dev.txt"), test=str(output / "data" / "test.txt"),
            output=str(output / f"class-weights-{weights}"), dataset_name="sst2 (1:9)", num_epochs=args.epochs,
            class_weights=weights, seed=42))
        result = train(config, overwrite=True, progress=False)
        figures["runs"][weights] = {
            split: {"macro_f1": result.metrics[split]["macro_f1"],
                    "minority_recall": result.metrics[split]["per_label"][POSITIVE]["recall"],
                    "minority_precision": result.metrics[split]["per_label"][POSITIVE]["precision"],
                    "minority_f1": result.metrics[split]["per_label"][POSITIVE]["f1"],
                    "accuracy": result.metrics[split]["accuracy"]}
            for split in ("validation", "test")}
        figures["runs"][weights]["weights"] = (result.metrics.get("class_weights") or {}).get("weights")
        figures["runs"][weights]["best_epoch"] = (result.history.get("best") or {}).get("epoch")
    print(json.dumps(figures, indent=2))
    print("| class_weights | split | macro F1 | minority recall | minority precision | minority F1 | accuracy |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for weights, run in figures["runs"].items():
        for split in ("validation", "test"):
            row = run[split]
            print(f"| {weights} | {split} | {row['macro_f1']:.4f} | {row['minority_recall']:.4f} | "
                  f"{row['minority_precision']:.4f} | {row['minority_f1']:.4f} | {row['accuracy']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
