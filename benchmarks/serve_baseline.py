"""The server a user would write without tunecard: `transformers.pipeline` inside a plain endpoint.

    .venv/bin/python benchmarks/serve_baseline.py RUN_DIR --port 8001

The same HTTP stack as `tunecard serve` (Starlette on uvicorn; FastAPI is Starlette with pydantic on top) and
the same request body, {"text": "..."}. The endpoint calls the pipeline (aggregation_strategy="first", as
tunecard scores words by their first subword; fp32, its default) on the event loop, so requests are predicted
one at a time, each as it comes: no batching across requests. Started by benchmarks/serve_load.py.
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a token-classification folder (a tunecard run loads as it is)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import transformers
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from transformers import pipeline

    transformers.logging.set_verbosity_error()
    ner = pipeline("token-classification", model=args.model, aggregation_strategy="first", device="cpu")

    async def predict(request: Request) -> JSONResponse:
        text = (await request.json())["text"]
        entities = [{"label": e["entity_group"], "start": e["start"], "end": e["end"], "text": e["word"],
                     "score": round(float(e["score"]), 4)} for e in ner(text)]
        return JSONResponse({"text": text, "entities": entities})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
    print(f"baseline: {args.model} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
