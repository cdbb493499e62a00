"""A training run in named steps: read → load → plan → build the trainer → fit → finalize.

`pipeline.train` runs these around the run folder (resume, writing the card). Each step takes what the ones
before it made and returns a small record, so a step can be read, tested and changed on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from transformers import Trainer, TrainerState, set_seed
from transformers.trainer import TRAINER_STATE_NAME

from tunecard import environment, speed
from tunecard.config import TrainConfig
from tunecard.data.example import Corpus
from tunecard.encoding.batching import SORTED_PAD_TO_MULTIPLE_OF, PadCollator, padding_changes_outputs
from tunecard.encoding.encoder import Encoder
from tunecard.encoding.models import load_model, load_tokenizer, note_unknown_words
from tunecard.training import distributed
from tunecard.training.arguments import training_arguments
from tunecard.training.checkpoint import CheckpointKeeper, restore
from tunecard.training.distributed import backend, world_size
from tunecard.training.evaluate import RECHECK_MARGIN, Evaluation, evaluate_features, tuned_thresholds
from tunecard.training.inputs import (
    check_positive_label,
    compute_baselines,
    data_report,
    encode_splits,
    label_names,
    read_splits,
)
from tunecard.training.loss import class_weights, training_loss
from tunecard.training.outputs import RunFolder
from tunecard.training.recorder import ProgressBar, RunRecorder
from tunecard.training.trainer import TunecardTrainer, plain_adam, release_optimizer


@dataclass
class Inputs:
    """What `read` makes: the splits, the label set and the class weights (None: none)."""

    corpora: dict[str, Corpus]
    labels: list[str]
    class_weights: dict[str, float] | None = None

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}


@dataclass
class Loaded:
    """What `load` makes: tokenizer, model and the encoded splits."""

    tokenizer: object
    model: object
    max_length: int
    datasets: dict
    encoding_stats: dict
    # the model's outputs change with padding (ConvBERT, Funnel): every evaluation runs one text at a time, as
    # `tunecard evaluate`, `predict` and pipeline do, so the card's scores are theirs (`evaluate_one_text_at_a_time`)
    one_text_per_pass: bool = False


@dataclass
class Fitted:
    """What a run returns to `pipeline.train`: the model with its best weights, the history and metrics.json."""

    model: object
    tokenizer: object
    history: dict
    metrics: dict
    trainer: Trainer
    main_process: bool = True


def read(config: TrainConfig, console=None) -> Inputs:
    """Read and cross-check the splits; the reader's warnings are shown, not only stored."""
    corpora = read_splits(config)
    if console is not None:  # BOM, CRLF, guessed header, subsets
        for split, corpus in corpora.items():
            for warning in corpus.warnings:
                console.print(f"[yellow]warning[/] {escape(f'{split} ({corpus.path}): {warning}')}", highlight=False)
    labels = label_names(corpora["train"])
    check_positive_label(config.positive_label, labels, config.is_ner, config.task)
    weights = class_weights(config.class_weights, config.task, labels, corpora["train"])
    return Inputs(corpora, labels, weights)


def load(config: TrainConfig, inputs: Inputs, trust_pickle: bool = False, console=None) -> Loaded:
    """Tokenizer and model (a new head for the labels, seeded), and every split encoded."""
    set_seed(config.seed)  # before the model: the new head's initialisation depends on it
    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, config.task, inputs.id2label, trust_pickle=trust_pickle)
    max_length = min(config.max_length, environment.model_max_length(tokenizer, model))
    encoder = Encoder(tokenizer, inputs.label2id, max_length, label_all_subwords=config.subword_labels == "all",
                      context_size=config.context_subwords)
    datasets, encoding_stats = encode_splits(encoder, inputs.corpora, config.is_ner)
    for split, corpus in inputs.corpora.items():
        encoding_stats[split]["unknown_to_tokenizer"], warning = note_unknown_words(tokenizer, corpus)
        if warning and console is not None:  # a wrong tokenizer or vocabulary, usually
            console.print(f"[yellow]warning[/] {escape(f'{split} ({corpus.path}): {warning}')}", highlight=False)
    was_training = model.training
    one_text = padding_changes_outputs(model, _padding_probe(datasets), PadCollator(tokenizer.pad_token_id,
                                                                                      SORTED_PAD_TO_MULTIPLE_OF))
    model.train(was_training)
    return Loaded(tokenizer, model, max_length, datasets, encoding_stats, one_text_per_pass=one_text)


def _padding_probe(datasets: dict) -> list:
    """A few features of different lengths (the shortest and longest of the first training ones), to ask the model
    whether padding changes a text's outputs."""
    features = datasets["train"].features[:200]
    by_length = sorted(range(len(features)), key=lambda i: len(features[i]))
    return [features[i] for i in dict.fromkeys(by_length[:2] + by_length[-2:])]


def evaluate_one_text_at_a_time(args, the_plan: speed.SpeedPlan) -> None:
    """Every evaluation of the run (during training, the final scores, multi-label thresholds) passes each text
    alone and unpadded, for a model whose outputs change with padding: they read these two settings."""
    args.per_device_eval_batch_size = 1
    the_plan.eval_packed = None


def plan(config: TrainConfig, loaded: Loaded, args) -> speed.SpeedPlan:
    """The speed plan for this config, the device the Trainer uses and the model (`speed/plan.py`)."""
    return speed.plan_training(config, loaded.model, loaded.datasets["train"].features,
                               loaded.tokenizer.pad_token_id, device=args.device, bf16=args.bf16,
                               processes=world_size(), default_optimizer=Trainer.get_optimizer_cls_and_kwargs(args))


def build_trainer(config: TrainConfig, inputs: Inputs, loaded: Loaded, plan: speed.SpeedPlan, args,
                  recorder: RunRecorder, keeper: CheckpointKeeper | None, callbacks: list,
                  progress: bool, loss=None) -> TunecardTrainer:
    """The Trainer over the training and validation features, with the plan's collator and optimizer; `loss`: the
    run's TrainingLoss (class weights, multi-label), the one the speed check compared, or None for the model's."""
    padded = PadCollator(loaded.tokenizer.pad_token_id)
    optimizer = plain_adam(config) or plan.optimizer(*Trainer.get_optimizer_cls_and_kwargs(args))
    total_batch = config.train_batch_size * config.gradient_accumulation_steps * world_size()
    return TunecardTrainer(
        model=loaded.model,
        args=args,
        data_collator=plan.train_collator or padded,
        train_dataset=loaded.datasets["train"],
        eval_dataset=loaded.datasets.get("validation"),
        processing_class=loaded.tokenizer,
        optimizer_cls_and_kwargs=optimizer,
        callbacks=[recorder, *([keeper] if keeper else []), ProgressBar(total_batch, progress), *callbacks],
        recorder=recorder,
        task=config.task,
        id2label=inputs.id2label,
        collator=PadCollator(loaded.tokenizer.pad_token_id, SORTED_PAD_TO_MULTIPLE_OF),  # length-sorted batches
        bf16=args.bf16,
        positive_label=config.positive_label,
        speed=plan,
        train_sampling=config.train_sampling,
        head_learning_rate=config.head_learning_rate,
        loss=loss,
        decoding=config.decoding,
    )


def fit(trainer: TunecardTrainer, start: Path | None, recorder: RunRecorder) -> float:
    """Train (or, resumed from a checkpoint of a finished training, only restore the state); returns the epochs run.

    A run killed after its last checkpoint (while the run folder was written) or after an early stop has nothing
    left to train: the Trainer would still run the rest of a partial last epoch (`max_steps`, or fractional
    `num_epochs`, ending inside one), so it is not asked to. The checkpoint's weights are loaded as its resume
    would load them; the best weights come from the recorder.
    """
    if start is not None:
        saved = TrainerState.load_from_json(str(start / TRAINER_STATE_NAME))
        if recorder.stopped_by or saved.global_step >= saved.max_steps:
            trainer.state = saved
            trainer._load_from_checkpoint(str(start))
            return trainer.state.epoch
    output = trainer.train(resume_from_checkpoint=str(start) if start is not None else None)
    return output.metrics.get("epoch", trainer.args.num_train_epochs)


def finalize(config: TrainConfig, inputs: Inputs, loaded: Loaded, plan: speed.SpeedPlan, trainer: TunecardTrainer,
             recorder: RunRecorder, *, epochs_run: float, train_seconds: float, start: Path | None,
             search: dict | None) -> dict:
    """The best weights back in the model, the final evaluations, and metrics.json's content."""
    model, datasets = loaded.model, loaded.datasets
    if recorder.best_state is not None:
        model.load_state_dict(recorder.best_state)
    bf16 = trainer.args.bf16
    eval_collator = trainer.pad_collator
    thresholds, final = None, {}
    if config.is_multi_label:
        thresholds, validation = tune_on_validation(config, inputs, loaded, trainer,
                                                    final_pass_is_fp32=not bf16 and plan.eval_packed is None)
        if validation is not None:
            final["validation"] = validation
    for split in ("validation", "test"):
        if split in datasets and split not in final:
            final[split] = evaluate_features(
                model, datasets[split].features, datasets[split].examples, task=config.task,
                id2label=inputs.id2label, collator=eval_collator, batch_size=trainer.args.per_device_eval_batch_size,
                bf16=bf16, positive_label=config.positive_label, packed=plan.eval_packed, recheck_margin=RECHECK_MARGIN,
                thresholds=[thresholds[label]["threshold"] for label in inputs.labels] if thresholds else None,
                decoding=config.decoding,
            )
        if split in final and thresholds:
            final[split]["thresholds"] = ("tuned on this split (its scores are optimistic)" if split == "validation"
                                          else "tuned on the validation split")
    history = recorder.history()
    train_corpus = inputs.corpora["train"]
    train_tokens = sum(len(ex.tokens) for ex in train_corpus.examples) if config.is_ner else None
    # Throughput of training itself: the evaluations inside trainer.train() are timed and left out.
    training_seconds = max(train_seconds - recorder.evaluation_seconds, 1e-9)
    total_batch = config.train_batch_size * config.gradient_accumulation_steps * world_size()
    samples_seen = trainer.state.global_step * total_batch
    return {
        "task": config.task,
        "labels": inputs.labels,
        "best_epoch": history["best"]["epoch"] if history["best"] else None,
        "validation": final.get("validation"),
        "test": final.get("test"),
        "baselines": compute_baselines(inputs.corpora, config.positive_label),
        "data": data_report(inputs.corpora, loaded.encoding_stats),
        "training": {
            "runtime_seconds": round(train_seconds, 2),
            "evaluation_seconds": round(recorder.evaluation_seconds, 2),
            "global_steps": trainer.state.global_step,
            "epochs": epochs_run,
            "samples_per_second": round(min(samples_seen, len(train_corpus) * epochs_run) / training_seconds, 3),
            "words_per_second": round(train_tokens * epochs_run / training_seconds, 1) if train_tokens else None,
            "final_step_loss": recorder.steps[-1]["loss"] if recorder.steps else None,
            "world_size": trainer.args.world_size,
            "distributed_backend": backend(),
            "total_train_batch_size": total_batch,
            "batches": plan.batches,
            "evaluation_batches": ("one text per pass (the model's outputs change with padding)"
                                   if loaded.one_text_per_pass else "length-sorted batches"),
            "evaluation_precision": ("bf16 autocast, texts with a close call (two best logits within "
                                     f"{RECHECK_MARGIN}) again in fp32") if bf16 else "fp32",
            "resumed_from_step": int(start.name.rsplit("-", 1)[-1]) if start is not None else None,
        },
        "speed": plan.record(),
        "class_weights": ({"setting": config.class_weights, "weights": inputs.class_weights}
                          if inputs.class_weights is not None else None),
        "thresholds": thresholds,
        "environment": environment.describe(bf16, str(trainer.args.device)),
        "max_length": loaded.max_length,
        "context": context_record(config, loaded.encoding_stats),
        "search": search,
    }


def context_record(config: TrainConfig, encoding_stats: dict) -> dict | None:
    """metrics.json's `context` (NER): what each sentence was fed with besides its own words, and per split how
    much context that was (the encoder's counts)."""
    if not config.is_ner:
        return None
    if config.context != "document":
        return {"mode": "none"}
    return {"mode": "document", "subwords_per_side": config.context_subwords,
            "splits": {split: {key: value for key, value in (stats.get("context") or {}).items()
                               if key not in ("mode", "subwords_per_side")}
                       for split, stats in encoding_stats.items()}}

def tune_on_validation(config: TrainConfig, inputs: Inputs, loaded: Loaded, trainer: TunecardTrainer, *,
                       final_pass_is_fp32: bool = False) -> tuple[dict, dict | None]:
    """Multi-label: a decision threshold per label, each maximising its label's F1 on the validation split with the
    best weights (0.5 for a label the split never shows, and for every label without a validation split); written
    into the model's config (`config.tunecard["thresholds"]`) so the saved folder carries them.

    Returns the thresholds and, when the final validation evaluation would be this same fp32 pass again
    (`final_pass_is_fp32`: no bf16 autocast, so no close calls to recheck, and padded batches), its result at the
    tuned thresholds, scored from this pass's probabilities (`Evaluation.rescored`); else None, and the caller
    evaluates validation (in bf16, with close calls to the tuned thresholds rechecked in fp32, as prediction
    runs)."""
    evaluation = Evaluation(config.task, inputs.id2label, keep_probabilities=True)
    validation = loaded.datasets.get("validation")
    if validation is not None:  # fp32, no recheck: the thresholds come from the model's own probabilities
        evaluation.add(loaded.model, validation.features, validation.examples, collator=trainer.pad_collator,
                       batch_size=trainer.args.per_device_eval_batch_size)
    thresholds = tuned_thresholds(evaluation)
    for entry in thresholds.values():
        entry["source"] = ("tuned on validation (the label's best F1)" if entry["tuned"] else
                           "default (no validation split)" if validation is None else
                           "default (no validation example has the label)")
    settings = dict(getattr(loaded.model.config, "tunecard", None) or {})
    settings["thresholds"] = {label: entry["threshold"] for label, entry in thresholds.items()}
    loaded.model.config.tunecard = settings
    if validation is None or not final_pass_is_fp32:
        return thresholds, None
    return thresholds, evaluation.rescored([thresholds[label]["threshold"] for label in inputs.labels])


def run(config: TrainConfig, run_folder: RunFolder, start: Path | None, *, console=None, progress: bool = True,
        trust_pickle: bool = False, callbacks: list | None = None, search: dict | None = None) -> Fitted:
    """Every step of a run, up to the model and metrics that `pipeline.train` writes."""
    callbacks = callbacks or []
    inputs = read(config, console)
    loaded = load(config, inputs, trust_pickle, console)
    has_validation = "validation" in loaded.datasets
    recorder = RunRecorder(config.task, config.metric_for_best_model, config.early_stopping_patience, console)
    saved = restore(start, recorder) if start is not None else {}  # history so far and the best weights
    if saved and console is not None:
        console.print(f"resuming from {start} ({len(recorder.rows)} evaluations done)", highlight=False)
    keeper = None
    if config.save_strategy != "no":
        keeper = CheckpointKeeper(run_folder.checkpoints, recorder, saved.get("elapsed_seconds", 0.0))
    output_dir = run_folder.checkpoints if keeper else run_folder.scratch
    device = environment.training_device()
    bf16 = environment.use_bf16(config.precision, device)
    distributed.start(config.ddp_timeout, cpu=device.type == "cpu")  # the Trainer passes ddp_timeout on GPUs only
    args = training_arguments(config, output_dir, bf16, has_validation, resuming=start is not None)
    distributed.open_control_group()
    the_plan = plan(config, loaded, args)
    if loaded.one_text_per_pass:
        evaluate_one_text_at_a_time(args, the_plan)
    padded = PadCollator(loaded.tokenizer.pad_token_id)
    loss = training_loss(config, inputs.labels, inputs.class_weights)
    with speed.training_levers(the_plan, loaded.model, loaded.datasets["train"].features, padded,
                               console=console, loss=loss) as the_plan:
        if keeper is not None:  # after the training-mode check: the optimizer state layout is final here
            keeper.check_plan(the_plan, start)
        trainer = build_trainer(config, inputs, loaded, the_plan, args, recorder, keeper, callbacks, progress,
                                loss)
        started = time.perf_counter()
        # disk full while a checkpoint is written: E404, resumable; a process that stops answering: E225
        with run_folder.writing_checkpoints(), distributed.stuck_process_named(config.ddp_timeout):
            epochs_run = fit(trainer, start, recorder)
        train_seconds = time.perf_counter() - started + (keeper.prior_seconds if keeper else 0.0)
    release_optimizer(trainer)
    for callback in callbacks:
        recorder.stopped_by = recorder.stopped_by or getattr(callback, "stopped_by", None)
    if not trainer.is_world_process_zero():
        distributed.wait_for_main()  # return once rank 0 has written the run
        return Fitted(loaded.model, loaded.tokenizer, recorder.history(), {}, trainer, main_process=False)
    metrics = finalize(config, inputs, loaded, the_plan, trainer, recorder, epochs_run=epochs_run,
                       train_seconds=train_seconds, start=start, search=search)
    return Fitted(loaded.model, loaded.tokenizer, recorder.history(), metrics, trainer)
