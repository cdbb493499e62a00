"""history.json's stop record, read without torch by the card, the HTML report and the doctor.

`recorder.RunRecorder` writes history.json: a row per evaluation, each step's loss, the kept evaluation, and
`stopped_by`, why training ended before its configured end (None when it ran to the end).
"""

from __future__ import annotations

EARLY_STOPPING = "early_stopping"  # early_stopping_patience evaluations in a row without improvement
PRUNED = "pruned"  # a hyperparameter search's pruner stopped the trial (search.PruningCallback)


def stop_reason(history: dict) -> dict | None:
    """{"reason": EARLY_STOPPING | PRUNED, ...} or None; files written before `stopped_by` have "stopped_early"."""
    if history.get("stopped_by"):
        return history["stopped_by"]
    return {"reason": EARLY_STOPPING} if history.get("stopped_early") else None
