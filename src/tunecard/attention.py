"""Attention for CPU training whose probability dropout uses tunecard's cheaper masks (`dropout.py`).

On CPU, torch's SDPA runs its unfused math path whenever dropout is on, and draws that path's mask with one
Mersenne Twister number per attention probability: a tenth of a packed training step here
(docs/performance.md). This module registers the same computation with transformers' AttentionInterface, with
the mask drawn by `dropout.keep_mask`. Written by hand because the interface offers only whole attention
functions: no library option swaps the random masks inside SDPA.

The arithmetic follows SDPA's math path for bf16 inputs: scores, softmax, dropout and the weighted sum in fp32,
the result cast back to the inputs' dtype. In evaluation, or without dropout, it is SDPA itself.

Both registered functions also take padding-free batches (`packing.py`): given `packed_slots`, the queries,
keys and values of the one flat sequence are scattered into the rows the block mask describes, attended there,
and gathered back, so every other layer computes on real tokens only. `NAME_TORCH_MASKS` does that with SDPA's
own dropout, for runs without the fast masks.
"""

from __future__ import annotations

import contextlib

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from .dropout import dropout as masked_dropout

NAME = "tunecard_sdpa"  # registered names; never saved (transformers keeps them out of config.json)
NAME_TORCH_MASKS = "tunecard_sdpa_torch_masks"
NAMES = (NAME, NAME_TORCH_MASKS)
SLOTS = "packed_slots"  # the batch key (and keyword) of a padding-free batch's token places in the rows


def sdpa_with_fast_dropout(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           **kwargs) -> tuple[torch.Tensor, None]:
    """An AttentionInterface function: SDPA, with the probability dropout's masks from `dropout.keep_mask`.

    `query`, `key`, `value` are (batch, heads, length, head size); `attention_mask` is SDPA's (True or 0.0
    where a query may see a key). Returns (batch, length, heads, head size) as transformers' SDPA does.
    """
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal  # as transformers' SDPA reads it
    special = any(kwargs.get(name) is not None for name in ("cache", "position_bias", "softcap"))
    if not module.training or dropout == 0.0 or causal or special or key.shape[1] != query.shape[1]:
        # SDPA handles what this function does not: causal masks, caches, biases, grouped heads
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    with torch.autocast(query.device.type, enabled=False):
        scores = torch.matmul(query.float(), key.float().transpose(-2, -1)) * scaling
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            # The lowest float, not -inf: a query that sees no key (padding in a packed row) gets finite
            # uniform weights instead of NaN; nothing reads that position's output.
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        elif attention_mask is not None:
            scores = scores + attention_mask
        probabilities = masked_dropout(torch.softmax(scores, dim=-1), dropout, training=True)
        output = torch.matmul(probabilities, value.float()).to(value.dtype)
    return output.transpose(1, 2).contiguous(), None


def _to_rows(states: torch.Tensor, slots: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """(1, heads, tokens, size) of a flat sequence -> (rows, heads, width, size), token i at row-major `slots[i]`
    and zeros in the rows' padding (which attends only to itself and is never gathered back)."""
    tokens = states[0].transpose(0, 1)  # (tokens, heads, size)
    placed = tokens.new_zeros(rows * width, *tokens.shape[1:]).index_copy(0, slots, tokens)
    return placed.view(rows, width, *tokens.shape[1:]).transpose(1, 2)


def _padding_free(attend):
    """`attend` for both layouts: rows as given, or a flat sequence placed in rows by `packed_slots`."""

    def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                  packed_slots: torch.Tensor | None = None, **kwargs):
        if packed_slots is None:
            return attend(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
        rows, width = attention_mask.shape[0], attention_mask.shape[-1]
        query, key, value = (_to_rows(states, packed_slots, rows, width) for states in (query, key, value))
        output, _ = attend(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
        # (rows, width, heads, size) -> (1, tokens, heads, size), as the flat sequence expects
        return output.reshape(rows * width, *output.shape[2:]).index_select(0, packed_slots).unsqueeze(0), None

    return attention


for _name, _attend in ((NAME, sdpa_with_fast_dropout), (NAME_TORCH_MASKS, sdpa_attention_forward)):
    AttentionInterface.register(_name, _padding_free(_attend))
    AttentionMaskInterface.register(_name, sdpa_mask)  # the masks SDPA gets (an unregistered name gets none)


def use_tunecard_attention(model, fast_masks: bool = True) -> bool:
    """Switch a model that runs transformers' SDPA through the AttentionInterface to this module's attention:
    `sdpa_with_fast_dropout` (`fast_masks`) or SDPA with its own masks, either taking padding-free batches.

    Returns whether it was switched; models with their own attention code (or eager/flash attention) are left
    alone. `restore_attention` switches back before the model is saved or used for anything else.
    """
    if not getattr(type(model), "_supports_attention_backend", False):
        return False
    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", *NAMES):
        return False
    name = NAME if fast_masks else NAME_TORCH_MASKS
    model.set_attn_implementation(name)
    return model.config._attn_implementation == name


def use_fast_attention_dropout(model) -> bool:
    return use_tunecard_attention(model, fast_masks=True)


@contextlib.contextmanager
def tunecard_attention(model):
    """The block runs `model` under this module's attention (switched to it with SDPA's own masks if it runs
    plain SDPA, and back afterwards); yields whether the model runs it, i.e. takes padding-free batches."""
    before = getattr(model.config, "_attn_implementation", None)
    ready = before in NAMES or use_tunecard_attention(model, fast_masks=False)
    try:
        yield ready
    finally:
        if getattr(model.config, "_attn_implementation", None) != before:
            model.set_attn_implementation(before)


def restore_attention(model) -> None:
    if getattr(model.config, "_attn_implementation", None) in NAMES:
        model.set_attn_implementation("sdpa")
