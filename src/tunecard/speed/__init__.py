"""The speed layer: every lever that makes training and prediction faster without changing what they compute.

Nothing outside this package imports a lever: training and inference ask for a `SpeedPlan` (plan.py), which
decides once which levers apply (and why the others do not), applies them in one context, undoes them, and
is recorded in metrics.json and on the card. `speed: off` turns the whole layer off.
"""

from tunecard.speed.plan import (
    AUTO,
    OFF,
    SpeedPlan,
    plan_prediction,
    plan_training,
    prediction_levers,
    release,
    training_levers,
)

__all__ = ["AUTO", "OFF", "SpeedPlan", "plan_prediction", "plan_training", "prediction_levers", "release",
           "training_levers"]
