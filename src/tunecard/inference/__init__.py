"""Use a trained folder: `load(DIR).predict(texts)`, `evaluate_folder(DIR, data)`; torch or ONNX Runtime."""

from tunecard.inference.predictor import Predictor, evaluate_folder, load

__all__ = ["Predictor", "evaluate_folder", "load"]
