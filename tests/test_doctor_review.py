"""The doctor at a careful reviewer's level (issue 28): one focused test per class of case, on cards and runs built
here. Every card is a Trainer card as the Trainer writes it; only the numbers change."""

from __future__ import annotations

import json
import math

import pytest

from tunecard.doctor import diagnose, diagnose_card, diagnose_run, render_markdown, run_not_run
from tunecard.doctor.findings import ERROR, INFO, WARNING

COLUMNS = ("Training Loss", "Epoch", "Step", "Validation Loss", "Precision", "Recall", "F1", "Accuracy")


def trainer_card(rows, columns=COLUMNS, headline: dict | None = None, title: str = "my-model", lr: str = "2e-05",
                 batch: int = 16, scheduler: str = "linear", tags=("generated_from_trainer",)) -> str:
    """A Trainer card: the YAML header, the headline list (default: the last row), the hyperparameters, the table."""
    rows = [[str(v) for v in row] for row in rows]
    if headline is None:
        headline = {("Loss" if c == "Validation Loss" else c): v for c, v in zip(columns, rows[-1])
                    if c not in ("Training Loss", "Epoch", "Step")}
    lines = ["---", "license: apache-2.0", "tags:"] + [f"- {t}" for t in tags] + ["model-index:", f"- name: {title}",
                                                                                   "  results: []", "---", "",
                                                                                   f"# {title}", ""]
    lines += ["This model is a fine-tuned version of [bert-base-cased](https://huggingface.co/bert-base-cased) on an "
              "unknown dataset.", "It achieves the following results on the evaluation set:"]
    lines += [f"- {k}: {v}" for k, v in headline.items()]
    lines += ["", "## Model description", "", "More information needed", "", "## Training procedure", "",
              "### Training hyperparameters", "", "The following hyperparameters were used during training:",
              f"- learning_rate: {lr}", f"- train_batch_size: {batch}", "- eval_batch_size: 16", "- seed: 42",
              f"- lr_scheduler_type: {scheduler}", f"- num_epochs: {len(rows)}", "", "### Training results", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join(":---:" for _ in columns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "", "### Framework versions", "", "- Transformers 4.44.2", "- Pytorch 2.4.0", "- Datasets 2.21.0",
              "- Tokenizers 0.19.1", ""]
    return "\n".join(lines)


def doctor(text: str):
    return diagnose_card(text, installed={})


def codes(report, *severities) -> set[str]:
    return {f.code for f in report.findings if not severities or f.severity in severities}


def only(report, code):
    found = [f for f in (report if isinstance(report, list) else report.findings) if f.code == code]
    assert len(found) == 1, [f.to_dict() for f in report.findings]
    return found[0]


# --- 1. collapse at any row, and never the best ----------------------------------------------------------------


def test_collapse_in_mid_training_is_found_though_the_last_row_recovered():
    rows = [(0.69, 1.0, 500, 0.6410, 0.7012, 0.6688, 0.6846, 0.6930),
            (0.66, 2.0, 1000, 0.6931, 0.5000, 1.0, 0.6667, 0.5000),  # every example positive
            (0.52, 3.0, 1500, 0.5820, 0.7401, 0.7102, 0.7248, 0.7310),
            (0.41, 4.0, 2000, 0.5610, 0.7350, 0.7391, 0.7370, 0.7365)]
    report = doctor(trainer_card(rows))
    collapse = only(report, "D101")
    assert collapse.severity == WARNING  # the published model recovered, the epoch-2 checkpoint must not be used
    assert collapse.data["rows"] == ["epoch 2.0 (step 1000)"]
    assert "recall 1.0000, precision 0.5000 = accuracy 0.5000" in collapse.evidence
    assert "never publish them" in collapse.remedy
    # the collapsed epoch 2 has a higher F1 than the last row, yet it is never recommended as the best
    assert not any(f.code == "D402" and "epoch 2.0" in f.title for f in report.findings)


def test_collapse_at_the_first_evaluation_only_is_information():
    rows = [(0.69, 1.0, 500, 0.6790, 0.0, 0.0, 0.0, 0.6650),
            (0.55, 2.0, 1000, 0.5020, 0.7012, 0.6688, 0.6846, 0.8030),
            (0.41, 3.0, 1500, 0.4510, 0.7350, 0.7391, 0.7370, 0.8365)]
    finding = only(doctor(trainer_card(rows, tags=("generated_from_trainer", "text-classification"))), "D101")
    assert finding.severity == INFO and finding.data["rows"] == ["epoch 1.0 (step 500)"]


def test_collapse_of_the_published_row_is_an_error():
    rows = [(0.69, 1.0, 500, 0.6410, 0.7012, 0.6688, 0.6846, 0.6930),
            (0.66, 2.0, 1000, 0.6931, 0.5000, 1.0, 0.6667, 0.5000)]
    assert only(doctor(trainer_card(rows)), "D101").severity == ERROR



def test_collapsed_rows_that_are_not_adjacent_are_each_named_and_no_other():
    # a 4-class macro-averaged classifier: epochs 2 and 4 predict one class (recall 1/4, precision a/4)
    rows = [(1.20, 1.0, 300, 1.1010, 0.5120, 0.4980, 0.5010, 0.6120),
            (1.05, 2.0, 600, 1.2500, 0.1025, 0.2500, 0.1454, 0.4100),
            (0.90, 3.0, 900, 0.9800, 0.5840, 0.5710, 0.5750, 0.6650),
            (0.85, 4.0, 1200, 1.2900, 0.1025, 0.2500, 0.1454, 0.4100),
            (0.70, 5.0, 1500, 0.9100, 0.6210, 0.6010, 0.6080, 0.6950)]
    report = doctor(trainer_card(rows, tags=("generated_from_trainer", "text-classification")))
    finding = only(report, "D101")
    assert finding.severity == WARNING
    assert finding.data["rows"] == ["epoch 2.0 (step 600)", "epoch 4.0 (step 1200)"]
    for other in ("epoch 1.0", "epoch 3.0", "epoch 5.0"):
        assert other not in finding.evidence
    assert "every" not in finding.evidence.split(".")[0]

# --- 2. the model did not learn ---------------------------------------------------------------------------------


def test_validation_loss_at_ln2_with_chance_accuracy_is_chance_level():
    rows = [("No log", 1.0, 20, 0.6933, 0.5493), ("No log", 2.0, 40, 0.6959, 0.5634),
            ("No log", 3.0, 60, 0.6978, 0.5352)]
    finding = only(doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"))),
                   "D203")
    assert finding.severity == ERROR and "ln 2 = 0.6931" in finding.evidence


def test_a_loss_of_ln2_with_a_good_accuracy_is_not_chance_level():
    # a three-class model can sit at a loss of 0.69 and be right 85 % of the time
    rows = [(0.80, 1.0, 500, 0.6901, 0.8500), (0.60, 2.0, 1000, 0.6950, 0.8520), (0.50, 3.0, 1500, 0.6990, 0.8550)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")))
    assert "D203" not in codes(report)


def test_matthews_correlation_at_zero_throughout_is_chance_level():
    rows = [("No log", 1.0, 268, 0.7005, 0.0), (0.6995, 2.0, 536, 0.6960, -0.0043), (0.6962, 3.0, 804, 0.6976, 0.0312)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Matthews Correlation")))
    assert "Matthews correlation" in only(report, "D203").evidence


def test_a_near_zero_macro_f1_is_chance_level():
    rows = [("No log", 1.0, 4, 0.6471, 0.0960, 0.0322), ("No log", 2.0, 8, 0.5902, 0.2933, 0.0364),
            ("No log", 3.0, 12, 0.5430, 0.3700, 0.0345)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Micro f1", "Macro f1"),
                                 title="results"))
    finding = only(report, "D203")
    assert finding.severity == ERROR and "Macro F1 0.0345" in finding.evidence


def test_a_run_with_validation_loss_at_ln_k_is_chance_level():
    rows = [{"epoch": float(i + 1), "step": 100 * (i + 1), "training_loss": 1.10, "validation_loss": v, "f1": 0.2,
             "accuracy": 0.36} for i, v in enumerate((1.0990, 1.0975, 1.0982))]
    history = {"rows": rows, "steps": [], "best": {"epoch": 1.0, "step": 100, "metric": "f1", "value": 0.2}}
    metrics = {"task": "text-classification", "labels": ["a", "b", "c"], "validation": {"f1": 0.2, "accuracy": 0.36}}
    finding = only(diagnose_run(history, metrics, {"learning_rate": 3e-5}), "D203")
    assert "ln 3" in finding.evidence and "3e-05" in finding.remedy and "Lower the learning rate" not in finding.remedy


def test_accuracy_at_the_majority_share_shown_by_a_one_class_row():
    rows = [("No log", 1.0, 95, 0.5756, "nan", 0.0, "nan", 0.715),  # precision 0/0: never positive
            ("No log", 2.0, 190, 0.5340, 0.6429, 0.1579, 0.2535, 0.735),
            ("No log", 3.0, 285, 0.5298, 0.5833, 0.3684, 0.4516, 0.745)]
    report = doctor(trainer_card(rows))
    assert only(report, "D101").severity == INFO  # the nan precision is a one-class row, not a diverged loss
    assert "D301" not in codes(report) and "D306" not in codes(report)
    assert "majority share of 0.7150" in only(report, "D203").evidence



def _few_steps_card(loss, steps_per_epoch=2, lr="5e-05", epochs=3):
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")
    rows = [("No log", float(i + 1), steps_per_epoch * (i + 1), v, a)
            for i, (v, a) in enumerate(zip(loss, (0.4150, 0.4380, 0.4510)[:epochs]))]
    return trainer_card(rows, columns, lr=lr, batch=8)


def test_a_handful_of_optimizer_steps_cannot_have_taught_the_model():
    report = doctor(_few_steps_card((1.6120, 1.5530, 1.5210)))  # 6 steps x 5e-5: no weight moved by 3e-4
    finding = only(report, "D203")
    assert finding.severity == WARNING and "too few training steps" in finding.title
    assert "6 optimizer steps in all at a learning rate of 5e-05" in finding.evidence
    assert "1.6120 → 1.5530 → 1.5210" in finding.evidence
    assert "hundreds, not 6" in finding.remedy


def test_few_steps_from_a_model_that_already_knows_the_task_are_no_finding():
    # a low loss from the first evaluation: the starting checkpoint was fine-tuned already
    assert "D203" not in codes(doctor(_few_steps_card((0.3120, 0.2950, 0.2890))))
    # the same losses after 900 steps at 5e-5: enough steps, the loss alone proves nothing for K > 2 classes
    assert "D203" not in codes(doctor(_few_steps_card((1.6120, 1.5530, 1.5210), steps_per_epoch=300)))


def test_the_steps_of_the_whole_training_count_not_only_the_tables():
    # evaluated at steps 2, 4, 6 of a training that went on to 30 epochs (60 steps x 5e-5 = 3e-3): not too few
    text = _few_steps_card((1.6120, 1.5530, 1.5210)).replace("- num_epochs: 3", "- num_epochs: 30")
    assert "D203" not in codes(doctor(text))

# --- 3. perfect scores -------------------------------------------------------------------------------------------


def test_perfect_scores_are_overlap_or_a_trivial_task_not_one_class():
    rows = [(0.0554, 1.0, 1956, 0.0000, 1.0, 1.0, 1.0, 1.0), (0.0006, 2.0, 3912, 0.0000, 1.0, 1.0, 1.0, 1.0),
            (0.0, 3.0, 5868, 0.0000, 1.0, 1.0, 1.0, 1.0)]
    report = doctor(trainer_card(rows))
    finding = only(report, "D609")
    assert finding.severity == WARNING and "training data" in finding.remedy and "trivial" in finding.remedy
    assert not codes(report) & {"D101", "D102", "D103", "D508"}
    assert "predicted positive" not in json.dumps(report.to_dict())


def test_perfect_accuracy_with_an_untrained_loss_is_a_broken_metric():
    rows = [("No log", 1.0, 1, 2.8381, 1.0, 1.0, 1.0, 1.0), ("No log", 2.0, 2, 2.6555, 1.0, 1.0, 1.0, 1.0),
            ("No log", 3.0, 3, 2.5658, 1.0, 1.0, 1.0, 1.0)]
    report = doctor(trainer_card(rows))
    assert only(report, "D510").severity == ERROR and "broken" in only(report, "D510").title
    assert "D101" not in codes(report)
    assert "D609" not in codes(report)  # the perfect scores are said once, where the loss proves them broken


def test_perfect_scores_with_a_binary_chance_loss_are_one_broken_metric_finding():
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "F1", "Accuracy")
    rows = [(0.7012, 1.0, 250, 0.6950, 1.0, 1.0), (0.6990, 2.0, 500, 0.6941, 1.0, 1.0),
            (0.6975, 3.0, 750, 0.6938, 1.0, 1.0)]
    report = doctor(trainer_card(rows, columns))
    finding = only(report, "D510")
    assert finding.severity == ERROR and "epoch 2.0 (step 500): accuracy 1.0 with validation loss 0.6941" in \
        finding.evidence
    assert not codes(report) & {"D609", "D101", "D103"}
    # the same perfect scores with a low loss: overlap or a trivial task, not a broken metric
    low = [(r[0], r[1], r[2], 0.0123, 1.0, 1.0) for r in rows]
    report = doctor(trainer_card(low, columns))
    assert only(report, "D609").severity == WARNING and "D510" not in codes(report)


def test_a_tagger_right_everywhere_may_have_a_loss_above_ln_2():
    """A token's right tag among O, B-X and I-X can win with just over a third: perfect scores with a loss between
    ln 2 and ln 3 prove no broken metric for NER (they did, with the two-class bound); from ln 3 they do."""
    ner = ("generated_from_trainer", "token-classification")
    rows = [("No log", 1.0, 10, 0.8200, 1.0, 1.0, 1.0, 1.0), ("No log", 2.0, 20, 0.7900, 1.0, 1.0, 1.0, 1.0),
            ("No log", 3.0, 30, 0.7700, 1.0, 1.0, 1.0, 1.0)]
    assert "D510" not in codes(doctor(trainer_card(rows, tags=ner)))
    untrained = [(r[0], r[1], r[2], r[3] + 0.35) for r in rows]
    untrained = [row + tuple(r[4:]) for row, r in zip(untrained, rows)]
    finding = only(doctor(trainer_card(untrained, tags=ner)), "D510")
    assert finding.severity == ERROR and "1/3 odds" in finding.evidence


def test_a_loss_far_too_low_for_the_errors_is_inconsistent():
    rows = [(0.0026, 1.0, 1956, 0.0003, 0.9298, 1.0, 0.9636, 0.9552),
            (0.0015, 2.0, 3912, 0.0003, 0.6416, 0.9996, 0.7815, 0.6688),
            (0.0011, 3.0, 5868, 0.0002, 0.8462, 1.0, 0.9167, 0.8923)]
    finding = only(doctor(trainer_card(rows)), "D510")
    assert "epoch 1.0 (step 1956): validation loss 0.0003 with accuracy 0.9552" in finding.evidence


# --- 5. D302 needs a trend ---------------------------------------------------------------------------------------


def test_one_noisy_training_loss_is_no_divergence():
    rows = [(0.1099, 1.0, 201, 0.1489, 0.8415, 0.9032, 0.8713, 0.9566),
            (0.1716, 2.0, 402, 0.1318, 0.8456, 0.9135, 0.8782, 0.9597),
            (0.1068, 3.0, 603, 0.1197, 0.8682, 0.9110, 0.8891, 0.9641),
            (0.0161, 4.0, 804, 0.1219, 0.8694, 0.9157, 0.8919, 0.9639),
            (0.1499, 5.0, 1005, 0.1226, 0.8760, 0.9185, 0.8968, 0.9647)]
    report = doctor(trainer_card(rows, tags=("generated_from_trainer", "token-classification")))
    assert not codes(report) & {"D302", "D303"}
    assert not codes(report, ERROR)


def test_a_training_loss_rising_row_after_row_is_divergence():
    rows = [(0.3803, 1.0, 1792, 0.5110, 0.9546), (0.4129, 2.0, 3584, 0.5256, 0.9546),
            (0.4804, 3.0, 5376, 0.5305, 0.9546), (0.6571, 4.0, 7168, 0.5583, 0.9546)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "F1"), lr="5e-05",
                                 batch=1))
    assert only(report, "D302").severity == ERROR
    assert "2p/(1+p)" in only(report, "D103").evidence  # F1 frozen at what all-positive predictions give


# --- 6. a card titled '# results' ------------------------------------------------------------------------------


def test_a_card_titled_results_has_its_table_read():
    rows = [(0.7098, 1.0, 685, 0.6945, 0.0, 0.5, 0.0, 0.0), (0.7046, 2.0, 1370, 0.6997, 0.6667, 0.5, 0.5, 1.0),
            (0.7013, 3.0, 2055, 0.6949, 0.6667, 0.5, 0.5, 1.0)]
    text = trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "F1", "Accuracy", "Precision",
                               "Recall"), title="results")
    report = doctor(text)
    assert report.read["results_rows"] == 3 and not any("training results" in u for u in report.unparsed)
    assert only(report, "D101").severity == ERROR


def test_the_results_table_is_preferred_to_another_table_under_a_results_heading():
    text = trainer_card([(0.30, 1.0, 100, 0.25, 0.90), (0.20, 2.0, 200, 0.22, 0.92)],
                        ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"))
    text = text.replace("### Training results", "## Evaluation results\n\n| | precision | recall |\n|---|---|---|\n"
                                                "| pos | 0.9 | 0.9 |\n\n### Training results")
    report = doctor(text)
    assert report.read["results_rows"] == 2 and report.read["results_columns"][0] == "Training Loss"


# --- 7. coincidences of 4 decimals ------------------------------------------------------------------------------


def test_one_equal_loss_and_metric_pair_is_a_coincidence():
    rows = [(0.7001, 1.0, 7, 0.7327, 0.2857), (0.6326, 2.0, 14, 0.6479, 0.5714), (0.5232, 3.0, 21, 0.5714, 0.5714),
            (0.3313, 4.0, 28, 0.6340, 0.7143)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"), batch=4))
    assert "D504" not in codes(report)


def test_identical_last_two_rows_of_a_decaying_schedule_are_information():
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")
    rows = [("No log", float(i + 1), 40 * (i + 1), v, a) for i, (v, a) in
            enumerate([(0.6929, 0.5211), (0.6951, 0.4789), (0.6950, 0.5493), (0.6966, 0.5352), (0.6966, 0.5352)])]
    assert only(doctor(trainer_card(rows, columns)), "D508").severity == INFO
    rows[2] = ("No log", 3.0, 120, 0.6966, 0.5352)  # three alike: no schedule explains that
    assert only(doctor(trainer_card(rows, columns)), "D508").severity == WARNING
    three = [(0.0238, 1.0, 625, 0.1385, 0.9745), (0.0333, 2.0, 1250, 0.1385, 0.9745),
             (0.0263, 3.0, 1875, 0.1385, 0.9745)]
    assert only(doctor(trainer_card(three, columns)), "D508").severity == WARNING



def test_a_loss_equal_to_a_metric_in_two_rows_is_copied_in_one_row_a_coincidence():
    # accuracy 5/8 = 0.6250 and a validation loss of 0.6250 at one evaluation: rounding to 4 decimals, nothing more
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")
    rows = [(0.6801, 1.0, 10, 0.6702, 0.5000), (0.6010, 2.0, 20, 0.6250, 0.6250), (0.5102, 3.0, 30, 0.5893, 0.7500),
            (0.4405, 4.0, 40, 0.5511, 0.7500)]
    report = doctor(trainer_card(rows, columns, batch=4))
    assert "D504" not in codes(report)
    # the loss printed in the accuracy column row after row: a table built wrongly
    copied = [(0.6801, 1.0, 10, 0.6702, 0.6702), (0.6010, 2.0, 20, 0.6250, 0.6250), (0.5102, 3.0, 30, 0.5893, 0.5893),
              (0.4405, 4.0, 40, 0.5511, 0.7500)]
    finding = only(doctor(trainer_card(copied, columns, batch=4)), "D504")
    assert finding.severity == ERROR and "rows 1, 2, 3" in finding.evidence


def test_two_rows_alike_by_four_decimals_in_mid_training_are_not_identical_rows():
    # the validation loss repeats once, the accuracy differs: no identical rows
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")
    rows = [(0.52, 1.0, 100, 0.4411, 0.8125), (0.40, 2.0, 200, 0.4102, 0.8250), (0.33, 3.0, 300, 0.4102, 0.8375),
            (0.25, 4.0, 400, 0.4005, 0.8400)]
    assert "D508" not in codes(doctor(trainer_card(rows, columns)))

# --- 8. evidence quotes the exact rows ---------------------------------------------------------------------------


def test_frozen_stretches_of_different_metrics_are_quoted_separately():
    rows = [(0.70, 1.0, 100, 0.6945, 0.3333, 0.5000), (0.69, 2.0, 200, 0.6997, 0.6000, 0.5000),
            (0.68, 3.0, 300, 0.6949, 0.6000, 0.5000), (0.67, 4.0, 400, 0.6931, 0.6000, 0.5000),
            (0.66, 5.0, 500, 0.6932, 0.6000, 0.5000)]
    finding = only(doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "F1", "Accuracy"))),
                   "D103")
    assert "F1 0.6000 at epoch 2.0 (step 200) to epoch 5.0 (step 500) (4 of 5 evaluations)" in finding.evidence
    assert "Accuracy 0.5000 at all 5 evaluations" in finding.evidence
    assert "F1 0.6000 at all" not in finding.evidence



def test_metrics_frozen_together_are_quoted_once_and_a_micro_average_is_not_called_all_positive():
    # precision = recall = F1 = accuracy: micro averages of a multi-class model, frozen at 0.8462 = 11/13
    rows = [("No log", 5.0, 25, 0.4410, 0.8462, 0.8462, 0.8462, 0.8462),
            ("No log", 10.0, 50, 0.4213, 0.8462, 0.8462, 0.8462, 0.8462),
            ("No log", 15.0, 75, 0.4388, 0.8462, 0.8462, 0.8462, 0.8462)]
    finding = only(doctor(trainer_card(rows)), "D103")
    assert finding.evidence.count("0.8462") == 1
    assert "Precision, Recall, F1 and Accuracy 0.8462 at all 3 evaluations" in finding.evidence
    assert "2p/(1+p)" not in finding.evidence and "positive class for everything" not in finding.evidence
    assert "scores do not move" in finding.title


def test_a_published_checkpoint_inside_a_stretch_frozen_from_the_first_evaluation_is_an_error():
    # accuracy 0.6850 at epochs 1-3 while the loss moves, then it falls; the headline is epoch 3 (the lowest loss):
    # the published model predicts exactly what the first evaluation did
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")
    rows = [(0.6402, 1.0, 500, 0.6233, 0.6850), (0.6210, 2.0, 1000, 0.6241, 0.6850),
            (0.6105, 3.0, 1500, 0.6198, 0.6850), (0.5502, 4.0, 2000, 0.6402, 0.6710),
            (0.4807, 5.0, 2500, 0.6795, 0.6530)]
    headline = {"Loss": "0.6198", "Accuracy": "0.6850"}
    finding = only(doctor(trainer_card(rows, columns, headline=headline)), "D103")
    assert finding.severity == ERROR
    assert "Accuracy 0.6850 at epoch 1.0 (step 500) to epoch 3.0 (step 1500) (3 of 5 evaluations)" in finding.evidence
    # the same table published at its last row: the frozen start is a warning (those checkpoints are not used)
    assert only(doctor(trainer_card(rows, columns)), "D103").severity == WARNING

# --- 9. tiny evaluation sets from the granularity of a card's accuracy ------------------------------------------


def test_accuracies_that_are_multiples_of_one_71st_give_a_tiny_evaluation_set():
    rows = [("No log", 1.0, 20, 0.6533, 0.5493), ("No log", 2.0, 40, 0.6359, 0.5634),
            ("No log", 3.0, 60, 0.6378, 0.5352)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")))
    finding = only(report, "D608")
    assert finding.data["examples"] == 71 and "39/71" in finding.evidence


def test_accuracies_of_a_large_evaluation_set_give_nothing_away():
    rows = [(0.30, 1.0, 500, 0.2950, 0.8810), (0.22, 2.0, 1000, 0.2611, 0.9015), (0.14, 3.0, 1500, 0.2702, 0.9090),
            (0.10, 4.0, 2000, 0.2781, 0.9112)]
    assert "D608" not in codes(doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss",
                                                          "Accuracy"))))



def test_one_accuracy_value_gives_a_tiny_evaluation_set_only_with_a_tiny_training_set():
    # 0.7727 = 17/22 at every evaluation: 1 random value in 36 is some k/n with n <= 30, so on its own it proves
    # nothing; with 5 steps per epoch x batch 8 (at most 40 training examples) a tiny evaluation split is likely
    def card(steps_per_epoch):
        rows = [(0.70 - 0.05 * i, float(i + 1), steps_per_epoch * (i + 1), 0.61 - 0.02 * i, 0.7727) for i in range(3)]
        return trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"), batch=8)

    finding = only(doctor(card(5)), "D608")
    assert finding.data["examples"] == 22 and "17/22" in finding.evidence and "training set is tiny" in finding.evidence
    assert "D608" not in codes(doctor(card(400)))


def test_one_accuracy_value_with_a_denominator_of_twelve_or_less_needs_nothing_else():
    rows = [(0.70 - 0.05 * i, float(i + 1), 400 * (i + 1), 0.66 - 0.02 * i, 0.5833) for i in range(3)]  # 7/12
    finding = only(doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"))), "D608")
    assert finding.data["examples"] == 12

# --- 10. overfitting ---------------------------------------------------------------------------------------------


def test_training_loss_falling_twentyfold_with_a_rising_validation_loss_is_overfitting_though_f1_creeps_up():
    rows = [(1.30, 1.0, 131, 1.0720, 0.5871), (0.79, 2.0, 262, 0.9581, 0.6335), (0.54, 3.0, 393, 0.9162, 0.6718),
            (0.37, 4.0, 524, 0.9722, 0.6819), (0.26, 5.0, 655, 1.0484, 0.6847), (0.19, 6.0, 786, 1.1410, 0.6924),
            (0.06, 7.0, 917, 1.1692, 0.6995)]
    finding = only(doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "F1"))), "D401")
    assert finding.severity == WARNING and "epoch 3.0" in finding.title and "(22x)" in finding.evidence


def test_overfitting_after_the_published_best_checkpoint_is_information():
    rows = [(0.55, 3.21, 500, 0.7660, 0.7581), (0.17, 6.41, 1000, 1.5218, 0.7690), (0.05, 9.62, 1500, 1.6747, 0.7653)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"),
                                 headline={"Loss": "0.7660", "Accuracy": "0.7581"}))
    assert only(report, "D401").severity == INFO
    assert only(report, "D501").severity == INFO and "load_best_model_at_end" in only(report, "D501").evidence



def test_overfitting_is_not_hidden_by_a_noisy_last_training_loss_or_a_creeping_metric():
    # training loss 0.62 -> 0.021 (30x) with one noisy uptick at the end; validation loss +45 % from its minimum;
    # accuracy still inches up: the model memorises, the gains are noise
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")
    rows = [(0.6200, 1.0, 400, 0.4100, 0.8120), (0.2900, 2.0, 800, 0.3600, 0.8390),
            (0.0900, 3.0, 1200, 0.4300, 0.8400), (0.0150, 4.0, 1600, 0.4900, 0.8410),
            (0.0210, 5.0, 2000, 0.5220, 0.8470)]
    finding = only(doctor(trainer_card(rows, columns)), "D401")
    assert finding.severity == WARNING and "epoch 2.0" in finding.title and "(30x)" in finding.evidence
    # the same curves when the training loss stopped falling early (about 2x): the creeping metric makes it info
    slow = [(t * 0 + v, e, st, vl, a) for (t, e, st, vl, a), v in zip(rows, (0.62, 0.45, 0.38, 0.33, 0.30))]
    assert only(doctor(trainer_card(slow, columns)), "D401").severity == INFO

# --- 11. NaN validation loss is an evaluation problem ----------------------------------------------------------


def test_nan_validation_loss_while_the_training_loss_falls_is_an_evaluation_problem():
    rows = [(0.0785, 1.0, 3914, "nan", 0.7119, 0.8410, 0.7711, 0.9658),
            (0.0434, 2.0, 7828, "nan", 0.8545, 0.8666, 0.8605, 0.9693),
            (0.0220, 3.0, 11742, "nan", 0.8293, 0.8573, 0.8431, 0.9652)]
    report = doctor(trainer_card(rows))
    finding = only(report, "D306")
    assert "evaluation" in finding.title and "fp16" in finding.remedy and "D301" not in codes(report)
    assert any("no finite validation loss" in item for item in report.not_run)



def test_a_validation_loss_that_turns_nan_late_names_exactly_those_evaluations():
    # an fp16 evaluation that overflows once the logits grow: finite at epochs 1-2, then inf and NaN
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "F1")
    rows = [(0.4210, 1.0, 800, 0.3150, 0.8012), (0.2203, 2.0, 1600, 0.2870, 0.8350),
            (0.1105, 3.0, 2400, "inf", 0.8441), (0.0561, 4.0, 3200, "nan", 0.8470)]
    report = doctor(trainer_card(rows, columns, headline={"Loss": "nan", "F1": "0.8470"}))
    finding = only(report, "D306")
    assert finding.severity == WARNING and "NaN or infinite" in finding.title
    assert ("validation loss nan or infinite at 2 evaluations (epoch 3.0 (step 2400), epoch 4.0 (step 3200)) and in "
            "the headline while the training loss went 0.4210 → 0.2203 → 0.1105 → 0.0561") in finding.evidence
    assert "epoch 2.0" not in finding.evidence and "D301" not in codes(report)

def test_nan_training_loss_is_divergence():
    rows = [("nan", 1.0, 100, "nan", 0.5), ("nan", 2.0, 200, "nan", 0.5)]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")))
    assert only(report, "D301").severity == ERROR and "D306" not in codes(report)


# --- 12. remedies fit the card; regression cards -----------------------------------------------------------------


def test_remedies_never_advise_the_learning_rate_in_use():
    rows = [(0.71, 1.0, 685, 0.6945, 0.5, 1.0, 0.6667, 0.5), (0.70, 2.0, 1370, 0.6997, 0.5, 1.0, 0.6667, 0.5)]
    report = doctor(trainer_card(rows, lr="2e-05"))
    for f in report.findings:
        assert "2e-5 to 5e-5" not in f.remedy and "Lower the learning rate" not in f.remedy, f.to_dict()
    assert "already in the usual range" in only(report, "D101").remedy
    high = doctor(trainer_card(rows, lr="0.001"))
    assert "Lower the learning rate from 0.001" in only(high, "D101").remedy


def test_a_regression_card_is_not_judged_by_classification_rules():
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Mse", "Mae", "R2", "Accuracy")
    rows = [(12.45, 1.0, 5215, 43.9797, 43.9797, 4.8194, 0.7515, 0.1693),
            (4.39, 2.0, 10430, 39.2333, 39.2333, 4.6028, 0.7783, 0.1737),
            (2.42, 3.0, 15645, 41.3763, 41.3763, 4.6597, 0.7662, 0.1620)]
    report = doctor(trainer_card(rows, columns, headline={"Loss": "39.2333", "Mse": "39.2333", "R2": "0.7783",
                                                          "Accuracy": "0.1737"}))
    assert report.read["task"] == "regression"
    assert not codes(report) & {"D101", "D102", "D103", "D203", "D504", "D505", "D608", "D609", "D510"}
    assert only(report, "D501").severity == INFO  # epoch 2 has the best R2 and the lowest MSE
    assert any("regression model" in item for item in report.not_run)



def test_a_similarity_regression_card_is_judged_by_its_correlation_and_loss_only():
    # an STS-B-like card: MSE loss, Pearson and Spearman; a Pearson of 0.5 would be "accuracy at chance" for a
    # classifier rule, a loss near ln 2 "chance level": neither applies to a regression model
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Pearson", "Spearmanr", "Combined Score")
    rows = [(2.1000, 1.0, 360, 0.6931, 0.5012, 0.4988, 0.5000), (0.9000, 2.0, 720, 0.6920, 0.5110, 0.5090, 0.5100),
            (0.4000, 3.0, 1080, 0.6933, 0.5205, 0.5190, 0.5198)]
    report = doctor(trainer_card(rows, columns, lr="8e-05"))
    assert report.read["task"] == "regression"
    assert not codes(report) & {"D101", "D102", "D103", "D203", "D505", "D608", "D609", "D510"}
    for f in report.findings:
        assert "2e-5-5e-5" not in f.remedy or "8e-05" in f.remedy, f.to_dict()


def test_a_small_batch_remedy_reads_the_learning_rate_in_use():
    columns = ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy")
    rows = [(0.52, 1.0, 3000, 0.41, 0.8120), (0.38, 2.0, 6000, 0.37, 0.8390), (0.30, 3.0, 9000, 0.36, 0.8450)]
    high = only(doctor(trainer_card(rows, columns, lr="0.0001", batch=4)), "D305")
    assert "0.0001" in high.evidence and "5e-05 or less" in high.remedy
    # batch 4 at 1e-5 is the remedy itself: nothing to say
    assert "D305" not in codes(doctor(trainer_card(rows, columns, lr="1e-05", batch=4)))

# --- 13. runs without a validation split, and unknown tasks -----------------------------------------------------


def _test_only_ner_metrics(f1=0.12, predicted=310):
    per_label = {t: {"precision": 0.1, "recall": 0.1, "f1": f1, "support": 300, "predicted": predicted // 3}
                 for t in ("LOC", "ORG", "PER")}
    return {"task": "token-classification", "labels": ["O", "B-LOC", "I-LOC"], "validation": None,
            "test": {"precision": 0.11, "recall": 0.13, "f1": f1, "accuracy": 0.84, "loss": 0.6, "per_label": per_label,
                     "gold_entities": 900, "predicted_entities": predicted},
            "baselines": {"test": {"all_o": {"strategy": "all-O", "f1": 0.0, "accuracy": 0.83},
                                   "majority_tag": {"strategy": "majority-tag", "f1": 0.08, "accuracy": 0.85}}}}


def test_a_run_without_validation_is_judged_on_its_test_split_and_says_what_did_not_run(tmp_path):
    history = {"rows": [], "steps": [], "best": None}
    metrics = _test_only_ner_metrics()
    findings = diagnose_run(history, metrics, {"task": "token-classification", "learning_rate": 5e-5})
    near = only(findings, "D202")
    assert "test F1 0.1200 vs the majority-tag baseline's 0.0800" in near.evidence
    not_run = run_not_run(history, metrics, {})
    assert any("no validation split" in item and "test split" in item for item in not_run)
    text = render_markdown(findings, not_run=not_run)
    assert "Not run:" in text and "no validation split" in text
    (tmp_path / "history.json").write_text(json.dumps(history))
    (tmp_path / "metrics.json").write_text(json.dumps(_test_only_ner_metrics(f1=0.0, predicted=0)))
    report = diagnose(tmp_path, installed={})
    assert "0 entities predicted for 900 gold entities" in only(report, "D102").evidence
    assert report.not_run and report.to_dict()["not_run"] == report.not_run



def test_a_classifier_run_without_validation_that_predicts_one_class_on_test_is_found():
    per_label = {"neg": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 372, "predicted": 0},
                 "pos": {"precision": 0.628, "recall": 1.0, "f1": 0.7715, "support": 628, "predicted": 1000}}
    metrics = {"task": "text-classification", "labels": ["neg", "pos"], "validation": None,
               "test": {"precision": 0.314, "recall": 0.5, "f1": 0.3857, "accuracy": 0.628, "loss": 0.66,
                        "per_label": per_label},
               "baselines": {"test": {"majority": {"strategy": "majority", "label": "pos", "f1": 0.3857,
                                                   "accuracy": 0.628}}}}
    history = {"rows": [], "steps": [], "best": None}
    findings = diagnose_run(history, metrics, {"task": "text-classification", "learning_rate": 2e-5})
    collapse = only(findings, "D101")
    assert collapse.severity == ERROR and "test" in collapse.evidence and "'pos'" in collapse.evidence
    assert "test F1 0.3857" in only(findings, "D201").evidence
    not_run = run_not_run(history, metrics, {})
    assert any("no validation split" in item for item in not_run)
    assert "No problems found" not in render_markdown(findings, not_run=not_run)

def test_an_unknown_task_runs_only_the_task_free_checks():
    rows = [{"epoch": float(i + 1), "step": i + 1, "training_loss": 0.5 / (i + 1), "validation_loss": 0.6931,
             "f1": 0.5, "accuracy": 0.5, "precision": 0.5, "recall": 1.0} for i in range(3)]
    history = {"rows": rows, "steps": [], "best": None}
    metrics = {"task": "multi-label-classification", "labels": ["a", "b"],
               "validation": {"f1": 0.5, "per_label": {"a": {"predicted": 10}, "b": {"predicted": 0}}}}
    findings = diagnose_run(history, metrics, {})
    assert not {f.code for f in findings} & {"D101", "D203"}
    assert any("multi-label-classification" in item for item in run_not_run(history, metrics, {}))


# --- consistency repairs and the console ---------------------------------------------------------------------------


def test_swapped_loss_and_accuracy_columns_are_read_back():
    columns = ("Training Loss", "Epoch", "Step", "Accuracy", "Validation Loss")
    rows = [(2.0851, 1.0, 13660, 0.3052, 2.0650), (1.9902, 2.0, 27320, 0.3105, 2.0524),
            (1.8139, 3.0, 40980, 0.3029, 2.1081), (1.6191, 4.0, 54640, 2.2604, 0.2964),
            (1.4893, 5.0, 68300, 2.3272, 0.2924)]
    report = doctor(trainer_card(rows, columns, headline={"Loss": "2.3272", "Accuracy": "0.2924"}))
    finding = only(report, "D506")
    assert finding.severity == ERROR and "rows 4, 5" in finding.evidence and "swapped" in finding.evidence
    assert "D502" not in codes(report)  # the headline is the last row, read the right way round
    assert only(report, "D402").severity == WARNING  # accuracy 0.3105 at epoch 2, falling since


def test_model_index_of_another_split_or_the_hubs_evaluator_is_not_compared():
    text = trainer_card([(0.3, 1.0, 10, 0.25, 0.9, 0.9, 0.9, 0.95), (0.2, 2.0, 20, 0.24, 0.91, 0.91, 0.91, 0.96)])
    for extra in ("    dataset:\n      name: x\n      split: test\n    metrics:\n    - type: f1\n      value: 0.5\n",
                  "    dataset:\n      name: x\n      split: validation\n    metrics:\n    - type: f1\n"
                  "      value: 0.5\n      verified: true\n"):
        card = text.replace("  results: []", "  results:\n  - task:\n      type: token-classification\n" + extra)
        assert "D509" not in codes(doctor(card))


def test_console_output_is_short_errors_first_and_info_without_remedy():
    from rich.console import Console

    from tunecard.doctor import render_console

    rows = [(0.71, 1.0, 685, 0.6945, 0.5, 1.0, 0.6667, 0.5), (0.70, 2.0, 1370, 0.6997, 0.5, 1.0, 0.6667, 0.5)]
    report = diagnose_card(trainer_card(rows), installed={"Transformers": "5.0.0"})
    console = Console(record=True, width=120)
    console.print(render_console(report))
    out = console.export_text()
    lines = [line for line in out.splitlines() if line.split() and line.split()[0] in (ERROR, WARNING, INFO)]
    order = [line.split()[0] for line in lines]
    assert order == sorted(order, key=[ERROR, WARNING, INFO].index) and order[0] == ERROR
    assert out.count("fix:") == sum(1 for s in order if s != INFO)
    assert "To reproduce, use these versions" in out



def test_an_unlogged_training_loss_is_information_and_not_run_says_how_to_log_it():
    # 40 steps per epoch with the Trainer's logging_steps of 500: 'No log' in every row; the model itself is fine
    rows = [("No log", float(i + 1), 40 * (i + 1), v, a) for i, (v, a) in
            enumerate([(0.4120, 0.8310), (0.3350, 0.8620), (0.3010, 0.8770)])]
    report = doctor(trainer_card(rows, ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"), batch=32))
    finding = only(report, "D503")
    assert finding.severity == INFO and "3 of 3" in finding.evidence
    assert not codes(report, ERROR, WARNING)
    assert any("training loss was not logged" in item and "logging_strategy='epoch'" in item for item in report.not_run)

@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_not_finite_headline_loss_alone_is_an_evaluation_finding(value):
    text = trainer_card([(0.3, 1.0, 10, 0.25, 0.9), (0.2, 2.0, 20, 0.24, 0.91)],
                        ("Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy"),
                        headline={"Loss": str(value), "Accuracy": "0.91"})
    report = doctor(text)
    assert "D306" in codes(report) and "D301" not in codes(report)
