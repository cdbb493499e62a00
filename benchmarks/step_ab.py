"""tunecard's CPU training step with and without one lever, interleaved.

Two copies of the model train on the same batches of 16 CoNLL-2003 sentences, one step each in turn (which
goes first alternates), with everything else `tunecard train` uses on CPU: bf16 autocast where the CPU has
bf16, fast dropout masks (the attention probabilities' too), fused query/key/value projections, sparse
embedding rows, clipping handed to the fused AdamW step. The lever: `padding-free` (`packing.py`: the packed rows' tokens as one sequence outside attention, against
packed rows), `text-packing` (text classification on the first 3000 SST-2 sentences: padding-free packed
batches against padded ones) or `float-masks` (`dropout.py`'s masks as 1.0 / 0.0 in the input's dtype and plain
tensor operations, against the boolean masks and torch's dropout arithmetic it used before; both padding-free,
with the attention left to autograd as when it was measured), or `rows-attention` (`attention._PackedRowsAttention`
against the same arithmetic left to autograd). (The bf16 weight copies and the first-query attention were
measured here below 3% and removed from tunecard: issue 27.)
Prints the median time of each part of a step and how often the lever won.

    .venv/bin/python benchmarks/step_ab.py [--lever padding-free|text-packing|float-masks|rows-attention]
                                            [--steps 150] [--warmup 20]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from pathlib import Path

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from tunecard.config import build_config
from tunecard.data import read_corpus
from tunecard.encoding.batching import PadCollator
from tunecard.encoding.encoder import Encoder
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.environment import cpu_supports_bf16
from tunecard.training.inputs import label_names, read_splits
from tunecard.speed import attention, sparse_embedding
from tunecard.speed import dropout as tunecard_dropout
from tunecard.speed.attention import use_fast_attention_dropout
from tunecard.speed.dropout import use_fast_dropout
from tunecard.speed.fused_qkv import fuse_qkv
from tunecard.speed.packing import choose_collator

CONFIG = "benchmarks/configs/conll2003-3000-1epoch.yaml"
PARTS = ("forward", "backward", "clipping", "optimizer", "step")
VARIANTS = {"padding-free": ("packed rows", "padding-free"), "text-packing": ("padded", "padding-free"),
            "float-masks": ("boolean masks", "float masks"), "rows-attention": ("autograd", "one node")}
AUTOGRAD_ATTENTION = "tunecard_sdpa_autograd"  # attention.py's arithmetic left to autograd, for this script only
AttentionInterface.register(AUTOGRAD_ATTENTION, attention._fast_masks_autograd)
AttentionMaskInterface.register(AUTOGRAD_ATTENTION, sdpa_mask)


class _BooleanMaskScale(torch.autograd.Function):
    """Dropout as `dropout.py` computed it before its float masks: torch's x * mask * scale on a boolean mask."""

    @staticmethod
    def forward(ctx, x, mask, scale):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.ops.aten.native_dropout_backward(x, mask, scale)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, mask, ctx.scale), None, None


def boolean_mask_dropout(x, p, training=True):
    if not training or p == 0.0:
        return x
    keep = tunecard_dropout.kept_fraction(p)
    return _BooleanMaskScale.apply(x, tunecard_dropout.keep_mask(x.shape, keep, x.device), 1.0 / keep)


def use_dropout(function) -> None:
    """Make FastDropout and the attention's probability dropout call `function`."""
    tunecard_dropout.dropout = attention.masked_dropout = function


SST2 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sst2" / "train.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lever", choices=list(VARIANTS), default="padding-free")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    config = build_config(CONFIG)
    text = args.lever == "text-packing"
    corpus = read_corpus(SST2) if text else read_splits(config)["train"]
    labels = label_names(corpus)
    tokenizer = load_tokenizer(config.model)
    torch.manual_seed(config.seed)
    model = load_model(config.model, "text-classification" if text else config.task, dict(enumerate(labels)))
    encoder = Encoder(tokenizer, {label: i for i, label in enumerate(labels)}, 256)
    features = encoder.encode_texts(corpus.examples[:3000]) if text else encoder.encode_tokens(corpus.examples)
    bf16 = cpu_supports_bf16()
    plain, lever = VARIANTS[args.lever]
    collators = {}
    for name in (plain, lever):
        if args.lever == "text-packing" and name == plain:
            collators[name], kind = PadCollator(tokenizer.pad_token_id), "padded"
        else:
            # float-masks and rows-attention compare both sides on the default (padding-free) batches
            padding_free = (args.lever in ("float-masks", "rows-attention")
                            or (args.lever in ("padding-free", "text-packing") and name == lever))
            collators[name], kind, _ = choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                                    tokenizer.pad_token_id, padding_free=padding_free, classify=text)
        print(f"{name}: {kind}")
    use_fast_dropout(model)
    use_fast_attention_dropout(model)
    fuse_qkv(model)
    sparse_embedding.set_sparse(model, True)
    order = list(range(len(features)))
    random.Random(config.seed).shuffle(order)
    batches = [{name: collator([features[i].model_inputs() for i in order[k:k + 16]])
                for name, collator in collators.items()} for k in range(0, 16 * args.steps, 16)]

    variants = {}
    for name in (plain, lever):
        replica = copy.deepcopy(model).train()
        optimizer = sparse_embedding.SparseRowsAdamW(replica.parameters(), lr=config.learning_rate, fused=True,
                                                     weight_decay=0.0)
        # The attention left to autograd: rows-attention's plain side, and both sides of float-masks, whose
        # swapped dropout reaches the attention probabilities only there (the one-node attention draws its own).
        if (args.lever == "rows-attention" and name == plain) or args.lever == "float-masks":
            replica.set_attn_implementation(AUTOGRAD_ATTENTION)
        variants[name] = (replica, optimizer, {part: [] for part in PARTS})

    def step(replica, optimizer, times, batch, record: bool) -> None:
        marks = [time.perf_counter()]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = replica(**batch).loss
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        sparse_embedding.clip_grad_norm_(replica.parameters(), config.max_grad_norm)
        marks.append(time.perf_counter())
        optimizer.step()
        replica.zero_grad()
        marks.append(time.perf_counter())
        if record:
            for part, start, end in zip(PARTS, marks, marks[1:]):
                times[part].append((end - start) * 1000)
            times["step"].append((marks[-1] - marks[0]) * 1000)

    dropouts = {plain: boolean_mask_dropout, lever: tunecard_dropout.dropout} if args.lever == "float-masks" else {}
    for index, batch in enumerate(batches):
        names = list(variants) if index % 2 == 0 else list(reversed(variants))
        for name in names:
            if dropouts:
                use_dropout(dropouts[name])
            step(*variants[name], batch[name], record=index >= args.warmup)
    print(f"{args.steps - args.warmup} steps after {args.warmup} of warm-up; medians in ms")
    for name, (*_, times) in variants.items():
        print(f"{name:15s} " + "  ".join(f"{part} {statistics.median(times[part]):6.1f}" for part in PARTS))
    without, with_lever = variants[plain][2]["step"], variants[lever][2]["step"]
    faster = sum(w < p for p, w in zip(without, with_lever))
    speedup = statistics.median(p / w for p, w in zip(without, with_lever))
    print(f"{lever} faster in {faster} of {len(without)} steps; median paired speedup {speedup:.3f}")


if __name__ == "__main__":
    main()
