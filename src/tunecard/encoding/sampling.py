"""Length-bucketed random batches: each batch pads to similar lengths, yet the order stays random.

The Trainer's own `group_by_length` sorts megabatches but shares one sampler layout across ranks and puts
the longest batch first; this sampler is the plain recipe measured in ../shared/notes/performance-probe.md:
shuffle, cut into chunks of `chunk_batches` batches, sort each chunk by length, cut it into batches and
shuffle the batch order. Every example appears exactly once per epoch, and the order depends only on
(seed, epoch), so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

DEFAULT_CHUNK_BATCHES = 50


class BucketedRandomSampler(torch.utils.data.Sampler[int]):
    """Yields indices so that each consecutive `batch_size` of them is a batch of similar lengths.

    Args:
        lengths: length of every example (subwords).
        batch_size: examples per batch (the DataLoader's batch size).
        seed: base seed; the epoch is added so every epoch has a new order.
        chunk_batches: how many batches are sorted together (larger: less padding, less randomness).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 42,
                 chunk_batches: int = DEFAULT_CHUNK_BATCHES):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.chunk = batch_size * chunk_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        full, partial = [], []
        for start in range(0, len(order), self.chunk):
            chunk = sorted(order[start:start + self.chunk], key=lambda i: self.lengths[i])
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b:b + self.batch_size]
                (full if len(batch) == self.batch_size else partial).append(batch)
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        # At most one batch is short; it goes last so the DataLoader's fixed-size grouping matches ours.
        leftover = [i for batch in partial for i in batch]
        tail = [leftover[i:i + self.batch_size] for i in range(0, len(leftover), self.batch_size)]
        return shuffled + tail

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch
