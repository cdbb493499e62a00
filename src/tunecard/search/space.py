"""The search space of `tunecard search`: which training config keys vary, over which choices or ranges.

A space file maps config keys to a list of choices or a range `{low, high, log?, step?}` (integers for integer
keys); every value is checked against TrainConfig before the first trial. See docs/search.md.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from pydantic import ValidationError

from tunecard.config import TrainConfig
from tunecard.errors import ConfigError

# Keys a trial may not vary: the data and the task define the objective, and each trial's output is its own folder.
FIXED_KEYS = ("task", "train", "validation", "test", "output", "metric_for_best_model", "max_eval_examples")
RANGE_KEYS = {"low", "high", "log", "step"}

DEFAULT_SPACE = {
    "learning_rate": {"low": 1e-5, "high": 2e-4, "log": True},
    "train_batch_size": [8, 16, 32],
    "num_epochs": {"low": 2, "high": 5, "step": 1},
    "warmup_ratio": {"low": 0.0, "high": 0.2},
    "weight_decay": {"low": 0.0, "high": 0.1},
}


@dataclass(frozen=True)
class Param:
    """One searched config key: a list of `choices`, or a range `low`..`high` (integers for integer keys)."""

    name: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    line: int | None = None

    def suggest(self, trial: optuna.Trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def values_to_check(self) -> list:
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def to_dict(self):
        if self.choices is not None:
            return list(self.choices)
        spec = {"low": self.low, "high": self.high}
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        return spec


def _numeric_kind(name: str) -> type | None:
    """int or float when the config key holds a number (None allowed), else None."""
    annotation = TrainConfig.model_fields[name].annotation
    kinds = {a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)}
    return kinds.pop() if kinds in ({int}, {float}) else None


def _number(value, kind: type | None):
    """YAML 1.1 reads `1e-5` as text: numeric strings become numbers for numeric keys."""
    if kind is not None and isinstance(value, str):
        try:
            return kind(float(value)) if kind is int and float(value).is_integer() else float(value)
        except ValueError:
            return value
    return value


def parse_space(raw: dict, *, source: str | None = None, lines: dict | None = None) -> dict[str, Param]:
    """Turn `{key: [choices] | {low, high, log?, step?}}` into Params, with ConfigError E280 on any bad entry."""
    searchable = [k for k in TrainConfig.model_fields if k not in FIXED_KEYS]
    space = {}
    for name, spec in raw.items():
        line = (lines or {}).get(name)

        def fail(message: str, fix: str) -> ConfigError:
            return ConfigError("E280", f"search space key {name!r}: {message}", path=source, line=line, fix=fix)

        if name not in TrainConfig.model_fields or name in FIXED_KEYS:
            raise fail("is not a training config key a trial can vary.", f"searchable keys: {', '.join(searchable)}.")
        kind = _numeric_kind(name)
        if isinstance(spec, list):
            choices = tuple(_number(c, kind) for c in spec)
            if not choices or not all(c is None or isinstance(c, (str, int, float, bool)) for c in choices):
                raise fail(f"choices must be a non-empty list of plain values, got {spec!r}.", "e.g. [16, 32].")
            space[name] = Param(name, choices=choices, line=line)
        elif isinstance(spec, dict):
            if set(spec) - RANGE_KEYS or not {"low", "high"} <= set(spec):
                raise fail(f"a range has keys low, high and optionally log, step; got {sorted(spec)}.",
                           "e.g. {low: 1.0e-5, high: 1.0e-4, log: true}.")
            if kind is None:
                raise fail("is not numeric, so it has no range.", "give a list of choices instead.")
            low, high, step = (_number(spec.get(k), kind) for k in ("low", "high", "step"))
            log = spec.get("log", False)
            numbers = [v for v in (low, high, step) if v is not None]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                raise fail(f"low, high and step must be numbers, got {spec!r}.", "write numbers, e.g. 1.0e-5.")
            if kind is int and not all(isinstance(v, int) for v in numbers):
                raise fail(f"is an integer key, got {spec!r}.", "use whole numbers.")
            if not isinstance(log, bool):
                raise fail(f"log must be true or false, got {log!r}.", "log: true samples on a log scale.")
            if not low < high:
                raise fail(f"low ({low}) must be below high ({high}).", "swap them, or use a list for one value.")
            if log and low <= 0:
                raise fail(f"a log range needs low > 0, got {low}.", "raise low, or drop log.")
            if step is not None and (step <= 0 or log):
                raise fail(f"step must be positive and cannot go with log, got step {step}.", "drop step or log.")
            space[name] = Param(name, low=low, high=high, log=log, step=step, integer=kind is int, line=line)
        else:
            raise fail(f"expected a list of choices or a range, got {spec!r}.",
                       "a fixed value belongs in the training config, not the search space.")
    return space


def load_space(path: str | Path) -> dict[str, Param]:
    """Read a search space YAML file (see docs/search.md); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("E280", "search space file not found.", path=path, fix="check the path.")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError("E280", f"not valid YAML: {exc}", path=path, line=mark.line + 1 if mark else None,
                          fix="fix the YAML syntax.") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("E280", "a search space is a non-empty mapping of config keys to ranges or choices.",
                          path=path, fix="e.g. `learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}`.")
    lines = {key.value: key.start_mark.line + 1 for key, _ in node.value}
    return parse_space(raw, source=str(path), lines=lines)


def default_space(config: TrainConfig) -> dict[str, Param]:
    """The default space, less the keys the base config makes meaningless or contradictory."""
    space = parse_space(DEFAULT_SPACE)
    if config.max_steps > 0:
        space.pop("num_epochs")  # max_steps overrides epochs
    if config.warmup_steps:
        space.pop("warmup_ratio")  # the config may hold one of warmup_steps or warmup_ratio
    if config.optimizer == "adam":
        space.pop("weight_decay")  # plain Adam has no decoupled weight decay
    return space


def trial_config(config: TrainConfig, params: dict, output: str | Path, metric: str,
                 source: str | None = None, line: int | None = None) -> TrainConfig:
    """The base config with a trial's values, its own output folder, and the searched metric selecting checkpoints."""
    values = {**config.model_dump(), **params, "output": str(output), "metric_for_best_model": metric}
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']} (got {e.get('input')!r})"
                             for e in exc.errors())
        raise ConfigError("E281", f"search values {params} make an invalid training config: {problems}.",
                          path=source, line=line, fix="narrow the range, or change the base config.") from None


def check_space(space: dict[str, Param], config: TrainConfig, source: str | None = None) -> None:
    """Every choice and both ends of every range must give a valid config: fail before the first trial, not during."""
    if "num_epochs" in space and config.max_steps > 0:
        raise ConfigError("E281", f"num_epochs is searched but max_steps ({config.max_steps}) overrides it.",
                          path=source, line=space["num_epochs"].line, fix="drop num_epochs or max_steps.")
    for param in space.values():
        for value in param.values_to_check():
            trial_config(config, {param.name: value}, config.output, config.metric_for_best_model, source, param.line)
