"""Batches of features: padding, and length-sorted forward passes for evaluation and prediction.

Evaluation and prediction sort inputs by length so each batch pads to its own longest input; results are
yielded per batch with the original feature indices, so callers stream them and keep no full logits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from tunecard.encoding.encoder import IGNORE_INDEX, Feature


class FeatureDataset(torch.utils.data.Dataset):
    """Features as a map-style dataset of model-input dicts (what the Trainer's dataloader expects), with the
    examples they were encoded from (their gold labels are what evaluation scores against)."""

    def __init__(self, features: list[Feature], examples: list | None = None):
        self.features = features
        self.examples = examples if examples is not None else []

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index].model_inputs()

    def lengths(self) -> list[int]:
        return [len(f) for f in self.features]


# Batches are padded to a multiple of this: few distinct shapes, so oneDNN (CPU) and cuBLAS reuse their
# kernels instead of preparing new ones for every sequence length (measured: docs/performance.md).
PAD_TO_MULTIPLE_OF = 16
# Length-sorted passes (evaluation, prediction) pad each batch to its longest exactly: a sorted batch is nearly one
# length already, and rounding up to 16 computed 29% more tokens on the CoNLL-2003 dev sentences
# (docs/performance.md).
SORTED_PAD_TO_MULTIPLE_OF = 1
# Packed sorted passes (token classification): sentences end to end in rows of this many tokens, and a batch of
# `batch_size` x PACKED_TOKENS_PER_INPUT tokens. Short sentences then share rows, so the attention runs over
# far fewer (row, head) pairs: 1.4x faster forward passes on the CoNLL-2003 dev sentences (docs/performance.md).
# 64 rather than 128 since passes are padding-free (only the attention sees the rows): bf16 `predict` of those
# sentences 1258 vs 1115 sentences/s with its fp32 rechecks, 1714 vs 1581 without (SDPA over 77 rows of 64 took
# 2.84 ms against 3.71 over 36 rows of 128); rows of 32 were slower again (1155 / 1637).
PACKED_ROW_TOKENS = 64
PACKED_TOKENS_PER_INPUT = 64


def is_multi_hot(labels) -> bool:
    """Multi-label targets (0.0/1.0 per label, floats), not NER's per-subword label ids (ints)."""
    return isinstance(labels, list) and bool(labels) and isinstance(labels[0], float)


def round_up(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


class PadCollator:
    """Pads a list of model-input dicts to the longest in the batch (labels with -100 for NER; multi-label targets
    are float rows, one per item)."""

    def __init__(self, pad_token_id: int | None, pad_to_multiple_of: int = PAD_TO_MULTIPLE_OF):
        self.pad_token_id = pad_token_id if pad_token_id is not None else 0
        self.multiple = max(1, pad_to_multiple_of)

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(item["input_ids"]) for item in items)
        longest = round_up(longest, self.multiple)
        batch: dict[str, torch.Tensor] = {}
        for key in items[0]:
            if key == "labels" and not isinstance(items[0]["labels"], list):
                batch[key] = torch.tensor([item[key] for item in items], dtype=torch.long)
                continue
            if key == "labels" and is_multi_hot(items[0]["labels"]):  # multi-label targets: one row per item
                batch[key] = torch.tensor([item[key] for item in items], dtype=torch.float32)
                continue
            pad = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX}.get(key, 0)
            rows = [list(item[key]) + [pad] * (longest - len(item[key])) for item in items]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        return batch


def autocast_context(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def unwrapped_forward(model: torch.nn.Module):
    """The block calls `model`'s own forward. accelerate, preparing a model for mixed-precision training, replaces
    `model.forward` with one that always runs under autocast and keeps the original as `_original_forward`
    (Accelerator.prepare_model); an fp32 pass in the middle of training needs the original."""
    original = model.__dict__.get("_original_forward")
    wrapped = model.__dict__.get("forward")
    if original is None or wrapped is None:
        yield
        return
    model.forward = original
    try:
        yield
    finally:
        model.forward = wrapped


def cpu_bf16_autocast() -> bool:
    """Whether the code runs inside a CPU autocast region that computes in bf16."""
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks at once)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def token_budget_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices, longest first, grouped into batches of at most `budget` tokens (an item longer is alone)."""
    batches: list[list[int]] = []
    used = budget
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if used + lengths[index] > budget:
            batches.append([])
            used = 0
        batches[-1].append(index)
        used += lengths[index]
    return batches


# The most two fp32 passes' logits may differ and still be "the same answer" (padding_changes_outputs here, the
# speed layer's packing checks): observed differences are ~1e-6 (kernels' other blocking), held to this share of the
# largest |logit| where that is below 1, since a freshly initialised head's logits of ~0.01-0.1 shrink a difference
# in the encoder's states as much (a tiny ConvBERT's convolution across two texts moved its classification logits
# by 7e-5 at a scale of 0.016: an absolute bound alone would have passed it).
PARITY_TOLERANCE = 1e-3


def within_parity(found: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether `found` gives `reference`'s logits: same shape, every |difference| at most PARITY_TOLERANCE times the
    smaller of 1 and the largest |reference logit|."""
    scale = min(1.0, reference.abs().max().item())
    return found.shape == reference.shape and (found - reference).abs().max().item() <= PARITY_TOLERANCE * scale


def padding_changes_outputs(model, features: list[Feature], collator: PadCollator) -> bool:
    """Whether the model gives a text other logits in a padded batch than alone (unpadded), on `features`.

    Most encoders mask padding out, so a text's logits do not depend on the texts beside it. Some compute over the
    padding: a convolution across positions (ConvBERT), pooling or relative positions from the padded length
    (Funnel). Such a model's prediction must not depend on which texts share a batch, and pipeline runs one text
    at a time: the predictor then does too.
    """
    if len(features) < 2:
        return False
    alone = {}
    for index, feature in enumerate(features):
        for _, logits, _ in forward_batches(model, [feature], collator, 1, with_labels=False):
            alone[index] = logits[0]
    for indices, logits, _ in forward_batches(model, features, collator, len(features), with_labels=False):
        for row, index in enumerate(indices):
            expected = alone[index]
            if not within_parity(logits[row][: expected.shape[0]] if expected.dim() == 2 else logits[row], expected):
                return True
    return False


@torch.inference_mode()
def forward_batches(
    model: torch.nn.Module,
    features: list[Feature],
    collator: PadCollator,
    batch_size: int,
    bf16: bool = False,
    with_labels: bool = True,
    packed=None,
) -> Iterator[tuple[list[int], torch.Tensor, dict[str, torch.Tensor]]]:
    """Run the model over features in length-sorted batches.

    Args:
        packed: a `packing.PackedCollator` (token classification, a model that passed `packing_matches`): the
            batches' sentences run packed in rows of PACKED_ROW_TOKENS (padding-free if the collator is flat,
            in the context its `passes(model)` gives); the logits are yielded as padding gives them.

    Yields:
        (feature indices, float32 logits of shape [batch, seq, labels] or [batch, labels], the padded batch).
    """
    model.eval()
    first_parameter = next(model.parameters())
    device, dtype = first_parameter.device, first_parameter.dtype
    lengths = [len(f) for f in features]
    if packed is None:
        batches = length_sorted_batches(lengths, batch_size)
    else:
        batches = token_budget_batches(lengths, batch_size * PACKED_TOKENS_PER_INPUT)
    flat = packed is not None and packed.flat
    with (packed.passes(model) if packed is not None else contextlib.nullcontext(True) as ready,
          contextlib.nullcontext() if bf16 else unwrapped_forward(model)):  # fp32 asked for: no autocast at all
        if not ready:
            raise ValueError("padding-free passes need tunecard's attention (transformers' SDPA through its "
                             "AttentionInterface); this model has other attention code: pass packed rows")
        for indices in batches:
            items = [features[i].model_inputs() if with_labels else dict(features[i].inputs) for i in indices]
            batch = collator(items)
            where = None
            if packed is None:
                inputs = batch
            elif flat:
                inputs = packed.pack_flat(items, PACKED_ROW_TOKENS)
            else:
                inputs, where = packed.pack(items, PACKED_ROW_TOKENS)
            inputs = {k: v.to(device) for k, v in inputs.items() if k != "labels"}
            mask = inputs.get("attention_mask")
            if mask is not None and mask.is_floating_point():  # eager attention adds it to scores in the weights' dtype
                inputs["attention_mask"] = mask.to(dtype)
            with autocast_context(device, bf16):
                logits = model(**inputs).logits
            if packed is not None:
                logits = packed.unpack(logits, where, [lengths[i] for i in indices], batch["input_ids"].shape[1])
            yield indices, logits.float(), batch
