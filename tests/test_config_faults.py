"""Hostile configs (issue 29, items 2, 6 and 7): each is a coded error before any data is read or model loaded,
naming the key (and the line, in a YAML file) and what to write instead."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.config import TrainConfig, build_config
from tunecard.errors import ConfigError

runner = CliRunner()
BASE = {"train": "x.conll", "validation": "y.conll"}


def _error(*, yaml_text: str | None = None, tmp_path=None, pairs: list[str] | None = None, values=None) -> ConfigError:
    config_file = None
    if yaml_text is not None:
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build_config(config_file, {**BASE, **(values or {})}, pairs)
    return caught.value


def test_unknown_key_gets_the_closest_key_not_the_list_of_all(tmp_path):
    error = _error(pairs=["learnin_rate=3e-5"])
    assert error.code == "E206" and "unknown key 'learnin_rate'" in error.message
    assert error.fix == "did you mean learning_rate?"
    assert "eval_batch_size" not in str(error)  # not the list of every key
    error = _error(yaml_text="train: x.conll\nseed: 3\ntrain_bach_size: 8\n", tmp_path=tmp_path)
    assert error.fix == "did you mean train_batch_size?" and error.line == 3 and error.path.endswith("config.yaml")
    error = _error(pairs=["speed_options.packin=false"])  # nested keys are matched against their own block
    assert error.fix == "did you mean packing?"
    error = _error(pairs=["zzz=1"])
    assert "no key is close" in error.fix and "docs/configuration.md" in error.fix


def test_duplicate_yaml_keys_name_both_lines(tmp_path):
    error = _error(yaml_text="train: x.conll\nlearning_rate: 1e-4\nseed: 3\nlearning_rate: 2e-5\n", tmp_path=tmp_path)
    assert error.code == "E204" and error.line == 4
    assert "'learning_rate' is given twice, on lines 2 and 4" in error.message
    error = _error(yaml_text="train: x.conll\nspeed_options:\n  packing: false\n  packing: true\n", tmp_path=tmp_path)
    assert error.code == "E204" and "lines 3 and 4" in error.message


@pytest.mark.parametrize("pair", ["train_batch_size=true", "eval_batch_size=false", "num_epochs=true", "seed=true",
                                  "max_length=true", "text_column=true", "learning_rate=true"])
def test_a_boolean_is_not_a_number(pair):
    error = _error(pairs=[pair])
    assert error.code == "E206" and pair.split("=")[0] in error.message and "not a switch" in error.message


def test_switches_still_take_booleans():
    config = build_config(None, BASE, ["header=true", "eval_on_start=true", "speed_options.packing=false"])
    assert config.header is True and config.eval_on_start is True and config.speed_options.packing is False


@pytest.mark.parametrize("value", [-7, 0, -2])
def test_max_steps_is_minus_one_or_positive(value):
    error = _error(pairs=[f"max_steps={value}"])
    assert error.code == "E206" and "max_steps" in error.message and "-1 (train num_epochs) or at least 1" in error.message


def test_max_steps_accepts_minus_one_and_positive():
    assert build_config(None, BASE, ["max_steps=-1"]).max_steps == -1
    assert build_config(None, BASE, ["max_steps=5"]).max_steps == 5


@pytest.mark.parametrize("pair", ["seed=-1", f"seed={2**32}", "num_epochs=.inf", "num_epochs=.nan",
                                  "learning_rate=.nan", "max_grad_norm=.inf", "warmup_ratio=.nan"])
def test_out_of_range_seed_and_non_finite_numbers(pair):
    error = _error(pairs=[pair])
    assert error.code == "E206" and pair.split("=")[0] in error.message


def test_seed_range_ends_are_valid():
    assert build_config(None, BASE, ["seed=0"]).seed == 0
    assert build_config(None, BASE, [f"seed={2**32 - 1}"]).seed == 2**32 - 1


@pytest.mark.parametrize("strategy, pair", [("eval_strategy=epoch", "eval_steps=50"),
                                            ("save_strategy=epoch", "save_steps=50"),
                                            ("save_strategy=no", "save_steps=50")])
def test_steps_given_under_another_strategy_is_an_error(strategy, pair):
    error = _error(pairs=[strategy, pair])
    key = pair.split("=")[0]
    assert error.code == "E206" and f"{key} (50) is used only with" in error.message and "steps" in error.message


def test_steps_with_the_steps_strategy_are_fine():
    config = build_config(None, BASE, ["eval_strategy=steps", "eval_steps=5", "save_strategy=steps", "save_steps=5"])
    assert (config.eval_steps, config.save_steps) == (5, 5)


def test_early_stopping_needs_a_validation_split(tmp_path):
    error = _error(values={"validation": None}, pairs=["early_stopping_patience=2"])
    assert error.code == "E206" and "early_stopping_patience needs a validation split" in error.message
    error = _error(yaml_text="train: x.conll\nseed: 3\nearly_stopping_patience: 2\n", tmp_path=tmp_path,
                   values={"validation": None})
    assert error.line == 3  # the cross-key rule points at the key's line
    assert build_config(None, BASE, ["early_stopping_patience=2"]).early_stopping_patience == 2


@pytest.mark.parametrize("pair", ["output=", "output=''", "output='  '"])
def test_empty_output_is_refused(pair):
    error = _error(pairs=[pair])
    assert error.code == "E206" and "output" in error.message and "no output folder named" in error.message


@pytest.mark.parametrize("task, metric, close", [("ner", "f2", "f1"), ("ner", "precission", "precision"),
                                                 ("text-classification", "acc", "accuracy"),
                                                 ("ner", "bleu", None)])
def test_metric_for_best_model_is_checked_against_the_task(task, metric, close):
    error = _error(values={"task": task}, pairs=[f"metric_for_best_model={metric}"])
    assert error.code == "E206" and f"metric_for_best_model {metric!r}" in error.message
    assert "use one of loss, " in error.message
    assert (f"did you mean {close}?" in error.message) == (close is not None)


@pytest.mark.parametrize("given, read", [("eval_f1", "f1"), ("F1", "f1"), ("eval_loss", "loss"), ("loss", "loss"),
                                         ("accuracy", "accuracy")])
def test_metric_spellings_of_the_trainer_are_accepted(given, read):
    assert build_config(None, BASE, [f"metric_for_best_model={given}"]).metric_for_best_model == read


def test_library_configs_are_checked_too():
    with pytest.raises(ValueError, match="did you mean f1"):
        TrainConfig(metric_for_best_model="f2")


def test_bad_metric_stops_the_cli_before_anything_is_read_or_written(tmp_path):
    output = tmp_path / "run"
    for _attempt in range(2):  # the retry meets the same error, not E402 for a folder the first attempt left
        result = runner.invoke(app, ["train", "--train", str(tmp_path / "missing.conll"), "--output", str(output),
                                     "--set", "metric_for_best_model=f2"])
        assert isinstance(result.exception, ConfigError) and result.exception.code == "E206", result.output
        assert not output.exists() and list(tmp_path.iterdir()) == []


def test_missing_tracking_package_is_an_error_before_data_and_model(tmp_path, monkeypatch):
    import tunecard.config

    real = tunecard.config._importable
    monkeypatch.setattr(tunecard.config, "_importable", lambda module: module != "wandb" and real(module))
    result = runner.invoke(app, ["train", "--train", str(tmp_path / "missing.conll"), "--model",
                                 str(tmp_path / "no-model"), "--output", str(tmp_path / "run"),
                                 "--set", "report_to=wandb"])
    error = result.exception
    assert isinstance(error, ConfigError) and error.code == "E210", result.output
    assert "wandb" in error.message and "pip install wandb" in error.fix
    assert list(tmp_path.iterdir()) == []


def test_summary_of_a_run_without_a_best_checkpoint_prints(capsys):
    from tunecard.cli import _print_summary
    from tunecard.pipeline import RunResult

    result = RunResult(output=None, history={"best": None}, metrics={"validation": {"f1": 0.5, "precision": 0.5}})
    _print_summary(result)  # every validation loss NaN: no best row, and no TypeError


# docs/bad-input.md's Configuration table: each row's code and message are what build_config gives.
DOC = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
DOC_CASES = [
    ("a misspelt key", ["learnin_rate=3e-5"], "E206", "unknown key 'learnin_rate'. Fix: did you mean learning_rate?"),
    ("a boolean for a number (`train_batch_size: true`)", ["train_batch_size=true"], "E206",
     "train_batch_size: not a switch: true would be read as 1; give a number (or a name) (got True)"),
    ("`max_steps: -7` (or 0)", ["max_steps=-7"], "E206", "max_steps: -1 (train num_epochs) or at least 1 (got -7)"),
    ("`seed: -1`", ["seed=-1"], "E206", "seed: Input should be greater than or equal to 0 (got -1)"),
    ("`num_epochs: .inf` or `.nan` (any number)", ["num_epochs=.inf"], "E206",
     "num_epochs: Input should be a finite number (got inf)"),
    ("`eval_steps` or `save_steps` under strategy `epoch`", ["eval_steps=50"], "E206",
     "eval_steps (50) is used only with eval_strategy: steps, and eval_strategy is 'epoch': set eval_strategy: "
     "steps, or remove eval_steps"),
    ("`output: ''`", ["output=''"], "E206", "output: no output folder named: give one, e.g. output: runs/my-model "
     "(got '')"),
    ("`metric_for_best_model: f2`", ["metric_for_best_model=f2"], "E206",
     "metric_for_best_model 'f2' is not a validation metric of token-classification: did you mean f1? use one of "
     "loss, precision, recall, f1, accuracy"),
]


@pytest.mark.parametrize("row, pairs, code, excerpt", DOC_CASES, ids=[case[0] for case in DOC_CASES])
def test_docs_table_shows_the_message_each_bad_config_gets(row, pairs, code, excerpt):
    error = _error(pairs=pairs)
    assert error.code == code and excerpt in str(error)
    rows = {line.split(" | ")[0][2:]: line for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ")}
    assert row in rows, f"docs/bad-input.md has no row {row!r}"
    assert f"**{code}**" in rows[row] and excerpt.split(". Fix: ")[0] in rows[row]
