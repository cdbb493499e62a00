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
own dropout, for runs without the fast masks. With the fast masks, a padding-free training batch goes through
`_PackedRowsAttention`: the same arithmetic in one autograd node with a written-out backward.

Measured gain (docs/performance.md): the attention-probability dropout with these masks, a step 1.06x
(AMX Xeon, 60 alternating steps); `_PackedRowsAttention`, 89.4 against 95.2 ms a step (1.065x, AMX Xeon,
`step_ab.py --lever rows-attention`).
"""

from __future__ import annotations

import contextlib

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from tunecard.speed.dropout import dropout as masked_dropout
from tunecard.speed.dropout import scaled_keep_factors

NAME = "tunecard_sdpa"  # registered names; never saved (transformers keeps them out of config.json)
NAME_TORCH_MASKS = "tunecard_sdpa_torch_masks"
NAMES = (NAME, NAME_TORCH_MASKS)
SLOTS = "packed_slots"  # the batch key (and keyword) of a padding-free batch's token places in the rows


def _unhandled(module, query: torch.Tensor, key: torch.Tensor, kwargs: dict) -> bool:
    """Whether this call is one this module's functions do not compute: outside training, or causal masks, caches,
    biases, grouped heads."""
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal  # as transformers' SDPA reads it
    special = any(kwargs.get(name) is not None for name in ("cache", "position_bias", "softcap"))
    return not module.training or causal or special or key.shape[1] != query.shape[1]


def _sdpa_handles(module, query: torch.Tensor, key: torch.Tensor, dropout: float, kwargs: dict) -> bool:
    """Whether SDPA itself computes this call: without dropout, or for what `_unhandled` names."""
    return dropout == 0.0 or _unhandled(module, query, key, kwargs)


def sdpa_with_fast_dropout(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           **kwargs) -> tuple[torch.Tensor, None]:
    """An AttentionInterface function: SDPA, with the probability dropout's masks from `dropout.keep_mask`.

    `query`, `key`, `value` are (batch, heads, length, head size); `attention_mask` is SDPA's (True or 0.0
    where a query may see a key). Returns (batch, length, heads, head size) as transformers' SDPA does.
    """
    if _sdpa_handles(module, query, key, dropout, kwargs):
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


def free_places(slots: torch.Tensor, places: int) -> torch.Tensor:
    """The places of `places` (the rows flattened) that no token of `slots` takes: the rows' padding."""
    free = torch.ones(places, dtype=torch.bool, device=slots.device)
    free[slots] = False
    return free.nonzero().view(-1)


def row_sources(slots: torch.Tensor, places: int) -> torch.Tensor:
    """For placing a flat sequence's tokens in rows by gathering: the token at each place of the rows flattened
    (token 0 at the padding places, `free_places`). Gathering rows (`index_select`) runs five times faster on CPU
    than scattering them (`index_copy_`): 18 against 115 us for 407 tokens of 1152 bf16 values."""
    sources = torch.zeros(places, dtype=torch.long, device=slots.device)
    sources[slots] = torch.arange(len(slots), device=slots.device)
    return sources


def placed(tokens: torch.Tensor, sources: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """`tokens` (tokens, ...) placed in the rows flattened (places, ...) by `row_sources`, zeros at the `padding`
    places. The block mask keeps those apart from every token; the zeros keep the outputs and gradients of the
    tokens independent of what the padding holds even where a mask would not."""
    return tokens.index_select(0, sources).index_fill_(0, padding, 0)


def _additive(mask: torch.Tensor) -> torch.Tensor:
    """A block mask as fp32 terms to add to the scores. For a boolean mask the lowest float, not -inf: the same
    probabilities as masking (exp gives exactly 0), and a query that sees no key gets finite weights, not NaN."""
    return torch.where(mask, 0.0, torch.finfo(torch.float32).min) if mask.dtype == torch.bool else mask


def _to_rows(states: torch.Tensor, sources: torch.Tensor, padding: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """(1, heads, tokens, size) of a flat sequence -> (rows, heads, width, size), placed by `row_sources`."""
    tokens = states[0].transpose(0, 1)  # (tokens, heads, size)
    return placed(tokens, sources, padding).view(rows, width, *tokens.shape[1:]).transpose(1, 2)


def _padding_free(attend):
    """`attend` for both layouts: rows as given, or a flat sequence placed in rows by `packed_slots`."""

    def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                  packed_slots: torch.Tensor | None = None, **kwargs):
        if packed_slots is None:
            return attend(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
        rows, width = attention_mask.shape[0], attention_mask.shape[-1]
        places = rows * width
        sources, padding = row_sources(packed_slots, places), free_places(packed_slots, places)
        query, key, value = (_to_rows(states, sources, padding, rows, width) for states in (query, key, value))
        output, _ = attend(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
        # (rows, width, heads, size) -> (1, tokens, heads, size), as the flat sequence expects
        return output.reshape(rows * width, *output.shape[2:]).index_select(0, packed_slots).unsqueeze(0), None

    return attention


_fast_masks_autograd = _padding_free(sdpa_with_fast_dropout)


def _contiguous(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`tensor` in `dtype` and row-major order, in one copy (`.to` keeps a permuted layout, or the tensor itself)."""
    return torch.empty(tensor.shape, dtype=dtype, device=tensor.device).copy_(tensor)


class _PackedRowsAttention(torch.autograd.Function):
    """The attention of a padding-free training batch as one autograd node: `_fast_masks_autograd`'s arithmetic
    with the backward written out. Outputs and gradients equal autograd's within fp32 rounding (tested; the
    matmul kernels may order sums differently from autograd's own on some CPUs, so not bit for bit).

    Left to autograd, the same computation records about forty operations a layer, each with its own dispatch, and
    several copies into and out of the rows' layout in each direction; here the queries, keys and values move into
    the rows with one gather and one fp32 cast, and their gradients back with one cast and one gather (a training
    step 89.4 against 95.2 ms on the AMX Xeon, `benchmarks/step_ab.py --lever rows-attention`). Written by hand
    because SDPA's fused CPU kernels take no dropout, and nothing else fuses a block-masked attention's backward on
    CPU short of compiling the model.
    """

    @staticmethod
    def forward(ctx, qkv, slots, mask, heads: int, dropout: float, scaling: float):
        """`qkv`: (tokens, 3 * heads * size), each token's query, key and value side by side; `slots`: each token's
        place in the rows; `mask`: the rows' block mask (rows, 1, width, width), True (or 0.0) where a query may see
        a key. Returns (tokens, heads * size) in `qkv`'s dtype."""
        size = qkv.shape[1] // (3 * heads)
        rows, width = mask.shape[0], mask.shape[-1]
        sources, padding = row_sources(slots, rows * width), free_places(slots, rows * width)
        in_rows = placed(qkv, sources, padding)
        states = _contiguous(in_rows.view(rows, width, 3, heads, size).permute(2, 0, 3, 1, 4), torch.float32)
        query, key, value = states.view(3, rows * heads, width, size).unbind(0)
        scores = torch.bmm(query, key.transpose(1, 2)).mul_(scaling)
        scores.view(rows, heads, width, width).add_(_additive(mask))
        probabilities = torch.softmax(scores, dim=-1)
        factors = scaled_keep_factors(probabilities.shape, dropout)  # as dropout.dropout draws and scales them
        dropped = probabilities * factors
        output = torch.bmm(dropped, value).view(rows, heads, width, size).permute(0, 2, 1, 3)
        output = _contiguous(output, qkv.dtype).view(rows * width, heads * size)
        ctx.save_for_backward(states, probabilities, factors, dropped, slots, sources, padding)
        ctx.scaling = scaling
        return output.index_select(0, slots)

    @staticmethod
    def backward(ctx, grad):
        states, probabilities, factors, dropped, slots, sources, padding = ctx.saved_tensors
        _, rows, heads, width, size = states.shape
        query, key, value = states.view(3, rows * heads, width, size).unbind(0)
        grad_in_rows = placed(grad, sources, padding)
        grad_output = _contiguous(grad_in_rows.view(rows, width, heads, size).permute(0, 2, 1, 3), torch.float32)
        grad_output = grad_output.view(-1, width, size)
        grad_states = torch.empty_like(states).view(3, rows * heads, width, size)
        torch.bmm(dropped.transpose(1, 2), grad_output, out=grad_states[2])
        grad_dropped = torch.bmm(grad_output, value.transpose(1, 2))
        grad_scores = torch._softmax_backward_data(grad_dropped.mul_(factors), probabilities, -1, torch.float32)
        # No masking of grad_scores: a masked key's probability is exactly 0, so its gradient already is (+-0).
        grad_scores.mul_(ctx.scaling)
        torch.bmm(grad_scores, key, out=grad_states[0])
        torch.bmm(grad_scores.transpose(1, 2), query, out=grad_states[1])
        grad_qkv = _contiguous(grad_states.view(3, rows, heads, width, size).permute(1, 3, 0, 2, 4), grad.dtype)
        grad_qkv = grad_qkv.view(rows * width, -1)
        return grad_qkv.index_select(0, slots), None, None, None, None, None


def _side_by_side(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """(tokens, 3 * heads * size): each token's query, key and value side by side, as `_PackedRowsAttention` takes
    them. The fused projection's output itself when the three are exactly its views (`fused_qkv.py`), so their
    gradients land in it directly; a concatenation of the three otherwise."""
    _, heads, tokens, size = query.shape
    base = query._base
    if (base is not None and key._base is base and value._base is base and base.is_contiguous()
            and base.numel() == tokens * 3 * heads * size):
        side_by_side = base.view(tokens, 3 * heads * size)
        # the (1, heads, tokens, size) views transformers makes of the fused output, if that is what the three are
        parts = side_by_side.view(1, tokens, 3, heads, size).permute(2, 0, 3, 1, 4)
        if all(given.data_ptr() == part.data_ptr() and given.stride()[1:] == part.stride()[1:]
               for given, part in zip((query, key, value), parts)):
            return side_by_side
    return torch.cat([states[0].transpose(0, 1) for states in (query, key, value)], dim=1).view(tokens, -1)


def _padding_free_fast(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                       packed_slots: torch.Tensor | None = None, **kwargs):
    """`NAME`'s function: `_PackedRowsAttention` for padding-free training batches (with or without dropout: the
    training-mode check runs them with dropout off), `sdpa_with_fast_dropout` (through `_padding_free`) for
    everything else."""
    if packed_slots is None or attention_mask is None or _unhandled(module, query, key, kwargs):
        return _fast_masks_autograd(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                    packed_slots=packed_slots, **kwargs)
    heads, size = query.shape[1], query.shape[-1]
    scaling = size ** -0.5 if scaling is None else scaling
    with torch.autocast(query.device.type, enabled=False):
        output = _PackedRowsAttention.apply(_side_by_side(query, key, value), packed_slots, attention_mask, heads,
                                            dropout, scaling)
    return output.view(1, -1, heads, size), None


for _name, _attend in ((NAME, _padding_free_fast), (NAME_TORCH_MASKS, _padding_free(sdpa_attention_forward))):
    AttentionInterface.register(_name, _attend)
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
