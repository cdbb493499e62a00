"""Relative paths in a YAML config are read from the config file's folder (issue 29, item 7), flags' from the
current folder; both come out absolute, so a run's saved train_config.yaml and `tunecard search` work from
any folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import WNUT_SAMPLE

from tunecard.config import build_config, default_model
from tunecard.pipeline import train


def _project(tmp_path: Path, model: Path | None = None, extra: str = "") -> Path:
    """configs/run.yaml beside data/ (relative paths from the file's folder), and an unrelated working folder."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "configs").mkdir()
    shutil.copy(WNUT_SAMPLE / "train.conll", project / "data" / "train.conll")
    shutil.copy(WNUT_SAMPLE / "dev.conll", project / "data" / "dev.conll")
    if model is not None:
        shutil.copytree(model, project / "models" / "tiny")
    config = project / "configs" / "run.yaml"
    config.write_text("task: ner\ntrain: ../data/train.conll\nvalidation: ../data/dev.conll\n"
                      "output: ../runs/first\n" + ("model: ../models/tiny\n" if model is not None else "") + extra,
                      encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    return config


def test_yaml_paths_are_read_from_the_file_folder(tmp_path, monkeypatch):
    config_file = _project(tmp_path)
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = build_config(config_file)
    project = tmp_path / "project"
    assert config.train == str(project / "data" / "train.conll")
    assert config.validation == str(project / "data" / "dev.conll")
    assert config.output == str(project / "runs" / "first")


def test_flags_are_read_from_the_current_folder_and_override_the_file(tmp_path, monkeypatch):
    config_file = _project(tmp_path)
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = build_config(config_file, {"validation": "dev.conll"}, ["output=out"])
    assert config.validation == str(tmp_path / "elsewhere" / "dev.conll")
    assert config.output == str(tmp_path / "elsewhere" / "out")
    assert config.train == str(tmp_path / "project" / "data" / "train.conll")  # still from the file
    assert build_config(None, {"train": "x.conll"}).output == str(tmp_path / "elsewhere" / "runs" / "tunecard-model")


def test_hub_ids_and_dataset_names_are_left_alone(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: conll2003\nvalidation: eriktks/conll2003\nmodel: google-bert/bert-base-cased\n",
                    encoding="utf-8")
    config = build_config(path)
    assert (config.train, config.validation, config.model) == ("conll2003", "eriktks/conll2003",
                                                               "google-bert/bert-base-cased")
    assert build_config(path, set_pairs=["model=embedded"]).model == default_model()
    path.write_text("train: data/train.conll\nmodel: ./models/mine\n", encoding="utf-8")
    config = build_config(path)  # written as paths: paths, even where nothing exists yet
    assert config.train == str(tmp_path / "data" / "train.conll") and config.model == str(tmp_path / "models" / "mine")


def test_saved_config_reproduces_the_run_from_anywhere(tiny_bert_cased, tmp_path, monkeypatch):
    config_file = _project(tmp_path, tiny_bert_cased, "max_steps: 2\nmax_train_examples: 16\nmax_eval_examples: 8\n"
                           "train_batch_size: 8\nprecision: fp32\nsave_strategy: 'no'\neval_strategy: steps\n"
                           "eval_steps: 2\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = build_config(config_file)
    result = train(config, progress=False)
    assert result.output == tmp_path / "project" / "runs" / "first"
    monkeypatch.chdir(tmp_path)
    saved = build_config(result.output / "train_config.yaml")
    assert saved.model_dump() == config.model_dump()  # every path still points at the same files


def test_search_runs_from_another_folder(tiny_bert_cased, tmp_path, monkeypatch):
    from tunecard.search.study import search

    config_file = _project(tmp_path, tiny_bert_cased, "max_steps: 2\nmax_train_examples: 16\nmax_eval_examples: 8\n"
                           "train_batch_size: 8\nprecision: fp32\neval_strategy: steps\neval_steps: 2\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = search(build_config(config_file, {"output": "search"}), trials=1, pruning=False, progress=False)
    assert result.output == tmp_path / "elsewhere" / "search"
    assert len(result.leaderboard) == 1 and result.best_config is not None
    assert build_config(result.best_config).train == str(tmp_path / "project" / "data" / "train.conll")
