"""Multi-process runs (torchrun, `accelerate launch`): who writes, one evaluation result for every rank, and a
process that stops answering.

The Trainer does the data-parallel training itself (DDP over gloo on CPU, nccl on GPUs); tunecard only has to
make sure that one process writes the run, that every process takes the same decisions (best checkpoint,
early stopping) from the same numbers, and that a frozen process stops the run after `ddp_timeout` with the
process named (E225) instead of leaving the others blocked.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import timedelta

from tunecard.errors import DistributedError

# The other processes wait for rank 0's final evaluations (validation and test with the best weights) and its
# writing of the run folder, which can take far longer than a training step: on a gloo group of their own with
# this limit, not ddp_timeout's.
FINAL_WAIT = timedelta(days=1)
# After a timeout, how long the processes still alive give each other to answer rank 0's roll call.
ROLL_CALL_SECONDS = 60
_control = None  # that gloo group: created once per process, by every rank at the same point of the run


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


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def start(timeout_seconds: int, cpu: bool) -> None:
    """Start the process group of a multi-process CPU run with `ddp_timeout`, before the Trainer does.

    The Trainer passes its `ddp_timeout` to the process group on GPUs only; on the CPU (gloo) accelerate starts
    it with torch's default of 30 minutes. A group started here is the one accelerate then uses. Nothing to do
    in a single process, or when a launcher already started it.
    """
    import torch.distributed as dist

    if world_size() > 1 and cpu and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=timedelta(seconds=timeout_seconds))


def open_control_group() -> None:
    """The gloo group for the final wait and the roll call after a timeout (every rank calls this once the
    process group is up, at the same point of the run)."""
    global _control
    if _control is None and _initialized():
        import torch.distributed as dist

        _control = dist.new_group(backend="gloo", timeout=FINAL_WAIT)


def wait_for_main() -> None:
    """Every process returns once rank 0 has written the run (however long its final evaluations take)."""
    if not _initialized():
        return
    import torch.distributed as dist

    dist.barrier(group=_control)  # the default group (ddp_timeout) only if the control group was never opened


def is_timeout(error: BaseException) -> bool:
    """A collective operation that waited longer than the process group's timeout (gloo: "Timed out waiting
    Nms for recv operation to complete"; NCCL's watchdog ends the process itself)."""
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("timed out" in text or "timeout" in text)


def silent_ranks(roll_call_seconds: int = ROLL_CALL_SECONDS) -> list[int] | None:
    """After a timeout: the ranks that do not answer a roll call (`monitored_barrier` on the control group).

    Rank 0 takes the call and knows who did not answer; another rank only knows that rank 0 did not confirm
    everyone, which names rank 0 when there are two processes. None where it cannot be known.
    """
    import torch.distributed as dist

    if _control is None:
        return None
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        dist.monitored_barrier(group=_control, timeout=timedelta(seconds=roll_call_seconds), wait_all_ranks=True)
    except RuntimeError as error:
        if rank == 0:
            found = re.search(r"Ranks? ([\d, ]+) failed to pass monitoredBarrier", str(error))
            return [int(r) for r in found.group(1).replace(" ", "").split(",") if r] if found else None
        return [0] if world == 2 else None
    return []


@contextmanager
def stuck_process_named(timeout_seconds: int):
    """A collective operation that timed out becomes E225, naming the process that stopped answering."""
    try:
        yield
    except RuntimeError as error:
        if not (_initialized() and is_timeout(error)):
            raise
        import torch.distributed as dist

        silent = silent_ranks(min(timeout_seconds, ROLL_CALL_SECONDS))
        raise timeout_error(error, timeout_seconds, silent, dist.get_rank(), dist.get_world_size()) from error


def timeout_error(error: BaseException, timeout_seconds: int, silent: list[int] | None, rank: int,
                  world: int) -> DistributedError:
    """E225 for a collective operation that timed out on `rank`, naming the `silent` ranks when they are known
    (an empty list: every rank answered the roll call)."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    detail = re.sub(r"^\[[^\]]*\] ?", "", detail)[:200]  # gloo's source-file prefix
    waited = (f"rank {rank} waited ddp_timeout ({timeout_seconds} s) in an operation all processes take part in "
              f"({detail})")
    if silent:
        many = len(silent) > 1
        names = ", ".join(str(r) for r in silent)
        what = (f"rank{'s' if many else ''} {names} of {world} processes stopped answering: {waited}, and "
                f"{'they' if many else 'it'} did not answer a roll call after it.")
        look = (f"find out why rank{'s' if many else ''} {names} stopped (its log; a process stopped with SIGSTOP or "
                "Ctrl-Z, a machine out of memory or swapping, a hung disk or network)")
    elif silent == []:
        what = (f"{waited}; every process answered a roll call after it, so one was slower than ddp_timeout "
                "rather than stopped.")
        look = "find the slow process (a slower machine, a long write to a slow disk)"
    else:
        what = (f"{waited}; which process stopped answering cannot be told from rank {rank} (rank 0's message "
                "names it while rank 0 is alive).")
        look = "find the process that stopped (the launcher's log gives each rank's exit)"
    return DistributedError(
        "E225", what,
        fix=f"{look}; if it is only slower than the others, raise ddp_timeout (e.g. --set ddp_timeout="
            f"{max(timeout_seconds * 3, 1800)}). The last complete checkpoint, if there is one, is kept: the same "
            "command resumes from it (ddp_timeout may differ on the resume).")
