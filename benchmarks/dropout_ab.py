"""Training steps with torch's dropout masks vs tunecard's (`dropout.py`), interleaved in one process.

On a shared 2-core machine two runs of the same command differ by 10-20%, more than the lever measured here,
so both variants run in one process on the same batches, taking turns: each round draws 10 packed batches of
16 CoNLL-2003 training sentences and runs them once per variant (forward and backward under bf16 autocast
where the CPU has it, clipping, fused AdamW, as `tunecard train` does), alternating which goes first.

    .venv/bin/python benchmarks/dropout_ab.py [--rounds 8] [--sentences 3000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from torch import nn

from tunecard import environment
from tunecard.config import build_config
from tunecard.encoding.batching import PadCollator
from tunecard.encoding.encoder import Encoder
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.training.inputs import read_splits
from tunecard.speed.dropout import FastDropout
from tunecard.speed.packing import choose_collator

CONFIG = "benchmarks/configs/conll2003-3000-1epoch.yaml"


def set_masks(model: nn.Module, fast: bool) -> None:
    for module in model.modules():
        for name, child in list(module.named_children()):
            if fast and type(child) is nn.Dropout:
                setattr(module, name, FastDropout(child.p).train(child.training))
            elif not fast and type(child) is FastDropout:
                setattr(module, name, nn.Dropout(child.p).train(child.training))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=3000)
    args = parser.parse_args()

    config = build_config(CONFIG, set_pairs=[f"max_train_examples={args.sentences}"])
    corpus = read_splits(config)["train"]
    labels = sorted({tag for example in corpus.examples for tag in example.tags})
    tokenizer = load_tokenizer(config.model)
    torch.manual_seed(config.seed)
    model = load_model(config.model, config.task, dict(enumerate(labels)))
    features = Encoder(tokenizer, {label: i for i, label in enumerate(labels)}, 256).encode_tokens(corpus.examples)
    collator, batches, _ = choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                        tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, fused=True)
    bf16 = environment.use_bf16("auto")
    model.train()

    def step(batch: dict) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        model.zero_grad()

    draw = random.Random(config.seed)

    def draw_batches(n: int) -> list[dict]:
        return [collator([features[i].model_inputs() for i in draw.sample(range(len(features)), 16)])
                for _ in range(n)]

    variants = {"torch masks": False, "tunecard masks": True}
    for fast in variants.values():  # warm-up: oneDNN kernels, allocator
        set_masks(model, fast)
        for batch in draw_batches(3):
            step(batch)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        round_batches = draw_batches(10)
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            set_masks(model, variants[name])
            started = time.perf_counter()
            for batch in round_batches:
                step(batch)
            times[name].append((time.perf_counter() - started) / len(round_batches) * 1000)
    print(f"{batches} batches of 16, bf16 {bf16}, {args.rounds} rounds of 10 steps; ms per step")
    for name, values in times.items():
        print(f"{name:15s} median {statistics.median(values):6.1f}   rounds {' '.join(f'{v:.0f}' for v in values)}")
    faster = sum(f < t for f, t in zip(times["tunecard masks"], times["torch masks"]))
    print(f"tunecard masks faster in {faster} of {args.rounds} rounds")


if __name__ == "__main__":
    main()
