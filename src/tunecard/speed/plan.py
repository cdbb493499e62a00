"""The speed seam: which levers a run uses, decided once, applied and undone in one place, and recorded.

Training:

    plan = plan_training(config, model, features, pad_token_id, device=..., bf16=..., processes=...,
                         default_optimizer=...)             # decides; the model is left as it was
    with training_levers(plan, model, features, padded_collator) as plan:   # applies, checks, undoes at the end
        ...  # the Trainer takes plan.train_collator, plan.optimizer(...), plan.clip_grad_norm(...)
    plan.record()                                            # metrics.json "speed", the card's "Hardware and speed"

Prediction: `plan_prediction` and `prediction_levers` (packed passes for NER, oneDNN Linears for bf16 on CPU).

Each lever is used where it applies: the levers written for CPUs (fast dropout masks, fused projections, sparse
embedding rows, tunecard's packing) are keyed on the device the run actually uses, and on
other devices the plan takes transformers' own variable-length path (`DataCollatorWithFlattening`) for NER where
the model gives the same outputs that way, else padded batches. Every lever that is not used has its reason in
the record. `speed: off` uses none. A `speed: auto` training run first compares a few batches' loss and
gradients with and without the levers (`check.py`) and falls back to plain padded training, with a note on the
console and the card, when they differ beyond tolerance.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from tunecard.speed import attention, check, dropout, fused_qkv, memory, onednn_linear, packing, sparse_embedding

AUTO, OFF = "auto", "off"
TRAINING_LEVERS = ("packing", "padding_free", "fast_dropout", "fuse_qkv", "sparse_embedding")
PREDICTION_LEVERS = ("packing", "onednn_linears")
# Largest |logit difference| on the probe with which oneDNN's fused Linears are kept (bf16 rounding gives ~0.03).
ONEDNN_TOLERANCE = 0.25
FLATTENED = "flattened (transformers' DataCollatorWithFlattening)"


@dataclass
class Lever:
    used: bool
    note: str  # what it does in this run, or why it is not used


@dataclass
class SpeedPlan:
    """What the speed layer does in one run (see the module docstring).

    Attributes:
        mode: "auto" or "off" (the config's `speed`).
        device: the device type the run uses (cpu, cuda, mps, xpu).
        levers: each lever's use and note, in the order decided.
        batches: the training batches' layout (packing.PADDED, PACKED, PADDING_FREE, REFUSED or FLATTENED).
        fallback: why the run fell back to plain padded training after its levers were chosen, if it did.
        train_collator: the training batches' collator, or None for the caller's padded one.
        eval_packed: the packed collator evaluation and prediction passes use (NER), or None.
    """

    mode: str
    device: str
    levers: dict[str, Lever] = field(default_factory=dict)
    batches: str = packing.PADDED
    fallback: str | None = None
    train_collator: object | None = field(default=None, repr=False)
    eval_packed: object | None = field(default=None, repr=False)
    first_token_point: object | None = field(default=None, repr=False)
    _undo: list = field(default_factory=list, repr=False)

    def use(self, name: str, note: str) -> None:
        self.levers[name] = Lever(True, note)

    def skip(self, name: str, why: str) -> None:
        self.levers[name] = Lever(False, why)

    def uses(self, name: str) -> bool:
        lever = self.levers.get(name)
        return bool(lever and lever.used)

    def decided(self, name: str) -> bool:
        return name in self.levers

    def record(self) -> dict:
        """The plan as metrics.json keeps it (key `speed`)."""
        return {"mode": self.mode, "device": self.device, "batches": self.batches, "fallback": self.fallback,
                "levers": {name: {"used": lever.used, "note": lever.note} for name, lever in self.levers.items()}}

    # --- what the Trainer asks
    def optimizer(self, default_class, default_kwargs):
        """(optimizer class, kwargs) replacing the Trainer's default, or None to keep it."""
        if self.uses("sparse_embedding"):
            return sparse_embedding.SparseRowsAdamW, default_kwargs
        return None

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float):
        """The total gradient norm after clipping with sparse embedding rows, or None: the Trainer's own clipping
        (torch's clip_grad_norm_ refuses sparse gradients)."""
        if not self.uses("sparse_embedding"):
            return None
        return sparse_embedding.clip_grad_norm_(model.parameters(), max_norm)


def _off(plan: SpeedPlan, levers: tuple[str, ...], why: str) -> SpeedPlan:
    for name in levers:
        if not plan.decided(name):
            plan.skip(name, why)
    return plan


# --------------------------------------------------------------------------------------------------- training
def plan_training(config, model: torch.nn.Module, features: list, pad_token_id: int | None, *,
                  device: torch.device, bf16: bool, processes: int, default_optimizer: tuple) -> SpeedPlan:
    """Decide the training levers for this config, device and model (see the module docstring).

    Args:
        config: the TrainConfig (`speed`, `speed_options`, task, optimizer settings).
        model: the loaded model, on its device; it is left as it was.
        features: the training features (the packing check runs on the first ones).
        pad_token_id: the tokenizer's padding id.
        device: the device the Trainer trains on (TrainingArguments.device).
        bf16: whether training runs under bf16 autocast.
        processes: the number of training processes.
        default_optimizer: the Trainer's (class, kwargs) for this config (Trainer.get_optimizer_cls_and_kwargs).
    """
    plan = SpeedPlan(config.speed, device.type)
    if config.speed == OFF:
        return _off(plan, TRAINING_LEVERS, "speed: off")
    options = config.speed_options
    for name in TRAINING_LEVERS:
        if not getattr(options, name):
            plan.skip(name, f"speed_options.{name}: false")
    cpu = device.type == "cpu"
    padded = _padded(pad_token_id)
    if not plan.decided("packing"):
        if cpu:
            _plan_packing(plan, model, features, pad_token_id, padded, classify=not config.is_ner,
                          padding_free=not plan.decided("padding_free"))
        else:
            _plan_flattening(plan, model, features, padded, classify=not config.is_ner)
    if not plan.uses("packing"):
        _off(plan, ("padding_free",), "needs packing")
    if not cpu:
        return _off(plan, TRAINING_LEVERS, f"written for CPUs; this run uses {device.type}")
    if not plan.decided("fast_dropout"):
        plan.use("fast_dropout", "dropout masks from 16-bit lanes of 64-bit draws (the same distribution)")
    if not plan.decided("fuse_qkv"):
        if processes > 1:
            plan.skip("fuse_qkv", "one process only")
        elif fused_qkv.fusable(model):
            plan.use("fuse_qkv", "one matmul for each self-attention's query, key and value projections")
        else:
            plan.skip("fuse_qkv", "the model has no BERT-style self-attention with query, key and value Linears")
    if not plan.decided("sparse_embedding"):
        default_class, _ = default_optimizer
        applies = sparse_embedding.applies(model, weight_decay=config.weight_decay,
                                           max_grad_norm=config.max_grad_norm, optimizer=config.optimizer,
                                           processes=processes, cpu=cpu)
        if applies and default_class is torch.optim.AdamW:
            plan.use("sparse_embedding", "row-sparse word-embedding gradient; AdamW updates only rows ever read")
        else:
            plan.skip("sparse_embedding", "needs one process, AdamW without weight decay, clipping on and a plain "
                      "fp32 nn.Embedding")
    return plan


def _padded(pad_token_id: int | None):
    from tunecard.encoding.batching import PadCollator

    return PadCollator(pad_token_id)


def _plan_packing(plan: SpeedPlan, model, features, pad_token_id, padded, *, classify: bool,
                  padding_free: bool) -> None:
    collator, layout, point = packing.choose_collator(model, features, padded, pad_token_id,
                                                      padding_free=padding_free, classify=classify)
    plan.batches = layout
    if layout in (packing.PACKED, packing.PADDING_FREE):
        plan.train_collator, plan.first_token_point = collator, point
        plan.use("packing", "each batch's items end to end in rows with block-diagonal attention and their own "
                 "position ids (checked against padded batches)")
        if layout == packing.PADDING_FREE:
            plan.use("padding_free", "the packed tokens go through every layer but attention as one sequence")
        elif padding_free:
            plan.skip("padding_free", "the model's outputs differ (or it lacks transformers' attention interface)")
        if not classify:  # NER evaluation packs what training packs; sorted padded batches of whole texts hold
            plan.eval_packed = collator  # little padding (docs/performance.md)
    elif layout == packing.REFUSED:
        plan.skip("packing", "the packing check failed: the model's outputs differ when items share a row, or it "
                  "does not take packed inputs (its own position or mask code)")
    else:
        plan.skip("packing", "fewer than two training examples")


def _plan_flattening(plan: SpeedPlan, model, features, padded, *, classify: bool) -> None:
    """Off the CPU: transformers' own variable-length path for token-level losses, if it gives padding's logits."""
    if classify:
        plan.skip("packing", "transformers' variable-length path is for token-level losses: padded batches")
        return
    collator = packing.flattening_collator(model)
    if collator is None or not packing.flattening_matches(model, features[:packing.CHECK_FEATURES], collator, padded):
        plan.batches = packing.REFUSED
        plan.skip("packing", "the model's outputs differ in transformers' flattened batches: padded batches")
        return
    plan.batches, plan.train_collator = FLATTENED, collator
    plan.use("packing", "transformers' DataCollatorWithFlattening: each batch as one sequence, attention kept "
             "within each item (checked against padded batches)")


@contextlib.contextmanager
def training_levers(plan: SpeedPlan, model: torch.nn.Module, features: list, padded_collator, *, console=None,
                    loss=None):
    """Apply `plan`'s levers to `model` for the block, after checking a few training batches' loss and gradients
    against the model without them (`check.py`); on a difference beyond tolerance, or a step that fails with them
    (the model's own code modifies a lever's output in place, say), the block runs with none (plain padded
    batches), `plan.fallback` says why and `console` shows it. Everything is undone afterwards.
    `loss(logits, labels)`: the loss the run trains on when it is not the model's own (class weights): the check
    compares that one."""
    numeric = [name for name in ("packing", "fast_dropout", "fuse_qkv", "sparse_embedding") if plan.uses(name)]
    reference = None
    batches = check.check_batches(features) if numeric and plan.device == "cpu" else []
    if batches:
        reference = check.step_values(model, [padded_collator(items) for items in batches], loss)
    try:
        _apply_training(plan, model)
        if reference is not None:
            collator = plan.train_collator or padded_collator
            try:
                difference = check.compare(reference, check.step_values(
                    model, [collator(items) for items in batches], loss))
            except (RuntimeError, TypeError, ValueError, IndexError) as exc:  # a lever this model's code cannot take
                model.zero_grad(set_to_none=True)
                difference = f"a training step fails with the levers ({type(exc).__name__}: " \
                             f"{str(exc).splitlines()[0][:160]})"
            if difference is not None:
                _undo(plan)
                _fall_back(plan, f"the training-mode check found {difference}")
                if console is not None:
                    console.print(f"[yellow]note[/] speed: {plan.fallback}; training with plain padded batches "
                                  "(speed: off)", highlight=False)
        with memory.long_lived_objects_frozen() if plan.mode == AUTO else contextlib.nullcontext():
            yield plan
    finally:
        _undo(plan)


def _apply_training(plan: SpeedPlan, model: torch.nn.Module) -> None:
    undo = plan._undo
    if plan.first_token_point is not None:
        packing.read_first_tokens(model, plan.first_token_point)
        undo.append(lambda: packing.stop_reading_first_tokens(model))
    if plan.uses("fast_dropout"):
        swapped = dropout.use_fast_dropout(model)
        undo.append(lambda: dropout.restore_dropout(model))
        attention_masks = attention.use_fast_attention_dropout(model)
        plan.use("fast_dropout", f"{swapped} dropout modules draw masks from 16-bit lanes of 64-bit draws"
                 + (", the attention probabilities' too" if attention_masks else ""))
    if plan.uses("padding_free") and not attention.use_tunecard_attention(model, fast_masks=plan.uses("fast_dropout")):
        raise RuntimeError("padding-free batches need tunecard's attention, which this model took in the check")
    undo.append(lambda: attention.restore_attention(model))
    if plan.uses("fuse_qkv"):
        fused_qkv.fuse_qkv(model)
        undo.append(lambda: fused_qkv.unfuse_qkv(model))
    if plan.uses("sparse_embedding"):
        sparse_embedding.set_sparse(model, True)
        undo.append(lambda: sparse_embedding.set_sparse(model, False))  # what is saved is a plain model


def _undo(plan: SpeedPlan) -> None:
    while plan._undo:
        plan._undo.pop()()


def _fall_back(plan: SpeedPlan, reason: str) -> None:
    plan.fallback = reason
    plan.batches = packing.PADDED
    plan.train_collator = plan.eval_packed = plan.first_token_point = None
    for name, lever in plan.levers.items():
        if lever.used:
            plan.skip(name, "not used: the training-mode check failed")


# ------------------------------------------------------------------------------------------------- prediction
def plan_prediction(mode: str, model: torch.nn.Module, probe: list, pad_token_id: int | None, *, is_ner: bool,
                    backend: str) -> SpeedPlan:
    """Decide packed passes for prediction (NER, torch backend, CPU). The oneDNN Linears are decided once the
    weights are bf16 (`prediction_levers`)."""
    device = "onnxruntime" if backend != "torch" else next(model.parameters()).device.type
    plan = SpeedPlan(mode, device)
    if mode == OFF:
        return _off(plan, PREDICTION_LEVERS, "speed: off")
    if backend != "torch":
        return _off(plan, PREDICTION_LEVERS, "ONNX Runtime runs the exported graph as it is")
    if device != "cpu":
        return _off(plan, PREDICTION_LEVERS, f"written for CPUs; this model runs on {device}")
    if not is_ner:
        plan.skip("packing", "length-sorted padded passes (whole texts hold little padding)")
        return plan
    collator, layout, _ = packing.choose_collator(model, probe, _padded(pad_token_id), pad_token_id,
                                                  padding_free=True)
    plan.batches = layout
    if layout in (packing.PACKED, packing.PADDING_FREE):
        plan.eval_packed = collator
        plan.use("packing", f"short texts share rows ({layout}; checked against padded passes)")
    else:
        plan.skip("packing", "the model's outputs differ when texts share a row, or it does not take packed inputs")
    return plan


def prediction_levers(plan: SpeedPlan, model: torch.nn.Module, probe_logits, *, bf16: bool) -> None:
    """Swap the bf16 model's Linears for oneDNN's fused ones (`onednn_linear.py`), kept if `probe_logits()` stays
    within ONEDNN_TOLERANCE of the plain bf16 logits (they differ by bf16 rounding: 0.03 on the probe, 0.09 at
    most on 1000 CoNLL-2003 sentences). `release(plan)` undoes it."""
    if plan.decided("onednn_linears"):
        return
    if not bf16:
        plan.skip("onednn_linears", "bf16 weights only")
        return
    before = probe_logits()
    swapped = onednn_linear.use_onednn_linears(model)
    try:
        kept = not swapped or bool((probe_logits() - before).abs().max() <= ONEDNN_TOLERANCE)
    except RuntimeError:  # a oneDNN build without bf16 matmuls for this CPU
        kept = False
    if not swapped or not kept:
        onednn_linear.restore_linears(model)
        plan.skip("onednn_linears", "no Linear to fuse" if not swapped else "this CPU's oneDNN gave other logits")
        return
    plan._undo.append(lambda: onednn_linear.restore_linears(model))
    plan.use("onednn_linears", f"{swapped} Linears (and their GELU) run as oneDNN's fused bf16 Linears")


def release(plan: SpeedPlan) -> None:
    """Undo whatever `prediction_levers` applied."""
    _undo(plan)
