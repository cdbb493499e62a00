"""Multi-process runs (torchrun, `accelerate launch`): who writes, and one evaluation result for every rank.

The Trainer does the data-parallel training itself (DDP over gloo on CPU, nccl on GPUs); tunecard only has to
make sure that one process writes the run and that every process takes the same decisions (best checkpoint,
early stopping) from the same numbers.
"""

from __future__ import annotations

import os


def world_size() -> int:
    """Processes in this run: torchrun and `accelerate launch` set WORLD_SIZE; a plain run is 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Global rank 0 (RANK, set by the launchers) is the only process that writes the run."""
    return int(os.environ.get("RANK", "0")) == 0


def broadcast_from_main(value):
    """Rank 0's `value` on every rank (a picklable object; the identity outside a distributed run).

    Every rank evaluates the full validation set (so FSDP / ZeRO-3 shards all take part in the forward
    passes), but GPUs may differ in the last bit; rank 0's result is the one every rank acts on.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def backend() -> str | None:
    """The process group's backend (gloo, nccl), or None outside a distributed run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return str(dist.get_backend())
    return None
