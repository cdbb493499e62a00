"""`tunecard serve RUN`: a trained folder behind an HTTP API (Starlette on uvicorn), concurrent requests batched
through the same Predictor path as `tunecard predict` (docs/serving.md). Needs the `serve` extra."""

from tunecard.serve.server import run

__all__ = ["run"]
