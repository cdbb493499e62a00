"""Hyperparameter search over whole training runs (Optuna): the space (space.py) and the study (study.py)."""

from tunecard.search.study import search

__all__ = ["search"]
