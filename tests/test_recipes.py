"""Recipes: the published cards' hyperparameters as ready configs, `tunecard init`, and a short run of each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, SHARED_DATA
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.config import build_config, default_model
from tunecard.errors import ConfigError, OutputError
from tunecard.pipeline import train
from tunecard.recipes import get_recipe, list_recipes, write_recipe

runner = CliRunner()
EXAMPLES = ROOT / "examples" / "recipes"

# What each card publishes (issue 8): the recipes must carry exactly these.
# name: (task, hub model, learning_rate, train_batch_size, num_epochs, dataset folder, language)
PUBLISHED = {
    "conll2003-distilbert": ("token-classification", "distilbert-base-uncased", 2e-5, 16, 3, "conll2003", "en"),
    "wnut17-bert-base-cased": ("token-classification", "bert-base-cased", 1.5e-5, 16, 20, "wnut17", "en"),
    "sst2-bert-base-cased": ("text-classification", "bert-base-cased", 5e-5, 8, 5, "sst2", "en"),
    "chnsenticorp-chinese-bert-wwm": ("text-classification", "hfl/chinese-bert-wwm-ext", 5e-5, 1, 5, "chnsenticorp",
                                      "zh"),
}
DATA_KEYS = ("train", "validation", "test")


def _packaged(name: str) -> Path:
    return ROOT / "src" / "tunecard" / "recipes" / f"{name}.yaml"


def test_the_four_recipes_are_shipped():
    assert [r.name for r in list_recipes()] == sorted(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_recipe_loads_and_carries_the_published_hyperparameters(name):
    config = build_config(_packaged(name))
    task, model, lr, batch, epochs, _, language = PUBLISHED[name]
    assert (config.task, config.model, config.learning_rate, config.train_batch_size, config.num_epochs) == (
        task, model, lr, batch, epochs)
    # The cards' "Adam with betas=(0.9,0.999) and epsilon=1e-08, linear, seed 42" (the Trainer's defaults).
    assert (config.adam_beta1, config.adam_beta2, config.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert (config.optimizer, config.weight_decay, config.lr_scheduler_type, config.seed) == ("adamw", 0.0,
                                                                                             "linear", 42)
    assert config.warmup_ratio == 0.0 and config.warmup_steps == 0
    assert config.head_learning_rate is None  # the published runs had one learning rate for head and encoder
    assert config.language == language
    # Relative paths are read from the recipe's folder (examples/recipes/ in the repository): runs/ at its root.
    assert build_config(EXAMPLES / f"{name}.yaml").output == str(ROOT / "runs" / name)
    recipe = get_recipe(name)
    assert (recipe.task, recipe.model, recipe.dataset) == (task, model, config.dataset_name)
    assert recipe.reproduces and model in recipe.reproduces
    assert f"tunecard train examples/recipes/{name}.yaml --set model=embedded" in recipe.text


def test_only_the_conll_card_publishes_a_comparable_figure():
    published = {r.name: r.published for r in list_recipes()}
    assert published.pop("conll2003-distilbert") == "dev F1 0.9126"
    assert set(published.values()) == {None}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_examples_are_identical_to_the_packaged_recipes(name):
    example = EXAMPLES / f"{name}.yaml"
    assert example.read_text(encoding="utf-8") == _packaged(name).read_text(encoding="utf-8"), (
        f"{example} differs from the packaged recipe: edit src/tunecard/recipes/{name}.yaml, then "
        f"tunecard init {name} -o {example.relative_to(ROOT)} --force")
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == sorted(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_recipe_data_paths_are_the_shared_datasets(name, shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any folder: relative paths are read from the recipe's own folder
    config = build_config(EXAMPLES / f"{name}.yaml")
    folder = PUBLISHED[name][5]
    paths = [getattr(config, key) for key in DATA_KEYS if getattr(config, key)]
    assert config.train and config.validation
    for path in paths:
        assert Path(path).is_absolute() and Path(path).is_file(), path
        assert Path(path).resolve().parent == (shared_data / folder).resolve()


def test_embedded_alias_names_the_packaged_minilm():
    config = build_config(_packaged("sst2-bert-base-cased"), set_pairs=["model=embedded"])
    assert config.model == default_model()
    assert build_config(None, {"model": "embedded"}).model == default_model()


def test_unknown_recipe_lists_the_valid_names():
    with pytest.raises(ConfigError) as caught:
        get_recipe("conll2003-bert")
    assert caught.value.code == "E230"
    assert all(name in caught.value.fix for name in PUBLISHED)


def test_init_list_shows_every_recipe_uncut():
    for args in (["init", "--list"], ["init"]):
        result = runner.invoke(app, args, env={"COLUMNS": "60"})
        assert result.exit_code == 0, result.output
        for name, (task, model, *_rest) in PUBLISHED.items():
            line = next(line for line in result.stdout.splitlines() if line.strip().startswith(name + " "))
            assert task in line and model in line  # one full line per recipe, nothing truncated
        assert "dev F1 0.9126" in result.stdout


def test_init_writes_a_config_that_loads_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "configs" / "mine.yaml"
    result = runner.invoke(app, ["init", "wnut17-bert-base-cased", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == _packaged("wnut17-bert-base-cased").read_text(encoding="utf-8")
    assert build_config(target).learning_rate == 1.5e-5

    target.write_text("learning_rate: 3.0e-5\n", encoding="utf-8")  # the user's edits
    result = runner.invoke(app, ["init", "sst2-bert-base-cased", "-o", str(target)])
    assert isinstance(result.exception, OutputError) and result.exception.code == "E430"
    assert result.exception.path == str(target)
    assert target.read_text(encoding="utf-8") == "learning_rate: 3.0e-5\n"  # untouched

    result = runner.invoke(app, ["init", "sst2-bert-base-cased", "-o", str(target), "--force"])
    assert result.exit_code == 0, result.output
    assert build_config(target).train_batch_size == 8


def test_init_defaults_to_the_recipe_name_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_recipe("conll2003-distilbert") == Path("conll2003-distilbert.yaml")
    assert build_config(tmp_path / "conll2003-distilbert.yaml").model == "distilbert-base-uncased"
    with pytest.raises(OutputError):
        write_recipe("conll2003-distilbert")
    with pytest.raises(OutputError):
        write_recipe("conll2003-distilbert", tmp_path)  # a folder is not a config file


@pytest.mark.slow  # reads each full training file (CoNLL-2003: 14,041 sentences), then trains 2 steps
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_recipe_runs_end_to_end(name, tmp_path, monkeypatch, request):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found")
    model = request.getfixturevalue("tiny_bert_chinese" if PUBLISHED[name][6] == "zh" else "tiny_bert_cased")
    monkeypatch.chdir(tmp_path)  # any folder: the recipes' data paths are relative to examples/recipes/
    output = tmp_path / name
    config = build_config(EXAMPLES / f"{name}.yaml", set_pairs=[
        f"model={model}", f"output={output}", "max_steps=2", "max_train_examples=32", "max_eval_examples=16",
        "precision=fp32"])
    result = train(config, progress=False)
    history = json.loads((output / "history.json").read_text())
    assert history["rows"] and history["rows"][-1]["step"] == 2
    validation = result.metrics["validation"]
    assert 0.0 <= validation["f1"] <= 1.0
    assert (output / "README.md").is_file()
    saved = build_config(output / "train_config.yaml")
    assert (saved.learning_rate, saved.train_batch_size) == PUBLISHED[name][2:4]  # the card's values were used
