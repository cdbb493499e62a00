"""`tunecard` that kills itself with SIGKILL at a chosen point of a run (tests/test_kill_matrix.py).

Run as `python tests/kill_probe.py POINT train ...`, or under torchrun (the point names the rank that dies; the
launcher then ends the others). POINT is `none` (an uninterrupted run through the same code) or KIND@STEP[:RANK]:

- `mid-epoch@S`: after optimizer step S, before that step is logged, evaluated or saved;
- `checkpoint-write@S`: while the checkpoint of step S is written (the Trainer has written the weights, not yet
  the optimizer state; tunecard's state file, which marks a checkpoint complete, is not written);
- `after-checkpoint@S`: as soon as the checkpoint of step S is complete, before anything else happens;
- `evaluation@S`: during the evaluation at step S (the forward passes done, nothing recorded);
- `final-write@0`: while the run folder is written (the model is in the staging folder, the card is not);
- `stop@S:RANK`: the rank stops itself with SIGSTOP after step S, as a frozen process would (its pid is written
  to $KILL_PROBE_PID_FILE, so the test can end it).

The hooks are test-only: they wrap tunecard's functions from outside, nothing in tunecard knows about them.
"""

from __future__ import annotations

import os
import signal
import sys

from transformers import TrainerCallback

from tunecard import cli, pipeline
from tunecard.training import checkpoint, run, trainer

point = sys.argv.pop(1)
kind, _, where = point.partition("@")
step_text, _, rank_text = where.partition(":")
STEP = int(step_text or 0)
RANK = int(rank_text or 0)
ACTIVE = kind != "none" and int(os.environ.get("RANK", "0")) == RANK


def die(signal_number=signal.SIGKILL) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if signal_number == signal.SIGSTOP and os.environ.get("KILL_PROBE_PID_FILE"):  # for the test to end it
        with open(os.environ["KILL_PROBE_PID_FILE"], "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
    os.kill(os.getpid(), signal_number)


class Killer(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if kind == "mid-epoch" and state.global_step == STEP:
            die()
        if kind == "stop" and state.global_step == STEP:
            die(signal.SIGSTOP)

    def on_save(self, args, state, control, **kwargs):  # after CheckpointKeeper's: the checkpoint is complete
        if kind == "after-checkpoint" and state.global_step == STEP:
            die()


if ACTIVE:
    original_build = run.build_trainer

    def build_trainer(*args, **kwargs):
        built = original_build(*args, **kwargs)
        built.add_callback(Killer())  # runs after the recorder's and the checkpoint keeper's callbacks
        current["trainer"] = built
        return built

    current: dict = {}
    run.build_trainer = build_trainer

    original_save_optimizer = trainer.TunecardTrainer._save_optimizer_and_scheduler

    def save_optimizer(self, output_dir):
        if kind == "checkpoint-write" and self.state.global_step == STEP:
            die()
        return original_save_optimizer(self, output_dir)

    trainer.TunecardTrainer._save_optimizer_and_scheduler = save_optimizer

    original_evaluate = trainer.evaluate_features

    def evaluate_features(*args, **kwargs):
        details = original_evaluate(*args, **kwargs)
        if kind == "evaluation" and current["trainer"].state.global_step == STEP:
            die()
        return details

    trainer.evaluate_features = evaluate_features

    original_write_card = pipeline.write_card

    def write_card(*args, **kwargs):
        if kind == "final-write":
            die()
        return original_write_card(*args, **kwargs)

    pipeline.write_card = write_card

assert checkpoint.STATE_FILE  # the probe wraps functions of these modules: fail loudly if they move
sys.argv[0] = "tunecard"
cli.main()
