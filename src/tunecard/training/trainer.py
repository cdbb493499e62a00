"""The transformers Trainer with tunecard's evaluation, optimizer groups and speed hooks."""

from __future__ import annotations

import time

import torch
from transformers import PrinterCallback, ProgressCallback, Trainer
from transformers.trainer_utils import EvalLoopOutput, IntervalStrategy

from tunecard import environment
from tunecard.config import TrainConfig
from tunecard.encoding.batching import FeatureDataset, PadCollator
from tunecard.encoding.sampling import BucketedRandomSampler
from tunecard.training.distributed import broadcast_from_main
from tunecard.training.evaluate import RECHECK_MARGIN, evaluate_features, table_metrics
from tunecard.training.recorder import RunRecorder


class TunecardTrainer(Trainer):
    """The Trainer with tunecard's evaluation: length-sorted, streamed, scored on words with the project's scorers."""

    def __init__(self, *args, recorder: RunRecorder, task: str, id2label: dict, collator: PadCollator, bf16: bool,
                 positive_label: str | None, speed, train_sampling: str = "random",
                 head_learning_rate: float | None = None, loss=None, decoding: str = "argmax",
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.loss = loss  # training/loss.py's TrainingLoss (class weights, multi-label smoothing), or None
        if loss is not None:
            # its loss is already the micro-batch's share of the step's mean (compute_loss): not divided again
            self.loss_is_scaled_for_ga = True
        self._step_denominator: torch.Tensor | None = None  # the run's own loss: the step's (get_batch_samples)
        self.speed = speed  # the run's SpeedPlan: its collator, optimizer and clipping where levers apply
        self.head_learning_rate = head_learning_rate
        self.train_sampling = train_sampling
        self.recorder = recorder
        self.task = task
        self.id2label = id2label
        self.pad_collator = collator
        self.eval_bf16 = bf16
        self.positive_label = positive_label
        self.decoding = decoding  # NER: how the evaluations choose tags (metrics/decoding.py)
        self._evaluated_step: int | None = None  # the step whose evaluation ran before its checkpoint
        self.remove_callback(ProgressCallback)
        self.remove_callback(PrinterCallback)

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the new classification head in groups of their own at `head_learning_rate`.

        The head starts from random weights while the encoder is pre-trained: a short run at the encoder's small
        learning rate leaves the head under-trained (measured in docs/training.md).
        """
        optimizer = super().create_optimizer(model)
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

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The training loss as the Trainer sums it: this micro-batch's share of the whole optimizer step's mean.

        For a model that takes loss keyword arguments, the Trainer counts the labelled items of the whole step
        (`num_items_in_batch`: every micro-batch of gradient accumulation, every process), expects the model to
        return this micro-batch's summed loss over that count, adds the micro-batches' losses without dividing,
        and multiplies by the number of processes (DDP averages the gradients). Encoder classifiers accept the
        arguments but return their own micro-batch's mean: two processes recorded 4.655 for a first step of
        2.319, and gradient accumulation multiplied the loss and the gradient norm by its steps. The mean is
        rescaled by this micro-batch's labelled items over the step's (multi-label: its texts x labels, over
        which BCE is a mean), so the recorded loss, the gradient and its norm are those of one process on the
        whole batch. One process without accumulation is left as it was.

        The run's own loss (`self.loss`, training/loss.py: class weights, multi-label label smoothing) follows the
        same rule: this micro-batch's summed loss over the step's denominator (`_step_denominator`, counted by
        `get_batch_samples` over every micro-batch and process: the sum of the labelled items' class weights for
        cross-entropy, texts x labels for BCE), times the processes.
        """
        if self.loss is not None and "labels" in inputs:
            return self._own_loss(model, inputs, return_outputs)
        labels = inputs.get("labels")
        if (num_items_in_batch is None or labels is None or not self.model_accepts_loss_kwargs
                or self.label_smoother is not None or self.compute_loss_func is not None
                or (self.args.world_size == 1 and self.current_gradient_accumulation_steps == 1)):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        local = labels.ne(-100).sum()
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        # A micro-batch without labelled items has a NaN mean (0 / 0) and contributes nothing.
        loss = torch.where(local > 0, loss * local / num_items_in_batch, torch.zeros_like(loss))
        return (loss, outputs) if return_outputs else loss

    def _own_loss(self, model, inputs, return_outputs: bool):
        """`self.loss` of the model's logits: in training, this micro-batch's share of the step's weighted mean
        (see compute_loss); outside training, the batch's own mean."""
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        total, denominator = self.loss.parts(self.loss.logits(outputs), labels)
        step = self._step_denominator if model.training else None
        if step is None:
            loss = total / denominator.clamp(min=torch.finfo(total.dtype).tiny)
        else:
            step = step.to(total.device, total.dtype)
            # the processes' losses are averaged in the log and their gradients by DDP: each counts world_size times
            loss = total / step.clamp(min=torch.finfo(total.dtype).tiny) * self.args.world_size
        return (loss, outputs) if return_outputs else loss

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The Trainer's micro-batches of one optimizer step; with the run's own loss, also the step's denominator
        (every micro-batch's, summed over the processes) that `compute_loss` divides by."""
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.loss is not None:
            local = sum((self.loss.denominator(batch["labels"]) for batch in batch_samples if "labels" in batch),
                        torch.zeros((), dtype=torch.float64))
            if self.args.world_size > 1:
                local = self.accelerator.gather(local.to(device).reshape(1)).sum()
            self._step_denominator = local
        return batch_samples, num_items_in_batch

    def _maybe_log_save_evaluate(self, tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time,
                                 learning_rate=None):
        # A checkpoint holds every evaluation due at its step. The Trainer saves at an epoch's last step (save
        # steps, or max_steps reached) before the epoch-end evaluation of that same step: a run killed between the
        # two resumed past the evaluation, losing its row and possibly the best model. The evaluation is run first
        # here (the weights are the same at both points), and not again at the epoch's end.
        if self.control.should_save and not self.control.should_evaluate and self._epoch_evaluation_follows(epoch):
            self.control.should_evaluate = True
        if self.control.should_evaluate and self._evaluated_step == self.state.global_step:
            self.control.should_evaluate = False
        if self.control.should_evaluate:
            self._evaluated_step = self.state.global_step
        super()._maybe_log_save_evaluate(tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time,
                                         learning_rate=learning_rate)

    def _epoch_evaluation_follows(self, epoch: int) -> bool:
        """Whether the epoch ends at this step (its last batch, or training stops here) with an evaluation."""
        if self.args.eval_strategy != IntervalStrategy.EPOCH or self.eval_dataset is None:
            return False
        epoch_ends = self.state.epoch is not None and self.state.epoch >= epoch + 1
        return (epoch_ends or self.control.should_training_stop) and self.args.eval_delay <= self.state.epoch

    def _clip_grad_norm(self, model):
        norm = self.speed.clip_grad_norm(model, self.args.max_grad_norm)  # sparse embedding rows: its own clipping
        return super()._clip_grad_norm(model) if norm is None else norm

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
            positive_label=self.positive_label, packed=self.speed.eval_packed, recheck_margin=RECHECK_MARGIN,
            decoding=self.decoding,
        )
        details = broadcast_from_main(details)  # distributed: every rank acts on rank 0's numbers
        self.recorder.details = details
        self.recorder.evaluation_seconds += time.perf_counter() - started
        self.model.train()
        metrics = {f"{metric_key_prefix}_loss": details["loss"]}
        for key in table_metrics(self.task):
            metrics[f"{metric_key_prefix}_{key}"] = details[key]
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=len(dataset))


def release_optimizer(trainer: Trainer) -> None:
    """Free the optimizer's moments once training is over (the last checkpoint, if any, is written): twice the
    model's size that the final evaluations, the run folder's writing and whatever the process does next would
    otherwise hold on to (the Trainer reset the gradients after its last step). Measured on the 3000-sentence
    CoNLL-2003 run: the process's peak (then in the final phase) fell below the peak during training."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    if optimizer is not None:
        optimizer.state.clear()
    environment.release_memory()


def plain_adam(config: TrainConfig):
    """`optimizer: adam` is torch's Adam (no decoupled weight decay); adamw uses the Trainer's default (fused)."""
    if config.optimizer != "adam":
        return None
    return torch.optim.Adam, {"betas": (config.adam_beta1, config.adam_beta2), "eps": config.adam_epsilon}
