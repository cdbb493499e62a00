"""Read a Markdown model card: the Hugging Face Trainer's layout (and tunecard's, which keeps it).

What is read: the YAML header (``model-index``, ``pipeline_tag``, tags), the "achieves the following
results" list, the Training hyperparameters list, the Training results table, the Framework versions list,
and tunecard's own extra tables (baselines, per-label results with predicted counts, label map).

Tolerated, because cards in the wild have them: centred (``|:---:|``) or plain (``|---|``) tables, tables
without leading / trailing pipes, ``No log`` cells, bold or percent values, extra metric columns, seqeval's
per-entity columns (``Loc Precision`` ... ``Overall F1``) and dict-valued cells or list items
(``- Loc: {'precision': 0.9, ...}``), rows with missing or extra cells. Nothing here raises on bad input:
whatever cannot be read is described in ``ParsedCard.unparsed``.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field

import yaml

from tunecard.data import TASK_ALIASES
from tunecard.data.example import MULTI_LABEL_TASK

NOLOG = {"no log", "nolog"}
EMPTY = {"", "-", "—", "–", "n/a", "na", "none", "null", "nan%"}
NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.(\d*))?|\.(\d+))(?:[eE][+-]?\d+)?")
METRIC_BASES = ("precision", "recall", "f1", "accuracy")
QUALIFIERS = ("overall", "micro", "macro", "weighted", "samples", "eval", "validation", "test", "mean", "avg")
LOSS_KEYS = ("training_loss", "validation_loss", "loss")
SYNONYMS = {
    "train_loss": "training_loss", "training_loss": "training_loss", "trainingloss": "training_loss",
    "eval_loss": "validation_loss", "val_loss": "validation_loss", "valid_loss": "validation_loss",
    "validation_loss": "validation_loss", "dev_loss": "validation_loss", "evaluation_loss": "validation_loss",
    "epochs": "epoch", "steps": "step", "global_step": "step",
    "f1_score": "f1", "f_1": "f1", "f1score": "f1", "fscore": "f1", "f_score": "f1", "f_measure": "f1",
    "acc": "accuracy", "accuracy_score": "accuracy", "prec": "precision", "rec": "recall",
}
VERSION_NAMES = {
    "transformers": "Transformers", "pytorch": "Pytorch", "torch": "Pytorch", "datasets": "Datasets",
    "tokenizers": "Tokenizers", "tunecard": "tunecard", "accelerate": "Accelerate", "peft": "Peft",
}


@dataclass
class Cell:
    """One value as printed in the card.

    kind: ``number`` | ``nolog`` | ``empty`` | ``nan`` | ``inf`` | ``text`` | ``dict``.
    """

    raw: str
    kind: str
    value: float | None = None  # numbers (percent signs already divided out), nan and inf
    decimals: int | None = None  # digits after the point as printed (None: exponent or integer)
    mapping: dict | None = None  # dict-valued cells

    @property
    def number(self) -> float | None:
        """The value when it is a finite number, else None."""
        return self.value if self.kind == "number" else None


def parse_value(raw: str) -> Cell:
    """Read one printed value: '0.9546', 'No log', '1e-05', '92.3%', '**0.95**', 'nan', "{'f1': 0.9}"."""
    text = str(raw).strip()
    s = text.strip("*`_ ").strip()
    low = s.lower()
    if low in NOLOG:
        return Cell(text, "nolog")
    if low in EMPTY:
        return Cell(text, "empty")
    if low in ("nan", "+nan", "-nan"):
        return Cell(text, "nan", float("nan"))
    if low in ("inf", "+inf", "infinity", "+infinity"):
        return Cell(text, "inf", float("inf"))
    if low in ("-inf", "-infinity"):
        return Cell(text, "inf", float("-inf"))
    if s.startswith("{") and s.endswith("}"):
        try:
            mapping = ast.literal_eval(s)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return Cell(text, "text")
        if isinstance(mapping, dict):
            return Cell(text, "dict", mapping={str(k): v for k, v in mapping.items()})
        return Cell(text, "text")
    match = NUMBER.match(s)
    if not match:
        return Cell(text, "text")
    rest = s[match.end():].strip()
    number = match.group(0)
    try:
        value = float(number)
    except ValueError:
        return Cell(text, "text")
    if not math.isfinite(value):
        return Cell(text, "inf", value)
    decimals = None
    if "e" not in number.lower():
        fraction = match.group(1) if match.group(1) is not None else match.group(2)
        decimals = len(fraction) if fraction else (0 if "." in number else None)
    if rest.startswith("%"):
        value /= 100.0
        decimals = decimals + 2 if decimals is not None else 2
        rest = rest[1:].strip()
    # '0.95 ± 0.01', '0.95 (best)' keep the leading number; '12abc' is text.
    if rest and not re.match(r"^(\(|±|\+/-|\+-|\[|/)", rest):
        return Cell(text, "text")
    return Cell(text, "number", value, decimals)


def cell_from_python(value) -> Cell:
    """A Cell for a value read from YAML or a dict literal."""
    if isinstance(value, bool) or value is None:
        return Cell(str(value), "text")
    if isinstance(value, (int, float)):
        value = float(value)
        if math.isnan(value):
            return Cell("nan", "nan", value)
        if math.isinf(value):
            return Cell(str(value), "inf", value)
        return Cell(repr(value), "number", value, None)
    return parse_value(str(value))


def unwrap_named(cell: Cell, key: str) -> Cell:
    """`evaluate`'s compute() result printed as is: 'F1: {'f1': 0.8669}' is the number (one item named as its
    column); a dict of several items or another name ('Loc: {'f1': 0.9}') is left to the caller."""
    if cell.kind != "dict" or len(cell.mapping) != 1:
        return cell
    ((name, value),) = cell.mapping.items()
    if norm_key(name) != key or isinstance(value, bool) or not isinstance(value, (int, float)):
        return cell
    inner = cell_from_python(value)
    return Cell(cell.raw, inner.kind, inner.value, inner.decimals)


def norm_key(name: str) -> str:
    """'Validation Loss' -> 'validation_loss', 'Overall F1' -> 'overall_f1', 'eval_f1' -> 'f1'."""
    s = re.sub(r"[*`]", "", str(name)).strip()
    s = re.sub(r"[^0-9A-Za-z]+", "_", s).strip("_").lower()
    if s.startswith("eval_") and s != "eval_loss":
        s = s[5:]
    if s in SYNONYMS:
        return SYNONYMS[s]
    parts = [SYNONYMS.get(p, p) if SYNONYMS.get(p, p) in METRIC_BASES else p for p in s.split("_")]
    if len(parts) > 1 and parts[-1] == "score" and parts[-2] in METRIC_BASES:
        parts = parts[:-1]
    return "_".join(parts)


TRAINING_PREFIXES = ("train", "training")


def metric_base(key: str) -> str | None:
    """'loc_f1' -> 'f1', 'overall_precision' -> 'precision', 'loc_number' -> None.

    A score of the training set ('train_accuracy' beside 'validation_accuracy' in a Keras card) is no evaluation
    score: None."""
    parts = key.split("_")
    if len(parts) > 1 and parts[0] in TRAINING_PREFIXES:
        return None
    for base in METRIC_BASES:
        if base in parts:
            return base
    return None


def entity_of(key: str) -> str | None:
    """The entity type of a per-entity column ('loc_f1' -> 'loc'); None for overall / averaged / plain."""
    base = metric_base(key) or ("number" if key.endswith("_number") else None)
    if base is None:
        return None
    parts = key.split("_")
    index = parts.index(base)
    prefix = parts[:index]
    if not prefix or prefix[0] in QUALIFIERS or parts[index + 1:]:
        return None
    return "_".join(prefix)


def main_metric_keys(keys) -> dict[str, str]:
    """For each of precision / recall / f1 / accuracy, the column that holds the headline value.

    Order: the plain name, seqeval's overall_*, micro, then macro / weighted averages.
    """
    keys = list(keys)
    found = {}
    for base in METRIC_BASES:
        for candidate in (base, f"overall_{base}", f"micro_{base}", f"{base}_micro", f"macro_{base}",
                          f"{base}_macro", f"weighted_{base}", f"{base}_weighted"):
            if candidate in keys:
                found[base] = candidate
                break
    return found


def averaging(key: str) -> str | None:
    """'macro' / 'weighted' / 'micro' / 'samples' when the column name says it, else None."""
    for qualifier in ("macro", "weighted", "micro", "samples"):
        if qualifier in key.split("_"):
            return qualifier
    return None


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    line: int  # 1-based line of the header in the card


@dataclass
class ResultsTable:
    """The Training results table: one dict per row, normalized column key -> Cell."""

    columns: list[str]  # as printed
    keys: list[str]  # normalized
    rows: list[dict[str, Cell]]
    line: int
    marked: int | None = None  # index of the row marked ✓ (tunecard's "Saved" column)

    def values(self, key: str) -> list[Cell | None]:
        return [row.get(key) for row in self.rows]


@dataclass
class ParsedCard:
    meta: dict = field(default_factory=dict)
    task: str | None = None  # "token-classification", "text-classification", "regression" or None
    headline: dict[str, Cell] = field(default_factory=dict)  # normalized key -> value ('loss' is validation loss)
    headline_names: dict[str, str] = field(default_factory=dict)  # normalized key -> name as printed
    model_index: list[dict] = field(default_factory=list)  # [{"split", "dataset", "task", "metrics": {type: value}}]
    hyperparameters: dict[str, str] = field(default_factory=dict)
    table: ResultsTable | None = None
    versions: dict[str, str] = field(default_factory=dict)
    baselines: list[dict] = field(default_factory=list)  # tunecard: {"split", "predictor", "is_model", "metrics"}
    per_label: dict[str, dict[str, Cell]] = field(default_factory=dict)  # tunecard validation per-label table
    labels: list[str] = field(default_factory=list)  # tunecard label map
    data_examples: dict[str, float] = field(default_factory=dict)  # tunecard data table: split -> examples
    is_tunecard: bool = False
    unparsed: list[str] = field(default_factory=list)

    def hyper_float(self, *names: str) -> float | None:
        for name in names:
            if name in self.hyperparameters:
                cell = parse_value(self.hyperparameters[name])
                if cell.kind == "number":
                    return cell.value
        return None

    def summary(self) -> dict:
        return {
            "task": self.task,
            "tunecard_card": self.is_tunecard,
            "headline": list(self.headline),
            "hyperparameters": list(self.hyperparameters),
            "results_rows": len(self.table.rows) if self.table else 0,
            "results_columns": list(self.table.columns) if self.table else [],
            "versions": dict(self.versions),
        }


# ---------------------------------------------------------------------------------------------------------
# Markdown structure

FRONT_MATTER = re.compile(r"\A\ufeff?[ \t]*---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*$", re.S | re.M)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SEPARATOR_CELL = re.compile(r"^:?-+:?$")
LIST_ITEM = re.compile(r"^\s*[-*+]\s+(.*)$")


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(YAML text or None, body, number of lines before the body)."""
    match = FRONT_MATTER.match(text)
    if not match:
        return None, text, 0
    return match.group(1), text[match.end():], text[: match.end()].count("\n")


def split_row(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", s)]


def is_separator(line: str) -> bool:
    if "-" not in line:
        return False
    cells = split_row(line)
    return bool(cells) and all(SEPARATOR_CELL.match(c.replace(" ", "")) for c in cells if c != "") and \
        any(c for c in cells)


def mask_code_blocks(lines: list[str]) -> list[str]:
    """Lines inside ``` / ~~~ fences replaced by '' so that '# comments' are not headings."""
    out, fence = [], None
    for line in lines:
        stripped = line.strip()
        marker = stripped[:3]
        if fence is None and marker in ("```", "~~~"):
            fence = marker
            out.append("")
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            out.append("")
            continue
        out.append(line)
    return out


def headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every heading."""
    found = []
    for i, line in enumerate(lines):
        match = HEADING.match(line)
        if match:
            found.append((i, len(match.group(1)), match.group(2).strip()))
    return found


def section(lines: list[str], pattern: str) -> tuple[int, int] | None:
    """(start, end) line indices of the body of the first heading matching ``pattern`` (case-insensitive)."""
    heads = headings(lines)
    for n, (i, _level, title) in enumerate(heads):
        if re.search(pattern, title, re.I):
            end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)  # any heading ends a section's text
            return i + 1, end
    return None


def tables(lines: list[str], start: int = 0, end: int | None = None) -> list[Table]:
    """Pipe tables (with or without outer pipes) between two line indices."""
    end = len(lines) if end is None else end
    found = []
    i = start
    while i < end - 1:
        line = lines[i]
        if "|" in line and is_separator(lines[i + 1]) and not is_separator(line):
            columns = split_row(line)
            rows = []
            j = i + 2
            while j < end and "|" in lines[j] and lines[j].strip() and not HEADING.match(lines[j]):
                rows.append(split_row(lines[j]))
                j += 1
            found.append(Table(columns, rows, i + 1))
            i = j
        else:
            i += 1
    return found


# ---------------------------------------------------------------------------------------------------------
# The parts of a card


def parse_card(text: str) -> ParsedCard:
    """Read everything the checks use from a card's text; never raises."""
    card = ParsedCard()
    if text is None:
        text = ""
    if not isinstance(text, str):
        text = str(text)
    if "\x00" in text:
        card.unparsed.append("the file is binary (NUL bytes), not a Markdown card")
        text = text.replace("\x00", "")
    if not text.strip():
        card.unparsed.append("the card is empty")
        return card
    yaml_text, body, offset = split_front_matter(text)
    _read_meta(card, yaml_text)
    raw_lines = body.splitlines()
    lines = mask_code_blocks(raw_lines)
    card.is_tunecard = card.is_tunecard or "generated by tunecard" in body
    for step in (_read_headline, _read_hyperparameters, _read_results, _read_versions, _read_tunecard_tables):
        try:
            step(card, lines, offset)
        except Exception as error:  # a parser bug must not stop the doctor; say what could not be read
            card.unparsed.append(f"{step.__name__.removeprefix('_read_')}: could not be read ({type(error).__name__}: {error})")
    try:
        _unprefix_scores(card)
    except Exception as error:
        card.unparsed.append(f"score columns: could not be read ({type(error).__name__}: {error})")
    card.task = _infer_task(card)
    return card


def _rename(card: ParsedCard, renames: dict[str, str]) -> None:
    if not renames:
        return
    if card.table:
        card.table.keys = [renames.get(k, k) for k in card.table.keys]
        card.table.rows = [{renames.get(k, k): c for k, c in row.items()} for row in card.table.rows]
    card.headline = {renames.get(k, k): c for k, c in card.headline.items()}
    card.headline_names = {renames.get(k, k): n for k, n in card.headline_names.items()}


def _unprefix_scores(card: ParsedCard) -> None:
    """Score columns whose name carries a prefix that is not an entity type, read under their plain name.

    - 'Validation Accuracy' (a Keras card, beside 'Train Accuracy') is the accuracy.
    - A Keras card's 'Train F1' with a 'Validation Loss' and no 'Validation F1' is the KerasMetricCallback's score,
      computed on the evaluation set (Keras names every callback metric as a training one): the F1.
    - A multi-task model's 'Cls Accuracy', 'Cls F1' ... (one prefix whose group has an accuracy, which seqeval's
      per-type columns never have, and no plain score column): the classifier's scores.
    Nothing is renamed onto a column that exists already."""
    keys = list(dict.fromkeys((card.table.keys if card.table else []) + list(card.headline)))
    taken = set(keys)
    renames: dict[str, str] = {}

    def rename(old: str, new: str) -> None:
        if new and new not in taken and old not in renames:
            renames[old] = new
            taken.add(new)

    for key in keys:
        if key.startswith("validation_") and key != "validation_loss":
            rename(key, key[len("validation_"):])
    columns = [c.strip() for c in (card.table.columns if card.table else [])]
    tags = card.meta.get("tags")
    keras = (any(re.fullmatch(r"train\s+loss", c, re.I) for c in columns)
             or isinstance(tags, list) and "generated_from_keras_callback" in map(str, tags))
    if keras and "validation_loss" in keys:
        for key in keys:
            parts = key.split("_")
            if len(parts) > 1 and parts[0] in TRAINING_PREFIXES and key != "training_loss":
                rest = "_".join(parts[1:])
                if f"validation_{rest}" not in keys and "loss" not in parts:
                    rename(key, rest)
    _rename(card, renames)
    keys = [renames.get(k, k) for k in keys]
    if main_metric_keys(keys):
        return
    groups: dict[str, list[str]] = {}
    for key in keys:
        prefix = entity_of(key)
        if prefix:
            groups.setdefault(prefix, []).append(key)
    task_groups = [p for p, ks in groups.items() if any(metric_base(k) == "accuracy" for k in ks)]
    if len(task_groups) == 1:
        prefix = task_groups[0]
        taken = set(keys)
        renames = {}
        for key in groups[prefix]:
            rename(key, key[len(prefix) + 1:])
        _rename(card, renames)


def _read_meta(card: ParsedCard, yaml_text: str | None) -> None:
    if yaml_text is None:
        card.unparsed.append("no YAML header (--- ... --- at the top): no model-index, tags or pipeline_tag")
        return
    try:
        meta = yaml.safe_load(yaml_text)
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        card.unparsed.append(f"YAML header: not valid YAML ({first})")
        return
    if meta is None:
        return
    if not isinstance(meta, dict):
        card.unparsed.append(f"YAML header: a {type(meta).__name__}, not a mapping")
        return
    card.meta = meta
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    card.is_tunecard = "tunecard" in [str(t) for t in tags] if isinstance(tags, list) else False
    # the Trainer of 2021 (transformers 4.9-4.10) wrote `model_index:`, one `metric:` mapping per result, and
    # `model-index: {name: ...}` without results
    index = meta.get("model-index", meta.get("model_index"))
    if index is None:
        return
    if isinstance(index, dict):
        index = [index]
    try:
        for model in index:
            for result in model.get("results") or []:
                if "metrics" not in result and isinstance(result.get("metric"), dict):
                    result = {**result, "metrics": [result["metric"]]}
                task = (result.get("task") or {}).get("type")
                dataset = result.get("dataset") or {}
                metrics, ambiguous = {}, set()
                verified = any(isinstance(m, dict) and m.get("verified") for m in result.get("metrics") or [])
                for metric in result.get("metrics") or []:
                    key = norm_key(metric.get("type") or metric.get("name") or "")
                    if key in metrics:  # several F1s (per entity type, per subset) under one type: which is which?
                        ambiguous.add(key)
                    elif key:
                        metrics[key] = cell_from_python(metric.get("value"))
                metrics = {k: v for k, v in metrics.items() if k not in ambiguous}
                card.model_index.append({"task": task, "dataset": dataset.get("name"),
                                         "split": dataset.get("split"), "metrics": metrics, "verified": verified})
    except (AttributeError, TypeError):
        card.unparsed.append("YAML header: model-index is not a list of {results: [{task, dataset, metrics}]}")


def _split_item(item: str) -> tuple[str, str] | None:
    """'Loss: 0.06' -> ('Loss', '0.06'); 'Transformers 4.31.0' is not an item of this kind."""
    if ":" not in item:
        return None
    name, value = item.split(":", 1)
    name = name.strip().strip("*`").strip()
    if not name or len(name) > 80:
        return None
    return name, value.strip()


def _read_headline(card: ParsedCard, lines: list[str], offset: int) -> None:
    start = next((i for i, line in enumerate(lines) if re.search(r"achieves the following results", line, re.I)),
                 None)
    if start is None:
        card.unparsed.append("headline results: no 'achieves the following results' list")
        return
    items_started = False
    bad = []
    for line in lines[start + 1:]:
        if not line.strip():
            if items_started:
                break
            continue
        if HEADING.match(line):
            break
        match = LIST_ITEM.match(line)
        if not match:
            if items_started:
                break
            # the list may follow on the same paragraph after a sentence; anything else ends the search
            break
        items_started = True
        item = _split_item(match.group(1))
        if item is None:
            bad.append(match.group(1).strip())
            continue
        name, value = item
        key = norm_key(name)
        cell = unwrap_named(parse_value(value), key)
        if key == "validation_loss":
            key = "loss"
        if cell.kind == "dict":
            for sub, sub_value in cell.mapping.items():
                sub_key = norm_key(f"{name} {sub}")
                card.headline[sub_key] = cell_from_python(sub_value)
                card.headline_names[sub_key] = f"{name} {sub}"
            continue
        card.headline[key] = cell
        card.headline_names[key] = name
    if not items_started:
        card.unparsed.append(f"headline results: line {start + 1 + offset} says 'achieves the following results' "
                             "but no '- Name: value' list follows")
    for item in bad:
        card.unparsed.append(f"headline results: item '{item[:60]}' is not 'Name: value'")
    for key, cell in card.headline.items():
        if cell.kind == "text":
            card.unparsed.append(f"headline results: '{card.headline_names[key]}' = '{cell.raw[:40]}' is not a number")


def _read_hyperparameters(card: ParsedCard, lines: list[str], offset: int) -> None:
    span = section(lines, r"hyper-?parameters")
    candidates = range(*span) if span else range(len(lines))
    for i in candidates:
        match = LIST_ITEM.match(lines[i])
        if not match:
            continue
        item = _split_item(match.group(1))
        if item is None:
            continue
        name, value = item
        key = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
        if span or key in ("learning_rate", "train_batch_size", "num_epochs", "total_train_batch_size",
                           "gradient_accumulation_steps", "training_steps"):
            card.hyperparameters[key] = value
    if not card.hyperparameters:
        card.unparsed.append("training hyperparameters: no '- learning_rate: ...' list")


def _cells_for(columns: list[str], row: list[str], where: str, card: ParsedCard) -> list[str]:
    if len(row) < len(columns):
        card.unparsed.append(f"{where}: {len(row)} cells for {len(columns)} columns; the missing "
                             f"{', '.join(columns[len(row):])} read as empty")
        row = row + [""] * (len(columns) - len(row))
    elif len(row) > len(columns):
        extra = [c for c in row[len(columns):] if c]
        if extra:
            card.unparsed.append(f"{where}: {len(row)} cells for {len(columns)} columns; extra cells ignored")
        row = row[: len(columns)]
    return row


def _is_results_table(keys: list[str]) -> bool:
    return ("epoch" in keys or "step" in keys) and any("loss" in k for k in keys)


RESULTS_HEADINGS = (r"training results", r"evaluation results|^results$|results")


def _results_table(lines: list[str], offset: int, card: ParsedCard) -> Table | None:
    """The Training results table, wherever it is.

    A heading "Training results" is looked at first, then any other heading with "results" in it; within them the
    first table that looks like training results (an Epoch or Step column and a loss) wins. A card's title can be
    `# results` (the Trainer's default output folder is its name): that heading holds no table and is passed over.
    Failing that, any such table in the card, then the first table under a "Training results" heading.
    """
    heads = headings(lines)
    empty_heading = None
    first_under_training = None
    for pattern in RESULTS_HEADINGS:
        for n, (i, _level, title) in enumerate(heads):
            if not re.search(pattern, title, re.I):
                continue
            end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
            found = tables(lines, i + 1, end)
            for table in found:
                if _is_results_table([norm_key(c) for c in table.columns]):
                    return table
            if pattern == RESULTS_HEADINGS[0]:
                if found and first_under_training is None:
                    first_under_training = found[0]
                elif not found and empty_heading is None:
                    empty_heading = i
    for table in tables(lines):
        if _is_results_table([norm_key(c) for c in table.columns]):
            return table
    if first_under_training is not None:
        return first_under_training
    if empty_heading is not None:
        card.unparsed.append(f"training results: line {empty_heading + 1 + offset} has the heading but no table "
                             "under it")
    else:
        card.unparsed.append("training results: no table (Training Loss | Epoch | Step | Validation Loss | ...)")
    return None


def _read_results(card: ParsedCard, lines: list[str], offset: int) -> None:
    chosen = _results_table(lines, offset, card)
    if chosen is None:
        return
    keys = [norm_key(c) or f"column_{n + 1}" for n, c in enumerate(chosen.columns)]
    results = ResultsTable(list(chosen.columns), keys, [], chosen.line + offset)
    extra_keys: list[str] = []
    for n, row in enumerate(chosen.rows):
        where = f"training results row {n + 1} (line {chosen.line + offset + n + 2})"
        row = _cells_for(chosen.columns, row, where, card)
        cells: dict[str, Cell] = {}
        for key, column, raw in zip(keys, chosen.columns, row):
            if key == "saved":
                if raw.strip() and raw.strip() not in ("-", "—"):
                    results.marked = n
                cells[key] = Cell(raw, "text")
                continue
            cell = unwrap_named(parse_value(raw), key)
            if cell.kind == "dict":
                for sub, value in cell.mapping.items():
                    sub_key = norm_key(f"{column} {sub}")
                    cells[sub_key] = cell_from_python(value)
                    if sub_key not in keys and sub_key not in extra_keys:
                        extra_keys.append(sub_key)
            cells[key] = cell
            if cell.kind == "text" and raw.strip():
                card.unparsed.append(f"{where}: {column} = '{raw[:40]}' is not a number")
        results.rows.append(cells)
    results.keys = keys + extra_keys
    if not results.rows:
        card.unparsed.append(f"training results: the table at line {results.line} has no rows")
    card.table = results


def _read_versions(card: ParsedCard, lines: list[str], offset: int) -> None:
    span = section(lines, r"framework versions|versions")
    candidates = range(*span) if span else range(len(lines))
    for i in candidates:
        match = LIST_ITEM.match(lines[i])
        if not match:
            continue
        m = re.match(r"^([A-Za-z][\w.-]*)\s*:?\s*v?(\d+(?:\.\w+)*\S*)", match.group(1).strip())
        if m and m.group(1).lower() in VERSION_NAMES:
            card.versions[VERSION_NAMES[m.group(1).lower()]] = m.group(2)
    if not card.versions:
        card.unparsed.append("framework versions: no '- Transformers 4.x' list")


def _read_tunecard_tables(card: ParsedCard, lines: list[str], offset: int) -> None:
    for table in tables(lines):
        keys = [norm_key(c) for c in table.columns]
        if keys[:2] == ["split", "predictor"]:
            for row in table.rows:
                row = row + [""] * (len(keys) - len(row))
                predictor = row[1].strip("* ")
                metrics = {k: parse_value(v) for k, v in zip(keys[2:], row[2:])}
                card.baselines.append({"split": row[0], "predictor": predictor,
                                       "is_model": "this model" in predictor.lower(), "metrics": metrics})
        elif keys and keys[0] in ("entity_type", "label") and "predicted" in keys and not card.per_label:
            for row in table.rows:
                row = row + [""] * (len(keys) - len(row))
                card.per_label[row[0]] = {k: parse_value(v) for k, v in zip(keys[1:], row[1:])}
        elif keys and keys[0] == "split" and "examples" in keys and not card.data_examples:
            column = keys.index("examples")
            for row in table.rows:
                if len(row) > column and parse_value(row[column]).number is not None:
                    card.data_examples[row[0]] = parse_value(row[column]).number
        elif keys == ["id", "label"] and not card.labels:
            card.labels = [row[1] for row in table.rows if len(row) > 1]


REGRESSION_KEYS = ("mse", "rmse", "mae", "r2", "r_squared", "pearson", "pearsonr", "spearman", "spearmanr",
                   "combined_score", "explained_variance", "mape", "msev")


def is_regression(keys) -> bool:
    """Columns of a regression model (MSE, R2, Pearson ...) and none of a classifier's precision / recall / F1."""
    keys = list(keys)
    return any(k in REGRESSION_KEYS for k in keys) and not any(metric_base(k) in ("precision", "recall", "f1")
                                                                for k in keys)


# A card's tag or task naming a multi-label model: every spelling of the readers' one task table (a hub card's
# pipeline tag of such a model is text-classification, so only its own tags tell). A tuple, not a set: a hand-written
# card's pipeline_tag or model-index task may be a list or a mapping, which a set cannot be asked about.
MULTI_LABEL_NAMES = tuple(name for name, task in TASK_ALIASES.items() if task == MULTI_LABEL_TASK)


def _infer_task(card: ParsedCard) -> str | None:
    meta = card.meta
    keys = list(card.headline) + (card.table.keys if card.table else [])
    if is_regression(keys):
        return "regression"  # GLUE STS-B cards say text-classification: the columns decide
    tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
    named = [meta.get("pipeline_tag")] + [m.get("task") for m in card.model_index] + [str(t) for t in tags]
    # in this order: multi-label before text-classification, as a multi-label model's pipeline tag is that one
    for names, task in ((("token-classification", "ner"), "token-classification"),
                        (MULTI_LABEL_NAMES, MULTI_LABEL_TASK),
                        (("text-classification", "sentiment-analysis", "zero-shot-classification"),
                         "text-classification")):
        if any(value in names for value in named):
            return task
    if any(k.startswith("overall_") for k in keys) or any(entity_of(k) for k in keys):
        return "token-classification"
    if card.labels and any(label.startswith(("B-", "I-")) for label in card.labels):
        return "token-classification"
    return None
