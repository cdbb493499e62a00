"""The config as transformers' TrainingArguments: one table from tunecard's keys to the Trainer's.

Most keys are the Trainer's own under the Trainer's names; the table lists every one that passes through, and
`training_arguments` adds what tunecard decides itself (precision, evaluation and saving, logging, the device
the Trainer and accelerate choose): CUDA, MPS or XPU where there is one, else the CPU.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainingArguments

from tunecard import environment
from tunecard.config import TrainConfig

# TrainingArguments field <- TrainConfig key
PASSED_THROUGH = {
    "per_device_train_batch_size": "train_batch_size",
    "per_device_eval_batch_size": "eval_batch_size",
    "learning_rate": "learning_rate",
    "num_train_epochs": "num_epochs",
    "max_steps": "max_steps",
    "lr_scheduler_type": "lr_scheduler_type",
    "weight_decay": "weight_decay",
    "adam_beta1": "adam_beta1",
    "adam_beta2": "adam_beta2",
    "adam_epsilon": "adam_epsilon",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_grad_norm": "max_grad_norm",
    "label_smoothing_factor": "label_smoothing",
    "eval_steps": "eval_steps",
    "save_strategy": "save_strategy",
    "save_steps": "save_steps",
    "seed": "seed",
    "ddp_timeout": "ddp_timeout",
}


def training_arguments(config: TrainConfig, output_dir: Path, bf16: bool, has_validation: bool,
                       resuming: bool = False) -> TrainingArguments:
    """TrainingArguments for this run.

    Args:
        config: the run's configuration.
        output_dir: where the Trainer writes checkpoints (tunecard's resume folder, or a scratch folder).
        bf16: train under bf16 autocast (`environment.use_bf16` for the device).
        has_validation: whether there is a validation split to evaluate on.
        resuming: the run continues from a checkpoint (no step-0 evaluation then: its row is in the history).
    """
    values = {field: getattr(config, key) for field, key in PASSED_THROUGH.items()}
    return TrainingArguments(
        output_dir=str(output_dir),
        **values,
        warmup_steps=config.warmup_ratio if config.warmup_ratio else config.warmup_steps,
        bf16=bf16,
        # accelerate picks CUDA, MPS or XPU where there is one; on the CPU it must be told so for bf16 autocast
        use_cpu=environment.training_device().type == "cpu",
        eval_strategy=config.eval_strategy if has_validation else "no",
        eval_on_start=config.eval_on_start and has_validation and not resuming,
        # Resume checkpoints only: the best weights are kept by RunRecorder, and CheckpointKeeper (not
        # save_total_limit) removes older checkpoints once a newer one is complete.
        logging_strategy="steps",
        logging_steps=1,  # every step's loss is recorded: epoch means are exact, plots have every point
        report_to=config.report_to or "none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
