"""`tunecard compare`: only the differing hyperparameters, the runs' scores from metrics.json, the best run marked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import WNUT_SAMPLE
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.config import CONFIG_FILE, build_config
from tunecard.errors import TunecardError
from tunecard.pipeline import train
from tunecard.reporting.compare import BEST_MARK, compare_runs


@pytest.fixture(scope="module")
def runs(tiny_bert_cased, tmp_path_factory) -> list[Path]:
    """Two tiny runs that differ only in learning rate; the checkpoint is chosen by validation loss."""
    parent = tmp_path_factory.mktemp("runs")
    folders = []
    for name, learning_rate in (("lr-1e-3", 1e-3), ("lr-1e-4", 1e-4)):
        config = build_config(None, dict(
            task="ner", model=str(tiny_bert_cased), train=str(WNUT_SAMPLE / "train.conll"),
            validation=str(WNUT_SAMPLE / "dev.conll"), output=str(parent / name), num_epochs=1,
            max_train_examples=16, max_eval_examples=8, train_batch_size=8, learning_rate=learning_rate,
            precision="fp32", metric_for_best_model="loss",
        ))
        folders.append(train(config, progress=False).output)
    return folders


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _edit(folder: Path, name: str, change) -> None:
    path = folder / name
    if name.endswith(".json"):
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    else:
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data))


def test_only_differing_hyperparameters_and_the_lower_loss_marked(runs):
    comparison = compare_runs(runs)
    assert comparison.names == ["lr-1e-3", "lr-1e-4"]
    assert comparison.hyperparameters == {"learning_rate": [1e-3, 1e-4]}  # output differs too, but is the name
    losses = [_metrics(folder)["validation"]["loss"] for folder in runs]
    assert comparison.metrics["validation loss"] == losses
    assert comparison.metric == "loss"
    assert comparison.best == [losses.index(min(losses))]
    assert comparison.metrics["steps"] == [2, 2]


def test_markdown_table_marks_the_best_column(runs):
    comparison = compare_runs(runs)
    lines = comparison.to_markdown().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    best = comparison.best[0]
    assert header[1 + best] == f"**{comparison.names[best]} {BEST_MARK}**"
    assert BEST_MARK not in header[2 - best]
    rows = {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:] if line.startswith("|"))}
    assert rows["learning_rate"] == ["0.001", "0.0001"]
    assert rows["validation f1"] == [f"{_metrics(folder)['validation']['f1']:.4f}" for folder in runs]


def test_best_by_f1_with_ties_and_same_named_folders(runs, tmp_path):
    copies = []
    for i, f1 in enumerate((0.3, 0.7, 0.7)):
        copy = tmp_path / f"copy{i}" / "run"  # three folders all named "run"
        shutil.copytree(runs[0], copy)
        _edit(copy, "metrics.json", lambda m, f1=f1: m["validation"].update(f1=f1))
        _edit(copy, CONFIG_FILE, lambda c: c.update(metric_for_best_model="f1"))
        copies.append(copy)
    comparison = compare_runs(copies)
    assert comparison.best == [1, 2]
    assert comparison.names == [str(c) for c in copies]
    assert comparison.hyperparameters == {}
    assert any("identical" in note for note in comparison.notes)


def test_disagreeing_selection_metrics_are_noted(runs, tmp_path):
    copy = tmp_path / "by-f1"
    shutil.copytree(runs[1], copy)
    _edit(copy, CONFIG_FILE, lambda c: c.update(metric_for_best_model="f1"))
    comparison = compare_runs([runs[0], copy])
    assert comparison.metric == "loss"
    assert comparison.hyperparameters["metric_for_best_model"] == ["loss", "f1"]
    assert any("different metrics" in note for note in comparison.notes)


def test_not_a_run_and_too_few_runs_are_clear_errors(runs, tmp_path):
    with pytest.raises(TunecardError) as caught:
        compare_runs([runs[0]])
    assert caught.value.code == "E464"
    with pytest.raises(TunecardError) as caught:
        compare_runs([runs[0], tmp_path])
    assert caught.value.code == "E460" and caught.value.path == str(tmp_path)


def test_cli_compare_terminal_and_markdown(runs):
    runner = CliRunner()
    result = runner.invoke(app, ["compare", *map(str, runs), "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.stdout == compare_runs(runs).to_markdown()
    result = runner.invoke(app, ["compare", *map(str, runs)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "learning_rate" in result.stdout and BEST_MARK in result.stdout


def _copy(run: Path, folder: Path, metrics=None, config=None) -> Path:
    shutil.copytree(run, folder)
    if metrics:
        _edit(folder, "metrics.json", metrics)
    if config:
        _edit(folder, CONFIG_FILE, config)
    return folder


def _collapse(metrics: dict) -> None:
    """The saved model predicts no entities, with the lowest validation loss of all (D102 at error level)."""
    validation = metrics["validation"]
    validation.update(loss=0.001, predicted_entities=0, precision=0.0, recall=0.0, f1=0.0)
    for row in validation["per_label"].values():
        row.update(predicted=0, precision=0.0, recall=0.0, f1=0.0)


def test_a_collapsed_run_is_marked_and_never_best(runs, tmp_path):
    collapsed = _copy(runs[0], tmp_path / "collapsed", metrics=_collapse)
    comparison = compare_runs([collapsed, runs[1]])
    assert comparison.collapsed == {0: ["D102"]}
    assert comparison.best == [1]  # the collapsed run's loss is the lowest, but it is not ranked
    assert comparison.header()[0] == "collapsed ✗ collapsed (D102)" and BEST_MARK in comparison.header()[1]
    assert any("collapsed (D102" in note and "not ranked" in note for note in comparison.notes)
    assert comparison.to_dict()["collapsed"] == {"collapsed": ["D102"]}
    markdown = comparison.to_markdown()
    assert "✗ collapsed (D102)" in markdown.splitlines()[0]
    alone = compare_runs([collapsed, _copy(collapsed, tmp_path / "collapsed-too")])
    assert alone.best == [] and any("no uncollapsed run" in note for note in alone.notes)


@pytest.mark.parametrize("key, value, reason", [
    ("task", "text-classification", "different tasks"),
    ("metric_for_best_model", "f1", "different metrics"),
    ("validation", "/elsewhere/dev.conll", "different data"),
])
def test_runs_that_are_not_comparable_get_no_star(runs, tmp_path, key, value, reason):
    other = _copy(runs[1], tmp_path / "other", config=lambda c: c.update({key: value}),
                  metrics=lambda m: m.update(task=value) if key == "task" else None)  # metrics.json records the task
    comparison = compare_runs([runs[0], other])
    assert comparison.best == [], reason
    assert any(reason in note and "none is marked best" in note for note in comparison.notes)
    assert BEST_MARK not in comparison.to_markdown()


def test_binary_and_macro_f1_are_not_ranked_together(runs, tmp_path):
    def classifier(average, f1):
        return lambda metrics: metrics["validation"].update(average=average, f1=f1)

    by_f1 = dict(config=lambda c: c.update(metric_for_best_model="f1"))
    binary = _copy(runs[0], tmp_path / "binary", metrics=classifier("binary", 0.5), **by_f1)
    macro = _copy(runs[0], tmp_path / "macro", metrics=classifier("macro", 0.9), **by_f1)
    comparison = compare_runs([binary, macro])
    assert comparison.best == [] and any("averaged differently" in note for note in comparison.notes)
    same = compare_runs([binary, _copy(macro, tmp_path / "macro-2", metrics=classifier("binary", 0.9))])
    assert same.best == [1]  # both binary: ranked, the higher F1 marked
