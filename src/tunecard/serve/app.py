"""The HTTP API of `tunecard serve` (Starlette): POST /predict, GET /health, GET /metadata.

`/predict` answers exactly what `tunecard predict` prints: {"text": ..., "entities": [...]} for NER (label,
character offsets, surface text, score) or {"text": ..., "prediction": {"label", "score", "probabilities"}} for
text classification ({"labels": [{"label", "score"}, ...], "probabilities"} for multi-label: every label at or
above its tuned threshold), one object for {"text": "..."} and {"predictions": [...]} for {"texts": [...]}. Every
error is JSON: {"error": {"code", "message", "fix"}} with the HTTP status of its kind (docs/serving.md).
"""

from __future__ import annotations

import json
import math
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tunecard.serve.batcher import DynamicBatcher, new_model_thread

# JSON writes a character in at most 6 bytes (\uXXXX), a surrogate pair in 12: a body that fits the text limits
# is never longer than this per character, plus room for the keys and separators.
BYTES_PER_CHARACTER = 6
BODY_OVERHEAD = 16 * 1024


@dataclass(frozen=True)
class Limits:
    """What one request may hold (`tunecard serve` options).

    Args:
        max_text_length: characters per text (413 E503 above it).
        max_texts: texts per request (413 E504 above it).
    """

    max_text_length: int = 10_000
    max_texts: int = 256

    @property
    def max_body_bytes(self) -> int:
        """The largest body a request within the limits can need (413 E505 above it, before it is parsed)."""
        return self.max_texts * (self.max_text_length * BYTES_PER_CHARACTER + 8) + BODY_OVERHEAD


class RequestError(Exception):
    """A request the API refuses: its HTTP status, code, message and fix, sent as JSON."""

    def __init__(self, status: int, code: str, message: str, fix: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fix = status, code, message, fix

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.fix)


def error_response(status: int, code: str, message: str, fix: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "fix": fix}}, status_code=status)


SHAPE_FIX = 'send {"text": "one text"} or {"texts": ["a text", "another"]}.'


def parse_texts(body: bytes, limits: Limits) -> tuple[list[str], bool]:
    """The texts of a /predict body, and whether it was a list ({"texts": [...]}).

    Raises:
        RequestError: 400 E501 not JSON (or not UTF-8), 422 E502 JSON of another shape, 413 E503 / E504 a text or
            a list over the limits.
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RequestError(400, "E501", f"the body is not UTF-8 (byte {error.start})",
                           "send JSON encoded as UTF-8.") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, "E501", f"the body is not valid JSON: {error.msg} at line {error.lineno}, "
                           f"column {error.colno}", SHAPE_FIX) from None
    if not isinstance(payload, dict):
        raise RequestError(422, "E502", f"expected a JSON object, got {_kind(payload)}", SHAPE_FIX)
    unknown = sorted(set(payload) - {"text", "texts"})
    if unknown:
        raise RequestError(422, "E502", f"unknown key(s) {unknown}: the keys are text and texts", SHAPE_FIX)
    if ("text" in payload) == ("texts" in payload):
        raise RequestError(422, "E502", "give exactly one of text and texts", SHAPE_FIX)
    many = "texts" in payload
    texts = payload["texts"] if many else [payload["text"]]
    if not isinstance(texts, list):
        raise RequestError(422, "E502", f"texts must be a list of strings, got {_kind(texts)}", SHAPE_FIX)
    if len(texts) > limits.max_texts:
        raise RequestError(413, "E504", f"{len(texts)} texts in one request; the limit is {limits.max_texts}",
                           f"send at most {limits.max_texts} texts per request, or start the server with a larger "
                           "--max-texts.")
    for index, text in enumerate(texts):
        where = f"texts[{index}]" if many else "text"
        if not isinstance(text, str):
            raise RequestError(422, "E502", f"{where} must be a string, got {_kind(text)}", SHAPE_FIX)
        if len(text) > limits.max_text_length:
            raise RequestError(413, "E503", f"{where} has {len(text)} characters; the limit is "
                               f"{limits.max_text_length}", "split the text (by paragraph or sentence), or start "
                               "the server with a larger --max-text-length.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # "\ud800" is valid JSON but no text: the tokenizer would fail on it
            raise RequestError(422, "E502", f"{where} holds a lone surrogate (\\u{ord(text[error.start]):04x}) at "
                               f"character {error.start}", "send UTF-8 text: surrogates come in pairs.") from None
    return texts, many


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 E505 as soon as it is longer than `limit` (declared or as it streams in)."""
    fix = "send fewer or shorter texts per request (the limits are in GET /metadata)."
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "E505", f"the body has {declared} bytes; the limit is {limit}", fix)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "E505", f"the body is longer than the limit of {limit} bytes", fix)
        chunks.append(chunk)
    return b"".join(chunks)


def metadata(predictor, folder: Path) -> dict:
    """What the model is: task, labels, base model, the card's headline scores (metrics.json) and how it runs."""
    from tunecard.reporting.card import base_model_id, dataset_label
    from tunecard.training.evaluate import table_metrics

    config = _read(folder / "train_config.yaml", "yaml") or {}
    metrics = _read(folder / "metrics.json", "json") or {}
    labels = [predictor.id2label[i] for i in sorted(predictor.id2label)]
    headline = None
    for split in ("validation", "test"):
        scores = metrics.get(split)
        if isinstance(scores, dict):
            keys = ["loss", *table_metrics(predictor.task)]
            headline = {"split": split, **{k: scores[k] for k in keys if _number(scores.get(k))}}
            break
    base = config.get("model")
    info = {
        "model": folder.resolve().name,
        "task": predictor.task,
        "labels": labels,
        "base_model": (base_model_id(base) or base) if isinstance(base, str) else None,
        "dataset": dataset_label(config.get("train"), config.get("dataset_name")),
        "headline": headline,
        "test": _scores(metrics.get("test"), predictor.task) if headline and headline["split"] != "test" else None,
        "precision": "bf16" if predictor.bf16 else "fp32",
        "recheck_margin": predictor.recheck_margin,
        "packed": predictor.packed is not None,
        "max_length": predictor.max_length,
    }
    if predictor.is_ner:
        info["entity_types"] = sorted({label[2:] for label in labels if label != "O"})
        info["decoding"] = predictor.decoding  # argmax, or constrained (the best valid IOB2 sequence)
    if predictor.is_multi_label:  # the decision threshold of each label (config.json, tuned on validation)
        info["thresholds"] = dict(zip(labels, predictor.thresholds))
    return info


def _scores(scores, task: str) -> dict | None:
    from tunecard.training.evaluate import table_metrics

    if not isinstance(scores, dict):
        return None
    return {k: scores[k] for k in ["loss", *table_metrics(task)] if _number(scores.get(k))}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read(path: Path, kind: str):
    """A run file, or None when it is missing or unreadable (a plain save_pretrained folder has neither)."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8, not JSON
        return None


def create_app(predictor, folder: str | Path, *, max_batch_size: int = 64, max_wait_ms: float = 5.0,
               limits: Limits | None = None, on_ready=None, model_thread=None) -> Starlette:
    """The Starlette application serving `predictor` (a loaded `tunecard.inference.Predictor`).

    Args:
        predictor: the model, loaded once; only the batcher's worker thread calls it.
        folder: the run folder (metadata: train_config.yaml, metrics.json).
        max_batch_size: most texts predicted together (DynamicBatcher).
        max_wait_ms: how long a request waits for others to join its batch.
        limits: text length and texts per request.
        on_ready: called once the batcher runs (the server prints its address then).
        model_thread: the thread that loaded `predictor` (`serve.batcher.new_model_thread()`), to predict in it too.
    """
    limits = limits or Limits()
    folder = Path(folder)
    key = "entities" if predictor.is_ner else "prediction"
    batcher = DynamicBatcher(predictor.predict, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                             model_thread=model_thread)
    info = metadata(predictor, folder)
    info["batching"] = {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms}
    info["limits"] = {**asdict(limits), "max_body_bytes": limits.max_body_bytes}

    async def predict(request: Request) -> JSONResponse:
        try:
            texts, many = parse_texts(await read_body(request, limits.max_body_bytes), limits)
        except RequestError as error:
            return error.response()
        except ClientDisconnect:
            return error_response(400, "E501", "the client closed the connection before the body ended")
        answers = await batcher.submit(texts)
        results = [{"text": text, key: answer} for text, answer in zip(texts, answers)]
        return JSONResponse({"predictions": results} if many else results[0])

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "waiting": batcher.waiting, **asdict(batcher.stats)})

    async def describe(request: Request) -> JSONResponse:
        return JSONResponse(info)

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        routes = "POST /predict, GET /health, GET /metadata"
        if error.status_code == 404:
            return error_response(404, "E506", f"no endpoint at {request.url.path}", f"the endpoints are {routes}.")
        if error.status_code == 405:
            return error_response(405, "E506", f"{request.method} is not allowed on {request.url.path}",
                                  f"the endpoints are {routes}.")
        return error_response(error.status_code, "E506", str(error.detail))

    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(500, "E507", f"prediction failed: {type(error).__name__}: {error}",
                              "report it with the request that caused it (tunecard env prints the versions).")

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await batcher.stop()

    routes = [Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
              Route("/metadata", describe, methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.batcher = batcher
    app.state.predictor = predictor
    return app


def load_app(folder: str | Path, *, max_batch_size: int = 64, max_wait_ms: float = 5.0, limits: Limits | None = None,
             on_ready=None, **predictor_options) -> Starlette:
    """The application for a trained folder, its model loaded in the thread that will run every prediction.

    Loading the model in one thread and predicting in another makes every call slower (each thread that runs
    torch gets its own OpenMP team; serve.batcher): use this rather than `create_app(tunecard.load(DIR), DIR)`.

    Args:
        folder: a run folder (or any save_pretrained token / sequence classifier).
        max_batch_size, max_wait_ms, limits, on_ready: as `create_app`.
        predictor_options: `tunecard.inference.load` options (precision, recheck_margin, speed, ...).
    """
    from tunecard.inference.predictor import load

    thread = new_model_thread()
    try:
        predictor = thread.submit(load, folder, **predictor_options).result()
    except BaseException:
        thread.shutdown(wait=False)
        raise
    return create_app(predictor, folder, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, limits=limits,
                      on_ready=on_ready, model_thread=thread)
