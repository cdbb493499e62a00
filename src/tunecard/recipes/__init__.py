"""Ready-made training configs that reproduce published fine-tuning cards (`tunecard init`).

Each recipe is a YAML file in this package (so it ships in the wheel) holding TrainConfig keys with the card's
hyperparameters and hub model id, under a comment header. The header's ``# reproduces:`` and ``# published:``
lines describe the card; task, model and dataset are read from the config itself, so there is one source of
truth per recipe. ``examples/recipes/`` in the repository holds identical copies (a test keeps them so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from tunecard.config import load_config_yaml
from tunecard.errors import ConfigError, OutputError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["Recipe", "get_recipe", "list_recipes", "write_recipe"]

_SUFFIX = ".yaml"
_HEADER_LINE = re.compile(r"^#\s*(reproduces|published):\s*(.+?)\s*$")


@dataclass(frozen=True)
class Recipe:
    """One recipe: its name (the file stem), what it reproduces, and the file's text.

    Args:
        name (str): file stem, e.g. ``conll2003-distilbert``.
        text (str): the YAML file, comments included (written out verbatim by :func:`write_recipe`).
        task (str): the config's ``task``.
        model (str): the config's ``model`` (the card's hub id).
        dataset (str): the config's ``dataset_name``.
        reproduces (str): the card it follows, from the ``# reproduces:`` header line.
        published (str | None): the card's headline figure, from ``# published:``; None when absent.
    """

    name: str
    text: str
    task: str
    model: str
    dataset: str
    reproduces: str
    published: str | None


def _parse(name: str, text: str) -> Recipe:
    values = load_config_yaml(text) or {}
    header: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break  # only the leading comment block describes the recipe
        if match := _HEADER_LINE.match(line):
            header[match.group(1)] = match.group(2)
    return Recipe(name=name, text=text, task=str(values.get("task", "")), model=str(values.get("model", "")),
                  dataset=str(values.get("dataset_name") or ""), reproduces=header.get("reproduces", ""),
                  published=header.get("published"))


def _files() -> dict[str, Traversable]:
    """Recipe name -> packaged file (an importlib Traversable: works from a wheel or a zip too)."""
    folder = resources.files(__name__)
    return {entry.name[: -len(_SUFFIX)]: entry for entry in folder.iterdir() if entry.name.endswith(_SUFFIX)}


def list_recipes() -> list[Recipe]:
    """All packaged recipes, sorted by name."""
    return [_parse(name, entry.read_text(encoding="utf-8")) for name, entry in sorted(_files().items())]


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (``.yaml`` optional).

    Raises:
        ConfigError: E230 when there is no such recipe (the valid names are listed).
    """
    files = _files()
    key = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    if key not in files:
        raise ConfigError("E230", f"no recipe named {name!r}.",
                          fix=f"choose one of: {', '.join(sorted(files))} (tunecard init --list).")
    return _parse(key, files[key].read_text(encoding="utf-8"))


def write_recipe(name: str, output: str | Path | None = None, *, force: bool = False) -> Path:
    """Write a recipe out verbatim (comments kept) as a starting config, and return the path written.

    Args:
        name (str): the recipe's name.
        output (str | Path | None): file to write. Defaults to ``<name>.yaml`` in the current folder.
        force (bool): replace an existing file. Defaults to False.
    Raises:
        ConfigError: E230 for an unknown recipe.
        OutputError: E430 when ``output`` exists and ``force`` is not set (nothing is touched), or is a folder.
    """
    recipe = get_recipe(name)
    path = Path(output) if output is not None else Path(recipe.name + _SUFFIX)
    if path.is_dir():
        raise OutputError("E430", "is a folder, not a config file.", path=path,
                          fix=f"give a file name, e.g. -o {path / (recipe.name + _SUFFIX)}")
    if path.exists() and not force:
        raise OutputError("E430", "already exists; it was left as it is.", path=path,
                          fix="choose another --output, or pass --force to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe.text, encoding="utf-8")
    return path
