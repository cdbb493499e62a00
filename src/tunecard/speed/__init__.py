"""The speed layer: every lever that makes training and prediction faster without changing what they compute.

Nothing outside this package imports a lever; training and inference ask for a `SpeedPlan` (plan.py).
"""
