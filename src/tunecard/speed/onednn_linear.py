"""bf16 prediction's Linear layers as oneDNN matmuls with the feed-forward GELU inside (CPU only).

transformers computes a feed-forward block as a Linear, then GELU over its output: in bf16 on CPU that GELU is a
pass of its own over the widest activation of the layer, and on 4288 tokens it took 7.5 ms against the Linear's
2.0 (docs/performance.md, "oneDNN Linears"). oneDNN applies GELU in the matmul's epilogue, on the fp32
accumulator before the result is rounded to bf16 (closer to fp32, too), and its plain matmul skips some of
`F.linear`'s per-call cost. This is the operator inductor emits for frozen CPU models; written by hand because
`predict` runs eagerly (compiling costs more than most predict calls take) and transformers has no switch for it.

Measured gain (docs/performance.md): `predict` on the 1000 CoNLL-2003 dev sentences in bf16, 1545 against
1386 sentences/s without the recheck (1.12x), 1080 against 1042 with it (AMX Xeon, 5 interleaved rounds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import GELUActivation

# (Linear, activation) attribute pairs of feed-forward modules whose forward applies the one to the other's output:
# BertIntermediate and its copies (RoBERTa, ELECTRA, ...), DistilBERT's FFN.
FEED_FORWARD_PAIRS = (("dense", "intermediate_act_fn"), ("lin1", "activation"))


def _linear_pointwise():
    return getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


class OneDnnLinear(nn.Module):
    """An nn.Linear's parameters run by oneDNN, with `activation` ("gelu", algorithm "none" or "tanh") fused."""

    def __init__(self, linear: nn.Linear, activation: str = "none", algorithm: str = ""):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation, self.algorithm = activation, algorithm
        self.original = [linear]  # a list: not a submodule, so state dicts keep the Linear's own names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.weight, self.bias, self.activation,
                                               [], self.algorithm)
        return y.view(*x.shape[:-1], y.shape[-1])


def _gelu_algorithm(activation: nn.Module) -> str | None:
    """oneDNN's name for this exact GELU module's formula, or None if it is not one oneDNN computes the same way."""
    if type(activation) is GELUActivation and activation.act is F.gelu:
        return "none"
    if type(activation) is nn.GELU:
        return activation.approximate  # "none" or "tanh", oneDNN's names too
    return None


def use_onednn_linears(model: nn.Module) -> int:
    """Swap the Linears of a bf16 CPU model for `OneDnnLinear`s, fusing each feed-forward GELU into its Linear.
    Returns how many Linears were swapped: 0 where the operator is missing or the weights are not bf16 on CPU.
    `restore_linears` undoes it."""
    if _linear_pointwise() is None:
        return 0
    swapped = 0
    for module in list(model.modules()):
        for linear_name, activation_name in FEED_FORWARD_PAIRS:
            linear, activation = getattr(module, linear_name, None), getattr(module, activation_name, None)
            algorithm = _gelu_algorithm(activation) if isinstance(activation, nn.Module) else None
            if _bf16_cpu_linear(linear) and algorithm is not None:
                setattr(module, linear_name, OneDnnLinear(linear, "gelu", algorithm))
                setattr(module, activation_name, _FusedAway(activation))
                swapped += 1
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if _bf16_cpu_linear(child):
                setattr(module, name, OneDnnLinear(child))
                swapped += 1
    return swapped


def _bf16_cpu_linear(module) -> bool:
    return type(module) is nn.Linear and module.weight.dtype == torch.bfloat16 and module.weight.device.type == "cpu"


class _FusedAway(nn.Identity):
    """Where an activation computed inside the preceding `OneDnnLinear` was; keeps it for `restore_linears`."""

    def __init__(self, activation: nn.Module):
        super().__init__()
        self.original = [activation]


def restore_linears(model: nn.Module) -> None:
    """Put the plain Linears and activations back (the same parameters)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, (OneDnnLinear, _FusedAway)):
                setattr(module, name, child.original[0])
