"""`tunecard search`: the space is validated up front, pruning stops bad trials, and an interrupted study resumes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, WNUT_SAMPLE
from optuna.trial import TrialState
from transformers import TrainerCallback, TrainerControl, TrainingArguments

from tunecard.config import build_config
from tunecard.errors import ConfigError, OutputError
from tunecard.search.space import check_space, default_space
from tunecard.search.study import BEST_CONFIG, LOCK_FILE, STUDY_FILE, PruningCallback, load_space, parse_space, search

optuna.logging.set_verbosity(optuna.logging.WARNING)

# 32 sentences, batch 16, 2 epochs: 4 optimizer steps and 2 evaluations per trial.
TINY = dict(task="ner", train=str(WNUT_SAMPLE / "train.conll"), validation=str(WNUT_SAMPLE / "dev.conll"),
            max_train_examples=32, max_eval_examples=16, num_epochs=2, train_batch_size=16, precision="fp32",
            eval_strategy="steps", eval_steps=2)


def _config(model: Path | None, output: Path, **overrides):
    values = dict(TINY, output=str(output), **overrides)
    if model is not None:
        values["model"] = str(model)
    return build_config(None, values)


def _space_file(tmp_path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the search space -------------------------------------------------------------------------------------------

def test_space_file_gives_typed_params(tmp_path):
    space = load_space(_space_file(tmp_path, "learning_rate: {low: 1e-5, high: 1e-3, log: true}\n"
                                             "train_batch_size: [8, 16]\n"
                                             "gradient_accumulation_steps: {low: 1, high: 4}\n"))
    assert space["learning_rate"].low == 1e-5 and space["learning_rate"].log  # YAML's text "1e-5" read as a number
    assert space["train_batch_size"].choices == (8, 16)
    assert space["gradient_accumulation_steps"].integer and space["gradient_accumulation_steps"].line == 3
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = {name: param.suggest(trial) for name, param in space.items()}
    assert 1e-5 <= values["learning_rate"] <= 1e-3 and values["train_batch_size"] in (8, 16)
    assert isinstance(values["gradient_accumulation_steps"], int)


@pytest.mark.parametrize("text, line, words", [
    ("learning_rate: {low: 1e-5, high: 1e-3}\nlerning_rate: [1, 2]\n", 2, "searchable keys"),
    ("output: [a, b]\n", 1, "searchable keys"),
    ("learning_rate: {low: 1e-3, high: 1e-5}\n", 1, "must be below high"),
    ("weight_decay: {low: 0.0, high: 0.1, log: true}\n", 1, "low > 0"),
    ("train_batch_size: {low: 8.5, high: 32}\n", 1, "integer key"),
    ("optimizer: {low: 1, high: 2}\n", 1, "list of choices"),
    ("learning_rate: 3e-5\n", 1, "belongs in the training config"),
    ("learning_rate: {low: 1e-5, hi: 1e-3}\n", 1, "low, high"),
    ("train_batch_size: []\n", 1, "non-empty"),
])
def test_bad_space_entries_name_the_file_line_and_fix(tmp_path, text, line, words):
    path = _space_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_space(path)
    error = caught.value
    assert error.code == "E280" and error.path == str(path) and error.line == line
    assert words in str(error) and error.fix


def test_space_values_are_checked_against_the_training_config(tmp_path):
    config = _config(None, tmp_path / "out")
    path = _space_file(tmp_path, "train_batch_size: [8, 16]\nwarmup_ratio: {low: 0.0, high: 1.5}\n")
    with pytest.raises(ConfigError) as caught:
        check_space(load_space(path), config, str(path))
    assert caught.value.code == "E281" and caught.value.line == 2 and "warmup_ratio" in str(caught.value)
    with pytest.raises(ConfigError, match="max_steps"):
        check_space(parse_space({"num_epochs": {"low": 1, "high": 3}}), _config(None, tmp_path / "o", max_steps=4))


def test_default_space_leaves_out_keys_the_config_overrides(tmp_path):
    assert set(default_space(_config(None, tmp_path / "a"))) == {
        "learning_rate", "train_batch_size", "num_epochs", "warmup_ratio", "weight_decay"}
    narrowed = default_space(_config(None, tmp_path / "b", max_steps=10, warmup_steps=2, optimizer="adam"))
    assert set(narrowed) == {"learning_rate", "train_batch_size"}


# --- preconditions, checked before any training ----------------------------------------------------------------

def test_search_refuses_what_cannot_work(tmp_path):
    with pytest.raises(ConfigError, match="E283"):
        search(_config(None, tmp_path / "a"), trials=2, metric="bleu")
    no_validation = build_config(None, {**TINY, "validation": None, "output": str(tmp_path / "b")})
    with pytest.raises(ConfigError, match="E282"):
        search(no_validation, trials=2)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="E406"):
        search(_config(None, busy), trials=2)
    assert (busy / "notes.txt").read_text() == "mine" and not (busy / STUDY_FILE).exists()


def test_a_second_search_in_the_same_folder_is_refused(tmp_path):
    import fcntl

    folder = tmp_path / "search"
    folder.mkdir()
    with open(folder / LOCK_FILE, "w") as handle:  # as a running search holds it
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputError, match="E405"):
            search(_config(None, folder), trials=1)


# --- pruning ------------------------------------------------------------------------------------------------------

def test_pruning_callback_stops_a_trial_below_the_median(tmp_path):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    for value in (0.6, 0.7):
        study.add_trial(optuna.trial.create_trial(
            params={}, distributions={}, value=value, intermediate_values={1: value, 2: value}))
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)

    good = PruningCallback(study.ask(), "f1")
    control = TrainerControl()
    good.on_evaluate(args, None, control, metrics={"eval_f1": 0.9, "eval_loss": 0.1})
    assert not control.should_training_stop and good.pruned_at is None

    bad = PruningCallback(study.ask(), "f1")
    control = TrainerControl()
    bad.on_evaluate(args, None, control, metrics={"eval_f1": math.nan})  # nothing reported: nothing decided
    assert not control.should_training_stop
    bad.on_evaluate(args, None, control, metrics={"eval_f1": 0.2})
    assert control.should_training_stop and bad.pruned_at == 2
    assert study.trials[-1].intermediate_values == {2: 0.2}


# --- whole searches on a tiny model -----------------------------------------------------------------------------

class InterruptThirdTrial(TrainerCallback):
    """Ctrl-C during the third trial's first evaluation."""

    def __init__(self):
        self.trials_started = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.trials_started += 1

    def on_evaluate(self, args, state, control, **kwargs):
        if self.trials_started == 3:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_three_trials_prune_interrupt_resume_and_save_the_best(tiny_bert_cased, tmp_path):
    folder = tmp_path / "search"
    config = _config(tiny_bert_cased, folder)
    space = parse_space({"learning_rate": {"low": 1e-6, "high": 3e-3, "log": True}, "train_batch_size": [8, 16]})
    kwargs = dict(trials=3, metric="loss", space=space, pruner_startup_trials=1)
    # Fixed first two trials: a learning rate that learns, then one too small to move the loss (so it is pruned).
    folder.mkdir()
    seeded = optuna.create_study(storage=f"sqlite:///{folder / STUDY_FILE}", study_name="search", direction="minimize")
    seeded.enqueue_trial({"learning_rate": 3e-3, "train_batch_size": 16})
    seeded.enqueue_trial({"learning_rate": 1e-6, "train_batch_size": 16})

    with pytest.raises(KeyboardInterrupt):
        search(config, callbacks=[InterruptThirdTrial()], **kwargs)
    states = [t.state for t in optuna.load_study(study_name="search", storage=seeded._storage).trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]

    result = search(config, **kwargs)  # the same command again: resumes
    trials = result.study.trials
    assert [t.state for t in trials][:3] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert trials[3].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert trials[3].params == trials[2].params and trials[3].user_attrs["retry_of"] == 2  # the interrupted one, again
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(("trial", ".trial"))) == [
        "trial-000", "trial-001", "trial-003"]  # nothing left of the interrupted trial

    # Every trial a normal run folder; the pruned one stopped after its first evaluation and says so on its card.
    pruned = folder / "trial-001"
    history = json.loads((pruned / "history.json").read_text())
    assert len(history["rows"]) == 1 and history["rows"][0]["step"] == 2
    assert history["stopped_by"] == {"reason": "pruned", "evaluation": 1, "metric": "loss"}
    card = (pruned / "README.md").read_text()
    assert "The hyperparameter search stopped this trial after evaluation 1, before its configured end" in card
    assert "D403" not in card  # stopped on purpose: the doctor does not ask for more epochs
    assert "This run is trial 1 of the Optuna study `search`" in card and "`learning_rate` = 1e-06" in card
    assert card.count("\n### Hyperparameter search\n") == 1 and "\n## Hyperparameter search" not in card  # once, in place
    assert json.loads((pruned / "metrics.json").read_text())["search"]["trial"] == 1
    assert json.loads((pruned / "trial.json").read_text())["state"] == "pruned"
    assert json.loads((folder / "trial-000" / "history.json").read_text())["stopped_by"] is None
    complete = json.loads((folder / "trial-000" / "history.json").read_text())
    assert len(complete["rows"]) == 2

    # Leaderboard: best complete trial first, its value the loss of the saved checkpoint.
    board = json.loads((folder / "leaderboard.json").read_text())
    assert board["direction"] == "minimize" and len(board["trials"]) == 4
    first = board["trials"][0]
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert first["rank"] == 1 and first["trial"] == min(completed, key=lambda t: t.value).number
    metrics = json.loads((folder / first["folder"] / "metrics.json").read_text())
    assert first["loss"] == pytest.approx(metrics["validation"]["loss"])
    assert "interrupted; re-run as trial 3" in (folder / "leaderboard.md").read_text()

    # best_config.yaml is a training config `tunecard train` accepts, with the best trial's values.
    best = build_config(folder / BEST_CONFIG)
    assert best.learning_rate == first["params"]["learning_rate"] and best.metric_for_best_model == "loss"
    assert Path(best.output) == folder / "best" and best.max_train_examples == 32

    # Asking again for 3 trials runs nothing; asking with another metric is refused.
    again = search(config, **kwargs)
    assert len(again.study.trials) == 4
    with pytest.raises(ConfigError, match="E284"):
        search(config, **{**kwargs, "metric": "f1"})


KILLED_SEARCH = """
import os, signal, sys
from transformers import TrainerCallback
from tunecard.config import build_config
from tunecard.search.study import parse_space, search

class KillInSecondTrial(TrainerCallback):
    trials = 0
    def on_train_begin(self, args, state, control, **kwargs):
        KillInSecondTrial.trials += 1
    def on_evaluate(self, args, state, control, **kwargs):
        if KillInSecondTrial.trials == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a lost machine would

config = build_config(None, {config!r})
search(config, trials=2, space=parse_space({space!r}), pruning=False, callbacks=[KillInSecondTrial()])
"""


@pytest.mark.slow
def test_a_killed_search_resumes(tiny_bert_cased, tmp_path):
    folder = tmp_path / "search"
    values = dict(TINY, model=str(tiny_bert_cased), output=str(folder), num_epochs=1)
    space = {"learning_rate": [1e-3, 2e-3]}
    script = tmp_path / "killed.py"
    script.write_text(KILLED_SEARCH.format(config=values, space=space), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert list(folder.glob(".trial-001.*")), "the killed trial left its scratch folder"

    result = search(build_config(None, values), trials=2, space=parse_space(space), pruning=False)
    states = [t.state for t in result.study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert result.study.trials[2].params == result.study.trials[1].params
    assert not list(folder.glob(".trial-*")) and (folder / "trial-002" / "trial.json").is_file()


def test_command_line_reads_the_space_file(tmp_path):
    from typer.testing import CliRunner

    from tunecard.cli import app

    space = _space_file(tmp_path, "train_batch_size: [8, 16]\nlearning_rate: {low: 1e-3, high: 1e-5}\n")
    args = ["search", "--trials", "2", "--space", str(space), "--output", str(tmp_path / "s"), "--set", "task=ner",
            "--set", f"train={TINY['train']}", "--set", f"validation={TINY['validation']}"]
    result = CliRunner().invoke(app, args)
    error = result.exception
    assert isinstance(error, ConfigError) and error.code == "E280" and error.line == 2, result.output
    assert not (tmp_path / "s").exists()  # refused before anything was written
