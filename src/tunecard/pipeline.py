"""Fine-tune an encoder: read → validate → encode → train (transformers Trainer) → evaluate → write the run.

`train(config)` is the whole path; the CLI only builds the config. The run folder holds the best checkpoint
(save_pretrained, safetensors), train_config.yaml, history.json, metrics.json and the model card.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.markup import escape
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerState, TrainingArguments, set_seed
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import EvalLoopOutput

from tunecard import environment
from tunecard.config import SpeedOptions, TrainConfig
from tunecard.data import read_corpus
from tunecard.data.example import Corpus
from tunecard.data.stats import corpus_stats
from tunecard.data.validate import validate_splits
from tunecard.doctor import leakage_counts
from tunecard.encoding.batching import SORTED_PAD_TO_MULTIPLE_OF, FeatureDataset, PadCollator
from tunecard.encoding.encoder import Encoder, EncodingStats
from tunecard.encoding.models import load_model, load_tokenizer, note_unknown_words
from tunecard.encoding.sampling import BucketedRandomSampler
from tunecard.errors import ConfigError
from tunecard.metrics import all_o_baseline, majority_baseline, majority_tag_baseline
from tunecard.reporting.card import write_card
from tunecard.reporting.plots import write_plots
from tunecard.speed import bf16_weights, sparse_embedding
from tunecard.speed.attention import restore_attention, use_fast_attention_dropout, use_tunecard_attention
from tunecard.speed.dropout import use_fast_dropout
from tunecard.speed.fused_qkv import fuse_qkv, unfuse_qkv
from tunecard.speed.packing import PACKED, PADDED, PADDING_FREE, REFUSED, choose_collator, stop_reading_first_tokens
from tunecard.training.checkpoint import CheckpointKeeper, find_resume, last_checkpoint, prepare_folder, restore
from tunecard.training.distributed import backend, broadcast_from_main, is_main_process, world_size
from tunecard.training.evaluate import RECHECK_MARGIN, evaluate_features, table_metrics
from tunecard.training.outputs import RunFolder
from tunecard.training.recorder import ProgressBar, RunRecorder

SPLITS = ("train", "validation", "test")


@contextlib.contextmanager
def long_lived_objects_frozen():
    """The block runs with every object that exists now out of the garbage collector's sight (`gc.freeze`).

    The process holds about 470,000 tracked objects before training (mostly the imported libraries' functions,
    types and dicts, then the data), none of which training frees. The Trainer starts with a full collection
    (accelerate's `free_memory`), which walked them all: 0.19 s of a 20 s MiniLM run on the AMX Xeon. Frozen,
    they are skipped by it and by the collections during training; refcounting still frees what they drop, and
    they are handed back to the collector afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class RunResult:
    output: Path
    history: dict
    metrics: dict
    main_process: bool = True  # False in the other ranks of a distributed run: they write nothing


def label_names(corpus: Corpus) -> list[str]:
    """The model's label set, from the training data: O, then B-/I- per entity type; or the sorted classes."""
    if corpus.task == "token-classification":
        return ["O"] + [f"{prefix}-{etype}" for etype in corpus.entity_types for prefix in ("B", "I")]
    labels = corpus.labels
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return labels


def check_positive_label(positive_label: str | None, labels: list[str], is_ner: bool) -> None:
    """Fail before training, not at the first evaluation, when positive_label cannot apply."""
    if positive_label is None:
        return
    if is_ner or len(labels) != 2:
        raise ConfigError("E208", f"positive_label {positive_label!r} applies to binary classification only; this "
                          f"task has labels {labels[:10]}.", fix="remove positive_label.")
    if positive_label not in labels:
        raise ConfigError("E208", f"positive_label {positive_label!r} is not one of the labels {labels}.",
                          fix=f"use one of {labels}.")


def read_splits(config: TrainConfig) -> dict[str, Corpus]:
    """Read and cross-check the splits named in the config (train required; validation strongly advised)."""
    if not config.train:
        raise ConfigError("E207", "no training data given.", fix="pass --train FILE (or `train:` in the config).")
    options = config.read_options()
    corpora = {}
    for split in SPLITS:
        path = getattr(config, split)
        if path:
            corpus = read_corpus(path, options, task=config.task)
            limit = config.max_train_examples if split == "train" else config.max_eval_examples
            if limit is not None and len(corpus.examples) > limit:
                corpus.examples = corpus.examples[:limit]
                corpus.warnings.append(f"using the first {limit} examples (max_{'train' if split == 'train' else 'eval'}_examples)")
            corpora[split] = corpus
    validate_splits(corpora["train"], {k: v for k, v in corpora.items() if k != "train"})
    return corpora


def _texts(corpus: Corpus) -> list:
    if corpus.task == "token-classification":
        return [ex.tokens for ex in corpus.examples]
    return [ex.text if ex.text_pair is None else f"{ex.text} [SEP] {ex.text_pair}" for ex in corpus.examples]


def data_report(corpora: dict[str, Corpus], encoding_stats: dict[str, dict]) -> dict:
    """Per split: the reader's statistics, what encoding did, and examples duplicated from training."""
    train_texts = _texts(corpora["train"])
    report = {}
    for split, corpus in corpora.items():
        report[split] = {**corpus_stats(corpus), "encoding": encoding_stats[split], "path": corpus.path,
                         "scheme": corpus.scheme, "repaired": corpus.repaired, "warnings": corpus.warnings}
        if split != "train":
            report[split]["leakage"] = leakage_counts(train_texts, _texts(corpus))
    return report


def compute_baselines(corpora: dict[str, Corpus], positive_label: str | None) -> dict:
    train = corpora["train"]
    baselines = {}
    for split, corpus in corpora.items():
        if split == "train":
            continue
        if corpus.task == "token-classification":
            gold = [ex.tags for ex in corpus.examples]
            baselines[split] = {
                "all_o": all_o_baseline(gold),
                "majority_tag": majority_tag_baseline(
                    [ex.tokens for ex in train.examples], [ex.tags for ex in train.examples],
                    [ex.tokens for ex in corpus.examples], gold,
                ),
            }
        else:
            baselines[split] = {
                "majority": majority_baseline([ex.label for ex in train.examples], [ex.label for ex in corpus.examples],
                                              positive_label=positive_label)
            }
    return baselines


class TunecardTrainer(Trainer):
    """The Trainer with tunecard's evaluation: length-sorted, streamed, scored on words with the project's scorers."""

    def __init__(self, *args, recorder: RunRecorder, task: str, id2label: dict, collator: PadCollator, bf16: bool,
                 positive_label: str | None, train_sampling: str = "random", head_learning_rate: float | None = None,
                 packed=None, sparse_rows: bool = False, bf16_copies: bf16_weights.Bf16Weights | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.bf16_copies = bf16_copies
        self.head_learning_rate = head_learning_rate
        self.train_sampling = train_sampling
        self.recorder = recorder
        self.task = task
        self.id2label = id2label
        self.pad_collator = collator
        self.eval_bf16 = bf16
        self.eval_packed = packed
        self.sparse_rows = sparse_rows
        self.positive_label = positive_label
        self.remove_callback(ProgressCallback)
        self.remove_callback(PrinterCallback)

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the new classification head in groups of their own at `head_learning_rate`.

        The head starts from random weights while the encoder is pre-trained: a short run at the encoder's small
        learning rate leaves the head under-trained (measured in docs/training.md).
        """
        optimizer = super().create_optimizer(model)
        if self.bf16_copies is not None:
            self.bf16_copies.watch(optimizer)
        if self.head_learning_rate is None or self.head_learning_rate == self.args.learning_rate:
            return optimizer
        opt_model = self.model if model is None else model
        body_prefix = opt_model.base_model_prefix + "."
        head_ids = {id(p) for name, p in opt_model.named_parameters() if not name.startswith(body_prefix)}
        head_groups = []
        for group in optimizer.param_groups:  # the optimizer has no state yet: regrouping is safe
            head = [p for p in group["params"] if id(p) in head_ids]
            group["params"] = [p for p in group["params"] if id(p) not in head_ids]
            if head:
                head_groups.append({**group, "params": head, "lr": self.head_learning_rate})
        optimizer.param_groups = [group for group in optimizer.param_groups if group["params"]]
        for group in head_groups:
            optimizer.add_param_group(group)
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.bf16_copies is None:
            return super().training_step(model, inputs, num_items_in_batch)
        self.bf16_copies.before_forward()
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.bf16_copies.after_backward()
        return loss

    def _clip_grad_norm(self, model):
        # torch's clip_grad_norm_ refuses the word embedding's sparse gradient (sparse_embedding.py).
        if self.sparse_rows:  # the dense gradients are scaled inside the optimizer's fused step
            optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate wraps it
            fused = isinstance(optimizer, sparse_embedding.SparseRowsAdamW) and optimizer.defaults["fused"]
            return sparse_embedding.clip_grad_norm_(model.parameters(), self.args.max_grad_norm,
                                                    optimizer if fused else None)
        return super()._clip_grad_norm(model)

    def _save_optimizer_and_scheduler(self, output_dir):
        # The checkpoint after the last step resumes only the writing of the run folder: no step will read the
        # optimizer's moments (twice the model's size; 0.65 s of a 25 s run on 3000 CoNLL-2003 sentences).
        # Resuming without them is the Trainer's own path for a checkpoint that lacks them.
        if self.state.max_steps and self.state.global_step >= self.state.max_steps:
            return
        super()._save_optimizer_and_scheduler(output_dir)

    def floating_point_ops(self, inputs) -> int:
        # The Trainer's count, with the parameters counted once: its own walks every module at every step (1.1 ms
        # of a 100 ms CPU step on MiniLM), and training does not change how many parameters the model has.
        if getattr(self, "_flos_parameters", None) is None:
            self._flos_parameters = (self.model.num_parameters(exclude_embeddings=True)
                                     if hasattr(self.model, "num_parameters") else 0)
        main_input = getattr(self.model, "main_input_name", "input_ids")
        return 6 * inputs[main_input].numel() * self._flos_parameters if main_input in inputs else 0

    def _get_train_sampler(self, train_dataset=None):
        if self.train_sampling == "bucketed":
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            return BucketedRandomSampler(dataset.lengths(), self.args.per_device_train_batch_size, seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        dataset: FeatureDataset = dataloader.dataset
        started = time.perf_counter()
        details = evaluate_features(
            self.model, dataset.features, dataset.examples, task=self.task, id2label=self.id2label,
            collator=self.pad_collator, batch_size=self.args.per_device_eval_batch_size, bf16=self.eval_bf16,
            positive_label=self.positive_label, packed=self.eval_packed, recheck_margin=RECHECK_MARGIN,
        )
        details = broadcast_from_main(details)  # distributed: every rank acts on rank 0's numbers
        self.recorder.details = details
        self.recorder.evaluation_seconds += time.perf_counter() - started
        self.model.train()
        metrics = {f"{metric_key_prefix}_loss": details["loss"]}
        for key in table_metrics(self.task):
            metrics[f"{metric_key_prefix}_{key}"] = details[key]
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=len(dataset))


def training_arguments(config: TrainConfig, output_dir: Path, bf16: bool, has_validation: bool,
                       resuming: bool = False) -> TrainingArguments:
    warmup = config.warmup_ratio if config.warmup_ratio else config.warmup_steps
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.train_batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=warmup,
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_grad_norm=config.max_grad_norm,
        label_smoothing_factor=config.label_smoothing,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        eval_strategy=(config.eval_strategy if has_validation else "no"),
        eval_steps=config.eval_steps,
        eval_on_start=config.eval_on_start and has_validation and not resuming,  # the step-0 row is in the history
        # Resume checkpoints only: the best weights are kept by RunRecorder, and CheckpointKeeper (not
        # save_total_limit) removes older checkpoints once a newer one is complete.
        save_strategy=config.save_strategy,
        save_steps=config.save_steps,
        logging_strategy="steps",
        logging_steps=1,  # every step's loss is recorded: epoch means are exact, plots have every point
        report_to=config.report_to or "none",
        seed=config.seed,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )


def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = False, console=None, progress: bool = True,
          trust_pickle: bool = False, callbacks: list | None = None, search: dict | None = None) -> RunResult:
    """Run a whole fine-tuning job and write its folder.

    Args:
        config: the validated configuration.
        overwrite: replace a non-empty output folder (otherwise that is an error, checked before training).
        resume: continue from the last checkpoint, an error if there is none. Without it a run still continues
            from checkpoints left beside the output by a killed run with the same configuration.
        console: a rich Console for the per-evaluation rows (None: quiet).
        progress: show a progress bar.
        trust_pickle: allow a base model folder that has only pickle weights (can run code: trusted sources only).
        callbacks: extra TrainerCallbacks (e.g. a search's pruning callback); they run after the recorder's. One
            that stops training sets its `stopped_by` to {"reason": ..., ...}: the history, card and doctor say why.
        search: the hyperparameter search this run is a trial of (study, trial, metric, direction, params): kept in
            metrics.json and shown on the card.
    """
    main = is_main_process()  # in a distributed run only rank 0 prints and writes
    run_folder = RunFolder(config.output, overwrite=overwrite, console=console if main else None)
    if main:
        run_folder.clean_stale()  # what a killed run of this output left beside it
    start = find_resume(config, run_folder.checkpoints, resume=resume, overwrite=overwrite)
    run_folder.check(resuming=start is not None)
    if main and config.save_strategy != "no":
        prepare_folder(run_folder.checkpoints, config, start)
    finished = False
    try:
        result = _train(config, run_folder, start, console if main else None, progress, trust_pickle, callbacks or [],
                        search)
        finished = True
        return result
    finally:
        run_folder.discard_scratch()
        if main and (finished or last_checkpoint(run_folder.checkpoints) is None):
            run_folder.discard_checkpoints()  # kept after a failure only when there is something to resume
        environment.release_memory()


def _train(config: TrainConfig, run_folder: RunFolder, start: Path | None, console, progress: bool,
           trust_pickle: bool, callbacks: list, search: dict | None) -> RunResult:
    corpora = read_splits(config)
    if console is not None:  # reader warnings (BOM, CRLF, guessed header, subsets) are shown, not only stored
        for split, corpus in corpora.items():
            for warning in corpus.warnings:
                console.print(f"[yellow]warning[/] {escape(f'{split} ({corpus.path}): {warning}')}", highlight=False)
    train_corpus = corpora["train"]
    labels = label_names(train_corpus)
    check_positive_label(config.positive_label, labels, config.is_ner)
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    bf16 = environment.use_bf16(config.precision)

    set_seed(config.seed)  # before the model: the new head's initialisation depends on it
    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, config.task, id2label, trust_pickle=trust_pickle)
    max_length = min(config.max_length, environment.model_max_length(tokenizer, model))
    encoder = Encoder(tokenizer, label2id, max_length, label_all_subwords=config.subword_labels == "all")

    datasets, encoding_stats = {}, {}
    for split, corpus in corpora.items():
        stats = EncodingStats()
        if config.is_ner:
            features = encoder.encode_tokens(corpus.examples, stats)
        else:
            features = encoder.encode_texts(corpus.examples, stats)
        datasets[split] = FeatureDataset(features, corpus.examples)
        encoding_stats[split] = stats.to_dict()
        encoding_stats[split]["unknown_to_tokenizer"], warning = note_unknown_words(tokenizer, corpus)
        if warning and console is not None:  # a wrong tokenizer or vocabulary, usually
            console.print(f"[yellow]warning[/] {escape(f'{split} ({corpus.path}): {warning}')}", highlight=False)

    positive_label = config.positive_label
    recorder = RunRecorder(config.task, config.metric_for_best_model, config.early_stopping_patience, console)
    eval_collator = PadCollator(tokenizer.pad_token_id, SORTED_PAD_TO_MULTIPLE_OF)  # length-sorted batches
    train_collator, batches = PadCollator(tokenizer.pad_token_id), PADDED
    speed = config.speed_options if config.speed == "auto" else SpeedOptions(**{k: False for k in SpeedOptions.model_fields})
    if speed.packing:
        train_collator, batches = choose_collator(model, datasets["train"].features, train_collator,
                                                  tokenizer.pad_token_id, padding_free=speed.padding_free,
                                                  classify=not config.is_ner)
    # NER evaluation packs what training packs (padding-free passes too: forward_batches switches the attention).
    # Text classification evaluates in length-sorted padded batches: packed passes were no faster there
    # (docs/performance.md), since sorted batches of whole texts hold little padding.
    eval_packed = train_collator if batches in (PACKED, PADDING_FREE) and config.is_ner else None
    if batches == REFUSED and console is not None:
        console.print("[yellow]note[/] packing: this model's outputs differ when sentences share a row "
                      "(position ids or attention mask work differently); training with padded batches.",
                      highlight=False)
    # CUDA draws dropout masks in a fused kernel; on CPU torch's masks cost a sixth of a step (dropout.py), and
    # those of SDPA's attention probabilities a tenth more (attention.py). After the packing check: the switched
    # attention is for training steps only.
    fast = speed.fast_dropout and not torch.cuda.is_available()
    dropout_masks = "fast (16-bit lanes)" if fast and use_fast_dropout(model) else "torch"
    if fast and use_fast_attention_dropout(model):
        dropout_masks += ", attention probabilities included"
    elif batches == PADDING_FREE and not use_tunecard_attention(model, fast_masks=False):
        raise RuntimeError("padding-free batches need tunecard's attention, which this model took in the check")
    fused = speed.fuse_qkv and not torch.cuda.is_available() and world_size() == 1 and fuse_qkv(model) > 0
    kept_freed_memory = (speed.keep_freed_memory and not torch.cuda.is_available()
                         and environment.keep_freed_memory())
    bf16_copies = None  # after fusing: a fused projection's three weights get one bf16 copy
    if False and bf16_weights.applies(model, bf16=bf16, cpu=not torch.cuda.is_available(),
                                                    processes=world_size()):
        bf16_copies = bf16_weights.Bf16Weights(model)
    has_validation = "validation" in datasets
    saved = restore(start, recorder) if start is not None else {}  # history so far and the best weights
    if saved and console is not None:
        console.print(f"resuming from {start} ({len(recorder.rows)} evaluations done)", highlight=False)
    keeper = None
    if config.save_strategy != "no":
        keeper = CheckpointKeeper(run_folder.checkpoints, recorder, saved.get("elapsed_seconds", 0.0))
    output_dir = run_folder.checkpoints if keeper else run_folder.scratch
    args = training_arguments(config, output_dir, bf16, has_validation, resuming=start is not None)
    optimizer, sparse_rows = _plain_adam(config), False
    if speed.sparse_embedding and sparse_embedding.applies(
            model, weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, optimizer=config.optimizer,
            processes=world_size(), cpu=not torch.cuda.is_available()):
        default_class, default_kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
        if default_class is torch.optim.AdamW:  # the Trainer's own (fused) AdamW, given a sparse-row path
            optimizer, sparse_rows = (sparse_embedding.SparseRowsAdamW, default_kwargs), True
            sparse_embedding.set_sparse(model, True)
    total_batch = config.train_batch_size * config.gradient_accumulation_steps * world_size()
    trainer = TunecardTrainer(
        model=model,
        args=args,
        data_collator=train_collator,
        train_dataset=datasets["train"],
        eval_dataset=datasets.get("validation"),
        processing_class=tokenizer,
        optimizer_cls_and_kwargs=optimizer,
        callbacks=[recorder, *([keeper] if keeper else []), ProgressBar(total_batch, progress), *callbacks],
        recorder=recorder,
        task=config.task,
        id2label=id2label,
        collator=eval_collator,
        bf16=bf16,
        positive_label=positive_label,
        train_sampling=config.train_sampling,
        head_learning_rate=config.head_learning_rate,
        packed=eval_packed,
        sparse_rows=sparse_rows,
        bf16_copies=bf16_copies,
    )
    started = time.perf_counter()
    if start is not None and recorder.stopped_by:  # killed after it had stopped early: nothing left to train
        trainer.state = TrainerState.load_from_json(str(start / TRAINER_STATE_NAME))
        epochs_run = trainer.state.epoch
    else:
        with long_lived_objects_frozen(), run_folder.writing_checkpoints():  # disk full: E404
            train_output = trainer.train(resume_from_checkpoint=str(start) if start is not None else None)
        epochs_run = train_output.metrics.get("epoch", config.num_epochs)
    train_seconds = time.perf_counter() - started + (keeper.prior_seconds if keeper else 0.0)
    sparse_embedding.set_sparse(model, False)  # what is saved and used later is a plain model
    restore_attention(model)
    stop_reading_first_tokens(model)
    if bf16_copies is not None:
        bf16_copies.remove()
    unfuse_qkv(model)
    _release_optimizer(trainer)
    for callback in callbacks:
        recorder.stopped_by = recorder.stopped_by or getattr(callback, "stopped_by", None)
    history = recorder.history()
    if not trainer.is_world_process_zero():
        trainer.accelerator.wait_for_everyone()  # return once rank 0 has written the run
        return RunResult(run_folder.path, history, {}, main_process=False)

    if recorder.best_state is not None:
        model.load_state_dict(recorder.best_state)
    final = {}
    for split in ("validation", "test"):
        if split in datasets:
            final[split] = evaluate_features(
                model, datasets[split].features, datasets[split].examples, task=config.task, id2label=id2label,
                collator=eval_collator, batch_size=config.eval_batch_size, bf16=bf16, positive_label=positive_label,
                packed=eval_packed, recheck_margin=RECHECK_MARGIN,
            )

    train_tokens = sum(len(ex.tokens) for ex in train_corpus.examples) if config.is_ner else None
    # Throughput of training itself: the evaluations inside trainer.train() are timed and left out.
    training_seconds = max(train_seconds - recorder.evaluation_seconds, 1e-9)
    samples_seen = trainer.state.global_step * total_batch
    metrics = {
        "task": config.task,
        "labels": labels,
        "best_epoch": history["best"]["epoch"] if history["best"] else None,
        "validation": final.get("validation"),
        "test": final.get("test"),
        "baselines": compute_baselines(corpora, positive_label),
        "data": data_report(corpora, encoding_stats),
        "training": {
            "runtime_seconds": round(train_seconds, 2),
            "evaluation_seconds": round(recorder.evaluation_seconds, 2),
            "global_steps": trainer.state.global_step,
            "epochs": epochs_run,
            "samples_per_second": round(min(samples_seen, len(train_corpus) * epochs_run) / training_seconds, 3),
            "words_per_second": round(train_tokens * epochs_run / training_seconds, 1) if train_tokens else None,
            "final_step_loss": recorder.steps[-1]["loss"] if recorder.steps else None,
            "world_size": args.world_size,
            "distributed_backend": backend(),
            "total_train_batch_size": total_batch,
            "batches": batches,
            "dropout_masks": dropout_masks,
            "qkv_projections": "fused" if fused else "separate",
            "bf16_weights": "copies cast once per optimizer step" if bf16_copies is not None else
            ("cast by autocast in every forward pass" if bf16 else None),
            "embedding_gradient": "sparse rows" if sparse_rows else "dense",
            "freed_memory": "kept for reuse (glibc tuned)" if kept_freed_memory else "allocator defaults",
            "evaluation_precision": ("bf16 autocast, texts with a close call (two best logits within "
                                     f"{RECHECK_MARGIN}) again in fp32") if bf16 else "fp32",
            "resumed_from_step": int(start.name.rsplit("-", 1)[-1]) if start is not None else None,
        },
        "environment": environment.describe(bf16),
        "max_length": max_length,
        "search": search,
    }

    with run_folder.writing() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        config.save(folder)
        _write_json(folder / "history.json", history)
        _write_json(folder / "metrics.json", metrics)
        plots = write_plots(folder, history, metrics, config.task)
        write_card(folder, config, history, metrics, plots)
        _keep_tensorboard_logs(Path(args.output_dir), folder)
    trainer.accelerator.wait_for_everyone()
    return RunResult(run_folder.path, history, metrics)


TENSORBOARD_FOLDER = "tensorboard"


def _keep_tensorboard_logs(output_dir: Path, folder: Path) -> None:
    """report_to tensorboard writes under the Trainer's output_dir/runs/ (a scratch folder removed at the end):
    keep its event files in the run, so `tensorboard --logdir RUN_DIR` finds them."""
    logs = output_dir / "runs"
    if logs.is_dir():
        shutil.copytree(logs, folder / TENSORBOARD_FOLDER)


def _release_optimizer(trainer: Trainer) -> None:
    """Free the optimizer's moments once training is over (the last checkpoint, if any, is written): twice the
    model's size that the final evaluations, the run folder's writing and whatever the process does next would
    otherwise hold on to (the Trainer reset the gradients after its last step). Measured on the 3000-sentence
    CoNLL-2003 run: the process's peak (then in the final phase) fell below the peak during training."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    if optimizer is not None:
        optimizer.state.clear()
    environment.release_memory()


def _plain_adam(config: TrainConfig):
    """`optimizer: adam` is torch's Adam (no decoupled weight decay); adamw uses the Trainer's default (fused)."""
    if config.optimizer != "adam":
        return None
    return torch.optim.Adam, {"betas": (config.adam_beta1, config.adam_beta2), "eps": config.adam_epsilon}


def _json_safe(value):
    """NaN/inf become null (JSON has no NaN); tuples become lists."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(_json_safe(data), indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
