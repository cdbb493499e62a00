"""Padding-free batches: several sentences share one row.

A random batch of 16 CoNLL-2003 sentences pads to its longest (about three times the average length), so
most of a padded step computes on padding. Packing puts the batch's sentences end to end in as few rows as
fit the longest one, gives each its own position ids, and masks attention block by block so no sentence
sees another. The model computes the same function on the same batch: same loss, same gradients (up to
float rounding), same optimizer steps; only the padding is gone. Batch composition (the sampler) is
untouched, unlike length bucketing. transformers packs only for flash-attention on GPUs
(DataCollatorWithFlattening); the block mask here works with SDPA and eager attention on any device.

Padding-free (`flat=True`, the default for training): the rows still leave padding at their ends, a quarter
of the tokens on random CoNLL-2003 batches, and every Linear layer computes on it. A flat batch is the packed
rows' tokens without their padding, one sequence [1, tokens], plus `packed_slots`: where each token sits in
the rows. Embeddings, projections, feed-forward layers, LayerNorm and dropout then see only real tokens;
`attention.py` scatters queries, keys and values into the rows, attends there under the block mask, and
gathers the result back. (transformers passes the extra key to the attention function the way it passes
flash-attention's sequence lengths.) Only attention functions registered by `attention.py` read it.

Text classification (`classify=True`): the head reads one token per item (BERT's pooler, DistilBERT's and
RoBERTa's heads all take position 0). Labels are then one per item (a class id, or a multi-label item's row of
float targets), and the batch carries `packed_firsts`, where
each item's first token sits; `read_first_tokens` hooks the model so that from there on only those tokens'
states go on, one per item [items, 1, hidden], and the head computes on exactly what it reads from a padded
batch. The cheapest place where the check passes is taken: after the last layer's attention block (its
feed-forward then computes one token per item), or on the encoder's output (DistilBERT adds the block's
residual outside it). (Computing only the first tokens' queries inside that block was measured at 2% of a step
and removed: docs/performance.md.) Written by hand: transformers packs sequences only for
token-level and causal language-model losses.

Packing is used only after `packing_matches` has checked, on real training features, that the packed
forward pass gives the padded one's logits: a model type whose positions or masks work differently falls
back to padding instead of training on wrong inputs; the padding-free layout is checked the same way.

Measured gain (docs/performance.md): packed rows 1.40x the samples/s of padded batches (3000 CoNLL-2003
sentences, AMX Xeon, bf16); padding-free packed text classification 1.74x a step on SST-2 (`step_ab.py --lever
text-packing`, AMD EPYC, fp32); padding-free NER batches 77% of packed rows' tokens, 43% of padding's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from tunecard.encoding.batching import PAD_TO_MULTIPLE_OF, PadCollator, is_multi_hot, round_up, within_parity
from tunecard.encoding.encoder import IGNORE_INDEX, Feature
from tunecard.environment import position_offset
from tunecard.speed.attention import SLOTS, free_places, tunecard_attention

CHECK_FEATURES = 16  # training features run both ways before packing is trusted
PACKED, PADDED, REFUSED = "packed", "padded", "padded (the packing check failed for this model)"
PADDING_FREE = "packed, padding-free"  # flat batches (PackedCollator(flat=True)); training.batches in metrics.json
FIRSTS = "packed_firsts"  # classification batches: each item's first token, an index into the tokens flattened
HOOK = "_tunecard_first_tokens"  # the model attribute holding read_first_tokens' hook handle
# PackedCollator's default for a flat batch's length (see _round_flat_length): 32 rather than the rows' 16, since
# on 3000 CoNLL-2003 sentences the process's peak RSS fell from 1366 to 1173 MB at the same speed
# (docs/performance.md).
FLAT_LENGTH_MULTIPLE = 32


def first_fit_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Item indices grouped into rows of at most `capacity` tokens, longest first (first-fit decreasing)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return rows


def placements(lengths: Sequence[int], capacity: int = 0) -> tuple[int, list[tuple[int, int]]]:
    """Where each item goes: the number of rows, and (row, first column) per item in input order.

    Rows hold `capacity` tokens, or the longest item if that is longer (0: as long as the longest item).
    """
    where: list[tuple[int, int]] = [(0, 0)] * len(lengths)
    rows = first_fit_rows(lengths, max(capacity, max(lengths)))
    for row, members in enumerate(rows):
        start = 0
        for index in members:
            where[index] = (row, start)
            start += lengths[index]
    return len(rows), where


class PackedCollator:
    """Packs items (token classification; text classification with `classify`) into rows as long as the batch's
    longest item.

    Output: input_ids, token_type_ids (if the items have them), position_ids and labels of shape [rows, T],
    and a boolean attention mask [rows, 1, T, T] (True = may attend) that is block-diagonal per item.
    Padding positions attend only to themselves, so softmax never sees an empty row.

    With `flat=True` the call returns the padding-free batch instead (see the module's docstring): input_ids,
    token_type_ids, position_ids and labels of shape [1, tokens] (the items' tokens in order), the rows' attention
    mask (the rows as wide as the longest item, not a multiple of 16: see `pack_flat`), and `packed_slots`
    [tokens] (indices into the rows flattened). Such a batch needs an attention function from `attention.py`.

    With `classify=True` (text classification) labels are one per item [items], and `packed_firsts` [items]
    gives each item's first token as an index into the rows flattened (the flat sequence, if flat); the model
    needs `read_first_tokens`, and its logits are one row per item, in order.

    Length-sorted passes (evaluation, prediction) call `pack` with longer rows and `unpack` the logits back to
    one row per item: short sentences of similar length then share rows instead of each being a row of its own.
    """

    def __init__(self, pad_token_id: int | None, position_offset: int = 0, additive_mask_dtype=None,
                 pad_to_multiple_of: int = PAD_TO_MULTIPLE_OF, flat: bool = False, classify: bool = False,
                 flat_multiple: int = FLAT_LENGTH_MULTIPLE):
        self.pad_token_id = pad_token_id if pad_token_id is not None else 0
        self.position_offset = position_offset
        # eager attention adds the mask to its scores: it needs 0 / -inf-like floats, not booleans
        self.additive_mask_dtype = additive_mask_dtype
        self.multiple = max(1, pad_to_multiple_of)  # the rows' width
        self.flat_multiple = max(1, flat_multiple)  # a flat batch's length
        self.flat = flat
        self.classify = classify

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        return self.pack_flat(items) if self.flat else self.pack(items)[0]

    def passes(self, model):
        """A context in which `model` takes this collator's batches: flat batches need `attention.py`'s attention
        (switched on for the block if the model runs plain SDPA); yields whether the model is ready."""
        return tunecard_attention(model) if self.flat else contextlib.nullcontext(True)

    def pack(self, items: Sequence[dict], capacity: int = 0) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]]]:
        """The packed batch with rows of `capacity` tokens (see `placements`), and (row, column) per item."""
        batch, where, _ = self._pack(items, capacity)
        return batch, where

    def _pack(self, items: Sequence[dict], capacity: int = 0, flat: bool = False):
        """`pack`'s batch and placements, and each token's index in the rows flattened (items in order). `flat`:
        rows for a flat batch's attention (`pack_flat`), see there."""
        lengths = [len(item["input_ids"]) for item in items]
        row_count, where = placements(lengths, capacity)
        width = max(start + length for length, (_, start) in zip(lengths, where))
        if flat and not capacity:
            width = max(width, -(-round_up(sum(lengths), self.flat_multiple) // row_count))
        else:
            width = round_up(width, self.multiple)
        shape = (row_count, width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        token_labels = "labels" in items[0] and not self.classify
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long) if token_labels else None
        positions = torch.zeros(shape, dtype=torch.long)
        segment = torch.full(shape, -1, dtype=torch.long)  # which item each token belongs to
        token_types = torch.zeros(shape, dtype=torch.long) if "token_type_ids" in items[0] else None
        # Gathered into flat lists and written with one indexed copy per tensor (not a copy per item).
        columns: dict[str, list[int]] = {"target": [], "input_ids": [], "positions": [], "segment": [], "labels": [],
                                         "token_type_ids": []}
        for index, (item, length, (row, start)) in enumerate(zip(items, lengths, where)):
            first = row * shape[1] + start
            columns["target"].extend(range(first, first + length))
            columns["input_ids"].extend(item["input_ids"])
            columns["positions"].extend(range(self.position_offset, self.position_offset + length))
            columns["segment"].extend([index] * length)
            if labels is not None:
                columns["labels"].extend(item["labels"])
            if token_types is not None:
                columns["token_type_ids"].extend(item["token_type_ids"])
        target = torch.tensor(columns["target"])
        for tensor, name in ((input_ids, "input_ids"), (positions, "positions"), (segment, "segment"),
                             (labels, "labels"), (token_types, "token_type_ids")):
            if tensor is not None:
                tensor.view(-1)[target] = torch.tensor(columns[name], dtype=torch.long)
        same_item = segment[:, :, None] == segment[:, None, :]
        is_token = (segment >= 0)[:, :, None]
        mask = (same_item & is_token) | torch.eye(shape[1], dtype=torch.bool)
        mask = mask[:, None]
        if self.additive_mask_dtype is not None:
            mask = torch.zeros(mask.shape, dtype=self.additive_mask_dtype).masked_fill(
                ~mask, torch.finfo(self.additive_mask_dtype).min)
        batch = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}
        if labels is not None:
            batch["labels"] = labels
        if token_types is not None:
            batch["token_type_ids"] = token_types
        if self.classify:
            if "labels" in items[0]:  # a class id per item, or a multi-label item's float targets
                dtype = torch.float32 if is_multi_hot(items[0]["labels"]) else torch.long
                batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=dtype)
            batch[FIRSTS] = torch.tensor([row * shape[1] + start for row, start in where])
        return batch, where, target

    def pack_flat(self, items: Sequence[dict], capacity: int = 0) -> dict[str, torch.Tensor]:
        """`pack`'s batch without the rows' padding (see the class docstring): the items' tokens in order.

        Without `capacity` (training batches) the rows are as wide as the longest item, or wider only as far as
        the flat length's rounding needs free places, instead of a multiple of 16: only attention sees the rows
        here, and its work grows with their area (a quarter less on SST-2 and CoNLL-2003 batches). The multiple
        of 16 serves the Linear layers of packed rows, which a flat batch does not have."""
        batch, _, slots = self._pack(items, capacity, flat=True)
        slots = self._round_flat_length(slots, batch["input_ids"].numel())
        per_item = {"attention_mask", FIRSTS, *(["labels"] if self.classify else [])}
        flat = {name: tensor.view(-1)[slots].unsqueeze(0) for name, tensor in batch.items() if name not in per_item}
        flat.update({name: batch[name] for name in per_item if name in batch})
        if self.classify:  # the items' tokens are in order: each starts where the ones before it end
            lengths = torch.tensor([len(item["input_ids"]) for item in items])
            flat[FIRSTS] = lengths.cumsum(0) - lengths
        return {**flat, SLOTS: slots}

    def _round_flat_length(self, slots: torch.Tensor, row_slots: int) -> torch.Tensor:
        """`slots` followed by padding places of the rows, so that a flat batch is a multiple of `flat_multiple`
        tokens long, or as long as the rows' places if they are fewer. Why: every distinct length makes oneDNN (bf16
        matmuls) build and cache new kernels; with a new length at every step the cache grew a training run's
        RSS by 1.2 GB (docs/performance.md). A padding place attends only to itself, its label is ignored and
        nothing reads its output, so the loss, the gradients and every other token's logits are unchanged."""
        extra = min(round_up(len(slots), self.flat_multiple), row_slots) - len(slots)
        if extra <= 0:
            return slots
        return torch.cat([slots, free_places(slots, row_slots)[:extra]])

    @staticmethod
    def unpack(logits: torch.Tensor, where: Sequence[tuple[int, int]] | None, lengths: Sequence[int],
               width: int) -> torch.Tensor:
        """Packed logits [rows, T, labels] as one row per item [items, width, labels], as padding would have
        given them; positions past an item's end hold the first token's values (padding: never read).
        `where` None: the logits of a flat batch [1, tokens, labels], the items' tokens in order."""
        rows, row_width, _ = logits.shape
        if where is None:
            first = torch.tensor([0, *lengths[:-1]]).cumsum(0)
        else:
            first = torch.tensor([row * row_width + start for row, start in where])
        columns = torch.arange(width)
        index = (first[:, None] + columns).masked_fill(columns >= torch.tensor(lengths)[:, None], 0)
        return logits.reshape(rows * row_width, -1)[index.to(logits.device)]


def packed_collator_for(model, pad_token_id: int | None, flat: bool = False, classify: bool = False) -> PackedCollator:
    eager = getattr(model.config, "_attn_implementation", "eager") not in ("sdpa", "flex_attention")
    return PackedCollator(pad_token_id, position_offset(model), torch.float32 if eager else None, flat=flat,
                          classify=classify)


def _first_tokens_only(module, args, kwargs, output):
    """Forward hook (with kwargs) on an encoder: given `packed_firsts`, its output becomes those tokens' states."""
    firsts = kwargs.get(FIRSTS)
    if firsts is None:
        return output
    hidden = output[0]
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, firsts).unsqueeze(1)  # [items, 1, hidden]
    if isinstance(output, tuple):
        return (picked, *output[1:])
    output["last_hidden_state"] = picked  # a ModelOutput: item and attribute both
    return output


class _Reading:
    """What `read_first_tokens` installed at a point; `remove` takes it away."""

    def __init__(self, point, handle):
        self.point, self.handle = point, handle

    def remove(self) -> None:
        self.handle.remove()


def first_token_points(model) -> list:
    """Points of a sequence classifier after which its head needs only each text's first token, cheapest first:
    the last layer's attention block computing only the first tokens' queries (`FirstQueries`, for BERT-style
    blocks), the same block's output (its feed-forward then runs on one token per text: two thirds of that
    layer's matmuls), and the encoder. Empty if the model has no encoder to hook."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return []
    encoder = next((getattr(base, name) for name in ("encoder", "transformer")
                    if isinstance(getattr(base, name, None), torch.nn.Module)), None)
    if encoder is None:
        return []
    layers = getattr(encoder, "layer", None)
    last_attention = getattr(layers[-1], "attention", None) if isinstance(layers, torch.nn.ModuleList) and len(layers) else None
    if not isinstance(last_attention, torch.nn.Module):
        return [encoder]
    return [last_attention, encoder]


def read_first_tokens(model, point=None) -> bool:
    """Hook `point` (one of `first_token_points`; default the encoder, the last) so that batches with
    `packed_firsts` leave it as one token per text, which is all the head reads (see the module's docstring).
    Returns whether the model has such a point; without the key in a batch the hook changes nothing.
    `stop_reading_first_tokens` removes it."""
    stop_reading_first_tokens(model)
    points = first_token_points(model)
    if not points:
        return False
    point = points[-1] if point is None else point
    reading = _Reading(point, point.register_forward_hook(_first_tokens_only, with_kwargs=True))
    setattr(model, HOOK, reading)
    return True


def reading_point(model):
    """The point `read_first_tokens` hooked, or None."""
    reading = getattr(model, HOOK, None)
    return None if reading is None else reading.point


def stop_reading_first_tokens(model) -> None:
    reading = getattr(model, HOOK, None)
    if reading is not None:
        reading.remove()
        setattr(model, HOOK, None)


@torch.no_grad()
def packing_matches(model, features: list[Feature], packed: PackedCollator, padded: PadCollator) -> bool:
    """Whether the packed forward pass gives the padded one's logits for these features (fp32, eval mode)."""
    items = [feature.model_inputs() for feature in features]
    if len(items) < 2:
        return False
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        padded_batch = padded(items)
        reference = model(**{k: v.to(device) for k, v in padded_batch.items() if k != "labels"}).logits.float()
        packed_batch = packed(items)
        logits = model(**{k: v.to(device) for k, v in packed_batch.items() if k != "labels"}).logits.float()
    except (TypeError, ValueError, RuntimeError, IndexError):  # no position ids or 4-D masks in this model
        return False
    finally:
        model.train(was_training)
    if packed.classify:  # one row of logits per item, in order, either way
        return within_parity(logits, reference)
    lengths = [len(item["input_ids"]) for item in items]
    where = None if packed.flat else placements(lengths)[1]
    return _tokens_within_parity(packed.unpack(logits, where, lengths, max(lengths)), reference, lengths)


def _tokens_within_parity(found: torch.Tensor, reference: torch.Tensor, lengths: Sequence[int]) -> bool:
    """`within_parity` over each item's real tokens (padding's logits are nobody's)."""
    real = torch.cat([reference[i, :length] for i, length in enumerate(lengths)])
    return within_parity(torch.cat([found[i, :length] for i, length in enumerate(lengths)]), real)


def choose_collator(model, features: list[Feature], padded: PadCollator, pad_token_id: int | None,
                    padding_free: bool = False, classify: bool = False):
    """(collator, layout, first-token point) for training batches or prediction passes: packed rows if the model
    gives the same outputs packed; with `padding_free`, flat batches if it also gives them so under
    `attention.py`'s attention (the passes switch to it: `PackedCollator.passes`; training switches for its whole
    run). `classify`: a sequence classifier, which needs `read_first_tokens` at the returned point (the cheapest
    of `first_token_points` at which the check passed) to take packed batches. The layout is what metrics.json
    records (PACKED, PADDING_FREE, PADDED or REFUSED). The model is left as it was."""
    if len(features) < 2:  # one example: nothing shares a row, and nothing to check
        return padded, PADDED, None
    checked = features[:CHECK_FEATURES]
    packed = packed_collator_for(model, pad_token_id, classify=classify)
    point = None
    try:
        if classify:  # the cheapest place to keep only the first tokens at which the check passes
            point = next((point for point in first_token_points(model)
                          if read_first_tokens(model, point) and packing_matches(model, checked, packed, padded)),
                         None)
            if point is None:
                return padded, REFUSED, None
        elif not packing_matches(model, checked, packed, padded):
            return padded, REFUSED, None
        if padding_free:
            flat = packed_collator_for(model, pad_token_id, flat=True, classify=classify)  # SDPA's boolean mask
            with tunecard_attention(model) as ready:
                if ready and packing_matches(model, checked, flat, padded):
                    return flat, PADDING_FREE, point
        return packed, PACKED, point
    finally:
        stop_reading_first_tokens(model)


def flattening_collator(model):
    """transformers' `DataCollatorWithFlattening` for this model (each batch as one sequence; the model keeps
    attention within each item from the position ids, or from FlashAttention's sequence lengths), or None where
    the model cannot take position ids."""
    from transformers import DataCollatorWithFlattening

    attention_kind = str(getattr(model.config, "_attn_implementation", ""))
    return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX,
                                      return_flash_attn_kwargs=attention_kind.startswith("flash"),
                                      position_ids_start=position_offset(model))


@torch.no_grad()
def flattening_matches(model, features: list[Feature], flattening, padded: PadCollator) -> bool:
    """Whether the flattened forward pass gives the padded one's logits for these features (eval mode)."""
    items = [feature.model_inputs() for feature in features]
    if len(items) < 2:
        return False
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        reference = model(**{k: v.to(device) for k, v in padded(items).items() if k != "labels"}).logits.float()
        batch = flattening([{"input_ids": item["input_ids"], "labels": item["labels"]} for item in items],
                           return_tensors="pt")
        logits = model(**{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()
                          if k != "labels"}).logits.float()
    except (TypeError, ValueError, RuntimeError, IndexError):
        return False
    finally:
        model.train(was_training)
    lengths = [len(item["input_ids"]) for item in items]
    return _tokens_within_parity(PackedCollator.unpack(logits, None, lengths, max(lengths)), reference, lengths)
