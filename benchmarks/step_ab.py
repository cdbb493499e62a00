"""tunecard's CPU training step with and without the bf16 weight copies (`bf16_weights.py`), interleaved.

Two copies of the model train on the same packed batches of 16 CoNLL-2003 sentences, one step each in turn
(which goes first alternates), with everything else `tunecard train` uses on CPU: bf16 autocast, fast dropout
masks (the attention probabilities' too), fused query/key/value projections, sparse embedding rows, clipping
handed to the fused AdamW step. Prints the median time of each part of a step and how often the copies won.

    .venv/bin/python benchmarks/step_ab.py [--steps 150] [--warmup 20]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time

import torch

from tunecard import sparse_embedding
from tunecard.attention import use_fast_attention_dropout
from tunecard.batching import PadCollator
from tunecard.bf16_weights import Bf16Weights
from tunecard.config import build_config
from tunecard.dropout import use_fast_dropout
from tunecard.encode import Encoder
from tunecard.fused_qkv import fuse_qkv
from tunecard.modeling import load_model, load_tokenizer
from tunecard.packing import choose_train_collator
from tunecard.train import label_names, read_splits

CONFIG = "benchmarks/configs/conll2003-3000-1epoch.yaml"
PARTS = ("forward", "backward", "clipping", "optimizer", "step")
PLAIN, COPIES = "autocast casts", "bf16 copies"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    config = build_config(CONFIG)
    corpus = read_splits(config)["train"]
    labels = label_names(corpus)
    tokenizer = load_tokenizer(config.model)
    torch.manual_seed(config.seed)
    model = load_model(config.model, config.task, dict(enumerate(labels)))
    features = Encoder(tokenizer, {label: i for i, label in enumerate(labels)}, 256).encode_tokens(corpus.examples)
    collator, _ = choose_train_collator(model, features, PadCollator(tokenizer.pad_token_id), tokenizer.pad_token_id)
    use_fast_dropout(model)
    use_fast_attention_dropout(model)
    fuse_qkv(model)
    sparse_embedding.set_sparse(model, True)
    order = list(range(len(features)))
    random.Random(config.seed).shuffle(order)
    batches = [collator([features[i].model_inputs() for i in order[k:k + 16]])
               for k in range(0, 16 * args.steps, 16)]

    variants = {}
    for name in (PLAIN, COPIES):
        replica = copy.deepcopy(model).train()
        optimizer = sparse_embedding.SparseRowsAdamW(replica.parameters(), lr=config.learning_rate, fused=True,
                                                     weight_decay=0.0)
        copies = Bf16Weights(replica) if name == COPIES else None
        if copies is not None:
            copies.watch(optimizer)
        variants[name] = (replica, optimizer, copies, {part: [] for part in PARTS})

    def step(replica, optimizer, copies, times, batch, record: bool) -> None:
        marks = [time.perf_counter()]
        if copies is not None:
            copies.before_forward()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = replica(**batch).loss
        marks.append(time.perf_counter())
        loss.backward()
        if copies is not None:
            copies.after_backward()
        marks.append(time.perf_counter())
        sparse_embedding.clip_grad_norm_(replica.parameters(), config.max_grad_norm, optimizer)
        marks.append(time.perf_counter())
        optimizer.step()
        replica.zero_grad()
        marks.append(time.perf_counter())
        if record:
            for part, start, end in zip(PARTS, marks, marks[1:]):
                times[part].append((end - start) * 1000)
            times["step"].append((marks[-1] - marks[0]) * 1000)

    for index, batch in enumerate(batches):
        names = list(variants) if index % 2 == 0 else list(reversed(variants))
        for name in names:
            step(*variants[name], batch, record=index >= args.warmup)
    print(f"{args.steps - args.warmup} steps after {args.warmup} of warm-up; medians in ms")
    for name, (*_, times) in variants.items():
        print(f"{name:15s} " + "  ".join(f"{part} {statistics.median(times[part]):6.1f}" for part in PARTS))
    plain, copies = variants[PLAIN][3]["step"], variants[COPIES][3]["step"]
    faster = sum(c < p for p, c in zip(plain, copies))
    speedup = statistics.median(p / c for p, c in zip(plain, copies))
    print(f"bf16 copies faster in {faster} of {len(plain)} steps; median paired speedup {speedup:.3f}")


if __name__ == "__main__":
    main()
