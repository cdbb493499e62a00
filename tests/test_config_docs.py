"""docs/configuration.md is generated from config.py: a key added, renamed or re-described without the doc
regenerated fails here, and so does a key without a description."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from tunecard import config as config_module
from tunecard.config import (
    CONFIG_DOC,
    CONFIG_DOC_COMMAND,
    MOVED_TO_SPEED_OPTIONS,
    REMOVED_LEVERS,
    SpeedOptions,
    TrainConfig,
    build_config,
    config_markdown,
)
from tunecard.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
OLD_KEYS = (*MOVED_TO_SPEED_OPTIONS, *REMOVED_LEVERS)


def _rows(markdown: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell's key name (backquotes removed)."""
    rows = {}
    for line in markdown.splitlines():
        match = re.match(r"\| `([\w.]+)` \|", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in line.strip("|").split(" | ")]
    return rows


def test_configuration_md_is_what_config_py_generates():
    doc = (ROOT / CONFIG_DOC).read_text(encoding="utf-8")
    assert doc == config_markdown(), f"{CONFIG_DOC} is out of date with config.py: run `{CONFIG_DOC_COMMAND}`"


def test_the_generator_runs_as_documented():
    """The command the doc and the failure above name writes the doc (python -m tunecard.config --markdown)."""
    done = subprocess.run([sys.executable, "-m", "tunecard.config", "--markdown"], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout == config_markdown()


def test_every_key_has_a_row_with_its_default_and_allowed_values():
    rows = _rows(config_markdown())
    for name, field in TrainConfig.model_fields.items():
        assert name in rows, f"{name} is missing from the generated doc"
        assert field.description and field.description.replace("|", "\\|") in rows[name][3]
    for name in SpeedOptions.model_fields:
        assert rows[f"speed_options.{name}"][2] == "`true`"  # every lever on by default under speed: auto
    assert rows["speed"][1] == "`auto` \\| `off`" and rows["speed"][2] == "`auto`"
    assert rows["learning_rate"][2] == "`5e-5`" and rows["train_batch_size"][1] == "integer, ≥ 1"
    assert rows["model"][2] == "`embedded`"  # not this machine's site-packages folder
    assert rows["precision"][1] == "`auto` \\| `bf16` \\| `fp32`"


def test_documented_defaults_are_the_defaults():
    """Each row's default, read back as YAML through build_config, is the value a config without the key gets."""
    rows = _rows(config_markdown())
    config = build_config(None, {"train": "x.conll"})
    for name in TrainConfig.model_fields:
        if name in ("model", "output", "speed_options", "train"):  # a path made absolute, a block, the flag given
            continue
        shown = rows[name][2].strip("`")
        again = build_config(None, {"train": "x.conll"}, [f"{name}={shown}"])
        assert getattr(again, name) == getattr(config, name), name


@pytest.mark.parametrize("old", OLD_KEYS)
def test_removed_keys_are_listed_and_refused(old):
    rows = _rows(config_markdown())
    assert old in rows and old not in TrainConfig.model_fields
    assert ("speed_options." + old in rows[old][1]) == (old in MOVED_TO_SPEED_OPTIONS)
    with pytest.raises(ConfigError) as caught:
        build_config(None, {"train": "x.conll"}, [f"{old}=false"])
    assert caught.value.code == "E209"


def test_a_key_without_a_description_stops_the_generator():
    class Example(BaseModel):
        # --- a section
        documented: int = Field(1, description="has one")
        bare: Literal["a", "b"] = "a"

    assert config_module._field_sections(Example) == [("A section", ["documented", "bare"])]
    with pytest.raises(ValueError, match="Example.bare has no description"):
        config_module._doc_rows(Example, ["documented", "bare"])
