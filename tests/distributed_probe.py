"""`tunecard` under torchrun, with each rank logging the training examples it was given (test_distributed.py).

Run as `torchrun --nproc_per_node=2 tests/distributed_probe.py LOG_DIR train ...`: it wraps
FeatureDataset.__getitem__ (only the training dataloader calls it; evaluation reads features directly) so the
test can prove the ranks trained on different shards, then runs the real command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tunecard import cli
from tunecard.encoding.batching import FeatureDataset

log = Path(sys.argv.pop(1)) / f"rank{os.environ['RANK']}.txt"
original = FeatureDataset.__getitem__


def logged_getitem(self, index):
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"{index}\n")
    return original(self, index)


FeatureDataset.__getitem__ = logged_getitem
sys.argv[0] = "tunecard"
cli.main()
