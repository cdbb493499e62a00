"""Hugging Face ``datasets``: a folder written by ``save_to_disk`` or a hub name.

Token classification needs a ``tokens`` column and a tag column (``ner_tags``, ``tags`` or any ``*_tags``);
text classification a text column (``text``, ``sentence``, ...) and a ``label`` column. ``ClassLabel`` ids
are turned into their names. An example's ``line`` is its 1-based row number in the split, and the corpus
path is ``SOURCE[split]``.
"""

from __future__ import annotations

from pathlib import Path

from tunecard.data.classification import LABEL_NAMES, PAIR_NAMES, TEXT_NAMES, _label_list
from tunecard.data.conll import make_token_corpus
from tunecard.data.example import (MULTI_LABEL_TASK, TEXT_TASK, TOKEN_TASK, Corpus, ReadOptions, TextExample,
                                   TokenExample)
from tunecard.data.textfile import preview
from tunecard.errors import DataError

SAVED_MARKERS = ("dataset_dict.json", "state.json", "dataset_info.json")


def is_saved_dataset(path: str | Path) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``.

    Args:
        path: the folder.
    """
    path = Path(path)
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS)


def read_hf(source: str | Path, options: ReadOptions | None = None, task: str | None = None) -> Corpus:
    """Read one split of a ``save_to_disk`` folder or of a hub dataset.

    Args:
        source: a ``save_to_disk`` folder, or a hub name for ``datasets.load_dataset``.
        options: ``split`` picks the split of a dataset with several; ``scheme`` and column names apply.
        task: ``token-classification`` or ``text-classification``; ``None`` means: from the columns.

    Raises:
        DataError: E112 hub dataset unavailable, E113 split missing or not chosen, E114 columns missing,
            E115 columns do not fit the task, E105 tags that are not tags, E103 empty split.
    """
    options = options or ReadOptions()
    dataset = _load(source, options.split)
    dataset, split = _pick_split(source, dataset, options.split)
    where = f"{source}[{split}]" if split else str(source)
    if len(dataset) == 0:
        raise DataError("E103", "empty split: the dataset has no rows", path=where, fix="choose another split.")
    columns = list(dataset.column_names)
    tag_column = _tag_column(columns, options)
    found_task = TOKEN_TASK if "tokens" in columns and tag_column else TEXT_TASK
    if task is not None and task != found_task:
        raise DataError("E115", f"the dataset has columns {columns}, which hold {found_task} data, not {task}",
                        path=where, fix="choose the task that fits the data, or another dataset.")
    if found_task == TOKEN_TASK:
        return _token_corpus(where, dataset, tag_column, options)
    return _text_corpus(where, dataset, columns, options)


def _load(source: str | Path, split: str | None):
    import datasets  # imported here: it is slow to import and only this reader needs it

    path = Path(source)
    if path.is_dir():
        if not is_saved_dataset(path):
            raise DataError("E108", "folder is not a datasets save_to_disk folder (no dataset_dict.json or "
                            "state.json)", path=path, fix="point to a data file, or to a folder written by "
                            "Dataset.save_to_disk / DatasetDict.save_to_disk.")
        try:
            return datasets.load_from_disk(str(path))
        except Exception as error:  # datasets raises many types for damaged folders
            raise DataError("E108", f"cannot load the saved dataset: {error}", path=path,
                            fix="save it again with save_to_disk.") from None
    try:
        return datasets.load_dataset(str(source), split=split)
    except Exception as error:  # offline, unknown name, gated, ...: all mean "not available here"
        raise DataError(
            "E112",
            f"not a local file or folder, and the hub dataset could not be loaded "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
            path=str(source),
            fix="check the path; to use a hub dataset offline, download it once with "
            "datasets.load_dataset(...).save_to_disk(FOLDER) and pass FOLDER, or export it to a local file.",
        ) from None


def _pick_split(source: str | Path, dataset, split: str | None):
    import datasets

    if not isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return dataset, split
    names = list(dataset)
    if split is not None:
        if split not in dataset:
            raise DataError("E113", f"split {split!r} not found; the dataset has {', '.join(names)}",
                            path=source, fix=f"pass --split with one of {', '.join(names)}.")
        return dataset[split], split
    if len(names) == 1:
        return dataset[names[0]], names[0]
    raise DataError("E113", f"the dataset has several splits ({', '.join(names)}); choose one", path=source,
                    fix=f"pass --split with one of {', '.join(names)}.")


def _tag_column(columns: list[str], options: ReadOptions) -> str | None:
    if isinstance(options.label_column, str) and options.label_column in columns and "tokens" in columns:
        return options.label_column
    for name in ("ner_tags", "tags"):
        if name in columns:
            return name
    return next((name for name in columns if name.endswith("_tags")), None)


def _class_names(feature) -> list[str] | None:
    """Names of a ClassLabel feature, or of the ClassLabel inside a list feature."""
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if hasattr(inner, "names") else None


def _token_corpus(where: str, dataset, tag_column: str, options: ReadOptions) -> Corpus:
    names = _class_names(dataset.features[tag_column])
    data = dataset.select_columns(["tokens", tag_column]).to_dict()
    examples = []
    for row, (tokens, tags) in enumerate(zip(data["tokens"], data[tag_column]), start=1):
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            raise DataError("E104", f"'tokens' must be a list of strings, found {preview(tokens)}", path=where,
                            line=row, fix="store the words of each row as a list of strings.")
        if not isinstance(tags, list):
            raise DataError("E104", f"{tag_column!r} must be a list of tags, found {preview(tags)}", path=where,
                            line=row, fix="store one tag per token as a list.")
        if names is not None:
            bad = next((tag for tag in tags if not (isinstance(tag, int) and 0 <= tag < len(names))), None)
            if bad is not None or None in tags:  # a -1 would silently index the last name
                raise DataError("E105", f"tag id {bad!r} has no name in {preview(names, 200)}", path=where, line=row,
                                fix="give every token a tag id of the column's ClassLabel.")
            tags = [names[tag] for tag in tags]
        elif any(isinstance(tag, int) for tag in tags):
            raise DataError("E105", f"column {tag_column!r} holds integer ids without ClassLabel names",
                            path=where, line=row, fix="cast the column to Sequence(ClassLabel(names=[...])) "
                            "before save_to_disk, or export tag names.")
        elif not all(isinstance(tag, str) for tag in tags):
            raise DataError("E105", f"tags must be strings, found {preview(tags)}", path=where, line=row,
                            fix="give every token a tag name (O, B-PER, ...).")
        if len(tags) != len(tokens):
            raise DataError("E109", f"{len(tokens)} tokens but {len(tags)} tags", path=where, line=row,
                            fix="give exactly one tag per token.")
        examples.append(TokenExample(tokens=list(tokens), tags=list(tags), line=row))
    return make_token_corpus(where, "hf", examples, options, [])


def _text_corpus(where: str, dataset, columns: list[str], options: ReadOptions) -> Corpus:
    text = _column(where, columns, options.text_column, TEXT_NAMES, "text")
    label = _column(where, columns, options.label_column, LABEL_NAMES, "label")
    pair = (_column(where, columns, options.text_pair_column, PAIR_NAMES, "text pair")
            if options.text_pair_column is not None else next((c for c in PAIR_NAMES if c in columns), None))
    names = _class_names(dataset.features[label])
    data = dataset.select_columns([c for c in (text, label, pair) if c]).to_dict()
    examples = []
    multi_label = any(isinstance(value, list) for value in data[label])  # a list of labels per row (go_emotions)
    for row, value in enumerate(data[label], start=1):
        name, labels = None, None
        if multi_label:  # the readers' one check of a label list; a plain value in such a column is a list of one
            labels = _label_list(where, row, value if isinstance(value, list) else [value], label, names=names)
        else:
            if names is not None and isinstance(value, int) and not 0 <= value < len(names):
                raise DataError("E104", f"label id {value} has no name (-1 marks an unlabelled example, as in GLUE "
                                "test splits)", path=where, line=row, fix="use a labelled split.")
            if value is None or isinstance(value, (list, dict)) or not str(value).strip():
                raise DataError("E104", f"label {preview(value)} is not a class name or id", path=where, line=row,
                                fix="give every example one label (a name or an integer id).")
            name = names[value] if names is not None and isinstance(value, int) else str(value)
        for column in (text, pair):
            if column and not isinstance(data[column][row - 1], str):
                raise DataError("E104", f"column {column!r} must hold text, found {preview(data[column][row - 1])}",
                                path=where, line=row, fix="store the text as a string in every row.")
        examples.append(TextExample(text=data[text][row - 1], label=name, line=row, labels=labels,
                                    text_pair=data[pair][row - 1] if pair else None))
    return Corpus(path=where, task=MULTI_LABEL_TASK if multi_label else TEXT_TASK, format="hf", examples=examples)


def _column(where: str, columns: list[str], spec: str | int | None, defaults: tuple[str, ...], what: str) -> str:
    if isinstance(spec, int):
        if not 0 <= spec < len(columns):
            raise DataError("E114", f"{what} column {spec} does not exist; columns are {columns}", path=where,
                            fix="pass a column name.")
        return columns[spec]
    for name in (spec,) if spec is not None else defaults:
        if name in columns:
            return name
    raise DataError("E114", f"no {what} column ({spec or ' / '.join(defaults)}); columns are {columns}",
                    path=where, fix=f"name it with --{what.replace(' ', '-')}-column.")
