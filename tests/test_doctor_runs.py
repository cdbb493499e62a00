"""The doctor on runs: history.json / metrics.json / train_config.yaml built by hand for each pattern."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import pytest
import yaml

from tunecard.doctor import diagnose, diagnose_run, leakage, leakage_counts, render_markdown
from tunecard.doctor.findings import ERROR, INFO, WARNING

CONFIG = {"task": "text-classification", "learning_rate": 3e-5, "train_batch_size": 16,
          "gradient_accumulation_steps": 1, "metric_for_best_model": "f1", "num_epochs": 3.0}
NER_CONFIG = {**CONFIG, "task": "token-classification"}


def per_label_cls(pos_pred=410, neg_pred=390):
    return {"neg": {"precision": 0.88, "recall": 0.87, "f1": 0.8750, "support": 395, "predicted": neg_pred},
            "pos": {"precision": 0.89, "recall": 0.90, "f1": 0.8950, "support": 405, "predicted": pos_pred}}


def row(epoch, step, training_loss, validation_loss, f1, accuracy=None, precision=None, recall=None, per_label=None):
    return {"training_loss": training_loss, "epoch": epoch, "step": step, "validation_loss": validation_loss,
            "precision": f1 if precision is None else precision, "recall": f1 if recall is None else recall,
            "f1": f1, "accuracy": f1 if accuracy is None else accuracy, "per_label": per_label or {},
            "is_best_so_far": False}


def steps(n=300, start=0.69, end=0.25):
    return [{"step": i + 1, "epoch": round((i + 1) / 100, 4), "loss": start + (end - start) * i / (n - 1),
             "learning_rate": 3e-5 * (1 - i / n), "grad_norm": 3.0} for i in range(n)]


def history(rows, best_index=None, step_list=None, stopped_early=False, metric="f1"):
    best_index = len(rows) - 1 if best_index is None else best_index
    best = rows[best_index]
    value = best["validation_loss"] if metric == "loss" else best[metric]
    return {"rows": rows, "steps": steps() if step_list is None else step_list,
            "best": {"epoch": best["epoch"], "step": best["step"], "metric": metric, "value": value},
            "stopped_early": stopped_early}


def data_cls(train=5000, validation=800, classes=None, **extra):
    classes = classes or {"neg": 2480, "pos": 2520}
    encoding = {"examples": train, "features": train, "windowed_examples": 0, "windows": 0, "truncated_examples": 0,
                "truncated_words": 0, "subwords_min": 5, "subwords_median": 40.0, "subwords_max": 200}
    out = {"train": {"examples": train, "classes": classes, "repaired": 0, "encoding": dict(encoding)},
           "validation": {"examples": validation, "classes": {"neg": 395, "pos": 405}, "repaired": 0,
                          "encoding": {**encoding, "examples": validation}}}
    out.update(extra)
    return out


def metrics_cls(f1=0.8850, accuracy=0.8850, per_label=None, baseline_f1=0.3378, baseline_accuracy=0.5063, data=None):
    validation = {"precision": 0.885, "recall": 0.885, "f1": f1, "accuracy": accuracy, "loss": 0.30,
                  "per_label": per_label or per_label_cls(), "n": 800}
    return {
        "task": "text-classification", "labels": ["neg", "pos"], "best_epoch": 3.0,
        "validation": validation,
        "baselines": {"validation": {"majority": {"strategy": "majority", "label": "pos", "f1": baseline_f1,
                                                  "accuracy": baseline_accuracy}}},
        "data": data or data_cls(),
        "training": {"runtime_seconds": 100.0, "global_steps": 300},
        "environment": {"versions": {"Transformers": "5.23.0", "Pytorch": "2.13.0+cpu", "Datasets": "5.2.0",
                                     "Tokenizers": "0.23.3"}},
    }


def healthy_rows():
    return [row(1.0, 100, 0.52, 0.36, 0.8610, per_label=per_label_cls()),
            row(2.0, 200, 0.31, 0.31, 0.8790, per_label=per_label_cls()),
            row(3.0, 300, 0.22, 0.30, 0.8850, per_label=per_label_cls())]


def ner_metrics(predicted_entities=950, per_label=None, f1=0.8120):
    per_label = per_label or {
        "LOC": {"precision": 0.85, "recall": 0.83, "f1": 0.84, "support": 400, "predicted": 390},
        "ORG": {"precision": 0.75, "recall": 0.72, "f1": 0.73, "support": 300, "predicted": 290},
        "PER": {"precision": 0.88, "recall": 0.86, "f1": 0.87, "support": 300, "predicted": 270},
    }
    entities = {"LOC": 2000, "ORG": 1800, "PER": 2100}
    encoding = {"windowed_examples": 0, "windows": 0, "truncated_examples": 0, "truncated_words": 0}
    return {
        "task": "token-classification",
        "validation": {"precision": 0.82, "recall": 0.80, "f1": f1, "accuracy": 0.97, "loss": 0.12,
                       "per_label": per_label, "gold_entities": 1000, "predicted_entities": predicted_entities},
        "baselines": {"validation": {"all_o": {"strategy": "all-O", "f1": 0.0, "accuracy": 0.83},
                                     "majority_tag": {"strategy": "majority-tag", "f1": 0.31, "accuracy": 0.86}}},
        "data": {"train": {"examples": 6000, "entities": entities, "repaired": 0, "encoding": dict(encoding)},
                 "validation": {"examples": 1500, "entities": {"LOC": 400, "ORG": 300, "PER": 300}, "repaired": 0,
                                "encoding": dict(encoding)}},
    }


def ner_rows(f1s=(0.7410, 0.8050, 0.8120)):
    return [row(float(i + 1), 100 * (i + 1), 0.30 / (i + 1), 0.16 - 0.015 * i, f1, accuracy=0.95 + 0.01 * i)
            for i, f1 in enumerate(f1s)]


def codes(findings, *severities):
    return {f.code for f in findings if not severities or f.severity in severities}


def only(findings, code):
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, [f.to_dict() for f in findings]
    return found[0]


# --- healthy -------------------------------------------------------------------------------------------------------


def test_healthy_classification_run_has_no_error_or_warning():
    findings = diagnose_run(history(healthy_rows()), metrics_cls(), CONFIG)
    assert not codes(findings, ERROR, WARNING), [f.to_dict() for f in findings]


def test_healthy_ner_run_has_no_error_or_warning():
    findings = diagnose_run(history(ner_rows()), ner_metrics(), NER_CONFIG)
    assert not codes(findings, ERROR, WARNING), [f.to_dict() for f in findings]


def test_config_may_be_an_object():
    findings = diagnose_run(history(healthy_rows()), metrics_cls(), SimpleNamespace(**{**CONFIG, "learning_rate": 2e-3}))
    assert "D304" in codes(findings)


# --- collapse / baseline ------------------------------------------------------------------------------------------


def test_classifier_predicting_one_class():
    collapsed = per_label_cls(pos_pred=800, neg_pred=0)
    metrics = metrics_cls(f1=0.3378, accuracy=0.5063, per_label=collapsed)
    findings = diagnose_run(history(healthy_rows()), metrics, CONFIG)
    finding = only(findings, "D101")
    assert finding.severity == ERROR and "every example predicted 'pos'" in finding.evidence
    assert "pos 800, neg 0" in finding.evidence or "neg 0, pos 800" in finding.evidence
    assert "D201" in codes(findings, ERROR)


def test_ner_predicting_no_entities():
    findings = diagnose_run(history(ner_rows((0.0, 0.0))), ner_metrics(predicted_entities=0, f1=0.0), NER_CONFIG)
    assert "0 entities predicted for 1000 gold entities" in only(findings, "D102").evidence
    assert "all-O" in only(findings, "D201").evidence or "majority-tag" in only(findings, "D201").evidence


def test_ner_predicting_one_type():
    per_label = {t: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 300, "predicted": 0}
                 for t in ("LOC", "ORG", "MISC")}
    per_label["PER"] = {"precision": 0.6, "recall": 0.7, "f1": 0.65, "support": 300, "predicted": 350}
    findings = diagnose_run(history(ner_rows()), ner_metrics(per_label=per_label), NER_CONFIG)
    assert only(findings, "D104").severity == WARNING


def _with_invalid(invalid: int, sentences: int = 1000) -> dict:
    metrics = ner_metrics()
    metrics["validation"].update(invalid_sentences=invalid, sentences=sentences)
    return metrics


def test_ner_predictions_breaking_iob2_point_to_constrained_decoding():
    """D106: 2% of the sentences with a stray I-X (as strong CoNLL-2003 models have) is info, 8% a warning; under
    1%, or a run that already decodes constrained, says nothing."""
    found = only(diagnose_run(history(ner_rows()), _with_invalid(20), NER_CONFIG), "D106")
    assert found.severity == INFO and "validation: 20 of 1000 sentences (2.0%)" in found.evidence
    assert "decoding: constrained" in found.remedy
    assert only(diagnose_run(history(ner_rows()), _with_invalid(80), NER_CONFIG), "D106").severity == WARNING
    assert "D106" not in codes(diagnose_run(history(ner_rows()), _with_invalid(5), NER_CONFIG))
    constrained = {**NER_CONFIG, "decoding": "constrained"}
    assert "D106" not in codes(diagnose_run(history(ner_rows()), _with_invalid(80), constrained))
    assert "D106" not in codes(diagnose_run(history(ner_rows()), ner_metrics(), NER_CONFIG))  # older runs: no count


def test_near_baseline_is_a_warning():
    metrics = metrics_cls(f1=0.5150, accuracy=0.5150, baseline_f1=0.5100, baseline_accuracy=0.5100)
    assert only(diagnose_run(history(healthy_rows()), metrics, CONFIG), "D202").severity == WARNING


def test_metric_frozen_over_the_run():
    rows = [row(float(i + 1), 100 * (i + 1), 0.7 - 0.01 * i, 0.69 - 0.005 * i, 0.3378, accuracy=0.5063)
            for i in range(4)]
    finding = only(diagnose_run(history(rows, best_index=0), metrics_cls(), CONFIG), "D103")
    assert finding.severity == ERROR and finding.data["all_evaluations"]
    assert [s["evaluations"] for s in finding.data["stretches"]] == [4, 4, 4, 4]


# --- divergence ---------------------------------------------------------------------------------------------------------


def test_nan_loss_in_steps_and_rows():
    rows = healthy_rows()
    rows[2]["training_loss"] = float("nan")
    rows[2]["validation_loss"] = float("nan")
    step_list = steps()
    step_list[250]["loss"] = float("nan")
    step_list[251]["grad_norm"] = float("inf")
    finding = only(diagnose_run(history(rows, best_index=1, step_list=step_list), metrics_cls(), CONFIG), "D301")
    assert finding.severity == ERROR
    assert "step loss nan at step 251" in finding.evidence and "gradient norm inf" in finding.evidence
    assert "validation loss nan at epoch 3.0" in finding.evidence


def test_loss_ending_above_its_start_from_steps():
    step_list = steps(start=0.69, end=0.9)
    finding = only(diagnose_run(history(healthy_rows(), step_list=step_list), metrics_cls(), CONFIG), "D302")
    assert finding.severity == ERROR and finding.data["source"] == "steps"


def test_training_loss_rising_over_evaluations():
    rows = [row(1.0, 100, 0.50, 0.40, 0.80), row(2.0, 200, 0.30, 0.35, 0.83), row(3.0, 300, 0.34, 0.36, 0.835),
            row(4.0, 400, 0.39, 0.37, 0.836)]
    finding = only(diagnose_run(history(rows, step_list=[]), metrics_cls(), CONFIG), "D303")
    assert finding.severity == WARNING and finding.data["rises"] == 2


def test_learning_rate_and_batch_size():
    findings = diagnose_run(history(healthy_rows()), metrics_cls(),
                            {**CONFIG, "learning_rate": 1e-3, "train_batch_size": 1})
    assert only(findings, "D304").severity == WARNING
    assert "effective batch size 1" in only(findings, "D305").evidence
    findings = diagnose_run(history(healthy_rows()), metrics_cls(),
                            {**CONFIG, "learning_rate": 1e-4, "train_batch_size": 4})
    assert "D305" in codes(findings) and "D304" not in codes(findings)
    findings = diagnose_run(history(healthy_rows()), metrics_cls(),
                            {**CONFIG, "learning_rate": 1e-4, "train_batch_size": 4, "gradient_accumulation_steps": 4})
    assert "D305" not in codes(findings)


# --- overfitting / convergence ---------------------------------------------------------------------------------------


def test_overfitting_and_best_epoch_not_last():
    rows = [row(1.0, 100, 0.50, 0.40, 0.80), row(2.0, 200, 0.30, 0.33, 0.86), row(3.0, 300, 0.15, 0.41, 0.84),
            row(4.0, 400, 0.06, 0.52, 0.83)]
    findings = diagnose_run(history(rows, best_index=1), metrics_cls(), CONFIG)
    overfit = only(findings, "D401")
    assert overfit.severity == WARNING and "epoch 2.0" in overfit.evidence and "early_stopping_patience" in overfit.remedy
    best = only(findings, "D402")
    assert best.severity == INFO and best.data["epoch"] == 2.0 and "train for 2.0 epochs" in best.remedy


def test_validation_loss_rising_while_f1_improves_is_info():
    rows = [row(1.0, 100, 0.50, 0.30, 0.80), row(2.0, 200, 0.20, 0.25, 0.84), row(3.0, 300, 0.10, 0.29, 0.86),
            row(4.0, 400, 0.05, 0.33, 0.865)]
    assert only(diagnose_run(history(rows), metrics_cls(), CONFIG), "D401").severity == INFO


def test_not_converged_and_early_stopping_silences_it():
    rows = [row(1.0, 100, 0.50, 0.40, 0.70), row(2.0, 200, 0.35, 0.35, 0.76), row(3.0, 300, 0.28, 0.31, 0.81)]
    finding = only(diagnose_run(history(rows), metrics_cls(), CONFIG), "D403")
    assert "0.7600 → 0.8100" in finding.evidence
    assert "D403" not in codes(diagnose_run(history(rows, stopped_early=True), metrics_cls(), CONFIG))


# --- data -------------------------------------------------------------------------------------------------------------


def test_data_findings():
    data = data_cls(train=300, validation=60, classes={"neg": 285, "pos": 9, "other": 6})
    data["validation"]["classes"] = {"neg": 50, "pos": 5, "spam": 5}
    data["validation"]["encoding"]["truncated_examples"] = 12
    data["validation"]["repaired"] = 4
    data["leakage"] = {"duplicates": 9, "eval_examples": 60}
    findings = diagnose_run(history(healthy_rows()), metrics_cls(data=data), CONFIG)
    assert only(findings, "D601").data["examples"] == 300
    assert only(findings, "D602").severity == WARNING
    assert set(only(findings, "D603").data["labels"]) == {"pos", "other"}
    assert "spam" in only(findings, "D604").evidence
    assert only(findings, "D605").severity == WARNING  # 12 of 60 texts truncated
    assert only(findings, "D606").severity == WARNING
    assert only(findings, "D607").severity == ERROR  # 15 % of the evaluation set
    assert only(findings, "D608").severity == WARNING


def test_ner_windows_are_info_and_imbalance_is_info():
    metrics = ner_metrics()
    metrics["data"]["train"]["entities"] = {"LOC": 2000, "ORG": 1800, "PER": 2100, "MISC": 150}
    metrics["data"]["validation"]["entities"]["MISC"] = 20
    metrics["data"]["validation"]["encoding"].update(windowed_examples=3, windows=7)
    findings = diagnose_run(history(ner_rows()), metrics, NER_CONFIG)
    assert only(findings, "D605").severity == INFO and "3 examples split into 7 windows" in only(findings, "D605").evidence
    assert only(findings, "D602").severity == INFO


def test_leakage_function_and_split_level_counts():
    train = ["The cat sat on the mat .", "Reuters", ["EU", "rejects", "German", "call"]]
    evals = ["the  cat sat on the mat .", "Reuters", "EU rejects German call", "A new sentence here"]
    assert leakage_counts(train, evals) == {"duplicates": 2, "eval_examples": 4}
    finding = leakage(train, evals)
    assert finding.code == "D607" and finding.severity == ERROR and "2 of 4" in finding.evidence
    assert leakage(train, ["nothing shared at all"]) is None
    metrics = metrics_cls()
    metrics["data"]["validation"]["leakage"] = {"duplicates": 1, "eval_examples": 800}
    assert only(diagnose_run(history(healthy_rows()), metrics, CONFIG), "D607").severity == INFO


# --- robustness, folders, rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("history_, metrics_, config_", [
    ({}, {}, {}),
    (None, None, None),
    ({"rows": "oops", "steps": [None, 3]}, {"validation": [], "data": {"train": "x"}}, {"learning_rate": "fast"}),
    ({"rows": [{"epoch": "one", "f1": "high"}, None], "best": 3}, {"baselines": {"validation": 1}}, {}),
    ({"rows": [{}], "steps": [{"loss": None}]}, {"task": "token-classification", "validation": {"per_label": 5}}, {}),
])
def test_malformed_inputs_never_raise(history_, metrics_, config_):
    assert isinstance(diagnose_run(history_, metrics_, config_), list)


def write_run(folder, hist, metrics, config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.json").write_text(json.dumps(hist), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (folder / "train_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder


def test_diagnose_a_run_folder_with_versions(tmp_path):
    rows = healthy_rows()
    rows[1]["validation_loss"] = math.nan  # json writes NaN, and reads it back
    folder = write_run(tmp_path / "run", history(rows), metrics_cls(), CONFIG)
    same = {"Transformers": "5.23.1", "Pytorch": "2.13.0", "Datasets": "5.2.0", "Tokenizers": "0.23.3"}
    report = diagnose(folder, installed=same)
    assert report.source == "run" and report.unparsed == []
    # a NaN validation loss with a finite, falling training loss: the evaluation is broken, not the training
    assert codes(report.findings) == {"D306"}
    report = diagnose(folder, installed={**same, "Transformers": "4.57.0"})
    assert only(report.findings, "D701").severity == INFO
    json.dumps(report.to_dict(), allow_nan=False)


def test_run_folder_with_broken_files_reports_them(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "history.json").write_text("{not json", encoding="utf-8")
    report = diagnose(folder, installed={})
    assert any(item.startswith("history.json: not readable JSON") for item in report.unparsed)
    assert any(item.startswith("metrics.json: not found") for item in report.unparsed)


def test_render_markdown_of_a_run():
    rows = healthy_rows()
    findings = diagnose_run(history(rows), metrics_cls(f1=0.3378, accuracy=0.5063,
                                                       per_label=per_label_cls(pos_pred=800, neg_pred=0)), CONFIG)
    text = render_markdown(findings)
    assert text.splitlines()[0].startswith("- **error D101 collapse-one-class**")
    healthy = render_markdown(diagnose_run(history(healthy_rows()), metrics_cls(), CONFIG))
    assert healthy.startswith("No problems found by the checks:") or healthy.startswith("- **info")


def test_diagnose_run_does_not_modify_its_inputs():
    hist, metrics = history(healthy_rows()), metrics_cls()
    before = copy.deepcopy((hist, metrics))
    diagnose_run(hist, metrics, CONFIG)
    assert (hist, metrics) == before
