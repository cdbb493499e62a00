"""Fit a model with the transformers Trainer: arguments, the Trainer subclass, evaluation, checkpoints, the record."""
